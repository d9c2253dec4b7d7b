"""2-D views of the feature space: PCA and t-SNE scatters coloured by source, and thumbnail
maps (each image pasted at its coordinates).

Methods: PCA on standardized features, on every image (the covariance accumulated a chunk at a
time within ``memory_mb``, its top eigenvectors, the projection a chunk at a time: no copy of the
features); t-SNE (van der Maaten & Hinton, JMLR 2008; scikit-learn) after PCA to 50 dimensions,
perplexity min(30, (N - 1) / 3) for small sets, on at most :data:`TSNE_MAX_PER_SOURCE` images
per source (a seeded random subsample beyond it: t-SNE's time grows faster than N); thumbnail
maps paste at most :data:`THUMBNAILS_MAX_PER_SOURCE` per source (the canvas holds about 1000).
Every subsample is stated in the plot's title and in report.json (``view_samples``: points
shown per source, of how many, the seed; :class:`Drawn`).
Synthetic images forming their own island, away from the real ones, is the failure these views
were drawn to show. Rendering: matplotlib's Agg backend, PNG files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from validator.budget import DEFAULT_MEMORY_MB, fit_pca

COLOURS = {"real": "#1f77b4", "holdout": "#2ca02c", "synthetic": "#d62728"}
TSNE_MAX_PER_SOURCE = 5000
THUMBNAILS_MAX_PER_SOURCE = 1000


def pca_2d(parts: list[np.ndarray], memory_mb: float = DEFAULT_MEMORY_MB) -> list[np.ndarray]:
    """2-D PCA coordinates of the standardized rows of all ``parts`` together (one [n_i, 2]
    array per part), in chunks of float64 rows within ``memory_mb``
    (:func:`validator.budget.fit_pca`): the same projection as scikit-learn's StandardScaler +
    PCA(2) up to the sign of each axis."""
    fit = fit_pca([(p, None) for p in parts], 2, memory_mb)
    return [fit.transform([(p, None)], memory_mb).reshape(len(p), 2) for p in parts]


def subsample(counts: dict[str, int], limit: int, seed: int) -> dict[str, np.ndarray]:
    """Seeded random row indices per source, at most ``limit`` each, in their original order."""
    rng = np.random.default_rng(seed)
    return {
        name: np.sort(rng.choice(n, limit, replace=False)) if n > limit else np.arange(n)
        for name, n in counts.items()
    }


def subsample_note(counts: dict[str, int], picked: dict[str, np.ndarray]) -> str:
    """'' when nothing was left out, else e.g. 'seeded subsample: 5000 of 100000 synthetic'."""
    parts = [f"{len(picked[n])} of {counts[n]} {n}" for n in counts if len(picked[n]) < counts[n]]
    return "seeded random subsample: " + ", ".join(parts) if parts else ""


def tsne_2d(parts: list, seed: int = 0, memory_mb: float = DEFAULT_MEMORY_MB) -> np.ndarray:
    """t-SNE coordinates of the rows ``parts`` name ((array, row indices) pairs, together),
    after standardization and PCA to 50 dimensions fitted in chunks within ``memory_mb``
    (no copy of the rows)."""
    from sklearn.manifold import TSNE

    n = sum(len(rows) for _, rows in parts)
    fit = fit_pca(parts, min(50, n - 1, parts[0][0].shape[1]), memory_mb)
    x = fit.transform(parts, memory_mb)
    perplexity = float(max(2.0, min(30.0, (n - 1) / 3)))
    method = "exact" if n <= 500 else "barnes_hut"  # exact is faster for small sets
    return TSNE(
        2, perplexity=perplexity, init="pca", method=method, max_iter=750, random_state=seed
    ).fit_transform(x)


def _scatter(coords, groups, title, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 6), dpi=100)
    for name in COLOURS:
        sel = groups == name
        if sel.any():
            ax.scatter(
                coords[sel, 0],
                coords[sel, 1],
                s=14,
                alpha=0.7,
                c=COLOURS[name],
                label=f"{name} ({int(sel.sum())})",
                edgecolors="none",
            )
    ax.legend(loc="best", fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _thumbnails(
    coords, groups, images, title, path: Path, canvas: int = 1200, thumb: int = 36
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch
    from PIL import Image, ImageOps

    board = Image.new("RGB", (canvas, canvas), "white")
    lo, hi = coords.min(0), coords.max(0)
    span = np.where(hi - lo > 0, hi - lo, 1.0)
    pos = (coords - lo) / span * (canvas - thumb - 8) + 4
    flat = [(part, j) for part in images for j in range(len(part))]  # no copy of the pixels
    order = np.argsort(groups == "synthetic", kind="stable")  # synthetic drawn on top
    for i in order:
        part, j = flat[i]
        img = Image.fromarray(part[j]).resize((thumb - 4, thumb - 4), Image.Resampling.BOX)
        img = ImageOps.expand(img, border=2, fill=COLOURS[groups[i]])
        board.paste(img, (int(pos[i, 0]), int(canvas - thumb - pos[i, 1])))
    fig, ax = plt.subplots(figsize=(10, 10.4), dpi=120)
    ax.imshow(board)
    ax.set_axis_off()
    ax.set_title(title, fontsize=10)
    ax.legend(
        handles=[Patch(color=c, label=n) for n, c in COLOURS.items() if (groups == n).any()],
        loc="upper right",
        fontsize=8,
    )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _titled(title: str, note: str) -> str:
    return f"{title}\n{note}" if note else title


def _sample(counts: dict[str, int], shown: dict[str, np.ndarray], seed: int | None) -> dict:
    """What a view shows, for report.json: points per source, of how many, the seed."""
    note = subsample_note(counts, shown)
    return {
        "shown": {n: int(len(shown[n])) for n in counts},
        "of": dict(counts),
        "subsampled": bool(note),
        "seed": seed if note else None,
        "note": note,
    }


@dataclass(frozen=True)
class Drawn:
    """The views written: {name: PNG path}, and per name what it shows (:func:`_sample`:
    points per source, of how many, seeded subsample or not; for report.json)."""

    files: dict[str, Path]
    samples: dict[str, dict]


def draw_views(
    sets: dict[str, tuple[np.ndarray, np.ndarray]],
    out_dir: Path,
    *,
    label: str,
    tsne: bool = True,
    seed: int = 0,
    memory_mb: float = DEFAULT_MEMORY_MB,
    tsne_max_per_source: int = TSNE_MAX_PER_SOURCE,
    thumbnails_max_per_source: int = THUMBNAILS_MAX_PER_SOURCE,
) -> Drawn:
    """``sets``: {"real"|"holdout"|"synthetic": (features, uint8 images)}. Writes
    {pca,tsne}_{scatter,thumbnails}.png into ``out_dir``. PCA on every image; t-SNE (seed
    ``seed``) and the thumbnails (seed ``seed + 1``) on seeded subsamples, stated in the titles
    and in the returned :attr:`Drawn.samples`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    names = [n for n in COLOURS if n in sets]
    counts = {n: len(sets[n][0]) for n in names}
    pca = dict(zip(names, pca_2d([sets[n][0] for n in names], memory_mb)))
    embeddings = {"pca": (pca, {n: np.arange(c) for n, c in counts.items()})}
    if tsne and sum(counts.values()) >= 5:
        picked = subsample(counts, tsne_max_per_source, seed)
        coords = tsne_2d([(sets[n][0], picked[n]) for n in names], seed, memory_mb)
        bounds = np.cumsum([0] + [len(picked[n]) for n in names])
        embeddings["tsne"] = (
            {n: coords[bounds[i] : bounds[i + 1]] for i, n in enumerate(names)},
            picked,
        )
    written, samples = {}, {}
    for method, (coords, shown) in embeddings.items():
        title = f"{'PCA' if method == 'pca' else 't-SNE'} of {label}"
        groups = np.concatenate([[n] * len(shown[n]) for n in names])
        path = out_dir / f"{method}_scatter.png"
        _scatter(
            np.concatenate([coords[n] for n in names]),
            groups,
            _titled(title, subsample_note(counts, shown)),
            path,
        )
        written[f"{method}_scatter"] = path
        samples[f"{method}_scatter"] = _sample(counts, shown, seed)
        thumbs = subsample({n: len(shown[n]) for n in names}, thumbnails_max_per_source, seed + 1)
        path = out_dir / f"{method}_thumbnails.png"
        pasted = {n: shown[n][thumbs[n]] for n in names}
        _thumbnails(
            np.concatenate([coords[n][thumbs[n]] for n in names]),
            np.concatenate([[n] * len(thumbs[n]) for n in names]),
            [sets[n][1][pasted[n]] for n in names],
            _titled(title, subsample_note(counts, pasted)),
            path,
        )
        written[f"{method}_thumbnails"] = path
        samples[f"{method}_thumbnails"] = {
            **_sample(counts, pasted, seed + 1),
            "layout_from": f"{method}_scatter",
        }
    return Drawn(written, samples)
