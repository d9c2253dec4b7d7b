"""SQLite storage of the visual Turing test: studies, their encoded images, rater sessions and
answers, in one file opened in WAL mode with ``synchronous=FULL``.

Durability: :meth:`Store.answer` commits before it returns, and the app sends the next image
only after it returned, so a server killed with ``kill -9`` loses no answer it acknowledged.
Immutability is enforced by the database itself (triggers): a study and its images can be
neither changed nor deleted, a trial's image and token never change, and an answer once given
is final. A changed image set therefore means a new study.

Every id a request carries (session id, image token) is looked up here; nothing a request sends
is ever used as a path.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS studies (
    name TEXT PRIMARY KEY, created TEXT NOT NULL, seed INTEGER NOT NULL, size INTEGER NOT NULL,
    per_rater INTEGER NOT NULL, real_fingerprint TEXT NOT NULL,
    synthetic_fingerprint TEXT NOT NULL, settings TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS images (
    study TEXT NOT NULL REFERENCES studies(name), idx INTEGER NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('real', 'synthetic')), name TEXT NOT NULL,
    sha256 TEXT NOT NULL, png BLOB NOT NULL, thumb BLOB NOT NULL, PRIMARY KEY (study, idx));
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY, study TEXT NOT NULL REFERENCES studies(name), seq INTEGER NOT NULL,
    rater TEXT NOT NULL, created TEXT NOT NULL, UNIQUE (study, seq));
CREATE TABLE IF NOT EXISTS trials (
    session TEXT NOT NULL REFERENCES sessions(id), position INTEGER NOT NULL,
    image INTEGER NOT NULL, token TEXT NOT NULL UNIQUE,
    answer TEXT CHECK (answer IN ('real', 'synthetic')),
    confidence INTEGER CHECK (confidence BETWEEN 1 AND 5),
    shown_at TEXT, answered_at TEXT, PRIMARY KEY (session, position));
CREATE TRIGGER IF NOT EXISTS studies_immutable BEFORE UPDATE ON studies
    BEGIN SELECT RAISE(ABORT, 'studies are immutable'); END;
CREATE TRIGGER IF NOT EXISTS studies_kept BEFORE DELETE ON studies
    BEGIN SELECT RAISE(ABORT, 'studies are immutable'); END;
CREATE TRIGGER IF NOT EXISTS images_immutable BEFORE UPDATE ON images
    BEGIN SELECT RAISE(ABORT, 'study images are immutable'); END;
CREATE TRIGGER IF NOT EXISTS images_kept BEFORE DELETE ON images
    BEGIN SELECT RAISE(ABORT, 'study images are immutable'); END;
CREATE TRIGGER IF NOT EXISTS trials_fixed BEFORE UPDATE OF session, position, image, token
    ON trials BEGIN SELECT RAISE(ABORT, 'a trial''s image is fixed'); END;
CREATE TRIGGER IF NOT EXISTS answers_final BEFORE UPDATE OF answer, confidence ON trials
    WHEN OLD.answer IS NOT NULL BEGIN SELECT RAISE(ABORT, 'answers are final'); END;
CREATE TRIGGER IF NOT EXISTS trials_kept BEFORE DELETE ON trials
    BEGIN SELECT RAISE(ABORT, 'answers are kept'); END;
"""


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Study:
    name: str
    created: str
    seed: int
    size: int
    per_rater: int
    real_fingerprint: str
    synthetic_fingerprint: str
    settings: str  # JSON: how the images were chosen and encoded


@dataclass(frozen=True)
class StudyImage:
    idx: int
    role: str  # "real" | "synthetic"
    name: str  # the source file, relative to its folder (admin pages only)
    sha256: str
    png: bytes
    thumb: bytes


@dataclass(frozen=True)
class Trial:
    position: int
    total: int
    token: str


@dataclass(frozen=True)
class Answer:
    session: str
    rater: str
    seq: int
    position: int
    image: int
    role: str
    name: str
    answer: str
    confidence: int
    shown_at: str | None
    answered_at: str


