"""``python -m validator validate`` end to end in a subprocess (real images, the real exported
ONNX Xception): report.json, report.html, plots, checks.jsonl, config.json; the random-weights
label everywhere; the feature cache on a re-run; TensorFlow never imported."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# TensorFlow, Keras and tf2onnx made unimportable, as in the serving image that has none of them
RUNNER = (
    "import sys; sys.modules.update(tensorflow=None, keras=None, tf2onnx=None); "
    "from common.cli import run_cli; from validator.cli import main; "
    "rc = run_cli(main, sys.argv[1:], prog='validator'); "
    "print('TENSORFLOW_IMPORTED=' + str(sys.modules.get('tensorflow') is not None)); "
    "sys.exit(rc)"
)


def _subset(src: Path, dst: Path, n: int, extra: list[Path] = ()) -> Path:
    dst.mkdir(parents=True)
    for path in sorted(src.iterdir())[:n] + list(extra):
        shutil.copy(path, dst)
    return dst


def _validate(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", RUNNER, "validate", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_validate_end_to_end_without_tensorflow(split, xception_onnx, tmp_path):
    sources = tmp_path / "sets"
    train = _subset(split.train, sources / "train", 60)
    holdout = _subset(split.holdout, sources / "holdout", 30)
    planted = sorted(
        p
        for p in split.planted.iterdir()
        if p.name.split("_")[1] in ("000", "001")
        and (train / split.planted_sources[p.name].name).exists()
    )
    assert len(planted) == 10
    dirty = _subset(split.other, sources / "dirty", 30, planted)
    cache = tmp_path / "cache"
    common = [
        "--real",
        str(train),
        "--holdout",
        str(holdout),
        "--features-model",
        str(xception_onnx),
        "--cache-dir",
        str(cache),
        "--no-progress",
    ]

    out = tmp_path / "report1"
    proc = _validate(common + ["--synthetic", str(dirty), "--out", str(out)])
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "TENSORFLOW_IMPORTED=False" in proc.stdout
    assert "RANDOM-WEIGHT" in proc.stdout and "verdict: FAIL" in proc.stdout
    report = json.loads((out / "report.json").read_text())
    assert report["schema_version"] == 1 and report["verdict"] == "FAIL"
    assert report["feature_model"]["weights"] == "random"
    assert report["feature_model"]["random_weights"] is True
    assert any("RANDOM-WEIGHT" in w for w in report["warnings"])  # the weight-free checks decide
    assert any(r.startswith("dcr") for r in report["reasons"])
    assert report["inputs"]["real"]["count"] == 60
    assert report["inputs"]["synthetic"]["count"] == 40
    assert report["inputs"]["real"]["features"] == {"computed": 60, "cached": 0}
    assert len(report["inputs"]["real"]["fingerprint"]) == 64
    checks = {c["name"]: c for c in report["checks"]}
    assert set(checks) == {
        "dcr",
        "nndr",
        "data_copying",
        "holdout_share",
        "fid",
        "kid",
        "prdc",
        "c2st",
        "swd",
        "colour",
        "pixel_c2st",
    }
    assert {checks[n]["status"] for n in ("fid", "kid", "prdc", "c2st")} == {"info"}
    flagged = {Path(f["synthetic"]).name for f in checks["dcr"]["flagged"]}
    assert {p.name for p in planted} <= flagged
    html = (out / "report.html").read_text()
    assert "RANDOM-WEIGHT" in html and html.count("data:image/png;base64,") >= 4 + 10 * 4
    assert "<img" in html and 'src="plots/' not in html  # self-contained
    for name in ("pca_scatter", "pca_thumbnails", "tsne_scatter", "tsne_thumbnails"):
        assert (out / "plots" / f"{name}.png").stat().st_size > 1000
        # what each view shows is in report.json and the HTML, not only in the plot's title
        sample = report["view_samples"][name]
        assert sample["of"] == {"real": 60, "holdout": 30, "synthetic": 40}
        assert sample["shown"] == sample["of"] and not sample["subsampled"]
    assert "every image: 60 of 60 real, 30 of 30 holdout, 40 of 40 synthetic" in html
    lines = [json.loads(line) for line in (out / "checks.jsonl").read_text().splitlines()]
    assert [line["name"] for line in lines] == [c["name"] for c in report["checks"]]
    assert {line["run_id"] for line in lines} == {report["run_id"]}
    assert all(line["seconds"] >= 0 for line in lines)
    assert json.loads((out / "config.json").read_text())["real"] == str(train)

    clean = _subset(split.other, sources / "clean", 40)
    thresholds = tmp_path / "thresholds.toml"
    thresholds.write_text("dcr_max_flagged_fraction = 0.1\n")
    out2 = tmp_path / "report2"
    proc = _validate(
        common
        + [
            "--synthetic",
            str(clean),
            "--out",
            str(out2),
            "--allow-random-weights",
            "--thresholds",
            str(thresholds),
            "--no-tsne",
        ]
    )
    report2 = json.loads((out2 / "report.json").read_text())
    assert proc.returncode == 0, (report2["reasons"], proc.stderr[-2000:])
    assert report2["verdict"] == "PASS" and report2["warnings"]
    assert report2["inputs"]["real"]["features"] == {"computed": 0, "cached": 60}
    assert report2["inputs"]["holdout"]["features"] == {"computed": 0, "cached": 30}
    assert report2["thresholds"]["dcr_max_flagged_fraction"] == 0.1
    assert not (out2 / "plots" / "tsne_scatter.png").exists()
    assert "RANDOM-WEIGHT" in (out2 / "report.html").read_text()


def test_help_lists_checks_from_the_registry():
    proc = subprocess.run(
        [sys.executable, "-m", "validator", "validate", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0
    for name in ("dcr", "nndr", "data_copying", "fid", "kid", "prdc", "c2st", "examples:"):
        assert name in proc.stdout


def test_export_xception_points_to_the_trainer(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "validator",
            "export-xception",
            "--weights",
            "random",
            "--size",
            "71",
            "--out",
            str(tmp_path / "x.onnx"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "python -m trainer export-xception" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "x.onnx").exists()


SERVER_ONLY = (
    "--data-root",
    "--output-root",
    "--allowed-target",
    "--max-workers",
    "--max-count",
    "--host",
    "--port",
    "--token",
    "--tls-cert",
    "--tls-key",
    "--grace-seconds",
    "--drain-announce-seconds",
    "--stream-idle-seconds",
)


def _flags(help_text: str) -> set[str]:
    """The flags a --help lists (its options, not the shared examples below them)."""
    options = help_text.split("\nexamples:")[0]
    return set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", options))


def test_options_read_as_they_should():
    proc = subprocess.run(
        [sys.executable, "-m", "validator", "validate", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    validate = _flags(proc.stdout)
    assert "--no-cache" in validate and "--no-no-cache" not in validate
    assert "--generator-token" in validate and not validate & set(SERVER_ONLY)
    proc = subprocess.run(
        [sys.executable, "-m", "validator", "serve", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    serve = _flags(proc.stdout)
    assert set(SERVER_ONLY) <= serve and "--progress" not in serve
    # the run settings are the same options, under the same title, in both
    assert proc.stdout.count("run settings (serve: applied to every request):") == 1
    settings = {
        "--features-model",
        "--checks",
        "--thresholds",
        "--allow-random-weights",
        "--generator-token",
        "--generator-tls-ca",
        "--cache-dir",
        "--cache",
        "--no-cache",
        "--batch-size",
        "--pixel-size",
        "--tsne",
        "--threads",
        "--blas-threads",
    }
    assert settings <= validate and settings <= serve


def test_a_run_config_is_validated_however_it_is_made(tmp_path):
    """resolve() and replace() run the same rules: ranges, known checks, required inputs."""
    from common.config import ConfigError, resolve
    from validator.config import ENV_PREFIX, ValidateConfig

    flags = {
        "real": str(tmp_path),
        "synthetic": str(tmp_path),
        "out": str(tmp_path / "o"),
        "features_model": "f.onnx",
    }
    config = resolve(ValidateConfig, flags, env={}, prefix=ENV_PREFIX)
    for change, message in (
        ({"batch_size": 0}, "--batch-size: 0 is below the minimum 1"),
        ({"checks": ("dcr", "astrology")}, "--checks: unknown astrology"),
        ({"checks": ()}, "--checks: unknown (none given)"),
        ({"synthetic": None}, "give exactly one of --synthetic"),
        ({"generator_token": "t0k\n"}, "--generator-token: the token"),
    ):
        with pytest.raises(ConfigError, match=re.escape(message)):
            config.replace(**change)
    with pytest.raises(ConfigError, match="--pixel-size"):
        resolve(ValidateConfig, flags, env={f"{ENV_PREFIX}PIXEL_SIZE": "8"}, prefix=ENV_PREFIX)
    assert config.replace(batch_size=8).batch_size == 8


def test_a_boolean_option_is_named_for_what_it_turns_on():
    """``no_x: bool`` would read as --no-x / --no-no-x: refused where it is declared."""
    import argparse
    import dataclasses

    from common.config import add_arguments

    @dataclasses.dataclass(frozen=True)
    class Bad:
        no_cache: bool = False

    with pytest.raises(TypeError, match="cache: bool = True"):
        add_arguments(argparse.ArgumentParser(), Bad)


def _cli(args, env=None, timeout=60):
    import os

    env = {**{k: v for k, v in os.environ.items() if not k.startswith("DERMSYNTH_")}, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "validator", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_serve_needs_its_roots(tmp_path):
    proc = _cli(["serve", "--features-model", str(tmp_path / "x.onnx"), "--port", "0"])
    assert proc.returncode == 2 and "--data-root is required" in proc.stderr
    proc = _cli(
        [
            "serve",
            "--features-model",
            str(tmp_path / "x.onnx"),
            "--port",
            "0",
            "--data-root",
            str(tmp_path),
        ]
    )
    assert proc.returncode == 2 and "--output-root is required" in proc.stderr
    proc = _cli(["serve", "--data-root", str(tmp_path / "absent"), "--output-root", str(tmp_path)])
    assert proc.returncode == 2 and "not a directory" in proc.stderr
    proc = _cli(
        ["serve", "--data-root", str(tmp_path), "--output-root", str(tmp_path)],
        env={"DERMSYNTH_VALIDATOR_SERVE_TOKEN": "abc\n"},
    )
    assert proc.returncode == 2 and "--token" in proc.stderr


def test_validate_refuses_to_write_over_another_artifact(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text('{"trainer": 1}')
    proc = _cli(
        [
            "validate",
            "--real",
            str(tmp_path),
            "--synthetic",
            str(tmp_path),
            "--features-model",
            str(tmp_path / "x.onnx"),
            "--out",
            str(run),
        ]
    )
    assert proc.returncode == 2 and "not a validator report folder" in proc.stderr
    assert sorted(p.name for p in run.iterdir()) == ["config.json"]
    assert (run / "config.json").read_text() == '{"trainer": 1}'


def test_validate_refuses_a_token_with_a_newline(tmp_path):
    proc = _cli(
        [
            "validate",
            "--real",
            str(tmp_path),
            "--from-server",
            "127.0.0.1:1",
            "--count",
            "1",
            "--features-model",
            str(tmp_path / "x.onnx"),
            "--out",
            str(tmp_path / "out"),
        ],
        env={"DERMSYNTH_CLIENT_TOKEN": "t0k\n"},
    )
    assert proc.returncode == 2 and "--generator-token" in proc.stderr
    assert "t0k" not in proc.stderr
