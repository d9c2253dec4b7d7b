"""``model.json``, the manifest of an exported generator: one frozen, versioned dataclass.

``python -m trainer export`` (:mod:`trainer.export`) writes it beside ``model.onnx``; the
generation server (:mod:`serving.model`) and the validator (``--model-dir``) load it with
:meth:`ModelManifest.load`. Loading is strict: an unknown or missing key, a value of the wrong
JSON type or out of range, another format or another ``format_version`` raises
:class:`ManifestError` (a :class:`~common.errors.UserError`, exit 2) naming the file and the
field, so a hand-edited or truncated manifest fails before a server binds a port, not inside a
request.

Format ``dermsynth-generator`` version 1, unchanged on disk since dermsynth 0.1: manifests that
0.1 wrote load as they are. The one key 0.1 could leave out is ``checkpoint`` (added when export
learnt to choose a checkpoint; absent too when :func:`trainer.export.export_generator` is called
without a training run); it loads as ``None``. Any other missing key is refused, naming the
version and the dermsynth that wrote the file. A change to the meaning or the set of keys bumps
:data:`FORMAT_VERSION`; a server then refuses the other version with a message that names both.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.config import atomic_write_text
from common.errors import UserError
from common.hashing import sha256_file
from common.strict_json import check_keys, check_types
from common.strict_json import show as _show

FORMAT = "dermsynth-generator"
FORMAT_VERSION = 1
MANIFEST_FILE = "model.json"
ONNX_FILE = "model.onnx"
INPUT_NAME = "latent"  # float32 [N, latent_dim]
OUTPUT_NAME = "images"  # float32 [N, resolution, resolution, 3], NHWC, in [-1, 1]
PARITY_TOLERANCE = 1e-4  # max |ONNX Runtime - Keras| an export may have
CREATED_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # UTC
EXPORT_COMMAND = "python -m trainer export"
_SHA256 = re.compile(r"[0-9a-f]{64}")
_UINT32 = 2**32  # ModelInfo carries counts and sizes as uint32, the training seed as int64
_INT64 = 2**63


class ManifestError(UserError):
    """model.json is missing, unreadable, or not a valid manifest; ``field`` names the key
    (dotted for nested keys, e.g. ``training_data.image_count``) when one is at fault."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def _fail(field: str, problem: str) -> typing.NoReturn:
    raise ManifestError(f"field '{field}' {problem}", field)


def _strict(cls, data: Any, prefix: str, optional: frozenset[str] = frozenset()) -> dict:
    """``data`` as keyword arguments of dataclass ``cls``: every field except ``optional``
    present, no other key."""
    return check_keys(cls, data, ManifestError, prefix=prefix, optional=optional)


def _check_types(obj: Any, prefix: str) -> None:
    check_types(obj, ManifestError, prefix)


@dataclass(frozen=True, kw_only=True)
class TrainingData:
    """Which images the generator was trained on (``training_data`` in model.json)."""

    fingerprint: str | None  # common.hashing.fingerprint of the training images
    image_count: int
    layout: str | None  # "isic-cli" | "isic-challenge" | "folder"
    filters: dict[str, str | None]  # metadata filter -> value (None: not filtered)

    @classmethod
    def from_dict(cls, data: Any, prefix: str = "training_data.") -> TrainingData:
        return cls(**_strict(cls, data, prefix))

    def __post_init__(self) -> None:
        _check_types(self, "training_data.")
        if self.fingerprint is not None and not _SHA256.fullmatch(self.fingerprint):
            _fail("training_data.fingerprint", "should be a hex sha256 or null")
        if not 0 <= self.image_count < _UINT32:
            _fail("training_data.image_count", f"should be >= 0, got {self.image_count}")


@dataclass(frozen=True, kw_only=True)
class CheckpointChoice:
    """Which checkpoint of the run was exported, and why (``checkpoint`` in model.json).
    ``quality``/``quality_reference``: the quality row and reference of ``best``."""

    selected: str  # "last" | "best" | "epoch_XXXX"
    epoch: int
    reason: str
    quality: dict[str, Any] | None = None
    quality_reference: dict[str, Any] | None = None

    @classmethod
    def from_dict(cls, data: Any, prefix: str = "checkpoint.") -> CheckpointChoice:
        return cls(**_strict(cls, data, prefix, frozenset({"quality", "quality_reference"})))

    def __post_init__(self) -> None:
        _check_types(self, "checkpoint.")
        if not self.selected:
            _fail("checkpoint.selected", "is empty")
        if self.epoch < 0:
            _fail("checkpoint.epoch", f"should be >= 0, got {self.epoch}")

    def to_dict(self) -> dict[str, Any]:
        return {
            k: v
            for k, v in dataclasses.asdict(self).items()
            if v is not None or k in ("selected", "epoch", "reason")
        }


