"""2-D views of the feature space: PCA and t-SNE scatters coloured by source, and thumbnail
maps (each image pasted at its coordinates).

Methods: PCA (scikit-learn) on standardized features; t-SNE (van der Maaten & Hinton, JMLR
2008; scikit-learn) after PCA to 50 dimensions, perplexity min(30, (N - 1) / 3) for small sets.
Synthetic images forming their own island, away from the real ones, is the failure these views
were drawn to show. Rendering: matplotlib's Agg backend, PNG files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

COLOURS = {"real": "#1f77b4", "holdout": "#2ca02c", "synthetic": "#d62728"}


def embed(features: np.ndarray, method: str, seed: int = 0) -> np.ndarray:
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    x = StandardScaler().fit_transform(np.asarray(features, np.float64))
    if method == "pca":
        return PCA(2, svd_solver="full").fit_transform(x)
    from sklearn.manifold import TSNE

    n = len(x)
    x = PCA(min(50, n - 1, x.shape[1]), svd_solver="full").fit_transform(x)
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
    order = np.argsort(groups == "synthetic", kind="stable")  # synthetic drawn on top
    for i in order:
        img = Image.fromarray(images[i]).resize((thumb - 4, thumb - 4), Image.Resampling.BOX)
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


def draw_views(
    sets: dict[str, tuple[np.ndarray, np.ndarray]],
    out_dir: Path,
    *,
    label: str,
    tsne: bool = True,
    seed: int = 0,
) -> dict[str, Path]:
    """``sets``: {"real"|"holdout"|"synthetic": (features, uint8 images)}. Writes
    {pca,tsne}_{scatter,thumbnails}.png into ``out_dir``; returns {name: path}."""
    out_dir.mkdir(parents=True, exist_ok=True)
    names = [n for n in COLOURS if n in sets]
    feats = np.concatenate([sets[n][0] for n in names])
    images = np.concatenate([sets[n][1] for n in names])
    groups = np.concatenate([[n] * len(sets[n][0]) for n in names])
    written = {}
    for method in ("pca", "tsne") if tsne and len(feats) >= 5 else ("pca",):
        coords = embed(feats, method, seed)
        title = f"{method.upper()} of {label}"
        for kind, draw in (("scatter", _scatter), ("thumbnails", None)):
            path = out_dir / f"{method}_{kind}.png"
            if draw is None:
                _thumbnails(coords, groups, images, title, path)
            else:
                draw(coords, groups, title, path)
            written[f"{method}_{kind}"] = path
    return written
