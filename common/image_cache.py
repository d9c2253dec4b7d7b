"""Preparing image files for training and validation, once: read, hash, decode, crop, resize,
in parallel processes, into a content-addressed on-disk cache.

:func:`prepare` reads each file once: the same bytes give its sha256 (the data set's
fingerprint), prove it decodes, and become the resized uint8 pixels, decoded with JPEG draft
mode (:func:`common.images.decode_square`). Workers are processes (``workers=0``: all cores);
a tqdm bar shows images/s. The trainer and the validator both prepare through here, so a
model's training pixels and the validator's pixel-space view of the same files are identical.

:class:`ImageCache`: ``<root>/images/<policy key>/<sha256[:2]>/<sha256>.u8`` holds the raw
uint8 [S, S, 3] of one file, keyed by the file's content and by how the pixels were made
(:attr:`PrepPolicy.key`), followed by the CRC-32 of those bytes (4 bytes, little-endian). A
second run, a resume or the validator finds them there and decodes nothing. Each entry is
written to a temporary name and renamed: a ``kill -9`` leaves no partial entry (a re-run
prepares what is missing), and concurrent runs can share one cache (two writers of one entry
write the same bytes; the last rename wins). An entry of the wrong length or checksum (a disk
error, a hand edit, an entry of the format before the checksum) is a miss: it is prepared and
written again. A file that does not decode leaves ``<sha256>.bad`` (its reason) beside where its
entry would be, so the next run skips it after hashing it, without decoding it again (a
corrupt 6000x4000 JPEG is not re-decoded on every run); prune it, or delete it, to retry.
``python -m common.image_cache prune --older-than-days N`` removes entries not used for N days
(a hit refreshes an entry's time).

Default root: ``$DERMSYNTH_CACHE_DIR``, else ``$XDG_CACHE_HOME/dermsynth``, else
``~/.cache/dermsynth`` (:func:`default_cache_root`).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import time
import uuid
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from common.errors import UserError
from common.image_pack import write_pack
from common.images import DECODE_ERRORS, decode_error_reason, decode_square


def default_cache_root() -> Path:
    if os.environ.get("DERMSYNTH_CACHE_DIR"):
        return Path(os.environ["DERMSYNTH_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "dermsynth"


@dataclass(frozen=True)
class PrepPolicy:
    """How pixels are made from a file: side ``size``, centre-square crop, Lanczos resize,
    JPEG draft mode on or off. :attr:`key` names it in the cache."""

    size: int
    draft: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.size <= 4096:
            raise ValueError(f"size {self.size} is not in 1..4096")

    @property
    def key(self) -> str:
        return f"s{self.size}-centre-lanczos-{'draft2' if self.draft else 'full'}"


class ImageCache:
    """Content-addressed store of prepared images (see the module docstring)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def check_writable(self) -> None:
        """UserError unless entries can be written under the root (made if missing)."""
        probe = self.root / "images" / f".probe-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        try:
            probe.parent.mkdir(parents=True, exist_ok=True)
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise UserError(
                f"image cache {self.root}: not writable ({exc.strerror or exc}); choose another "
                "with --cache-dir or $DERMSYNTH_CACHE_DIR"
            ) from None

    def entry(self, sha256: str, policy: PrepPolicy) -> Path:
        return self.root / "images" / policy.key / sha256[:2] / f"{sha256}.u8"

    def get(self, sha256: str, policy: PrepPolicy) -> np.ndarray | None:
        """The entry's pixels; None when it is missing or of the wrong length or checksum."""
        path = self.entry(sha256, policy)
        try:
            data = path.read_bytes()
        except OSError:
            return None
        n = policy.size * policy.size * 3
        if len(data) != n + 4 or zlib.crc32(data[:n]) != int.from_bytes(data[n:], "little"):
            return None
        try:
            os.utime(path)  # last use, for prune
        except OSError:
            pass
        return np.frombuffer(data, dtype=np.uint8, count=n).reshape(policy.size, policy.size, 3)

    def has(self, sha256: str, policy: PrepPolicy) -> bool:
        """Whether a complete entry with the right checksum exists; a hit refreshes its time
        (prune keeps it)."""
        return self.get(sha256, policy) is not None

    def put(self, sha256: str, policy: PrepPolicy, pixels: np.ndarray) -> None:
        data = np.ascontiguousarray(pixels, dtype=np.uint8).tobytes()
        self._write(self.entry(sha256, policy), data + zlib.crc32(data).to_bytes(4, "little"))

    def bad_reason(self, sha256: str, policy: PrepPolicy) -> str | None:
        """Why the file with this sha256 did not decode under ``policy`` (None: not known bad)."""
        try:
            return self.entry(sha256, policy).with_suffix(".bad").read_text("utf-8")
        except (OSError, UnicodeDecodeError):
            return None

    def put_bad(self, sha256: str, policy: PrepPolicy, reason: str) -> None:
        self._write(self.entry(sha256, policy).with_suffix(".bad"), reason.encode("utf-8"))

    def _write(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:6]}.tmp")
        try:
            tmp.write_bytes(data)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    def prune(self, *, older_than_days: float, now: float | None = None) -> int:
        """Remove entries (and stray temporaries) not used for ``older_than_days``; returns
        how many files were removed."""
        cutoff = (time.time() if now is None else now) - older_than_days * 86400
        removed = 0
        for path in (self.root / "images").rglob("*"):
            if path.is_file() and (path.suffix in (".u8", ".bad", ".tmp")):
                try:
                    if path.stat().st_mtime < cutoff:
                        path.unlink()
                        removed += 1
                except OSError:
                    pass
        return removed


