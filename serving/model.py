"""Loading the exported generator into ONNX Runtime, checked against its manifest.

:func:`load_model` refuses (with :class:`ModelError`) a missing or corrupt model directory or
manifest (:meth:`common.manifest.ModelManifest.load`), a model.onnx whose sha256 differs from
the manifest's, and a graph whose input/output names, element types or shapes disagree with
the manifest (latent_dim, resolution, channels).
It then runs one warm-up call of the fixed inference shape, which both checks the concrete
output shape and moves ONNX Runtime's first-call cost out of the first request.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from common.errors import UserError
from common.manifest import ManifestError, ModelManifest

log = logging.getLogger(__name__)

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


class ModelError(UserError):
    """The model directory is missing, corrupt, or its manifest does not match the graph."""


def choose_providers(provider: str, available: list[str] | None = None) -> list[str]:
    """ONNX Runtime providers for ``provider`` ("auto" | "cpu" | "cuda").

    auto: CUDA when this onnxruntime build has it, else CPU with a log line saying why; cuda
    (asked for explicitly): CUDA or a ModelError, never a silent CPU run (see also
    :func:`check_session_providers`, for a build with CUDA but no usable GPU)."""
    available = ort.get_available_providers() if available is None else available
    if provider == "cpu":
        return [CPU]
    if provider == "cuda":
        if CUDA not in available:
            raise ModelError(
                f"--provider cuda: {CUDA} is not available in this onnxruntime "
                f"build (available: {', '.join(available)}); install onnxruntime-gpu "
                f"(and CUDA/cuDNN) or use --provider auto|cpu"
            )
        return [CUDA, CPU]
    if CUDA in available:
        return [CUDA, CPU]
    log.info(
        "provider auto: %s is not in this onnxruntime build (available: %s): running on CPU",
        CUDA,
        ", ".join(available),
    )
    return [CPU]


def check_session_providers(provider: str, session_providers: list[str]) -> str:
    """The provider a session runs on, checked against the request: ONNX Runtime falls back to
    CPU on its own when CUDA is in the build but cannot start (no GPU, no driver, missing
    CUDA/cuDNN libraries); with ``provider`` cuda that is a ModelError, with auto a log line."""
    first = session_providers[0] if session_providers else CPU
    if provider == "cpu" or first == CUDA:
        return first
    if provider == "cuda":
        raise ModelError(
            f"--provider cuda: ONNX Runtime could not start {CUDA} (no GPU, driver or CUDA/"
            f"cuDNN libraries?) and would run on {first}; fix the GPU setup or use "
            f"--provider auto|cpu"
        )
    if CUDA in ort.get_available_providers():
        log.warning(
            "provider auto: %s is in this onnxruntime build but could not start (no GPU, "
            "driver or CUDA/cuDNN libraries?): running on %s",
            CUDA,
            first,
        )
    return first


@dataclass
class GeneratorModel:
    """An ONNX Runtime session of a dermsynth generator, always run on [inference_batch, L]."""

    model_dir: Path
    manifest: ModelManifest
    session: ort.InferenceSession
    inference_batch: int

    @property
    def provider(self) -> str:
        return self.session.get_providers()[0]

    @property
    def latent_dim(self) -> int:
        return self.manifest.latent_dim

    @property
    def image_shape(self) -> tuple[int, int, int]:
        m = self.manifest
        return (m.resolution, m.resolution, m.channels)

    def run(self, latents: np.ndarray) -> np.ndarray:
        """Images float32 [inference_batch, H, W, C] in [-1, 1] for latents of the fixed shape
        [inference_batch, latent_dim]. The fixed shape is what keeps outputs bit-identical
        whatever batch a request asks for (kernels may be chosen per shape)."""
        if latents.shape != (self.inference_batch, self.latent_dim):
            raise ValueError(
                f"latents must be {(self.inference_batch, self.latent_dim)}, got {latents.shape}"
            )
        return self.session.run([self.manifest.output_name], {self.manifest.input_name: latents})[0]


def _dims(value_info) -> list:
    return list(value_info.shape)


def _check_graph(session: ort.InferenceSession, manifest: ModelManifest, onnx_path: Path) -> None:
    inputs = {i.name: i for i in session.get_inputs()}
    outputs = {o.name: o for o in session.get_outputs()}
    if len(inputs) != 1 or manifest.input_name not in inputs:
        raise ModelError(
            f"{onnx_path}: the graph's inputs {sorted(inputs)} do not match the "
            f"manifest's input_name {manifest.input_name!r}"
        )
    if manifest.output_name not in outputs:
        raise ModelError(
            f"{onnx_path}: the graph's outputs {sorted(outputs)} do not include the "
            f"manifest's output_name {manifest.output_name!r}"
        )
    inp, out = inputs[manifest.input_name], outputs[manifest.output_name]
    for what, info in (("input", inp), ("output", out)):
        if info.type != "tensor(float)":
            raise ModelError(
                f"{onnx_path}: {what} {info.name!r} is {info.type}, expected tensor(float)"
            )
    in_dims = _dims(inp)
    if len(in_dims) != 2 or (isinstance(in_dims[1], int) and in_dims[1] != manifest.latent_dim):
        raise ModelError(
            f"{onnx_path}: input {inp.name!r} has shape {in_dims}, but the manifest "
            f"says latent_dim {manifest.latent_dim} ([N, {manifest.latent_dim}])"
        )
    want = [manifest.resolution, manifest.resolution, manifest.channels]
    out_dims = _dims(out)
    if len(out_dims) != 4 or any(isinstance(d, int) and d != w for d, w in zip(out_dims[1:], want)):
        raise ModelError(
            f"{onnx_path}: output {out.name!r} has shape {out_dims}, but the "
            f"manifest says [N, {', '.join(map(str, want))}] (resolution "
            f"{manifest.resolution}, NHWC)"
        )


def load_model(
    model_dir: Path,
    *,
    provider: str = "auto",
    threads: int = 0,
    inter_threads: int = 1,
    inference_batch: int = 16,
    spinning: bool = False,
) -> GeneratorModel:
    """Load and check ``model_dir`` (model.json + model.onnx); raise ModelError if unusable.

    ``spinning``: whether ONNX Runtime's intra-op threads spin-wait for work between runs.
    """
    model_dir = Path(model_dir)
    try:
        manifest = ModelManifest.load(model_dir)
        onnx_path = manifest.check_onnx(model_dir)
    except ManifestError as exc:
        raise ModelError(str(exc)) from None
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = inter_threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    try:
        session = ort.InferenceSession(
            str(onnx_path), options, providers=choose_providers(provider)
        )
    except ModelError:
        raise
    except Exception as exc:  # onnxruntime raises its own exception types for bad graphs
        raise ModelError(f"{onnx_path} cannot be loaded by ONNX Runtime: {exc}") from None
    check_session_providers(provider, session.get_providers())
    _check_graph(session, manifest, onnx_path)
    model = GeneratorModel(model_dir, manifest, session, inference_batch)
    try:
        out = model.run(np.zeros((inference_batch, manifest.latent_dim), np.float32))
    except Exception as exc:
        raise ModelError(f"{onnx_path}: a warm-up run failed: {exc}") from None
    if out.shape != (inference_batch, *model.image_shape) or out.dtype != np.float32:
        raise ModelError(
            f"{onnx_path}: the model returned {out.dtype} {out.shape}, expected "
            f"float32 {(inference_batch, *model.image_shape)}"
        )
    log.info(
        "loaded %s (sha256 %s, %d px, latent %d) on %s",
        onnx_path,
        manifest.onnx_sha256[:12],
        manifest.resolution,
        manifest.latent_dim,
        model.provider,
    )
    return model


class ModelHolder:
    """The servicer's reference to the loaded model (swapped under a lock); None until one is
    loaded (UNAVAILABLE)."""

    def __init__(self, model: GeneratorModel | None = None) -> None:
        self._lock = threading.Lock()
        self._model = model

    def get(self) -> GeneratorModel | None:
        with self._lock:
            return self._model

    def set(self, model: GeneratorModel | None) -> None:
        with self._lock:
            self._model = model
