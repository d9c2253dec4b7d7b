"""Command line: ``python -m trainer train|export|export-xception``. Exit codes are decided here
only."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from common import config as cfg

TRAIN_EXAMPLES = """\
examples:
  # a quick demo run on the bundled images (benign nevi only), 32 px
  python -m trainer train --data data/isic-demo --run runs/demo --resolution 32 --epochs 5 \\
      --benign-malignant benign
  # the same command again resumes from the last complete checkpoint; raise --epochs to go on
  python -m trainer train --data data/isic-demo --run runs/demo --resolution 32 --epochs 10 \\
      --benign-malignant benign
  # an ISIC 2017 challenge folder, 64 px, no augmentation, two GPUs
  python -m trainer train --data /data/ISIC-2017 --run /runs/isic17 --diffaugment none \\
      --strategy mirrored --batch-size 128
  # the step as dermsynth 0.1 ran it (default: auto, bfloat16 where native, XLA with a GPU)
  python -m trainer train --data data/isic-demo --run runs/f32 --precision float32 --jit-compile off
  # options also come from the environment: DERMSYNTH_TRAIN_EPOCHS=50 python -m trainer train ...

outputs in RUN: config.json, data.json, run.log (incl. skipped files), metrics.csv,
samples/epoch_XXXX.png, tensorboard/, quality.json + quality.png (every --quality-every
epochs), checkpoints/epoch_XXXX (last --keep-checkpoints, plus the best snapshot)
"""

EXPORT_EXAMPLES = """\
examples:
  python -m trainer export --run runs/demo --out models/demo
  # the snapshot with the best weight-free quality score (RUN/quality.json, RUN/quality.png)
  python -m trainer export --run runs/demo --out models/demo-best --checkpoint best

writes MODEL/model.onnx (input latent [N, latent_dim], output images [N, H, W, 3] in [-1, 1]),
MODEL/model.json (manifest: fingerprint, epochs, versions, parity) and MODEL/config.json
"""

XCEPTION_EXAMPLES = """\
examples:
  # ImageNet weights from Keras' cache ($KERAS_HOME/models, default ~/.keras), else a download
  python -m trainer export-xception --weights imagenet --size 299 --out models/xception.onnx
  # a weights file you have (Keras' published notop .h5, or a Keras 3 .weights.h5)
  python -m trainer export-xception --weights xception_notop.h5 --out models/xception.onnx
  # random weights: tests and demos only (the validator labels such features as meaningless)
  python -m trainer export-xception --weights random --size 71 --out out/xception-random.onnx

writes OUT (input images [N, SIZE, SIZE, 3] in [-1, 1], output features [N, 2048]) and the
sidecar beside it, OUT with the suffix .json (weights kind, size, sha256, versions), without
which the validator refuses OUT
"""


def build_parser() -> argparse.ArgumentParser:
    from trainer.config import TrainConfig

    parser = argparse.ArgumentParser(
        prog="python -m trainer",
        description="Train a DCGAN on ISIC dermoscopic images and export its generator to ONNX.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="run `python -m trainer COMMAND --help` for each command's options and examples",
    )
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="{train,export,export-xception}"
    )
    train = sub.add_parser(
        "train",
        help="train (or resume) a run",
        description="Train a DCGAN; re-running the same command resumes.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=TRAIN_EXAMPLES,
    )
    cfg.add_arguments(train, TrainConfig)
    export = sub.add_parser(
        "export",
        help="export a run's generator to ONNX",
        description="Export the (EMA) generator of one of a run's checkpoints (default: the last).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EXPORT_EXAMPLES,
    )
    export.add_argument("--run", required=True, help="run directory written by `train`")
    export.add_argument("--out", required=True, help="model directory to write")
    export.add_argument(
        "--checkpoint",
        default="last",
        metavar="last|best|epoch_XXXX",
        help="which checkpoint: the last (default), the best snapshot by the "
        "run's quality score (RUN/quality.json), or a kept epoch",
    )
    xception = sub.add_parser(
        "export-xception",
        help="export the validator's Xception feature model to ONNX",
        description="Export keras.applications.Xception "
        "(no top, average pooling, 2048-d) to ONNX with a sidecar JSON:\nthe "
        "validator's --features-model.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=XCEPTION_EXAMPLES,
    )
    xception.add_argument(
        "--weights",
        default="imagenet",
        metavar="imagenet|random|PATH",
        help="imagenet (Keras cache or download; default), random (tests only) or a weights file",
    )
    xception.add_argument("--size", type=int, default=299, help="input side in px (>= 71)")
    xception.add_argument("--out", type=Path, required=True, help="ONNX file to write")
    xception.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    if args.command == "train":
        return _train(args)
    if args.command == "export-xception":
        return _export_xception(args)
    return _export(args)


def _train(args: argparse.Namespace) -> int:
    from trainer.config import ENV_PREFIX, TrainConfig
    from trainer.train import train

    namespace = argparse.Namespace(**{k: v for k, v in vars(args).items() if k != "command"})
    config = cfg.resolve(TrainConfig, namespace, prefix=ENV_PREFIX)
    result = train(config)
    if result.start_epoch >= result.epochs:
        print(
            f"{result.run}: already trained for {result.epochs} epochs; raise --epochs to continue"
        )
    else:
        print(
            f"{result.run}: epochs {result.start_epoch + 1}..{result.epochs} done on "
            f"{result.image_count} images ({result.skipped} skipped, fingerprint "
            f"{result.fingerprint[:12]}); last: {result.last_metrics}"
        )
    return 0


def _export(args: argparse.Namespace) -> int:
    import json

    from trainer.export import use_pure_python_protobuf

    use_pure_python_protobuf()  # before TensorFlow loads protobuf: 3.6 -> 1.9 GB at 128 px
    from trainer.export_run import export_run

    out = export_run(args.run, args.out, args.checkpoint)
    manifest = json.loads((out / "model.json").read_text("utf-8"))
    print(
        f"{out}: model.onnx ({manifest['resolution']} px, latent {manifest['latent_dim']}, "
        f"epoch {manifest['epochs']} ({manifest['checkpoint']['selected']}), ema "
        f"{manifest['ema']}, parity max |diff| "
        f"{manifest['parity_max_abs_diff']:.2g})"
    )
    return 0


def _export_xception(args: argparse.Namespace) -> int:
    from trainer.xception_export import export_xception

    sidecar = export_xception(args.weights, args.size, args.out, opset=args.opset)
    print(
        f"wrote {args.out} (weights={sidecar.weights}, {sidecar.input_size} px, sha256 "
        f"{sidecar.onnx_sha256[:12]})"
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
