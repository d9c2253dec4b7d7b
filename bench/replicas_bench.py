"""Scale-out figures for docs/scaling.md: generation throughput of one server replica (its own
process) against two replicas behind gRPC client-side ``round_robin`` (the headless-Service
setup of deploy/kubernetes/), with the same total CPU threads, and against in-process ONNX Runtime, all
in one run on the same 64 px generator (untrained weights: throughput does not depend on them).

    .venv/bin/python bench/replicas_bench.py [--images 2048] [--clients 4] [--repeats 3]

Prints images/s per setup and encoding, and the ratios between them.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402
import numpy as np  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402

from protos.dermsynth.v1 import generator_pb2 as pb  # noqa: E402
from protos.dermsynth.v1 import generator_pb2_grpc as pb_grpc  # noqa: E402
from serving.model import load_model  # noqa: E402

ROUND_ROBIN = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})
BATCH = 64


def export_model(resolution: int, out: Path) -> Path:
    import keras

    from common.hashing import fingerprint
    from trainer.export import export_generator
    from trainer.model import build_generator

    keras.utils.set_random_seed(0)
    manifest = {"training_data": {"fingerprint": fingerprint([]), "image_count": 0,
                                  "layout": None,
                                  "filters": {"benign_malignant": None, "diagnosis": None}},
                "epochs": 0, "seed": 0, "ema": False}
    return export_generator(build_generator(resolution, 100), out, manifest=manifest)


def in_process(model_dir: Path, images: int, threads: int, repeats: int) -> float:
    model = load_model(model_dir, provider="cpu", threads=threads, inference_batch=BATCH)
    latents = np.random.default_rng(0).standard_normal((BATCH, model.latent_dim), np.float32)
    model.run(latents)  # warm-up
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(images // BATCH):
            model.run(latents)
        best = max(best, images / (time.perf_counter() - start))
    return best


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_replicas(model_dir: Path, replicas: int, threads: int) -> list[tuple[subprocess.Popen, int]]:
    """Each replica is its own `python -m serving serve` process, as in a pod."""
    servers = []
    for _ in range(replicas):
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "serving", "serve", "--model", str(model_dir), "--host",
             "127.0.0.1", "--port", str(port), "--threads", str(threads), "--metrics-port",
             "none", "--inference-batch", str(BATCH), "--max-batch-size", str(BATCH)],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        servers.append((proc, port))
    for proc, port in servers:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=120)
            health = health_pb2_grpc.HealthStub(channel)
            for _ in range(240):
                status = health.Check(health_pb2.HealthCheckRequest(), timeout=5).status
                if status == health_pb2.HealthCheckResponse.SERVING:
                    break
                time.sleep(0.5)
    return servers


def through_grpc(model_dir: Path, *, replicas: int, threads: int, images: int, clients: int,
                 encoding: int, repeats: int) -> float:
    servers = start_replicas(model_dir, replicas, threads)
    target = "ipv4:" + ",".join(f"127.0.0.1:{port}" for _s, port in servers)
    per_client = images // clients

    def one_client(k: int) -> int:
        # One channel per client, as separate client processes would have.
        with grpc.insecure_channel(target, options=[("grpc.service_config", ROUND_ROBIN),
                                                    ("grpc.enable_http_proxy", 0)]) as channel:
            stub = pb_grpc.GeneratorStub(channel)
            got = 0
            for start in range(0, per_client, BATCH):  # several calls: round_robin spreads calls
                request = pb.GenerateRequest(seed=k, count=BATCH, start_index=start,
                                             batch_size=BATCH, encoding=encoding)
                got += sum(len(b.images) for b in stub.Generate(request, timeout=300))
            return got

    try:
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(one_client, range(clients)))  # warm-up: connections, sessions
            best = 0.0
            for _ in range(repeats):  # best of N: the machine is shared, noise only slows
                start = time.perf_counter()
                total = sum(pool.map(one_client, range(clients)))
                best = max(best, total / (time.perf_counter() - start))
            return best
    finally:
        for proc, _port in servers:
            proc.terminate()
            proc.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3, help="best of N timed passes")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = export_model(args.resolution, Path(tmp) / "model")
        base = in_process(model_dir, args.images, cores, args.repeats)
        rows = [("in-process ONNX Runtime", f"{cores} threads", "-", base)]
        for encoding, name in ((pb.ENCODING_RAW_RGB8, "RAW"), (pb.ENCODING_PNG, "PNG")):
            for replicas in (1, 2):
                threads = max(1, cores // replicas)
                rate = through_grpc(model_dir, replicas=replicas, threads=threads,
                                    images=args.images, clients=args.clients, encoding=encoding,
                                    repeats=args.repeats)
                rows.append((f"{replicas} replica(s) x {threads} thread(s)", name,
                             f"{args.clients} clients", rate))
    print(f"\n{args.resolution} px generator, batch {BATCH}, {args.images} images per setup, "
          f"best of {args.repeats}, {cores} CPU cores, load average {os.getloadavg()[0]:.1f}")
    print(f"{'setup':34s} {'encoding':9s} {'load':10s} {'images/s':>9s} {'vs in-process':>14s}")
    for setup, enc, load, rate in rows:
        print(f"{setup:34s} {enc:9s} {load:10s} {rate:9.0f} {rate / base:14.2f}")
    for name in ("RAW", "PNG"):
        one, two = (r[3] for r in rows if r[1] == name)
        print(f"{name}: 2 replicas / 1 replica on the same {cores} cores = {two / one:.2f}")


if __name__ == "__main__":
    main()
