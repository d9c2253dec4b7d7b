"""Checking a GenerateRequest against the contract and the server's limits (pure functions).

A malformed field gives INVALID_ARGUMENT naming the field; a well-formed request over a
configured limit gives RESOURCE_EXHAUSTED naming the limit. The servicer only maps the result
to a gRPC status.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from protos.dermsynth.v1 import generator_pb2 as pb
from serving.latents import UINT64_MAX

# Bytes a PNG may add over the raw pixels (signature, IHDR/IEND, zlib framing, per-row filter
# byte, stored-block headers for incompressible data), plus the per-image protobuf framing
# (tags and varints of index, seed, data length and the Image itself: at most 32 bytes).
PNG_OVERHEAD_PER_ROW = 1
PER_IMAGE_OVERHEAD = 32
PER_BATCH_OVERHEAD = 64

ENCODINGS = {pb.ENCODING_PNG: "png", pb.ENCODING_RAW_RGB8: "raw"}


@dataclass(frozen=True)
class Limits:
    """The server limits a request is checked against."""

    max_count: int
    max_batch_size: int
    default_batch_size: int
    max_message_bytes: int


@dataclass(frozen=True)
class GenerationPlan:
    """A checked request: which images, how grouped and encoded."""

    seed: int
    start_index: int
    count: int
    batch_size: int
    encoding: int  # pb.ENCODING_PNG or pb.ENCODING_RAW_RGB8, never UNSPECIFIED

    @property
    def encoding_name(self) -> str:
        return ENCODINGS[self.encoding]


class RequestRejected(Exception):
    """A request the server refuses; carries the gRPC status code and a message."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def max_batch_message_bytes(
    batch_size: int, image_shape: tuple[int, int, int], encoding: int
) -> int:
    """Upper bound on the serialized size of one ImageBatch of ``batch_size`` images."""
    h, w, c = image_shape
    per_image = h * w * c + PER_IMAGE_OVERHEAD
    if encoding == pb.ENCODING_PNG:
        per_image += h * PNG_OVERHEAD_PER_ROW + (h * w * c) // 1000 + 64
    return PER_BATCH_OVERHEAD + batch_size * per_image


def plan_request(
    request: pb.GenerateRequest, limits: Limits, image_shape: tuple[int, int, int]
) -> GenerationPlan:
    """Check ``request``; return its plan or raise RequestRejected."""
    invalid, exhausted = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED
    if request.count < 1:
        raise RequestRejected(invalid, "count: must be at least 1")
    if request.start_index + request.count - 1 > UINT64_MAX:
        raise RequestRejected(
            invalid,
            f"start_index: {request.start_index} + count "
            f"{request.count} - 1 does not fit in 64 bits",
        )
    encoding = request.encoding or pb.ENCODING_PNG
    if encoding not in ENCODINGS:
        raise RequestRejected(
            invalid,
            f"encoding: {request.encoding} is not a known Encoding "
            "(ENCODING_PNG=1, ENCODING_RAW_RGB8=2)",
        )
    batch_size = request.batch_size or limits.default_batch_size
    if request.count > limits.max_count:
        raise RequestRejected(
            exhausted,
            f"count: {request.count} is above this server's limit "
            f"of {limits.max_count} images per request; split the request",
        )
    if batch_size > limits.max_batch_size:
        raise RequestRejected(
            exhausted,
            f"batch_size: {batch_size} is above this server's limit of {limits.max_batch_size}",
        )
    needed = max_batch_message_bytes(min(batch_size, request.count), image_shape, encoding)
    if needed > limits.max_message_bytes:
        raise RequestRejected(
            exhausted,
            f"batch_size: a batch of {batch_size} images may take "
            f"{needed} bytes, above this server's max message size of "
            f"{limits.max_message_bytes}; ask for a smaller batch_size",
        )
    return GenerationPlan(
        seed=request.seed,
        start_index=request.start_index,
        count=request.count,
        batch_size=batch_size,
        encoding=encoding,
    )
