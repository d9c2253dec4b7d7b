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
from scipy.spatial.distance import cdist

from validator.checks import CheckInputs, CheckResult, register


def _kth_radius(x: np.ndarray, k: int) -> np.ndarray:
    d = cdist(x, x)
    return np.partition(d, k, axis=1)[:, k]  # column 0 is the point itself


def prdc_values(real: np.ndarray, syn: np.ndarray, k: int = 5) -> dict:
    real, syn = np.asarray(real, np.float64), np.asarray(syn, np.float64)
    k = min(k, len(real) - 1, len(syn) - 1)
    if k < 1:
        raise ValueError("precision/recall need at least 2 real and 2 synthetic images")
    r_real, r_syn = _kth_radius(real, k), _kth_radius(syn, k)
    d = cdist(real, syn)  # [Nr, Ns]
    inside = d < r_real[:, None]
    return {
        "precision": float(inside.any(axis=0).mean()),
        "recall": float((d < r_syn[None, :]).any(axis=1).mean()),
        "density": float(inside.sum(axis=0).mean() / k),
        "coverage": float((d.min(axis=1) < r_real).mean()),
        "k": k,
    }


@register("prdc", "quality")
def prdc(inputs: CheckInputs) -> CheckResult:
    """Precision/recall (Kynkäänniemi 2019) and density/coverage (Naeem 2020), k-NN balls."""
    t = inputs.thresholds
    values = prdc_values(inputs.real, inputs.synthetic, t.prdc_k)
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
