"""Reproducible training: the same command in two processes trains bit-identical weights.

What makes a run repeatable, and where each part lives:

- weights start from per-layer initializers seeded by (seed, network, layer) (``trainer.model``);
- every random draw in a step is stateless, from (seed, step, replica) (``trainer.gan``,
  ``trainer.augment``); the data order is a stateless shuffle per (seed, epoch), mapped with
  ``deterministic=True`` (``trainer.pipeline``);
- ``--deterministic`` (the default) turns on TensorFlow's op determinism
  (``tf.config.experimental.enable_op_determinism``): ops without a deterministic kernel raise
  instead of varying (on GPUs: cuDNN and scatter/segment reductions). On CPU it costs no
  measurable speed here.

What still changes the numbers: floating-point results depend on the kernels that run, and those
depend on the CPU's instruction set (AVX2 vs AVX-512), oneDNN on/off (``TF_ENABLE_ONEDNN_OPTS``),
the intra-op thread count (how a reduction is split) and the TensorFlow version. GAN training
amplifies a last-bit difference into different weights within an epoch. So the promise is:
same machine type, same thread count, same oneDNN setting, same TensorFlow -> identical weights,
and a resumed run equals an uninterrupted one.

Each checkpoint records this environment (:func:`environment`). A resume with
``--deterministic`` pins the intra- and inter-op thread counts to the run's, where TensorFlow has
not started yet, and warns about any other difference (the run goes on; it just may not be
bit-identical to an uninterrupted one).
"""

from __future__ import annotations

import logging
import os
import platform

log = logging.getLogger("trainer")

# Environment keys that decide the numbers (compared on resume).
DECISIVE = ("cpu", "intra_op_threads", "onednn", "tensorflow", "devices")
# ... and the training step's settings (trainer.throughput), checked once they are resolved
STEP_SETTINGS = ("jit_compile", "precision")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _threads(configured: int, variable: str) -> int:
    """The thread count TensorFlow uses: set through the API, else the environment, else all
    CPUs this process may run on."""
    if configured:
        return configured
    try:
        value = int(os.environ.get(variable, "0"))
    except ValueError:
        value = 0
    if value > 0:
        return value
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def environment() -> dict:
    """What decides the floating-point results of a training step in this process."""
    import tensorflow as tf

    threading = tf.config.threading
    onednn = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "").strip().lower()
    return {
        "tensorflow": tf.__version__,
        "cpu": _cpu_model(),
        "intra_op_threads": _threads(
            threading.get_intra_op_parallelism_threads(), "TF_NUM_INTRAOP_THREADS"
        ),
        "inter_op_threads": _threads(
            threading.get_inter_op_parallelism_threads(), "TF_NUM_INTEROP_THREADS"
        ),
        "onednn": "off" if onednn in ("0", "false", "off") else "on",
        "devices": sorted(
            d.device_type for d in tf.config.list_logical_devices() if d.device_type != "CPU"
        ),
    }


def _pin_threads(saved: dict) -> None:
    """Use the run's thread counts, if TensorFlow's runtime has not started yet."""
    import tensorflow as tf

    for key, setter, getter in (
        (
            "intra_op_threads",
            tf.config.threading.set_intra_op_parallelism_threads,
            tf.config.threading.get_intra_op_parallelism_threads,
        ),
        (
            "inter_op_threads",
            tf.config.threading.set_inter_op_parallelism_threads,
            tf.config.threading.get_inter_op_parallelism_threads,
        ),
    ):
        want = saved.get(key)
        if not isinstance(want, int) or want < 1 or getter() == want:
            continue
        try:
            setter(want)
        except RuntimeError:  # the runtime is already initialised (e.g. a second run in-process)
            log.debug("cannot pin %s to %d: TensorFlow already started", key, want)


def differences(saved: dict, now: dict) -> list[str]:
    """``key: saved -> now`` for each decisive key that differs."""
    return [
        f"{k}: {saved.get(k)!r} in the run, {now.get(k)!r} now"
        for k in DECISIVE
        if k in saved and saved.get(k) != now.get(k)
    ]


def pin_threads(enabled: bool, saved: dict | None) -> None:
    """With ``enabled``, use the thread counts of ``saved`` (the environment recorded in the
    checkpoint being resumed; None for a new run). Call before TensorFlow's runtime starts,
    i.e. before the tf.distribute strategy is made."""
    if enabled and saved:
        _pin_threads(saved)


def configure(enabled: bool, saved: dict | None = None) -> dict:
    """Set up this process for a repeatable run; returns its :func:`environment`.

    Call after :func:`pin_threads` and before the first training step. ``saved`` is the
    environment recorded in the checkpoint being resumed (None for a new run).
    """
    import tensorflow as tf

    if enabled:
        tf.config.experimental.enable_op_determinism()
    env = environment()
    log.info(
        "determinism %s: TensorFlow %s, %s, %d intra-op / %d inter-op threads, oneDNN %s%s",
        "on" if enabled else "off (--no-deterministic)",
        env["tensorflow"],
        env["cpu"],
        env["intra_op_threads"],
        env["inter_op_threads"],
        env["onednn"],
        f", devices {', '.join(env['devices'])}" if env["devices"] else "",
    )
    changed = differences(saved or {}, env)
    if changed:
        log.warning(
            "resuming in a different environment (%s): training goes on, but the result "
            "may differ from an uninterrupted run in the last bits and then more",
            "; ".join(changed),
        )
    return env


def warn_differences(saved: dict | None, settings: dict) -> None:
    """Warn when a resume runs the step with other settings (XLA, precision) than the run
    recorded: training goes on, the numbers differ from an uninterrupted run."""
    changed = [
        f"{k}: {saved.get(k)!r} in the run, {settings.get(k)!r} now"
        for k in STEP_SETTINGS
        if saved and k in saved and saved.get(k) != settings.get(k)
    ]
    if changed:
        log.warning(
            "resuming with another training step (%s): training goes on, but the result may "
            "differ from an uninterrupted run",
            "; ".join(changed),
        )
