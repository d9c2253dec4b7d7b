"""What the configs of both gRPC servers (``serving``, ``validator serve``) share: where and how
they listen (:class:`ServerTransport`: address, TLS, bearer token, drain and idle timeouts) and
the rule for tokens (:func:`check_token`), validated in one place.

Each server's config is a frozen dataclass that inherits :class:`ServerTransport` and adds its
own options; its ``validate()`` calls ``ServerTransport.validate(self)``. A server with another
default port or idle timeout redeclares that one field with :func:`port_option` /
:func:`idle_option`. Flags and environment variables are derived from the field names as for
every config (:mod:`common.config`), so they read the same on both servers.

Imports no grpc: the configs are read by ``--help`` and by tests that start no server.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from common.config import ConfigError, option, to_dict


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
        raise ConfigError(
            f"{option}: the token contains {bad!a} {where}; only printable "
            "ASCII without spaces can be sent as gRPC metadata (a trailing newline "
            "from a secret file or `echo`?)"
        )


def port_option(default: int) -> Any:
    """The ``port`` field, with a server's own default port."""
    return field(
        default=default, metadata=option("gRPC port (0: any free port)", minimum=0, maximum=65535)
    )


def idle_option(default: float) -> Any:
    """The ``stream_idle_seconds`` field, with a server's own default."""
    return field(
        default=default,
        metadata=option(
            "cancel a stream whose client has read nothing for this long (a reader that stopped "
            "reading), freeing its place",
            minimum=0.1,
            maximum=86400,
        ),
    )


@dataclass(frozen=True, kw_only=True)
class ServerTransport:
    """How a gRPC server listens: address, TLS, bearer token, drain and idle timeouts."""

    OPTIONS_TITLE: ClassVar[str] = "listening and security"

    host: str = field(
        default="127.0.0.1",
        metadata=option(
            "address to listen on (0.0.0.0 or [::]: every interface, as in a container; set a "
            "token then)"
        ),
    )
    port: int = port_option(0)  # each server redeclares it with its own default
    token: str | None = field(
        default=None,
        repr=False,
        metadata=option(
            "bearer token every call except the health check must carry as 'authorization: Bearer "
            "<token>' metadata (better set as {env} than as a flag)"
        ),
    )
    tls_cert: Path | None = field(
        default=None, metadata=option("PEM certificate chain: serve TLS (needs --tls-key)")
    )
    tls_key: Path | None = field(default=None, metadata=option("PEM private key for --tls-cert"))
    grace_seconds: float = field(
        default=30.0,
        metadata=option("on SIGTERM/SIGINT, how long running calls may take to finish", minimum=0),
    )
    drain_announce_seconds: float = field(
        default=2.0,
        metadata=option(
            "on SIGTERM/SIGINT, how long health answers NOT_SERVING while calls are still "
            "accepted, before the listener closes and --grace-seconds begins",
            minimum=0,
            maximum=300,
        ),
    )
    stream_idle_seconds: float = idle_option(30.0)

    def validate(self) -> None:
        """TLS files given in pairs and present; a token a client can send."""
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("--tls-cert and --tls-key go together: give both or neither")
        for name, path in (("--tls-cert", self.tls_cert), ("--tls-key", self.tls_key)):
            if path is not None and not path.is_file():
                raise ConfigError(f"{name}: {path} is not a file")
        check_token(self.token, "--token")

    def for_log(self) -> dict:
        """The resolved config as a JSON-ready dict, secrets (fields with ``repr=False``, the
        tokens) shown only as ``<set>`` (logged at start)."""
        out = to_dict(self)
        for f in dataclasses.fields(self):
            if not f.repr:
                out[f.name] = "<set>" if out[f.name] else None
        return out
