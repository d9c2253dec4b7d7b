"""Bearer-token auth (health stays open), TLS with a self-signed certificate, and the shared
server scaffolding (common.grpc_server / common.call_guard) under hostile callers: reserved
capacity for health and control calls, unparseable requests, streams whose reader stopped
reading, request messages that never arrive, tokens no client could send."""

from __future__ import annotations

import json
import logging
import queue
import subprocess
import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2_grpc

from common.cli import run_cli
from common.errors import ConfigError
from common.grpc_server import is_loopback
from protos.dermsynth.v1 import generator_pb2 as pb
from protos.dermsynth.v1 import generator_pb2_grpc as pb_grpc
from serving import cli
from serving.channel import open_channel
from serving.config import ServeConfig
from serving.health import check_health, get_model_info

TOKEN = "s3cret-token"
GENERATE = "/dermsynth.v1.Generator/Generate"


def test_bearer_token(make_server):
    _, target = make_server(token=TOKEN)
    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.GeneratorStub(channel)
        request = pb.GenerateRequest(seed=1, count=3)
        for metadata in ((), (("authorization", "Bearer wrong"),), (("authorization", TOKEN),)):
            with pytest.raises(grpc.RpcError) as info:
                list(stub.Generate(request, metadata=metadata))
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
            with pytest.raises(grpc.RpcError) as info:
                stub.GetModelInfo(pb.GetModelInfoRequest(), metadata=metadata)
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        good = (("authorization", f"Bearer {TOKEN}"),)
        assert sum(len(b.images) for b in stub.Generate(request, metadata=good)) == 3
        # probes need no token
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        # ... but Watch, a long-lived stream with few slots, does: anonymous watchers could
        # otherwise hold its slots for a connection's life
        watch = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(), timeout=5
        )
        with pytest.raises(grpc.RpcError) as info:
            next(watch)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        watch = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(), metadata=good, timeout=5
        )
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        watch.cancel()


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_tls(make_server, self_signed, tmp_path):
    cert, key = self_signed
    _, target = make_server(tls_cert=cert, tls_key=key, token=TOKEN)
    info = get_model_info(target, token=TOKEN, root_cert=cert)
    assert info.resolution == 32
    assert check_health(target, root_cert=cert) == "SERVING"
    with open_channel(target, root_cert=cert) as channel:
        batches = list(
            pb_grpc.GeneratorStub(channel).Generate(
                pb.GenerateRequest(seed=1, count=2),
                metadata=(("authorization", f"Bearer {TOKEN}"),),
            )
        )
        assert sum(len(b.images) for b in batches) == 2
    # a plaintext client cannot talk to the TLS port
    assert check_health(target, timeout=2).startswith("UNREACHABLE")
    # nor a TLS client that does not trust the certificate
    other = tmp_path / "other.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=x",
            "-keyout",
            str(tmp_path / "k.pem"),
            "-out",
            str(other),
        ],
        check=True,
        capture_output=True,
    )
    assert check_health(target, timeout=2, root_cert=other).startswith("UNREACHABLE")


@pytest.mark.parametrize("token", ["s3cret\n", "s3cret ", " s3cret", "s3c ret", "s3crét", "\t", ""])
def test_tokens_no_client_could_send_are_refused_at_start_up(tiny_model_dir, token):
    with pytest.raises(ConfigError, match="--token"):
        ServeConfig(model=tiny_model_dir, token=token).validate()


def test_token_with_a_trailing_newline_exits_2(tiny_model_dir, monkeypatch, capsys):
    monkeypatch.setenv("DERMSYNTH_SERVE_TOKEN", "s3cret\n")  # e.g. $(cat secret.txt) kept the \n
    code = run_cli(
        cli.main,
        ["serve", "--model", str(tiny_model_dir), "--port", "0", "--metrics-port", "none"],
        prog="serving",
    )
    err = capsys.readouterr().err
    assert code == 2 and "'\\n' at its end" in err and "s3cret" not in err


def test_loopback_detection():
    assert all(map(is_loopback, ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "[::]", "10.0.0.1", "example.org"]))


def _health(channel, timeout=1.0) -> int:
    return (
        health_pb2_grpc.HealthStub(channel)
        .Check(health_pb2.HealthCheckRequest(), timeout=timeout)
        .status
    )


def test_idle_reflection_streams_cannot_starve_health_or_generate(make_server):
    """16 idle reflection streams took every thread of an 8-stream server."""
    srv, target = make_server(max_streams=2)
    with grpc.insecure_channel(target) as channel:
        idle, blockers = [], []
        for _ in range(12):  # far more than the threads the old server had to spare (2 + 8)
            q: queue.Queue = queue.Queue()
            blockers.append(q)
            idle.append(
                reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
                    iter(q.get, None)
                )
            )
        time.sleep(0.5)  # let every stream reach the server and take (or be refused) a thread
        started = time.monotonic()
        assert _health(channel) == health_pb2.HealthCheckResponse.SERVING
        assert time.monotonic() - started < 1.0
        stub = pb_grpc.GeneratorStub(channel)
        assert stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=1).resolution == 32
        assert (
            sum(
                len(b.images) for b in stub.Generate(pb.GenerateRequest(seed=1, count=4), timeout=5)
            )
            == 4
        )
        # beyond the reflection limit: refused at once, not queued; the others still open
        refused = [c for c in idle if c.done() and c.code() == grpc.StatusCode.RESOURCE_EXHAUSTED]
        assert len(refused) == 12 - srv.server.guard.active("reflection") >= 10
        for call in idle:
            call.cancel()


