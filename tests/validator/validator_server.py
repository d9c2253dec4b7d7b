"""Helpers for tests that run the real validator gRPC server in-process on port 0:
:func:`server_config` (a data root and an output root under ``tmp_path``),
:func:`running_validator` (started server + open channel, stopped afterwards) and
:func:`tiny_feature_model` (a small real ONNX feature model, for tests about the service rather
than the features: no Xception export needed)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from validator.config import ValidatorServerConfig
from validator.server import SERVICE_NAME, create_server


def server_config(tmp_path: Path, **overrides) -> ValidatorServerConfig:
    """A config whose data root is ``tmp_path/data`` and output root ``tmp_path/reports``
    (both created), port 0, the feature cache under ``tmp_path``."""
    data, reports = tmp_path / "data", tmp_path / "reports"
    data.mkdir(exist_ok=True)
    reports.mkdir(exist_ok=True)
    config = ValidatorServerConfig(
        data_roots=(data,),
        output_root=reports,
        port=0,
        host="127.0.0.1",
        cache_dir=tmp_path / "cache",
        features_model=tmp_path / "not-loaded.onnx",
    )
    config = dataclasses.replace(config, **overrides)
    config.validate()
    return config


@contextmanager
def running_validator(
    config: ValidatorServerConfig, *, model=None
) -> Iterator[tuple[object, grpc.Channel]]:
    """(server handle, channel to it); health SERVING iff ``model`` is given."""
    handle, port = create_server(config, model=model)
    handle.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield handle, channel
    finally:
        channel.close()
        handle.stop(None)


def health(channel: grpc.Channel) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    return stub.Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=5).status


def tiny_feature_model(folder: Path, size: int = 71) -> Path:
    """A real ONNX model with the feature extractor's interface (input ``images`` [N, size,
    size, 3] in [-1, 1] -> per-channel mean and max, 6-d) and its sidecar, labelled
    ``weights=random`` like the test Xception."""
    import onnx
    from onnx import TensorProto, helper

    from common.feature_model import Sidecar
    from common.hashing import sha256_file

    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["images"], ["mean"], axes=[1, 2], keepdims=0),
            helper.make_node("ReduceMax", ["images"], ["max"], axes=[1, 2], keepdims=0),
            helper.make_node("Concat", ["mean", "max"], ["features"], axis=1),
        ],
        "tiny_features",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", size, size, 3])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 6])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tiny_features.onnx"
    onnx.save(model, path)
    Sidecar(
        weights="random",
        input_size=size,
        feature_dim=6,
        onnx_file=path.name,
        onnx_sha256=sha256_file(path),
    ).write(path)
    return path
