"""Weight-free quality tracked during training (trainer.quality): metrics, curve, best snapshot
kept through pruning and exported with ``--checkpoint best``, tracker state across resume."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest

from common.config import resolve
from common.errors import UserError
from common.manifest import ModelManifest
from tests.trainer.helpers import isic_cli_folder

TINY = dict(
    resolution=32,
    batch_size=8,
    width=8,
    latent_dim=16,
    ema=0.9,
    keep_checkpoints=1,
    progress=False,
    tensorboard=False,
    sample_count=4,
    quality_every=1,
    quality_count=8,
)


def make_config(data, run, **overrides):
    from trainer.config import TrainConfig

    return resolve(
        TrainConfig, {"data": data, "run": run, "epochs": 3, **TINY, **overrides}, env={}
    )


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return isic_cli_folder(tmp_path_factory.mktemp("q-data") / "isic", 16, 0, corrupt=False)


@pytest.fixture(scope="module")
def straight(dataset, tmp_path_factory):
    from trainer.train import train

    run = tmp_path_factory.mktemp("q-runs") / "straight"
    train(make_config(dataset, run))
    return run


def _real(n=16, shift=0):
    from common.images import load_images
    from tests.trainer.helpers import DEMO, demo_rows

    paths = [DEMO / f"{r['isic_id']}.jpg" for r in demo_rows()[:n]]
    images = load_images(paths, 32, progress=False).astype(np.int16)
    return np.clip(images + np.array(shift, np.int16), 0, 255).astype(np.uint8)


def test_tracker_scores_colour_shifted_images_worse(tmp_path):
    from common.images import to_uint8
    from trainer.quality import QualityTracker

    real = _real(24)
    tracker = QualityTracker(real[:16], latent_dim=4, seed=0, count=8, path=tmp_path / "q.json")
    assert tracker.m == 8 and len(tracker.latents) == 16

    def images_from(pool):  # a "generator" that returns fixed images in [-1, 1]
        return lambda z, training=False: pool[: len(z)].astype(np.float32) / 127.5 - 1.0

    same = tracker.evaluate(images_from(np.concatenate([real[16:], real[:8]])), epoch=1)
    shifted = tracker.evaluate(images_from(_real(16, shift=(60, -30, -30))), epoch=2)
    assert shifted["lab_w1"] > 2 * same["lab_w1"]
    assert shifted["background_delta_e"] > same["background_delta_e"] + 10
    assert shifted["quality_score"] > same["quality_score"]
    assert tracker.best_epoch == 1 and [r["epoch"] for r in tracker.history] == [1, 2]
    assert np.array_equal(to_uint8(np.array([-1.0, 1.0])), [0, 255])


def test_tracker_reads_only_its_fixed_subset_from_an_image_source(tmp_path):
    from tests.trainer.test_pipeline import CountingSource
    from trainer.quality import QualityTracker

    real = _real(40)
    source = CountingSource(real)
    tracker = QualityTracker(source, latent_dim=4, seed=0, count=6, path=tmp_path / "q.json")
    rows = sum(source.calls, [])
    assert tracker.m == 6 and len(rows) == 12 == len(set(rows))  # 2 m of the 40 rows, once
    from_array = QualityTracker(real, latent_dim=4, seed=0, count=6, path=tmp_path / "a.json")
    assert tracker.reference == from_array.reference  # the same subset, in the same order


def test_training_writes_quality_metrics_curve_and_keeps_the_best_snapshot(straight):
    doc = json.loads((straight / "quality.json").read_text())
    assert [r["epoch"] for r in doc["history"]] == [1, 2, 3]
    assert "quality_score" in doc["criterion"] and doc["set_size"] == 8
    best = doc["best"]
    assert best["quality_score"] == min(r["quality_score"] for r in doc["history"])
    with open(straight / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    for row, hist in zip(rows, doc["history"]):
        assert float(row["swd_avg"]) == pytest.approx(hist["swd_avg"])
        assert float(row["quality_score"]) == pytest.approx(hist["quality_score"])
    png = (straight / "quality.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 2000
    # --keep-checkpoints 1 keeps the last one, and the best one when it is another epoch
    kept = sorted(p.name for p in (straight / "checkpoints").iterdir())
    assert kept == sorted({"epoch_0003", f"epoch_{best['epoch']:04d}"})


def test_pruning_skips_the_protected_epoch(tmp_path):
    from trainer import checkpoints
    from trainer.gan import DCGAN

    gan = DCGAN(resolution=32, latent_dim=4, width=4)
    for epoch in (1, 2, 3, 4):
        checkpoints.save(tmp_path, epoch, gan, state={}, keep=1, protect=(2, None))
    assert [c.epoch for c in checkpoints.list_checkpoints(tmp_path)] == [2, 4]
    checkpoints.save(tmp_path, 5, gan, state={}, keep=1, protect=(4,))
    assert [c.epoch for c in checkpoints.list_checkpoints(tmp_path)] == [4, 5]


def test_resume_keeps_the_tracker_state_and_drops_rows_after_the_checkpoint(
    dataset, straight, tmp_path
):
    from trainer.train import train

    run = tmp_path / "resumed"
    train(make_config(dataset, run, epochs=2))
    result = train(make_config(dataset, run, epochs=3))
    assert result.start_epoch == 2
    got = json.loads((run / "quality.json").read_text())
    want = json.loads((straight / "quality.json").read_text())
    assert [r["epoch"] for r in got["history"]] == [1, 2, 3]
    for a, b in zip(got["history"], want["history"]):  # same weights, same measurements
        assert a["swd_avg"] == pytest.approx(b["swd_avg"], rel=1e-3, abs=1e-3)
        assert a["lab_w1"] == pytest.approx(b["lab_w1"], rel=1e-3, abs=1e-3)
    assert got["best"]["epoch"] == want["best"]["epoch"]
    # a crash after the quality row of epoch 4 was written, before its checkpoint: that stale
    # row, which claims to be the best, must not survive the resume (epoch 4 is not measured
    # again with --quality-every 5)
    got["history"].append({**got["history"][-1], "epoch": 4, "quality_score": -1.0})
    got["best"] = got["history"][-1]
    (run / "quality.json").write_text(json.dumps(got))
    train(make_config(dataset, run, epochs=5, quality_every=5))
    final = json.loads((run / "quality.json").read_text())
    assert [r["epoch"] for r in final["history"]] == [1, 2, 3, 5]
    assert final["best"]["epoch"] != 4 and final["best"]["quality_score"] >= 0
    kept = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert kept == sorted({"epoch_0005", f"epoch_{final['best']['epoch']:04d}"})


def test_export_best_exports_that_epoch_and_says_why(straight, tmp_path):
    from trainer.export_run import export_run

    best = json.loads((straight / "quality.json").read_text())["best"]
    out = export_run(straight, tmp_path / "model", "best")
    manifest = json.loads((out / "model.json").read_text())
    assert manifest["checkpoint"]["selected"] == "best"
    assert manifest["checkpoint"]["epoch"] == manifest["epochs"] == best["epoch"]
    assert "quality_score" in manifest["checkpoint"]["reason"]
    assert ModelManifest.load(out).to_dict() == manifest
    last = json.loads((export_run(straight, tmp_path / "last").joinpath("model.json")).read_text())
    assert last["checkpoint"] == {
        "selected": "last",
        "epoch": 3,
        "reason": "the last complete checkpoint",
    }
    with pytest.raises(UserError, match="epoch_0042: no such checkpoint"):
        export_run(straight, tmp_path / "x", "epoch_0042")
    with pytest.raises(UserError, match="expected last, best or epoch_XXXX"):
        export_run(straight, tmp_path / "x", "newest")


def test_export_best_without_quality_history_is_refused(straight, tmp_path):
    from trainer.export_run import export_run

    run = tmp_path / "run"
    shutil.copytree(straight, run)
    (run / "quality.json").unlink()
    with pytest.raises(UserError, match="no quality.json"):
        export_run(run, tmp_path / "model", "best")
