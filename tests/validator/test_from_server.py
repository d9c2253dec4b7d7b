"""``--from-server``: the validator pulls a synthetic set from a real generation server (the
real ``serving`` server on port 0 over the real tiny exported generator) through
``serving.client.fetch`` and validates it; the generator's manifest lands in the report."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from validator.config import ValidateConfig
from validator.pipeline import run_validation

TOKEN = "gen-t0ken-for-tests"


def _generation_server(model_dir, **overrides):
    from serving.config import ServeConfig
    from serving.server import create_server

    config = ServeConfig(
        model=model_dir, host="127.0.0.1", port=0, metrics_port=None, grace_seconds=0, **overrides
    )
    server, port = create_server(config)
    server.start()
    return server, f"127.0.0.1:{port}"


@pytest.fixture
def generation_server(tiny_model_dir):
    server, target = _generation_server(tiny_model_dir)
    yield target
    server.stop(0).wait(10)


@pytest.fixture
def token_server(tiny_model_dir):
    server, target = _generation_server(tiny_model_dir, token=TOKEN)
    yield target
    server.stop(0).wait(10)


@pytest.mark.slow
def test_validate_from_server(generation_server, tiny_model_dir, split, xception_onnx, tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    for path in sorted(split.train.iterdir())[:40]:
        shutil.copy(path, real)
    config = ValidateConfig(
        real=real,
        from_server=generation_server,
        seed=3,
        count=24,
        features_model=xception_onnx,
        out=tmp_path / "report",
        checks=("dcr", "nndr", "c2st", "pixel_c2st"),
        cache_dir=tmp_path / "cache",
        tsne=False,
        progress=False,
        allow_random_weights=True,
    )
    outcome = run_validation(config)
    fetched = sorted((tmp_path / "report" / "synthetic").glob("*.png"))
    assert len(fetched) == 24 and fetched[0].name == "00000000.png"
    report = outcome.report
    assert report["inputs"]["synthetic"]["source"] == generation_server
    assert report["inputs"]["synthetic"]["count"] == 24
    assert report["inputs"]["synthetic"]["filters"] == {"seed": 3, "count": 24}
    model = json.loads((tiny_model_dir / "model.json").read_text())
    assert report["model_manifest"]["model_sha256"] == model["onnx_sha256"]
    assert model["onnx_sha256"] in outcome.report_html.read_text()  # the HTML names the model
    # an untrained generator draws its own cluster: the two-sample test sees it
    c2st = next(r for r in outcome.results if r.name == "c2st")
    assert c2st.numbers["auc"] > 0.9 and not c2st.passed
    # with random weights c2st only informs; the weight-free two-sample test decides
    assert outcome.verdict.status("c2st") == "info"
    assert outcome.verdict.status("pixel_c2st") == "fail"
    assert outcome.verdict.decision == "FAIL"
    # a re-run resumes the fetch (nothing new) and reads features from the cache
    again = run_validation(config.replace(out=tmp_path / "report"))
    assert again.report["inputs"]["synthetic"]["features"] == {"computed": 0, "cached": 24}


def test_unreachable_server_is_bad_input_not_a_fail(split, xception_onnx, tmp_path):
    """The client's exit 1 (server refused) must not leak out as the gate's FAIL code."""
    from common.errors import UserError
    from serving.client import FetchFailed

    config = ValidateConfig(
        real=split.train,
        from_server="127.0.0.1:1",
        seed=3,
        count=4,
        features_model=xception_onnx,
        out=tmp_path / "report",
        checks=("dcr",),
        cache_dir=tmp_path / "cache",
        tsne=False,
        progress=False,
        allow_random_weights=True,
    )
    with pytest.raises(UserError, match="--from-server 127.0.0.1:1") as info:
        run_validation(config)
    assert not isinstance(info.value, FetchFailed) and info.value.exit_code == 2
    assert not (tmp_path / "report" / "report.json").exists()


def _real(split, tmp_path, n=20) -> Path:
    real = tmp_path / "real"
    real.mkdir()
    for path in sorted(split.train.iterdir())[:n]:
        shutil.copy(path, real)
    return real


def test_from_server_sends_the_token_and_never_saves_it(
    token_server, split, xception_onnx, tmp_path
):
    from common.errors import UserError

    config = ValidateConfig(
        real=_real(split, tmp_path),
        from_server=token_server,
        seed=3,
        count=8,
        features_model=xception_onnx,
        out=tmp_path / "report",
        checks=("dcr",),
        cache_dir=tmp_path / "cache",
        tsne=False,
        progress=False,
        allow_random_weights=True,
    )
    with pytest.raises(UserError, match="UNAUTHENTICATED"):
        run_validation(config)
    outcome = run_validation(config.replace(generator_token=TOKEN))
    assert outcome.report["inputs"]["synthetic"]["count"] == 8
    assert TOKEN not in repr(config.replace(generator_token=TOKEN))
    for path in (tmp_path / "report").rglob("*"):
        if path.is_file() and path.suffix in (".json", ".jsonl", ".html"):
            assert TOKEN not in path.read_text(), path
    assert json.loads((tmp_path / "report" / "config.json").read_text())["generator_token"] is None


ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("how", ["DERMSYNTH_CLIENT_TOKEN", "--generator-token"])
def test_cli_from_server_takes_a_token(token_server, split, xception_onnx, tmp_path, how):
    """``validate --from-server`` authenticates with $DERMSYNTH_CLIENT_TOKEN (the fetch
    client's variable) or --generator-token; the token lands in no file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DERMSYNTH_")}
    args = [
        sys.executable,
        "-m",
        "validator",
        "validate",
        "--real",
        str(_real(split, tmp_path, 12)),
        "--from-server",
        token_server,
        "--seed",
        "1",
        "--count",
        "6",
        "--features-model",
        str(xception_onnx),
        "--out",
        str(tmp_path / "out"),
        "--checks",
        "dcr",
        "--no-tsne",
        "--no-progress",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--allow-random-weights",
    ]
    if how == "--generator-token":
        args += ["--generator-token", TOKEN]
    else:
        env[how] = TOKEN
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    assert "verdict:" in proc.stdout
    assert len(list((tmp_path / "out" / "synthetic").glob("*.png"))) == 6
    saved = (tmp_path / "out" / "config.json").read_text()
    assert TOKEN not in saved
