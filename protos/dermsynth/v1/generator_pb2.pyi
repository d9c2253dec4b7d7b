from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Encoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENCODING_UNSPECIFIED: _ClassVar[Encoding]
    ENCODING_PNG: _ClassVar[Encoding]
    ENCODING_RAW_RGB8: _ClassVar[Encoding]
ENCODING_UNSPECIFIED: Encoding
ENCODING_PNG: Encoding
ENCODING_RAW_RGB8: Encoding

class GenerateRequest(_message.Message):
    __slots__ = ("seed", "count", "start_index", "batch_size", "encoding")
    SEED_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    START_INDEX_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    seed: int
    count: int
    start_index: int
    batch_size: int
    encoding: Encoding
    def __init__(self, seed: _Optional[int] = ..., count: _Optional[int] = ..., start_index: _Optional[int] = ..., batch_size: _Optional[int] = ..., encoding: _Optional[_Union[Encoding, str]] = ...) -> None: ...

class Image(_message.Message):
    __slots__ = ("index", "seed", "data")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    index: int
    seed: int
    data: bytes
    def __init__(self, index: _Optional[int] = ..., seed: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class ImageBatch(_message.Message):
    __slots__ = ("images", "encoding", "height", "width", "channels")
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    images: _containers.RepeatedCompositeFieldContainer[Image]
    encoding: Encoding
    height: int
    width: int
    channels: int
    def __init__(self, images: _Optional[_Iterable[_Union[Image, _Mapping]]] = ..., encoding: _Optional[_Union[Encoding, str]] = ..., height: _Optional[int] = ..., width: _Optional[int] = ..., channels: _Optional[int] = ...) -> None: ...

class GetModelInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TrainingData(_message.Message):
    __slots__ = ("fingerprint", "image_count", "layout", "filters")
    class FiltersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    IMAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    LAYOUT_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    fingerprint: str
    image_count: int
    layout: str
    filters: _containers.ScalarMap[str, str]
    def __init__(self, fingerprint: _Optional[str] = ..., image_count: _Optional[int] = ..., layout: _Optional[str] = ..., filters: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("format", "format_version", "model_sha256", "resolution", "channels", "latent_dim", "latent_distribution", "training_data", "epochs", "training_seed", "ema", "opset", "created", "versions", "execution_provider", "max_count", "max_batch_size", "default_batch_size")
    class VersionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    FORMAT_VERSION_FIELD_NUMBER: _ClassVar[int]
    MODEL_SHA256_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    LATENT_DIM_FIELD_NUMBER: _ClassVar[int]
    LATENT_DISTRIBUTION_FIELD_NUMBER: _ClassVar[int]
    TRAINING_DATA_FIELD_NUMBER: _ClassVar[int]
    EPOCHS_FIELD_NUMBER: _ClassVar[int]
    TRAINING_SEED_FIELD_NUMBER: _ClassVar[int]
    EMA_FIELD_NUMBER: _ClassVar[int]
    OPSET_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MAX_COUNT_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    format: str
    format_version: int
    model_sha256: str
    resolution: int
    channels: int
    latent_dim: int
    latent_distribution: str
    training_data: TrainingData
    epochs: int
    training_seed: int
    ema: bool
    opset: int
    created: str
    versions: _containers.ScalarMap[str, str]
    execution_provider: str
    max_count: int
    max_batch_size: int
    default_batch_size: int
    def __init__(self, format: _Optional[str] = ..., format_version: _Optional[int] = ..., model_sha256: _Optional[str] = ..., resolution: _Optional[int] = ..., channels: _Optional[int] = ..., latent_dim: _Optional[int] = ..., latent_distribution: _Optional[str] = ..., training_data: _Optional[_Union[TrainingData, _Mapping]] = ..., epochs: _Optional[int] = ..., training_seed: _Optional[int] = ..., ema: _Optional[bool] = ..., opset: _Optional[int] = ..., created: _Optional[str] = ..., versions: _Optional[_Mapping[str, str]] = ..., execution_provider: _Optional[str] = ..., max_count: _Optional[int] = ..., max_batch_size: _Optional[int] = ..., default_batch_size: _Optional[int] = ...) -> None: ...
