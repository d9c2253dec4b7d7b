"""A validation run's features and pixels on disk, read a chunk of rows at a time.

:class:`RowFile` holds ``count`` rows of one dtype and shape (float32 features [N, 2048], uint8
pixels [N, S, S, 3]) in one flat file of the run's scratch folder, written once (by row, slice
or index list) and read with ``os.preadv`` into fresh arrays, like
:class:`common.image_pack.PackReader`: no memory map, whose pages would stay resident (and count
in the process's RSS) as a stage touches them, so the run's memory does not grow with the sets.

It answers what the checks ask of a feature or pixel array (``len``, ``shape``, ``dtype``,
``x[a:b]``, ``x[rows]`` with any order and repeats, ``x[i]``, iteration a chunk at a time), and
refuses to become one whole array (``np.asarray(x)`` raises :class:`WholeRead`): a stage that
would hold a whole set fails loudly in the tests instead of quietly growing with N.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

ITER_ROWS = 1024  # rows per read when a RowFile is iterated


class WholeRead(TypeError):
    """A RowFile was asked to become one in-memory array."""


class RowFile:
    """``count`` rows of ``row_shape`` ``dtype`` in the file ``path`` (created, sized, opened
    read-write by :meth:`create`; the file is removed by :meth:`close` when ``owned``)."""

    def __init__(self, path: str | Path, count: int, row_shape, dtype, *, owned: bool = True):
        self.path = Path(path)
        self.count = int(count)
        self.row_shape = tuple(int(d) for d in row_shape)
        self.dtype = np.dtype(dtype)
        self.row_bytes = int(np.prod(self.row_shape, dtype=np.int64)) * self.dtype.itemsize
        self.owned = owned
        self._fd = os.open(self.path, os.O_RDWR)
        size = os.fstat(self._fd).st_size
        if size != self.count * self.row_bytes:
            os.close(self._fd)
            self._fd = -1
            raise ValueError(f"{self.path}: {size} bytes, expected {self.count * self.row_bytes}")

    @classmethod
    def create(cls, path: str | Path, count: int, row_shape, dtype) -> RowFile:
        """A new zero-filled file of ``count`` rows (refuses an existing ``path``)."""
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            row = int(np.prod(row_shape, dtype=np.int64)) * np.dtype(dtype).itemsize
            os.ftruncate(fd, int(count) * row)
        finally:
            os.close(fd)
        return cls(path, count, row_shape, dtype)

    @classmethod
    def from_array(cls, array: np.ndarray, path: str | Path, chunk: int = ITER_ROWS) -> RowFile:
        """A RowFile holding a copy of ``array`` (tests, benchmarks)."""
        out = cls.create(path, len(array), array.shape[1:], array.dtype)
        for start in range(0, len(array), chunk):
            out[start : start + chunk] = array[start : start + chunk]
        return out

    # --- what the checks ask of an array ---
    @property
    def shape(self) -> tuple[int, ...]:
        return (self.count, *self.row_shape)

    @property
    def ndim(self) -> int:
        return 1 + len(self.row_shape)

    @property
    def nbytes(self) -> int:
        return self.count * self.row_bytes

    def __len__(self) -> int:
        return self.count

    def __array__(self, dtype=None, copy=None):
        raise WholeRead(
            f"{self.path.name}: {self.count} rows are read a chunk at a time (x[a:b], x[rows]), "
            "never as one array"
        )

    def __iter__(self) -> Iterator[np.ndarray]:
        for start in range(0, self.count, ITER_ROWS):
            yield from self[start : start + ITER_ROWS]

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            i = self._check_index(int(key))
            return self._read_run(i, i + 1)[0]
        if isinstance(key, slice):
            start, stop, step = key.indices(self.count)
            if step != 1:
                return self[np.arange(start, stop, step)]
            return self._read_run(start, max(start, stop))
        return self._gather(self._indices(key))

    def __setitem__(self, key, value) -> None:
        if isinstance(key, (int, np.integer)):
            rows = np.array([self._check_index(int(key))])
        elif isinstance(key, slice):
            rows = np.arange(*key.indices(self.count))
        else:
            rows = self._indices(key)
        data = np.broadcast_to(np.asarray(value, self.dtype), (len(rows), *self.row_shape))
        data = np.ascontiguousarray(data)
        if len(rows) and np.all(np.diff(rows) == 1):  # one contiguous run: one write
            self._write(int(rows[0]), data)
            return
        for k, i in enumerate(rows.tolist()):
            self._write(i, data[k : k + 1])

    # --- reading and writing ---
    def _check_index(self, i: int) -> int:
        j = i + self.count if i < 0 else i
        if not 0 <= j < self.count:
            raise IndexError(f"row {i} out of range for {self.count} rows")
        return j

    def _indices(self, key) -> np.ndarray:
        idx = np.asarray(key)
        if idx.dtype == bool:
            if idx.shape != (self.count,):
                raise IndexError(f"boolean index of shape {idx.shape} for {self.count} rows")
            return np.flatnonzero(idx)
        if idx.ndim != 1 or (idx.size and idx.dtype.kind not in "iu"):
            raise IndexError(f"rows must be a 1-d integer array, got {idx.dtype} {idx.shape}")
        idx = idx.astype(np.int64)
        if idx.size and (idx.min() < -self.count or idx.max() >= self.count):
            raise IndexError(f"row index out of range for {self.count} rows")
        return np.where(idx < 0, idx + self.count, idx)

    def _read_run(self, start: int, stop: int) -> np.ndarray:
        out = np.empty((stop - start, *self.row_shape), self.dtype)
        view = memoryview(out.reshape(-1).view(np.uint8))
        done, offset = 0, start * self.row_bytes
        while done < len(view):  # preadv may return less than asked (large reads)
            got = os.preadv(self._fd, [view[done:]], offset + done)
            if got <= 0:
                raise OSError(f"{self.path}: short read at byte {offset + done}")
            done += got
        return out

    def _gather(self, idx: np.ndarray) -> np.ndarray:
        """Rows ``idx`` in that order: sorted, read as runs of consecutive rows, put back."""
        if len(idx) and np.all(np.diff(idx) == 1):  # one ascending run: read it in place
            return self._read_run(int(idx[0]), int(idx[-1]) + 1)
        out = np.empty((len(idx), *self.row_shape), self.dtype)
        if not len(idx):
            return out
        order = np.argsort(idx, kind="stable")
        sorted_idx = idx[order]
        breaks = np.flatnonzero(np.diff(sorted_idx) > 1) + 1
        for run in np.split(np.arange(len(idx)), breaks):
            lo, hi = int(sorted_idx[run[0]]), int(sorted_idx[run[-1]]) + 1
            block = self._read_run(lo, hi)
            out[order[run]] = block[sorted_idx[run] - lo]
        return out

    def _write(self, row: int, data: np.ndarray) -> None:
        view = memoryview(data.reshape(-1).view(np.uint8))
        done, offset = 0, row * self.row_bytes
        while done < len(view):
            done += os.pwrite(self._fd, view[done:], offset + done)

    def close(self) -> None:
        """Close the file (and remove it when owned)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
            if self.owned:
                self.path.unlink(missing_ok=True)

    def __enter__(self) -> RowFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RowFile({self.path.name}, shape={self.shape}, dtype={self.dtype})"


