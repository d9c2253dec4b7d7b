"""Client-side channels and call metadata, shared by the fetch client and the probe commands."""

from __future__ import annotations

from pathlib import Path

import grpc

from common.errors import UserError

# Client receive limit: comfortably above any batch a server will send (servers cap theirs).
MAX_RECEIVE_BYTES = 256 << 20


def open_channel(target: str, *, root_cert: Path | None = None) -> grpc.Channel:
    """A channel to ``target`` (HOST:PORT): TLS trusting ``root_cert`` if given, else plaintext."""
    options = [("grpc.max_receive_message_length", MAX_RECEIVE_BYTES)]
    if root_cert is None:
        return grpc.insecure_channel(target, options=options)
    try:
        pem = Path(root_cert).read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read the TLS root certificate {root_cert}: {exc}") from None
    return grpc.secure_channel(
        target, grpc.ssl_channel_credentials(root_certificates=pem), options=options
    )


def call_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    """The ``authorization: Bearer <token>`` metadata, or none."""
    return (("authorization", f"Bearer {token}"),) if token else ()


def describe_rpc_error(exc: grpc.RpcError) -> str:
    """'CODE: details' of a failed call, for messages to users."""
    code = exc.code() if hasattr(exc, "code") else None
    details = exc.details() if hasattr(exc, "details") else str(exc)
    return f"{code.name if code else 'UNKNOWN'}: {details}"
