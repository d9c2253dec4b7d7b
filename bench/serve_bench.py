"""Serving benchmark: images/s through the dermsynth gRPC stream vs in-process ONNX Runtime.

    .venv/bin/python bench/serve_bench.py [--quick]

Exports an UNTRAINED 64 px DCGAN generator (latent 100) with the trainer's own
``build_generator`` + ``export_generator`` (weights do not change the speed of a forward pass),
then for inference batch 8 and 64 starts a real server subprocess (``python -m serving serve
--inference-batch B``) and measures, in the same run and alternating with each other:

- in-process ONNX Runtime ``session.run`` on a fixed [B, 100] batch, one session with
  intra-op threads = ONNX Runtime's default (one per core) and spin-waiting off, the reference;
  and, for context, with ONNX Runtime's default options (spin-waiting on). The server runs with
  its own defaults (two ONNX Runtime calls in flight with half the cores each, prefetch 4);
- the gRPC stream with 1 and 4 concurrent clients, RAW (uint8 pixels) and PNG, batch size B:
  images/s received by the clients, and the ratio to in-process;
- time to first batch (a fresh request of B images, median of several);
- the server's RSS after warm-up and after it has served 20,000 images.

A stream window is one Generate request of ~``--seconds`` worth of images (~1,700 at 2.5 s),
as data-set requests are long; with short windows (e.g. ``--seconds 0.75``, ~450 images) the
pipeline's fill and drain (one fixed-shape chunk's latency, shown as time to first batch) weigh
on the ratio: measured here 0.93 instead of 1.07 for RAW x1 at batch 64.
Each stream window is paired with an in-process window just before it; the table shows medians
over ``--repeats`` pairs (the ratio column is the median of the per-pair ratios), because this
machine's 2 cores are shared with other work. CPU ms per image (server process, client
threads, in-process) is printed too: it is steadier than wall time under contention.
Targets: RAW >= 0.90 of in-process at batch 8, >= 0.97 at batch 64; PNG >= 0.8 of RAW.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import grpc  # noqa: E402
import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
import psutil  # noqa: E402

from protos.dermsynth.v1 import generator_pb2 as pb  # noqa: E402
from protos.dermsynth.v1 import generator_pb2_grpc as pb_grpc  # noqa: E402

RESOLUTION, LATENT = 64, 100
RSS_IMAGES = 20_000
EXPORT = f"""
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import keras
from trainer.model import build_generator
from trainer.export import export_generator
keras.utils.set_random_seed(0)
g = build_generator({RESOLUTION}, {LATENT})
export_generator(g, sys.argv[1], manifest={{"training_data": {{"fingerprint": "0" * 64,
    "image_count": 0, "layout": "folder", "filters": {{}}}}, "epochs": 0, "seed": 0,
    "ema": False}})
