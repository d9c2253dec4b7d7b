"""The training step's two speed switches, ``--jit-compile`` (XLA) and ``--precision`` (Keras
mixed precision), resolved from the config, the hardware and the run being resumed.

Both change the floating-point results, so ``auto`` is a fixed rule of the hardware, never a
timing probe at start (a probe on a loaded machine could choose differently in two runs of the
same command, and the same command must train the same weights: trainer.determinism). The
resolved values are recorded in every checkpoint (``state.json`` ``environment``) and a resumed
run whose option is ``auto`` keeps the values it started with.

- ``--jit-compile auto``: on when TensorFlow sees a GPU, off on CPU only; always off with
  ``--strategy mirrored|multiworker`` (trainer.gan compiles one device's step only). Measured with
  bench/train_bench.py on a 2-core Xeon (AVX-512, AMX), TensorFlow 2.21 with oneDNN: the XLA
  step runs at 0.8x the plain one at 64 px (batch 32, width 32) and 1.1x at the demo's 32 px
  (batch 16, width 64): XLA:CPU's convolutions are slower than oneDNN's. On GPUs XLA is Keras
  3's own default for TensorFlow (``jit_compile="auto"``); this project has not measured it.
- ``--precision auto``: ``mixed_bfloat16`` where the hardware computes bfloat16 natively (a GPU
  of compute capability 8.0 or more; a CPU with AMX-BF16 or AVX512-BF16, which oneDNN uses),
  else ``float32``. On the Xeon above: 1.3x (64 px, width 32) to 1.5x (64 px, width 64).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

log = logging.getLogger("trainer")

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
_CPU_BF16_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})


@dataclass(frozen=True)
class Throughput:
    jit_compile: bool
    precision: str
    reason: str  # how each was decided, for run.log

    def record(self) -> dict:
        """The keys added to the checkpoint's environment (trainer.determinism.DECISIVE)."""
        return {"jit_compile": self.jit_compile, "precision": self.precision}


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def gpus() -> list:
    import tensorflow as tf

    return tf.config.list_physical_devices("GPU")


def native_bf16() -> tuple[bool, str]:
    """Whether this machine computes bfloat16 natively, and what says so."""
    import tensorflow as tf

    devices = gpus()
    if devices:
        caps = [
            tf.config.experimental.get_device_details(d).get("compute_capability") for d in devices
        ]
        ok = all(c is not None and tuple(c) >= (8, 0) for c in caps)
        return ok, f"GPU compute capability {', '.join(str(c) for c in caps)}"
    found = sorted(_CPU_BF16_FLAGS & cpu_flags())
    return bool(found), f"CPU flags {', '.join(found)}" if found else "no CPU bf16 flags"


def resolve(
    jit_compile: str, precision: str, saved: dict | None = None, *, strategy: str = "default"
) -> Throughput:
    """The step's settings for options ``jit_compile`` (auto|on|off) and ``precision``
    (auto|float32|mixed_bfloat16|mixed_float16). ``saved``: the environment recorded in the
    checkpoint being resumed (None for a new run); ``auto`` takes its values from there (a run
    from before these options trained without XLA in float32). XLA is for ``strategy``
    default only (trainer.gan)."""
    reasons = []
    if strategy != "default" and jit_compile != "on":
        jit = False
        reasons.append(f"XLA off (--strategy {strategy})")
    elif jit_compile != "auto":
        jit = jit_compile == "on"
        reasons.append(f"XLA {jit_compile} (--jit-compile)")
    elif saved is not None:
        jit = bool(saved.get("jit_compile", False))
        reasons.append(f"XLA {'on' if jit else 'off'} (auto: as the run started)")
    else:
        jit = bool(gpus())
        reasons.append(f"XLA {'on' if jit else 'off'} (auto: {'GPU' if jit else 'CPU only'})")
    if precision != "auto":
        chosen = precision
        reasons.append(f"{chosen} (--precision)")
    elif saved is not None:
        chosen = saved.get("precision", "float32")
        reasons.append(f"{chosen} (auto: as the run started)")
    else:
        native, why = native_bf16()
        chosen = "mixed_bfloat16" if native else "float32"
        reasons.append(f"{chosen} (auto: {why})")
    return Throughput(jit, chosen, "; ".join(reasons))
