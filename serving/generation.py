"""The generation pipeline: latents → ONNX Runtime → uint8 → PNG/raw → ImageBatch, streamed.

One stream runs two overlapping stages so that encoding and sending stay off the inference path:

1. a producer thread per stream draws the latents of (seed, index) (:mod:`serving.latents`),
   runs the model on fixed-shape chunks of ``inference_batch`` rows (the last chunk of a request
   is zero-padded, and the padding rows are dropped) and regroups the output rows into wire
   batches of the request's ``batch_size``;
2. a shared encoder pool turns each wire batch into an ``ImageBatch`` message (uint8
   conversion, then PNG or raw bytes; Pillow releases the GIL inside zlib), while the producer
   already infers the next chunk.

The producer runs at most ``prefetch`` batches ahead of the reader (a bounded queue), so a long
request never sits in memory. :meth:`BatchStream.cancel` (wired to the RPC's cancellation
callback) stops the producer before its next chunk; the reader polls, so nothing ever blocks
forever after a cancel (grpc/grpc#22874).
"""

from __future__ import annotations

import io
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, wait

import numpy as np
from PIL import Image as PILImage

from common.images import to_uint8
from protos.dermsynth.v1 import generator_pb2 as pb
from serving.latents import latents
from serving.model import GeneratorModel
from serving.plan import GenerationPlan

# zlib level of served PNGs. Part of the byte-identity promise (same server build → same bytes):
# level 1 costs a fraction of level 6's time on 64-256 px images for a few % larger files.
PNG_COMPRESS_LEVEL = 1
_POLL_SECONDS = 0.05


def encode_png(pixels: np.ndarray) -> bytes:
    """Lossless 8-bit RGB PNG of one uint8 [H, W, 3] image."""
    buf = io.BytesIO()
    PILImage.fromarray(pixels).save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buf.getvalue()


def output_chunks(
    model: GeneratorModel,
    plan: GenerationPlan,
    stop: threading.Event | None = None,
    on_inference: Callable[[float], None] | None = None,
    runner: Executor | None = None,
    lookahead: int = 1,
) -> Iterator[tuple[int, np.ndarray]]:
    """(first index, float32 [n, H, W, C] model output) for the plan's images, one fixed-shape
    chunk at a time, in order.

    With a ``runner`` (a thread pool shared by all streams), up to ``lookahead`` chunks of this
    stream are inferred concurrently; every chunk still has the same fixed shape, so the images
    do not change. Stops early (without error) once ``stop`` is set; checked before each chunk.
    """
    m = model.inference_batch

    def stopped() -> bool:
        return stop is not None and stop.is_set()

    def infer(first: int, n: int) -> np.ndarray | None:
        if stopped():  # cancelled while this chunk waited for a worker: skip the call
            return None
        buffer = np.zeros((m, model.latent_dim), dtype=np.float32)  # rows past n stay zero
        latents(plan.seed, first, n, model.latent_dim, out=buffer)
        started = time.perf_counter()
        images = model.run(buffer)
        if on_inference is not None:
            on_inference(time.perf_counter() - started)
        return images[:n]

    offsets = iter(range(0, plan.count, m))
    pending: deque[tuple[int, Future]] = deque()
    try:
        while True:
            while len(pending) < max(1, lookahead) and not stopped():
                offset = next(offsets, None)
                if offset is None:
                    break
                first, n = plan.start_index + offset, min(m, plan.count - offset)
                if runner is None:
                    done: Future = Future()
                    done.set_result(infer(first, n))
                    pending.append((first, done))
                else:
                    pending.append((first, runner.submit(infer, first, n)))
            if not pending or stopped():
                return
            first, future = pending.popleft()
            images = future.result()
            if images is None:
                return
            yield first, images
    finally:  # once this returns, no call of this stream is running or will start
        for _, future in pending:
            future.cancel()
        wait([future for _, future in pending])


def regroup(
    chunks: Iterator[tuple[int, np.ndarray]], batch_size: int
) -> Iterator[tuple[int, np.ndarray]]:
    """Regroup consecutive (first index, rows) chunks into batches of ``batch_size`` rows
    (the last batch may be smaller)."""
    pending: list[np.ndarray] = []
    pending_rows = 0
    first_index = None
    for first, rows in chunks:
        if first_index is None:
            first_index = first
        pending.append(rows)
        pending_rows += len(rows)
        while pending_rows >= batch_size:
            joined = pending[0] if len(pending) == 1 else np.concatenate(pending)
            yield first_index, joined[:batch_size]
            rest = joined[batch_size:]
            first_index += batch_size
            pending, pending_rows = ([rest], len(rest)) if len(rest) else ([], 0)
    if pending_rows:
        yield first_index, pending[0] if len(pending) == 1 else np.concatenate(pending)


def build_batch(plan: GenerationPlan, first_index: int, outputs: np.ndarray) -> pb.ImageBatch:
    """The ImageBatch message of images ``first_index ..`` from their model outputs."""
    pixels = to_uint8(outputs)
    if plan.encoding == pb.ENCODING_PNG:
        data = [encode_png(p) for p in pixels]
    else:
        data = [p.tobytes() for p in pixels]
    height, width, channels = pixels.shape[1:]
    return pb.ImageBatch(
        images=[
            pb.Image(index=first_index + i, seed=plan.seed, data=d) for i, d in enumerate(data)
        ],
        encoding=plan.encoding,
        height=height,
        width=width,
        channels=channels,
    )


class StreamCancelled(Exception):
    """The stream was cancelled (client cancel, deadline, or server shutdown)."""


_END = object()


class BatchStream:
    """The ImageBatch messages of one plan, produced ahead of the reader by at most ``prefetch``.

    Use :meth:`next_batch` from the RPC's thread; :meth:`cancel` from any thread.
    """

    def __init__(
        self,
        model: GeneratorModel,
        plan: GenerationPlan,
        *,
        encoders: Executor,
        prefetch: int = 2,
        on_inference: Callable[[float], None] | None = None,
        runner: Executor | None = None,
        lookahead: int = 1,
    ) -> None:
        self._model, self._plan, self._encoders = model, plan, encoders
        self._runner, self._lookahead = runner, lookahead
        self._on_inference = on_inference
        self._queue: queue.Queue = queue.Queue(maxsize=prefetch)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._produce, name="dermsynth-producer", daemon=True
        )
        self._thread.start()

    def cancel(self) -> None:
        """Stop producing (before the next chunk) and wake a blocked reader."""
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self) -> None:
        try:
            chunks = output_chunks(
                self._model,
                self._plan,
                self._stop,
                self._on_inference,
                self._runner,
                self._lookahead,
            )
            for first, outputs in regroup(chunks, self._plan.batch_size):
                future = self._encoders.submit(build_batch, self._plan, first, outputs)
                if not self._put(future):
                    future.cancel()
                    return
            self._put(_END)
        except BaseException as exc:  # handed to the reader, which turns it into a status
            self._put(exc)

    def next_batch(self, is_active: Callable[[], bool] = lambda: True) -> pb.ImageBatch | None:
        """The next ImageBatch, or None after the last. Raises StreamCancelled once cancelled
        or when ``is_active()`` turns false; re-raises an error from the producer."""
        while True:
            if self._stop.is_set() or not is_active():
                self._stop.set()
                raise StreamCancelled()
            try:
                item = self._queue.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                continue
            if item is _END:
                return None
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, Future)
            return item.result()
