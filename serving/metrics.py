"""Prometheus metrics of the generation server, on their own registry and HTTP port.

Exposed series (prometheus_client text format at ``http://HOST:METRICS_PORT/metrics``):

- ``dermsynth_images_generated_total{encoding}``: images sent to clients;
- ``dermsynth_requests_total{outcome}``: Generate calls by outcome (ok, cancelled,
  invalid_argument, resource_exhausted, unavailable, error);
- ``dermsynth_inference_batch_seconds``: histogram of one ONNX Runtime call (one fixed-shape
  chunk of ``inference_batch`` rows);
- ``dermsynth_active_streams``: Generate streams being served now.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from common.errors import UserError

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """The server's metric objects; one registry per server so tests can run several."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.images = Counter(
            "dermsynth_images_generated",
            "Images sent to clients",
            ["encoding"],
            registry=self.registry,
        )
        self.requests = Counter(
            "dermsynth_requests", "Generate calls by outcome", ["outcome"], registry=self.registry
        )
        self.inference_seconds = Histogram(
            "dermsynth_inference_batch_seconds",
            "Seconds of one ONNX Runtime call on a fixed-shape chunk",
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.active_streams = Gauge(
            "dermsynth_active_streams", "Generate streams in flight", registry=self.registry
        )
        self._http = None

    def serve_http(self, host: str, port: int) -> int:
        """Start the /metrics HTTP endpoint (port 0: a free one); return its port. Raises
        UserError when the port is in use or the address not available."""
        try:
            self._http, _thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            raise UserError(
                f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}"
            ) from None
        return self._http.server_address[1]

    def stop_http(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
