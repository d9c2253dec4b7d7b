"""What the two gRPC servers (serving, validator) share: :func:`build_server` assembles a bound
server from its config's :class:`~common.server_config.ServerTransport` (address, TLS, token,
idle timeout) with the standard services beside their own (``grpc.health.v1`` and server
reflection), TLS credentials, the bearer-token interceptor (:mod:`common.auth`), the call guard
(:mod:`common.call_guard`: reserved capacity per call class, parsing inside the call, idle
streams cancelled) and connection hygiene; :meth:`GrpcServer.stop` drains announcing
NOT_SERVING first; :func:`termination_signals` waits for SIGTERM/SIGINT.

Imports grpc, so only the serving and validator code import this module.
"""

from __future__ import annotations

import ipaddress
import logging
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from common.auth import BearerTokenInterceptor
from common.call_guard import CallClass, CallGuard
from common.errors import UserError
from common.server_config import ServerTransport

log = logging.getLogger(__name__)

# gRPC enables SO_REUSEPORT by default on Linux: a second server on a busy port would then bind
# silently and share its calls. Every server passes this option so that binding fails instead.
NO_REUSEPORT = ("grpc.so_reuseport", 0)

# Connection hygiene. Idle connections close after 5 min; every connection is told to reconnect
# after an hour (clients re-resolve and spread over replicas; what grpc core keeps per
# connection is bounded by its life), and its running calls get up to 2 more hours; the server
# pings every minute and drops a peer that does not answer within 20 s (a frozen or vanished
# client); one connection (one peer) may run at most 100 calls at once, more are refused.
CONNECTION_OPTIONS = (
    NO_REUSEPORT,
    ("grpc.max_connection_idle_ms", 5 * 60_000),
    ("grpc.max_connection_age_ms", 60 * 60_000),
    ("grpc.max_connection_age_grace_ms", 120 * 60_000),
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.max_concurrent_streams", 100),
)
SPARE_THREADS = 4  # beyond every class's limit: refusals (auth, limits) and unlisted methods


@dataclass(frozen=True)
class Reserve:
    """Limits of the calls beside the service's own streams (see :class:`CallGuard`)."""

    health_checks: int = 8
    health_watches: int = 2
    reflection_streams: int = 2
    unary_calls: int = 4  # the services' control calls (GetModelInfo, ...)


def call_classes(
    stream_name: str, stream_methods: Sequence[str], stream_limit: int, reserve: Reserve = Reserve()
) -> list[CallClass]:
    """The call classes of a server whose long-lived RPCs are ``stream_methods``."""
    return [
        CallClass(stream_name, tuple(stream_methods), stream_limit),
        CallClass("reflection", ("/grpc.reflection.",), reserve.reflection_streams),
        CallClass("health Watch", ("/grpc.health.v1.Health/Watch",), reserve.health_watches),
        CallClass("health Check", ("/grpc.health.v1.Health/",), reserve.health_checks),
        CallClass("unary", ("/",), reserve.unary_calls),
    ]


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) only accepts local connections."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def server_credentials(
    tls_cert: Path | None, tls_key: Path | None, option: str = "--tls-cert/--tls-key"
) -> grpc.ServerCredentials | None:
    """TLS credentials from PEM files, or None (plaintext) when either is unset."""
    if tls_cert is None or tls_key is None:
        return None
    try:
        return grpc.ssl_server_credentials([(tls_key.read_bytes(), tls_cert.read_bytes())])
    except (OSError, RuntimeError) as exc:
        raise UserError(f"cannot use {option}: {exc}") from None


