"""The ``dermsynth.v1.Validator`` servicer: maps a ValidateRequest to a :class:`ValidateConfig`,
runs :func:`validator.pipeline.run_validation` in a worker thread and streams its progress, then
one Summary. Thin by design (grpc's route_guide style): the work lives in the pipeline.

Paths in requests are server-side paths, confined to the server's roots
(:mod:`validator.roots`): outside them -> PERMISSION_DENIED, whether the path exists or not.
Bad fields -> INVALID_ARGUMENT naming the field (never echoing more than a few dozen characters
of it): the request's values are validated by :class:`ValidateConfig` itself, the same rules
as ``python -m validator validate``, and path confinement is this module's; a generator
target not on the server's list -> PERMISSION_DENIED (no connection is tried); over a limit
(``generator.count``, every worker busy) -> RESOURCE_EXHAUSTED; bad input data found while
running (missing folder, no usable image) -> INVALID_ARGUMENT with the validator's message;
no feature model loaded yet -> UNAVAILABLE; anything else -> INTERNAL with an id to look up in
the server log (no exception text, no memory addresses).

At most ``max_workers`` validations run at once. A cancelled call (or a passed deadline, or a
server shutdown) stops its validation at the next fetched batch, feature batch, pixel chunk or
check, and its worker is freed only once the validation has stopped.
"""

from __future__ import annotations

import logging
import queue
import threading
import uuid

import grpc

from common.config import OptionError, resolve
from common.errors import ConfigError, UserError
from protos.dermsynth.v1 import validator_pb2 as pb
from protos.dermsynth.v1 import validator_pb2_grpc as pb_grpc
from validator.config import ValidateConfig, ValidatorServerConfig
from validator.features import FeatureModel
from validator.roots import RequestError, Roots, check_tree, show
from validator.thresholds import Thresholds, load_thresholds

log = logging.getLogger(__name__)
_DONE = object()
MAX_TEXT = 256  # longest non-path string field (filters, check names)
MAX_MESSAGE = 1000  # longest error message sent back


class _Cancelled(Exception):
    """The client went away (cancel, deadline, shutdown): stop the validation it asked for."""


def _invalid(field: str, message: str) -> RequestError:
    return RequestError("INVALID_ARGUMENT", field, message)


def _text(field: str, value: str) -> str:
    if len(value) > MAX_TEXT or "\x00" in value:
        raise _invalid(field, f"at most {MAX_TEXT} characters, no NUL byte")
    return value


# the request field that carries each ValidateConfig option (for error messages)
REQUEST_FIELDS = {
    "real": "real_dir",
    "holdout": "holdout_dir",
    "synthetic": "synthetic_dir",
    "out": "out_dir",
    "from_server": "generator.target",
    "count": "generator.count",
    "checks": "options.checks",
    "thresholds": "options.thresholds_file",
    "model_dir": "options.model_dir",
    "benign_malignant": "options.benign_malignant",
    "diagnosis": "options.diagnosis",
}


