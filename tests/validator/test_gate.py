"""The gate fails closed: random weights without weight-free evidence or permission, a check
that raises (even a report-only one), missing inputs (exit 2), unknown threshold keys; with
random weights the feature-space quality checks are "info" and the weight-free ones decide."""

from __future__ import annotations

import json

import pytest

from common.cli import run_cli
from common.errors import ConfigError
from tests.validator.conftest import make_inputs
from validator import checks as registry
from validator.checks import CheckResult, run_check
from validator.cli import main
from validator.gate import decide
from validator.thresholds import load_thresholds


def _ok(name="dcr", kind="privacy", passed=True, **thresholds):
    return CheckResult(name=name, kind=kind, passed=passed, thresholds=thresholds)


def test_random_weights_without_weight_free_checks_fail_unless_allowed():
    """Random weights: nothing but the weight-free checks can judge quality. Without one of
    them the gate refuses, unless --allow-random-weights accepts a verdict on privacy alone."""
    refused = decide([_ok()], random_weights=True, allow_random_weights=False)
    assert refused.decision == "FAIL" and "RANDOM-WEIGHT" in refused.reasons[0]
    allowed = decide([_ok()], random_weights=True, allow_random_weights=True)
    assert allowed.decision == "PASS" and "RANDOM-WEIGHT" in allowed.warnings[0]
    assert decide([_ok()], random_weights=False, allow_random_weights=False).passed


def test_random_weights_feature_checks_are_info_and_weight_free_checks_decide():
    fid = _ok("fid", "quality", passed=False, fid_max=10.0)  # would fail with ImageNet weights
    c2st = _ok("c2st", "quality", passed=False, c2st_max_auc=0.9)
    swd = _ok("swd", "quality", swd_max_z=6.0)
    verdict = decide([_ok(), fid, c2st, swd], random_weights=True, allow_random_weights=False)
    assert verdict.passed, verdict.reasons
    assert verdict.statuses == {"dcr": "pass", "fid": "info", "c2st": "info", "swd": "pass"}
    assert "RANDOM" in verdict.policy and any("fid, c2st" in w for w in verdict.warnings)
    bad_swd = _ok("swd", "quality", passed=False, swd_max_z=6.0)
    verdict = decide([_ok(), fid, bad_swd], random_weights=True, allow_random_weights=True)
    assert not verdict.passed and [r.split(":")[0] for r in verdict.reasons] == ["swd"]
    assert verdict.status("swd") == "fail" and verdict.status("fid") == "info"
    # pretrained weights: the feature-space checks decide; a check without a limit informs
    verdict = decide(
        [_ok(), fid, c2st, _ok("kid", "quality", kid_max=None)],
        random_weights=False,
        allow_random_weights=False,
    )
    assert sorted(r.split(":")[0] for r in verdict.reasons) == ["c2st", "fid"]
    assert verdict.status("kid") == "info" and verdict.status("fid") == "fail"


def test_failed_check_and_missing_dcr_fail():
    bad = CheckResult(name="c2st", kind="quality", passed=False, note="AUC 0.99")
    verdict = decide([_ok(), bad], random_weights=False, allow_random_weights=False)
    assert verdict.decision == "FAIL" and "c2st" in verdict.reasons[0]
    verdict = decide([_ok("fid")], random_weights=False, allow_random_weights=False)
    assert verdict.decision == "FAIL" and "dcr" in verdict.reasons[0]


def test_a_check_that_raises_fails_the_gate_with_its_error(encoded, monkeypatch, tmp_path):
    def boom(inputs):
        raise RuntimeError("feature matrix exploded")

    registry._load_all()  # imports every check module: each registers its function
    entry = registry._REGISTRY["fid"]
    monkeypatch.setitem(registry._REGISTRY, "fid", registry._Entry(entry.kind, boom, entry.doc))
    log = tmp_path / "checks.jsonl"
    result = run_check("fid", make_inputs(encoded, ["other"]), log)
    assert not result.passed and "feature matrix exploded" in result.error
    assert json.loads(log.read_text().splitlines()[-1])["error"] == result.error
    verdict = decide([_ok(), result], random_weights=False, allow_random_weights=True)
    assert verdict.decision == "FAIL"
    assert any("feature matrix exploded" in r for r in verdict.reasons)


def test_thresholds_file_refuses_unknown_keys_and_accepts_toml(tmp_path):
    bad = tmp_path / "t.json"
    bad.write_text(json.dumps({"dcr_quantile": 0.02, "fid_limit": 10}))
    with pytest.raises(ConfigError, match="fid_limit"):
        load_thresholds(bad)
    good = tmp_path / "t.toml"
    good.write_text("dcr_quantile = 0.02\nfid_max = 50.0\nprecision_min = 'none'\n")
    t = load_thresholds(good)
    assert (t.dcr_quantile, t.fid_max, t.precision_min) == (0.02, 50.0, None)
    nulls = tmp_path / "n.json"
    nulls.write_text(json.dumps({"coverage_min": None}))
    assert load_thresholds(nulls).coverage_min is None


def test_example_thresholds_file_is_the_defaults():
    from pathlib import Path

    from validator.thresholds import Thresholds

    example = Path(__file__).resolve().parents[2] / "validator" / "thresholds.example.toml"
    assert load_thresholds(example) == Thresholds()


def _cli(args, capsys) -> tuple[int, str]:
    code = run_cli(main, args, prog="python -m validator")
    return code, capsys.readouterr().err


def test_missing_inputs_exit_2(split, xception_onnx, tmp_path, capsys):
    base = [
        "validate",
        "--features-model",
        str(xception_onnx),
        "--out",
        str(tmp_path / "r"),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--no-progress",
    ]
    code, err = _cli(
        base + ["--real", str(tmp_path / "nope"), "--synthetic", str(split.other)], capsys
    )
    assert code == 2 and "does not exist" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    code, err = _cli(base + ["--real", str(split.train), "--synthetic", str(empty)], capsys)
    assert code == 2 and "no usable images" in err
    code, err = _cli(base + ["--real", str(split.train)], capsys)
    assert code == 2 and "--synthetic" in err
    code, err = _cli(
        [
            "validate",
            "--real",
            str(split.train),
            "--synthetic",
            str(split.other),
            "--features-model",
            str(tmp_path / "x.onnx"),
            "--out",
            str(tmp_path),
        ],
        capsys,
    )
    assert code == 2 and "x.onnx does not exist" in err
    code, err = _cli(
        base
        + [
            "--real",
            str(split.train),
            "--synthetic",
            str(split.other),
            "--checks",
            "dcr,telepathy",
        ],
        capsys,
    )
    assert code == 2 and "telepathy" in err
    thresholds = tmp_path / "t.json"
    thresholds.write_text('{"dcr_quantil": 0.1}')
    code, err = _cli(
        base
        + [
            "--real",
            str(split.train),
            "--synthetic",
            str(split.other),
            "--thresholds",
            str(thresholds),
        ],
        capsys,
    )
    assert code == 2 and "dcr_quantil" in err
    assert not (tmp_path / "r" / "report.json").exists()
