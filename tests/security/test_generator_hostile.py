"""Hostile traffic against a real generation server (bounded, 127.0.0.1 only): malformed and
truncated protobufs, huge fields, unknown methods, token variants, idle and non-reading
streams, a burst of refused calls. Every case checks the status the server answers with (never
INTERNAL or UNKNOWN, never a traceback's worth of text or a memory address) and that the
server still answers health and Generate afterwards."""

from __future__ import annotations

import queue
import random
import re
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2_grpc

from protos.dermsynth.v1 import generator_pb2 as pb
from protos.dermsynth.v1 import generator_pb2_grpc as pb_grpc
from tests.security.conftest import GENERATOR_TOKEN

AUTH = (("authorization", f"Bearer {GENERATOR_TOKEN}"),)
GENERATE = "/dermsynth.v1.Generator/Generate"
MODEL_INFO = "/dermsynth.v1.Generator/GetModelInfo"
BROKEN = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
ADDRESS = re.compile(r"0x[0-9a-fA-F]{6,}")


def raw_call(
    channel, method: str, payload: bytes, *, metadata=AUTH, timeout: float = 5
) -> tuple[grpc.StatusCode, str]:
    """Send ``payload`` as the request bytes of ``method``; (status, details)."""
    streaming = method == GENERATE
    call = (channel.unary_stream if streaming else channel.unary_unary)(
        method, request_serializer=None, response_deserializer=None
    )
    try:
        result = call(payload, timeout=timeout, metadata=metadata)
        if streaming:
            list(result)
        return grpc.StatusCode.OK, ""
    except grpc.RpcError as exc:
        return exc.code(), exc.details() or ""


def assert_sane(code: grpc.StatusCode, details: str, case: object) -> None:
    assert code not in BROKEN, (case, code, details)
    assert len(details) <= 300 and not ADDRESS.search(details), (case, details)


def assert_still_serving(target: str) -> None:
    with grpc.insecure_channel(target) as channel:
        started = time.monotonic()
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=2
        )
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        assert time.monotonic() - started < 1.0
        batches = pb_grpc.GeneratorStub(channel).Generate(
            pb.GenerateRequest(seed=3, count=2), metadata=AUTH, timeout=10
        )
        assert sum(len(b.images) for b in batches) == 2


def test_malformed_bytes(generator):
    _, target = generator(max_count=64)  # a random payload that parses asks for little
    rng = random.Random(13)
    payloads = (
        [b"\xff" * n for n in (1, 5, 64)]
        + [
            b"\x08",  # truncated varint
            b"\x08" + b"\x80" * 11,  # varint longer than 10 bytes
            b"\x0a\x80\x80\x80\x80\x10",  # length-delimited field longer than the message
            b"\x0b" * 200,  # unterminated groups
            b"\x0c",  # end-group without a start
            b"\x07\x00",  # wire type 7
            b"\x00\x00",  # field number 0
        ]
        + [rng.randbytes(rng.randint(1, 256)) for _ in range(60)]
    )
    codes = set()
    with grpc.insecure_channel(target) as channel:
        for payload in payloads:
            for method in (GENERATE, MODEL_INFO):
                code, details = raw_call(channel, method, payload)
                assert_sane(code, details, payload)
                codes.add(code)
    assert grpc.StatusCode.INVALID_ARGUMENT in codes
    assert codes <= {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.OK,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
    assert_still_serving(target)


def test_truncated_protobufs(generator):
    _, target = generator()
    whole = pb.GenerateRequest(
        seed=2**63 + 5, start_index=2**40, count=3, batch_size=2, encoding=pb.ENCODING_PNG
    ).SerializeToString()
    codes = []
    with grpc.insecure_channel(target) as channel:
        for cut in range(len(whole) + 1):
            code, details = raw_call(channel, GENERATE, whole[:cut])
            assert_sane(code, details, cut)
            codes.append(code)
    assert codes[-1] == grpc.StatusCode.OK
    assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT}
    assert codes.count(grpc.StatusCode.INVALID_ARGUMENT) >= len(whole) // 2
    assert_still_serving(target)


