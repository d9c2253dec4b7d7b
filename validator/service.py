"""The ``dermsynth.v1.Validator`` servicer: maps a ValidateRequest to a :class:`ValidateConfig`,
runs :func:`validator.pipeline.run_validation` in a worker thread and streams its progress, then
one Summary. Thin by design (grpc's route_guide style): the work lives in the pipeline.

Paths in requests are server-side paths. Bad fields -> INVALID_ARGUMENT naming the field; bad
input data found while running (missing folder, no usable image) -> INVALID_ARGUMENT with the
validator's message; no feature model loaded yet -> UNAVAILABLE. A cancelled call stops its
validation at the next progress event.
"""

from __future__ import annotations

import logging
import queue
import threading
from pathlib import Path

import grpc

from common.errors import UserError
from protos.dermsynth.v1 import validator_pb2 as pb
from protos.dermsynth.v1 import validator_pb2_grpc as pb_grpc
from validator import checks as registry
from validator.config import ValidateConfig
from validator.features import FeatureModel

log = logging.getLogger(__name__)
_DONE = object()


class _Cancelled(Exception):
    """The client went away (cancel, deadline, shutdown): stop the validation it asked for."""


class FieldError(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field


def request_to_config(base: ValidateConfig, request: pb.ValidateRequest) -> ValidateConfig:
    """The server's config with the request's fields; FieldError names a bad field."""
    if not request.real_dir:
        raise FieldError("real_dir", "required (a folder on the server)")
    if not request.out_dir:
        raise FieldError("out_dir", "required (a report folder on the server)")
    changes: dict = {"real": Path(request.real_dir), "out": Path(request.out_dir),
                     "holdout": Path(request.holdout_dir) if request.holdout_dir else None,
                     "synthetic": None, "from_server": None, "count": 0, "progress": False}
    which = request.WhichOneof("synthetic")
    if which is None:
        raise FieldError("synthetic", "set synthetic_dir or generator")
    if which == "synthetic_dir":
        if not request.synthetic_dir:
            raise FieldError("synthetic_dir", "empty")
        changes["synthetic"] = Path(request.synthetic_dir)
    else:
        gen = request.generator
        if not gen.target:
            raise FieldError("generator.target", "required (HOST:PORT)")
        if gen.count < 1:
            raise FieldError("generator.count", f"must be >= 1, got {gen.count}")
        if gen.seed < 0:
            raise FieldError("generator.seed", f"must be >= 0, got {gen.seed}")
        changes.update(from_server=gen.target, count=gen.count, seed=gen.seed)
    opts = request.options
    if opts.checks:
        unknown = [c for c in opts.checks if c not in registry.names()]
        if unknown:
            raise FieldError("options.checks", f"unknown {', '.join(unknown)}; choose from "
                             f"{', '.join(registry.names())}")
        changes["checks"] = tuple(opts.checks)
    if opts.benign_malignant and opts.benign_malignant not in ("benign", "malignant"):
        raise FieldError("options.benign_malignant", "must be benign or malignant")
    if opts.seed < 0:
        raise FieldError("options.seed", "must be >= 0")
    changes.update(benign_malignant=opts.benign_malignant or None,
                   diagnosis=opts.diagnosis or None,
                   allow_random_weights=opts.allow_random_weights or base.allow_random_weights,
                   tsne=base.tsne and not opts.skip_tsne)
    if which == "synthetic_dir":
        changes["seed"] = opts.seed
    if opts.thresholds_file:
        changes["thresholds"] = Path(opts.thresholds_file)
    if opts.model_dir:
        changes["model_dir"] = Path(opts.model_dir)
    return base.replace(**changes)


def summary_message(outcome) -> pb.Summary:
    checks = []
    for r in outcome.results:
        numbers = {k: float(v) for k, v in r.numbers.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool)}
        checks.append(pb.CheckSummary(name=r.name, kind=r.kind, passed=bool(r.passed),
                                      applicable=r.applicable, error=r.error or "",
                                      note=r.note, flagged=len(r.flagged), seconds=r.seconds,
                                      numbers=numbers))
    model = outcome.report["feature_model"]
    return pb.Summary(verdict=outcome.verdict.verdict, reasons=outcome.verdict.reasons,
                      warnings=outcome.verdict.warnings, report_json=str(outcome.report_json),
                      report_html=str(outcome.report_html), checks=checks,
                      random_weights=model["random_weights"], feature_model=model["label"])


class ValidatorServicer(pb_grpc.ValidatorServicer):
    def __init__(self, config: ValidateConfig):
        self.config = config
        self.model: FeatureModel | None = None

    def Validate(self, request, context):
        from validator.pipeline import run_validation
        model = self.model
        if model is None:
            context.abort(grpc.StatusCode.UNAVAILABLE, "feature model not loaded yet")
        try:
            config = request_to_config(self.config, request)
        except FieldError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        events: queue.Queue = queue.Queue()
        cancelled = threading.Event()
        # Without this a cancelled call would free its RPC thread while its validation ran on,
        # so max_workers would no longer bound the validations running at once.
        if not context.add_callback(cancelled.set):
            return  # already cancelled

        def progress(stage, done, total, message):
            if cancelled.is_set():  # checked between batches, checks and stages
                raise _Cancelled()
            events.put(pb.ValidateEvent(progress=pb.Progress(stage=stage, done=done,
                                                             total=total, message=message)))

        def work():
            try:
                events.put(run_validation(config, on_progress=progress, model=model))
            except Exception as exc:  # handed to the stream below
                events.put(exc)
            finally:
                events.put(_DONE)

        threading.Thread(target=work, name="validate", daemon=True).start()
        while (item := events.get()) is not _DONE:
            if isinstance(item, pb.ValidateEvent):
                yield item
            elif isinstance(item, _Cancelled):
                return
            elif isinstance(item, UserError):
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(item))
            elif isinstance(item, Exception):
                log.exception("validation failed", exc_info=item)
                context.abort(grpc.StatusCode.INTERNAL, f"{type(item).__name__}: {item}")
            else:
                yield pb.ValidateEvent(summary=summary_message(item))
