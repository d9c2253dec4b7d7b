"""The serving configs: ``ServeConfig`` (the server, env prefix DERMSYNTH_SERVE_; how it
listens, its TLS and token come from :class:`common.server_config.ServerTransport`, shared with
the validator's server) and ``ClientConfig`` (the fetch client, env prefix DERMSYNTH_CLIENT_),
each validated once through :mod:`common.config` (flags, then environment, then defaults)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

from common.config import option
from common.errors import ConfigError
from common.server_config import ServerTransport, port_option

SERVE_ENV_PREFIX = "DERMSYNTH_SERVE_"
CLIENT_ENV_PREFIX = "DERMSYNTH_CLIENT_"

MIB = 1 << 20


@dataclass(frozen=True, kw_only=True)
class ServeConfig(ServerTransport):
    """Everything ``python -m serving serve`` needs; one place that validates it. Keyword
    arguments only."""

    ENV_PREFIX: ClassVar[str] = SERVE_ENV_PREFIX

    model: Path = field(metadata=option("model directory holding model.onnx and model.json"))
    port: int = port_option(50051)
    max_count: int = field(
        default=100_000,
        metadata=option(
            "most images one Generate request may ask for", minimum=1, maximum=(1 << 32) - 1
        ),
    )
    max_batch_size: int = field(
        default=256,
        metadata=option("most images per streamed ImageBatch", minimum=1, maximum=65536),
    )
    default_batch_size: int = field(
        default=32,
        metadata=option("images per ImageBatch when a request leaves batch_size at 0", minimum=1),
    )
    inference_batch: int = field(
        default=16,
        metadata=option(
            "rows of every ONNX Runtime call: the model always runs on this fixed shape (the last "
            "chunk of a request is padded), so image bytes never depend on the request's batch "
            "size",
            minimum=1,
            maximum=4096,
        ),
    )
    max_streams: int = field(
        default=8,
        metadata=option(
            "most Generate streams served at once; more get RESOURCE_EXHAUSTED",
            minimum=1,
            maximum=1024,
        ),
    )
    max_message_bytes: int = field(
        default=64 * MIB,
        metadata=option(
            "largest gRPC message the server sends or accepts; a batch that could exceed it is "
            "refused with RESOURCE_EXHAUSTED",
            minimum=64 * 1024,
            maximum=2**31 - 1,
        ),
    )
    threads: int = field(
        default=0,
        metadata=option(
            "ONNX Runtime intra-op threads per call (0: the machine's cores divided by "
            "--inference-workers)",
            minimum=0,
        ),
    )
    inference_workers: int = field(
        default=2,
        metadata=option(
            "ONNX Runtime calls in flight at once, across all streams; also how many chunks of one "
            "stream are inferred concurrently. Two calls with half the cores each keep the cores "
            "busy while one call's threads are preempted by gRPC or encoding work (measure yours "
            "with bench/serve_bench.py). 1: one call after another",
            minimum=1,
            maximum=64,
        ),
    )
    inter_threads: int = field(
        default=1, metadata=option("ONNX Runtime inter-op threads", minimum=1)
    )
    encode_threads: int = field(
        default=2,
        metadata=option(
            "threads that turn model output into PNG/raw bytes while the next batch infers",
            minimum=1,
            maximum=256,
        ),
    )
    prefetch: int = field(
        default=4,
        metadata=option(
            "batches a stream may generate ahead of what the client has read", minimum=1, maximum=64
        ),
    )
    ort_spinning: bool = field(
        default=False,
        metadata=option(
            "let ONNX Runtime's intra-op threads spin-wait between runs. Off by default: spinning "
            "burns the cores that the encoder and gRPC threads need; try it on an otherwise idle "
            "machine"
        ),
    )
    provider: Literal["auto", "cpu", "cuda"] = field(
        default="auto",
        metadata=option(
            "ONNX Runtime execution provider. auto: CUDA when onnxruntime-gpu can start it, "
            "else CPU (the log says why); cuda: CUDA or refuse to start (exit 2), never a "
            "silent CPU run; cpu"
        ),
    )
    metrics_port: int | None = field(
        default=9464,
        metadata=option(
            "Prometheus metrics HTTP port (0: a free port; 'none': no metrics endpoint)",
            minimum=0,
            maximum=65535,
        ),
    )

    def validate(self) -> None:
        """Checks that span fields or touch the file system (the transport's first)."""
        ServerTransport.validate(self)
        if self.default_batch_size > self.max_batch_size:
            raise ConfigError(
                f"--default-batch-size ({self.default_batch_size}) is above "
                f"--max-batch-size ({self.max_batch_size})"
            )


@dataclass(frozen=True)
class ClientConfig:
    """Options of ``python -m serving.client`` (fetch images into a folder)."""

    target: str = field(metadata=option("server address HOST:PORT"))
    seed: int = field(metadata=option("seed of the image set", minimum=0, maximum=(1 << 64) - 1))
    count: int = field(metadata=option("number of images", minimum=1))
    out: Path = field(metadata=option("output folder ({index:08d}.png and manifest.json)"))
    start_index: int = field(
        default=0, metadata=option("index of the first image", minimum=0, maximum=(1 << 64) - 1)
    )
    batch_size: int = field(default=64, metadata=option("images per streamed batch", minimum=1))
    token: str | None = field(
        default=None,
        repr=False,
        metadata=option("bearer token (better set as $DERMSYNTH_CLIENT_TOKEN than as a flag)"),
    )
    tls_ca: Path | None = field(
        default=None, metadata=option("PEM root certificate: connect with TLS and trust this CA")
    )
    timeout: float | None = field(
        default=None,
        metadata=option("deadline in seconds for each Generate call (default: none)", minimum=0),
    )
    progress: bool = field(default=True, metadata=option("show a progress bar"))

    def validate(self) -> None:
        if self.start_index + self.count - 1 > (1 << 64) - 1:
            raise ConfigError("--start-index + --count - 1 must fit in 64 bits")
        if self.tls_ca is not None and not self.tls_ca.is_file():
            raise ConfigError(f"--tls-ca: {self.tls_ca} is not a file")
