"""A visual Turing test's results attached to a validation report (``validate
--turing-results``): the real study's JSON lands in report.json and the HTML, with whether the
study showed this very synthetic set; a file that is not such results is refused (exit 2)
before any work."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from common.errors import UserError
from validator.config import ValidateConfig
from validator.pipeline import run_validation
from validator.turing.app import results_of
from validator.turing.store import Store
from validator.turing.study import create_study, new_session, rater_order


def _copy(src: Path, dst: Path, n: int) -> Path:
    dst.mkdir(parents=True)
    for path in sorted(src.iterdir())[:n]:
        shutil.copy(path, dst)
    return dst


def _study(tmp_path: Path, real: Path, synthetic: Path) -> Path:
    store = Store(tmp_path / "turing.sqlite")
    study = create_study(store, "attach", real, synthetic, per_rater=6, size=32, seed=5)
    roles = [role for _, role, _ in store.image_roles(study.name)]
    for seq in (1, 2):
        session = new_session(store, study, f"rater {seq}")
        order = rater_order(study, len(roles), seq)
        while (trial := store.current(session)).token:
            right = roles[order[trial.position]]
            assert store.answer(session, trial.position, right if seq == 1 else "real", 4)
    path = tmp_path / "turing.json"
    path.write_text(json.dumps(results_of(store, study)))
    return path


def _validate(real, synthetic, features, out, turing) -> dict:
    config = ValidateConfig(
        real=real,
        synthetic=synthetic,
        features_model=features,
        out=out,
        checks=("dcr",),
        cache=False,
        tsne=False,
        progress=False,
        turing_results=turing,
    )
    config.validate()
    run_validation(config)
    return json.loads((out / "report.json").read_text())


def test_results_are_attached_and_tied_to_the_synthetic_set(split, xception_onnx, tmp_path):
    real = _copy(split.train, tmp_path / "real", 12)
    synthetic = _copy(split.other, tmp_path / "synthetic", 8)
    other = _copy(split.holdout, tmp_path / "other", 8)
    results = _study(tmp_path, split.holdout, synthetic)
    want = json.loads(results.read_text())
    assert want["raters"]["completed"] == 2 and want["answers"] == 12

    report = _validate(real, synthetic, xception_onnx, tmp_path / "r1", results)
    assert report["turing"] == {"results": want, "same_synthetic_set": True}
    html = (tmp_path / "r1" / "report.html").read_text()
    assert "Visual Turing test" in html and want["summary"] in html
    assert "its synthetic images are not this report" not in html

    report = _validate(real, other, xception_onnx, tmp_path / "r2", results)
    assert report["turing"]["same_synthetic_set"] is False  # shown, and said to be another set
    assert (
        "its synthetic images are not this report" in (tmp_path / "r2" / "report.html").read_text()
    )

    report = _validate(real, synthetic, xception_onnx, tmp_path / "r3", None)
    assert report["turing"] is None


def test_a_file_that_is_not_turing_results_is_refused_before_any_work(
    split, xception_onnx, tmp_path
):
    bad = tmp_path / "turing.json"
    bad.write_text(json.dumps({"accuracy": 0.5}))
    out = tmp_path / "report"
    with pytest.raises(UserError, match="not the output of `python -m validator turing results"):
        _validate(split.train, split.other, xception_onnx, out, bad)
    assert not out.exists()  # refused before the report folder was made
