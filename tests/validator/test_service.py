"""The gRPC ``dermsynth.v1.Validator`` service with a real server on port 0: health turns
SERVING once the feature model is loaded, Validate streams progress then a verdict, bad fields
are INVALID_ARGUMENT naming the field, at most ``max_workers`` validations run at once (health
still answers), and a cancelled call stops its validation, its fetch from a real generation
server included, and frees its worker. Hostile requests: tests/security/."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2

from protos.dermsynth.v1 import validator_pb2 as pb
from protos.dermsynth.v1 import validator_pb2_grpc as pb_grpc
from tests.validator.validator_server import health, running_validator, server_config
from validator.features import FeatureModel

SERVING = health_pb2.HealthCheckResponse.SERVING


@pytest.fixture
def config(tmp_path, xception_onnx):
    return server_config(tmp_path, features_model=xception_onnx)


@pytest.fixture
def server(config):
    with running_validator(config) as (handle, channel):
        yield handle, channel


def _small(src: Path, dst: Path, n: int) -> str:
    dst.mkdir()
    for path in sorted(src.iterdir())[:n]:
        shutil.copy(path, dst)
    return str(dst)


def test_validate_streams_progress_then_verdict(server, config, split):
    handle, channel = server
    stub = pb_grpc.ValidatorStub(channel)
    data = config.data_roots[0]
    request = pb.ValidateRequest(
        real_dir=_small(split.train, data / "train", 40),
        holdout_dir=_small(split.holdout, data / "holdout", 20),
        synthetic_dir="syn",
        out_dir="out",  # relative: to the data root / the output root
        options=pb.ValidateOptions(checks=["dcr", "nndr", "c2st"], skip_tsne=True),
    )
    _small(split.other, data / "syn", 20)
    assert health(channel) == health_pb2.HealthCheckResponse.NOT_SERVING
    with pytest.raises(grpc.RpcError) as err:
        list(stub.Validate(request, timeout=60))
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    handle.load_model()
    assert health(channel) == SERVING

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
    assert summary.checks[2].status == "info"  # as the gate counted it (random weights)
    assert "RANDOM" in summary.gate_policy
    assert Path(summary.report_json) == (config.output_root / "out" / "report.json").resolve()
    assert Path(summary.report_html).is_file()

    loosened = pb.ValidateRequest()
    loosened.CopyFrom(request)
    loosened.options.allow_random_weights = True  # a caller may not loosen the server's gate
    with pytest.raises(grpc.RpcError) as err:
        list(stub.Validate(loosened, timeout=180))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert err.value.details().startswith("options.allow_random_weights")


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda r: r.ClearField("real_dir"), "real_dir"),
        (lambda r: r.ClearField("out_dir"), "out_dir"),
        (lambda r: r.ClearField("synthetic_dir"), "synthetic"),
        (
            lambda r: r.generator.CopyFrom(pb.GeneratorSource(target="localhost:1", count=0)),
            "generator.count",
        ),
        (lambda r: r.options.checks.append("astrology"), "options.checks"),
    ],
)
def test_bad_fields_are_invalid_argument(server, mutate, field):
    handle, channel = server
    request = pb.ValidateRequest(real_dir="real", synthetic_dir="syn", out_dir="out")
    mutate(request)
    with pytest.raises(grpc.RpcError) as err:
        list(pb_grpc.ValidatorStub(channel).Validate(request, timeout=30))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith(field)


@pytest.mark.parametrize(
    "flags, mutate, field",
    [
        ({"checks": "astrology"}, lambda r: r.options.checks.append("astrology"), "options.checks"),
        ({"seed": "-1"}, lambda r: setattr(r.options, "seed", -1), "options.seed"),
        (
            {"benign_malignant": "both"},
            lambda r: setattr(r.options, "benign_malignant", "both"),
            "options.benign_malignant",
        ),
        (
            {"synthetic": None, "from_server": "localhost:1", "count": "0"},
            lambda r: r.generator.CopyFrom(pb.GeneratorSource(target="localhost:1", count=0)),
            "generator.count",
        ),
        ({"real": None}, lambda r: r.ClearField("real_dir"), "real_dir"),
    ],
    ids=["unknown check", "negative seed", "filter value", "no count", "no real set"],
)
def test_the_service_and_the_cli_refuse_by_the_same_rule(tmp_path, flags, mutate, field):
    """One place validates a run: the request's values go through ValidateConfig as the
    command line's do, so the same rule refuses both, in the same words (the service names
    the request field, the command line the flag)."""
    from common.config import OptionError, resolve
    from validator.config import ValidateConfig

    cli = {"real": "r", "synthetic": "s", "out": "o", "features_model": "f.onnx", **flags}
    with pytest.raises(OptionError) as refused:
        resolve(ValidateConfig, cli, env={})
    request = pb.ValidateRequest(real_dir="real", synthetic_dir="syn", out_dir="out")
    mutate(request)
    with (
        running_validator(server_config(tmp_path)) as (_, channel),
        pytest.raises(grpc.RpcError) as err,
    ):
        list(pb_grpc.ValidatorStub(channel).Validate(request, timeout=30))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details() == f"{field}: {refused.value.problem}"


def test_missing_folder_is_invalid_argument(server, xception_onnx, config):
    handle, channel = server
    handle.set_model(FeatureModel(xception_onnx))
    request = pb.ValidateRequest(
        real_dir="absent", synthetic_dir=str(config.data_roots[0]), out_dir="out"
    )
    with pytest.raises(grpc.RpcError) as err:
        list(pb_grpc.ValidatorStub(channel).Validate(request, timeout=30))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "does not exist" in err.value.details()


def _wait_idle(handle, seconds: float = 30) -> float:
    """Seconds until no validation runs (the worker is free), failing after ``seconds``."""
    start = time.monotonic()
    while handle.servicer.running:
        assert time.monotonic() - start < seconds, "the validation ran on after its cancel"
        time.sleep(0.02)
    return time.monotonic() - start


def test_cancelled_call_stops_its_validation(server, xception_onnx, config, split):
    handle, channel = server
    handle.set_model(FeatureModel(xception_onnx))
    data = config.data_roots[0]
    request = pb.ValidateRequest(
        real_dir=_small(split.train, data / "train", 40),
        synthetic_dir=_small(split.other, data / "syn", 20),
        out_dir="out",
        options=pb.ValidateOptions(checks=["dcr", "c2st"], skip_tsne=True),
    )
    call = pb_grpc.ValidatorStub(channel).Validate(request, timeout=180)
    assert next(call).WhichOneof("event") == "progress"
    call.cancel()
    _wait_idle(handle, 60)
    assert not any(t.name == "validate" for t in threading.enumerate())
    assert not (config.output_root / "out" / "report.json").exists()


@pytest.fixture
def generation_server(tiny_model_dir):
    from serving.config import ServeConfig
    from serving.server import create_server

    config = ServeConfig(
        model=tiny_model_dir, host="127.0.0.1", port=0, metrics_port=None, grace_seconds=0
    )
    server, port = create_server(config)
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(0).wait(10)


LARGE = 20_000  # images asked for; a cancelled call must fetch only a few batches of them


@pytest.fixture
def fetching(tmp_path, split, xception_onnx, generation_server):
    """(server handle, channel, request) for a one-worker server whose request fetches LARGE
    images from the real generation server."""
    config = server_config(
        tmp_path, max_workers=1, max_count=LARGE, allowed_targets=(generation_server,)
    )
    real = _small(split.train, config.data_roots[0] / "train", 20)
    request = pb.ValidateRequest(
        real_dir=real,
        out_dir="fetched",
        generator=pb.GeneratorSource(target=generation_server, seed=1, count=LARGE),
        options=pb.ValidateOptions(checks=["dcr"], skip_tsne=True),
    )
    with running_validator(config, model=FeatureModel(xception_onnx)) as (handle, channel):
        yield handle, channel, request, config.output_root / "fetched" / "synthetic"


def _first_fetch_event(call):
    for event in call:
        if event.progress.stage == "fetch":
            return event
    raise AssertionError("no fetch progress")


def test_cancel_stops_the_fetch_from_a_generation_server(fetching):
    handle, channel, request, folder = fetching
    call = pb_grpc.ValidatorStub(channel).Validate(request, timeout=120)
    event = _first_fetch_event(call)
    assert event.progress.total == LARGE and 0 < event.progress.done < LARGE
    call.cancel()
    _wait_idle(handle)
    fetched = len(list(folder.glob("*.png")))
    time.sleep(0.5)  # nothing goes on in the background
    assert len(list(folder.glob("*.png"))) == fetched
    assert fetched < LARGE // 10, f"{fetched} images fetched after the cancel"


def test_max_workers_is_enforced_and_health_still_answers(fetching, split):
    handle, channel, request, folder = fetching
    stub = pb_grpc.ValidatorStub(channel)
    busy = stub.Validate(request, timeout=120)
    _first_fetch_event(busy)
    other = pb.ValidateRequest(
        real_dir=request.real_dir, synthetic_dir=request.real_dir, out_dir="other"
    )
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as err:
        list(stub.Validate(other, timeout=30))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert time.monotonic() - started < 5
    assert all(health(channel) == SERVING for _ in range(5))
    busy.cancel()
    _wait_idle(handle)
    # the worker is free again: the next call runs (and fails on its missing folder)
    other.real_dir = "absent"
    with pytest.raises(grpc.RpcError) as err:
        list(stub.Validate(other, timeout=30))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_internal_errors_carry_an_id_not_internals(tmp_path, xception_onnx, split, caplog):
    """A server-side fault (here: the feature cache path is a file) is INTERNAL with a short
    id to find the traceback in the server log; no exception text, path or address leaks."""
    blocker = tmp_path / "cache-is-a-file"
    blocker.write_text("x")
    config = server_config(tmp_path, cache_dir=blocker)
    real = _small(split.train, config.data_roots[0] / "train", 10)
    request = pb.ValidateRequest(
        real_dir=real,
        synthetic_dir=real,
        out_dir="out",
        options=pb.ValidateOptions(checks=["dcr"], skip_tsne=True),
    )
    with running_validator(config, model=FeatureModel(xception_onnx)) as (handle, channel):
        with pytest.raises(grpc.RpcError) as err:
            list(pb_grpc.ValidatorStub(channel).Validate(request, timeout=60))
    details = err.value.details()
    assert err.value.code() == grpc.StatusCode.INTERNAL
    assert str(tmp_path) not in details and "Error" not in details and "0x" not in details
    error_id = details.split("(id ")[1].split(")")[0]
    logged = [r for r in caplog.records if error_id in r.getMessage()]
    assert logged and logged[0].exc_info is not None
