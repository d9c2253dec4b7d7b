from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GeneratorSource(_message.Message):
    __slots__ = ("target", "seed", "count")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    target: str
    seed: int
    count: int
    def __init__(self, target: _Optional[str] = ..., seed: _Optional[int] = ..., count: _Optional[int] = ...) -> None: ...

class ValidateOptions(_message.Message):
    __slots__ = ("checks", "thresholds_file", "allow_random_weights", "benign_malignant", "diagnosis", "model_dir", "skip_tsne", "seed")
    CHECKS_FIELD_NUMBER: _ClassVar[int]
    THRESHOLDS_FILE_FIELD_NUMBER: _ClassVar[int]
    ALLOW_RANDOM_WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    BENIGN_MALIGNANT_FIELD_NUMBER: _ClassVar[int]
    DIAGNOSIS_FIELD_NUMBER: _ClassVar[int]
    MODEL_DIR_FIELD_NUMBER: _ClassVar[int]
    SKIP_TSNE_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    checks: _containers.RepeatedScalarFieldContainer[str]
    thresholds_file: str
    allow_random_weights: bool
    benign_malignant: str
    diagnosis: str
    model_dir: str
    skip_tsne: bool
    seed: int
    def __init__(self, checks: _Optional[_Iterable[str]] = ..., thresholds_file: _Optional[str] = ..., allow_random_weights: _Optional[bool] = ..., benign_malignant: _Optional[str] = ..., diagnosis: _Optional[str] = ..., model_dir: _Optional[str] = ..., skip_tsne: _Optional[bool] = ..., seed: _Optional[int] = ...) -> None: ...

class ValidateRequest(_message.Message):
    __slots__ = ("real_dir", "holdout_dir", "synthetic_dir", "generator", "out_dir", "options")
    REAL_DIR_FIELD_NUMBER: _ClassVar[int]
    HOLDOUT_DIR_FIELD_NUMBER: _ClassVar[int]
    SYNTHETIC_DIR_FIELD_NUMBER: _ClassVar[int]
    GENERATOR_FIELD_NUMBER: _ClassVar[int]
    OUT_DIR_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    real_dir: str
    holdout_dir: str
    synthetic_dir: str
    generator: GeneratorSource
    out_dir: str
    options: ValidateOptions
    def __init__(self, real_dir: _Optional[str] = ..., holdout_dir: _Optional[str] = ..., synthetic_dir: _Optional[str] = ..., generator: _Optional[_Union[GeneratorSource, _Mapping]] = ..., out_dir: _Optional[str] = ..., options: _Optional[_Union[ValidateOptions, _Mapping]] = ...) -> None: ...

class Progress(_message.Message):
    __slots__ = ("stage", "done", "total", "message")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    stage: str
    done: int
    total: int
    message: str
    def __init__(self, stage: _Optional[str] = ..., done: _Optional[int] = ..., total: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class CheckSummary(_message.Message):
    __slots__ = ("name", "kind", "passed", "applicable", "error", "note", "flagged", "seconds", "numbers", "status")
    class NumbersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PASSED_FIELD_NUMBER: _ClassVar[int]
    APPLICABLE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    FLAGGED_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    NUMBERS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: str
    passed: bool
    applicable: bool
    error: str
    note: str
    flagged: int
    seconds: float
    numbers: _containers.ScalarMap[str, float]
    status: str
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ..., passed: _Optional[bool] = ..., applicable: _Optional[bool] = ..., error: _Optional[str] = ..., note: _Optional[str] = ..., flagged: _Optional[int] = ..., seconds: _Optional[float] = ..., numbers: _Optional[_Mapping[str, float]] = ..., status: _Optional[str] = ...) -> None: ...

class Summary(_message.Message):
    __slots__ = ("verdict", "reasons", "warnings", "report_json", "report_html", "checks", "random_weights", "feature_model", "gate_policy")
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    REPORT_JSON_FIELD_NUMBER: _ClassVar[int]
    REPORT_HTML_FIELD_NUMBER: _ClassVar[int]
    CHECKS_FIELD_NUMBER: _ClassVar[int]
    RANDOM_WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    FEATURE_MODEL_FIELD_NUMBER: _ClassVar[int]
    GATE_POLICY_FIELD_NUMBER: _ClassVar[int]
    verdict: str
    reasons: _containers.RepeatedScalarFieldContainer[str]
    warnings: _containers.RepeatedScalarFieldContainer[str]
    report_json: str
    report_html: str
    checks: _containers.RepeatedCompositeFieldContainer[CheckSummary]
    random_weights: bool
    feature_model: str
    gate_policy: str
    def __init__(self, verdict: _Optional[str] = ..., reasons: _Optional[_Iterable[str]] = ..., warnings: _Optional[_Iterable[str]] = ..., report_json: _Optional[str] = ..., report_html: _Optional[str] = ..., checks: _Optional[_Iterable[_Union[CheckSummary, _Mapping]]] = ..., random_weights: _Optional[bool] = ..., feature_model: _Optional[str] = ..., gate_policy: _Optional[str] = ...) -> None: ...

class ValidateEvent(_message.Message):
    __slots__ = ("progress", "summary")
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    progress: Progress
    summary: Summary
    def __init__(self, progress: _Optional[_Union[Progress, _Mapping]] = ..., summary: _Optional[_Union[Summary, _Mapping]] = ...) -> None: ...
