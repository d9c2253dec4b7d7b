"""Atomic, complete-or-absent training checkpoints in ``RUN/checkpoints/epoch_XXXX/``.

Each checkpoint is a folder with the Keras weights of the generator, the discriminator and the
EMA generator (``*.weights.h5``), both Adam optimizers' variables (``optimizers.npz``, which
includes their step counters, from which all training randomness is derived) and
``state.json`` (epoch, step, data fingerprint). It is written into a hidden temporary folder
and renamed into place, a single atomic step on POSIX file systems: a crash (even ``kill -9``)
leaves either the whole checkpoint or none. Only the last ``keep`` checkpoints are kept, and
the run's best snapshot (trainer.quality), which pruning skips.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

_NAME = re.compile(r"^epoch_(\d{4,})$")


@dataclass(frozen=True)
class CheckpointInfo:
    path: Path
    epoch: int
    state: dict


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def list_checkpoints(folder: Path) -> list[CheckpointInfo]:
    """Complete checkpoints in ``folder``, oldest first (temporary folders are ignored)."""
    out = []
    if not folder.is_dir():
        return out
    for path in folder.iterdir():
        match = _NAME.match(path.name)
        state_file = path / "state.json"
        if match and state_file.is_file():
            out.append(CheckpointInfo(path, int(match.group(1)),
                                      json.loads(state_file.read_text(encoding="utf-8"))))
    return sorted(out, key=lambda c: c.epoch)


def latest(folder: Path) -> CheckpointInfo | None:
    found = list_checkpoints(folder)
    return found[-1] if found else None


def _optimizer_arrays(optimizer, prefix: str) -> dict[str, np.ndarray]:
    return {f"{prefix}/{i:04d}": np.asarray(v.numpy()) for i, v in enumerate(optimizer.variables)}


def save(folder: Path, epoch: int, gan, *, state: dict, keep: int,
         protect: Iterable[int | None] = ()) -> Path:
    """Write checkpoint ``epoch`` atomically, then delete all but the last ``keep`` and the
    ``protect``ed epochs (the run's best snapshot)."""
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"epoch_{epoch:04d}"
    tmp = folder / f".tmp-epoch_{epoch:04d}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    gan.generator.save_weights(tmp / "generator.weights.h5")
    gan.discriminator.save_weights(tmp / "discriminator.weights.h5")
    if gan.ema_generator is not None:
        gan.ema_generator.save_weights(tmp / "ema_generator.weights.h5")
    arrays = {**_optimizer_arrays(gan.g_optimizer, "g"), **_optimizer_arrays(gan.d_optimizer, "d")}
    np.savez(tmp / "optimizers.npz", **arrays)
    payload = {**state, "epoch": epoch, "saved": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    (tmp / "state.json").write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n",
                                    encoding="utf-8")
    for f in tmp.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    _fsync_dir(tmp)
    if final.exists():  # a re-save of the same epoch (should not happen): replace it
        old = folder / f".old-{final.name}-{os.getpid()}"
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)
    _fsync_dir(folder)
    protected = {int(e) for e in protect if e is not None}
    for info in list_checkpoints(folder)[:-keep]:
        if info.epoch in protected:
            continue
        shutil.rmtree(info.path, ignore_errors=True)
    for stale in folder.glob(".tmp-epoch_*"):  # leftovers of killed runs
        shutil.rmtree(stale, ignore_errors=True)
    return final


def _assign_optimizer(optimizer, arrays, prefix: str, path: Path) -> None:
    keys = sorted(k for k in arrays.files if k.startswith(prefix + "/"))
    if len(keys) != len(optimizer.variables):
        raise ValueError(f"{path}: {len(keys)} saved {prefix}-optimizer variables, "
                         f"model has {len(optimizer.variables)}")
    for key, var in zip(keys, optimizer.variables):
        value = arrays[key]
        if tuple(value.shape) != tuple(var.shape):
            raise ValueError(f"{path}: {key} has shape {value.shape}, expected {var.shape}")
        var.assign(value)


def restore(info: CheckpointInfo, gan, *, optimizers: bool = True) -> None:
    """Load weights (and optimizer state) of checkpoint ``info`` into ``gan``."""
    gan.generator.load_weights(info.path / "generator.weights.h5")
    gan.discriminator.load_weights(info.path / "discriminator.weights.h5")
    if gan.ema_generator is not None:
        gan.ema_generator.load_weights(info.path / "ema_generator.weights.h5")
    if optimizers:
        with np.load(info.path / "optimizers.npz") as arrays:
            _assign_optimizer(gan.g_optimizer, arrays, "g", info.path)
            _assign_optimizer(gan.d_optimizer, arrays, "d", info.path)


def load_export_generator(info: CheckpointInfo, resolution: int, latent_dim: int, width: int,
                          *, ema: bool):
    """The generator to export from checkpoint ``info`` (EMA weights when ``ema``)."""
    from trainer.model import build_generator

    generator = build_generator(resolution, latent_dim, width=width)
    weights = info.path / ("ema_generator.weights.h5" if ema else "generator.weights.h5")
    generator.load_weights(weights)
    return generator
