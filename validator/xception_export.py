"""Export Keras' Xception (Chollet 2017) feature extractor to ONNX for the validator.

The validator computes its features with ONNX Runtime only, so it runs where TensorFlow is not
installed (the serving image). This module is the one place that needs TensorFlow: it builds
``keras.applications.Xception(include_top=False, pooling="avg")`` (2048-d global-average-pooled
features), loads ImageNet weights from Keras' cache, a download, or a given ``.h5`` file (or keeps
random initial weights for tests), and converts it with ``tf2onnx.convert.from_function``
(``from_keras`` breaks on Keras 3). The ONNX model takes NHWC float32 images already in
Xception's own input range, ``x / 127.5 - 1`` (see :mod:`validator.features`).

A sidecar ``<name>.json`` records the weights kind (``imagenet``, ``random`` or
``file:<sha256>``), the input size, the ONNX file's sha256 and the library versions; the
validator refuses an ONNX file without it and labels random-weight features in every output.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path

from common.config import atomic_write_text
from common.errors import UserError
from common.hashing import sha256_file

NOTOP_FILE = "xception_weights_tf_dim_ordering_tf_kernels_notop.h5"
NOTOP_URL = ("https://storage.googleapis.com/tensorflow/keras-applications/xception/"
             + NOTOP_FILE)
INPUT_NAME = "images"
OUTPUT_NAME = "features"
FEATURE_DIM = 2048
MIN_SIZE = 71


def sidecar_path(onnx_path: Path) -> Path:
    return Path(onnx_path).with_suffix(".json")


def _import_tf():
    try:
        import tensorflow as tf  # noqa: F401
        import tf2onnx  # noqa: F401
    except ImportError as exc:
        raise UserError(f"export-xception needs TensorFlow and tf2onnx ({exc}); "
                        "run this in the trainer image") from exc
    return tf, tf2onnx


def _imagenet_weights() -> Path:
    """Keras' cached ImageNet weights, or a download where a network allows."""
    cached = Path.home() / ".keras" / "models" / NOTOP_FILE
    if cached.is_file():
        return cached
    import keras
    try:
        return Path(keras.utils.get_file(NOTOP_FILE, NOTOP_URL, cache_subdir="models"))
    except Exception as exc:  # network refused, DNS, proxy...
        raise UserError(f"could not download Xception ImageNet weights ({exc.__class__.__name__}: "
                        f"{exc}); copy {NOTOP_FILE} to {cached} or pass --weights PATH.h5") from exc


def build_xception(weights: str, size: int, seed: int = 0):
    """Keras Xception feature extractor and the weights label for the sidecar."""
    _import_tf()
    import keras
    if size < MIN_SIZE:
        raise UserError(f"--size {size}: Xception needs at least {MIN_SIZE} px")
    keras.utils.set_random_seed(seed)
    model = keras.applications.Xception(include_top=False, weights=None, pooling="avg",
                                        input_shape=(size, size, 3))
    if weights == "random":
        return model, "random"
    path = _imagenet_weights() if weights == "imagenet" else Path(weights)
    if not path.is_file():
        raise UserError(f"--weights {weights}: no such file (use imagenet, random or PATH.h5)")
    try:
        model.load_weights(str(path))
    except Exception as exc:
        raise UserError(f"--weights {path}: not loadable as Xception notop weights: {exc}") from exc
    kind = "imagenet" if weights == "imagenet" else f"file:{sha256_file(path)}"
    return model, kind


def export_xception(weights: str, size: int, out: Path, *, opset: int = 17) -> dict:
    """Build Xception, convert it to ONNX at ``out`` and write the sidecar JSON; returns it."""
    started = time.perf_counter()
    model, kind = build_xception(weights, size)
    return convert(model, kind, size, out, opset=opset, started=started)


def convert(model, kind: str, size: int, out: Path, *, opset: int = 17,
            started: float | None = None) -> dict:
    """Convert a Keras Xception feature extractor to ONNX at ``out`` (+ sidecar JSON)."""
    tf, tf2onnx = _import_tf()
    import keras
    import onnx
    import onnxruntime
    started = time.perf_counter() if started is None else started
    spec = (tf.TensorSpec((None, size, size, 3), tf.float32, name=INPUT_NAME),)

    @tf.function(input_signature=spec)
    def features(images):
        return {OUTPUT_NAME: model(images, training=False)}

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tf2onnx.convert.from_function(features, input_signature=spec, opset=opset,
                                  output_path=str(tmp))
    tmp.replace(out)
    meta = {
        "format": "dermsynth-xception-features", "format_version": 1,
        "weights": kind, "input_size": size, "input_name": INPUT_NAME,
        "output_name": OUTPUT_NAME, "feature_dim": FEATURE_DIM, "layout": "NHWC",
        "preprocessing": "x/127.5-1 (keras.applications.xception.preprocess_input)",
        "onnx_file": out.name, "onnx_sha256": sha256_file(out), "opset": opset,
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__,
                     "tf2onnx": tf2onnx.__version__, "onnx": onnx.__version__,
                     "onnxruntime": onnxruntime.__version__},
        "export_seconds": round(time.perf_counter() - started, 2),
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    atomic_write_text(sidecar_path(out), json.dumps(meta, indent=2) + "\n")
    return meta
