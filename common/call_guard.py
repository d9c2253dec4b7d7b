"""Reserved capacity, request parsing and idle streams for both gRPC servers: :class:`CallGuard`.

A grpcio server runs every call on one thread pool. Left alone, a few long-lived calls (idle
reflection streams, health Watch streams, clients that stop reading a stream, unary calls
whose request message never arrives) take every thread, and health checks and control calls
then queue behind them forever. The guard is a server interceptor that
re-wraps every method handler:

- **Call classes with their own limits.** Each call counts against the first
  :class:`CallClass` whose prefix matches its method (the service's streaming RPC, reflection,
  health Watch, health Check, other unary calls); a call over its class's limit is refused with
  RESOURCE_EXHAUSTED at once. The server's pool has one thread per unit of every limit plus
  spare threads for the refusals, so no class can take another's threads: a health Check
  always finds one.
- **Requests parsed by the guard.** Every handler is turned request-streaming (the client
  cannot tell): grpc neither waits for a request message before a call gets its thread nor
  parses it. The guard parses it inside the call, so unparseable bytes give INVALID_ARGUMENT
  (not INTERNAL with a traceback), and a call refused by the bearer-token interceptor, which
  runs first, is never parsed at all.
- **Idle calls cancelled.** A call that waits longer than ``idle_seconds`` for the client to
  take a response (a reader that stopped reading: flow control blocks the send) or to send its
  next request message (a unary call's only message: :data:`UNARY_REQUEST_SECONDS`) is
  cancelled (``context.cancel()``), which frees its thread and its place in its class's limit.
  :func:`ended_outcome` then reports it as ``"idle"``, apart from ``"deadline_exceeded"`` and
  ``"cancelled"``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import grpc

log = logging.getLogger(__name__)

_RUNNING, _SENDING, _RECEIVING = "running", "sending", "receiving"
# A unary call's one request message follows its headers at once from any real client; one
# that has not arrived within this (or the idle timeout, if shorter) is cancelled.
UNARY_REQUEST_SECONDS = 2.0
_DEADLINE_SLACK_SECONDS = 0.25  # the client's deadline fires (and it cancels) just before ours
_idled: weakref.WeakSet = weakref.WeakSet()  # contexts the watchdog cancelled
_idled_lock = threading.Lock()


@dataclass(frozen=True)
class CallClass:
    """Calls whose method starts with one of ``prefixes`` (full ``/package.Service/Method``
    names or prefixes of them); at most ``limit`` of them run at once."""

    name: str
    prefixes: tuple[str, ...]
    limit: int


def clip(value: object, limit: int = 100) -> str:
    """``str(value)`` cut to ``limit`` characters (for echoing client input in errors)."""
    text = str(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def ended_outcome(context: grpc.ServicerContext) -> str:
    """Why a call ended early: ``"idle"`` (cancelled by the guard's watchdog),
    ``"deadline_exceeded"`` or ``"cancelled"`` (by the client, or by a server shutdown)."""
    with _idled_lock:
        if context in _idled:
            return "idle"
    remaining = context.time_remaining()
    if remaining is not None and remaining <= _DEADLINE_SLACK_SECONDS:
        return "deadline_exceeded"
    return "cancelled"


class _Call:
    __slots__ = ("context", "method", "state", "since", "receive_limit")

    def __init__(self, context, method: str, receive_limit: float | None) -> None:
        self.context, self.method, self.receive_limit = context, method, receive_limit
        self.state, self.since = _RUNNING, time.monotonic()

    def mark(self, state: str) -> None:
        self.state, self.since = state, time.monotonic()


def _internal(exc: Exception, method: str, context) -> None:
    """Re-raise an abort or a cancelled call's error; turn anything else (a bug) into INTERNAL
    with a fixed text, where grpc would send UNKNOWN with the exception's text (which may hold
    paths, memory addresses or echoed input) to the client."""
    if isinstance(exc, grpc.RpcError) or (type(exc) is Exception and not exc.args):
        raise exc  # context.abort() raises a bare Exception; grpc knows how to finish both
    log.error("unexpected error in %s", method, exc_info=exc)
    context.abort(grpc.StatusCode.INTERNAL, "internal error on the server (see its log)")


def _message_name(deserializer) -> str:
    owner = getattr(deserializer, "__self__", None)
    descriptor = getattr(owner, "DESCRIPTOR", None)
    return getattr(descriptor, "full_name", "request message")


class CallGuard(grpc.ServerInterceptor):
    """Per-class limits, parsing inside the call, and the idle watchdog (module docstring).

    ``classes`` are matched in order; a method matching none is not limited (give a catch-all
    class with prefix ``"/"``). :meth:`close` stops the watchdog thread.
    """

    def __init__(self, classes: Sequence[CallClass], idle_seconds: float | None) -> None:
        self.classes = tuple(classes)
        self.idle_seconds = idle_seconds
        self._active = {c.name: 0 for c in self.classes}
        self._calls: set[_Call] = set()
        self._lock = threading.Lock()
        self._closed = threading.Event()
        if idle_seconds:
            threading.Thread(target=self._watch, name="grpc-idle-watchdog", daemon=True).start()

    @property
    def threads(self) -> int:
        """Threads that the calls within every class's limit can take at once."""
        return sum(c.limit for c in self.classes)

    def active(self, name: str) -> int:
        """Calls of class ``name`` running now."""
        with self._lock:
            return self._active[name]

    def close(self) -> None:
        self._closed.set()

    # -- the interceptor ----------------------------------------------------------------------

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method or ""
        klass = next((c for c in self.classes if method.startswith(c.prefixes)), None)
        return self._wrap(handler, klass, method)

    def _wrap(
        self, handler: grpc.RpcMethodHandler, klass: CallClass | None, method: str
    ) -> grpc.RpcMethodHandler:
        deserialize = handler.request_deserializer
        name = _message_name(deserialize)
        if handler.request_streaming and handler.response_streaming:
            inner, single = handler.stream_stream, False
        elif handler.request_streaming:
            inner, single = handler.stream_unary, False
        elif handler.response_streaming:
            inner, single = handler.unary_stream, True
        else:
            inner, single = handler.unary_unary, True

        receive_limit = (
            min(self.idle_seconds, UNARY_REQUEST_SECONDS)
            if single and self.idle_seconds
            else self.idle_seconds
        )

        def requests(raw: Iterator[bytes], call: _Call, context) -> Iterator:
            while True:
                call.mark(_RECEIVING)
                try:
                    data = next(raw)
                except StopIteration:
                    return
                finally:
                    call.mark(_RUNNING)
                if deserialize is None:
                    yield data
                    continue
                try:
                    request = deserialize(data)
                except Exception:  # DecodeError and friends: the client's bytes, not a bug
                    context.abort(
                        grpc.StatusCode.INVALID_ARGUMENT,
                        f"the request is not a valid {name} ({len(data)} bytes)",
                    )
                yield request

        def argument(raw: Iterator[bytes], call: _Call, context):
            parsed = requests(raw, call, context)
            if not single:
                return parsed
            request = next(parsed, None)
            if request is None:
                context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT, f"expected one {name}, the call carried none"
                )
            return request

        if handler.response_streaming:

            def behaviour(raw, context):
                call = self._enter(klass, method, context, True, receive_limit)
                responses = None
                try:
                    responses = inner(argument(raw, call, context), context)
                    for response in responses:
                        call.mark(_SENDING)  # until grpc has handed it to the transport
                        yield response
                        call.mark(_RUNNING)
                except Exception as exc:
                    _internal(exc, method, context)
                finally:
                    close = getattr(responses, "close", None)
                    try:
                        if close is not None:
                            close()
                    finally:
                        self._leave(klass, call)

            return grpc.stream_stream_rpc_method_handler(
                behaviour,
                request_deserializer=None,
                response_serializer=handler.response_serializer,
            )

        def unary_behaviour(raw, context):
            call = self._enter(klass, method, context, handler.request_streaming, receive_limit)
            try:
                return inner(argument(raw, call, context), context)
            except Exception as exc:
                _internal(exc, method, context)
            finally:
                self._leave(klass, call)

        return grpc.stream_unary_rpc_method_handler(
            unary_behaviour,
            request_deserializer=None,
            response_serializer=handler.response_serializer,
        )

    # -- accounting ---------------------------------------------------------------------------

    def _enter(
        self,
        klass: CallClass | None,
        method: str,
        context,
        streaming: bool,
        receive_limit: float | None,
    ) -> _Call:
        """Count a starting call, or refuse it with RESOURCE_EXHAUSTED over its class limit."""
        call = _Call(context, method, receive_limit)
        with self._lock:
            full = klass is not None and self._active[klass.name] >= klass.limit
            if not full:
                if klass is not None:
                    self._active[klass.name] += 1
                self._calls.add(call)
        if full:
            kind = "streams" if streaming else "calls"
            context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"max concurrent {kind} reached on this server (at most {klass.limit} "
                f"{klass.name} {kind} at once); retry later",
            )
        return call

    def _leave(self, klass: CallClass | None, call: _Call) -> None:
        with self._lock:
            if call in self._calls:
                self._calls.discard(call)
                if klass is not None:
                    self._active[klass.name] -= 1

    def _watch(self) -> None:
        idle = float(self.idle_seconds or 0)
        period = min(1.0, max(0.05, min(idle, UNARY_REQUEST_SECONDS) / 4))
        while not self._closed.wait(period):
            now = time.monotonic()
            with self._lock:
                stuck = [
                    c
                    for c in self._calls
                    if c.state == _SENDING
                    and now - c.since > idle
                    or c.state == _RECEIVING
                    and now - c.since > c.receive_limit
                ]
            for call in stuck:
                with _idled_lock:
                    if call.context in _idled:
                        continue
                    _idled.add(call.context)
                log.warning(
                    json.dumps(
                        {
                            "event": "idle_call_cancelled",
                            "method": call.method,
                            "peer": call.context.peer(),
                            "waiting_for": (
                                "client to read" if call.state == _SENDING else "client to send"
                            ),
                            "seconds": round(now - call.since, 1),
                        },
                        sort_keys=True,
                    )
                )
                call.context.cancel()
