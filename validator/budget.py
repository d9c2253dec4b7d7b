"""The validator's memory rule (``--memory-mb``) and the chunked linear algebra that obeys it.

The rule. ``memory_mb`` bounds the WORKING memory of every check and view stage: the arrays a
stage allocates that grow with the number of images (distance blocks, the reference pixel views
of one block, gathered row chunks, k-means' training copy, PCA chunks). Not bounded by it:
- nothing for the inputs themselves: the features ([N, 2048] float32: 800 MiB at 100,000
  images) and the pixels kept at ``--pixel-size`` (uint8) are on disk, in the run's scratch
  folder (:class:`validator.rowfile.RowFile`), and every stage reads them a chunk of rows at a
  time, within this rule;
- one small value per image: nearest-neighbour distances and indices ([N, k]), p-values, PCA
  coordinates ([N, <= 50]), cluster labels (at 2048-d they are < 3 % of the features);
- arrays fixed by the feature size, not by N: the d x d covariance and its eigenvectors
  (:func:`fit_pca`, FID: 3 x 32 MiB at d = 2048), KID's subset kernels (``kid_subset_size``²);
- libraries' own fixed buffers (BLAS, t-SNE on its capped subsample, matplotlib).
Every chunk holds at least one row, so a budget below one row's needs still runs (slowly).

:func:`fit_pca` / :meth:`PCAFit.transform`: standardization (mean, population std) and PCA fitted
from the d x d covariance accumulated a chunk at a time (the eigendecomposition of the
covariance, as scikit-learn's ``svd_solver="covariance_eigh"``), rows given as (array, row
indices) parts, so no subset or float64 copy of the features is ever made. The projection equals
scikit-learn's ``StandardScaler`` + ``PCA(n, svd_solver="full")`` up to the sign of each axis.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_MEMORY_MB = 1024
MIB = 2**20

# rows of a feature set, optionally a subset: (array [N, d], row indices or None for all)
Part = tuple[np.ndarray, np.ndarray | None]


def release_freed() -> None:
    """Hand memory freed by a finished stage back to the operating system: collect the young
    generations' cycles (a full collection takes about 0.1 s in a process holding TensorFlow,
    as the test session does; arrays are freed by reference counting anyway), then glibc's
    ``malloc_trim(0)`` (no-op where the C library has none). glibc serves
    allocations below its dynamic mmap threshold (which rises to 32 MiB after a large array
    is freed) from its heap and keeps freed heap memory, so without this a later stage starts
    from the earlier ones' high-water mark, and the process's RSS creeps up with the set
    sizes although every stage stays within its budget."""
    import gc

    gc.collect(1)
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim():
    """glibc's ``malloc_trim``, or None where the C library has none."""
    import ctypes
    import ctypes.util

    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def rows_within(memory_mb: float, row_bytes: float) -> int:
    """Rows of ``row_bytes`` each that fit in ``memory_mb`` MiB (at least 1)."""
    if memory_mb <= 0:
        raise ValueError(f"memory_mb must be positive, got {memory_mb}")
    return max(1, int(memory_mb * MIB // max(1.0, row_bytes)))


def chunk_rows(n_reference: int, memory_mb: float, *, cell_bytes: int) -> int:
    """Query rows per chunk so that ``rows x n_reference`` cells of ``cell_bytes`` fit in
    ``memory_mb`` MiB (at least 1 row: a budget below one row's needs still runs)."""
    return rows_within(memory_mb, cell_bytes * max(1, n_reference))


def part_rows(part: Part) -> int:
    array, rows = part
    return len(array) if rows is None else len(rows)


def iter_chunks(parts: Sequence[Part], rows_per_chunk: int) -> Iterator[np.ndarray]:
    """The rows of every part, in order, ``rows_per_chunk`` at a time (a gathered copy of one
    chunk for an index subset, a view otherwise)."""
    for array, rows in parts:
        n = part_rows((array, rows))
        for start in range(0, n, rows_per_chunk):
            stop = min(start + rows_per_chunk, n)
            yield array[start:stop] if rows is None else array[rows[start:stop]]


@dataclass(frozen=True)
class PCAFit:
    """Standardization + PCA: ``((x - mean) / scale) @ axes``."""

    mean: np.ndarray  # [d] float64
    scale: np.ndarray  # [d] population std (1 where it is 0)
    axes: np.ndarray  # [d, n_components] float64, by decreasing variance
    variances: np.ndarray  # [n_components] explained variance (n - 1 denominator)

    def transform(self, parts: Sequence[Part], memory_mb: float) -> np.ndarray:
        """[sum of part rows, n_components] float64 coordinates, a chunk at a time."""
        rows = rows_within(memory_mb, _row_bytes(len(self.mean)))
        out = []
        for c in iter_chunks(parts, rows):
            out.append(((c - self.mean) / self.scale) @ self.axes)
            del c  # before the next chunk is read: one chunk at a time
        if not out:
            return np.zeros((0, self.axes.shape[1]))
        return np.concatenate(out)


def _row_bytes(dim: int) -> int:
    # one gathered float32 row + its float64 centred and scaled copies
    return dim * (4 + 8 + 8)


def square_mb(dim: int, copies: int = 3) -> float:
    """MiB of ``copies`` float64 d x d arrays (a covariance, its eigenvectors, LAPACK's copy)."""
    return copies * dim * dim * 8 / MIB


def left_for_chunks(memory_mb: float, fixed_mb: float) -> float:
    """The budget the row chunks get beside ``fixed_mb`` of arrays that do not grow with N (a
    quarter of it when those alone exceed it: they are beyond the rule, the chunks are not)."""
    return max(memory_mb - fixed_mb, memory_mb / 4)


def fit_pca(parts: Sequence[Part], n_components: int, memory_mb: float) -> PCAFit:
    """Standardize the rows of ``parts`` (together) and fit ``n_components`` principal axes, in
    two passes of chunks within ``memory_mb`` (the mean; then the centred covariance, whose
    diagonal gives the std); the chunks get the budget less the d x d arrays
    (:func:`square_mb`), which the rule leaves out."""
    dim = parts[0][0].shape[1]
    n = sum(part_rows(p) for p in parts)
    if n < 2:
        raise ValueError("PCA needs at least 2 rows")
    rows = rows_within(left_for_chunks(memory_mb, square_mb(dim)), _row_bytes(dim))
    mean = np.zeros(dim)
    for c in iter_chunks(parts, rows):
        mean += c.sum(0, dtype=np.float64)
        del c  # before the next chunk is read: one chunk at a time
    mean /= n
    cov = np.zeros((dim, dim))
    for c in iter_chunks(parts, rows):
        z = c - mean
        del c
        cov += z.T @ z
        del z
    var = np.diag(cov) / n
    scale = np.where(var > 0, np.sqrt(var), 1.0)
    cov /= scale[:, None]
    cov /= scale[None, :]
    values, vectors = np.linalg.eigh(cov)
    del cov
    order = np.argsort(values)[::-1][:n_components]
    return PCAFit(mean, scale, vectors[:, order].copy(), values[order] / (n - 1))