def request_to_config(
    server: ValidatorServerConfig, roots: Roots, request: pb.ValidateRequest
) -> ValidateConfig:
    """The request's values on top of the server's run settings, every path resolved and
    confined to the roots, validated by :class:`ValidateConfig` itself (the rules the command
    line obeys: required inputs, ranges, known checks), then the server's own policy (allowed
    generator targets, ``max_count``, random weights). Nothing is read or created yet (see
    :func:`open_request`). Raises RequestError naming the request field."""

    def path(field: str, raw: str, *, output: bool = False):
        if not raw:
            return None  # absent (proto3 strings have no presence): the config says if needed
        return roots.output_dir(field, raw) if output else roots.input_path(field, raw)

    gen = request.generator if request.WhichOneof("synthetic") == "generator" else None
    opts = request.options
    if gen is not None and not gen.target.strip():
        raise _invalid("generator.target", "required (HOST:PORT)")
    values = {
        **server.run_settings(),
        "progress": False,
        "real": path("real_dir", request.real_dir),
        "holdout": path("holdout_dir", request.holdout_dir),
        "synthetic": path("synthetic_dir", request.synthetic_dir),
        "out": path("out_dir", request.out_dir, output=True),
        "from_server": gen.target.strip() if gen is not None else None,
        "count": gen.count if gen is not None else 0,
        "seed": gen.seed if gen is not None else opts.seed,
        "checks": tuple(_text("options.checks", c) for c in opts.checks) or server.checks,
        "thresholds": path("options.thresholds_file", opts.thresholds_file) or server.thresholds,
        "model_dir": path("options.model_dir", opts.model_dir),
        "benign_malignant": _text("options.benign_malignant", opts.benign_malignant) or None,
        "diagnosis": _text("options.diagnosis", opts.diagnosis) or None,
        "tsne": server.tsne and not opts.skip_tsne,
    }
    try:
        config = resolve(ValidateConfig, values, env={})
    except ConfigError as exc:
        option = exc.option if isinstance(exc, OptionError) else None
        if option == "seed":
            raise _invalid(
                "generator.seed" if gen is not None else "options.seed", exc.problem
            ) from None
        if option in REQUEST_FIELDS:
            raise _invalid(REQUEST_FIELDS[option], exc.problem) from None
        # the server's own settings passed the same rules at start-up: not the caller's fault
        log.error("a request's config was refused for a server setting: %s", exc)
        raise RequestError(
            "INTERNAL", "server", "its run settings are refused (see its log)"
        ) from None
    if gen is not None:
        allowed = {t.lower() for t in server.allowed_targets}
        if config.from_server.lower() not in allowed:  # refused before any connection
            raise RequestError(
                "PERMISSION_DENIED",
                "generator.target",
                f"{show(gen.target, 60)} is not a generation server this server "
                f"may fetch from ({len(allowed)} allowed: see --allowed-target)",
            )
        if config.count > server.max_count:
            raise RequestError(
                "RESOURCE_EXHAUSTED",
                "generator.count",
                f"{config.count} is above this server's limit of {server.max_count}",
            )
    if opts.allow_random_weights and not server.allow_random_weights:
        # the server's setting is the policy: a caller cannot loosen the gate on its own
        raise RequestError(
            "PERMISSION_DENIED",
            "options.allow_random_weights",
            "not allowed on this server (start it with --allow-random-weights)",
        )
    return config


def open_request(
    config: ValidateConfig, roots: Roots, server: ValidatorServerConfig, should_stop
) -> Thresholds:
    """The checks that read the file system, run in the worker: no input folder holds a link
    out of the roots, the model manifest is inside them, the report folder is created (new,
    empty or a previous report). Returns the thresholds (a request's file is read quietly:
    its errors never quote it)."""
    for field, folder in (
        ("real_dir", config.real),
        ("holdout_dir", config.holdout),
        ("synthetic_dir", config.synthetic),
    ):
        if folder is not None and folder.is_dir():
            check_tree(field, folder, roots, should_stop=should_stop)
    if config.model_dir is not None:
        manifest = config.model_dir / "model.json"
        if manifest.is_symlink() and not roots.allowed(manifest.resolve()):
            raise RequestError(
                "PERMISSION_DENIED",
                "options.model_dir",
                "model.json is a link that leads outside the server's roots",
            )
    try:
        if config.thresholds is not None and config.thresholds != server.thresholds:
            try:
                thresholds = load_thresholds(config.thresholds, quiet=True)
            except ConfigError as exc:
                raise _invalid("options.thresholds_file", str(exc)) from None
        else:
            thresholds = load_thresholds(config.thresholds)
    except OSError:
        raise _invalid("options.thresholds_file", "cannot be read") from None
    roots.prepare_output_dir("out_dir", config.out)
    return thresholds


