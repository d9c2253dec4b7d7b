"""The served model's manifest (model.json) as a dermsynth.v1.ModelInfo message."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from protos.dermsynth.v1 import generator_pb2 as pb
from serving.plan import Limits

if TYPE_CHECKING:
    from serving.model import GeneratorModel


def model_info(model: GeneratorModel, limits: Limits) -> pb.ModelInfo:
    """ModelInfo of ``model``: its manifest fields, the provider it runs on, the limits.
    Unset values (a null seed, fingerprint, layout or filter) are left at the proto default."""
    m = model.manifest
    data = m.training_data
    return pb.ModelInfo(
        format=m.format,
        format_version=m.format_version,
        model_sha256=m.onnx_sha256,
        resolution=m.resolution,
        channels=m.channels,
        latent_dim=m.latent_dim,
        latent_distribution=m.latent_distribution,
        training_data=pb.TrainingData(
            fingerprint=data.fingerprint or "",
            image_count=data.image_count,
            layout=data.layout or "",
            filters={k: v for k, v in data.filters.items() if v is not None},
        ),
        epochs=m.epochs,
        training_seed=m.seed or 0,
        ema=m.ema,
        opset=m.opset,
        created=m.created,
        versions=m.versions,
        execution_provider=model.provider,
        max_count=limits.max_count,
        max_batch_size=limits.max_batch_size,
        default_batch_size=limits.default_batch_size,
    )


def model_info_dict(info: pb.ModelInfo) -> dict[str, Any]:
    """A ModelInfo as a JSON-ready dict (field names as in the .proto)."""
    from google.protobuf.json_format import MessageToDict

    return MessageToDict(
        info, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
