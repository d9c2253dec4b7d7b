"""Weight-free image quality tracked during training, and the run's best snapshot.

Every ``--quality-every`` epochs the exported (EMA) generator draws ``2 m`` images from a fixed
latent batch, and :class:`QualityTracker` compares them with the training images using the
pure-numpy metrics of :mod:`common.quality` (no pretrained network):

- ``swd_<res>`` / ``swd_avg``: sliced Wasserstein distance x 1e3 on Laplacian-pyramid patches
  per level (Karras et al. 2018);
- ``lab_w1``: the summed 1-D Wasserstein distances of the CIELAB L, a, b pixel distributions;
- ``background_delta_e``: CIE76 Delta E between the median background (border-ring) colours.

The training images (at most ``2 * count``, a fixed random subset) are split into two halves
A and B of m images; fakes 0..m-1 are compared with A, fakes m..2m-1 with B, and the two
results averaged. The same statistic between two disjoint random halves of those training
images (real vs real, same set size; the mean over A/B and 4 more random splits) is the
reference ``ref_*``: a value near it means "as close as two real samples are".

Best-snapshot criterion (lower is better), stated in ``RUN/quality.json``::

    quality_score = mean(swd_avg / ref_swd_avg, lab_w1 / ref_lab_w1,
                         background_delta_e / max(ref_background_delta_e, 1))

The history lives in ``RUN/quality.json`` (written atomically before the epoch's checkpoint),
so it survives a resume; rows of epochs after the restored checkpoint are dropped. The best
epoch's checkpoint is protected from ``--keep-checkpoints`` pruning (trainer.checkpoints).
"""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import numpy as np

from common import quality as q
from common.config import atomic_write_bytes, atomic_write_text
from common.images import to_uint8

log = logging.getLogger("trainer")

CRITERION = (
    "quality_score = mean(swd_avg / ref_swd_avg, lab_w1 / ref_lab_w1, "
    "background_delta_e / max(ref_background_delta_e, 1)); lower is better"
)
SCORE_KEYS = ("swd_avg", "lab_w1", "background_delta_e")
CSV_KEYS = ("swd_avg", "lab_w1", "background_delta_e", "quality_score")  # in metrics.csv
_SWD_SEED = 0x5D7
_BATCH = 256
REFERENCE_SPLITS = 5


def _compare(real_swd, real_col, real_idx, fake_swd, fake_col, fake_idx) -> dict[str, float]:
    out = q.swd(real_swd, real_idx, fake_swd, fake_idx)
    out.update(q.colour_distance(fake_col, fake_idx, real_col, real_idx))
    return out


def score(row: dict, reference: dict) -> float:
    """The best-snapshot criterion (see the module docstring); lower is better."""
    return float(
        np.mean(
            [
                row["swd_avg"] / max(reference["swd_avg"], 1e-9),
                row["lab_w1"] / max(reference["lab_w1"], 1e-9),
                row["background_delta_e"] / max(reference["background_delta_e"], 1.0),
            ]
        )
    )


def _rows(images) -> tuple[int, object]:
    """(row count, read(indices) -> uint8 rows) of an array or an image source."""
    if isinstance(images, np.ndarray):
        real = images if images.dtype == np.uint8 else to_uint8(images)
        return len(real), lambda idx: real[idx]
    return int(images.count), lambda idx: np.asarray(images.read(idx))


