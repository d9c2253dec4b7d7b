"""The web server of the visual Turing test: uvicorn over :func:`validator.turing.app.create_app`,
with header-size and concurrency limits, a deadline for each request to arrive whole (a client
that trickles its headers or body cannot hold one of the connection slots), no access log
(links hold the raters' secrets) and no ``Server`` header. :func:`create_server` is apart from
:func:`serve` so that tests can run a real server on a socket bound to port 0."""

from __future__ import annotations

import logging
import socket

from common.errors import UserError
from validator.turing.config import TuringServeConfig
from validator.turing.store import Store, Study

log = logging.getLogger("validator.turing")
REQUEST_DEADLINE_S = 10.0  # a request's line, headers and body must all arrive within this
MAX_CONNECTIONS = 64


def _deadline_protocol(deadline: float):
    """uvicorn's h11 protocol, closing a connection whose request has not arrived whole within
    ``deadline`` seconds of the connection (or of the previous response). uvicorn has no such
    timeout of its own: its keep-alive timer stops at the first byte of a request."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class DeadlineH11Protocol(H11Protocol):
        _deadline = None

        def _arm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
            self._deadline = self.loop.call_later(deadline, self._expire)

        def _expire(self) -> None:
            if self.conn.their_state is not h11.DONE and not self.transport.is_closing():
                self.transport.close()  # the request is still incomplete: drop it

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._arm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()

        def connection_lost(self, exc) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
            super().connection_lost(exc)

    return DeadlineH11Protocol


def create_server(
    store: Store,
    study: Study,
    token: str,
    *,
    host: str,
    port: int,
    request_deadline: float = REQUEST_DEADLINE_S,
):
    """A uvicorn.Server for ``study``, not yet running."""
    import uvicorn

    from validator.turing.app import create_app

    config = uvicorn.Config(
        create_app(store, study, token),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        server_header=False,
        proxy_headers=False,
        h11_max_incomplete_event_size=16 * 1024,  # request line + headers
        http=_deadline_protocol(request_deadline),
        limit_concurrency=MAX_CONNECTIONS,
        timeout_keep_alive=5,
        lifespan="off",
    )
    return uvicorn.Server(config)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0: any free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(128)
    return sock


def serve(config: TuringServeConfig, token: str) -> int:
    from validator.turing.study import open_study

    if not config.db.parent.is_dir():
        raise UserError(f"--db {config.db}: its folder does not exist")
    store = Store(config.db)
    study, created = open_study(
        store,
        config.study,
        config.real,
        config.synthetic,
        per_rater=config.per_rater,
        size=config.size,
        seed=config.seed,
    )
    n = len(store.image_roles(study.name))
    sock = bind(config.host, config.port)
    port = sock.getsockname()[1]
    shown = f"[{config.host}]" if ":" in config.host else config.host
    print(
        f"study {study.name} ({'created' if created else 'resumed'}): {n} images per rater at "
        f"{study.size} px; {len(store.sessions(study.name))} rater link(s)\n"
        f"admin page (results, rater links): http://{shown}:{port}/admin",
        flush=True,
    )
    if config.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("listening beyond loopback on %s: put TLS (a reverse proxy) in front", shown)
    create_server(store, study, token, host=config.host, port=port).run(sockets=[sock])
    return 0
