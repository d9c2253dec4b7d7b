"""Fixtures of the hostile-traffic suites: real servers on 127.0.0.1, port 0, started in this
process over the real tiny ONNX generator (``tiny_model_dir``, tests/conftest.py).

Every loop in these suites is bounded and talks only to 127.0.0.1.
"""

from __future__ import annotations

import dataclasses

import pytest

from serving.config import ServeConfig
from serving.server import create_server

GENERATOR_TOKEN = "hostile-suite-token"


@pytest.fixture
def generator(tiny_model_dir):
    """``generator(**config_overrides)`` → (GeneratorServer, "127.0.0.1:PORT"): a started
    generation server with a bearer token, 2 streams, a 1 s idle timeout and a 256 KiB message
    limit unless overridden; stopped at teardown."""
    started = []

    def make(**overrides):
        config = ServeConfig(
            model=tiny_model_dir,
            host="127.0.0.1",
            port=0,
            metrics_port=None,
            grace_seconds=0,
            drain_announce_seconds=0,
            token=GENERATOR_TOKEN,
            max_streams=2,
            stream_idle_seconds=1.0,
            max_message_bytes=256 * 1024,
            max_batch_size=64,
        )
        config = dataclasses.replace(config, **overrides)
        config.validate()
        server, port = create_server(config)
        server.start()
        started.append(server)
        return server, f"127.0.0.1:{port}"

    yield make
    for server in started:
        server.stop(0).wait(10)
