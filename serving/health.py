"""Probing a running server: the gRPC health check (used by the container HEALTHCHECK and
``python -m serving health``) and GetModelInfo (``python -m serving info``)."""

from __future__ import annotations

from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from protos.dermsynth.v1 import generator_pb2 as pb
from protos.dermsynth.v1 import generator_pb2_grpc as pb_grpc
from serving.channel import call_metadata, open_channel


def check_health(
    target: str, *, service: str = "", timeout: float = 5.0, root_cert: Path | None = None
) -> str:
    """The health status name of ``service`` at ``target`` ("SERVING", "NOT_SERVING", ...),
    or "UNREACHABLE: <reason>" when the call fails."""
    with open_channel(target, root_cert=root_cert) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.RpcError as exc:
            return f"UNREACHABLE: {exc.code().name}: {exc.details()}"
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


def get_model_info(
    target: str, *, token: str | None = None, timeout: float = 10.0, root_cert: Path | None = None
) -> pb.ModelInfo:
    """GetModelInfo of the server at ``target``; raises grpc.RpcError on failure."""
    with open_channel(target, root_cert=root_cert) as channel:
        return pb_grpc.GeneratorStub(channel).GetModelInfo(
            pb.GetModelInfoRequest(), timeout=timeout, metadata=call_metadata(token)
        )
