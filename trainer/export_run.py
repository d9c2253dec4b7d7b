"""Export a training run's generator (the EMA one when EMA was on) to a model directory.

Reads RUN/config.json, RUN/data.json and the last complete checkpoint, then writes
``model.onnx`` + ``model.json`` (trainer.export) and a copy of the run's ``config.json``.
"""

from __future__ import annotations

from pathlib import Path

from common.config import ConfigError
from common.errors import UserError
from trainer import checkpoints
from trainer.rundir import RunDir


def export_run(run_dir: str | Path, out_dir: str | Path) -> Path:
    run = RunDir(Path(run_dir))
    if not run.path.is_dir():
        raise UserError(f"run directory {run.path} does not exist")
    config = run.saved_config()
    if config is None:
        raise UserError(f"{run.path} is not a training run (no config.json)")
    info = checkpoints.latest(run.checkpoints)
    if info is None:
        raise UserError(f"{run.path} has no complete checkpoint yet; train at least one epoch")
    if not run.data_file.is_file():
        raise ConfigError(f"{run.path} has no data.json")
    data = run.read_data()
    ema = config.ema > 0

    from trainer.export import export_generator

    generator = checkpoints.load_export_generator(info, config.resolution, config.latent_dim,
                                                  config.width, ema=ema)
    manifest = {
        "training_data": {"fingerprint": data["fingerprint"], "image_count": data["image_count"],
                          "layout": data["layout"], "filters": data["filters"]},
        "epochs": info.epoch, "seed": config.seed, "ema": ema,
    }
    out = export_generator(generator, out_dir, manifest=manifest)
    from trainer.export import copy_beside
    copy_beside(run.config_file, out)
    return out
