"""Kernel Inception(-style) Distance (KID).

Method: Bińkowski, Sutherland, Arbel & Gretton, "Demystifying MMD GANs" (ICLR 2018): the
unbiased estimator of the squared MMD with the cubic polynomial kernel
k(x, y) = (x·y / d + 1)³, averaged over random subsets (as in their code and stylegan2-ada's
``metrics/kernel_inception_distance.py``, which this follows). Unbiased: about 0 (and may be
slightly negative) for two samples of one distribution, whatever the sample size.
"""

from __future__ import annotations

import numpy as np

from validator.checks import CheckInputs, CheckResult, register


def kid_subsets(
    real: np.ndarray, syn: np.ndarray, subset_size: int = 1000, subsets: int = 100, seed: int = 0
) -> np.ndarray:
    rng = np.random.default_rng(seed)
    d = real.shape[1]  # subsets converted to float64 one at a time: no copy of the sets
    m = min(subset_size, len(real), len(syn))
    if m < 2:
        raise ValueError("KID needs at least 2 real and 2 synthetic images")
    values = np.empty(subsets)
    for i in range(subsets):
        x = np.asarray(syn[rng.choice(len(syn), m, replace=False)], np.float64)
        y = np.asarray(real[rng.choice(len(real), m, replace=False)], np.float64)
        a = (x @ x.T / d + 1) ** 3 + (y @ y.T / d + 1) ** 3
        b = (x @ y.T / d + 1) ** 3
        values[i] = (a.sum() - np.diag(a).sum()) / (m - 1) / m - b.sum() * 2 / m / m
    return values


@register("kid", "quality")
def kid(inputs: CheckInputs) -> CheckResult:
    """Kernel Inception(-style) Distance, unbiased cubic-kernel MMD² (Bińkowski et al. 2018)."""
    t = inputs.thresholds
    values = kid_subsets(
        inputs.real, inputs.synthetic, t.kid_subset_size, t.kid_subsets, inputs.seed
    )
    value = float(values.mean())
    return CheckResult(
        name="kid",
        kind="quality",
        passed=t.kid_max is None or value <= t.kid_max,
        thresholds={"kid_max": t.kid_max},
        numbers={
            "kid": value,
            "kid_std": float(values.std()),
            "subset_size": min(t.kid_subset_size, len(inputs.real), len(inputs.synthetic)),
            "subsets": t.kid_subsets,
        },
        note="report only (no kid_max)" if t.kid_max is None else "",
    )
