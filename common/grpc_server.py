"""What the two gRPC servers (serving, validator) share: the standard services beside their own
(``grpc.health.v1`` and server reflection), health set per service, and binding a port.

Imports grpc, so only the serving and validator code import this module.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Callable, Iterator

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from common.errors import UserError

# gRPC enables SO_REUSEPORT by default on Linux: a second server on a busy port would then bind
# silently and share its calls. Every server passes this option so that binding fails instead.
NO_REUSEPORT = ("grpc.so_reuseport", 0)


def add_standard_services(server: grpc.Server, service_name: str) -> health.HealthServicer:
    """Add the health service and reflection (for ``service_name``, health and reflection
    itself) to ``server``; return the health servicer (every service NOT_SERVING until
    :func:`set_serving`)."""
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (service_name, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    return health_servicer


def set_serving(health_servicer: health.HealthServicer, service_name: str,
                serving: bool) -> None:
    """SERVING or NOT_SERVING for the server as a whole ("") and for ``service_name``."""
    status = (health_pb2.HealthCheckResponse.SERVING if serving
              else health_pb2.HealthCheckResponse.NOT_SERVING)
    for service in ("", service_name):
        health_servicer.set(service, status)


def address(host: str, port: int) -> str:
    """``host:port``, with an IPv6 literal host in brackets."""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port}"


def bind(server: grpc.Server, host: str, port: int,
         credentials: grpc.ServerCredentials | None = None) -> int:
    """Add a (TLS when ``credentials``) listening port; return it (``port`` 0 picks a free
    one). Raises UserError when the address is in use or not available."""
    where = address(host, port)
    try:
        bound = (server.add_secure_port(where, credentials) if credentials
                 else server.add_insecure_port(where))
    except RuntimeError as exc:  # grpcio >= 1.55 raises where older versions returned 0
        raise UserError(f"cannot listen on {where}: {exc}") from None
    if not bound:
        raise UserError(f"cannot listen on {where}: address in use or not available")
    return bound


@contextmanager
def termination_signals() -> Iterator[Callable[[], str]]:
    """Catch SIGTERM and SIGINT while the block runs; yield ``wait()``, which blocks until one
    arrives and returns its name. The previous handlers are restored on the way out."""
    stop = threading.Event()
    received: list[str] = []

    def on_signal(signum, _frame) -> None:
        received.append(signal.Signals(signum).name)
        stop.set()

    def wait() -> str:
        while not stop.wait(0.5):
            pass
        return received[0]

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield wait
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
