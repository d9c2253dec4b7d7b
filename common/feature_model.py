"""The Xception feature model's contract: what ``python -m trainer export-xception``
(:mod:`trainer.xception_export`, TensorFlow) writes and :mod:`validator.features` (ONNX Runtime)
reads. Both sides import this module; it imports neither TensorFlow nor ONNX.

The ONNX file takes float32 NHWC images ``[N, size, size, 3]`` named :data:`INPUT_NAME`, already
in Xception's own input range ``x / 127.5 - 1`` (``keras.applications.xception.preprocess_input``)
and returns 2048-d global-average-pooled features named :data:`OUTPUT_NAME`. Beside it,
``<name>.json`` (:class:`Sidecar`, written by the exporter, loaded strictly by the validator)
records the weights kind, the input size, the ONNX file's sha256 and how the file was made.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.config import atomic_write_text
from common.errors import UserError
from common.strict_json import check_keys, check_types

FORMAT = "dermsynth-xception-features"
FORMAT_VERSION = 1
INPUT_NAME = "images"
OUTPUT_NAME = "features"
FEATURE_DIM = 2048
MIN_SIZE = 71  # the smallest input side keras.applications.Xception accepts
LAYOUT = "NHWC"
PREPROCESSING = "x/127.5-1 (keras.applications.xception.preprocess_input)"
RANDOM = "random"  # the weights kind of an untrained Xception (tests and demos only)
EXPORT_COMMAND = "python -m trainer export-xception"
_SHA256 = re.compile(r"[0-9a-f]{64}")
# v1 sidecars written before the exporter recorded these lack them (read as None)
_ADDED_IN_V1 = ("weights_file", "parity_max_rel_diff")


class SidecarError(ValueError):
    """A sidecar that is not a valid v1 sidecar; ``field`` names the key at fault, if one is."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def sidecar_path(onnx_path: str | Path) -> Path:
    """``models/xception.onnx`` -> ``models/xception.json``."""
    return Path(onnx_path).with_suffix(".json")


@dataclass(frozen=True, kw_only=True)
class Sidecar:
    """``<name>.json`` beside an exported feature model (format ``dermsynth-xception-features``
    v1). Fields in the order they are written."""

    format: str = FORMAT
    format_version: int = FORMAT_VERSION
    weights: str  # "imagenet" | "random" | "file:<sha256 of the weights file>"
    weights_file: dict | None = None  # {"name", "sha256", "keras_published_file"} of a file
    input_size: int
    input_name: str = INPUT_NAME
    output_name: str = OUTPUT_NAME
    feature_dim: int = FEATURE_DIM
    layout: str = LAYOUT
    preprocessing: str = PREPROCESSING
    onnx_file: str = ""
    onnx_sha256: str
    opset: int = 17
    parity_max_rel_diff: float | None = None  # max |ONNX - Keras| / max |Keras| at export
    versions: dict = field(default_factory=dict)  # library -> version at export
    export_seconds: float | None = None
    created: str = ""  # UTC, ISO 8601

    def __post_init__(self) -> None:
        check_types(self, SidecarError)
        if (self.format, self.format_version) != (FORMAT, FORMAT_VERSION):
            raise SidecarError(
                f"format {self.format!r} v{self.format_version} is not {FORMAT!r} v{FORMAT_VERSION}"
            )
        if self.weights not in ("imagenet", RANDOM) and not (
            self.weights.startswith("file:") and _SHA256.fullmatch(self.weights[5:])
        ):
            raise SidecarError(f"weights {self.weights!r} is not imagenet, random or file:<sha256>")
        if self.input_size < MIN_SIZE:
            raise SidecarError(
                f"input_size {self.input_size} is below Xception's minimum {MIN_SIZE}"
            )
        if self.feature_dim < 1:
            raise SidecarError(f"feature_dim {self.feature_dim} is not positive")
        if self.layout != LAYOUT:
            raise SidecarError(f"layout {self.layout!r} is not {LAYOUT}")
        if not _SHA256.fullmatch(self.onnx_sha256):
            raise SidecarError(f"onnx_sha256 {self.onnx_sha256!r} is not a sha256 hex digest")

    @property
    def random_weights(self) -> bool:
        return self.weights == RANDOM

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def write(self, onnx_path: str | Path) -> Path:
        """Write this sidecar beside ``onnx_path`` (atomically); returns its path."""
        path = sidecar_path(onnx_path)
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def from_dict(cls, data: Any) -> Sidecar:
        """Strict: every field (but those older v1 files lack) and no other key, each of its
        JSON type; raises SidecarError (a ValueError) naming the field."""
        return cls(**check_keys(cls, data, SidecarError, optional=_ADDED_IN_V1))

    @classmethod
    def read(cls, onnx_path: str | Path) -> Sidecar:
        """The sidecar of the feature model ``onnx_path``; UserError if absent or invalid."""
        path = sidecar_path(onnx_path)
        if not path.is_file():
            raise UserError(
                f"feature model {onnx_path} has no sidecar {path.name} (weights kind "
                f"unknown); export it with `{EXPORT_COMMAND}`"
            )
        try:
            return cls.from_dict(json.loads(path.read_text("utf-8")))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise UserError(
                f"{path}: not a valid feature model sidecar ({exc}); re-export "
                f"with `{EXPORT_COMMAND}`"
            ) from None
