"""Export a training run's generator (the EMA one when EMA was on) to a model directory.

Reads RUN/config.json, RUN/data.json and one complete checkpoint (``last``, ``best`` by the
quality criterion of trainer.quality, or ``epoch_XXXX``), then writes ``model.onnx`` +
``model.json`` (trainer.export; ``checkpoint`` records which epoch and why) and a copy of the
run's ``config.json``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from common.config import ConfigError
from common.errors import UserError
from trainer import checkpoints
from trainer.rundir import RunDir


def _names(found: list[checkpoints.CheckpointInfo]) -> str:
    names = [c.path.name for c in found]
    return ", ".join(names if len(names) <= 6 else names[:2] + ["..."] + names[-3:])


def select_checkpoint(run: RunDir, which: str = "last") -> tuple[checkpoints.CheckpointInfo, dict]:
    """The checkpoint named by ``which`` (last | best | epoch_XXXX) and the manifest's record
    of it: {"selected", "epoch", "reason"} (+ the quality row for ``best``)."""
    found = checkpoints.list_checkpoints(run.checkpoints)
    if not found:
        raise UserError(f"{run.path} has no complete checkpoint yet; train at least one epoch")
    if which == "last":
        return found[-1], {
            "selected": "last",
            "epoch": found[-1].epoch,
            "reason": "the last complete checkpoint",
        }
    by_epoch = {c.epoch: c for c in found}
    if which == "best":
        if not run.quality_file.is_file():
            raise UserError(
                f"{run.path} has no quality.json (trained with --quality-every 0?): "
                f"no best snapshot; use --checkpoint last or epoch_XXXX"
            )
        try:
            doc = json.loads(run.quality_file.read_text("utf-8"))
        except ValueError as exc:
            raise UserError(f"{run.quality_file} is not valid JSON ({exc})") from None
        best = doc.get("best")
        if not best:
            raise UserError(
                f"{run.quality_file} records no measured epoch yet; use --checkpoint last"
            )
        epoch = int(best["epoch"])
        if epoch not in by_epoch:
            raise UserError(
                f"the best snapshot, epoch {epoch}, has no checkpoint in "
                f"{run.checkpoints}; kept: {_names(found)}"
            )
        return by_epoch[epoch], {
            "selected": "best",
            "epoch": epoch,
            "reason": f"lowest quality_score {best['quality_score']} of "
            f"{len(doc.get('history', []))} measured epochs ({doc.get('criterion')})",
            "quality": best,
            "quality_reference": doc.get("reference"),
        }
    match = re.fullmatch(r"epoch_(\d+)", which)
    if not match:
        raise UserError(f"--checkpoint {which!r}: expected last, best or epoch_XXXX")
    epoch = int(match.group(1))
    if epoch not in by_epoch:
        raise UserError(
            f"--checkpoint {which}: no such checkpoint in {run.checkpoints}; kept: {_names(found)}"
        )
    return by_epoch[epoch], {
        "selected": which,
        "epoch": epoch,
        "reason": "named on the command line",
    }


def export_run(run_dir: str | Path, out_dir: str | Path, checkpoint: str = "last") -> Path:
    run = RunDir(Path(run_dir))
    if not run.path.is_dir():
        raise UserError(f"run directory {run.path} does not exist")
    config = run.saved_config()
    if config is None:
        raise UserError(f"{run.path} is not a training run (no config.json)")
    info, selection = select_checkpoint(run, checkpoint)
    if not run.data_file.is_file():
        raise ConfigError(f"{run.path} has no data.json")
    data = run.read_data()
    ema = config.ema > 0

    from trainer.export import export_generator

    generator = checkpoints.load_export_generator(
        info, config.resolution, config.latent_dim, config.width, ema=ema
    )
    manifest = {
        "training_data": {
            "fingerprint": data["fingerprint"],
            "image_count": data["image_count"],
            "layout": data["layout"],
            "filters": data["filters"],
        },
        "epochs": info.epoch,
        "seed": config.seed,
        "ema": ema,
        "checkpoint": selection,
    }
    out = export_generator(generator, out_dir, manifest=manifest)
    from trainer.export import copy_beside

    copy_beside(run.config_file, out)
    return out