@dataclass
class Prepared:
    """What :func:`prepare` made of ``paths``: per path its sha256 (None when skipped)."""

    paths: list[Path]
    sha256: list[str | None]
    skipped: list[tuple[Path, str]]
    policy: PrepPolicy
    cache: ImageCache
    decoded: int = 0  # files decoded now (cache misses)
    hits: int = 0  # files found in the cache
    seconds: float = 0.0
    _tmp: tempfile.TemporaryDirectory | None = field(default=None, repr=False)

    @property
    def kept(self) -> list[str]:
        """The sha256 of every usable file, in input order."""
        return [s for s in self.sha256 if s is not None]

    def load_all(self) -> np.ndarray:
        """uint8 [len(kept), S, S, 3] (small sets only: this holds them all)."""
        size = self.policy.size
        out = np.empty((len(self.kept), size, size, 3), dtype=np.uint8)
        for i, sha in enumerate(self.kept):
            out[i] = self._row(sha)
        return out

    def write_pack(self, path: str | Path) -> Path:
        """A pack (:mod:`common.image_pack`) of the usable files, in input order."""
        kept = self.kept
        return write_pack(
            path, kept, self.policy.size, self.policy.key, lambda i: self._row(kept[i])
        )

    def _row(self, sha: str) -> np.ndarray:
        pixels = self.cache.get(sha, self.policy)
        if pixels is None:
            raise FileNotFoundError(f"image {sha[:12]} left the cache {self.cache.root}")
        return pixels


def _prepare_one(path: str, size: int, draft: bool, root: str) -> tuple[str | None, str, bool]:
    """(sha256 or None, reason if skipped, decoded?) for one file; pixels go to the cache."""
    policy, cache = PrepPolicy(size, draft), ImageCache(root)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return None, f"unreadable: {exc.strerror or exc}", False
    if not data:
        return None, "empty file (0 bytes)", False
    sha = hashlib.sha256(data).hexdigest()
    if cache.has(sha, policy):
        return sha, "", False
    known_bad = cache.bad_reason(sha, policy)
    if known_bad is not None:  # failed before: same bytes, same policy, no second decode
        return None, known_bad, False
    try:
        pixels = decode_square(data, size, draft=draft)
    except DECODE_ERRORS as exc:
        reason = decode_error_reason(exc)
        cache.put_bad(sha, policy, reason)
        return None, reason, False
    cache.put(sha, policy, pixels)
    return sha, "", True


def _run_chunk(args: tuple[list[str], int, bool, str]) -> list[tuple[str | None, str, bool]]:
    paths, size, draft, root = args
    return [_prepare_one(p, size, draft, root) for p in paths]


def prepare(
    paths: Sequence[str | Path],
    policy: PrepPolicy,
    *,
    cache: ImageCache | None = None,
    workers: int = 0,
    progress: bool = True,
    should_stop: Callable[[], bool] | None = None,
    chunk: int = 16,
) -> Prepared:
    """Prepare ``paths`` (see the module docstring). ``cache=None``: a temporary cache that
    lives as long as the result. ``workers``: processes (0: all cores; 1: this process).
    ``should_stop()`` is polled between chunks; when it turns true, raises InterruptedError
    (everything prepared so far stays in the cache). Unusable files are skipped with a reason.
    """
    from tqdm import tqdm

    started = time.perf_counter()
    tmp = None
    if cache is None:
        tmp = tempfile.TemporaryDirectory(prefix="dermsynth-images-")
        cache = ImageCache(tmp.name)
    cache.check_writable()
    paths = [Path(p) for p in paths]
    workers = workers or os.cpu_count() or 1
    jobs = [
        ([str(p) for p in paths[i : i + chunk]], policy.size, policy.draft, str(cache.root))
        for i in range(0, len(paths), chunk)
    ]
    results: list[tuple[str | None, str, bool]] = []
    bar = tqdm(
        total=len(paths), desc=f"preparing {policy.size}px", unit="img", disable=not progress
    )
    try:
        if workers == 1 or len(jobs) <= 1:
            for job in jobs:
                if should_stop is not None and should_stop():
                    raise InterruptedError("preparation stopped")
                results += _run_chunk(job)
                bar.update(len(job[0]))
        else:
            # spawn: the caller may have TensorFlow or gRPC threads, which fork would copy
            with ProcessPoolExecutor(
                min(workers, len(jobs)), mp_context=get_context("spawn")
            ) as pool:
                futures = [pool.submit(_run_chunk, job) for job in jobs]
                try:
                    for future, job in zip(futures, jobs):
                        if should_stop is not None and should_stop():
                            raise InterruptedError("preparation stopped")
                        results += future.result()
                        bar.update(len(job[0]))
                except BaseException:
                    for f in futures:
                        f.cancel()
                    raise
    finally:
        bar.close()
    return Prepared(
        paths=paths,
        sha256=[sha for sha, _, _ in results],
        skipped=[(p, reason) for p, (sha, reason, _) in zip(paths, results) if sha is None],
        policy=policy,
        cache=cache,
        decoded=sum(1 for _, _, decoded in results if decoded),
        hits=sum(1 for sha, _, decoded in results if sha is not None and not decoded),
        seconds=time.perf_counter() - started,
        _tmp=tmp,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m common.image_cache", description="Manage the prepared-image cache."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    prune = sub.add_parser("prune", help="remove entries not used for N days")
    prune.add_argument("--older-than-days", type=float, required=True)
    prune.add_argument("--cache-dir", type=Path, default=None, help="default: the cache root")
    args = parser.parse_args(argv)
    if args.older_than_days < 0:
        parser.error("--older-than-days must be >= 0")
    cache = ImageCache(args.cache_dir or default_cache_root())
    removed = cache.prune(older_than_days=args.older_than_days)
    print(f"removed {removed} cache files from {cache.root / 'images'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
