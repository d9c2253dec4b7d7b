"""``python -m trainer export-xception``: Keras' Xception (Chollet 2017) feature extractor to
ONNX, for the validator.

The validator computes its features with ONNX Runtime only, so it runs where TensorFlow is not
installed (the serving image); the export runs here, on the TensorFlow side. It builds
``keras.applications.Xception(include_top=False, pooling="avg")`` (2048-d global-average-pooled
features), loads ImageNet weights from Keras' cache, a download, or a given ``.h5`` file (or keeps
random initial weights for tests), and converts it with ``tf2onnx.convert.from_function``
(``from_keras`` breaks on Keras 3). The ONNX model takes NHWC float32 images already in
Xception's own input range, ``x / 127.5 - 1``: the contract in :mod:`common.feature_model`,
which the validator reads. The export fails unless ONNX Runtime's features match Keras' within
1e-4 of the largest feature.

Weights: ``imagenet`` is Keras' cache file ``$KERAS_HOME/models/`` (default ``~/.keras``)
``xception_weights_tf_dim_ordering_tf_kernels_notop.h5``, downloaded there where a network
allows; ``PATH`` is any weights file Keras' ``Model.load_weights`` reads for this architecture:
a legacy ``.h5`` in the published file's layout (as ``keras.applications`` loads it: layer by
layer in topological order, each layer's weight count and shapes checked, names not compared)
or a Keras 3 ``.weights.h5``. A ``PATH`` whose md5 is the published file's is labelled
``imagenet``, any other ``file:<sha256>``. The sidecar also records the weights file's sha256
and whether it is the published file.

Memory: tf2onnx's graph optimizer writes every constant into its node's protobuf again on each
of its ~24 passes; with protobuf's default upb backend those copies live in the node's arena
until the node dies, so the 83 MB of Xception weights grew the process to 7 GB. The conversion
therefore runs in a child process with the pure-Python protobuf backend
(``PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python``, where replaced values are freed), which
peaks near 2 GB and is no slower.

A sidecar ``<name>.json`` (:class:`common.feature_model.Sidecar`) records the weights kind
(``imagenet``, ``random`` or ``file:<sha256>``), the input size, the ONNX file's sha256 and the
library versions; the validator refuses an ONNX file without it and labels random-weight
features in every output.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from common.config import atomic_write_bytes
from common.errors import UserError
from common.feature_model import INPUT_NAME, MIN_SIZE, OUTPUT_NAME, RANDOM, Sidecar
from common.hashing import sha256_file

NOTOP_FILE = "xception_weights_tf_dim_ordering_tf_kernels_notop.h5"
NOTOP_URL = "https://storage.googleapis.com/tensorflow/keras-applications/xception/" + NOTOP_FILE
NOTOP_MD5 = "b0042744bf5b25fce3cb969f33bebb97"  # keras.applications.xception's file_hash
PARITY_TOLERANCE = 1e-4  # max |ONNX - Keras| / max |Keras| (random weights give features ~1e-4)
PARITY_IMAGES = 4
_PURE_PYTHON_PROTOBUF = {"PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION": "python"}


def keras_cache_file() -> Path:
    """Where Keras' ``get_file`` keeps the notop weights: ``$KERAS_HOME/models`` if set, else
    ``~/.keras/models`` (``/tmp/.keras`` where home is not writable), as keras.src.backend.config
    resolves it."""
    home = os.environ.get("KERAS_HOME")
    if not home:
        base = os.path.expanduser("~")
        home = os.path.join(base if os.access(base, os.W_OK) else "/tmp", ".keras")
    return Path(os.path.expanduser(home)) / "models" / NOTOP_FILE


def _check_tf() -> None:
    for name in ("tensorflow", "tf2onnx"):
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise UserError(
                f"export-xception needs TensorFlow and tf2onnx (no {name} here); "
                "run this in the trainer image"
            )


def _check_args(weights: str, size: int) -> None:
    if size < MIN_SIZE:
        raise UserError(f"--size {size}: Xception needs at least {MIN_SIZE} px")
    if weights not in ("imagenet", RANDOM) and not Path(weights).is_file():
        raise UserError(f"--weights {weights}: no such file (use imagenet, random or PATH.h5)")


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _imagenet_weights() -> Path:
    """Keras' cached ImageNet weights, or a download where a network allows."""
    cached = keras_cache_file()
    if cached.is_file():
        return cached
    import keras

    try:
        return Path(keras.utils.get_file(NOTOP_FILE, NOTOP_URL, cache_subdir="models"))
    except Exception as exc:  # network refused, DNS, proxy...
        raise UserError(
            f"could not download Xception ImageNet weights ({exc.__class__.__name__}: "
            f"{exc}); copy {NOTOP_FILE} to {cached} or pass --weights PATH.h5"
        ) from exc


def load_xception(weights: str, size: int, seed: int = 0):
    """Keras Xception feature extractor, the weights label for the sidecar, and facts about the
    weights file (None for random weights)."""
    _check_tf()
    _check_args(weights, size)
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.applications.Xception(
        include_top=False, weights=None, pooling="avg", input_shape=(size, size, 3)
    )
    if weights == RANDOM:
        return model, RANDOM, None
    path = _imagenet_weights() if weights == "imagenet" else Path(weights)
    try:
        model.load_weights(str(path))
    except Exception as exc:
        reason = " ".join(str(exc).split())[:300]
        raise UserError(
            f"--weights {path}: not loadable as Xception notop weights "
            f"({exc.__class__.__name__}: {reason})"
        ) from None
    published = _md5(path) == NOTOP_MD5
    sha = sha256_file(path)
    kind = "imagenet" if weights == "imagenet" or published else f"file:{sha}"
    return model, kind, {"name": path.name, "sha256": sha, "keras_published_file": published}


