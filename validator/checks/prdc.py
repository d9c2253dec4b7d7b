"""Precision/recall and density/coverage of the synthetic set against the real one.

Methods: improved precision and recall, Kynkäänniemi et al., "Improved Precision and Recall
Metric for Assessing Generative Models" (NeurIPS 2019): a sample is inside a manifold if it lies
within the k-NN radius of one of that set's samples; density and coverage, Naeem et al.,
"Reliable Fidelity and Diversity Metrics for Generative Models" (ICML 2020), following their
reference code (github.com/clovaai/generative-evaluation-prdc, k = 5). Euclidean distances
between features. Precision ~ fidelity (no synthetic outliers), recall/coverage ~ diversity
(no mode collapse).
"""

from __future__ import annotations

import numpy as np

from validator.budget import rows_within
from validator.checks import CheckInputs, CheckResult, register
from validator.neighbours import DEFAULT_MEMORY_MB

# bytes per (row, column) cell of one chunk: float32 squared distance + its partition copy or
# the comparison masks
CELL_BYTES = 4 + 4 + 2


def _sq_norms(x, rows: int) -> np.ndarray:
    """Squared L2 norm of every row (float64), ``rows`` rows read at a time."""
    out = np.empty(len(x))
    for start in range(0, len(x), rows):
        c = np.asarray(x[start : start + rows], np.float32)
        out[start : start + len(c)] = np.einsum("ij,ij->i", c, c, dtype=np.float64)
    return out


def _sq_dist(a, a_sq, b, b_sq) -> np.ndarray:
    """Squared Euclidean distances [len(a), len(b)], float32 (one product, no copy of b)."""
    d = a @ b.T
    d *= -2.0
    d += a_sq[:, None].astype(np.float32)
    d += b_sq[None, :].astype(np.float32)
    return np.maximum(d, 0.0, out=d)


def _plan(n_ref: int, dim: int, memory_mb: float) -> tuple[int, int]:
    """(reference rows per block, query rows per chunk): a block of reference rows gets half
    of ``memory_mb``, a chunk's rows and its cells against the block the other half."""
    block = min(n_ref, rows_within(memory_mb / 2, 4 * dim))
    return max(1, block), rows_within(memory_mb / 2, block * CELL_BYTES + 4 * dim)


def _blocks(x, x_sq, block: int):
    """(start, float32 rows, their squared norms) of ``x``, ``block`` rows at a time."""
    for start in range(0, len(x), block):
        yield start, np.asarray(x[start : start + block], np.float32), x_sq[start : start + block]


def _kth_radius_sq(x, x_sq: np.ndarray, k: int, memory_mb: float) -> np.ndarray:
    """Squared distance of every row to its k-th nearest other row: blocks of reference rows,
    chunks of query rows, the k + 1 smallest (the row itself among them, at -1) kept per row."""
    block, rows = _plan(len(x), x.shape[1], memory_mb)
    best = np.full((len(x), k + 1), np.inf, dtype=np.float32)
    for b0, ref, ref_sq in _blocks(x, x_sq, block):
        for start, q, q_sq in _blocks(x, x_sq, rows):
            d = _sq_dist(q, q_sq, ref, ref_sq)
            local = np.arange(len(d))
            own = start + local - b0
            inside = (own >= 0) & (own < len(ref))
            d[local[inside], own[inside]] = -1.0  # the row itself: always among the smallest
            keep, n = min(k + 1, d.shape[1]), len(d)
            part = np.partition(d, keep - 1, axis=1)[:, :keep].copy()  # not a view of cells
            del d  # before the next chunk's cells are made: one chunk's at a time
            merged = np.concatenate([best[start : start + n], part], axis=1)
            best[start : start + n] = np.partition(merged, k, axis=1)[:, : k + 1]
        del ref, ref_sq  # before the next block is read: one block in memory at a time
    return np.partition(best, k, axis=1)[:, k]


def prdc_values(real, syn, k: int = 5, *, memory_mb: float = DEFAULT_MEMORY_MB) -> dict:
    """Precision, recall, density and coverage, in blocks of reference rows and chunks of
    query rows whose working arrays stay within ``memory_mb`` MiB; no [Nr, Ns] matrix, and the
    sets (arrays or :class:`validator.rowfile.RowFile`) are read a block at a time. Products
    in float32 (BLAS), norms in float64."""
    k = min(k, len(real) - 1, len(syn) - 1)
    if k < 1:
        raise ValueError("precision/recall need at least 2 real and 2 synthetic images")
    dim = real.shape[1]
    block, rows = _plan(len(real), dim, memory_mb)
    real_sq, syn_sq = _sq_norms(real, block), _sq_norms(syn, block)
    r_real = _kth_radius_sq(real, real_sq, k, memory_mb)
    r_syn = _kth_radius_sq(syn, syn_sq, k, memory_mb)
    inside_count = np.zeros(len(syn), dtype=np.int64)  # real balls holding each synthetic image
    recalled = np.zeros(len(real), dtype=bool)  # real images inside some synthetic ball
    nearest_syn = np.full(len(real), np.inf, dtype=np.float32)  # real -> nearest synthetic
    for b0, ref, ref_sq in _blocks(real, real_sq, block):
        b1 = b0 + len(ref)
        for start, q, q_sq in _blocks(syn, syn_sq, rows):
            d = _sq_dist(q, q_sq, ref, ref_sq)
            inside_count[start : start + len(d)] += (d < r_real[None, b0:b1]).sum(axis=1)
            recalled[b0:b1] |= (d < r_syn[start : start + len(d), None]).any(axis=0)
            np.minimum(nearest_syn[b0:b1], d.min(axis=0), out=nearest_syn[b0:b1])
            del d
        del ref, ref_sq
    return {
        "precision": float((inside_count > 0).mean()),
        "recall": float(recalled.mean()),
        "density": float(inside_count.mean() / k),
        "coverage": float((nearest_syn < r_real).mean()),
        "k": k,
    }


@register("prdc", "quality")
def prdc(inputs: CheckInputs) -> CheckResult:
    """Precision/recall (Kynkäänniemi 2019) and density/coverage (Naeem 2020), k-NN balls."""
    t = inputs.thresholds
    values = prdc_values(inputs.real, inputs.synthetic, t.prdc_k, memory_mb=inputs.memory_mb)
    limits = {
        "precision_min": t.precision_min,
        "recall_min": t.recall_min,
        "density_min": t.density_min,
        "coverage_min": t.coverage_min,
    }
    failed = [
        name
        for name, lim in limits.items()
        if lim is not None and values[name.removesuffix("_min")] < lim
    ]
    return CheckResult(
        name="prdc",
        kind="quality",
        passed=not failed,
        thresholds=limits,
        numbers=values,
        note=("below: " + ", ".join(failed)) if failed else "",
    )
