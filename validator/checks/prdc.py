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

from validator.checks import CheckInputs, CheckResult, register
from validator.neighbours import DEFAULT_MEMORY_MB, chunk_rows

# bytes per (row, column) cell of one chunk: float32 squared distance + its partition copy or
# the comparison masks
CELL_BYTES = 4 + 4 + 2


def _sq_norms(x: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", x, x, dtype=np.float64)


def _sq_dist(a, a_sq, b, b_sq) -> np.ndarray:
    """Squared Euclidean distances [len(a), len(b)], float32 (one product, no copy of b)."""
    d = a @ b.T
    d *= -2.0
    d += a_sq[:, None].astype(np.float32)
    d += b_sq[None, :].astype(np.float32)
    return np.maximum(d, 0.0, out=d)


def _kth_radius_sq(x: np.ndarray, x_sq: np.ndarray, k: int, rows: int) -> np.ndarray:
    """Squared distance of every row to its k-th nearest other row, ``rows`` rows at a time."""
    out = np.empty(len(x), dtype=np.float32)
    for start in range(0, len(x), rows):
        d = _sq_dist(x[start : start + rows], x_sq[start : start + rows], x, x_sq)
        local = np.arange(len(d))
        d[local, start + local] = -1.0  # the point itself: always column 0 of the partition
        out[start : start + len(d)] = np.partition(d, k, axis=1)[:, k]
    return out


def prdc_values(
    real: np.ndarray, syn: np.ndarray, k: int = 5, *, memory_mb: float = DEFAULT_MEMORY_MB
) -> dict:
    """Precision, recall, density and coverage, in chunks: one chunk's working arrays stay
    within ``memory_mb`` MiB (:func:`validator.neighbours.chunk_rows`); no [Nr, Ns] matrix.
    Products in float32 (BLAS), norms in float64."""
    real, syn = np.asarray(real, np.float32), np.asarray(syn, np.float32)
    k = min(k, len(real) - 1, len(syn) - 1)
    if k < 1:
        raise ValueError("precision/recall need at least 2 real and 2 synthetic images")
    real_sq, syn_sq = _sq_norms(real), _sq_norms(syn)
    real_rows = chunk_rows(len(real), memory_mb, cell_bytes=CELL_BYTES)
    r_real = _kth_radius_sq(real, real_sq, k, real_rows)
    rows = chunk_rows(max(len(real), len(syn)), memory_mb, cell_bytes=CELL_BYTES)
    r_syn = _kth_radius_sq(syn, syn_sq, k, rows)
    inside_count = np.zeros(len(syn), dtype=np.int64)  # real balls holding each synthetic image
    recalled = np.zeros(len(real), dtype=bool)  # real images inside some synthetic ball
    nearest_syn = np.full(len(real), np.inf, dtype=np.float32)  # real -> nearest synthetic
    for start in range(0, len(syn), rows):
        d = _sq_dist(syn[start : start + rows], syn_sq[start : start + rows], real, real_sq)
        inside_count[start : start + len(d)] = (d < r_real[None, :]).sum(axis=1)
        recalled |= (d < r_syn[start : start + len(d), None]).any(axis=0)
        np.minimum(nearest_syn, d.min(axis=0), out=nearest_syn)
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