class Store:
    """One SQLite file; a connection per call, so that it is safe from the app's threads."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        try:
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
            yield db
        finally:
            db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction, committed (to the WAL, fsynced) when the block ends."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    # studies
    def study(self, name: str) -> Study | None:
        with self._connect() as db:
            row = db.execute(
                "SELECT name, created, seed, size, per_rater, real_fingerprint, "
                "synthetic_fingerprint, settings FROM studies WHERE name = ?",
                (name,),
            ).fetchone()
        return None if row is None else Study(*row)

    def create_study(self, study: Study, images: Sequence[StudyImage]) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO studies VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    study.name,
                    study.created,
                    study.seed,
                    study.size,
                    study.per_rater,
                    study.real_fingerprint,
                    study.synthetic_fingerprint,
                    study.settings,
                ),
            )
            db.executemany(
                "INSERT INTO images VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(study.name, i.idx, i.role, i.name, i.sha256, i.png, i.thumb) for i in images],
            )

    def image_roles(self, study: str) -> list[tuple[int, str, str]]:
        """``(idx, role, name)`` of every image of ``study``, by idx."""
        with self._connect() as db:
            return db.execute(
                "SELECT idx, role, name FROM images WHERE study = ? ORDER BY idx", (study,)
            ).fetchall()

    def thumbs(self, study: str) -> dict[int, bytes]:
        with self._connect() as db:
            rows = db.execute("SELECT idx, thumb FROM images WHERE study = ?", (study,))
            return dict(rows.fetchall())

    # sessions
    def create_session(self, study: str, rater: str, order_for) -> str:
        """A new rater session of ``study``; ``order_for(seq)`` gives its image order (idx)."""
        session = secrets.token_urlsafe(18)
        with self._write() as db:
            (seq,) = db.execute(
                "SELECT COALESCE(MAX(seq), 0) + 1 FROM sessions WHERE study = ?", (study,)
            ).fetchone()
            db.execute(
                "INSERT INTO sessions VALUES (?, ?, ?, ?, ?)", (session, study, seq, rater, now())
            )
            db.executemany(
                "INSERT INTO trials (session, position, image, token) VALUES (?, ?, ?, ?)",
                [
                    (session, pos, int(idx), secrets.token_urlsafe(18))
                    for pos, idx in enumerate(order_for(seq))
                ],
            )
        return session

    def sessions(self, study: str) -> list[dict]:
        """Every session of ``study`` with its rater and progress, in creation order."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT s.id, s.seq, s.rater, s.created, COUNT(t.answer), COUNT(t.position) "
                "FROM sessions s JOIN trials t ON t.session = s.id WHERE s.study = ? "
                "GROUP BY s.id ORDER BY s.seq",
                (study,),
            ).fetchall()
        keys = ("id", "seq", "rater", "created", "answered", "total")
        return [dict(zip(keys, row)) for row in rows]

    def session_study(self, session: str) -> str | None:
        with self._connect() as db:
            row = db.execute("SELECT study FROM sessions WHERE id = ?", (session,)).fetchone()
        return None if row is None else row[0]

    def current(self, session: str) -> Trial | None:
        """The first unanswered trial of ``session`` (marked shown), a Trial with token ""
        when all are answered, None for an unknown session."""
        with self._connect() as db:
            total = db.execute("SELECT COUNT(*) FROM trials WHERE session = ?", (session,))
            (total,) = total.fetchone()
            if total == 0:
                return None
            row = db.execute(
                "SELECT position, token, shown_at FROM trials WHERE session = ? "
                "AND answer IS NULL ORDER BY position LIMIT 1",
                (session,),
            ).fetchone()
            if row is None:
                return Trial(total, total, "")
            if row[2] is None:
                db.execute(
                    "UPDATE trials SET shown_at = ? WHERE session = ? AND position = ?",
                    (now(), session, row[0]),
                )
        return Trial(row[0], total, row[1])

    def image(self, token: str) -> bytes | None:
        """The PNG behind an image token, only once every earlier trial of its session is
        answered (the next image is sent only after the answer before it was committed)."""
        with self._connect() as db:
            row = db.execute(
                "SELECT i.png FROM trials t JOIN sessions s ON s.id = t.session "
                "JOIN images i ON i.study = s.study AND i.idx = t.image WHERE t.token = ? "
                "AND NOT EXISTS (SELECT 1 FROM trials e WHERE e.session = t.session "
                "AND e.position < t.position AND e.answer IS NULL)",
                (token,),
            ).fetchone()
        return None if row is None else row[0]

    def answer(self, session: str, position: int, answer: str, confidence: int) -> bool:
        """Record the answer to ``position``, committed before returning. False (nothing
        written) unless ``position`` is the session's first unanswered trial."""
        with self._write() as db:
            row = db.execute(
                "SELECT MIN(position) FROM trials WHERE session = ? AND answer IS NULL", (session,)
            ).fetchone()
            if row is None or row[0] != position:
                return False
            db.execute(
                "UPDATE trials SET answer = ?, confidence = ?, answered_at = ? "
                "WHERE session = ? AND position = ?",
                (answer, confidence, now(), session, position),
            )
        return True

    def answers(self, study: str) -> list[Answer]:
        """Every answer given in ``study``, by session then position."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT s.id, s.rater, s.seq, t.position, t.image, i.role, i.name, t.answer, "
                "t.confidence, t.shown_at, t.answered_at FROM trials t "
                "JOIN sessions s ON s.id = t.session "
                "JOIN images i ON i.study = s.study AND i.idx = t.image "
                "WHERE s.study = ? AND t.answer IS NOT NULL ORDER BY s.seq, t.position",
                (study,),
            ).fetchall()
        return [Answer(*row) for row in rows]
