"""The Starlette app of the visual Turing test.

Raters (no token; the session id in the link is their secret):

- ``GET /r/{session}``: the current image with the answer form (real / synthetic, confidence
  1-5; keyboard shortcuts, progress bar), or the thank-you page when all are answered. The
  current image is the first unanswered one, so closing the tab and reopening the link resumes.
- ``POST /r/{session}``: one answer, committed to SQLite before the reply (a 303 back to the
  page, which then shows the next image). A repeated or stale answer changes nothing.
- ``GET /i/{token}``: an image by its opaque per-session token, served only once every earlier
  image of the session is answered. Every image response carries the same headers (the same
  Content-Length, as all the study's PNGs have the same byte size) and ``no-store``.

Admin (the token as ``Authorization: Bearer``, or the cookie set by the login form):
``/admin`` (results with thumbnails, raters and their links, a form for a new rater link),
``POST /admin/sessions``, ``POST /admin/api/sessions`` (JSON), ``/admin/results.json``,
``/admin/results.csv``.

Ids are looked up in the database and never used as paths; an unknown id, like any unknown
URL, gets a bare 404. Request bodies over :data:`~validator.turing.config.MAX_BODY_BYTES` get
413. Every response carries ``Cache-Control: no-store`` and a strict Content-Security-Policy.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
from pathlib import Path
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from validator.turing import stats
from validator.turing.config import MAX_BODY_BYTES
from validator.turing.store import Store, Study
from validator.turing.study import new_session

HERE = Path(__file__).parent
COOKIE = "dermsynth_turing_admin"
FAILED_LOGIN_DELAY = 0.5  # seconds
ID = re.compile(r"[A-Za-z0-9_-]{8,64}")
HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
    "script-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
}


class SecurityHeaders:
    """ASGI middleware: the same fixed headers on every HTTP response."""

    def __init__(self, app):
        self.app = app
        self.extra = [(k.lower().encode(), v.encode()) for k, v in HEADERS.items()]

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def sending(message):
            if message["type"] == "http.response.start":
                names = {k for k, _ in self.extra}
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                message = {**message, "headers": kept + self.extra}
            await send(message)

        return await self.app(scope, receive, sending)


def _not_found(_request=None, _exc=None) -> Response:
    return PlainTextResponse("Not Found", status_code=404)


async def _http_error(_request, exc: HTTPException) -> Response:
    if exc.status_code == 404:
        return _not_found()
    return PlainTextResponse(exc.detail or "error", status_code=exc.status_code)


async def read_form(request: Request) -> dict[str, str]:
    """A small urlencoded form: 413 over MAX_BODY_BYTES, 400 for anything else odd."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
        raise HTTPException(413, "request too large")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise HTTPException(413, "request too large")
    try:
        fields = parse_qs(body.decode("ascii"), max_num_fields=8, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        raise HTTPException(400, "bad request") from None
    return {k: v[0] for k, v in fields.items()}


def create_app(store: Store, study: Study, token: str) -> Starlette:
    """The app serving ``study`` from ``store``; ``token`` guards the admin pages."""
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    expected_bearer = f"Bearer {token}".encode()
    cookie_value = hmac.new(token.encode(), b"dermsynth-turing-admin", hashlib.sha256).hexdigest()

    def is_admin(request: Request) -> bool:
        given = request.headers.get("authorization")
        if given is not None:
            return hmac.compare_digest(given.encode("latin-1", "replace"), expected_bearer)
        cookie = request.cookies.get(COOKIE)
        return cookie is not None and hmac.compare_digest(
            cookie.encode("latin-1", "replace"), cookie_value.encode()
        )

    def session_of(request: Request) -> str:
        session = request.path_params["session"]
        if not ID.fullmatch(session) or store.session_study(session) != study.name:
            raise HTTPException(404)
        return session

    def rater_page(request: Request) -> Response:
        session = session_of(request)
        trial = store.current(session)
        if trial is None:
            raise HTTPException(404)
        context = {"study": study.name, "total": trial.total, "done": not trial.token}
        if trial.token:
            context |= {
                "position": trial.position,
                "number": trial.position + 1,
                "percent": round(100 * trial.position / trial.total),
                "image": f"/i/{trial.token}",
                "size": study.size,
                "action": f"/r/{session}",
            }
        return templates.TemplateResponse(request, "rater.html", context)

    async def answer(request: Request) -> Response:
        session = session_of(request)
        form = await read_form(request)
        try:
            position = int(form.get("position", ""))
            confidence = int(form.get("confidence", ""))
        except ValueError:
            raise HTTPException(400, "bad answer") from None
        choice = form.get("answer")
        if choice not in ("real", "synthetic") or not 1 <= confidence <= 5:
            raise HTTPException(400, "bad answer")
        store.answer(session, position, choice, confidence)  # committed when it returns
        return RedirectResponse(f"/r/{session}", status_code=303)

    def image(request: Request) -> Response:
        token_ = request.path_params["token"]
        data = store.image(token_) if ID.fullmatch(token_) else None
        if data is None:
            raise HTTPException(404)
        return Response(data, media_type="image/png")

    def admin(request: Request) -> Response:
        if not is_admin(request):
            return templates.TemplateResponse(request, "login.html", {"failed": False})
        doc = results_of(store, study)
        thumbs = {
            idx: "data:image/png;base64," + base64.b64encode(png).decode("ascii")
            for idx, png in store.thumbs(study.name).items()
        }
        base = str(request.base_url).rstrip("/")
        sessions = [{**s, "link": f"{base}/r/{s['id']}"} for s in store.sessions(study.name)]
        return templates.TemplateResponse(
            request,
            "admin.html",
            {"study": study.name, "r": doc, "thumbs": thumbs, "sessions": sessions},
        )

    async def login(request: Request) -> Response:
        form = await read_form(request)
        given = form.get("token", "").encode("utf-8", "replace")
        if not hmac.compare_digest(given, token.encode()):
            await asyncio.sleep(FAILED_LOGIN_DELAY)  # slows guessing down
            return templates.TemplateResponse(
                request, "login.html", {"failed": True}, status_code=403
            )
        response = RedirectResponse("/admin", status_code=303)
        response.set_cookie(COOKIE, cookie_value, httponly=True, samesite="strict", path="/")
        return response

    def require_admin(request: Request) -> None:
        if not is_admin(request):
            raise HTTPException(403, "the admin token is needed")

    async def add_session(request: Request) -> Response:
        require_admin(request)
        form = await read_form(request)
        new_session(store, study, form.get("rater", ""))
        return RedirectResponse("/admin#raters", status_code=303)

    async def add_session_api(request: Request) -> Response:
        require_admin(request)
        form = await read_form(request)
        session = new_session(store, study, form.get("rater", ""))
        base = str(request.base_url).rstrip("/")
        return JSONResponse({"session": session, "link": f"{base}/r/{session}"})

    def results_json(request: Request) -> Response:
        require_admin(request)
        return JSONResponse(results_of(store, study))

    def results_csv(request: Request) -> Response:
        require_admin(request)
        return Response(
            stats.csv_text(store.answers(study.name)),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{study.name}.csv"'},
        )

    routes = [
        Route("/r/{session}", rater_page, methods=["GET"]),
        Route("/r/{session}", answer, methods=["POST"]),
        Route("/i/{token}", image, methods=["GET"]),
        Route("/admin", admin, methods=["GET"]),
        Route("/admin/login", login, methods=["POST"]),
        Route("/admin/sessions", add_session, methods=["POST"]),
        Route("/admin/api/sessions", add_session_api, methods=["POST"]),
        Route("/admin/results.json", results_json, methods=["GET"]),
        Route("/admin/results.csv", results_csv, methods=["GET"]),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: _http_error})
    app.add_middleware(SecurityHeaders)
    return app


def results_of(store: Store, study: Study) -> dict:
    """The results object of ``study`` (see :func:`validator.turing.stats.results`)."""
    return stats.results(
        study, store.image_roles(study.name), store.sessions(study.name), store.answers(study.name)
    )
