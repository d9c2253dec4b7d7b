"""Atomic, complete-or-absent training checkpoints in ``RUN/checkpoints/epoch_XXXX/``.

Each checkpoint is a folder with one TensorFlow checkpoint (``checkpoint.index`` +
``checkpoint.data-*``, written by ``tf.train.Checkpoint``) and ``state.json`` (epoch, step, data
fingerprint, environment; ``"format": 2``). Every variable is stored by name: the group
(``generator``, ``discriminator``, ``ema_generator``, ``g_optimizer``, ``d_optimizer``) and the
Keras variable path (``up0/kernel``, ``d_adam/up0_kernel_momentum``, ``d_adam/iteration``, ...).
A restore matches names and shapes first and refuses any difference with a message, so a
changed model can never load by position. The optimizers' step counters are in it, and all
training randomness is derived from them (trainer.gan), so a restore resumes exactly.

The folder is written into a hidden temporary folder and renamed into place, a single atomic
step on POSIX file systems: a crash (even ``kill -9``) leaves either the whole checkpoint or
none. Only the last ``keep`` checkpoints are kept, and the run's best snapshot (trainer.quality),
which pruning skips.

Format 1 (dermsynth 0.1.0: Keras ``*.weights.h5`` + ``optimizers.npz`` with the optimizers'
variables by position, no ``format`` in state.json) is still read, checked by count and shape,
so such runs resume and export; their next checkpoint is written in format 2.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from common.errors import UserError

FORMAT = 2
PREFIX = "checkpoint"  # -> checkpoint.index, checkpoint.data-00000-of-00001
_NAME = re.compile(r"^epoch_(\d{4,})$")
_LEGACY_OPTIMIZERS = "optimizers.npz"
_WHAT_TO_DO = "resume or export it with the dermsynth version that wrote it, or start a new --run"


@dataclass(frozen=True)
class CheckpointInfo:
    path: Path
    epoch: int
    state: dict

    @property
    def legacy(self) -> bool:
        """Format 1: Keras weight files and optimizer variables by position."""
        return (
            not (self.path / f"{PREFIX}.index").is_file()
            and (self.path / _LEGACY_OPTIMIZERS).is_file()
        )


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
            out.append(
                CheckpointInfo(
                    path, int(match.group(1)), json.loads(state_file.read_text(encoding="utf-8"))
                )
            )
    return sorted(out, key=lambda c: c.epoch)


def latest(folder: Path) -> CheckpointInfo | None:
    found = list_checkpoints(folder)
    return found[-1] if found else None


def _by_name(variables) -> dict[str, object]:
    out: dict[str, object] = {}
    for v in variables:
        if v.path in out:
            raise ValueError(
                f"two variables are named {v.path!r}: name every layer that has "
                f"weights (trainer/model.py)"
            )
        out[v.path] = v
    return out


def named_variables(gan) -> dict[str, dict[str, object]]:
    """What a checkpoint holds: group -> {variable path: variable}."""
    groups = {
        "generator": gan.generator.variables,
        "discriminator": gan.discriminator.variables,
        "g_optimizer": gan.g_optimizer.variables,
        "d_optimizer": gan.d_optimizer.variables,
    }
    if gan.ema_generator is not None:
        groups["ema_generator"] = gan.ema_generator.variables
    return {k: _by_name(v) for k, v in groups.items()}


def save(
    folder: Path, epoch: int, gan, *, state: dict, keep: int, protect: Iterable[int | None] = ()
) -> Path:
    """Write checkpoint ``epoch`` atomically, then delete all but the last ``keep`` and the
    ``protect``ed epochs (the run's best snapshot)."""
    import tensorflow as tf

    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"epoch_{epoch:04d}"
    tmp = folder / f".tmp-epoch_{epoch:04d}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    tf.train.Checkpoint(**named_variables(gan)).write(str(tmp / PREFIX))
    payload = {
        **state,
        "epoch": epoch,
        "format": FORMAT,
        "saved": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (tmp / "state.json").write_text(
        json.dumps(payload, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
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


def _key(group: str, name: str) -> str:
    """The key ``tf.train.Checkpoint`` stores variable ``name`` of ``group`` under."""
    escaped = name.replace(".", "..").replace("/", ".S")
    return f"{group}/{escaped}/.ATTRIBUTES/VARIABLE_VALUE"


def _shown(key: str) -> str:
    """``group/variable path`` of a stored key (the inverse of :func:`_key`)."""
    group, escaped = key.split("/")[0], key.split("/")[1]
    return f"{group}/{escaped.replace('.S', '/').replace('..', '.')}"


def _listed(label: str, items: list[str]) -> str:
    return f"{len(items)} {label}: {', '.join(items[:3])}{', ...' if len(items) > 3 else ''}"


def _check_names(info: CheckpointInfo, groups: dict[str, dict], *, partial: bool) -> None:
    """Refuse, naming the differences, unless every variable is stored under its name with its
    shape (and, unless ``partial``, nothing else is stored)."""
    import tensorflow as tf

    prefix = info.path / PREFIX
    if not (info.path / f"{PREFIX}.index").is_file():
        raise UserError(
            f"{info.path} has no {PREFIX}.index (nor the old-format "
            f"{_LEGACY_OPTIMIZERS}): not a dermsynth checkpoint; delete the folder "
            f"to resume from the one before, or start a new --run"
        )
    try:
        stored = {
            k: tuple(s)
            for k, s in tf.train.list_variables(str(prefix))
            if k.endswith("/.ATTRIBUTES/VARIABLE_VALUE")
        }
    except (tf.errors.OpError, ValueError) as exc:
        raise UserError(
            f"{prefix}: unreadable checkpoint ({exc}); delete the folder to resume "
            f"from the one before, or start a new --run"
        ) from None
    wanted = {_key(g, name): tuple(v.shape) for g, vs in groups.items() for name, v in vs.items()}
    missing = sorted(_shown(k) for k in wanted if k not in stored)
    shapes = sorted(
        f"{_shown(k)} {stored[k]} != {s}"
        for k, s in wanted.items()
        if k in stored and stored[k] != s
    )
    extra = [] if partial else sorted(_shown(k) for k in stored if k not in wanted)
    problems = [
        _listed(label, items)
        for label, items in (
            ("of another shape (stored != model)", shapes),
            ("missing", missing),
            ("not in this model", extra),
        )
        if items
    ]
    if problems:
        raise UserError(
            f"{info.path} does not match this model by name ({'; '.join(problems)}); {_WHAT_TO_DO}"
        )


def _read(info: CheckpointInfo, groups: dict[str, dict], *, partial: bool) -> None:
    import tensorflow as tf

    _check_names(info, groups, partial=partial)
    status = tf.train.Checkpoint(**groups).read(str(info.path / PREFIX))
    if partial:
        status.assert_existing_objects_matched().expect_partial()
    else:
        status.assert_consumed()


def restore(info: CheckpointInfo, gan) -> None:
    """Load weights and optimizer state of checkpoint ``info`` into ``gan``; refuse (UserError)
    a checkpoint whose names or shapes differ from the model's."""
    if info.legacy:
        _restore_legacy(info, gan)
    else:
        groups = named_variables(gan)
        stored = info.state.get("format")
        if stored is not None and stored > FORMAT:
            raise UserError(
                f"{info.path} has checkpoint format {stored}, newer than this "
                f"dermsynth reads ({FORMAT}); {_WHAT_TO_DO}"
            )
        _read(info, groups, partial=False)
    step = info.state.get("step")
    if step is not None and gan.step_count != int(step):
        raise UserError(
            f"{info.path}: restored step {gan.step_count}, state.json says {step}; "
            f"the checkpoint is inconsistent: delete it to resume from the one "
            f"before, or start a new --run"
        )


def load_export_generator(
    info: CheckpointInfo, resolution: int, latent_dim: int, width: int, *, ema: bool
):
    """The generator to export from checkpoint ``info`` (EMA weights when ``ema``)."""
    from trainer.model import build_generator

    generator = build_generator(resolution, latent_dim, width=width)
    group = "ema_generator" if ema else "generator"
    if info.legacy:
        _load_legacy_weights(generator, info.path / f"{group}.weights.h5")
    else:
        _read(info, {group: _by_name(generator.variables)}, partial=True)
    return generator


# --- format 1 (read only) -----------------------------------------------------------------
def _load_legacy_weights(model, path: Path) -> None:
    """Keras weights by layer order; refused unless every layer loads without a complaint."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model.load_weights(path)
            problem = next(
                (str(w.message) for w in caught if issubclass(w.category, UserWarning)), None
            )
        except (OSError, ValueError) as exc:
            problem = str(exc) or type(exc).__name__
    if problem:
        first = problem.strip().splitlines()[0].rstrip(":")
        raise UserError(
            f"{path}: old-format checkpoint whose weights do not fit this model "
            f"({first}); {_WHAT_TO_DO}"
        )


def _assign_legacy_optimizer(optimizer, arrays, prefix: str, path: Path) -> None:
    keys = sorted(k for k in arrays.files if k.startswith(prefix + "/"))
    if len(keys) != len(optimizer.variables):
        raise UserError(
            f"{path}: old-format checkpoint (optimizer variables by position) with "
            f"{len(keys)} {prefix}-optimizer variables, this model has "
            f"{len(optimizer.variables)}; {_WHAT_TO_DO}"
        )
    for key, var in zip(keys, optimizer.variables):
        value = arrays[key]
        if tuple(value.shape) != tuple(var.shape):
            raise UserError(
                f"{path}: old-format checkpoint: {key} has shape {value.shape}, "
                f"this model's {var.path} {tuple(var.shape)}; {_WHAT_TO_DO}"
            )
    for key, var in zip(keys, optimizer.variables):
        var.assign(arrays[key])


def _restore_legacy(info: CheckpointInfo, gan) -> None:
    import numpy as np

    _load_legacy_weights(gan.generator, info.path / "generator.weights.h5")
    _load_legacy_weights(gan.discriminator, info.path / "discriminator.weights.h5")
    if gan.ema_generator is not None:
        _load_legacy_weights(gan.ema_generator, info.path / "ema_generator.weights.h5")
    path = info.path / _LEGACY_OPTIMIZERS
    with np.load(path) as arrays:
        _assign_legacy_optimizer(gan.g_optimizer, arrays, "g", path)
        _assign_legacy_optimizer(gan.d_optimizer, arrays, "d", path)
