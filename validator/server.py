"""The validation server: :func:`create_server` (tests call it on port 0) and :func:`serve`
(the CLI: bind, load the feature model, run until SIGTERM/SIGINT).

Standard gRPC services beside ``dermsynth.v1.Validator``: ``grpc.health.v1`` (NOT_SERVING until
the Xception feature model is loaded, then SERVING) and server reflection.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import grpc
from grpc_health.v1 import health

from common.errors import UserError
from common.grpc_server import (NO_REUSEPORT, add_standard_services, bind, set_serving,
                                termination_signals)
from protos.dermsynth.v1 import validator_pb2 as pb
from protos.dermsynth.v1 import validator_pb2_grpc as pb_grpc
from validator.config import ValidateConfig
from validator.features import FeatureModel
from validator.service import ValidatorServicer

log = logging.getLogger(__name__)
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Validator"].full_name
_EXTRA_WORKERS = 4  # health checks and refused calls beside running validations


class ValidatorServer:
    """A bound (not yet started) gRPC server with its health and validator servicers."""

    def __init__(self, server: grpc.Server, servicer: ValidatorServicer,
                 health_servicer: health.HealthServicer, port: int):
        self.grpc_server, self.servicer, self.health, self.port = (
            server, servicer, health_servicer, port)

    def start(self) -> None:
        self.grpc_server.start()

    def set_model(self, model: FeatureModel | None) -> None:
        self.servicer.model = model
        set_serving(self.health, SERVICE_NAME, model is not None)

    def load_model(self) -> FeatureModel:
        """Load the configured feature model and turn health SERVING."""
        model = FeatureModel(self.servicer.config.features_model,
                             threads=self.servicer.config.threads)
        self.set_model(model)
        log.info("feature model loaded: %s", model.info.label())
        return model

    def stop(self, grace: float | None = None) -> threading.Event:
        self.health.enter_graceful_shutdown()
        return self.grpc_server.stop(grace)


def create_server(config: ValidateConfig, *, model: FeatureModel | None = None,
                  host: str = "[::]") -> tuple[ValidatorServer, int]:
    """Build and bind the server (``config.port`` 0 picks a free port); health is NOT_SERVING
    until a model is given here or :meth:`ValidatorServer.load_model` runs."""
    if config.features_model is None and model is None:
        raise UserError("--features-model is required to serve")
    server = grpc.server(ThreadPoolExecutor(max_workers=config.max_workers + _EXTRA_WORKERS),
                         maximum_concurrent_rpcs=config.max_workers + _EXTRA_WORKERS,
                         options=[NO_REUSEPORT])
    servicer = ValidatorServicer(config)
    pb_grpc.add_ValidatorServicer_to_server(servicer, server)
    health_servicer = add_standard_services(server, SERVICE_NAME)
    port = bind(server, host, config.port)
    handle = ValidatorServer(server, servicer, health_servicer, port)
    handle.set_model(model)
    return handle, port


def serve(config: ValidateConfig) -> int:
    """Run until SIGTERM or SIGINT, then let running validations finish for up to 30 s. The
    server is stopped on every way out, a feature model that fails to load included."""
    handle, port = create_server(config)
    with termination_signals() as wait_for_signal:
        try:
            handle.start()
            log.info("validator listening on port %d (NOT_SERVING until the model loads)", port)
            handle.load_model()
            log.info("%s received: shutting down", wait_for_signal())
        finally:
            handle.stop(grace=30).wait()
    return 0
