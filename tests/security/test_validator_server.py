"""The validator server on the shared scaffolding (common.grpc_server): it will not listen beyond
loopback without a token, idle reflection streams cannot starve its health checks (six
did once), unparseable requests get INVALID_ARGUMENT and are never parsed without the
token. A real server on 127.0.0.1, port 0, with no feature model loaded (NOT_SERVING)."""

from __future__ import annotations

import queue
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2_grpc

from common.errors import UserError
from tests.validator.validator_server import health, running_validator, server_config
from validator.server import VALIDATE_METHOD, create_server

TOKEN = "validator-suite-token"


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3"])
def test_no_token_no_listening_beyond_loopback(tmp_path, host):
    with pytest.raises(UserError, match="only with a token"):
        create_server(server_config(tmp_path, host=host))


def test_idle_reflection_streams_do_not_starve_health(tmp_path):
    with running_validator(server_config(tmp_path)) as (handle, channel):
        blockers = [queue.Queue() for _ in range(10)]
        calls = [
            reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
                iter(q.get, None)
            )
            for q in blockers
        ]
        time.sleep(0.5)
        started = time.monotonic()
        assert health(channel) == health_pb2.HealthCheckResponse.NOT_SERVING  # no model yet
        assert time.monotonic() - started < 1.0
        refused = [c for c in calls if c.done() and c.code() == grpc.StatusCode.RESOURCE_EXHAUSTED]
        assert len(refused) == 10 - handle.server.guard.active("reflection")
        for call in calls:
            call.cancel()


def test_unparseable_and_unauthenticated_validate_requests(tmp_path):
    with running_validator(server_config(tmp_path, token=TOKEN)) as (_, channel):
        validate = channel.unary_stream(
            VALIDATE_METHOD, request_serializer=None, response_deserializer=None
        )
        for metadata, expected in (
            ((), grpc.StatusCode.UNAUTHENTICATED),
            ((("authorization", "Bearer nope"),), grpc.StatusCode.UNAUTHENTICATED),
            ((("authorization", f"Bearer {TOKEN}"),), grpc.StatusCode.INVALID_ARGUMENT),
        ):
            with pytest.raises(grpc.RpcError) as info:
                list(validate(b"\x0a\xff\xff\xff\xff\x0f", metadata=metadata, timeout=5))
            assert info.value.code() == expected
        assert health(channel) == health_pb2.HealthCheckResponse.NOT_SERVING
