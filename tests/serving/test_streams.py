"""Cancellation and deadlines stop generation and free the stream's permit; concurrent clients."""

from __future__ import annotations

import threading
import time

import grpc
import pytest

from protos.dermsynth.v1 import generator_pb2 as pb
from protos.dermsynth.v1 import generator_pb2_grpc as pb_grpc
from tests.serving.conftest import collect

BIG = 100_000  # the default max_count, far more than any test reads: only a cancel ends these


def wait_until(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def sample(srv, name: str, **labels) -> float:
    value = srv.metrics.registry.get_sample_value(name, labels or None)
    return value or 0.0


def inference_calls(srv) -> float:
    return sample(srv, "dermsynth_inference_batch_seconds_count")


def assert_generation_stopped(srv) -> None:
    """No stream is active and ONNX Runtime is no longer called."""
    wait_until(lambda: sample(srv, "dermsynth_active_streams") == 0)
    before = inference_calls(srv)
    time.sleep(0.3)
    assert inference_calls(srv) == before


def test_cancel_frees_the_slot_and_stops_generation(make_server):
    srv, target = make_server(max_streams=1, inference_batch=4, prefetch=1)
    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.GeneratorStub(channel)
        call = stub.Generate(pb.GenerateRequest(seed=1, count=BIG, batch_size=4))
        for _ in range(3):
            next(call)
        call.cancel()
        with pytest.raises(grpc.RpcError) as info:
            list(call)
        assert info.value.code() == grpc.StatusCode.CANCELLED
        assert_generation_stopped(srv)
        # a new stream gets the only permit
        assert len(collect(stub, seed=2, count=10)) == 10
    wait_until(lambda: sample(srv, "dermsynth_requests_total", outcome="cancelled") == 1)
    assert inference_calls(srv) < 100  # a few chunks, not the 100,000 images asked for


def test_deadline_stops_generation(make_server):
    srv, target = make_server(max_streams=1, inference_batch=4)
    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.GeneratorStub(channel)
        received = 0
        with pytest.raises(grpc.RpcError) as info:
            for batch in stub.Generate(
                pb.GenerateRequest(seed=1, count=BIG, batch_size=4), timeout=0.5
            ):
                received += len(batch.images)
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert 0 < received < BIG
        assert_generation_stopped(srv)
        assert len(collect(stub, seed=2, count=5)) == 5
    wait_until(lambda: sample(srv, "dermsynth_requests_total", outcome="deadline_exceeded") == 1)


def test_eight_concurrent_clients_get_complete_correct_streams(make_server):
    srv, target = make_server(max_streams=8)
    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.GeneratorStub(channel)
        expected = {
            seed: collect(stub, seed=seed, count=30 + seed, batch_size=30 + seed)
            for seed in range(8)
        }
    results: dict[int, dict[int, bytes]] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def client(seed: int) -> None:
        try:
            with grpc.insecure_channel(target) as ch:  # one connection per client
                barrier.wait()
                results[seed] = collect(
                    pb_grpc.GeneratorStub(ch), seed=seed, count=30 + seed, batch_size=1 + seed
                )
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    assert results == expected
    wait_until(lambda: sample(srv, "dermsynth_active_streams") == 0)
    assert sample(srv, "dermsynth_requests_total", outcome="ok") == 16
