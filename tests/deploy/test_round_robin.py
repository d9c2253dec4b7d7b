"""Scale-out over gRPC's own client-side load balancing: two real generation servers (each
``serving.server.create_server`` on port 0 with the real tiny ONNX model) behind one channel
with the ``round_robin`` policy over both addresses -- what a client does against the headless
Service in deploy/kubernetes/. Requests spread over both replicas, and every image is
byte-identical to what a single server returns for the same (seed, index).
"""

from __future__ import annotations

import json

import grpc
import pytest

from protos.dermsynth.v1 import generator_pb2 as pb
from protos.dermsynth.v1 import generator_pb2_grpc as pb_grpc
from serving.config import ServeConfig
from serving.server import create_server

pytestmark = pytest.mark.timeout(120)

ROUND_ROBIN = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})
SEED = 7
CALLS = 8  # sequential Generate calls over the balanced channel
PER_CALL = 2  # images per call


@pytest.fixture(scope="module")
def two_servers(tiny_model_dir):
    servers = []
    for _ in range(2):
        config = ServeConfig(model=tiny_model_dir, host="127.0.0.1", port=0, metrics_port=None)
        server, port = create_server(config)
        server.start()
        servers.append((server, port))
    yield servers
    for server, _port in servers:
        server.stop(0).wait(10)


def _channel(target: str, *, balanced: bool) -> grpc.Channel:
    options = [("grpc.enable_http_proxy", 0)]
    if balanced:
        options.append(("grpc.service_config", ROUND_ROBIN))
    channel = grpc.insecure_channel(target, options=options)
    grpc.channel_ready_future(channel).result(timeout=30)
    return channel


def _generate(
    channel: grpc.Channel, *, start: int, count: int, batch_size: int
) -> dict[int, bytes]:
    request = pb.GenerateRequest(
        seed=SEED, count=count, start_index=start, batch_size=batch_size, encoding=pb.ENCODING_PNG
    )
    images = {}
    for batch in pb_grpc.GeneratorStub(channel).Generate(request, timeout=60):
        for image in batch.images:
            assert image.seed == SEED
            images[image.index] = image.data
    return images


def _ok_requests(server) -> int:
    value = server.metrics.registry.get_sample_value("dermsynth_requests_total", {"outcome": "ok"})
    return int(value or 0)


def _both_targets(servers) -> str:
    return "ipv4:" + ",".join(f"127.0.0.1:{port}" for _server, port in servers)


def _spread(servers, channel) -> tuple[dict[int, bytes], list[int]]:
    """Run CALLS sequential calls (PER_CALL images each); return the images and how many of the
    calls each server completed."""
    before = [_ok_requests(server) for server, _port in servers]
    images: dict[int, bytes] = {}
    for call in range(CALLS):
        images.update(
            _generate(channel, start=call * PER_CALL, count=PER_CALL, batch_size=PER_CALL)
        )
    return images, [_ok_requests(server) - b for (server, _port), b in zip(servers, before)]


def test_round_robin_spreads_calls_and_images_match_one_server(two_servers):
    (_first, first_port), _second = two_servers
    with _channel(f"127.0.0.1:{first_port}", balanced=False) as single:
        reference = _generate(single, start=0, count=CALLS * PER_CALL, batch_size=5)
    assert sorted(reference) == list(range(CALLS * PER_CALL))

    with _channel(_both_targets(two_servers), balanced=True) as balanced:
        # The channel is READY once one backend is; wait until calls have reached both.
        for _ in range(50):
            _generate(balanced, start=0, count=1, batch_size=1)
            if all(_ok_requests(server) > 0 for server, _port in two_servers[1:]):
                break
        images, per_server = _spread(two_servers, balanced)

    assert per_server == [CALLS // 2, CALLS // 2], per_server  # round_robin alternates
    assert images.keys() == reference.keys()
    differing = [i for i in reference if images[i] != reference[i]]
    assert not differing, f"images differ between the balanced pair and one server: {differing}"
    assert len(set(reference.values())) == len(reference)  # distinct images, not one repeated


def test_without_round_robin_one_server_takes_every_call(two_servers):
    """The control: gRPC's default policy (pick_first) over the same two addresses sends every
    call to one server, so the spread above is the balancer's doing and the per-server counts
    can tell the difference."""
    with _channel(_both_targets(two_servers), balanced=False) as unbalanced:
        _images, per_server = _spread(two_servers, unbalanced)
    assert sorted(per_server) == [0, CALLS], per_server