def summary_message(outcome) -> pb.Summary:
    checks = []
    for r in outcome.results:
        numbers = {
            k: float(v)
            for k, v in r.numbers.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        }
        checks.append(
            pb.CheckSummary(
                name=r.name,
                kind=r.kind,
                passed=bool(r.passed),
                applicable=r.applicable,
                error=r.error or "",
                note=r.note,
                flagged=len(r.flagged),
                seconds=r.seconds,
                numbers=numbers,
                status=outcome.verdict.status(r.name),
            )
        )
    model = outcome.report["feature_model"]
    return pb.Summary(
        verdict=outcome.verdict.decision,
        reasons=outcome.verdict.reasons,
        warnings=outcome.verdict.warnings,
        report_json=str(outcome.report_json),
        report_html=str(outcome.report_html),
        checks=checks,
        random_weights=model["random_weights"],
        feature_model=model["label"],
        gate_policy=outcome.verdict.policy,
    )


def _short(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + "..."


class ValidatorServicer(pb_grpc.ValidatorServicer):
    def __init__(self, config: ValidatorServerConfig):
        self.config = config
        self.roots = Roots(config.data_roots, config.output_root)
        self.model: FeatureModel | None = None
        self._workers = threading.BoundedSemaphore(config.max_workers)
        self._lock = threading.Lock()
        self.running = 0  # validations whose worker thread has not finished

    def _release(self) -> None:
        with self._lock:
            self.running -= 1
        self._workers.release()

    def Validate(self, request, context):
        from validator.pipeline import run_validation

        try:  # the request first: its refusal never depends on the server's state
            config = request_to_config(self.config, self.roots, request)
        except RequestError as exc:
            context.abort(grpc.StatusCode[exc.code], _short(str(exc)))
        model = self.model
        if model is None:
            context.abort(grpc.StatusCode.UNAVAILABLE, "feature model not loaded yet")
        if not self._workers.acquire(blocking=False):
            context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"all {self.config.max_workers} validation workers are busy; try again later",
            )
        with self._lock:
            self.running += 1
        events: queue.Queue = queue.Queue()
        cancelled = threading.Event()

        def on_done() -> None:  # cancel, deadline, shutdown, or the end of the call
            cancelled.set()
            events.put(_DONE)

        def should_stop(*_args) -> None:
            if cancelled.is_set():  # checked between batches, chunks, checks and stages
                raise _Cancelled()

        def progress(stage, done, total, message):
            should_stop()
            events.put(
                pb.ValidateEvent(
                    progress=pb.Progress(stage=stage, done=done, total=total, message=message)
                )
            )

        def work():
            try:
                thresholds = open_request(config, self.roots, self.config, should_stop)
                events.put(
                    run_validation(config, on_progress=progress, model=model, thresholds=thresholds)
                )
            except BaseException as exc:  # handed to the stream below
                events.put(exc)
            finally:
                self._release()  # only now: the validation has stopped
                events.put(_DONE)

        try:
            if not context.add_callback(on_done):
                self._release()
                return  # already cancelled
            threading.Thread(target=work, name="validate", daemon=True).start()
        except BaseException:
            self._release()
            raise
        yield from self._stream(events, context)

    def _stream(self, events: queue.Queue, context):
        while (item := events.get()) is not _DONE:
            if isinstance(item, pb.ValidateEvent):
                yield item
            elif isinstance(item, _Cancelled):
                return
            elif isinstance(item, RequestError):
                context.abort(grpc.StatusCode[item.code], _short(str(item)))
            elif isinstance(item, UserError):
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, _short(str(item)))
            elif isinstance(item, BaseException):
                error_id = uuid.uuid4().hex[:12]
                log.error("validation failed (error id %s)", error_id, exc_info=item)
                context.abort(
                    grpc.StatusCode.INTERNAL,
                    f"internal error (id {error_id}); the server log has the details",
                )
            else:
                yield pb.ValidateEvent(summary=summary_message(item))