@dataclass
class GrpcServer:
    """A bound (not yet started) server with its health servicer and call guard."""

    grpc_server: grpc.Server
    health: health.HealthServicer
    guard: CallGuard
    port: int
    service_name: str

    def start(self) -> None:
        self.grpc_server.start()

    def set_serving(self, serving: bool) -> None:
        set_serving(self.health, self.service_name, serving)

    def stop(self, grace: float | None, announce_seconds: float = 0.0) -> threading.Event:
        """Drain: health turns NOT_SERVING for good at once; for ``announce_seconds`` the server
        keeps accepting calls (so probes and load balancers see NOT_SERVING and move away),
        then it closes its listener, refuses new calls, lets running ones finish within
        ``grace`` seconds and cancels the rest. Returns an event set once all has stopped."""
        self.health.enter_graceful_shutdown()
        finished = threading.Event()

        def run() -> None:
            if announce_seconds > 0:
                threading.Event().wait(announce_seconds)
            self.grpc_server.stop(grace).wait()
            self.guard.close()
            finished.set()

        threading.Thread(target=run, name="grpc-drain", daemon=True).start()
        return finished


def build_server(
    *,
    service_name: str,
    add_servicers: Callable[[grpc.Server], None],
    stream_name: str,
    stream_methods: Sequence[str],
    stream_limit: int,
    transport: ServerTransport,
    max_message_bytes: int | None = None,
    reserve: Reserve = Reserve(),
) -> GrpcServer:
    """Build and bind a server for ``service_name`` (health NOT_SERVING until
    :meth:`GrpcServer.set_serving`) where ``transport`` says (host, port, TLS files, token,
    idle timeout). ``add_servicers(server)`` adds the service's own servicers;
    ``stream_methods`` (full ``/pkg.Service/Method`` names) are its long-lived RPCs, at most
    ``stream_limit`` at once. Raises UserError when the TLS files cannot be used or the address
    cannot be bound."""
    host, token = transport.host, transport.token
    credentials = server_credentials(transport.tls_cert, transport.tls_key)
    if not token and not is_loopback(host):
        log.warning(
            "SECURITY: %s listens on %s without a token: anyone who can reach this "
            "address can call it (set a token, or bind 127.0.0.1)",
            service_name,
            host,
        )
    guard = CallGuard(
        call_classes(stream_name, stream_methods, stream_limit, reserve),
        transport.stream_idle_seconds,
    )
    interceptors: list[grpc.ServerInterceptor] = [guard]
    if token:
        interceptors.insert(0, BearerTokenInterceptor(token))  # outermost: auth before parsing
    options = list(CONNECTION_OPTIONS)
    if max_message_bytes is not None:
        options += [
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes),
        ]
    server = grpc.server(
        ThreadPoolExecutor(guard.threads + SPARE_THREADS, thread_name_prefix="grpc-rpc"),
        interceptors=interceptors,
        options=options,
    )
    add_servicers(server)
    health_servicer = add_standard_services(server, service_name)
    try:
        bound = bind(server, host, transport.port, credentials)
    except UserError:
        guard.close()
        raise
    return GrpcServer(server, health_servicer, guard, bound, service_name)


def add_standard_services(server: grpc.Server, service_name: str) -> health.HealthServicer:
    """Add the health service and reflection (for ``service_name``, health and reflection
    itself) to ``server``; return the health servicer (every service NOT_SERVING until
    :func:`set_serving`)."""
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (service_name, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    return health_servicer


def set_serving(health_servicer: health.HealthServicer, service_name: str, serving: bool) -> None:
    """SERVING or NOT_SERVING for the server as a whole ("") and for ``service_name``."""
    status = (
        health_pb2.HealthCheckResponse.SERVING
        if serving
        else health_pb2.HealthCheckResponse.NOT_SERVING
    )
    for service in ("", service_name):
        health_servicer.set(service, status)


def address(host: str, port: int) -> str:
    """``host:port``, with an IPv6 literal host in brackets."""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port}"


def bind(
    server: grpc.Server, host: str, port: int, credentials: grpc.ServerCredentials | None = None
) -> int:
    """Add a (TLS when ``credentials``) listening port; return it (``port`` 0 picks a free
    one). Raises UserError when the address is in use or not available."""
    where = address(host, port)
    try:
        bound = (
            server.add_secure_port(where, credentials)
            if credentials
            else server.add_insecure_port(where)
        )
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
