"""Scale-out figures for docs/scaling.md: generation throughput of one server replica (its own
process) against two replicas behind gRPC client-side ``round_robin`` (the headless-Service
setup of deploy/kubernetes/), with the same total CPU threads, and against in-process ONNX
Runtime, all in one run on the same 64 px generator (untrained weights: throughput does not
depend on them).

    .venv/bin/python bench/replicas_bench.py [--images 2048] [--clients 4] [--repeats 3]

Prints images/s per setup and encoding, and the ratios between them.
"""

from __future__ import annotations

import argparse
import json
import os
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

from common.images import to_uint8  # noqa: E402
from common.net import free_port  # noqa: E402
from protos.dermsynth.v1 import generator_pb2 as pb  # noqa: E402
from protos.dermsynth.v1 import generator_pb2_grpc as pb_grpc  # noqa: E402
from serving.generation import encode_png  # noqa: E402
from serving.model import load_model  # noqa: E402

ROUND_ROBIN = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})
BATCH = 64


def export_model(resolution: int, out: Path) -> Path:
    import keras

    from common.hashing import fingerprint
    from trainer.export import export_generator
    from trainer.model import build_generator

    keras.utils.set_random_seed(0)
    manifest = {
        "training_data": {
            "fingerprint": fingerprint([]),
            "image_count": 0,
            "layout": None,
            "filters": {"benign_malignant": None, "diagnosis": None},
        },
        "epochs": 0,
        "seed": 0,
        "ema": False,
    }
    return export_generator(build_generator(resolution, 100), out, manifest=manifest)


def in_process_window(model, latents: np.ndarray, images: int) -> float:
    start = time.perf_counter()
    for _ in range(images // BATCH):
        model.run(latents)
    return images / (time.perf_counter() - start)


def postprocess_rate(model, latents: np.ndarray, images: int) -> float:
    """images/s of the server's own CPU post-processing alone ([-1, 1] floats -> uint8 -> PNG),
    one thread: the part that stays on the CPU when inference moves to a GPU."""
    outputs = model.run(latents)
    start = time.perf_counter()
    for _ in range(images // BATCH):
        for image in to_uint8(outputs):
            encode_png(image)
    return images / (time.perf_counter() - start)


def start_replicas(
    model_dir: Path, replicas: int, threads: int
) -> list[tuple[subprocess.Popen, int]]:
    """Each replica is its own `python -m serving serve` process, as in a pod, running one
    ONNX Runtime call at a time with ``threads`` threads, so that the setups differ only in how
    the same cores are split between processes."""
    servers = []
    for _ in range(replicas):
        port = free_port()
        proc = subprocess.Popen(
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
                str(port),
                "--threads",
                str(threads),
                "--inference-workers",
                "1",
                "--metrics-port",
                "none",
                "--inference-batch",
                str(BATCH),
                "--max-batch-size",
                str(BATCH),
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        servers.append((proc, port))
    for _proc, port in servers:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=120)
            health = health_pb2_grpc.HealthStub(channel)
            for _ in range(240):
                status = health.Check(health_pb2.HealthCheckRequest(), timeout=5).status
                if status == health_pb2.HealthCheckResponse.SERVING:
                    break
                time.sleep(0.5)
    return servers


def grpc_window(target: str, *, images: int, clients: int, encoding: int) -> float:
    """images/s received by ``clients`` concurrent clients, each on its own channel (as separate
    client processes would be) making several calls, so that round_robin spreads them."""
    per_client = images // clients

    def one_client(k: int) -> int:
        with grpc.insecure_channel(
            target, options=[("grpc.service_config", ROUND_ROBIN), ("grpc.enable_http_proxy", 0)]
        ) as channel:
            grpc.channel_ready_future(channel).result(timeout=60)
            stub = pb_grpc.GeneratorStub(channel)
            got = 0
            for start in range(0, per_client, BATCH):
                request = pb.GenerateRequest(
                    seed=k, count=BATCH, start_index=start, batch_size=BATCH, encoding=encoding
                )
                got += sum(len(b.images) for b in stub.Generate(request, timeout=300))
            return got

    with ThreadPoolExecutor(clients) as pool:
        start = time.perf_counter()
        total = sum(pool.map(one_client, range(clients)))
        return total / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3, help="best of N interleaved rounds")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    encodings = ((pb.ENCODING_RAW_RGB8, "RAW"), (pb.ENCODING_PNG, "PNG"))
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = export_model(args.resolution, Path(tmp) / "model")
        model = load_model(model_dir, provider="cpu", threads=cores, inference_batch=BATCH)
        latents = np.random.default_rng(0).standard_normal((BATCH, model.latent_dim), np.float32)
        groups = {
            replicas: start_replicas(model_dir, replicas, max(1, cores // replicas))
            for replicas in (1, 2)
        }
        targets = {
            r: "ipv4:" + ",".join(f"127.0.0.1:{p}" for _proc, p in servers)
            for r, servers in groups.items()
        }
        best: dict[tuple, float] = {}
        try:
            in_process_window(model, latents, BATCH * 4)  # warm-up
            for r in groups:
                for e, _name in encodings:
                    grpc_window(
                        targets[r], images=args.clients * BATCH, clients=args.clients, encoding=e
                    )
            # Rounds interleave every setup, so load from other work hits them alike; each
            # figure is its best round (noise only ever slows a window down).
            for _ in range(args.repeats):
                rate = in_process_window(model, latents, args.images)
                best["in-process"] = max(best.get("in-process", 0.0), rate)
                rate = postprocess_rate(model, latents, args.images)
                best["postprocess"] = max(best.get("postprocess", 0.0), rate)
                for r in groups:
                    for e, _name in encodings:
                        rate = grpc_window(
                            targets[r], images=args.images, clients=args.clients, encoding=e
                        )
                        best[(r, e)] = max(best.get((r, e), 0.0), rate)
        finally:
            for servers in groups.values():
                for proc, _port in servers:
                    proc.terminate()
                    proc.wait(timeout=60)
    base = best["in-process"]
    print(
        f"\n{args.resolution} px generator, batch {BATCH}, {args.images} images per window, "
        f"best of {args.repeats} interleaved rounds, {cores} CPU cores, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(f"{'setup':34s} {'encoding':9s} {'clients':>7s} {'images/s':>9s} {'vs in-process':>14s}")
    print(f"{'in-process ONNX Runtime':34s} {'-':9s} {'-':>7s} {base:9.0f} {1:14.2f}")
    for e, name in encodings:
        for r in groups:
            setup = f"{r} replica{'s' if r > 1 else ''} x {max(1, cores // r)} thread(s)"
            rate = best[(r, e)]
            print(f"{setup:34s} {name:9s} {args.clients:7d} {rate:9.0f} {rate / base:14.2f}")
    print(
        f"{'PNG post-processing alone, 1 thread':34s} {'PNG':9s} {'-':>7s} "
        f"{best['postprocess']:9.0f} {best['postprocess'] / base:14.2f}"
    )
    for e, name in encodings:
        print(
            f"{name}: 2 replicas / 1 replica on the same {cores} cores = "
            f"{best[(2, e)] / best[(1, e)]:.2f}"
        )


if __name__ == "__main__":
    main()