def test_unparseable_requests_get_invalid_argument(server):
    srv, _ = server
    target = f"127.0.0.1:{srv.port}"
    with grpc.insecure_channel(target) as channel:
        for method, streaming in (
            (GENERATE, True),
            ("/dermsynth.v1.Generator/GetModelInfo", False),
            ("/grpc.health.v1.Health/Check", False),
        ):
            call = (channel.unary_stream if streaming else channel.unary_unary)(
                method, request_serializer=None, response_deserializer=None
            )
            with pytest.raises(grpc.RpcError) as info:
                result = call(b"\xff\xff\xff\xff\x0f", timeout=5)
                if streaming:
                    list(result)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, method
            assert "not a valid" in info.value.details()
        assert _health(channel) == health_pb2.HealthCheckResponse.SERVING


def _idle_outcomes(caplog) -> list[str]:
    return [
        json.loads(r.getMessage())["outcome"]
        for r in caplog.records
        if r.name == "serving.requests"
    ]


def test_a_stream_nobody_reads_frees_its_slot_after_the_idle_timeout(make_server, caplog):
    """A client that opened streams and never read held them for good."""
    caplog.set_level(logging.INFO)
    srv, target = make_server(max_streams=1, stream_idle_seconds=1.0, max_batch_size=256)
    with grpc.insecure_channel(target) as stalled, grpc.insecure_channel(target) as other:
        # ~3 KiB per raw image: a few batches fill the flow-control windows, then the send blocks
        never_read = pb_grpc.GeneratorStub(stalled).Generate(
            pb.GenerateRequest(seed=1, count=50_000, batch_size=256, encoding=pb.ENCODING_RAW_RGB8)
        )
        never_read.initial_metadata()
        stub = pb_grpc.GeneratorStub(other)
        with pytest.raises(grpc.RpcError) as info:  # the only stream permit is taken...
            list(stub.Generate(pb.GenerateRequest(seed=2, count=1), timeout=5))
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        deadline = time.monotonic() + 10
        while srv.server.guard.active("Generate") and time.monotonic() < deadline:
            time.sleep(0.1)
        # ...and freed about one idle timeout later
        assert (
            sum(
                len(b.images) for b in stub.Generate(pb.GenerateRequest(seed=2, count=1), timeout=5)
            )
            == 1
        )
        never_read.cancel()
    assert "idle" in _idle_outcomes(caplog)


def test_a_request_message_that_never_arrives_is_cancelled(make_server):
    """A call whose client sent headers but never its message held a thread for good: 20 of
    them took every thread of the old server (8 streams + 8 spare) and health starved."""
    srv, target = make_server()  # the default idle timeout: unary messages get 2 s
    release = threading.Event()

    def nothing():
        release.wait(10)
        return
        yield

    with grpc.insecure_channel(target) as channel:
        stalled = [
            channel.stream_unary(method).future(nothing())
            for method in ["/grpc.health.v1.Health/Check"] * 12
            + ["/dermsynth.v1.Generator/GetModelInfo"] * 8
        ]
        time.sleep(0.3)
        started = time.monotonic()
        while True:  # refused at once while the stalled ones hold the class, then answered
            try:
                assert _health(channel, timeout=1) == health_pb2.HealthCheckResponse.SERVING
                break
            except grpc.RpcError as exc:
                assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                assert time.monotonic() - started < 4
                time.sleep(0.2)
        codes = {f.exception(timeout=5).code() for f in stalled}
        assert codes == {grpc.StatusCode.CANCELLED, grpc.StatusCode.RESOURCE_EXHAUSTED}
        release.set()
    assert srv.server.guard.active("health Check") == srv.server.guard.active("unary") == 0


def test_deadline_passed_while_blocked_is_logged_as_deadline_exceeded(make_server, caplog):
    caplog.set_level(logging.INFO)
    _, target = make_server()
    with grpc.insecure_channel(target) as channel:
        call = pb_grpc.GeneratorStub(channel).Generate(
            pb.GenerateRequest(seed=1, count=50_000, batch_size=256, encoding=pb.ENCODING_RAW_RGB8),
            timeout=0.5,
        )
        with pytest.raises(grpc.RpcError) as info:
            next(call)
            time.sleep(1.0)
            list(call)
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    deadline = time.monotonic() + 5
    while not _idle_outcomes(caplog) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _idle_outcomes(caplog) == ["deadline_exceeded"]
