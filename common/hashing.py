"""Content hashes used to identify data sets and models."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

_CHUNK = 1 << 20


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fingerprint(file_hashes: Iterable[str]) -> str:
    """Identify a set of files: sha256 over the sorted per-file hex hashes, one per line.

    Independent of file names and order, so the same images give the same fingerprint
    wherever they are stored.
    """
    digest = hashlib.sha256()
    for h in sorted(file_hashes):
        digest.update(h.encode("ascii") + b"\n")
    return digest.hexdigest()
