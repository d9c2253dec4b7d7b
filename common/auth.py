"""Bearer-token authentication for both gRPC servers (RFC 6750 style metadata).

Every call must carry ``authorization: Bearer <token>`` metadata, except the standard health
check (``grpc.health.v1.Health/Check``), which stays open so that Kubernetes probes and the
container HEALTHCHECK work without the secret (it reveals only SERVING/NOT_SERVING). Health
``Watch`` is a long-lived stream with two slots: open, two anonymous watchers could hold them
for a connection's life, so it needs the token.
Reflection, unknown methods and the services' own methods need the token. Tokens are compared
in constant time, and a refused call is answered without reading its request: nothing a
caller without the token sends is ever parsed.
"""

from __future__ import annotations

import hmac

import grpc

from common.errors import ConfigError

OPEN_METHODS = frozenset({"/grpc.health.v1.Health/Check"})


def check_token(token: str | None, option: str = "--token") -> None:
    """Refuse a token that no client could send or that would let anyone in: empty, or with
    whitespace, control or non-ASCII characters (gRPC metadata values are printable ASCII, so
    a token read with its trailing newline would lock every client out)."""
    if token is None:
        return
    if not token.strip():
        raise ConfigError(f"{option}: an empty token would let anyone in; leave it unset")
    bad = next((c for c in token if not "\x21" <= c <= "\x7e"), None)
    if bad is not None:
        where = "at its end" if token.rstrip() != token else f"at position {token.index(bad)}"
        raise ConfigError(f"{option}: the token contains {ascii(bad)} {where}; only printable "
                          "ASCII without spaces can be sent as gRPC metadata (a trailing newline "
                          "from a secret file or `echo`?)")


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
            return deny_handler(grpc.StatusCode.UNAUTHENTICATED,
                                "missing 'authorization: Bearer <token>' metadata")
        if not hmac.compare_digest(given, self._expected):
            return deny_handler(grpc.StatusCode.UNAUTHENTICATED, "invalid bearer token")
        return continuation(handler_call_details)