"""


def export_model(out: Path) -> None:
    subprocess.run(
        [sys.executable, "-c", EXPORT, str(out)],
        cwd=REPO,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


class Server:
    """A `python -m serving serve` subprocess on a free port."""

    def __init__(self, model_dir: Path, batch: int, log_path: Path) -> None:
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "serving",
                "serve",
                "--model",
                str(model_dir),
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--metrics-port",
                "none",
                "--inference-batch",
                str(batch),
                "--max-batch-size",
                "256",
                "--max-streams",
                "8",
                "--grace-seconds",
                "1",
            ],
            cwd=REPO,
            stderr=subprocess.PIPE,
            text=True,
        )
        for line in self.proc.stderr:
            self.log.write(line)
            match = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
            if match:
                self.target = f"127.0.0.1:{match.group(1)}"
                break
        else:
            raise SystemExit(f"server did not start; see {log_path}")
        threading.Thread(
            target=lambda: [self.log.write(x) for x in self.proc.stderr], daemon=True
        ).start()
        self.channels = [grpc.insecure_channel(self.target) for _ in range(4)]
        self.served = 0

    def rss_mib(self) -> float:
        return psutil.Process(self.proc.pid).memory_info().rss / 2**20

    def cpu_seconds(self) -> float:
        times = psutil.Process(self.proc.pid).cpu_times()
        return times.user + times.system

    def stream(
        self, clients: int, count: int, batch: int, encoding: int
    ) -> tuple[float, float, float]:
        """(images/s, server CPU ms per image, client CPU ms per image) of ``clients``
        concurrent streams of ``count`` images each."""
        errors: list[BaseException] = []

        def run(i: int) -> None:
            try:
                stub = pb_grpc.GeneratorStub(self.channels[i])
                n = 0
                for b in stub.Generate(
                    pb.GenerateRequest(seed=i, count=count, batch_size=batch, encoding=encoding)
                ):
                    n += len(b.images)
                assert n == count
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
        server_cpu, client_cpu = self.cpu_seconds(), time.process_time()
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - start
        server_cpu, client_cpu = self.cpu_seconds() - server_cpu, time.process_time() - client_cpu
        if errors:
            raise errors[0]
        n = clients * count
        self.served += n
        return n / elapsed, server_cpu * 1000 / n, client_cpu * 1000 / n

    def first_batch_ms(self, batch: int, tries: int = 7) -> float:
        stub = pb_grpc.GeneratorStub(self.channels[0])
        times = []
        for i in range(tries):
            start = time.perf_counter()
            call = stub.Generate(
                pb.GenerateRequest(
                    seed=100 + i, count=batch, batch_size=batch, encoding=pb.ENCODING_RAW_RGB8
                )
            )
            next(call)
            times.append(time.perf_counter() - start)
            list(call)
            self.served += batch
        return statistics.median(times) * 1000

    def close(self) -> None:
        for c in self.channels:
            c.close()
        self.proc.terminate()
        self.proc.wait(30)
        self.log.close()


def in_process_rate(
    session: ort.InferenceSession, batch: int, seconds: float
) -> tuple[float, float]:
    """(images/s, CPU ms per image) of back-to-back ``session.run`` on one fixed batch."""
    z = np.random.default_rng(0).standard_normal((batch, LATENT), dtype=np.float32)
    session.run(None, {"latent": z})
    n, cpu, start = 0, time.process_time(), time.perf_counter()
    while time.perf_counter() - start < seconds:
        session.run(None, {"latent": z})
        n += batch
    return n / (time.perf_counter() - start), (time.process_time() - cpu) * 1000 / n


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=4, help="window pairs per figure")
    parser.add_argument("--seconds", type=float, default=2.5, help="length of one window")
    parser.add_argument("--quick", action="store_true", help="2 repeats (a smoke run)")
    args = parser.parse_args()
    if args.quick:
        args.repeats = 2
    work = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    try:
        return run(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(args: argparse.Namespace, work: Path) -> int:
    print(
        f"exporting an untrained {RESOLUTION} px DCGAN generator (latent {LATENT}) ...", flush=True
    )
    export_model(work / "model")
    onnx_path = str(work / "model" / "model.onnx")
    options = ort.SessionOptions()  # what serving.model.load_model sets by default
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
    default_session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    print(
        f"cpu cores: {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}, onnxruntime "
        f"{ort.__version__}; server: its defaults (--inference-workers 2 x cores/2 threads, "
        "prefetch 4); "
        f"in-process: one session, intra-op threads one per core; spin-waiting off in both;"
        f"\nmedians of {args.repeats} (in-process, stream) window pairs of ~{args.seconds:g} s\n",
        flush=True,
    )
    configs = [
        (1, pb.ENCODING_RAW_RGB8, "RAW x1"),
        (1, pb.ENCODING_PNG, "PNG x1"),
        (4, pb.ENCODING_RAW_RGB8, "RAW x4"),
        (4, pb.ENCODING_PNG, "PNG x4"),
    ]
    rows, rss = [], None
    for batch in (8, 64):
        server = Server(work / "model", batch, work / f"server-{batch}.log")
        try:
            reference, _ = in_process_rate(session, batch, 1.0)  # warm-up and sizing
            server.stream(1, batch * 4, batch, pb.ENCODING_RAW_RGB8)  # warm-up
            rss_start = server.rss_mib()
            ttfb = server.first_batch_ms(batch)
            pairs: dict[str, list] = {key: [] for _, _, key in configs}
            for _ in range(args.repeats):
                for clients, enc, key in configs:  # an in-process window, then a stream window
                    ref_rate, ref_cpu = in_process_rate(session, batch, args.seconds)
                    per_client = max(batch, int(reference * args.seconds / clients))
                    per_client -= per_client % batch
                    rate, server_cpu, client_cpu = server.stream(clients, per_client, batch, enc)
                    pairs[key].append(
                        (rate, ref_rate, rate / ref_rate, server_cpu, client_cpu, ref_cpu)
                    )
            medians = {
                key: [statistics.median(col) for col in zip(*values)]
                for key, values in pairs.items()
            }
            for _, _, key in configs:
                rate, ref_rate, ratio, server_cpu, client_cpu, ref_cpu = medians[key]
                raw = medians["RAW " + key.split()[1]][0]
                rows.append(
                    (batch, key, rate, ref_rate, ratio, rate / raw, server_cpu, client_cpu, ref_cpu)
                )
            rows.append((batch, "first batch", ttfb))
            rows.append(
                (
                    batch,
                    "default options",
                    statistics.median(
                        in_process_rate(default_session, batch, args.seconds)[0] for _ in range(3)
                    ),
                )
            )
            if batch == 64:  # memory under the same load pattern: does it level off?
                rss = [rss_start, server.rss_mib()]
                served_before = server.served
                while server.served - served_before < RSS_IMAGES:
                    server.stream(4, 1280, batch, pb.ENCODING_RAW_RGB8)
                    rss.append(server.rss_mib())
        finally:
            server.close()
    print(
        f"{'batch':>5}  {'stream':<7} {'images/s':>9} {'in-proc/s':>9} {'ratio':>6} "
        f"{'vs RAW':>6}   CPU ms/image: {'server':>6} {'client':>6} {'in-proc':>7}"
    )
    for batch, key, *figures in rows:
        if key == "first batch":
            print(f"{batch:>5}  time to first batch: {figures[0]:.1f} ms (median of 7)")
            continue
        if key == "default options":
            print(
                f"{batch:>5}  in-process with ONNX Runtime's default options (spin-waiting "
                f"on): {figures[0]:.1f} images/s (median of 3)"
            )
            continue
        rate, ref, ratio, vs_raw, server_cpu, client_cpu, ref_cpu = figures
        print(
            f"{batch:>5}  {key:<7} {rate:9.1f} {ref:9.1f} {ratio:6.3f} {vs_raw:6.3f}"
            f"   {'':>13} {server_cpu:6.2f} {client_cpu:6.2f} {ref_cpu:7.2f}"
        )
    if rss:
        print(
            f"\nserver RSS (batch 64), MiB: {rss[0]:.0f} after warm-up, {rss[1]:.0f} after the "
            f"timed windows, then every 5,120 images (4 clients, RAW) up to {RSS_IMAGES:,}: "
            + ", ".join(f"{r:.0f}" for r in rss[2:])
        )
    print("targets: RAW x1 ratio >= 0.90 (batch 8), >= 0.97 (batch 64); PNG >= 0.8 of RAW")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (other processes share the cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
