"""The run directory: resolved config, data record, run log, metrics CSV and sample grids.

RUN/config.json            resolved TrainConfig (common.config.save)
RUN/data.json              training-set fingerprint, image count, layout, filters
RUN/run.log                what happened, including every skipped file and why
RUN/metrics.csv            one row per finished epoch (+ quality columns when measured)
RUN/quality.json, .png     weight-free quality history, curve and best epoch (trainer.quality)
RUN/samples/epoch_XXXX.png a grid from a fixed latent batch, one per epoch
RUN/tensorboard/           TensorBoard event files
RUN/checkpoints/epoch_XXXX complete checkpoints (trainer.checkpoints)
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from pathlib import Path

import numpy as np
from PIL import Image

from common.config import ConfigError, atomic_write_bytes, atomic_write_text, from_dict, save
from common.datasets import DatasetIndex
from common.images import to_uint8
from trainer.config import TrainConfig, incompatible_keys

# Config keys added after 0.1.0, with the values that runs saved before them trained with.
LEGACY_VALUES = {"r1_gamma": 0.0}

# Quality columns (trainer.quality) are empty in epochs without a measurement. A resume
# rewrites the file with this header (truncate_metrics), so older runs' files gain the columns.
METRIC_FIELDS = (
    "epoch",
    "step",
    "d_loss",
    "g_loss",
    "d_real",
    "d_fake",
    "images_per_s",
    "seconds",
    "swd_avg",
    "lab_w1",
    "background_delta_e",
    "quality_score",
)


class RunDir:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.config_file = self.path / "config.json"
        self.data_file = self.path / "data.json"
        self.log_file = self.path / "run.log"
        self.metrics_file = self.path / "metrics.csv"
        self.samples = self.path / "samples"
        self.checkpoints = self.path / "checkpoints"
        self.tensorboard = self.path / "tensorboard"
        self.quality_file = self.path / "quality.json"
        self.quality_png = self.path / "quality.png"

    def saved_config(self) -> TrainConfig | None:
        if not self.config_file.is_file():
            return None
        try:
            saved = json.loads(self.config_file.read_text("utf-8"))
            # keys that runs made before they existed trained without: the old behaviour, so
            # that resuming such a run with today's defaults is refused, not silently changed
            for key, value in LEGACY_VALUES.items():
                if isinstance(saved, dict):
                    saved.setdefault(key, value)
            return from_dict(TrainConfig, saved)
        except (ValueError, ConfigError) as exc:
            raise ConfigError(f"{self.config_file} is not a valid trainer config: {exc}") from exc

    def check_resume(self, config: TrainConfig, has_checkpoint: bool) -> None:
        """Refuse a resume whose config changes what is trained (names the keys)."""
        saved = self.saved_config()
        if saved is None or not has_checkpoint:
            return
        bad = incompatible_keys(saved, config)
        if bad:
            diffs = "; ".join(
                f"{k}: {getattr(saved, k)!r} in the run, {getattr(config, k)!r} now" for k in bad
            )
            raise ConfigError(
                f"{self.path} holds a run with a different config ({diffs}). These keys "
                f"cannot change on resume; use the run's values or a new --run directory."
            )

    def write_config(self, config: TrainConfig) -> None:
        save(config, self.config_file)

    def check_data(self, index: DatasetIndex, has_checkpoint: bool) -> None:
        if not (has_checkpoint and self.data_file.is_file()):
            return
        saved = json.loads(self.data_file.read_text("utf-8"))
        if saved.get("fingerprint") != index.fingerprint:
            raise ConfigError(
                f"the training data changed since {self.path} was started: fingerprint "
                f"{saved.get('fingerprint')} ({saved.get('image_count')} images) in the run, "
                f"{index.fingerprint} ({len(index.records)} images) now. Use a new --run."
            )

    def write_data(self, index: DatasetIndex, config: TrainConfig) -> None:
        doc = {
            "fingerprint": index.fingerprint,
            "image_count": len(index.records),
            "layout": index.layout,
            "root": str(index.root),
            "filters": {"benign_malignant": config.benign_malignant, "diagnosis": config.diagnosis},
            "skipped_count": len(index.skipped),
        }
        atomic_write_text(self.data_file, json.dumps(doc, indent=2, sort_keys=True) + "\n")

    def read_data(self) -> dict:
        return json.loads(self.data_file.read_text("utf-8"))

    def attach_log(self) -> logging.Handler:
        """Send the trainer's log records to RUN/run.log (appending across resumes)."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"--run {self.path}: cannot create the run directory ({exc.strerror})"
            ) from None
        handler = logging.FileHandler(self.log_file, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger = logging.getLogger("trainer")
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        return handler

    def truncate_metrics(self, last_epoch: int) -> None:
        """Drop rows of epochs after the restored checkpoint (written before a crash)."""
        if not self.metrics_file.is_file():
            return
        with open(self.metrics_file, newline="", encoding="utf-8") as fh:
            rows = [
                r
                for r in csv.DictReader(fh)  # a kill mid-write leaves a short last row
                if r.get("seconds") and r["epoch"].isdigit() and int(r["epoch"]) <= last_epoch
            ]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=METRIC_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(self.metrics_file, buf.getvalue())

    def append_metrics(self, row: dict) -> None:
        new = not self.metrics_file.is_file()
        with open(self.metrics_file, "a", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=METRIC_FIELDS)
            if new:
                writer.writeheader()
            writer.writerow({k: row.get(k) for k in METRIC_FIELDS})

    def write_samples(self, epoch: int, images: np.ndarray) -> Path:
        """Save float images in [-1, 1] as one grid PNG (atomic)."""
        buf = io.BytesIO()
        Image.fromarray(sample_grid(images)).save(buf, format="PNG")
        path = self.samples / f"epoch_{epoch:04d}.png"
        atomic_write_bytes(path, buf.getvalue())
        return path


def sample_grid(images: np.ndarray, pad: int = 2) -> np.ndarray:
    """uint8 mosaic of ``images`` ([N, H, W, 3] in [-1, 1]), as square as possible."""
    imgs = to_uint8(images)
    n, h, w, _ = imgs.shape
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    grid = np.zeros((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), np.uint8)
    for i, img in enumerate(imgs):
        r, c = divmod(i, cols)
        grid[
            pad + r * (h + pad) : pad + r * (h + pad) + h,
            pad + c * (w + pad) : pad + c * (w + pad) + w,
        ] = img
    return grid
