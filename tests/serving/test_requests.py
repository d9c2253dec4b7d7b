"""Invalid fields → INVALID_ARGUMENT naming the field; limits → RESOURCE_EXHAUSTED; no model →
UNAVAILABLE; GetModelInfo returns the manifest."""

from __future__ import annotations

import json

import grpc
import pytest

from protos.dermsynth.v1 import generator_pb2 as pb
from protos.dermsynth.v1 import generator_pb2_grpc as pb_grpc
from serving.model import load_model
from tests.serving.conftest import collect


def call_error(stub, **request) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        collect(stub, **request)
    return info.value


@pytest.mark.parametrize(
    "request_fields, field",
    [
        ({"count": 0}, "count"),
        ({"count": 2, "start_index": 2**64 - 1}, "start_index"),
        ({"count": 1, "encoding": 7}, "encoding"),
    ],
)
def test_invalid_fields(server, request_fields, field):
    _, stub = server
    err = call_error(stub, seed=1, **request_fields)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details().startswith(f"{field}:")


def test_last_representable_index_is_fine(server):
    _, stub = server
    assert list(collect(stub, seed=2**64 - 1, count=1, start_index=2**64 - 1)) == [2**64 - 1]


def test_limits(make_server):
    _, target = make_server(
        max_count=50, max_batch_size=8, default_batch_size=8, max_message_bytes=64 * 1024
    )
    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.GeneratorStub(channel)
        err = call_error(stub, seed=1, count=51)
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "count" in err.details()
        err = call_error(stub, seed=1, count=10, batch_size=9)
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "batch_size" in err.details()
        assert len(collect(stub, seed=1, count=50, batch_size=8)) == 50  # at the limits: fine
    # 32x32x3 = 3 KiB raw per image: a 64 KiB message holds 16 of them, not 100
    _, target = make_server(max_batch_size=1024, max_message_bytes=64 * 1024)
    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.GeneratorStub(channel)
        err = call_error(stub, seed=1, count=100, batch_size=100, encoding=pb.ENCODING_RAW_RGB8)
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "message size" in err.details()
        assert len(collect(stub, seed=1, count=100, batch_size=16)) == 100


def test_max_streams(make_server):
    _, target = make_server(max_streams=1, prefetch=1)
    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.GeneratorStub(channel)
        first = stub.Generate(pb.GenerateRequest(seed=1, count=10_000, batch_size=1))
        next(first)  # the stream holds the only permit
        err = call_error(stub, seed=2, count=1)
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "concurrent streams" in err.details()
        first.cancel()


def test_unavailable_until_a_model_is_loaded(make_server, tiny_model_dir):
    srv, target = make_server(load=False)
    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.GeneratorStub(channel)
        assert call_error(stub, seed=1, count=1).code() == grpc.StatusCode.UNAVAILABLE
        with pytest.raises(grpc.RpcError) as info:
            stub.GetModelInfo(pb.GetModelInfoRequest())
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        srv.set_model(load_model(tiny_model_dir))
        assert len(collect(stub, seed=1, count=3)) == 3


def test_model_info_is_the_manifest(server, tiny_model_dir):
    srv, stub = server
    info = stub.GetModelInfo(pb.GetModelInfoRequest())
    manifest = json.loads((tiny_model_dir / "model.json").read_text())
    assert info.model_sha256 == manifest["onnx_sha256"]
    assert (info.resolution, info.latent_dim, info.channels) == (32, 16, 3)
    assert info.latent_distribution == "standard_normal"
    assert info.training_data.fingerprint == manifest["training_data"]["fingerprint"]
    assert info.training_data.image_count == manifest["training_data"]["image_count"]
    assert dict(info.versions) == {k: str(v) for k, v in manifest["versions"].items()}
    assert info.created == manifest["created"] and info.opset == manifest["opset"]
    assert info.execution_provider == "CPUExecutionProvider"
    assert info.max_count == srv.config.max_count