class Scratch:
    """A run's scratch folder ``.scratch-<random>`` inside ``parent`` (the report folder: on
    the disk the user chose for the run, not a RAM-backed /tmp) holding its RowFiles;
    :meth:`close` (or leaving the ``with`` block, on error too) removes it. The run holds an
    exclusive ``flock`` on the folder's ``.lock`` while it lives, so a folder left by a killed
    run (its lock released by the kernel) is removed by the next run in ``parent``, and a live
    run's never is, whichever host process namespace it runs in."""

    PREFIX = ".scratch-"

    def __init__(self, parent: str | Path):
        import fcntl
        import tempfile

        parent = Path(parent)
        for old in parent.glob(self.PREFIX + "*"):
            _remove_if_abandoned(old)
        self.path = Path(tempfile.mkdtemp(prefix=self.PREFIX, dir=parent))
        self._lock = os.open(self.path / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        self.files: list[RowFile] = []

    def require(self, nbytes: int, what: str) -> None:
        """Refuse (UserError) a run whose RowFiles would not fit the free space of the
        scratch folder's disk: they are sparse until written, so a full disk would otherwise
        stop the run half-way."""
        import shutil

        from common.errors import UserError

        free = shutil.disk_usage(self.path).free
        if nbytes > free:
            raise UserError(
                f"{self.path.parent}: the run keeps {what} on disk there, "
                f"{nbytes / 2**20:,.0f} MiB, but only {free / 2**20:,.0f} MiB are free; "
                "free some space or choose another --out"
            )

    def rows(self, name: str, count: int, row_shape, dtype) -> RowFile:
        """A new zero-filled RowFile ``name`` in the scratch folder."""
        f = RowFile.create(self.path / name, count, row_shape, dtype)
        self.files.append(f)
        return f

    def close(self) -> None:
        import shutil

        for f in self.files:
            f.close()
        self.files = []
        shutil.rmtree(self.path, ignore_errors=True)
        if self._lock >= 0:
            os.close(self._lock)
            self._lock = -1

    def __enter__(self) -> Scratch:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _remove_if_abandoned(folder: Path) -> None:
    """Remove a scratch folder whose run is gone (its ``.lock`` can be taken); leave one
    without a lock file (a run that is just starting) or whose lock is held."""
    import fcntl
    import shutil

    try:
        fd = os.open(folder / ".lock", os.O_RDWR)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return  # held: a live run
    finally:
        os.close(fd)  # (releases the lock taken above)
    shutil.rmtree(folder, ignore_errors=True)