class QualityTracker:
    """Compares a generator's fixed-latent samples with the training images; keeps the history.

    ``images``: the training images, float [-1, 1] or uint8 ``[N, H, W, 3]``, or an image
    source (``.count``, ``.read(indices)``, e.g. the run's pack): only the ``2 m`` rows of the
    fixed random subset are read.
    """

    def __init__(self, images, *, latent_dim: int, seed: int, count: int, path: Path):
        self.path = Path(path)
        total, read = _rows(images)
        rng = np.random.default_rng([seed, 0x9A11])
        self.m = min(count, total // 2)
        if self.m < 2:
            raise ValueError(f"quality tracking needs at least 4 training images, got {total}")
        real = read(rng.permutation(total)[: 2 * self.m])  # random halves A, B
        self.latents = rng.standard_normal((2 * self.m, latent_dim)).astype(np.float32)
        self.real_swd = q.SwdPool(real, seed=_SWD_SEED, nhoods_per_image=q.nhoods_for(self.m))
        self.real_col = q.ColourPool(real)
        self.a, self.b = np.arange(self.m), np.arange(self.m, 2 * self.m)
        splits = [(self.a, self.b)] + [
            np.split(rng.permutation(2 * self.m), 2) for _ in range(REFERENCE_SPLITS - 1)
        ]
        refs = [
            _compare(self.real_swd, self.real_col, x, self.real_swd, self.real_col, y)
            for x, y in splits
        ]
        self.reference = {k: float(np.mean([r[k] for r in refs])) for k in refs[0]}
        self.history: list[dict] = []
        self.best: dict | None = None

    # --- state -----------------------------------------------------------------------------
    def restore(self, last_epoch: int) -> None:
        """Reload the history from ``quality.json``, dropping epochs after ``last_epoch``."""
        self.history, self.best = [], None
        if not self.path.is_file():
            return
        try:
            doc = json.loads(self.path.read_text("utf-8"))
        except ValueError:
            log.warning("%s is unreadable; quality history starts anew", self.path)
            return
        if doc.get("set_size") != self.m:
            log.warning(
                "%s was measured with %s images per set, now %d: history dropped",
                self.path,
                doc.get("set_size"),
                self.m,
            )
            return
        self.history = [r for r in doc.get("history", []) if int(r["epoch"]) <= last_epoch]
        self._update_best()

    def _update_best(self) -> None:
        rows = [r for r in self.history if np.isfinite(r["quality_score"])]
        self.best = min(rows, key=lambda r: (r["quality_score"], r["epoch"])) if rows else None

    @property
    def best_epoch(self) -> int | None:
        return None if self.best is None else int(self.best["epoch"])

    # --- evaluation ------------------------------------------------------------------------
    def evaluate(self, generator, epoch: int) -> dict:
        """Metrics of ``generator`` (a Keras model, inference mode) at ``epoch``; recorded."""
        fakes = np.concatenate(
            [
                np.asarray(generator(self.latents[i : i + _BATCH], training=False))
                for i in range(0, len(self.latents), _BATCH)
            ]
        )
        fakes = to_uint8(fakes)
        fake_swd = q.SwdPool(fakes, seed=_SWD_SEED, nhoods_per_image=q.nhoods_for(self.m))
        fake_col = q.ColourPool(fakes)
        one = _compare(self.real_swd, self.real_col, self.a, fake_swd, fake_col, self.a)
        two = _compare(self.real_swd, self.real_col, self.b, fake_swd, fake_col, self.b)
        row = {k: round((one[k] + two[k]) / 2, 5) for k in one}
        row["background_rgb"] = [int(v) for v in np.median(fake_col.background_rgb, axis=0)]
        row["quality_score"] = round(score(row, self.reference), 5)
        row = {"epoch": int(epoch), **row}
        self.history = [r for r in self.history if r["epoch"] < epoch] + [row]
        self._update_best()
        return row

    # --- outputs ---------------------------------------------------------------------------
    def save(self) -> None:
        real_rgb = [int(v) for v in np.median(self.real_col.background_rgb, axis=0)]
        doc = {
            "criterion": CRITERION,
            "set_size": self.m,
            "reference": {k: round(v, 5) for k, v in self.reference.items()},
            "real_background_rgb": real_rgb,
            "best": self.best,
            "history": self.history,
        }
        atomic_write_text(self.path, json.dumps(doc, indent=2) + "\n")

    def plot(self, png: Path) -> bool:
        """Draw the curves to ``png`` (atomic); False when matplotlib is not installed."""
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            return False
        epochs = [r["epoch"] for r in self.history]
        panels = [
            ("swd_avg", "SWD x1e3 (mean of levels)"),
            ("lab_w1", "CIELAB W1 (L+a+b)"),
            ("background_delta_e", "background colour Delta E"),
            ("quality_score", "quality score (1 = real vs real)"),
        ]
        fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.2))
        for ax, (key, title) in zip(axes, panels):
            ax.plot(epochs, [r[key] for r in self.history], marker="o", ms=3)
            ref = 1.0 if key == "quality_score" else self.reference[key]
            ax.axhline(ref, ls="--", c="grey", lw=1, label="real vs real")
            if self.best is not None:
                ax.axvline(
                    self.best["epoch"],
                    ls=":",
                    c="green",
                    lw=1,
                    label=f"best (epoch {self.best['epoch']})",
                )
            ax.set_title(title, fontsize=9)
            ax.set_xlabel("epoch")
            ax.set_ylim(bottom=0)
        axes[0].legend(fontsize=7)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=80)
        plt.close(fig)
        atomic_write_bytes(png, buf.getvalue())
        return True
