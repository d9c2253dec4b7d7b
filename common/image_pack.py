"""A pack: the prepared images of one data set under one policy, as one flat file of uint8 rows.

Layout (little-endian)::

    b"DSPACK1\\n" | u64 header length | JSON header | sha256 digests (32 bytes per row)
    | zero padding to a 4096-byte boundary | rows: uint8 [count, size, size, 3]

The JSON header holds ``count``, ``image_shape``, ``policy_key`` and ``data_offset``. A pack is
written to a temporary file beside its final name and renamed into place, so a reader never sees
a partial pack (a killed writer leaves at most a ``.tmp`` file).

:class:`PackReader` reads rows with ``os.pread`` (no memory map that grows with the rows
touched): its memory stays flat with the pack's size, and it is safe to share between threads.
:class:`ArraySource` offers the same three members (``count``, ``image_shape``,
``read(indices)``) over an in-memory array. Anything with those three is an "image source"
(trainer.pipeline and the validator accept any).
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

MAGIC = b"DSPACK1\n"
_ALIGN = 4096
_FORMAT = "dermsynth-pack"


class PackError(ValueError):
    """The file is not a complete pack (wrong magic, bad header, truncated rows)."""


def write_pack(
    path: str | Path,
    sha256: Sequence[str],
    size: int,
    policy_key: str,
    row: Callable[[int], np.ndarray],
) -> Path:
    """Write ``len(sha256)`` uint8 rows [size, size, 3] (``row(i)`` gives row ``i``) to
    ``path`` atomically; returns ``path``."""
    count = len(sha256)
    path = Path(path)
    shape = (int(size), int(size), 3)
    header = {"format": _FORMAT, "version": 1, "count": count, "image_shape": list(shape)}
    header["policy_key"] = policy_key
    digests = b"".join(bytes.fromhex(s) for s in sha256)
    # the offset depends on the header's length, which depends on the offset's digits: fix both
    offset = 0
    while True:
        meta = json.dumps({**header, "data_offset": offset}).encode()
        end = len(MAGIC) + 8 + len(meta) + len(digests)
        need = -(-end // _ALIGN) * _ALIGN
        if need == offset:
            break
        offset = need
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(MAGIC + struct.pack("<Q", len(meta)) + meta + digests)
            fh.write(b"\0" * (offset - end))
            for i in range(count):
                pixels = np.ascontiguousarray(row(i), dtype=np.uint8)
                if pixels.shape != shape:
                    raise ValueError(f"row {i} has shape {pixels.shape}, expected {shape}")
                fh.write(pixels.tobytes())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


class PackReader:
    """Rows of a pack file, read on demand with ``os.pread`` (thread-safe)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        fd = os.open(self.path, os.O_RDONLY)
        try:
            head = os.pread(fd, len(MAGIC) + 8, 0)
            if len(head) < len(MAGIC) + 8 or head[: len(MAGIC)] != MAGIC:
                raise PackError(f"{self.path} is not a dermsynth pack")
            (n,) = struct.unpack("<Q", head[len(MAGIC) :])
            if n > os.fstat(fd).st_size:
                raise PackError(f"{self.path} is truncated (header)")
            try:
                meta = json.loads(os.pread(fd, n, len(MAGIC) + 8))
                self.count = int(meta["count"])
                self.image_shape = tuple(int(d) for d in meta["image_shape"])
                self.policy_key = str(meta["policy_key"])
                self._data = int(meta["data_offset"])
            except (ValueError, KeyError, TypeError) as exc:
                raise PackError(f"{self.path}: bad pack header ({exc})") from None
            self._digests_at = len(MAGIC) + 8 + n
            self.row_bytes = int(np.prod(self.image_shape))
            size = os.fstat(fd).st_size
            if size != self._data + self.count * self.row_bytes:
                raise PackError(
                    f"{self.path} is truncated or padded: {size} bytes, expected "
                    f"{self._data + self.count * self.row_bytes}"
                )
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._sha256: tuple[str, ...] | None = None

    @property
    def sha256(self) -> tuple[str, ...]:
        """The files' sha256 in row order (read on first use)."""
        if self._sha256 is None:
            raw = os.pread(self._fd, 32 * self.count, self._digests_at)
            self._sha256 = tuple(raw[i : i + 32].hex() for i in range(0, len(raw), 32))
        return self._sha256

    def read(self, indices) -> np.ndarray:
        """uint8 [k, *image_shape] for the rows ``indices``, in that order."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self.count):
            raise IndexError(f"row index out of range 0..{self.count - 1}")
        out = np.empty((idx.size, *self.image_shape), dtype=np.uint8)
        flat, row = memoryview(out.reshape(-1)), self.row_bytes
        for k, i in enumerate(idx.tolist()):
            got = os.preadv(self._fd, [flat[k * row : (k + 1) * row]], self._data + i * row)
            if got != self.row_bytes:
                raise PackError(f"{self.path}: short read at row {i}")
        return out

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> PackReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except (OSError, AttributeError):
            pass


class ArraySource:
    """The image-source members over an in-memory uint8 array [N, S, S, 3]."""

    def __init__(self, array: np.ndarray):
        array = np.asarray(array)
        if array.dtype != np.uint8 or array.ndim != 4:
            raise ValueError(f"need uint8 [N, S, S, C], got {array.dtype} {array.shape}")
        self.array = array
        self.count = int(array.shape[0])
        self.image_shape = tuple(int(d) for d in array.shape[1:])

    def read(self, indices) -> np.ndarray:
        return self.array[np.asarray(indices, dtype=np.int64).reshape(-1)]
