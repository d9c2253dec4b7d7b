"""Classifier two-sample test on weight-free image statistics: can a linear classifier tell
synthetic from real images by colour and texture alone?

Method: the classifier two-sample test of Lopez-Paz & Oquab, "Revisiting Classifier Two-Sample
Tests" (ICLR 2017), with hand-made features instead of a pretrained network's
(:func:`common.image_stats.image_statistics`: a 2x2 CIELAB thumbnail, Lab histograms, moments
and background colour, and log-scale texture statistics of the lightness: Laplacian band
energies and their ratios, gradient magnitude, local variance). The classifier is linear and
ridge-regularised (:func:`common.image_stats.ridge_cv_auc`: least squares on standardised
features, a shrinkage Fisher discriminant, which the paper's framework allows for any
classifier); the statistic is its out-of-fold ROC AUC over stratified 5-fold cross-validation
(0.5: indistinguishable). On isic-demo it separated blurred and colour-shifted images as well
as a logistic regression (AUC 0.94-0.96 for blur, 0.87-0.90 for a 20 % shift) at 1/40 of the
time, so the spread can use many splits. Beside the value: the same AUC between disjoint real
halves; the decision: its z against the permutation null (:mod:`validator.checks.weight_free`),
which is the paper's permutation test with a normal approximation.
"""

from __future__ import annotations

import numpy as np

from common.image_stats import image_statistics, ridge_cv_auc
from common.quality import compare_with_spread
from validator.checks import CheckInputs, CheckResult, register
from validator.checks.weight_free import comparison_pixels, pixel_sample, spread_result


class _Features:
    def __init__(self, images: np.ndarray):
        self.x = image_statistics(images)

    def __len__(self) -> int:
        return len(self.x)


def cv_auc(a: _Features, a_idx, b: _Features, b_idx, rng: np.random.Generator) -> dict:
    """Out-of-fold AUC of the linear classifier separating subset ``a_idx`` from ``b_idx``."""
    x = np.concatenate([a.x[a_idx], b.x[b_idx]])
    labels = np.r_[np.zeros(len(a_idx)), np.ones(len(b_idx))]
    return {"auc": ridge_cv_auc(x, labels, rng)}


@register("pixel_c2st", "quality", weight_free=True)
def pixel_c2st(inputs: CheckInputs) -> CheckResult:
    """Classifier two-sample test on colour and texture statistics, no network (Lopez-Paz 2017)."""
    real, synthetic, side = comparison_pixels(inputs)
    pool = _Features(np.concatenate([real, synthetic]))
    spread = compare_with_spread(
        cv_auc, pool, len(real), repeats=inputs.thresholds.pixel_c2st_splits, seed=inputs.seed
    )
    return spread_result(
        "pixel_c2st",
        spread,
        decisive=["auc"],
        limit=inputs.thresholds.pixel_c2st_max_z,
        limit_name="pixel_c2st_max_z",
        extra={"side_px": side, **pixel_sample(inputs)},
        what="colour and texture statistics",
    )
