"""Nearest-neighbour distance ratio (NNDR) of the synthetic images flagged by DCR.

Method: the ratio of the distance to the closest over the distance to the second-closest
training record (Lowe's ratio test, SIFT 2004; used for synthetic-data privacy as "NNDR" e.g.
in synthcity and Zhao et al., "CTAB-GAN", 2021). A ratio near 0 means the synthetic image sits
on one particular training image rather than in a dense region of many: a likely copy. Computed
in every space in which :mod:`validator.checks.dcr` flagged the image (the smallest counts);
fails if any flagged image has a ratio at most ``nndr_max_ratio``, so a single near-copy fails
the gate even when the flagged fraction is small.
"""

from __future__ import annotations

import numpy as np

from validator.checks import CheckInputs, CheckResult, register
from validator.checks.dcr import analyse, flagged_items


@register("nndr", "privacy")
def nndr(inputs: CheckInputs) -> CheckResult:
    """1st/2nd nearest-real distance ratio of DCR-flagged synthetic images (likely copies)."""
    limit = inputs.thresholds.nndr_max_ratio
    a = analyse(inputs)
    spaces = {"feature": a.feature, "pixel": a.pixel}
    if a.feature.distances.shape[1] < 2:
        return CheckResult(
            name="nndr",
            kind="privacy",
            passed=True,
            applicable=False,
            thresholds={"nndr_max_ratio": limit},
            note="needs at least two real images",
        )
    copies, ratios = [], []
    for item in flagged_items(inputs, a):
        i = item["index"]
        ratio = min(
            float(spaces[s].distances[i, 0] / max(spaces[s].distances[i, 1], 1e-12))
            for s in item["spaces"]
        )
        ratios.append(ratio)
        if ratio <= limit:
            copies.append({**item, "nndr": ratio})
    return CheckResult(
        name="nndr",
        kind="privacy",
        passed=not copies,
        thresholds={"nndr_max_ratio": limit},
        numbers={
            "flagged_by_dcr": len(ratios),
            "likely_copies": len(copies),
            "ratio_min": float(np.min(ratios)) if ratios else None,
            "ratio_median": float(np.median(ratios)) if ratios else None,
        },
        flagged=copies[:200],
        note=f"{len(copies)} of {len(ratios)} DCR-flagged images have NNDR <= {limit}",
    )
