"""The served model's manifest (model.json) as a dermsynth.v1.ModelInfo message."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from protos.dermsynth.v1 import generator_pb2 as pb
from serving.plan import Limits

if TYPE_CHECKING:
    from serving.model import GeneratorModel


def _int(doc: Mapping[str, Any], key: str, default: int = 0) -> int:
    value = doc.get(key, default)
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _strings(value: Any) -> dict[str, str]:
    """A JSON object as str → str, leaving out null values (unset filters)."""
    if not isinstance(value, Mapping):
        return {}
    return {str(k): str(v) for k, v in value.items() if v is not None}


def model_info(model: "GeneratorModel", limits: Limits) -> pb.ModelInfo:
    """ModelInfo of ``model``: its manifest fields, the provider it runs on, the limits."""
    m = model.manifest
    doc = m.raw
    data = doc.get("training_data") if isinstance(doc.get("training_data"), Mapping) else {}
    return pb.ModelInfo(
        format=str(doc.get("format", "")),
        format_version=_int(doc, "format_version"),
        model_sha256=m.onnx_sha256,
        resolution=m.resolution,
        channels=m.channels,
        latent_dim=m.latent_dim,
        latent_distribution=m.latent_distribution,
        training_data=pb.TrainingData(
            fingerprint=str(data.get("fingerprint") or ""),
            image_count=_int(data, "image_count"),
            layout=str(data.get("layout") or ""),
            filters=_strings(data.get("filters"))),
        epochs=_int(doc, "epochs"),
        training_seed=_int(doc, "seed"),
        ema=bool(doc.get("ema", False)),
        opset=_int(doc, "opset"),
        created=str(doc.get("created", "")),
        versions=_strings(doc.get("versions")),
        execution_provider=model.provider,
        max_count=limits.max_count,
        max_batch_size=limits.max_batch_size,
        default_batch_size=limits.default_batch_size,
    )


def model_info_dict(info: pb.ModelInfo) -> dict[str, Any]:
    """A ModelInfo as a JSON-ready dict (field names as in the .proto)."""
    from google.protobuf.json_format import MessageToDict

    return MessageToDict(info, preserving_proto_field_name=True,
                         always_print_fields_with_no_presence=True)
