"""Fixtures for the serving tests: real in-process gRPC servers on port 0 over the real
``tiny_model_dir`` ONNX generator (tests/conftest.py), and stubs to talk to them."""

from __future__ import annotations

import dataclasses

import grpc
import pytest

from protos.dermsynth.v1 import generator_pb2 as pb
from protos.dermsynth.v1 import generator_pb2_grpc as pb_grpc
from serving.config import ServeConfig
from serving.server import create_server


@pytest.fixture
def make_server(tiny_model_dir):
    """``make_server(**config_overrides, load=True)`` → (GeneratorServer, "127.0.0.1:PORT"),
    started; stopped at teardown."""
    started = []

    def make(load: bool = True, **overrides):
        config = ServeConfig(
            model=tiny_model_dir, host="127.0.0.1", port=0, metrics_port=None, grace_seconds=0
        )
        config = dataclasses.replace(config, **overrides)
        config.validate()
        server, port = create_server(config, load=load)
        server.start()
        started.append(server)
        return server, f"127.0.0.1:{port}"

    yield make
    for server in started:
        server.stop(0).wait(10)


@pytest.fixture
def server(make_server):
    """A default server and a Generator stub on an open channel: (GeneratorServer, stub)."""
    srv, target = make_server()
    with grpc.insecure_channel(target) as channel:
        yield srv, pb_grpc.GeneratorStub(channel)


def collect(stub, **request) -> dict[int, bytes]:
    """index → data of every image a Generate call streams; checks seed and order."""
    images: dict[int, bytes] = {}
    req = pb.GenerateRequest(**request)
    expected = req.start_index
    for batch in stub.Generate(req, timeout=60):
        for image in batch.images:
            assert image.index == expected and image.seed == req.seed
            images[image.index] = image.data
            expected += 1
    return images
