"""The gRPC ``dermsynth.v1.Validator`` service with a real server on port 0: health turns
SERVING once the feature model is loaded, Validate streams progress then a verdict, bad fields
are INVALID_ARGUMENT naming the field."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from protos.dermsynth.v1 import validator_pb2 as pb
from protos.dermsynth.v1 import validator_pb2_grpc as pb_grpc
from validator.config import ValidateConfig
from validator.features import FeatureModel
from validator.server import SERVICE_NAME, create_server


@pytest.fixture
def server(xception_onnx, tmp_path):
    config = ValidateConfig(port=0, features_model=xception_onnx, cache_dir=tmp_path / "cache",
                            progress=False)
    handle, port = create_server(config)
    handle.start()
    channel = grpc.insecure_channel(f"localhost:{port}")
    yield handle, channel
    channel.close()
    handle.stop(None)


def _small(src: Path, dst: Path, n: int) -> str:
    dst.mkdir()
    for path in sorted(src.iterdir())[:n]:
        shutil.copy(path, dst)
    return str(dst)


def _health(channel) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    return stub.Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=5).status


def test_validate_streams_progress_then_verdict(server, split, tmp_path):
    handle, channel = server
    stub = pb_grpc.ValidatorStub(channel)
    request = pb.ValidateRequest(
        real_dir=_small(split.train, tmp_path / "train", 40),
        holdout_dir=_small(split.holdout, tmp_path / "holdout", 20),
        synthetic_dir=_small(split.other, tmp_path / "syn", 20), out_dir=str(tmp_path / "out"),
        options=pb.ValidateOptions(checks=["dcr", "nndr", "c2st"], skip_tsne=True))
    assert _health(channel) == health_pb2.HealthCheckResponse.NOT_SERVING
    with pytest.raises(grpc.RpcError) as err:
        list(stub.Validate(request, timeout=60))
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    handle.load_model()
    assert _health(channel) == health_pb2.HealthCheckResponse.SERVING

    events = list(stub.Validate(request, timeout=180))
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds[-1] == "summary" and kinds.count("summary") == 1
    stages = {e.progress.stage for e in events[:-1]}
    assert {"inputs", "features:real", "features:synthetic", "checks", "report"} <= stages
    summary = events[-1].summary
    assert summary.verdict == "FAIL"  # random weights, not allowed
    assert summary.random_weights and "RANDOM" in summary.feature_model
    assert [c.name for c in summary.checks] == ["dcr", "nndr", "c2st"]
    assert "auc" in summary.checks[2].numbers
    assert Path(summary.report_json).is_file() and Path(summary.report_html).is_file()

    allowed = pb.ValidateRequest()
    allowed.CopyFrom(request)
    allowed.options.allow_random_weights = True
    allowed.out_dir = str(tmp_path / "out2")
    summary = list(stub.Validate(allowed, timeout=180))[-1].summary
    assert any("RANDOM" in w for w in summary.warnings)
    assert not any("RANDOM" in r for r in summary.reasons)


@pytest.mark.parametrize("mutate, field", [
    (lambda r: r.ClearField("real_dir"), "real_dir"),
    (lambda r: r.ClearField("out_dir"), "out_dir"),
    (lambda r: r.ClearField("synthetic_dir"), "synthetic"),
    (lambda r: r.generator.CopyFrom(pb.GeneratorSource(target="localhost:1", count=0)),
     "generator.count"),
    (lambda r: r.options.checks.append("astrology"), "options.checks"),
])
def test_bad_fields_are_invalid_argument(server, xception_onnx, mutate, field):
    handle, channel = server
    handle.set_model(FeatureModel(xception_onnx))
    request = pb.ValidateRequest(real_dir="/data/real", synthetic_dir="/data/syn",
                                 out_dir="/tmp/out")
    mutate(request)
    with pytest.raises(grpc.RpcError) as err:
        list(pb_grpc.ValidatorStub(channel).Validate(request, timeout=30))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith(field)


def test_missing_folder_is_invalid_argument(server, xception_onnx, tmp_path):
    handle, channel = server
    handle.set_model(FeatureModel(xception_onnx))
    request = pb.ValidateRequest(real_dir=str(tmp_path / "absent"), synthetic_dir=str(tmp_path),
                                 out_dir=str(tmp_path / "out"))
    with pytest.raises(grpc.RpcError) as err:
        list(pb_grpc.ValidatorStub(channel).Validate(request, timeout=30))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "does not exist" in err.value.details()


def test_cancelled_call_stops_its_validation(server, xception_onnx, split, tmp_path):
    handle, channel = server
    handle.set_model(FeatureModel(xception_onnx))
    out = tmp_path / "out"
    request = pb.ValidateRequest(
        real_dir=_small(split.train, tmp_path / "train", 40),
        synthetic_dir=_small(split.other, tmp_path / "syn", 20), out_dir=str(out),
        options=pb.ValidateOptions(checks=["dcr", "c2st"], skip_tsne=True))
    call = pb_grpc.ValidatorStub(channel).Validate(request, timeout=180)
    assert next(call).WhichOneof("event") == "progress"
    call.cancel()
    deadline = time.monotonic() + 60
    while any(t.name == "validate" for t in threading.enumerate()):
        assert time.monotonic() < deadline, "the validation ran on after its call was cancelled"
        time.sleep(0.05)
    assert not (out / "report.json").exists()