@dataclass(frozen=True, kw_only=True)
class ModelManifest:
    """model.json: the ONNX contract, the training facts and how the file was made.

    Construct with the fields (nested ones as dataclasses or as plain dicts); every value is
    checked on construction, so an instance is always a valid manifest.
    """

    format: str = FORMAT
    format_version: int = FORMAT_VERSION
    onnx_file: str = ONNX_FILE  # a file name inside the model directory
    onnx_sha256: str  # hex sha256 of that file (stored lower-case)
    input_name: str = INPUT_NAME
    output_name: str = OUTPUT_NAME
    latent_dim: int
    latent_distribution: str = "standard_normal"
    resolution: int  # images are resolution x resolution
    channels: int = 3
    layout: str = "NHWC"
    value_range: tuple[float, float] = (-1.0, 1.0)
    training_data: TrainingData
    epochs: int
    seed: int | None  # the training seed
    ema: bool  # whether the exported weights are the EMA generator's
    checkpoint: CheckpointChoice | None = None
    opset: int
    parity_max_abs_diff: float  # max |ONNX Runtime - Keras| measured at export
    versions: dict[str, str]  # library -> version at export (incl. "dermsynth")
    created: str  # UTC, CREATED_FORMAT

    def __post_init__(self) -> None:
        if isinstance(self.training_data, Mapping):
            object.__setattr__(self, "training_data", TrainingData.from_dict(self.training_data))
        if isinstance(self.checkpoint, Mapping):
            object.__setattr__(self, "checkpoint", CheckpointChoice.from_dict(self.checkpoint))
        if isinstance(self.value_range, list):
            object.__setattr__(self, "value_range", tuple(self.value_range))
        _check_types(self, "")
        object.__setattr__(self, "onnx_sha256", self.onnx_sha256.lower())
        _check_values(self)

    @classmethod
    def from_dict(cls, data: Any) -> ModelManifest:
        """Strict: the format and version first, then every key (``checkpoint`` may be absent,
        as in manifests of dermsynth 0.1) and no other. Raises ManifestError."""
        if not isinstance(data, Mapping):
            raise ManifestError(f"should hold a JSON object, got {type(data).__name__}")
        if data.get("format") != FORMAT:
            _fail(
                "format",
                f"is {_show(data.get('format'))}, expected {FORMAT!r}: not a "
                "dermsynth generator manifest",
            )
        version = data.get("format_version")
        if version != FORMAT_VERSION or isinstance(version, bool):
            newer = isinstance(version, int) and version > FORMAT_VERSION
            _fail(
                "format_version",
                f"is {_show(version)}: this dermsynth reads {FORMAT} "
                f"version {FORMAT_VERSION} only; "
                + (
                    "upgrade dermsynth to read this model"
                    if newer
                    else f"export the model again with `{EXPORT_COMMAND}`"
                ),
            )
        missing = [
            f.name for f in dataclasses.fields(cls) if f.name not in data and f.name != "checkpoint"
        ]
        if missing:
            versions = data.get("versions")
            writer = versions.get("dermsynth") if isinstance(versions, Mapping) else None
            _fail(
                missing[0],
                f"is missing from this {FORMAT} v{version} manifest"
                + (f" (written by dermsynth {str(writer)[:40]})" if writer else "")
                + f"; export the model again with `{EXPORT_COMMAND}`",
            )
        return cls(**_strict(cls, data, "", frozenset({"checkpoint"})))

    @classmethod
    def load(cls, path: str | Path) -> ModelManifest:
        """The manifest of model directory ``path`` (or the manifest file ``path`` itself).
        Raises ManifestError naming the file (and the field) when it cannot be used."""
        path = Path(path)
        if path.is_dir() or path.name != MANIFEST_FILE:
            model_dir, path = path, path / MANIFEST_FILE
        else:
            model_dir = path.parent
        if not model_dir.is_dir():
            raise ManifestError(
                f"model directory {model_dir} does not exist (export one with `{EXPORT_COMMAND}`)"
            )
        if not path.is_file():
            raise ManifestError(
                f"{path} is missing: {model_dir} is not an exported dermsynth model"
            )
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise ManifestError(f"{path} is not valid JSON: {exc}") from None
        try:
            return cls.from_dict(data)
        except ManifestError as exc:
            raise ManifestError(f"{path}: {exc}", exc.field) from None

    def to_dict(self) -> dict[str, Any]:
        """The JSON document (what :meth:`write` writes and :meth:`from_dict` reads)."""
        doc = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        doc["value_range"] = [float(v) for v in self.value_range]
        doc["training_data"] = dataclasses.asdict(self.training_data)
        doc["checkpoint"] = self.checkpoint.to_dict() if self.checkpoint else None
        doc["versions"] = dict(self.versions)
        return doc

    def write(self, model_dir: str | Path) -> Path:
        """Write ``model_dir/model.json`` atomically; returns its path."""
        path = Path(model_dir) / MANIFEST_FILE
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")
        return path

    def check_onnx(self, model_dir: str | Path) -> Path:
        """The ONNX file this manifest names in ``model_dir``, after checking that it exists
        and that its sha256 is :attr:`onnx_sha256`. Raises ManifestError."""
        onnx_path = Path(model_dir) / self.onnx_file
        if not onnx_path.is_file():
            raise ManifestError(
                f"{onnx_path} is missing (named by {Path(model_dir) / MANIFEST_FILE})", "onnx_file"
            )
        actual = sha256_file(onnx_path)
        if actual != self.onnx_sha256:
            raise ManifestError(
                f"{onnx_path} has sha256 {actual}, but {MANIFEST_FILE} says "
                f"{self.onnx_sha256}: the file is corrupt or was replaced",
                "onnx_sha256",
            )
        return onnx_path


