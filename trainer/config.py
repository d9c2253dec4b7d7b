"""The trainer's one config: ``TrainConfig``, filled from flags, then ``DERMSYNTH_TRAIN_*``.

Saved as ``config.json`` in every run directory. On resume the saved config is compared with
the new one: only the keys in :data:`RESUMABLE_KEYS` may change (e.g. raise ``epochs``);
anything that changes what is being trained is refused, naming the differing keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from common.config import ConfigError, option, to_dict

ENV_PREFIX = "DERMSYNTH_TRAIN_"
AUGMENTATIONS = ("color", "translation", "cutout")

# Keys that may differ between the run's saved config and a resumed invocation.
RESUMABLE_KEYS = frozenset(
    {
        "data",
        "run",
        "epochs",
        "keep_checkpoints",
        "strategy",
        "progress",
        "tensorboard",
        "deterministic",
        "quality_every",
        "cache_dir",
        "prep_workers",
        "jit_compile",  # like the thread counts: the last bits, recorded and warned about
    }
)


@dataclass(frozen=True)
class TrainConfig:
    data: Path = field(metadata=option("image folder (isic-cli, ISIC challenge or plain folder)"))
    run: Path = field(metadata=option("run directory (created; re-run the same command to resume)"))
    resolution: int = field(
        default=64, metadata=option("image size in pixels", choices=(32, 64, 128))
    )
    epochs: int = field(
        default=25, metadata=option("total epochs (raise it to continue a finished run)", minimum=1)
    )
    batch_size: int = field(default=64, metadata=option("global batch size", minimum=1))
    seed: int = field(
        default=0, metadata=option("seed for weights, shuffling and latents", minimum=0)
    )
    benign_malignant: str | None = field(
        default=None,
        metadata=option(
            "keep only images with this benign_malignant value", choices=("benign", "malignant")
        ),
    )
    diagnosis: str | None = field(
        default=None, metadata=option("keep only images with this diagnosis (e.g. nevus, melanoma)")
    )
    layout: Literal["auto", "isic-cli", "isic-challenge", "folder"] = field(
        default="auto", metadata=option("data layout")
    )
    latent_dim: int = field(
        default=100, metadata=option("latent dimension", minimum=1, maximum=4096)
    )
    width: int = field(
        default=64,
        metadata=option(
            "channels of the generator's last and the discriminator's first layer",
            minimum=4,
            maximum=512,
        ),
    )
    diffaugment: tuple[str, ...] = field(
        default=("color", "translation", "cutout"),
        metadata=option(
            "DiffAugment policies applied to real and fake images, comma-separated; '' or none "
            "for off",
            choices=AUGMENTATIONS + ("none",),
        ),
    )
    ema: float = field(
        default=0.999,
        metadata=option(
            "decay of the generator's exponential moving average (exported); 0 for off",
            minimum=0.0,
            maximum=0.99999,
        ),
    )
    label_smoothing: float = field(
        default=0.0,
        metadata=option(
            "one-sided label smoothing: real targets become 1 - this", minimum=0.0, maximum=0.5
        ),
    )
    learning_rate: float = field(
        default=2e-4, metadata=option("Adam learning rate (both nets)", minimum=0.0, maximum=1.0)
    )
    d_learning_rate: float | None = field(
        default=None,
        metadata=option(
            "the discriminator's Adam learning rate (default: --learning-rate)",
            minimum=0.0,
            maximum=1.0,
        ),
    )
    r1_gamma: float = field(
        default=0.1,
        metadata=option(
            "R1 gradient penalty weight on the discriminator's (augmented) real inputs "
            "(Mescheder et al. 2018); it slows the late colour drift of small-data runs "
            "(measurements: trainer/gan.py); 0 for off (the plain DCGAN step)",
            minimum=0.0,
            maximum=1000.0,
        ),
    )
    r1_interval: int = field(
        default=4,
        metadata=option(
            "apply R1 every N steps with weight gamma * N (lazy regularisation, Karras et al. "
            "2020): 1/N of its cost",
            minimum=1,
            maximum=64,
        ),
    )
    beta1: float = field(
        default=0.5, metadata=option("Adam beta1 (both nets)", minimum=0.0, maximum=0.999)
    )
    strategy: Literal["default", "mirrored", "multiworker"] = field(
        default="default",
        metadata=option(
            "tf.distribute strategy: default (one device), mirrored (all local GPUs), "
            "multiworker (machines from TF_CONFIG)"
        ),
    )
    keep_checkpoints: int = field(
        default=3, metadata=option("checkpoints kept (last N)", minimum=1)
    )
    sample_count: int = field(
        default=16, metadata=option("images in each epoch's sample grid", minimum=1, maximum=256)
    )
    quality_every: int = field(
        default=10,
        metadata=option(
            "every N epochs (and at the last) measure the EMA generator's weight-free quality "
            "(SWD, CIELAB colour, background colour) against the training images: metrics.csv, "
            "quality.json, quality.png, best snapshot; 0 for off",
            minimum=0,
        ),
    )
    quality_count: int = field(
        default=256,
        metadata=option(
            "images per set in the quality measurement (at most half the training images)",
            minimum=2,
            maximum=4096,
        ),
    )
    jit_compile: Literal["auto", "on", "off"] = field(
        default="auto",
        metadata=option(
            "compile the training step with XLA (--strategy default only); auto: on with a GPU, "
            "off on CPU only, where it measured slower than oneDNN (trainer/throughput.py); a "
            "resumed run keeps its setting"
        ),
    )
    precision: Literal["auto", "float32", "mixed_bfloat16", "mixed_float16"] = field(
        default="auto",
        metadata=option(
            "Keras mixed-precision policy of the two networks (float32 variables; images, "
            "logits and losses float32; loss scaling for mixed_float16); auto: mixed_bfloat16 "
            "where the hardware computes bfloat16 natively (AMX/AVX512-BF16 CPUs, GPUs of "
            "compute capability 8.0+), else float32; a resumed run keeps its setting"
        ),
    )
    deterministic: bool = field(
        default=True,
        metadata=option(
            "TensorFlow op determinism, and a resume pins the run's thread counts: the same "
            "command on the same machine gives bit-identical weights (trainer/determinism.py)"
        ),
    )
    cache_dir: Path | None = field(
        default=None,
        metadata=option(
            "cache of resized images shared by runs (content-addressed: file sha256 + size + "
            "crop/resize policy; default $DERMSYNTH_CACHE_DIR, else $XDG_CACHE_HOME/dermsynth, "
            "else ~/.cache/dermsynth)"
        ),
    )
    prep_workers: int = field(
        default=0,
        metadata=option(
            "processes decoding and resizing images before training; 0 = all cores", minimum=0
        ),
    )
    tensorboard: bool = field(default=True, metadata=option("write TensorBoard logs"))
    progress: bool = field(default=True, metadata=option("show progress bars"))

    @property
    def augmentations(self) -> tuple[str, ...]:
        return tuple(a for a in self.diffaugment if a != "none")

    def validate(self) -> None:
        if "none" in self.diffaugment and len(self.diffaugment) > 1:
            raise ConfigError("--diffaugment: 'none' cannot be combined with other policies")
        if self.jit_compile == "on" and self.strategy != "default":
            raise ConfigError(
                f"--jit-compile on works with --strategy default only (XLA per replica under "
                f"--strategy {self.strategy} is not supported: trainer/gan.py); use auto or off"
            )


def incompatible_keys(saved: TrainConfig, new: TrainConfig) -> list[str]:
    """Keys whose values differ and may not change on resume."""
    old, cur = to_dict(saved), to_dict(new)
    return sorted(k for k in cur if k not in RESUMABLE_KEYS and old.get(k) != cur.get(k))
