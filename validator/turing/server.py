"""The web server of the visual Turing test: uvicorn over :func:`validator.turing.app.create_app`,
with header-size and concurrency limits, no access log (links hold the raters' secrets) and no
``Server`` header. :func:`create_server` is apart from :func:`serve` so that tests can run a real
server on a socket bound to port 0."""

from __future__ import annotations

import logging
import socket

from common.errors import UserError
from validator.turing.config import TuringServeConfig
from validator.turing.store import Store, Study

log = logging.getLogger("validator.turing")


def create_server(store: Store, study: Study, token: str, *, host: str, port: int):
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
        limit_concurrency=64,
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
