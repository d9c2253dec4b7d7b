"""Bearer-token authentication for both gRPC servers (RFC 6750 style metadata).

Every call must carry ``authorization: Bearer <token>`` metadata, except the standard health
check (``grpc.health.v1.Health/Check``), which stays open so that Kubernetes probes and the
container HEALTHCHECK work without the secret (it reveals only SERVING/NOT_SERVING). Health
``Watch`` is a long-lived stream with two slots: open, two anonymous watchers could hold them
for a connection's life, so it needs the token.
Reflection, unknown methods and the services' own methods need the token. Tokens are compared
in constant time, and a refused call is answered without reading its request: nothing a
caller without the token sends is ever parsed. The rule for a usable token is
:func:`common.server_config.check_token`, checked again by the interceptor.
"""

from __future__ import annotations

import hmac

import grpc

from common.server_config import check_token

OPEN_METHODS = frozenset({"/grpc.health.v1.Health/Check"})


def deny_handler(code: grpc.StatusCode, message: str) -> grpc.RpcMethodHandler:
    """A handler that aborts with ``code`` at once. It is request-streaming whatever the
    method, so grpc never waits for (nor parses) a request message before the refusal."""

    def abort(_request_iterator, context):
        context.abort(code, message)

    return grpc.stream_unary_rpc_method_handler(abort)


class BearerTokenInterceptor(grpc.ServerInterceptor):
    """Refuses calls without the right bearer token with UNAUTHENTICATED (unknown methods
    included, so that a caller without the token learns nothing about the method table)."""

    def __init__(self, token: str) -> None:
        check_token(token)
        self._expected = f"Bearer {token}".encode()

    def intercept_service(self, continuation, handler_call_details):
        method = handler_call_details.method or ""
        if method in OPEN_METHODS:
            return continuation(handler_call_details)
        given = None
        for key, value in handler_call_details.invocation_metadata or ():
            if key == "authorization":
                given = value.encode() if isinstance(value, str) else value
                break
        if given is None:
            return deny_handler(
                grpc.StatusCode.UNAUTHENTICATED, "missing 'authorization: Bearer <token>' metadata"
            )
        if not hmac.compare_digest(given, self._expected):
            return deny_handler(grpc.StatusCode.UNAUTHENTICATED, "invalid bearer token")
        return continuation(handler_call_details)
