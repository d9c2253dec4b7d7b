"""The web app over real HTTP (a real uvicorn server on port 0): nothing gives the source of an
image away, ids map to database rows only, the admin token guards admin pages, request sizes are
limited, answers are final and studies immutable."""

from __future__ import annotations

import difflib
import http.client
import io
import re
import socket
import sqlite3
import struct
import time
from urllib.parse import urlsplit

import pytest
from PIL import Image

from tests.validator.turing.conftest import TOKEN, get, post, start

IMG = re.compile(r'src="(/i/[A-Za-z0-9_-]+)"')


def png_chunks(data: bytes) -> list[str]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, at = [], 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        chunks.append(data[at + 4 : at + 8].decode("ascii"))
        at += 12 + length
    return chunks


def raw_get(url: str, path: str) -> tuple[int, bytes]:
    """GET ``path`` exactly as written (no client-side normalisation)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def role_of(live, image_path: str) -> str:
    with sqlite3.connect(live.store.path) as db:
        (role,) = db.execute(
            "SELECT i.role FROM trials t JOIN images i ON i.idx = t.image WHERE t.token = ?",
            (image_path.rsplit("/", 1)[1],),
        ).fetchone()
    return role


def test_real_and_synthetic_images_are_served_alike_and_nothing_names_them(live):
    link = live.new_rater("alice")
    names = [name for _idx, _role, name in live.store.image_roles(live.study.name)]
    pages, headers, sizes, roles = {}, {}, set(), []
    for position in range(8):
        status, _h, html = get(link)
        assert status == 200
        html = html.decode()
        (src,) = IMG.findall(html)
        role = role_of(live, src)
        roles.append(role)
        status, h, data = get(live.url + src)
        assert status == 200
        h.pop("date", None), h.pop("Date", None)
        headers.setdefault(role, set()).add(tuple(sorted(h.items())))
        sizes.add(len(data))
        # the same format and encoder settings, no metadata at all (no EXIF)
        chunks = png_chunks(data)
        assert chunks[0] == "IHDR" and chunks[-1] == "IEND" and set(chunks[1:-1]) == {"IDAT"}
        with Image.open(io.BytesIO(data)) as img:
            assert (img.format, img.mode, img.size) == ("PNG", "RGB", (64, 64))
            assert not img.getexif() and "exif" not in img.info and "icc_profile" not in img.info
        # no file name, number or source in the page or the URLs
        for name in names:
            stem = name.rsplit(".", 1)[0]
            assert stem not in html and stem not in src, name
        assert ".jpg" not in html and ".png" not in html
        normalised = re.sub(r"\b\d+\b", "N", html.replace(src, "IMG"))
        pages.setdefault(role, set()).add(normalised)
        # the next image is not served before this answer is committed
        with sqlite3.connect(live.store.path) as db:
            nxt = db.execute(
                "SELECT token FROM trials WHERE position = ? AND session = ?",
                (position + 1, link.rsplit("/", 1)[1]),
            ).fetchone()
        if nxt:
            assert get(f"{live.url}/i/{nxt[0]}")[0] == 404
        assert post(link, {"position": position, "answer": "real", "confidence": 3})[0] == 303
    assert sorted(roles) == ["real"] * 4 + ["synthetic"] * 4
    assert len(sizes) == 1, sizes  # every PNG has the same byte length
    assert headers["real"] == headers["synthetic"] and len(headers["real"]) == 1
    (only,) = headers["real"]
    assert dict(only)["cache-control"] == "no-store"
    assert not {"etag", "last-modified"} & {k.lower() for k, _ in only}
    assert len(pages["real"]) == 1, "\n".join(
        difflib.unified_diff(*(p.splitlines() for p in list(pages["real"])[:2]), lineterm="")
    )
    assert pages["real"] == pages["synthetic"]
    status, _h, html = get(link)
    assert status == 200 and b'id="done"' in html


def test_unknown_ids_and_paths_give_a_bare_404(live):
    link = live.new_rater("bob")
    session = link.rsplit("/", 1)[1]
    bare = raw_get(live.url, "/no/such/page")
    assert bare == (404, b"Not Found")
    for path in (
        "/r/AAAAAAAAAAAAAAAAAAAAAAAA",
        f"/r/{session[:-1]}{'A' if session[-1] != 'A' else 'B'}",  # one character off
        "/i/AAAAAAAAAAAAAAAAAAAAAAAA",
        "/i/" + "A" * 5000,
        "/i/..%2F..%2F..%2Fetc%2Fpasswd",
        "/i/../../etc/passwd",
        "/static/../app.py",
        "/static/..%2Fapp.py",
        "/static/%2e%2e/store.py",
        "/static/../../../../etc/passwd",
        "/r/%2e%2e/%2e%2e/etc/passwd",
        "/static/",
        "/",
    ):
        status, body = raw_get(live.url, path)
        assert (status, body) == bare, path
    assert raw_get(live.url, "/static/turing.css")[0] == 200
    assert raw_get(live.url, f"/r/{session}")[0] == 200


def test_the_admin_token_guards_results_and_rater_links(live):
    assert post(live.url + "/admin/api/sessions", {"rater": "x"})[0] == 403
    assert post(live.url + "/admin/api/sessions", {"rater": "x"}, token=TOKEN + "x")[0] == 403
    assert post(live.url + "/admin/sessions", {"rater": "x"})[0] == 403
    assert live.store.sessions(live.study.name) == []
    for path in ("/admin/results.json", "/admin/results.csv"):
        assert get(live.url + path)[0] == 403
        assert get(live.url + path, token="wrong")[0] == 403
        assert get(live.url + path, token=TOKEN)[0] == 200
    status, _h, page = get(live.url + "/admin")
    assert status == 200 and b"login-form" in page and b"summary" not in page
    status, page = post(live.url + "/admin/login", {"token": "guess"})
    assert status == 403 and b"login-failed" in page
    # the right token sets an HttpOnly cookie that is not the token itself
    request = post(live.url + "/admin/login", {"token": TOKEN})
    assert request == (303, "/admin")
    assert post(live.url + "/admin/api/sessions", {"rater": "<b>x</b>"}, token=TOKEN)[0] == 200
    status, headers, page = get(live.url + "/admin", token=TOKEN)
    assert status == 200 and b'id="summary"' in page and TOKEN.encode() not in page
    assert b"&lt;b&gt;x&lt;/b&gt;" in page and b"<b>x</b>" not in page


def test_request_sizes_and_answers_are_checked(live):
    link = live.new_rater("carol")
    too_big = {"position": 0, "answer": "real", "confidence": 3, "pad": "x" * 5000}
    assert post(link, too_big)[0] == 413
    for bad in (
        {"position": 0, "answer": "maybe", "confidence": 3},
        {"position": 0, "answer": "real", "confidence": 6},
        {"position": "zero", "answer": "real", "confidence": 1},
        {},
    ):
        assert post(link, bad)[0] == 400, bad
    assert post(link, {"position": 3, "answer": "real", "confidence": 3})[0] == 303  # stale
    assert live.store.answers(live.study.name) == []
    assert post(link, {"position": 0, "answer": "synthetic", "confidence": 2})[0] == 303
    assert post(link, {"position": 0, "answer": "real", "confidence": 5})[0] == 303  # again
    (answer,) = live.store.answers(live.study.name)
    assert (answer.position, answer.answer, answer.confidence) == (0, "synthetic", 2)
    parts = urlsplit(link)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    conn.putrequest("POST", parts.path)
    conn.putheader("Content-Length", str(10**9))
    conn.endheaders()
    assert conn.getresponse().status == 413
    conn.close()


def test_a_request_that_trickles_in_is_dropped_at_the_deadline(make_study):
    """uvicorn's own keep-alive timer stops at a request's first byte: without the server's
    request deadline, clients that send half a request would hold every connection slot."""
    live = start(*make_study(4), request_deadline=1.0)
    try:
        link = urlsplit(live.new_rater("dave"))
        half_headers = f"GET {link.path} HTTP/1.1\r\nHost: a\r\n".encode()
        half_body = (
            f"POST {link.path} HTTP/1.1\r\nHost: a\r\nContent-Length: 40\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n\r\nposition=0"
        ).encode()
        for partial in (half_headers, half_body):
            with socket.create_connection((link.hostname, link.port), timeout=15) as sock:
                started = time.monotonic()
                sock.sendall(partial)
                assert sock.recv(1024) == b"", "the half request got an answer"  # closed
                assert time.monotonic() - started < 10, "held beyond the deadline"
        assert get(live.url + link.path)[0] == 200  # whole requests are served as before
        assert live.store.answers(live.study.name) == []
    finally:
        live.stop()


def test_studies_are_immutable(make_study, real_dir, synthetic_dir, tmp_path):
    from common.errors import UserError
    from validator.turing.study import new_session, open_study

    store, study = make_study(6)
    again, created = open_study(store, "s1", real_dir, synthetic_dir)
    assert again == study and not created
    with pytest.raises(UserError, match="immutable"):
        open_study(store, "s1", None, None, per_rater=8)
    changed = tmp_path / "changed"
    changed.mkdir()
    for path in sorted(synthetic_dir.iterdir())[:-1]:
        (changed / path.name).write_bytes(path.read_bytes())
    with pytest.raises(UserError, match="--synthetic"):
        open_study(store, "s1", real_dir, changed)
    with pytest.raises(UserError, match="does not exist"):
        open_study(store, "other", None, None)
    session = new_session(store, study, "dan")
    assert store.answer(session, 0, "real", 4)
    with sqlite3.connect(store.path) as db:
        for sql in (
            "UPDATE images SET role = 'real'",
            "DELETE FROM images",
            "UPDATE studies SET seed = 1",
            "UPDATE trials SET answer = 'synthetic' WHERE position = 0",
            "UPDATE trials SET image = 0",
            "DELETE FROM trials",
        ):
            with pytest.raises(sqlite3.IntegrityError):
                db.execute(sql)


def test_the_results_command_prints_json_and_writes_csv(make_study, capsys, tmp_path):
    import json

    from validator.cli import main
    from validator.turing.study import new_session

    store, study = make_study(4)
    session = new_session(store, study, "erin")
    for position in range(4):
        assert store.answer(session, position, "synthetic", 5)
    assert main(["turing", "results", "--study", "s1", "--db", str(store.path), "--json",
                 "--csv", str(tmp_path / "a.csv")]) == 0  # fmt: skip
    doc = json.loads(capsys.readouterr().out)
    assert doc["format"] == "dermsynth-turing-results" and doc["answers"] == 4
    assert doc["accuracy"]["k"] == 2 and doc["sensitivity"]["value"] == 1.0
    assert doc["specificity"]["value"] == 0.0 and doc["fleiss_kappa"] is None
    rows = (tmp_path / "a.csv").read_text().splitlines()
    assert len(rows) == 5 and rows[0].startswith("rater,")
