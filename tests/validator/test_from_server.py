"""``--from-server``: the validator pulls a synthetic set from a real generation server (the
real ``serving`` server on port 0 over the real tiny exported generator) through
``serving.client.fetch`` and validates it; the generator's manifest lands in the report."""

from __future__ import annotations

import json
import shutil

import pytest

from validator.config import ValidateConfig
from validator.pipeline import run_validation


@pytest.fixture
def generation_server(tiny_model_dir):
    from serving.config import ServeConfig
    from serving.server import create_server
    config = ServeConfig(model=tiny_model_dir, host="127.0.0.1", port=0, metrics_port=None,
                         grace_seconds=0)
    server, port = create_server(config)
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(0).wait(10)


@pytest.mark.slow
def test_validate_from_server(generation_server, tiny_model_dir, split, xception_onnx, tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    for path in sorted(split.train.iterdir())[:40]:
        shutil.copy(path, real)
    config = ValidateConfig(real=real, from_server=generation_server, seed=3, count=24,
                            features_model=xception_onnx, out=tmp_path / "report",
                            checks=("dcr", "nndr", "c2st"), cache_dir=tmp_path / "cache",
                            tsne=False, progress=False, allow_random_weights=True)
    outcome = run_validation(config)
    fetched = sorted((tmp_path / "report" / "synthetic").glob("*.png"))
    assert len(fetched) == 24 and fetched[0].name == "00000000.png"
    report = outcome.report
    assert report["inputs"]["synthetic"]["source"] == generation_server
    assert report["inputs"]["synthetic"]["count"] == 24
    assert report["inputs"]["synthetic"]["filters"] == {"seed": 3, "count": 24}
    model = json.loads((tiny_model_dir / "model.json").read_text())
    assert report["model_manifest"]["model_sha256"] == model["onnx_sha256"]
    # an untrained generator draws its own cluster: the two-sample test sees it
    c2st = next(r for r in outcome.results if r.name == "c2st")
    assert c2st.numbers["auc"] > 0.9 and not c2st.passed
    assert outcome.verdict.verdict == "FAIL"
    # a re-run resumes the fetch (nothing new) and reads features from the cache
    again = run_validation(config.replace(out=tmp_path / "report"))
    assert again.report["inputs"]["synthetic"]["features"] == {"computed": 0, "cached": 24}


def test_unreachable_server_is_bad_input_not_a_fail(split, xception_onnx, tmp_path):
    """The client's exit 1 (server refused) must not leak out as the gate's FAIL code."""
    from common.errors import UserError
    from serving.client import FetchFailed

    config = ValidateConfig(real=split.train, from_server="127.0.0.1:1", seed=3, count=4,
                            features_model=xception_onnx, out=tmp_path / "report",
                            checks=("dcr",), cache_dir=tmp_path / "cache", tsne=False,
                            progress=False, allow_random_weights=True)
    with pytest.raises(UserError, match="--from-server 127.0.0.1:1") as info:
        run_validation(config)
    assert not isinstance(info.value, FetchFailed) and info.value.exit_code == 2
    assert not (tmp_path / "report" / "report.json").exists()
