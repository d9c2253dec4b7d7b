"""Fréchet distance between Gaussians fitted to real and synthetic features (FID).

Method: Heusel et al., "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
Equilibrium" (NeurIPS 2017): ||mu_r - mu_s||² + Tr(S_r + S_s - 2 (S_r S_s)^½), the value of
pytorch-fid's ``calculate_frechet_distance`` (scipy.linalg.sqrtm) when both sets hold more images
than there are feature dimensions; the trace comes from symmetric eigendecompositions
(:func:`trace_sqrt_product`: real, no complex Schur form, about five d x d arrays instead of
eight). With fewer images (the usual case here: 2048-d), the covariances
have low rank and the same trace is computed exactly and ~100x faster:
Tr (S_r S_s)^½ = nuclear norm of A Bᵀ, with A, B the centred features / sqrt(n - 1) (the
non-zero eigenvalues of AᵀA BᵀB are the squared singular values of A Bᵀ). Here on Xception
features, so the values are not comparable with Inception-v3 FIDs published elsewhere, and
biased upward for small sets (Chong & Forsyth 2020): compare runs of equal size only.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg

from validator.budget import DEFAULT_MEMORY_MB, left_for_chunks, rows_within, square_mb
from validator.checks import CheckInputs, CheckResult, register


def trace_sqrt_product_lowrank(a: np.ndarray, b: np.ndarray) -> float:
    """Tr((cov(a) cov(b))^½) for feature matrices [n, d] with small n, via singular values."""
    a = (a - a.mean(0)) / np.sqrt(len(a) - 1)
    b = (b - b.mean(0)) / np.sqrt(len(b) - 1)
    return float(np.linalg.svd(a @ b.T, compute_uv=False).sum())


def mean_cov(x: np.ndarray, rows: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (n - 1) of the rows of ``x`` (an array or a
    :class:`validator.rowfile.RowFile`) in float64, ``rows`` rows at a time (no float64 copy of
    ``x``): sums of the centred chunks' outer products."""
    mu = np.zeros(x.shape[1])
    for start in range(0, len(x), rows):
        mu += x[start : start + rows].sum(0, dtype=np.float64)
    mu /= len(x)
    cov = np.zeros((x.shape[1], x.shape[1]))
    for start in range(0, len(x), rows):
        c = x[start : start + rows] - mu
        cov += c.T @ c
        del c  # before the next chunk is made: one float64 chunk at a time
    return mu, cov / (len(x) - 1)


def frechet_distance(
    a: np.ndarray, b: np.ndarray, *, memory_mb: float = DEFAULT_MEMORY_MB
) -> float:
    """FID of two feature sets (arrays or RowFiles); the covariances are accumulated in chunks
    of rows within ``memory_mb`` beside the d x d arrays (about 5 of them: the covariances and
    the factors of :func:`trace_sqrt_product`; :mod:`validator.budget` leaves those out of the
    rule)."""
    if len(a) < 2 or len(b) < 2:
        raise ValueError("FID needs at least 2 real and 2 synthetic images")
    dim = np.shape(a)[1]
    # a chunk's row: read (float32) and centred (float64)
    rows = rows_within(left_for_chunks(memory_mb, square_mb(dim, 5)), 12 * dim)
    if min(len(a), len(b)) <= np.shape(a)[1]:
        # few rows (at most d each): small float64 copies, read whole from a RowFile too
        a, b = (np.asarray(x[0 : len(x)], np.float64) for x in (a, b))
        mu1, mu2 = a.mean(0), b.mean(0)
        diff = mu1 - mu2
        tr1 = float(((a - mu1) ** 2).sum() / (len(a) - 1))
        tr2 = float(((b - mu2) ** 2).sum() / (len(b) - 1))
        value = diff @ diff + tr1 + tr2 - 2 * trace_sqrt_product_lowrank(a, b)
        return float(max(value, 0.0))
    (mu1, s1), (mu2, s2) = mean_cov(a, rows), mean_cov(b, rows)
    diff = mu1 - mu2
    tr1, tr2 = float(np.trace(s1)), float(np.trace(s2))
    return float(max(diff @ diff + tr1 + tr2 - 2 * trace_sqrt_product(s1, s2), 0.0))


def trace_sqrt_product(s1: np.ndarray, s2: np.ndarray) -> float:
    """Tr((S1 S2)^½) of two covariance matrices, consumed (overwritten): S1 S2 is similar to
    the symmetric S1^½ S2 S1^½ (its eigenvalues are the same, all >= 0), so the trace is the
    sum of the square roots of that matrix's eigenvalues, from symmetric eigendecompositions
    (float64, real: no complex Schur form as in ``scipy.linalg.sqrtm``, and at most about five
    d x d arrays alive at once). Equals pytorch-fid's ``trace(sqrtm(S1 @ S2))`` where that is
    finite (tested); negative round-off eigenvalues count as 0."""
    w, v = linalg.eigh(s1, overwrite_a=True, check_finite=False)
    del s1
    v *= np.sqrt(np.sqrt(np.clip(w, 0.0, None)))  # U = V W^¼: S1^½ = V W^½ Vᵀ = U Uᵀ
    root = v @ v.T
    del v
    m = root @ s2
    del s2
    m = m @ root
    del root
    m += m.T  # symmetric up to round-off: symmetrize (numpy buffers the overlapping view)
    m *= 0.5
    values = linalg.eigvalsh(m, overwrite_a=True, check_finite=False)
    return float(np.sqrt(np.clip(values, 0.0, None)).sum())


@register("fid", "quality")
def fid(inputs: CheckInputs) -> CheckResult:
    """Fréchet Inception(-style) Distance on Xception features (Heusel et al. 2017)."""
    limit = inputs.thresholds.fid_max
    value = frechet_distance(inputs.real, inputs.synthetic, memory_mb=inputs.memory_mb)
    return CheckResult(
        name="fid",
        kind="quality",
        passed=limit is None or value <= limit,
        thresholds={"fid_max": limit},
        numbers={"fid": value, "real": len(inputs.real), "synthetic": len(inputs.synthetic)},
        note="report only (no fid_max)" if limit is None else "",
    )
