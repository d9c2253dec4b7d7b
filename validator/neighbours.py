"""Exact nearest-neighbour search by cosine distance, chunked matrix products (NumPy BLAS).

Used by the privacy checks (distance to closest record, NNDR, data-copying). Cosine distance
``1 - <a, b> / (|a| |b|)``; for the pixel space each reference item may have several views
(mirrors, zooms): its distance is the minimum over its views.

Memory: the query rows go through in chunks, sized by :func:`chunk_rows` so that one chunk's
working arrays (``chunk x n_reference`` cells of :data:`CELL_BYTES` bytes: distances, the
product, the partition indices, the group mask) fit ``memory_mb``, whatever the set sizes; the
inputs are never copied whole (queries are normalized a chunk at a time, the reference rows by
their norms, computed once). The arrays themselves come on top.

FAISS (``faiss-cpu`` 1.15.1, ``IndexFlatIP`` on unit rows, exact) was measured against this on
20,000 x 10,000 x 2048, k = 3, on a shared 2-core x86-64 machine: 4.3 s vs 5.0 s on 1 thread,
2.3 s vs 2.8 s on 2 (identical neighbours): under 1.2x, both bound by the same BLAS product, so
no extra library (and no second thread pool beside threadpoolctl's).
"""

from __future__ import annotations

import numpy as np

DEFAULT_MEMORY_MB = 1024
# bytes per (query, reference) cell of one chunk: float32 similarity + float32 product of a
# further view + int64 partition index (k > 8) + bool group mask
CELL_BYTES = 4 + 4 + 8 + 1


def chunk_rows(n_reference: int, memory_mb: float, *, cell_bytes: int = CELL_BYTES) -> int:
    """Query rows per chunk so that ``rows x n_reference`` cells of ``cell_bytes`` fit in
    ``memory_mb`` MiB (at least 1 row: a budget below one row's needs still runs)."""
    if memory_mb <= 0:
        raise ValueError(f"memory_mb must be positive, got {memory_mb}")
    return max(1, int(memory_mb * 2**20) // (cell_bytes * max(1, n_reference)))


def row_norms(x: np.ndarray) -> np.ndarray:
    """L2 norm of every row, float32, without a temporary copy of ``x``."""
    x = np.asarray(x)
    return np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64)).astype(np.float32)


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (float32; all-zero rows stay zero). A copy: use it on
    chunks or small sets."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(row_norms(x), 1e-12)[:, None]


def nearest(
    query: np.ndarray,
    reference: np.ndarray | list[np.ndarray],
    k: int = 1,
    *,
    exclude_self: bool = False,
    groups: tuple[np.ndarray, np.ndarray] | None = None,
    memory_mb: float = DEFAULT_MEMORY_MB,
    chunk: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest reference rows of every query row by cosine distance.

    ``reference`` is one [N, D] array or a list of views of it (same N and order); a row's
    distance is its minimum over the views. ``exclude_self`` (query is reference) skips the
    identical index: leave-one-out. ``groups`` (integer codes of the query and reference rows)
    skips every pair with equal codes (e.g. images of one lesion). ``memory_mb`` bounds one
    chunk's working arrays (:func:`chunk_rows`); ``chunk`` (rows) overrides it.
    Returns (distances [Nq, k], indices [Nq, k]), ascending.
    """
    views = [
        np.asarray(v, dtype=np.float32)
        for v in (reference if isinstance(reference, list) else [reference])
    ]
    inv_norms = [1.0 / np.maximum(row_norms(v), 1e-12) for v in views]
    query = np.asarray(query, dtype=np.float32)
    n_ref = views[0].shape[0]
    k = min(k, n_ref - (1 if exclude_self else 0))
    if groups is not None:
        k = min(k, n_ref - int(np.bincount(np.unique(groups[1], return_inverse=True)[1]).max()))
    if k < 1:
        raise ValueError(
            "nearest-neighbour search needs at least one reference item (two for leave-one-out)"
        )
    rows = max(1, min(chunk or chunk_rows(n_ref, memory_mb), len(query)))
    dist = np.empty((len(query), k), dtype=np.float32)
    idx = np.empty((len(query), k), dtype=np.int64)
    # similarities (the largest wins), so that a distance is only formed for the k kept
    s_buf = np.empty((rows, n_ref), dtype=np.float32)
    p_buf = np.empty((rows, n_ref), dtype=np.float32) if len(views) > 1 else s_buf
    for start in range(0, len(query), rows):
        block = unit_rows(query[start : start + rows])
        n = len(block)
        sim, prod = s_buf[:n], p_buf[:n]
        for i, (view, inv) in enumerate(zip(views, inv_norms)):
            target = sim if i == 0 else prod
            np.matmul(block, view.T, out=target)
            target *= inv
            if i:
                np.maximum(sim, prod, out=sim)
        if exclude_self:
            local = np.arange(n)
            sim[local, start + local] = -np.inf
        if groups is not None:
            sim[groups[0][start : start + n, None] == groups[1][None, :]] = -np.inf
        top_i, top_s = _largest(sim, k)
        idx[start : start + n] = top_i
        dist[start : start + n] = np.maximum(1.0 - top_s, 0.0)
    return dist, idx


def _largest(sim: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the ``k`` largest entries of every row, descending. Small ``k``:
    ``k`` arg-max passes (each taken entry set to -inf, in place); else one partition."""
    rows = np.arange(len(sim))
    if k <= 8:
        top_i = np.empty((len(sim), k), dtype=np.int64)
        top_s = np.empty((len(sim), k), dtype=np.float32)
        for j in range(k):
            top_i[:, j] = np.argmax(sim, axis=1)
            top_s[:, j] = sim[rows, top_i[:, j]]
            sim[rows, top_i[:, j]] = -np.inf
        return top_i, top_s
    part = np.argpartition(sim, sim.shape[1] - k, axis=1)[:, -k:]
    vals = np.take_along_axis(sim, part, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(vals, order, axis=1)