def _unknown_field(size: int) -> bytes:
    """Field 999, length-delimited, ``size`` bytes: parsers must skip it."""
    from google.protobuf.internal.encoder import _VarintBytes

    return _VarintBytes(999 << 3 | 2) + _VarintBytes(size) + b"x" * size


def test_huge_fields(generator):
    _, target = generator()
    small = pb.GenerateRequest(seed=1, count=1).SerializeToString()
    cases = {
        "over the message limit": (
            small + _unknown_field(300 * 1024),
            {grpc.StatusCode.RESOURCE_EXHAUSTED},
        ),
        "big unknown field": (small + _unknown_field(100 * 1024), {grpc.StatusCode.OK}),
        "count 2^32-1": (
            pb.GenerateRequest(seed=1, count=2**32 - 1).SerializeToString(),
            {grpc.StatusCode.RESOURCE_EXHAUSTED},
        ),
        "batch 2^32-1": (
            pb.GenerateRequest(seed=1, count=1, batch_size=2**32 - 1).SerializeToString(),
            {grpc.StatusCode.RESOURCE_EXHAUSTED},
        ),
        "last index overflows": (
            pb.GenerateRequest(seed=1, count=2, start_index=2**64 - 1).SerializeToString(),
            {grpc.StatusCode.INVALID_ARGUMENT},
        ),
        "encoding 2^31-1": (
            pb.GenerateRequest(seed=1, count=1, encoding=2**31 - 1).SerializeToString(),
            {grpc.StatusCode.INVALID_ARGUMENT},
        ),
    }
    with grpc.insecure_channel(target, options=[("grpc.max_send_message_length", -1)]) as ch:
        for case, (payload, expected) in cases.items():
            code, details = raw_call(ch, GENERATE, payload)
            assert_sane(code, details, case)
            assert code in expected, (case, code, details)
        # 20 KB of metadata: refused by grpc before any handler runs
        code, details = raw_call(ch, MODEL_INFO, b"", metadata=AUTH + (("x-pad", "a" * 20000),))
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert_still_serving(target)


def test_unknown_methods(generator):
    _, target = generator()
    with grpc.insecure_channel(target) as channel:
        for method in (
            "/dermsynth.v1.Generator/Delete",
            "/dermsynth.v1.Nope/Generate",
            "/x/y",
            "/" + "a" * 2000 + "/b",
        ):
            # without the token nothing is revealed; with it the method is unknown
            assert raw_call(channel, method, b"", metadata=())[0] == grpc.StatusCode.UNAUTHENTICATED
            assert raw_call(channel, method, b"")[0] == grpc.StatusCode.UNIMPLEMENTED
        # only health Check is open: another health method is just another unknown method
        assert (
            raw_call(channel, "/grpc.health.v1.Health/Nope", b"", metadata=())[0]
            == grpc.StatusCode.UNAUTHENTICATED
        )
        assert (
            raw_call(channel, "/grpc.health.v1.Health/Nope", b"")[0]
            == grpc.StatusCode.UNIMPLEMENTED
        )
    assert_still_serving(target)


