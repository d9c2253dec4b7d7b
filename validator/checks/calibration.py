"""Statistics of the calibrated privacy checks: conformal p-values against a real baseline
(with a power-law lower tail below the baseline's minimum), Bonferroni over spaces,
Benjamini-Hochberg over images, and binomial confidence bounds.

- Conformal p-value (Vovk et al., "Algorithmic Learning in a Random World", 2005; for outlier
  detection: Bates, Candès, Lei, Romano & Sesia, "Testing for outliers with conformal
  p-values", Annals of Statistics 2023): for a query distance d and n baseline distances b_i of
  real images the model never saw, p = (1 + #{b_i <= d}) / (n + 1). If the query is exchangeable
  with the baseline (an unseen real image), P(p <= a) <= a for every a: the "(n+1) correction".
  Bates et al. show these p-values (one shared baseline) are PRDS, so Benjamini-Hochberg over
  them controls the false-discovery rate.
- Below the baseline's minimum b_(1) the rank gives 1/(n+1) however far below; to tell a copy
  (distance ~0) from an image just below b_(1), the p-value is continued with the lower tail of
  nearest-neighbour distances, P(D <= d) ~ c d^k for small d (k: the local intrinsic dimension,
  Levina & Bickel, NIPS 2004): p = (d / b_(1))^k / (n + 1). k is the Hill estimate on the
  lowest baseline values, taken at its lower 95 % confidence bound (a smaller k gives larger,
  i.e. conservative, p-values).
- Benjamini & Hochberg, "Controlling the false discovery rate", JRSS B 1995.
- Clopper & Pearson, Biometrika 1934 (exact binomial interval).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import beta, gamma

EXACT = 1e-6  # a distance at most this is an exact copy: p = 0


def tail_exponent(baseline: np.ndarray, confidence: float = 0.95) -> float:
    """Lower confidence bound of the power-law exponent k of the baseline's lower tail (Hill
    estimator on the lowest m = clip(n // 10, 5, 50) values above EXACT); 0 if it cannot be
    estimated (then nothing is extrapolated)."""
    b = np.sort(baseline[baseline > EXACT])
    m = int(np.clip(len(b) // 10, 5, 50))
    if len(b) < m + 1:
        return 0.0
    logs = np.log(b[m] / b[:m])
    total = float(logs.sum())
    if total <= 0:
        return 0.0
    # under the power law, k * sum(logs) ~ Gamma(m, 1): a lower confidence bound of k
    return float(gamma.ppf(1.0 - confidence, m) / total)


def conformal_p(query: np.ndarray, baseline: np.ndarray, k: float | None = None) -> np.ndarray:
    """One p-value per query distance (small: closer than the real baseline). ``k``: the
    lower-tail exponent (default :func:`tail_exponent` of ``baseline``)."""
    query = np.asarray(query, dtype=np.float64)
    b = np.sort(np.asarray(baseline, dtype=np.float64))
    n = len(b)
    if n == 0:
        return np.ones(len(query))
    k = tail_exponent(b) if k is None else k
    p = (1.0 + np.searchsorted(b, query, side="right")) / (n + 1.0)
    below = query < b[0]
    if k > 0 and b[0] > EXACT and below.any():
        p[below] = np.clip(query[below] / b[0], 0.0, 1.0) ** k / (n + 1.0)
    p[query <= EXACT] = 0.0
    return p


def leave_one_out_p(
    baseline: np.ndarray, members: np.ndarray, k: float | None = None
) -> np.ndarray:
    """p-values of the baseline members ``baseline[members]``, each against the baseline
    without itself: a real image scored as if it were synthetic (real-vs-real calibration).
    ``k``: the tail exponent (default: estimated without the member)."""
    b = np.asarray(baseline, dtype=np.float64)
    order = np.sort(b)
    n = len(b) - 1  # the others
    out = np.ones(len(members))
    if n < 1:
        return out
    for j, i in enumerate(members):
        v = b[i]
        rank = int(np.searchsorted(order, v, side="right")) - 1  # others at or below v
        if rank > 0:
            out[j] = (1.0 + rank) / (n + 1.0)
        else:  # the strict minimum: the tail of the others decides
            out[j] = conformal_p(np.array([v]), np.delete(b, i), k)[0]
    return out


def combine_spaces(*p_values: np.ndarray) -> np.ndarray:
    """Bonferroni over the spaces: min(1, K * min_k p_k)."""
    stacked = np.vstack(p_values)
    return np.minimum(1.0, len(p_values) * stacked.min(axis=0))


def benjamini_hochberg(p: np.ndarray, q: float) -> np.ndarray:
    """Bool mask of the p-values rejected at false-discovery rate ``q`` (step-up)."""
    p = np.asarray(p, dtype=np.float64)
    m = len(p)
    if m == 0 or q <= 0:
        return np.zeros(m, dtype=bool)
    order = np.argsort(p, kind="stable")
    passed = p[order] <= q * np.arange(1, m + 1) / m
    out = np.zeros(m, dtype=bool)
    if passed.any():
        out[order[: int(np.flatnonzero(passed).max()) + 1]] = True
    return out


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Two-sided exact binomial interval of k successes in n at ``confidence``."""
    if n <= 0:
        return 0.0, 1.0
    a = (1.0 - confidence) / 2
    lo = 0.0 if k <= 0 else float(beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k >= n else float(beta.ppf(1 - a, k + 1, n - k))
    return lo, hi


def lower_bound(k: float, n: int, alpha: float) -> float:
    """One-sided (1 - alpha) Clopper-Pearson lower bound of a proportion k / n (k may be a
    half-integer from ties: rounded down)."""
    k = int(np.floor(k))
    return 0.0 if k <= 0 or n <= 0 else float(beta.ppf(alpha, k, n - k + 1))
