"""Export a Keras generator to ONNX (tf2onnx ``from_function``) with a parity check.

Writes the model directory that serving and the validator read: ``model.onnx`` (input
``latent`` float32 [N, latent_dim], output ``images`` float32 [N, H, W, 3] NHWC in [-1, 1])
and ``model.json`` (:class:`common.manifest.ModelManifest`). tf2onnx's ``from_keras`` is
broken on Keras 3 (onnx/tensorflow-onnx issues 2329, 2348), so the model is traced through a
``tf.function`` with an explicit input signature. The export fails unless ONNX Runtime's output
matches Keras' (inference mode) within 1e-4 on 64 random latents.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from common.config import atomic_write_bytes, atomic_write_text
from common.errors import UserError
from common.manifest import INPUT_NAME, OUTPUT_NAME, PARITY_TOLERANCE, ModelManifest, created_now

OPSET = 17
PARITY_SAMPLES = 64


class ExportError(RuntimeError):
    """The ONNX model could not be produced or does not match the Keras model."""


def use_pure_python_protobuf() -> bool:
    """Make this process use protobuf's pure-Python backend, if protobuf is not loaded yet.

    tf2onnx's optimizer writes every constant into its node's protobuf again on each of its ~24
    passes. With the default upb backend those copies stay in the node's arena until the node
    dies: exporting a 128 px generator (51 MB of weights) peaked at 3.6 GB RSS, 1.9 GB with the
    pure-Python backend (and no slower). Process-wide, so only CLIs call it. Returns whether
    the pure-Python backend is (now) in use.
    """
    if "google.protobuf" not in sys.modules:
        os.environ.setdefault("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "python")
    return os.environ.get("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION") == "python"


def _versions() -> dict[str, str]:
    import keras
    import onnx
    import onnxruntime
    import tensorflow as tf
    import tf2onnx

    from trainer import __version__

    return {
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "tf2onnx": tf2onnx.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "dermsynth": __version__,
    }


def to_onnx(generator, latent_dim: int, *, opset: int = OPSET):
    """ONNX ModelProto of ``generator`` in inference mode, input/output named per the contract."""
    import tensorflow as tf
    import tf2onnx

    logging.getLogger("tf2onnx").setLevel(logging.WARNING)

    @tf.function
    def generate(latent):
        return generator(latent, training=False)

    spec = [tf.TensorSpec([None, latent_dim], tf.float32, name=INPUT_NAME)]
    model_proto, _ = tf2onnx.convert.from_function(generate, input_signature=spec, opset=opset)
    graph = model_proto.graph
    if len(graph.input) != 1 or len(graph.output) != 1:
        raise ExportError(
            f"expected one input and one output, got {len(graph.input)} and {len(graph.output)}"
        )
    _rename(graph, graph.input[0].name, INPUT_NAME)
    _rename(graph, graph.output[0].name, OUTPUT_NAME)
    for value in (graph.input[0], graph.output[0]):  # name the dynamic batch dimension
        dim = value.type.tensor_type.shape.dim[0]
        dim.ClearField("dim_value")
        dim.dim_param = "N"
    return model_proto


def _rename(graph, old: str, new: str) -> None:
    if old == new:
        return
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new
        for i, name in enumerate(node.output):
            if name == old:
                node.output[i] = new
    for value in list(graph.input) + list(graph.output) + list(graph.value_info):
        if value.name == old:
            value.name = new


def parity(
    generator, onnx_bytes: bytes, latent_dim: int, *, samples: int = PARITY_SAMPLES, seed: int = 0
) -> float:
    """Max |Keras - ONNX Runtime| over ``samples`` standard-normal latents."""
    import onnxruntime as ort

    z = np.random.default_rng(seed).standard_normal((samples, latent_dim)).astype(np.float32)
    expected = np.asarray(generator(z, training=False))
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    got = session.run([OUTPUT_NAME], {INPUT_NAME: z})[0]
    if got.shape != expected.shape:
        raise ExportError(f"ONNX output shape {got.shape} != Keras {expected.shape}")
    return float(np.max(np.abs(got - expected)))


def export_generator(generator, out_dir: str | Path, *, manifest: dict[str, Any]) -> Path:
    """Write ``model.onnx`` and ``model.json`` into ``out_dir``; return ``out_dir``.

    ``manifest`` supplies the training facts of :class:`~common.manifest.ModelManifest`:
    ``training_data``, ``epochs``, ``seed``, ``ema`` and optionally ``checkpoint``; this
    function fills in the rest (shapes, onnx_sha256, opset, parity_max_abs_diff, versions,
    created). Raises ExportError when parity exceeds 1e-4, ManifestError when a fact is invalid
    (before anything is written). Files are replaced atomically (model.onnx first, then
    model.json, which names the ONNX file's sha256).
    """
    out_dir = Path(out_dir)
    latent_dim = int(generator.input_shape[-1])
    _, height, width, channels = generator.output_shape
    if height != width:
        raise ExportError(
            f"the generator makes {height}x{width} images; only square ones fit "
            "model.json's resolution"
        )
    proto = to_onnx(generator, latent_dim)
    onnx_bytes = proto.SerializeToString()
    diff = parity(generator, onnx_bytes, latent_dim)
    if not diff <= PARITY_TOLERANCE:
        raise ExportError(f"ONNX and Keras outputs differ by {diff:.3g} > {PARITY_TOLERANCE}")
    model = ModelManifest(
        onnx_sha256=hashlib.sha256(onnx_bytes).hexdigest(),
        latent_dim=latent_dim,
        resolution=int(height),
        channels=int(channels),
        opset=OPSET,
        parity_max_abs_diff=diff,
        versions=_versions(),
        created=created_now(),
        **manifest,
    )
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(
            f"--out {out_dir}: cannot create the model directory ({exc.strerror})"
        ) from None
    atomic_write_bytes(out_dir / model.onnx_file, onnx_bytes)
    model.write(out_dir)
    return out_dir


def copy_beside(src: Path, out_dir: Path, name: str | None = None) -> None:
    """Copy ``src`` (e.g. the run's config.json) into ``out_dir`` atomically."""
    atomic_write_text(out_dir / (name or src.name), src.read_text(encoding="utf-8"))


__all__ = [
    "ExportError",
    "copy_beside",
    "export_generator",
    "parity",
    "to_onnx",
    "use_pure_python_protobuf",
]
