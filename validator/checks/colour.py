"""Colour of the synthetic set in CIELAB: pixel colour distributions and the background colour.

Method: sRGB (IEC 61966-2-1) -> CIELAB (CIE 1976, D65 white), in which Euclidean distances
approximate perceived colour differences (Delta E*ab, CIE76; about 2.3 is just noticeable:
Sharma, "Digital Color Imaging Handbook", 2003). Per set, the pixels' L, a and b histograms
(1-unit bins) are pooled over its images; the 1-D Wasserstein distance per channel (``w1_L``,
``w1_a``, ``w1_b``: the L1 distance between the cumulative histograms, in Lab units; their
sum ``lab_w1`` is reported) measures how far the colour distributions lie apart, as colour
histogram distances do in image retrieval (Rubner, Tomasi & Guibas, "The Earth Mover's
Distance as a Metric for Image Retrieval", IJCV 2000). The background colour of an image is
the per-channel median of its border ring (1/16 of the side); ``background_delta_e`` is the
Delta E*ab between the two sets' median background colours: the skin around the lesion, where
the demo's colour drift showed. The three channel distances and the background difference
decide, beside their real-vs-real spread (:mod:`validator.checks.weight_free`); the Lab means
and standard deviations of both sets and their median background colours in sRGB are reported.
"""

from __future__ import annotations

import numpy as np

from common.quality import ColourPool, colour_distance, compare_with_spread, lab_moments
from validator.checks import CheckInputs, CheckResult, register
from validator.checks.weight_free import comparison_pixels, pixel_sample, spread_result


def _rgb(colours: np.ndarray) -> str:
    r, g, b = np.median(colours, axis=0).round().astype(int)
    return f"({r}, {g}, {b})"


@register("colour", "quality", weight_free=True)
def colour(inputs: CheckInputs) -> CheckResult:
    """CIELAB colour histograms and background (border) colour, real vs synthetic."""
    real, synthetic, side = comparison_pixels(inputs)
    pool = ColourPool(np.concatenate([real, synthetic]))
    spread = compare_with_spread(
        colour_distance, pool, len(real), repeats=inputs.thresholds.colour_splits, seed=inputs.seed
    )
    extra = {
        "background_rgb_real": _rgb(pool.background_rgb[: len(real)]),
        "background_rgb_synthetic": _rgb(pool.background_rgb[len(real) :]),
        **{f"real_{k}": v for k, v in lab_moments(real).items()},
        **{f"synthetic_{k}": v for k, v in lab_moments(synthetic).items()},
        "side_px": side,
        **pixel_sample(inputs),
    }
    return spread_result(
        "colour",
        spread,
        decisive=["w1_L", "w1_a", "w1_b", "background_delta_e"],
        limit=inputs.thresholds.colour_max_z,
        limit_name="colour_max_z",
        extra=extra,
        what="colour distribution or background colour",
    )