def parity(
    model, onnx_bytes: bytes, size: int, *, images: int = PARITY_IMAGES, seed: int = 0
) -> float:
    """max |ONNX Runtime - Keras| / max |Keras| on uniform images in [-1, 1]."""
    import numpy as np
    import onnxruntime as ort

    x = np.random.default_rng(seed).uniform(-1, 1, (images, size, size, 3)).astype(np.float32)
    expected = np.asarray(model(x, training=False))
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    got = session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]
    if got.shape != expected.shape:
        raise RuntimeError(f"ONNX features have shape {got.shape}, Keras {expected.shape}")
    scale = float(np.max(np.abs(expected))) or 1.0
    return float(np.max(np.abs(got - expected)) / scale)


def convert(
    model,
    kind: str,
    size: int,
    out: Path,
    *,
    opset: int = 17,
    started: float | None = None,
    weights_file: dict | None = None,
) -> Sidecar:
    """Convert a Keras Xception feature extractor to ONNX at ``out`` (+ sidecar JSON), after a
    parity check against Keras. In this process: see the module docstring about memory."""
    import keras
    import onnx
    import onnxruntime
    import tensorflow as tf
    import tf2onnx

    started = time.perf_counter() if started is None else started
    spec = (tf.TensorSpec((None, size, size, 3), tf.float32, name=INPUT_NAME),)

    @tf.function(input_signature=spec)
    def features(images):
        return {OUTPUT_NAME: model(images, training=False)}

    proto, _ = tf2onnx.convert.from_function(features, input_signature=spec, opset=opset)
    onnx_bytes = proto.SerializeToString()
    del proto
    diff = parity(model, onnx_bytes, size)
    if not diff <= PARITY_TOLERANCE:
        raise RuntimeError(
            f"ONNX and Keras features differ by {diff:.3g} (relative) > "
            f"{PARITY_TOLERANCE}: not writing {out}"
        )
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--out {out}: cannot create its folder ({exc.strerror})") from None
    sidecar = Sidecar(
        weights=kind,
        weights_file=weights_file,
        input_size=size,
        onnx_file=out.name,
        onnx_sha256=hashlib.sha256(onnx_bytes).hexdigest(),
        opset=opset,
        parity_max_rel_diff=diff,
        versions={
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "tf2onnx": tf2onnx.__version__,
            "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__,
        },
        export_seconds=round(time.perf_counter() - started, 2),
        created=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    atomic_write_bytes(out, onnx_bytes)
    sidecar.write(out)
    return sidecar


def _export_here(weights: str, size: int, out: Path, opset: int) -> Sidecar:
    import logging

    logging.getLogger("tf2onnx").setLevel(logging.WARNING)
    started = time.perf_counter()
    model, kind, weights_file = load_xception(weights, size)
    return convert(model, kind, size, out, opset=opset, started=started, weights_file=weights_file)


def export_xception(weights: str, size: int, out: Path, *, opset: int = 17) -> Sidecar:
    """Build Xception, convert it to ONNX at ``out`` and write the sidecar JSON; returns it.

    Runs the conversion in a child process with pure-Python protobuf (see the module docstring)
    unless this process already uses it. Raises UserError for bad weights or sizes.
    """
    _check_tf()
    _check_args(weights, size)
    if os.environ.get("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION") == "python":
        return _export_here(weights, size, Path(out), opset)
    root = str(Path(__file__).resolve().parents[1])
    with tempfile.TemporaryDirectory(prefix="xception-export-") as tmp:
        result = Path(tmp) / "result.json"
        path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "trainer.xception_export",
                "--weights",
                str(weights),
                "--size",
                str(size),
                "--out",
                str(out),
                "--opset",
                str(opset),
                "--result",
                str(result),
            ],
            env={**os.environ, **_PURE_PYTHON_PROTOBUF, "PYTHONPATH": path},
            check=False,
        )
        answer = json.loads(result.read_text("utf-8")) if result.is_file() else {}
    if "sidecar" in answer:
        return Sidecar.from_dict(answer["sidecar"])
    if "error" in answer:
        raise UserError(answer["error"])
    raise RuntimeError(
        f"the Xception export process failed (exit {proc.returncode}); its output is above"
    )


def _child(argv: list[str] | None = None) -> int:
    """``python -m trainer.xception_export``: the conversion in its own process."""
    parser = argparse.ArgumentParser(prog="python -m trainer.xception_export")
    parser.add_argument("--weights", required=True)
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--opset", type=int, default=17)
    parser.add_argument("--result", required=True, help="JSON file for the result or error")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        answer = {
            "sidecar": _export_here(args.weights, args.size, Path(args.out), args.opset).to_dict()
        }
    except UserError as exc:
        answer = {"error": str(exc)}
    Path(args.result).write_text(json.dumps(answer), encoding="utf-8")
    return 0 if "sidecar" in answer else 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(_child())
