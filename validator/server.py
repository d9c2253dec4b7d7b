"""The validation server: :func:`create_server` (tests call it on port 0) and :func:`serve`
(the CLI: bind, load the feature model, run until SIGTERM/SIGINT, drain).

Built on the same scaffolding as the generator (:func:`common.grpc_server.build_server`): TLS,
bearer token, ``--host`` (127.0.0.1 by default), reserved capacity so that health checks are
always answered, requests parsed inside the call, streams whose reader stopped reading
cancelled after ``--stream-idle-seconds``. Standard services beside ``dermsynth.v1.Validator``:
``grpc.health.v1`` (NOT_SERVING until the Xception feature model is loaded, then SERVING, and
NOT_SERVING again while draining) and server reflection. Requests name paths on the server, so
the server refuses to listen beyond the loopback interface without a token.
"""

from __future__ import annotations

import json
import logging
import threading

from common.errors import UserError
from common.grpc_server import GrpcServer, build_server, is_loopback, termination_signals
from protos.dermsynth.v1 import validator_pb2 as pb
from protos.dermsynth.v1 import validator_pb2_grpc as pb_grpc
from validator.config import ValidatorServerConfig
from validator.features import FeatureModel
from validator.service import ValidatorServicer

log = logging.getLogger(__name__)
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Validator"].full_name
VALIDATE_METHOD = f"/{SERVICE_NAME}/Validate"


class ValidatorServer:
    """A bound (not yet started) gRPC server with its health and validator servicers."""

    def __init__(self, server: GrpcServer, servicer: ValidatorServicer):
        self.server, self.servicer = server, servicer
        self.grpc_server, self.health, self.port = server.grpc_server, server.health, server.port

    def start(self) -> None:
        self.server.start()

    def set_model(self, model: FeatureModel | None) -> None:
        self.servicer.model = model
        self.server.set_serving(model is not None)

    def load_model(self) -> FeatureModel:
        """Load the configured feature model and turn health SERVING."""
        model = FeatureModel(
            self.servicer.config.features_model, threads=self.servicer.config.threads
        )
        self.set_model(model)
        log.info("feature model loaded: %s", model.info.label())
        return model

    def stop(self, grace: float | None = None, announce_seconds: float = 0.0) -> threading.Event:
        """Health NOT_SERVING at once; after ``announce_seconds`` refuse new calls and let
        running validations finish within ``grace`` seconds."""
        return self.server.stop(grace, announce_seconds)


def create_server(
    config: ValidatorServerConfig, *, model: FeatureModel | None = None
) -> tuple[ValidatorServer, int]:
    """Build and bind the server (``config.port`` 0 picks a free port); health is NOT_SERVING
    until a model is given here or :meth:`ValidatorServer.load_model` runs. Raises UserError
    for a non-loopback ``host`` without a token, unusable TLS files or a busy port."""
    if config.features_model is None and model is None:
        raise UserError("--features-model is required to serve")
    if not config.token and not is_loopback(config.host):
        raise UserError(
            f"--host {config.host}: Validate requests name paths on this server, so "
            "it listens beyond the loopback interface only with a token "
            "($DERMSYNTH_VALIDATOR_SERVE_TOKEN or --token)"
        )
    servicer = ValidatorServicer(config)
    server = build_server(
        service_name=SERVICE_NAME,
        add_servicers=lambda s: pb_grpc.add_ValidatorServicer_to_server(servicer, s),
        stream_name="Validate",
        stream_methods=(VALIDATE_METHOD,),
        # the servicer refuses validations beyond max_workers with a clear message; the
        # guard's own limit leaves room for those refusals and for calls finishing
        stream_limit=config.max_workers + 2,
        transport=config,
    )
    handle = ValidatorServer(server, servicer)
    handle.set_model(model)
    return handle, server.port


def serve(config: ValidatorServerConfig) -> int:
    """Run until SIGTERM or SIGINT, then drain (``drain_announce_seconds`` of NOT_SERVING, then
    up to ``grace_seconds`` for running validations). The server is stopped on every way out,
    a feature model that fails to load included."""
    log.info("config %s", json.dumps(config.for_log(), sort_keys=True))
    handle, port = create_server(config)
    announce = 0.0
    with termination_signals() as wait_for_signal:
        try:
            handle.start()
            log.info(
                "dermsynth.v1.Validator listening on %s:%d (%s, %s; NOT_SERVING until the "
                "model loads)",
                config.host,
                port,
                "TLS" if config.tls_cert else "plaintext",
                "token" if config.token else "no token",
            )
            handle.load_model()
            log.info(
                "%s received: health NOT_SERVING; refusing new calls in %.1f s, then "
                "draining for up to %.1f s",
                wait_for_signal(),
                config.drain_announce_seconds,
                config.grace_seconds,
            )
            announce = config.drain_announce_seconds
        finally:
            handle.stop(config.grace_seconds, announce).wait()
    return 0