def created_now() -> str:
    """The current UTC time as ``created`` is written."""
    return _dt.datetime.now(_dt.UTC).strftime(CREATED_FORMAT)


def _check_values(m: ModelManifest) -> None:
    if m.format != FORMAT:
        _fail("format", f"is {m.format!r}, expected {FORMAT!r}")
    if m.format_version != FORMAT_VERSION:
        _fail("format_version", f"is {m.format_version}, expected {FORMAT_VERSION}")
    if (
        m.onnx_file in ("", ".", "..")
        or Path(m.onnx_file).name != m.onnx_file
        or "\\" in m.onnx_file
    ):
        _fail(
            "onnx_file",
            f"should be a file name inside the model directory, got {_show(m.onnx_file)}",
        )
    if not _SHA256.fullmatch(m.onnx_sha256):
        _fail("onnx_sha256", "is not a hex sha256")
    for name in ("input_name", "output_name"):
        if not getattr(m, name):
            _fail(name, "is empty")
    for name in ("latent_dim", "resolution", "opset"):
        if not 1 <= getattr(m, name) < _UINT32:
            _fail(name, f"should be a positive integer, got {getattr(m, name)}")
    if not 0 <= m.epochs < _UINT32:
        _fail("epochs", f"should be >= 0, got {m.epochs}")
    if m.seed is not None and not -_INT64 <= m.seed < _INT64:
        _fail("seed", f"should fit in 64 bits, got {m.seed}")
    for name, only in (
        ("latent_distribution", "standard_normal"),
        ("layout", "NHWC"),
        ("channels", 3),
    ):
        if getattr(m, name) != only:
            _fail(name, f"is {_show(getattr(m, name))}: only {only!r} is supported")
    if m.value_range != (-1.0, 1.0):
        _fail("value_range", f"is {list(m.value_range)}: only [-1.0, 1.0] is supported")
    diff = m.parity_max_abs_diff
    if not (math.isfinite(diff) and 0 <= diff <= PARITY_TOLERANCE):
        _fail(
            "parity_max_abs_diff",
            f"is {diff}: an export must match Keras within {PARITY_TOLERANCE}",
        )
    try:
        _dt.datetime.strptime(m.created, CREATED_FORMAT)
    except ValueError:
        _fail("created", f"is {_show(m.created)}, expected UTC time like 2025-01-31T12:00:00Z")


__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "INPUT_NAME",
    "MANIFEST_FILE",
    "ONNX_FILE",
    "OUTPUT_NAME",
    "PARITY_TOLERANCE",
    "CheckpointChoice",
    "ManifestError",
    "ModelManifest",
    "TrainingData",
    "created_now",
]
