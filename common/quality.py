"""Weight-free image-quality math in pure numpy: no pretrained network, no TensorFlow, no sklearn.

Shared by the validator's weight-free checks (``validator/checks/swd.py``, ``colour.py``,
``pixel_c2st.py``) and usable by the trainer to track quality during training. Images are uint8
``[N, H, W, 3]`` sRGB arrays of one size (a power of two for the pyramid).

- :func:`srgb_to_lab`: sRGB (IEC 61966-2-1, D65) -> CIELAB (CIE 1976), as in colour science
  references (e.g. Bruce Lindbloom's formulas; ``skimage.color.rgb2lab`` with D65/2°).
- :func:`laplacian_pyramid` and :class:`SwdPool`: the sliced Wasserstein distance of Karras et
  al., "Progressive Growing of GANs" (ICLR 2018), matching their reference
  ``metrics/sliced_wasserstein.py`` (tkarras/progressive_growing_of_gans): cv2-style
  pyrDown/pyrUp with the 5x5 binomial filter and mirrored borders, one level per resolution
  down to 16 px, 7x7 neighbourhoods (128 per image) at random positions, each set's descriptors
  normalised per colour channel by that set's own mean and std, random unit directions (128;
  the reference draws 4 x 128), the mean over directions of the 1-D Wasserstein distance,
  reported x 1e3 ("SWDx1e3").
- :class:`ColourPool`: CIELAB histograms per image (any subset's histogram is a sum), the 1-D
  Wasserstein distance per channel, and the background colour (median of the border ring).
- :func:`compare_with_spread`: a statistic of real vs synthetic, beside its real-vs-real spread
  (the same statistic between disjoint random halves of the real set, at the same set size)
  and its permutation null.
Per-image statistics for a classifier two-sample test live in :mod:`common.image_stats`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# --- colour -------------------------------------------------------------------------------------
_D65 = np.array([0.95047, 1.0, 1.08883])
_RGB_TO_XYZ = np.array(
    [
        [0.4124564, 0.3575761, 0.1804375],
        [0.2126729, 0.7151522, 0.0721750],
        [0.0193339, 0.1191920, 0.9503041],
    ]
)
_c = np.arange(256) / 255.0
_LINEAR = np.where(_c <= 0.04045, _c / 12.92, ((_c + 0.055) / 1.055) ** 2.4)  # sRGB decoding LUT
_LINEAR32 = _LINEAR.astype(np.float32)
_TO_XYZ_WHITE = (_RGB_TO_XYZ.T / _D65[None, :]).astype(np.float32)  # linear RGB -> XYZ / white


def srgb_to_lab(images: np.ndarray) -> np.ndarray:
    """uint8 sRGB ``[..., 3]`` -> float32 CIELAB ``[..., 3]`` (L in 0..100, D65 white)."""
    xyz = _LINEAR32[np.asarray(images, np.uint8)] @ _TO_XYZ_WHITE  # float32 [..., 3]
    d = 6 / 29
    f = np.cbrt(xyz)
    small = xyz <= d**3
    f[small] = xyz[small] / (3 * d * d) + 4 / 29
    lab = np.empty_like(f)
    lab[..., 0] = 116 * f[..., 1] - 16
    lab[..., 1] = 500 * (f[..., 0] - f[..., 1])
    lab[..., 2] = 200 * (f[..., 1] - f[..., 2])
    return lab


def border_pixels(images: np.ndarray, width: int | None = None) -> np.ndarray:
    """``[N, P, 3]``: the ring of ``width`` px (default side // 16, at least 1) along the edges."""
    n, h, w, _ = images.shape
    width = width or max(1, min(h, w) // 16)
    mask = np.zeros((h, w), bool)
    mask[:width], mask[-width:], mask[:, :width], mask[:, -width:] = True, True, True, True
    return images[:, mask]


def background_colours(images: np.ndarray) -> np.ndarray:
    """Per image, the per-channel median of its border ring, uint8 RGB ``[N, 3]``."""
    return np.median(border_pixels(images), axis=1).round().astype(np.uint8)


# Histogram bins in Lab units: L in [0, 100], a and b in [-128, 128]; 1 unit wide.
LAB_RANGES = ((0.0, 100.0), (-128.0, 128.0), (-128.0, 128.0))
LAB_NAMES = ("L", "a", "b")


class ColourPool:
    """Per-image CIELAB histograms and background colours of one image set."""

    def __init__(self, images: np.ndarray):
        lab = srgb_to_lab(images).reshape(len(images), -1, 3)
        self.hists = [
            row_histograms(lab[..., c], lo, hi, int(hi - lo))
            for c, (lo, hi) in enumerate(LAB_RANGES)
        ]
        self.background_rgb = background_colours(images)
        self.background_lab = srgb_to_lab(self.background_rgb).astype(np.float64)

    def __len__(self) -> int:
        return len(self.background_rgb)

    def w1(self, idx, other: ColourPool, other_idx) -> dict[str, float]:
        """1-D Wasserstein distance (Lab units) per channel between the pooled pixels of the two
        subsets: the L1 distance of their CDFs on the 1-unit bins."""
        out = {}
        for c, name in enumerate(LAB_NAMES):
            p = self.hists[c][idx].sum(0)
            q = other.hists[c][other_idx].sum(0)
            out[f"w1_{name}"] = float(np.abs(np.cumsum(p / p.sum() - q / q.sum())).sum())
        return out

    def background(self, idx) -> np.ndarray:
        """Median (per Lab channel) of the subset's per-image background colours."""
        return np.median(self.background_lab[idx], axis=0)


def row_histograms(values: np.ndarray, lo: float, hi: float, bins: int) -> np.ndarray:
    """Per row of ``values`` [n, p], the fraction of its values in each of ``bins`` equal bins
    over [lo, hi] (values outside go to the end bins)."""
    n, p = values.shape
    idx = np.clip(np.floor((values - lo) * (bins / (hi - lo))).astype(np.int64), 0, bins - 1)
    counts = np.bincount((idx + bins * np.arange(n)[:, None]).ravel(), minlength=n * bins)
    return counts.reshape(n, bins) / p


def colour_distance(a: ColourPool, a_idx, b: ColourPool, b_idx, rng=None) -> dict[str, float]:
    """CIELAB distances between two subsets: W1 per channel, their sum, and the CIE76 colour
    difference (Delta E*ab) between the median background colours."""
    out = a.w1(a_idx, b, b_idx)
    out["lab_w1"] = out["w1_L"] + out["w1_a"] + out["w1_b"]
    out["background_delta_e"] = float(np.linalg.norm(a.background(a_idx) - b.background(b_idx)))
    return out


def lab_moments(images: np.ndarray) -> dict[str, float]:
    """Mean and standard deviation of each CIELAB channel over all pixels of a set."""
    lab = srgb_to_lab(images).reshape(-1, 3)
    return {
        **{f"mean_{n}": float(lab[:, i].mean()) for i, n in enumerate(LAB_NAMES)},
        **{f"std_{n}": float(lab[:, i].std()) for i, n in enumerate(LAB_NAMES)},
    }


# --- Laplacian pyramid and sliced Wasserstein distance ------------------------------------------
_BINOMIAL = np.array([1, 4, 6, 4, 1], np.float32) / 16  # outer(k, k) = the reference's 5x5 / 256


def _convolve(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Separable 2-D convolution of ``[N, H, W, C]`` with mirrored borders (scipy 'mirror' =
    numpy 'reflect', as cv2.pyrDown's BORDER_REFLECT_101)."""
    x = np.pad(x, ((0, 0), (2, 2), (0, 0), (0, 0)), mode="reflect")
    x = sum(kernel[i] * x[:, i : i + x.shape[1] - 4] for i in range(5))
    x = np.pad(x, ((0, 0), (0, 0), (2, 2), (0, 0)), mode="reflect")
    return sum(kernel[i] * x[:, :, i : i + x.shape[2] - 4] for i in range(5))


def pyr_down(x: np.ndarray) -> np.ndarray:
    return _convolve(x, _BINOMIAL)[:, ::2, ::2]


def pyr_up(x: np.ndarray) -> np.ndarray:
    n, h, w, c = x.shape
    up = np.zeros((n, 2 * h, 2 * w, c), x.dtype)
    up[:, ::2, ::2] = x
    return _convolve(up, _BINOMIAL * 2)  # the reference's kernel x 4, split over two axes


def laplacian_pyramid(images: np.ndarray, levels: int) -> list[np.ndarray]:
    """float32 levels, finest first: band-pass differences, then the low-pass residual."""
    pyramid = [np.asarray(images, np.float32)]
    for _ in range(1, levels):
        pyramid.append(pyr_down(pyramid[-1]))
        pyramid[-2] = pyramid[-2] - pyr_up(pyramid[-1])
    return pyramid


def swd_resolutions(size: int) -> list[int]:
    """The reference's levels: size, size/2, ... while >= 16."""
    out = []
    while size >= 16:
        out.append(size)
        size //= 2
    return out


NHOOD = 7
NHOODS_PER_IMAGE = 128
MAX_DESCRIPTORS = 4096  # per subset and level
DIRECTIONS = 128  # the reference: 4 repeats x 128; as precise here (validator/checks/swd.py)


class SwdPool:
    """7x7x3 neighbourhood descriptors of every pyramid level of one image set (the reference's
    ``get_descriptors_for_minibatch``), kept raw so that any subset can be normalised by its own
    per-channel mean and std (the reference's ``finalize_descriptors``) before projection.

    ``max_descriptors`` bounds the descriptors of one subset (the reference takes 128 per image
    from 8192+ images): a subset of m images uses the first min(128, max_descriptors // m)
    neighbourhoods of each image (their positions are random anyway); :func:`nhoods_for` says
    how many to keep when every subset will hold m images.
    """

    def __init__(
        self,
        images: np.ndarray,
        *,
        seed: int,
        nhoods_per_image: int = NHOODS_PER_IMAGE,
        directions: int = DIRECTIONS,
        max_descriptors: int = MAX_DESCRIPTORS,
    ):
        n, size = len(images), images.shape[1]
        if images.shape[1] != images.shape[2] or size < 16:
            raise ValueError(f"SWD needs square images of at least 16 px, got {images.shape[1:3]}")
        self.resolutions = swd_resolutions(size)
        self.max_descriptors = max_descriptors
        dirs = np.random.default_rng(seed).standard_normal((NHOOD * NHOOD * 3, directions))
        self.dirs = (dirs / np.linalg.norm(dirs, axis=0, keepdims=True)).astype(np.float32)
        rng = np.random.default_rng(seed + 1)
        half, off = NHOOD // 2, np.arange(-(NHOOD // 2), NHOOD // 2 + 1)
        self.patches = []  # per level: float32 [n, k, 49 * 3]
        self.sums = []  # per level: cumulative over neighbourhoods of per-channel sums, [n, k, 3]
        self.sumsq = []  # the same of squares
        for level in laplacian_pyramid(images, len(self.resolutions)):
            s = level.shape[1]
            yy = (
                rng.integers(half, s - half, (n, nhoods_per_image))[:, :, None, None]
                + off[None, None, :, None]
            )
            xx = (
                rng.integers(half, s - half, (n, nhoods_per_image))[:, :, None, None]
                + off[None, None, None, :]
            )
            patches = level[np.arange(n)[:, None, None, None], yy, xx]  # [n, k, 7, 7, 3]
            patches = patches.reshape(n, nhoods_per_image, NHOOD * NHOOD, 3)
            wide = patches.astype(np.float64)
            self.sums.append(np.cumsum(wide.sum(2), axis=1))
            self.sumsq.append(np.cumsum((wide**2).sum(2), axis=1))
            self.patches.append(patches.reshape(n, nhoods_per_image, -1))

    def __len__(self) -> int:
        return len(self.patches[0])

    def _sorted(self, level: int, idx) -> np.ndarray:
        """Sorted projections of the subset's descriptors, normalised per channel by the
        subset's own mean and std (folded into the directions: one matrix product)."""
        idx = np.asarray(idx)
        k = max(1, min(self.patches[level].shape[1], self.max_descriptors // len(idx)))
        count = len(idx) * k * NHOOD * NHOOD
        mu = self.sums[level][idx, k - 1].sum(0) / count
        sd = np.sqrt(np.maximum(self.sumsq[level][idx, k - 1].sum(0) / count - mu**2, 1e-12))
        scale = np.tile(1 / sd, NHOOD * NHOOD)[:, None]  # descriptor layout: (position, channel)
        dirs = (self.dirs * scale).astype(np.float32)
        offset = (np.tile(mu, NHOOD * NHOOD)[:, None] * dirs).sum(0)
        proj = dirs.T @ self.patches[level][idx, :k].reshape(-1, dirs.shape[0]).T
        return np.sort(proj - offset[:, None], axis=1)  # [directions, descriptors], contiguous


def nhoods_for(set_size: int, max_descriptors: int = MAX_DESCRIPTORS) -> int:
    """Neighbourhoods per image a subset of ``set_size`` images uses."""
    return max(1, min(NHOODS_PER_IMAGE, max_descriptors // max(set_size, 1)))


def swd(a: SwdPool, a_idx, b: SwdPool, b_idx, rng=None) -> dict[str, float]:
    """SWD x 1e3 per pyramid level (``swd_<resolution>``) and their mean (``swd_avg``) between
    two subsets of equal size of pools built with the same seed (same directions)."""
    if len(a_idx) != len(b_idx):
        raise ValueError("the SWD compares subsets of equal size")
    out = {}
    for level, res in enumerate(a.resolutions):
        out[f"swd_{res}"] = 1e3 * float(
            np.abs(a._sorted(level, a_idx) - b._sorted(level, b_idx)).mean()
        )
    out["swd_avg"] = float(np.mean(list(out.values())))
    return out


# --- real-vs-synthetic beside real-vs-real ------------------------------------------------------
Statistic = Callable[
    [object, np.ndarray, object, np.ndarray, np.random.Generator], dict[str, float]
]


@dataclass(frozen=True)
class Spread:
    """A statistic of real vs synthetic beside two reference distributions, all at one set size.

    ``value``: the mean over a few draws of the statistic between m random real and m random
    synthetic images. ``reference``: the statistic between two disjoint random m-image subsets
    of the real set (what two real samples give: shown to the reader). ``null``: the same
    between two disjoint random m-image subsets of the real and synthetic images pooled, the
    permutation null of a two-sample test: if the synthetic images came from the real
    distribution, ``value`` would be one more draw from it, whatever the set sizes and outlier
    images (the real-only spread misses the variation that comes from which images a set
    holds when its halves use up the real set). z = (value - mean) / sd of the null.
    """

    value: dict[str, float]
    reference: dict[str, np.ndarray]
    null: dict[str, np.ndarray]
    set_size: int

    def summary(self, name: str) -> dict[str, float]:
        ref, null = self.reference[name], self.null[name]
        sd = _sd(null)
        return {
            "value": self.value[name],
            "real_vs_real_mean": float(ref.mean()),
            "real_vs_real_sd": _sd(ref),
            "real_vs_real_p95": float(np.quantile(ref, 0.95)),
            "real_vs_real_max": float(ref.max()),
            "null_mean": float(null.mean()),
            "null_sd": sd,
            "z": (self.value[name] - float(null.mean())) / sd,
        }


def _sd(values: np.ndarray) -> float:
    sd = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return max(sd, 1e-3 * abs(float(values.mean())), 1e-12)


def compare_with_spread(
    statistic: Statistic,
    pool,
    n_real: int,
    *,
    repeats: int = 12,
    syn_repeats: int = 3,
    min_size: int = 4,
    seed: int = 0,
) -> Spread:
    """``pool`` holds the real images first (``n_real``), then the synthetic ones;
    ``statistic(pool, idx_a, pool, idx_b, rng) -> {name: value}`` compares two subsets. All
    comparisons use the set size m = min(n_synthetic, n_real // 2): distances between samples
    depend on their size, so only equal sizes compare."""
    n_syn = len(pool) - n_real
    m = min(n_syn, n_real // 2)
    if m < min_size:
        raise ValueError(
            f"needs at least {2 * min_size} real and {min_size} synthetic images "
            f"(got {n_real} and {n_syn}): the real set is split in two halves"
        )
    rng = np.random.default_rng(seed)
    reference, null, values = [], [], []
    for _ in range(repeats):
        perm = rng.permutation(n_real)
        reference.append(statistic(pool, perm[:m], pool, perm[m : 2 * m], rng))
        perm = rng.permutation(len(pool))
        null.append(statistic(pool, perm[:m], pool, perm[m : 2 * m], rng))
    for _ in range(syn_repeats):
        values.append(
            statistic(
                pool,
                rng.choice(n_real, m, replace=False),
                pool,
                n_real + rng.choice(n_syn, m, replace=False),
                rng,
            )
        )
    names = list(reference[0])
    return Spread(
        {k: float(np.mean([v[k] for v in values])) for k in names},
        {k: np.array([r[k] for r in reference]) for k in names},
        {k: np.array([r[k] for r in null]) for k in names},
        m,
    )