@pytest.mark.parametrize(
    "metadata",
    [
        (),
        (("authorization", "Bearer wrong"),),
        (("authorization", GENERATOR_TOKEN),),  # no scheme
        (("authorization", f"Basic {GENERATOR_TOKEN}"),),  # wrong scheme
        (("authorization", f"bearer {GENERATOR_TOKEN}"),),  # scheme is case-sensitive here
        (("authorization", f"Bearer {GENERATOR_TOKEN} "),),  # trailing space
        (("authorization", f"Bearer  {GENERATOR_TOKEN}"),),  # two spaces
        (("authorization", f"Bearer {GENERATOR_TOKEN[:-1]}"),),  # a prefix of the token
        (("authorization", f"Bearer {GENERATOR_TOKEN}x"),),  # the token and more
        (("authorization-bin", f"Bearer {GENERATOR_TOKEN}".encode()),),
        (("authorization", f"Bearer {GENERATOR_TOKEN[:-1]}é"),),  # unicode: the client refuses
        (("authorization", f"Bearer {GENERATOR_TOKEN}\n"),),  # control: the client refuses
    ],
    ids=lambda m: repr(m)[:40],
)
def test_token_variants(generator, metadata):
    _, target = generator()
    with grpc.insecure_channel(target) as channel:
        for method, payload in (
            (GENERATE, pb.GenerateRequest(seed=1, count=1)),
            (MODEL_INFO, pb.GetModelInfoRequest()),
        ):
            code, details = raw_call(
                channel, method, payload.SerializeToString(), metadata=metadata
            )
            assert code != grpc.StatusCode.OK and not ADDRESS.search(details)
            if not any("\n" in str(v) or "é" in str(v) for _, v in metadata):
                assert code == grpc.StatusCode.UNAUTHENTICATED, (metadata, code)
        with pytest.raises(grpc.RpcError) as info:  # reflection needs the token too
            call = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
                iter(()), metadata=metadata, timeout=5
            )
            list(call)
        assert info.value.code() != grpc.StatusCode.OK
    assert_still_serving(target)


def test_idle_and_non_reading_streams_are_freed(generator):
    server, target = generator()
    held = []
    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.GeneratorStub(channel)
        for seed in (1, 2):  # both stream slots, never read (raw: flow control fills fast)
            held.append(
                stub.Generate(
                    pb.GenerateRequest(
                        seed=seed, count=50_000, batch_size=64, encoding=pb.ENCODING_RAW_RGB8
                    ),
                    metadata=AUTH,
                )
            )
        blockers = [queue.Queue() for _ in range(6)]  # reflection streams that never ask
        held += [
            reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
                iter(q.get, None), metadata=AUTH
            )
            for q in blockers
        ]
        time.sleep(0.3)
        assert server.server.guard.active("Generate") == 2
        with pytest.raises(grpc.RpcError) as info:  # a third stream is refused, not queued
            list(stub.Generate(pb.GenerateRequest(seed=3, count=1), metadata=AUTH, timeout=5))
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert_still_serving_with_no_free_slot(channel)
        deadline = time.monotonic() + 8
        while (
            server.server.guard.active("Generate") or server.server.guard.active("reflection")
        ) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert server.server.guard.active("Generate") == 0  # freed by the 1 s idle timeout
        assert server.server.guard.active("reflection") == 0
        for call in held:
            call.cancel()
    assert_still_serving(target)


def assert_still_serving_with_no_free_slot(channel) -> None:
    started = time.monotonic()
    reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    info = pb_grpc.GeneratorStub(channel).GetModelInfo(
        pb.GetModelInfoRequest(), metadata=AUTH, timeout=2
    )
    assert info.resolution == 32 and time.monotonic() - started < 1.0


def test_a_burst_of_refused_calls(generator):
    _, target = generator()
    with grpc.insecure_channel(target) as channel:
        generate = channel.unary_stream(
            GENERATE, request_serializer=None, response_deserializer=None
        )
        codes = set()
        for _wave in range(6):  # 300 calls, 50 in flight at once (one connection runs <= 100)
            calls = [
                generate(
                    b"\xff" if i % 2 else pb.GenerateRequest(count=1).SerializeToString(),
                    metadata=() if i % 3 else AUTH,
                    timeout=10,
                )
                for i in range(50)
            ]
            for call in calls:
                try:
                    list(call)
                    codes.add(grpc.StatusCode.OK)
                except grpc.RpcError as exc:
                    codes.add(exc.code())
        assert codes <= {
            grpc.StatusCode.OK,
            grpc.StatusCode.UNAUTHENTICATED,
            grpc.StatusCode.INVALID_ARGUMENT,
            grpc.StatusCode.RESOURCE_EXHAUSTED,
        }
    assert_still_serving(target)
