"""Holdout-based share: are synthetic images closer to the training set than to real images the
generator never saw?

Method: Platzer & Reutterer, "Holdout-based fidelity and privacy assessment of mixed-type
synthetic data" (Frontiers in Big Data 2021). For every synthetic image, is its nearest real
image a training image or a held-out one? Without memorisation a synthetic image is no closer to
the training images than to unseen images of the same distribution: with equally many training
and held-out images, half of the synthetic images are nearer to a training image. Here the sets
differ in size, so the share s of synthetic images whose nearest training image is closer than
their nearest held-out image (ties count one half) is compared with its no-memorisation value
p0 = n_train / (n_train + n_holdout), and reported on the equal-size scale

    s_eq = s n_h / (s n_h + (1 - s) n_t)      (0.5 without memorisation, for any sizes)

i.e. weighted by the set sizes. The check fails when the one-sided Clopper-Pearson lower bound of
s (level ``holdout_share_alpha``, Bonferroni over the feature and pixel spaces of
:mod:`validator.checks.dcr`), on the s_eq scale, exceeds 0.5 + ``holdout_share_margin``. The
margin absorbs what the binomial interval does not: given the two real sets, the share a
memorisation-free generator reaches is not exactly p0 (some real images attract more of the
space than others), which varies between splits; see the calibration in
validator/thresholds.py and bench/privacy_calibration.py. Held-out images sharing a lesion with the
training set are left out (:mod:`validator.checks.real_baseline`). Beside it: the same share for
the held-out images themselves (nearest training image vs nearest other held-out image), the
real-vs-real value.
"""

from __future__ import annotations

import numpy as np

from validator.checks import CheckInputs, CheckResult, register
from validator.checks.calibration import lower_bound
from validator.checks.dcr import MIN_HOLDOUT, analyse
from validator.checks.pixel_space import pixel_rows
from validator.neighbours import Rows, nearest


def equal_size_share(share: float, n_train: int, n_holdout: int) -> float:
    """The share on the equal-size scale (0.5 without memorisation)."""
    num = share * n_holdout
    den = num + (1.0 - share) * n_train
    return float(num / den) if den > 0 else 0.5


def _closer(to_train: np.ndarray, to_holdout: np.ndarray) -> float:
    return float(np.sum(to_train < to_holdout) + 0.5 * np.sum(to_train == to_holdout))


def _real_share(inputs: CheckInputs, space: str, kept, to_train) -> float | None:
    """Held-out images scored as if synthetic: nearest training vs nearest OTHER held-out."""
    if len(kept) < 3:
        return None
    t = inputs.thresholds
    if space == "feature":
        q = ref = Rows.of(inputs.holdout, kept)
    else:  # made a block at a time (validator.checks.pixel_space)
        px, size = inputs.holdout_pixels, t.dcr_pixel_size
        q = pixel_rows(px, size, rows=kept)
        ref = pixel_rows(
            px, size, t.dcr_zooms, mirrors=True, vertical=t.dcr_vertical_mirror, rows=kept
        )
    to_other = nearest(q, ref, 1, exclude_self=True, memory_mb=inputs.memory_mb)[0][:, 0]
    share = _closer(to_train, to_other) / len(kept)
    return equal_size_share(share, len(inputs.real), len(kept) - 1)


@register("holdout_share", "privacy")
def holdout_share(inputs: CheckInputs) -> CheckResult:
    """Platzer & Reutterer 2021: share of synthetic images nearer to training than held-out."""
    t = inputs.thresholds
    limits = {
        "holdout_share_alpha": t.holdout_share_alpha,
        "holdout_share_margin": t.holdout_share_margin,
    }
    if inputs.holdout is None:
        return CheckResult(
            name="holdout_share",
            kind="privacy",
            passed=not t.require_holdout,
            applicable=False,
            thresholds={**limits, "require_holdout": t.require_holdout},
            note="not applicable: no held-out real set (--holdout)",
        )
    a = analyse(inputs)
    kept = a.sets.holdout_kept
    n_t, n_h, n_s = len(inputs.real), len(kept), len(inputs.synthetic)
    if n_h < MIN_HOLDOUT:
        return CheckResult(
            name="holdout_share",
            kind="privacy",
            passed=not t.require_holdout,
            applicable=False,
            thresholds={**limits, "require_holdout": t.require_holdout},
            numbers={"holdout_in_baseline": n_h},
            note=f"not applicable: {n_h} held-out images of lesions not in the "
            f"training set, needs {MIN_HOLDOUT}",
        )
    spaces = a.spaces()
    level = t.holdout_share_alpha / len(spaces)
    numbers: dict = {
        "train_count": n_t,
        "holdout_count": n_h,
        "synthetic_count": n_s,
        "no_memorisation_share": n_t / (n_t + n_h),
    }
    worst = -1.0
    for name, s in spaces.items():
        closer = _closer(s.distances[:, 0], s.to_holdout)
        share = closer / n_s
        lo = equal_size_share(lower_bound(closer, n_s, level), n_t, n_h)
        worst = max(worst, lo)
        numbers[name] = {
            "share": share,
            "share_equal_size": equal_size_share(share, n_t, n_h),
            "share_equal_size_lower": lo,
            "real_vs_real_equal_size": _real_share(inputs, name, kept, s.holdout_baseline),
        }
    numbers["share_equal_size_lower"] = worst
    limit = 0.5 + t.holdout_share_margin
    return CheckResult(
        name="holdout_share",
        kind="privacy",
        passed=worst <= limit,
        thresholds=limits,
        numbers=numbers,
        note=(
            f"size-adjusted share of synthetic images nearer to a training than to a held-out "
            f"image: lower {1 - level:.1%} bound {worst:.3f} (no memorisation: 0.5; fails "
            f"above {limit:.2f}); feature {numbers['feature']['share_equal_size']:.3f}, pixel "
            f"{numbers['pixel']['share_equal_size']:.3f}"
        ),
    )
