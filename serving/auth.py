"""Bearer-token authentication as a gRPC server interceptor (RFC 6750 style metadata).

Every call must carry ``authorization: Bearer <token>`` metadata, except the standard health
service (``grpc.health.v1.Health``), which stays open so that Kubernetes probes and the
container HEALTHCHECK work without the secret (health reveals only SERVING/NOT_SERVING).
Reflection and the Generator service need the token. Tokens are compared in constant time.
"""

from __future__ import annotations

import hmac

import grpc

OPEN_SERVICES = ("/grpc.health.v1.Health/",)


def _deny(code: grpc.StatusCode, message: str, handler: grpc.RpcMethodHandler):
    """A handler of the same kind as ``handler`` that only aborts with ``code``."""

    def abort(_request, context):
        context.abort(code, message)

    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(abort)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(abort)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(abort)
    return grpc.unary_unary_rpc_method_handler(abort)


class BearerTokenInterceptor(grpc.ServerInterceptor):
    """Refuses calls without the right bearer token with UNAUTHENTICATED."""

    def __init__(self, token: str) -> None:
        self._expected = f"Bearer {token}".encode()

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        method = handler_call_details.method or ""
        if handler is None or method.startswith(OPEN_SERVICES):
            return handler
        given = None
        for key, value in handler_call_details.invocation_metadata or ():
            if key == "authorization":
                given = value.encode() if isinstance(value, str) else value
                break
        if given is None:
            return _deny(grpc.StatusCode.UNAUTHENTICATED,
                         "missing 'authorization: Bearer <token>' metadata", handler)
        if not hmac.compare_digest(given, self._expected):
            return _deny(grpc.StatusCode.UNAUTHENTICATED, "invalid bearer token", handler)
        return handler
