"""Assembling and running the gRPC server: :func:`create_server` (tests call it on port 0) and
:func:`serve` (the CLI: load, bind, run until SIGTERM/SIGINT, drain, exit).

Shutdown follows the Kubernetes pattern: on SIGTERM the health status turns NOT_SERVING while
calls are still accepted for ``drain_announce_seconds``; then the server stops accepting new
calls and closes its listener, in-flight streams run to completion for up to
``grace_seconds``, then whatever is left is cancelled and the process exits 0.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from common.errors import UserError
from common.grpc_server import GrpcServer, build_server, termination_signals
from protos.dermsynth.v1 import generator_pb2 as pb
from protos.dermsynth.v1 import generator_pb2_grpc as pb_grpc
from serving.config import ServeConfig
from serving.metrics import Metrics
from serving.model import GeneratorModel, ModelHolder, load_model
from serving.plan import Limits
from serving.service import GeneratorServicer

log = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Generator"].full_name  # dermsynth.v1.Generator
GENERATE_METHOD = f"/{SERVICE_NAME}/Generate"


@dataclass
class GeneratorServer:
    """A bound (not yet started) server and the parts tests and :func:`serve` reach into."""

    server: GrpcServer  # the shared scaffolding: grpc server, health, call guard
    config: ServeConfig
    holder: ModelHolder
    metrics: Metrics
    encoders: ThreadPoolExecutor
    port: int
    metrics_port: int | None = None
    runner: ThreadPoolExecutor | None = None  # concurrent inference (--inference-workers > 1)

    @property
    def grpc_server(self):
        return self.server.grpc_server

    @property
    def health(self):
        return self.server.health

    def start(self) -> None:
        """Start serving; start the metrics endpoint when one is configured."""
        if self.config.metrics_port is not None:
            self.metrics_port = self.metrics.serve_http(self.config.host, self.config.metrics_port)
        self.server.start()
        log.info(
            "dermsynth.v1.Generator listening on %s:%d (%s, %s, metrics %s)",
            self.config.host,
            self.port,
            "TLS" if self.config.tls_cert else "plaintext",
            "token" if self.config.token else "no token",
            f"on :{self.metrics_port}/metrics" if self.metrics_port else "off",
        )

    def set_model(self, model: GeneratorModel | None) -> None:
        """Serve ``model`` (health SERVING) or none (NOT_SERVING; Generate → UNAVAILABLE)."""
        self.holder.set(model)
        self.server.set_serving(model is not None)

    def stop(self, grace: float | None, announce_seconds: float = 0.0) -> threading.Event:
        """Health NOT_SERVING at once; after ``announce_seconds`` refuse new calls, let
        in-flight ones finish within ``grace`` seconds, then cancel the rest. Returns an event
        set once everything has stopped."""
        done = self.server.stop(grace, announce_seconds)
        finished = threading.Event()

        def cleanup() -> None:
            done.wait()
            self.encoders.shutdown(wait=True, cancel_futures=True)
            if self.runner is not None:
                self.runner.shutdown(wait=True, cancel_futures=True)
            self.metrics.stop_http()
            finished.set()

        threading.Thread(target=cleanup, name="dermsynth-shutdown", daemon=True).start()
        return finished


def create_server(
    config: ServeConfig, *, model: GeneratorModel | None = None, load: bool = True
) -> tuple[GeneratorServer, int]:
    """Build and bind the server; return it (not started) and its port (``port=0`` → free).

    The model is ``model``, else loaded from ``config.model`` when ``load`` is true: a missing,
    corrupt or mismatched model raises :class:`~serving.model.ModelError` before any port is
    bound. With ``load=False`` and no model the server starts NOT_SERVING and answers
    Generate/GetModelInfo with UNAVAILABLE until :meth:`GeneratorServer.set_model`.
    Threads, limits, auth, parsing and idle streams: :func:`common.grpc_server.build_server`.
    """
    if model is None and load:
        threads = config.threads or max(1, (os.cpu_count() or 1) // config.inference_workers)
        model = load_model(
            config.model,
            provider=config.provider,
            threads=threads,
            inter_threads=config.inter_threads,
            inference_batch=config.inference_batch,
            spinning=config.ort_spinning,
        )
    metrics = Metrics()
    holder = ModelHolder()
    encoders = ThreadPoolExecutor(config.encode_threads, thread_name_prefix="dermsynth-encode")
    runner = (
        ThreadPoolExecutor(config.inference_workers, thread_name_prefix="dermsynth-infer")
        if config.inference_workers > 1
        else None
    )
    limits = Limits(
        max_count=config.max_count,
        max_batch_size=config.max_batch_size,
        default_batch_size=config.default_batch_size,
        max_message_bytes=config.max_message_bytes,
    )
    servicer = GeneratorServicer(
        holder,
        limits,
        max_streams=config.max_streams,
        encoders=encoders,
        prefetch=config.prefetch,
        metrics=metrics,
        runner=runner,
        lookahead=config.inference_workers,
    )
    try:
        server = build_server(
            service_name=SERVICE_NAME,
            add_servicers=lambda s: pb_grpc.add_GeneratorServicer_to_server(servicer, s),
            stream_name="Generate",
            stream_methods=(GENERATE_METHOD,),
            stream_limit=config.max_streams,
            transport=config,
            max_message_bytes=config.max_message_bytes,
        )
    except UserError:
        encoders.shutdown(wait=False)
        if runner is not None:
            runner.shutdown(wait=False)
        raise
    handle = GeneratorServer(server, config, holder, metrics, encoders, server.port, runner=runner)
    handle.set_model(model)
    return handle, server.port


def fix_mmap_threshold(threshold: int = 256 * 1024) -> bool:
    """Have glibc serve allocations >= ``threshold`` bytes (model outputs, encoded batches) by
    mmap and return them to the system when freed.

    glibc otherwise raises its mmap threshold after the first large free, and the per-thread
    heaps of the producer, encoder and gRPC threads then fragment: measured with
    bench/serve_bench.py's pattern (4 clients, batch 64, 64 px), RSS rose by ~120 MiB per
    20,000 images without this, and stays flat with it. Returns False where mallopt is missing
    (not glibc).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(-3, threshold))  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        return False


def serve(config: ServeConfig) -> int:
    """Run the server until SIGTERM or SIGINT, then drain within ``config.grace_seconds``."""
    log.info("config %s", json.dumps(config.for_log(), sort_keys=True))
    fix_mmap_threshold()
    server, port = create_server(config)
    with termination_signals() as wait_for_signal:
        server.start()
        log.info(
            "%s received: health NOT_SERVING; refusing new calls in %.1f s, then draining "
            "streams for up to %.1f s",
            wait_for_signal(),
            config.drain_announce_seconds,
            config.grace_seconds,
        )
        server.stop(config.grace_seconds, config.drain_announce_seconds).wait()
        log.info("stopped")
    return 0
