"""Exact nearest-neighbour search by cosine distance, chunked matrix products (NumPy BLAS).

Used by the privacy checks (distance to closest record, NNDR, data-copying). Cosine distance
``1 - <a, b> / (|a| |b|)``; for the pixel space each reference item may have several views
(mirrors, zooms): its distance is the minimum over its views. Memory stays bounded by the
chunk size: ``chunk x n_reference`` floats per view at a time.
"""

from __future__ import annotations

import numpy as np


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (float32; all-zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norm, 1e-12)


def nearest(
    query: np.ndarray,
    reference: np.ndarray | list[np.ndarray],
    k: int = 1,
    *,
    exclude_self: bool = False,
    groups: tuple[np.ndarray, np.ndarray] | None = None,
    chunk: int = 1024,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest reference rows of every query row by cosine distance.

    ``reference`` is one [N, D] array or a list of views of it (same N and order); a row's
    distance is its minimum over the views. ``exclude_self`` (query is reference) skips the
    identical index: leave-one-out. ``groups`` (integer codes of the query and reference rows)
    skips every pair with equal codes (e.g. images of one lesion).
    Returns (distances [Nq, k], indices [Nq, k]), ascending.
    """
    views = [unit_rows(v) for v in (reference if isinstance(reference, list) else [reference])]
    q = unit_rows(query)
    n_ref = views[0].shape[0]
    k = min(k, n_ref - (1 if exclude_self else 0))
    if groups is not None:
        k = min(k, n_ref - int(np.bincount(np.unique(groups[1], return_inverse=True)[1]).max()))
    if k < 1:
        raise ValueError(
            "nearest-neighbour search needs at least one reference item (two for leave-one-out)"
        )
    dist = np.empty((len(q), k), dtype=np.float32)
    idx = np.empty((len(q), k), dtype=np.int64)
    for start in range(0, len(q), chunk):
        block = q[start : start + chunk]
        d = np.full((len(block), n_ref), np.inf, dtype=np.float32)
        for view in views:
            np.minimum(d, 1.0 - block @ view.T, out=d)
        if exclude_self:
            rows = np.arange(len(block))
            d[rows, start + rows] = np.inf
        if groups is not None:
            d[groups[0][start : start + len(block), None] == groups[1][None, :]] = np.inf
        part = (
            np.argpartition(d, k - 1, axis=1)[:, :k]
            if k < n_ref
            else np.tile(np.arange(n_ref), (len(block), 1))
        )
        pd = np.take_along_axis(d, part, axis=1)
        order = np.argsort(pd, axis=1)
        idx[start : start + len(block)] = np.take_along_axis(part, order, axis=1)
        dist[start : start + len(block)] = np.maximum(np.take_along_axis(pd, order, axis=1), 0.0)
    return dist, idx
