"""The data-copying test of Meehan, Chaudhuri & Dasgupta, "A Non-Parametric Test to Detect
Data-Copying in Generative Models" (AISTATS 2020; reference code github.com/casey-meehan/
data-copying).

The instance space is partitioned into k cells by k-means on the training set T. In each cell
π, the distances to the nearest training image of held-out real images (P_n) and of synthetic
images (Q_m) are compared by a Mann-Whitney U test; its z-score is
Z_U = (U - m n / 2) / sqrt(m n (m + n + 1) / 12), where U counts pairs with the synthetic
distance larger. The statistic is the cell average weighted by the held-out share of each cell,
over the cells holding at least ``max(3, 0.05 m)`` synthetic images (the paper's τ threshold;
sparse cells are left out and counted). Z_U << 0: synthetic images are closer to the training
set than unseen real images are: data-copying; the check fails below ``data_copying_z``
(default -3, the paper's significance level). Cells: k-means on L2-normalised Xception features
of the training set (of a seeded random subset when their copy would exceed half of
``--memory-mb``: :func:`kmeans_rows`, stated as ``kmeans_fit_rows``).
Distances: both spaces of :mod:`validator.checks.dcr` (feature cosine, and the mirror/zoom-
invariant pixel space), each tested; the lower Z_U counts (a feature extractor with random
weights is too weak on its own). Mann-Whitney only uses ranks, so cosine distance gives the same
Z_U as Euclidean distance between unit vectors.

Held-out images that share a lesion (or pixels) with the training set are left out
(:mod:`validator.checks.real_baseline`). Without a held-out set the test cannot run: the result
is "not applicable"; the gate then fails unless the thresholds set ``require_holdout = false``
(see validator/gate.py). Two spaces, min over both: a false-failure rate of about 2 x Phi(-3)
= 0.3 % on a sample of the real distribution (the Mann-Whitney z given the training set).
"""

from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans

from validator.budget import rows_within
from validator.checks import CheckInputs, CheckResult, register
from validator.checks.dcr import analyse
from validator.neighbours import row_norms, unit_rows


def z_u(test_d: np.ndarray, syn_d: np.ndarray) -> float:
    """Mann-Whitney z-score: negative when synthetic distances are smaller than test ones."""
    from scipy.stats import mannwhitneyu

    n, m = len(test_d), len(syn_d)
    u = mannwhitneyu(syn_d, test_d, alternative="two-sided").statistic
    return float((u - m * n / 2) / np.sqrt(m * n * (m + n + 1) / 12))


def _cell_average(cell_t, cell_s, d_t, d_s, k, min_syn) -> tuple[float | None, list, int]:
    cells, zs, weights, skipped = [], [], [], 0
    for c in range(k):
        a, b = d_t[cell_t == c], d_s[cell_s == c]
        if len(b) < min_syn or len(a) < 1:
            skipped += 1
            continue
        z = z_u(a, b)
        zs.append(z)
        weights.append(len(a))
        cells.append({"cell": c, "holdout": int(len(a)), "synthetic": int(len(b)), "z_u": z})
    return (float(np.average(zs, weights=weights)) if zs else None), cells, skipped


def kmeans_rows(n: int, dim: int, memory_mb: float, seed: int) -> np.ndarray:
    """Training rows k-means is fitted on: all of them when their unit-norm float32 copy fits
    half of ``memory_mb``, else a seeded random subset of that many (stated in the result; the
    cells stay a partition made from the training set alone, as the test requires)."""
    limit = rows_within(memory_mb / 2, 4 * dim)
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, limit, replace=False))


def _cells(km, x: np.ndarray, rows: np.ndarray | None, memory_mb: float) -> np.ndarray:
    """k-means cell of every row (of ``x[rows]``), normalized a chunk at a time."""
    n = len(x) if rows is None else len(rows)
    step = rows_within(memory_mb / 2, 4 * (2 * x.shape[1] + km.n_clusters))
    out = [
        km.predict(unit_rows(x[i : i + step] if rows is None else x[rows[i : i + step]]))
        for i in range(0, n, step)
    ]
    return np.concatenate(out) if out else np.zeros(0, np.int32)


@register("data_copying", "privacy")
def data_copying(inputs: CheckInputs) -> CheckResult:
    """Meehan et al. 2020 Z_U: synthetic vs held-out distances to the training set, per cell."""
    t = inputs.thresholds
    limits = {"data_copying_z": t.data_copying_z}
    if inputs.holdout is None:
        return CheckResult(
            name="data_copying",
            kind="privacy",
            passed=not t.require_holdout,
            applicable=False,
            thresholds={**limits, "require_holdout": t.require_holdout},
            note="not applicable: no held-out real set (--holdout)",
        )
    a = analyse(inputs)
    kept = a.sets.holdout_kept
    if len(kept) < 2:
        return CheckResult(
            name="data_copying",
            kind="privacy",
            passed=False,
            thresholds=limits,
            note="fewer than 2 held-out images of lesions not in the training set: cannot test",
        )
    k = t.data_copying_cells or max(1, min(20, len(kept) // 20))
    k = min(k, len(inputs.real))
    fit_rows = kmeans_rows(len(inputs.real), inputs.real.shape[1], inputs.memory_mb, inputs.seed)
    km = KMeans(n_clusters=k, n_init=3, random_state=inputs.seed, copy_x=False)
    train = np.asarray(inputs.real[fit_rows], np.float32)  # our own copy (a gather / a read)
    train /= np.maximum(row_norms(train), 1e-12)[:, None]  # unit rows, in place: one copy
    km.fit(train)  # k-means may centre it in place: it is ours
    del train
    cell_t = _cells(km, inputs.holdout, kept, inputs.memory_mb)
    cell_s = _cells(km, inputs.synthetic, None, inputs.memory_mb)
    min_syn = max(3, int(0.05 * len(cell_s)))
    numbers: dict = {
        "cells": k,
        "min_synthetic_per_cell": min_syn,
        "holdout_count": len(kept),
        "kmeans_fit_rows": len(fit_rows),
        "kmeans_fit_subsampled": len(fit_rows) < len(inputs.real),
    }
    stats = []
    for name, space in (("feature", a.feature), ("pixel", a.pixel)):
        stat, cells, skipped = _cell_average(
            cell_t, cell_s, space.holdout_baseline, space.distances[:, 0], k, min_syn
        )
        numbers[name] = {
            "z_u": stat,
            "z_u_global": z_u(space.holdout_baseline, space.distances[:, 0]),
            "cells_used": len(cells),
            "cells_skipped": skipped,
            "per_cell": cells,
        }
        if stat is not None:
            stats.append(stat)
    if not stats:
        return CheckResult(
            name="data_copying",
            kind="privacy",
            passed=False,
            thresholds=limits,
            numbers=numbers,
            note=f"no cell holds {min_syn}+ synthetic images: cannot test",
        )
    numbers["z_u"] = min(stats)
    return CheckResult(
        name="data_copying",
        kind="privacy",
        passed=min(stats) >= t.data_copying_z,
        thresholds=limits,
        numbers=numbers,
        note=f"cell-averaged Z_U = {min(stats):.2f} (< {t.data_copying_z} means data-copying)",
    )
