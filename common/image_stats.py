"""Per-image colour and texture statistics and a linear classifier's cross-validated AUC, in
pure numpy: the parts of a classifier two-sample test (Lopez-Paz & Oquab, ICLR 2017) that need
no pretrained network. Used by ``validator/checks/pixel_c2st.py``; see :mod:`common.quality`
for the colour space and the Laplacian pyramid they build on.
"""

from __future__ import annotations

import numpy as np

from common.quality import (
    LAB_RANGES,
    background_colours,
    laplacian_pyramid,
    row_histograms,
    srgb_to_lab,
    swd_resolutions,
)


def image_statistics(images: np.ndarray, *, grid: int = 2, bins: int = 8) -> np.ndarray:
    """float64 ``[N, D]`` per image, for a two-sample classifier: colour (CIELAB block means on
    a ``grid`` x ``grid`` thumbnail, Lab histograms with ``bins`` per channel, Lab mean and std,
    the background colour) and texture of the lightness L, on log scales: the mean absolute
    value of each Laplacian band (finest first) and the ratios of neighbouring bands (blur
    lowers the fine bands), the gradient magnitude (mean, std, 90th percentile) and the mean
    local 3x3 variance."""
    n, size = len(images), images.shape[1]
    lab = srgb_to_lab(images)
    side = size - size % grid
    thumb = lab[:, :side, :side].reshape(n, grid, side // grid, grid, side // grid, 3)
    hist = [
        row_histograms(lab[..., c].reshape(n, -1), lo, hi, bins)
        for c, (lo, hi) in enumerate(LAB_RANGES)
    ]
    flat = lab.reshape(n, -1, 3)
    background = srgb_to_lab(background_colours(images)).reshape(n, 3)
    lum = lab[..., :1]
    bands = laplacian_pyramid(lum, len(swd_resolutions(size)) + 1)[:-1]
    energy = np.log(np.stack([np.abs(band).mean((1, 2, 3)) for band in bands], 1) + 1e-3)
    gy, gx = np.gradient(lum[..., 0], axis=(1, 2))
    grad = np.hypot(gx, gy).reshape(n, -1)
    local = (_box3(lum**2) - _box3(lum) ** 2).reshape(n, -1)
    texture = np.log(
        np.stack(
            [
                grad.mean(1),
                grad.std(1),
                np.percentile(grad, 90, axis=1),
                np.maximum(local, 0).mean(1),
            ],
            1,
        )
        + 1e-3
    )
    return np.concatenate(
        [
            thumb.mean((2, 4)).reshape(n, -1),
            *hist,
            flat.mean(1),
            flat.std(1),
            background,
            energy,
            energy[:, :-1] - energy[:, 1:],
            texture,
        ],
        axis=1,
    ).astype(np.float64)


def _box3(x: np.ndarray) -> np.ndarray:
    x = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
    h, w = x.shape[1] - 2, x.shape[2] - 2
    return sum(x[:, i : i + h, j : j + w] for i in range(3) for j in range(3)) / 9


def rank_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC of ``scores`` for ``labels`` (0/1): the Mann-Whitney U / (n0 n1), ties halved."""
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ranks = (np.bincount(inverse, weights=ranks) / counts)[inverse]  # average rank of ties
    n1 = int(labels.sum())
    n0 = len(labels) - n1
    return float((ranks[labels == 1].sum() - n1 * (n1 + 1) / 2) / (n0 * n1))


def ridge_cv_auc(
    x: np.ndarray,
    labels: np.ndarray,
    rng: np.random.Generator,
    *,
    folds: int = 5,
    ridge: float = 1.0,
) -> float:
    """Out-of-fold ROC AUC of a ridge-regularised least-squares linear classifier (a shrinkage
    Fisher discriminant): stratified ``folds`` folds; features standardised on each training
    fold; weights solve (X'X + ridge * n I) w = X'y with y = -1/+1 centred."""
    folds = min(folds, int(labels.sum()), int(len(labels) - labels.sum()))
    fold = np.empty(len(labels), int)
    for c in (0, 1):
        members = np.flatnonzero(labels == c)
        fold[rng.permutation(members)] = np.arange(len(members)) % folds
    scores = np.empty(len(labels))
    for f in range(folds):
        test = fold == f
        mu, sd = x[~test].mean(0), x[~test].std(0) + 1e-9
        train = (x[~test] - mu) / sd
        y = np.where(labels[~test] == 1, 1.0, -1.0)
        w = np.linalg.solve(
            train.T @ train + ridge * len(train) * np.eye(x.shape[1]), train.T @ (y - y.mean())
        )
        scores[test] = ((x[test] - mu) / sd) @ w
    return rank_auc(scores, labels)
