"""Health NOT_SERVING → SERVING, reflection, and the Prometheus metrics endpoint."""

from __future__ import annotations

import urllib.request

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from protos.dermsynth.v1 import generator_pb2_grpc as pb_grpc
from serving.model import load_model
from serving.server import SERVICE_NAME
from tests.serving.conftest import collect

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def statuses(channel) -> tuple[int, int]:
    stub = health_pb2_grpc.HealthStub(channel)
    return tuple(
        stub.Check(health_pb2.HealthCheckRequest(service=s)).status for s in ("", SERVICE_NAME)
    )


def test_health_turns_serving_once_the_model_is_loaded(make_server, tiny_model_dir):
    srv, target = make_server(load=False)
    with grpc.insecure_channel(target) as channel:
        assert statuses(channel) == (NOT_SERVING, NOT_SERVING)
        srv.set_model(load_model(tiny_model_dir))
        assert statuses(channel) == (SERVING, SERVING)
        srv.set_model(None)  # unloading turns it back
        assert statuses(channel) == (NOT_SERVING, NOT_SERVING)


def test_reflection_lists_the_services(server):
    srv, _ = server
    with grpc.insecure_channel(f"127.0.0.1:{srv.port}") as channel:
        services = set(ProtoReflectionDescriptorDatabase(channel).get_services())
    assert {"dermsynth.v1.Generator", "grpc.health.v1.Health"} <= services


def test_metrics_endpoint(make_server):
    srv, target = make_server(metrics_port=0)
    assert srv.metrics_port
    with grpc.insecure_channel(target) as channel:
        collect(pb_grpc.GeneratorStub(channel), seed=1, count=10, batch_size=4)
    text = (
        urllib.request.urlopen(f"http://127.0.0.1:{srv.metrics_port}/metrics", timeout=10)
        .read()
        .decode()
    )
    assert 'dermsynth_images_generated_total{encoding="png"} 10.0' in text
    assert 'dermsynth_requests_total{outcome="ok"} 1.0' in text
    assert "dermsynth_inference_batch_seconds_count 1.0" in text  # 10 images, one 16-row chunk
    assert "dermsynth_active_streams 0.0" in text
