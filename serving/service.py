"""The dermsynth.v1.Generator servicer: maps messages and statuses, nothing else.

Request checks live in :mod:`serving.plan`, the pipeline in :mod:`serving.generation`, the
manifest → ModelInfo mapping in :mod:`serving.model_info`. Every Generate call is logged as one
JSON line (peer, seed, start_index, count, batch_size, encoding, images sent, seconds, outcome:
ok, a refusal's status, or ``idle`` / ``deadline_exceeded`` / ``cancelled`` for a stream that
ended early, see :func:`common.call_guard.ended_outcome`).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from concurrent.futures import Executor

import grpc

from common.call_guard import clip, ended_outcome
from protos.dermsynth.v1 import generator_pb2_grpc as pb_grpc
from serving.generation import BatchStream, StreamCancelled
from serving.metrics import Metrics
from serving.model import ModelHolder
from serving.model_info import model_info
from serving.plan import Limits, RequestRejected, plan_request

log = logging.getLogger("serving.requests")

NO_MODEL = "no model is loaded on this server yet; retry shortly"
_PRODUCER_JOIN_SECONDS = 30.0  # bound on waiting for one chunk's inference at a stream's end


class _StreamPermit:
    """One of ``max_streams`` permits, released exactly once (by the RPC's end or its
    termination callback, whichever comes first)."""

    def __init__(self, semaphore: threading.BoundedSemaphore) -> None:
        self._semaphore = semaphore
        self._lock = threading.Lock()
        self._held = True

    def release(self) -> None:
        with self._lock:
            if self._held:
                self._held = False
                self._semaphore.release()


class GeneratorServicer(pb_grpc.GeneratorServicer):
    """Serves the model in ``holder`` within ``limits`` and ``max_streams`` concurrent streams."""

    def __init__(
        self,
        holder: ModelHolder,
        limits: Limits,
        *,
        max_streams: int,
        encoders: Executor,
        prefetch: int,
        metrics: Metrics,
        runner: Executor | None = None,
        lookahead: int = 1,
    ) -> None:
        self._holder = holder
        self._limits = limits
        self._streams = threading.BoundedSemaphore(max_streams)
        self._encoders = encoders
        self._prefetch = prefetch
        self._metrics = metrics
        self._runner, self._lookahead = runner, lookahead

    def GetModelInfo(self, request, context):
        model = self._holder.get()
        if model is None:
            context.abort(grpc.StatusCode.UNAVAILABLE, NO_MODEL)
        return model_info(model, self._limits)

    def Generate(self, request, context):
        started = time.monotonic()
        record = {
            "event": "generate",
            "peer": context.peer(),
            "seed": request.seed,
            "start_index": request.start_index,
            "count": request.count,
            "batch_size": request.batch_size,
            "encoding": request.encoding,
            "sent": 0,
            "outcome": "error",
        }
        try:
            model = self._holder.get()
            if model is None:
                record["outcome"] = "unavailable"
                context.abort(grpc.StatusCode.UNAVAILABLE, NO_MODEL)
            try:
                plan = plan_request(request, self._limits, model.image_shape)
                if not self._streams.acquire(blocking=False):
                    raise RequestRejected(
                        grpc.StatusCode.RESOURCE_EXHAUSTED,
                        "max concurrent streams reached on this server; retry later",
                    )
            except RequestRejected as rejected:
                record["outcome"] = rejected.code.name.lower()
                record["reason"] = rejected.message
                context.abort(rejected.code, rejected.message)
            record["batch_size"], record["encoding"] = plan.batch_size, plan.encoding_name
            yield from self._stream(model, plan, context, record)
        finally:
            record["seconds"] = round(time.monotonic() - started, 3)
            self._metrics.requests.labels(record["outcome"]).inc()
            log.info(json.dumps(record, sort_keys=True))

    def _stream(self, model, plan, context, record):
        permit = _StreamPermit(self._streams)
        stream = BatchStream(
            model,
            plan,
            encoders=self._encoders,
            prefetch=self._prefetch,
            on_inference=self._metrics.inference_seconds.observe,
            runner=self._runner,
            lookahead=self._lookahead,
        )

        def on_termination() -> None:  # client cancel, deadline, shutdown, or normal end
            stream.cancel()
            permit.release()

        self._metrics.active_streams.inc()
        images = self._metrics.images.labels(plan.encoding_name)
        try:
            if not context.add_callback(on_termination):
                raise StreamCancelled()  # already terminated
            while True:
                batch = stream.next_batch(context.is_active)
                if batch is None:
                    break
                yield batch
                record["sent"] += len(batch.images)
                images.inc(len(batch.images))
            record["outcome"] = "ok"
        except StreamCancelled:
            record["outcome"] = ended_outcome(context)
        except GeneratorExit:  # gRPC closed the stream while it waited in yield
            record["outcome"] = ended_outcome(context)
            raise
        except Exception as exc:  # a bug or a failing model: report it, don't hang the client
            record["outcome"] = "internal"
            record["reason"] = clip(f"{type(exc).__name__}: {exc}", 300)
            log.exception("generation failed")
            context.abort(
                grpc.StatusCode.INTERNAL,
                "generation failed on the server (see its log); retry or report it",
            )
        finally:
            stream.cancel()
            # The producer stops before its next chunk; wait for a chunk already running so
            # that a stream counted as ended no longer uses the model.
            stream.join(timeout=_PRODUCER_JOIN_SECONDS)
            permit.release()
            self._metrics.active_streams.dec()
