"""Reading and checking ``model.json``, the manifest the trainer writes beside ``model.onnx``.

The schema is interface 2 of the project brief (format "dermsynth-generator", version 1). Every
field the server relies on is type-checked here, so a hand-edited or truncated manifest is
refused with a message naming the field instead of failing later inside a request.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from common.errors import UserError

FORMAT = "dermsynth-generator"
FORMAT_VERSION = 1
MANIFEST_FILE = "model.json"


class ModelError(UserError):
    """The model directory is missing, corrupt, or its manifest does not match the graph."""


@dataclass(frozen=True)
class Manifest:
    """The fields of model.json that serving uses; ``raw`` keeps the whole document."""

    onnx_file: str
    onnx_sha256: str
    input_name: str
    output_name: str
    latent_dim: int
    latent_distribution: str
    resolution: int
    channels: int
    raw: Mapping[str, Any]


def _require(doc: Mapping[str, Any], key: str, kind: type | tuple[type, ...], path: Path) -> Any:
    if key not in doc:
        raise ModelError(f"{path}: field '{key}' is missing")
    value = doc[key]
    if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
        raise ModelError(f"{path}: field '{key}' should be {getattr(kind, '__name__', kind)}, "
                         f"got {value!r}")
    return value


def read_manifest(model_dir: Path) -> Manifest:
    """Parse and check ``model_dir/model.json``. Raises ModelError with a clear message."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ModelError(f"model directory {model_dir} does not exist (export one with "
                         "`python -m trainer export`)")
    path = model_dir / MANIFEST_FILE
    if not path.is_file():
        raise ModelError(f"{path} is missing: {model_dir} is not an exported dermsynth model")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ModelError(f"{path} should hold a JSON object")
    if doc.get("format") != FORMAT:
        raise ModelError(f"{path}: format is {doc.get('format')!r}, expected {FORMAT!r}")
    if doc.get("format_version") != FORMAT_VERSION:
        raise ModelError(f"{path}: format_version {doc.get('format_version')!r} is not "
                         f"supported (this server reads version {FORMAT_VERSION})")
    manifest = Manifest(
        onnx_file=_require(doc, "onnx_file", str, path),
        onnx_sha256=_require(doc, "onnx_sha256", str, path).lower(),
        input_name=_require(doc, "input_name", str, path),
        output_name=_require(doc, "output_name", str, path),
        latent_dim=_require(doc, "latent_dim", int, path),
        latent_distribution=_require(doc, "latent_distribution", str, path),
        resolution=_require(doc, "resolution", int, path),
        channels=_require(doc, "channels", int, path),
        raw=doc,
    )
    if manifest.latent_distribution != "standard_normal":
        raise ModelError(f"{path}: latent_distribution {manifest.latent_distribution!r} is not "
                         "supported (only 'standard_normal')")
    if manifest.latent_dim < 1 or manifest.resolution < 1 or manifest.channels != 3:
        raise ModelError(f"{path}: latent_dim and resolution must be positive and channels 3, "
                         f"got {manifest.latent_dim}, {manifest.resolution}, {manifest.channels}")
    if doc.get("layout", "NHWC") != "NHWC":
        raise ModelError(f"{path}: layout {doc.get('layout')!r} is not supported (only NHWC)")
    if list(doc.get("value_range", [-1.0, 1.0])) != [-1.0, 1.0]:
        raise ModelError(f"{path}: value_range {doc.get('value_range')!r} is not supported "
                         "(only [-1, 1])")
    if len(manifest.onnx_sha256) != 64 or any(c not in "0123456789abcdef"
                                              for c in manifest.onnx_sha256):
        raise ModelError(f"{path}: onnx_sha256 is not a hex sha256")
    if Path(manifest.onnx_file).name != manifest.onnx_file:
        raise ModelError(f"{path}: onnx_file must be a file name inside the model directory")
    return manifest
