"""What the weight-free checks (:mod:`~validator.checks.swd`, :mod:`~validator.checks.colour`,
:mod:`~validator.checks.pixel_c2st`) share: the pixels they compare and the way a statistic of
real vs synthetic becomes a result beside its real-vs-real spread.

Pixels are compared at the synthetic images' own resolution: a 32 px generator's images,
enlarged to ``--pixel-size`` (64) by the pipeline, would look blurred next to real images
reduced to 64 px, and every check would fail on the enlargement, not on the generator. So both
sets are reduced (Lanczos) to the largest power of two that is at most the pixel size and at
most the smallest side of the synthetic files (read from their headers).

Memory: the statistics are computed on a whole set at once (about 16-24 bytes per pixel value,
measured), so each set enters as a seeded random subsample once both would exceed
``--memory-mb`` (:func:`images_within`: at 64 px and 1024 MiB, 1,365 images per set), stated in
the result (``real_compared``, ``synthetic_compared``, ``subsampled``) and its note. The test is
the same; its set size m is then that of the subsample.

The spread (:func:`common.quality.compare_with_spread`), all at the set size m =
min(synthetic, real // 2) that the real-vs-synthetic value uses too (distances between finite
samples depend on their size):
- real vs real: the statistic between two disjoint random m-subsets of the real set, shown
  beside the value (mean, sd, 95th percentile, maximum);
- the permutation null: the same between two disjoint random m-subsets of the real and synthetic
  images pooled. If the synthetic images were a sample of the real distribution, the value would
  be one more draw from it, however the set sizes compare and whichever outlier images the
  sets hold; the real-only spread misses that part when its halves use up the real set.
  z = (value - mean) / sd of the null decides, against the check's ``*_max_z`` limit,
  calibrated on real-vs-real splits of ISIC images (``bench/weight_free_calibration.py``).
"""

from __future__ import annotations

import numpy as np

from common.quality import Spread
from validator.budget import rows_within
from validator.checks import CheckInputs, CheckResult

MIN_SIZE = 16  # the smallest side the SWD pyramid (and the texture statistics) work at
WORK_BYTES_PER_VALUE = 32  # working bytes per uint8 pixel value of the pools (images_within)
MIN_PER_SET = 200  # a budget below this many images per set still compares this many
MAX_HEADERS = 2000  # synthetic files whose size is read to find their resolution


def _native_side(paths: list[str]) -> int | None:
    from PIL import Image

    sides = []
    for path in paths[:MAX_HEADERS]:
        try:
            with Image.open(path) as img:
                sides.append(min(img.size))
        except (OSError, ValueError):
            continue
    return min(sides) if sides else None


def _resize(images: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    return (
        np.stack(
            [
                np.asarray(Image.fromarray(img).resize((size, size), Image.Resampling.LANCZOS))
                for img in images
            ]
        )
        if len(images)
        else images[:, :size, :size]
    )


def images_within(memory_mb: float, side: int) -> int:
    """Images (real and synthetic together) whose pools fit ``memory_mb``: the statistics are
    computed on all of a set's images at once, about :data:`WORK_BYTES_PER_VALUE` bytes per
    pixel value (float64 CIELAB, pyramids, histograms, patches; measured 16 for colour and
    pixel_c2st, 24 for swd at 64 px)."""
    return rows_within(memory_mb, WORK_BYTES_PER_VALUE * side * side * 3)


def _capped(n: int, cap: int, rng: np.random.Generator) -> np.ndarray | None:
    return None if n <= cap else np.sort(rng.choice(n, cap, replace=False))


def comparison_pixels(inputs: CheckInputs) -> tuple[np.ndarray, np.ndarray, int]:
    """(real, synthetic, side): uint8 pixels of both sets at the side they are compared at;
    beyond :func:`images_within` ``--memory-mb`` (half each, at least :data:`MIN_PER_SET`), a
    seeded random subsample of each set (:func:`pixel_sample` states it)."""

    def compute():
        side = inputs.real_pixels.shape[1]
        native = _native_side(inputs.synthetic_paths)
        target = 1 << int(np.floor(np.log2(min(side, native or side))))
        if target < MIN_SIZE:
            raise ValueError(
                f"the weight-free checks need images of at least {MIN_SIZE} px "
                f"(synthetic: {native} px, pixel size {side})"
            )
        cap = max(MIN_PER_SET, images_within(inputs.memory_mb, target) // 2)
        rng = np.random.default_rng(inputs.seed)
        real, syn = inputs.real_pixels, inputs.synthetic_pixels
        rows = _capped(len(real), cap, rng), _capped(len(syn), cap, rng)
        real, syn = (x[0 : len(x)] if r is None else x[r] for x, r in zip((real, syn), rows))
        if target != side:
            real, syn = _resize(real, target), _resize(syn, target)
        return real, syn, target

    return inputs.memo("weight_free_pixels", compute)


def pixel_sample(inputs: CheckInputs) -> dict:
    """How many images of each set the weight-free checks compared, of how many."""
    real, syn, _ = comparison_pixels(inputs)
    n_real, n_syn = len(inputs.real_pixels), len(inputs.synthetic_pixels)
    return {
        "real_compared": len(real),
        "synthetic_compared": len(syn),
        "real_total": n_real,
        "synthetic_total": n_syn,
        "subsampled": (len(real), len(syn)) != (n_real, n_syn),
    }


def spread_result(
    name: str,
    spread: Spread,
    *,
    decisive: list[str],
    limit: float | None,
    limit_name: str,
    extra: dict | None = None,
    what: str = "",
) -> CheckResult:
    """The result of a weight-free check: every statistic's value (real vs synthetic) and, for
    each ``decisive`` one, its z-score; ``versus_real`` holds each statistic's real-vs-real
    mean, sd, 95th percentile and maximum beside the value. Fails when a decisive z exceeds
    ``limit`` (``None``: report only)."""
    table = {stat: spread.summary(stat) for stat in spread.value}
    zs = {stat: table[stat]["z"] for stat in decisive}
    worst = max(zs, key=zs.get)
    over = [s for s in decisive if limit is not None and zs[s] > limit]
    numbers = {
        **spread.value,
        **{f"z_{s}": z for s, z in zs.items()},
        "max_z": zs[worst],
        "set_size": spread.set_size,
        "splits": len(next(iter(spread.reference.values()))),
        **(extra or {}),
        "versus_real": table,
    }
    if limit is None:
        note = f"report only (no {limit_name}); largest z {zs[worst]:.2f} ({worst})"
    elif over:
        note = "; ".join(
            f"{s} {table[s]['value']:.4g} (real vs real {table[s]['real_vs_real_mean']:.3g} "
            f"+- {table[s]['real_vs_real_sd']:.2g}, max {table[s]['real_vs_real_max']:.3g}; "
            f"z {zs[s]:.1f} > {limit:g})"
            for s in over
        )
        note += (
            f": {spread.set_size} synthetic images differ from real ones more than chance "
            f"allows" + (f" ({what})" if what else "")
        )
    else:
        note = (
            f"largest z {zs[worst]:.2f} ({worst}) <= {limit:g}: within what chance gives "
            f"for {spread.set_size} images"
        )
    if extra and extra.get("subsampled"):
        note += (
            f"; on a seeded random subsample of {extra['real_compared']} of {extra['real_total']} "
            f"real and {extra['synthetic_compared']} of {extra['synthetic_total']} synthetic "
            "images (--memory-mb)"
        )
    return CheckResult(
        name=name,
        kind="quality",
        passed=not over,
        thresholds={limit_name: limit},
        numbers=numbers,
        note=note,
    )
