"""Full-archive scale, side by side in one run, on a synthetic archive (bench/data_archive.py):

  * preparation images/s, 1024x768 and 4000x3000 JPEG sources -> 64 px: plain serial PIL
    (``common.images.load_square`` in a loop, the path before issue 9) vs
    ``common.image_cache.prepare`` (JPEG draft mode + all cores, cold cache), plus the same with
    one process (the draft gain alone) and with a warm cache (a resume);
  * peak RSS of training input for each N (``--sizes``), each in a fresh process: prepare (warm
    cache) -> pack -> one epoch of ``trainer.pipeline.ImagePipeline`` batches; and the same
    batches from an in-memory array under ``tf.constant`` (the pipeline before issue 9);
  * time to the first training step of ``python -m trainer train --epochs 1``, cold and warm
    image cache (``DERMSYNTH_CACHE_DIR``);
  * the validator at scale: seconds and peak RSS for 100,000 synthetic x 30,000 real 2048-d
    features, and for N x N at each N (``bench/validator_scale.py``).

Peak RSS is the process's own high-water mark (``wait4`` rusage, the kernel's ru_maxrss) and,
sampled every 0.1 s with psutil, the sum over the process and its children. Results go to a
JSON file (``--out``) and the RSS-vs-N plot to docs/data_bench_rss.png.

    .venv/bin/python bench/data_bench.py                 # full run (~40 min on 2 cores)
    .venv/bin/python bench/data_bench.py --quick         # small N, a few minutes
    .venv/bin/python bench/data_bench.py --parts prep,rss --sizes 1000,5000,20000
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import data_archive  # noqa: E402

PARTS = ("prep", "rss", "first-step", "validator")
PLOT = ROOT / "docs" / "data_bench_rss.png"
MB = 1024 * 1024


# ---------------------------------------------------------------- running and measuring children
def run_measured(cmd: list[str], *, env=None, stop_on: re.Pattern | None = None, timeout=1800):
    """Runs ``cmd``; returns dict(rc, seconds, peak_rss_mb (own), tree_peak_mb, output, marks).

    ``marks`` maps each named group of ``stop_on`` to the seconds after start at which it was
    first seen in stdout/stderr; when the group ``stop`` is seen the process is terminated.
    """
    import psutil

    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=0
    )
    chunks: list[bytes] = []
    marks: dict[str, float] = {}
    tree_peak = [0]
    done = threading.Event()

    def read() -> None:
        while data := os.read(proc.stdout.fileno(), 65536):
            chunks.append(data)
            if stop_on is None:
                continue
            text = b"".join(chunks[-64:]).decode(errors="replace")
            for m in stop_on.finditer(text):
                for name, value in m.groupdict().items():
                    if value is not None and name not in marks:
                        marks[name] = time.perf_counter() - t0
            if "stop" in marks and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)

    def sample() -> None:
        try:
            ps = psutil.Process(proc.pid)
            while not done.is_set():
                total = ps.memory_info().rss
                for child in ps.children(recursive=True):
                    try:
                        total += child.memory_info().rss
                    except psutil.Error:
                        pass
                tree_peak[0] = max(tree_peak[0], total)
                done.wait(0.1)
        except psutil.Error:
            pass

    threads = [threading.Thread(target=read, daemon=True), threading.Thread(target=sample)]
    for t in threads:
        t.start()
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    _, status, usage = os.wait4(proc.pid, 0)
    timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - t0
    done.set()
    for t in threads:
        t.join(5)
    return {
        "rc": proc.returncode,
        "seconds": round(seconds, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),  # KiB on Linux
        "tree_peak_mb": round(tree_peak[0] / MB, 1),
        "output": b"".join(chunks).decode(errors="replace"),
        "marks": {k: round(v, 2) for k, v in marks.items()},
    }


def child_json(result: dict) -> dict:
    """The last JSON line a child printed (its own measurements)."""
    for line in reversed(result["output"].splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    tail = "\n".join(result["output"].splitlines()[-15:])
    raise RuntimeError(f"child failed (rc {result['rc']}):\n{tail}")


def child(args: list[str], **kw) -> tuple[dict, dict]:
    result = run_measured([sys.executable, __file__, "_child", *args], **kw)
    return result, child_json(result)


# ---------------------------------------------------------------- the parts
def policy(resolution: int, draft: bool = True):
    from common.image_cache import PrepPolicy

    return PrepPolicy(size=resolution, draft=draft)


def warm_page_cache(paths: list[Path]) -> None:
    for p in paths:
        p.read_bytes()


def draft_square(path: Path, size: int):
    """The reference: Pillow's JPEG draft mode (DCT scaling to >= 2*size on both sides), EXIF
    transpose, RGB, centre crop + Lanczos (common.images.centre_square). No hashing, no cache."""
    from PIL import Image, ImageOps

    from common.images import centre_square

    with Image.open(path) as img:
        img.draft("RGB", (2 * size, 2 * size))
        return centre_square(ImageOps.exif_transpose(img).convert("RGB"), size)


def reference_draft_pool(paths: list[Path], size: int) -> None:
    from concurrent.futures import ProcessPoolExecutor
    from functools import partial

    with ProcessPoolExecutor(os.cpu_count()) as pool:
        for _ in pool.map(partial(draft_square, size=size), paths, chunksize=16):
            pass


def prep_rates(paths: list[Path], resolution: int, repeats: int, work: Path, log) -> dict:
    """images/s of serial load_square vs prepare (cold cache, all cores / one process; warm),
    and the bare reference: draft mode in a process pool, nothing stored."""
    from common.images import load_square

    warm_page_cache(paths)  # every contender reads from the OS page cache
    best: dict[str, float] = {}
    this_round: dict[str, float] = {}

    def keep(name: str, seconds: float) -> None:
        this_round[name] = len(paths) / seconds
        best[name] = max(best.get(name, 0.0), this_round[name])

    for r in range(repeats):
        t = time.perf_counter()
        for p in paths:
            load_square(p, resolution)
        keep("serial_pil", time.perf_counter() - t)
        t = time.perf_counter()
        reference_draft_pool(paths, resolution)
        keep("reference_draft_pool", time.perf_counter() - t)
        try:
            from common.image_cache import ImageCache, prepare
        except ImportError as exc:
            log(f"  prepare not available yet ({exc}); serial PIL and the reference only")
            log(f"  round {r + 1}: " + ", ".join(f"{k} {v:.0f}/s" for k, v in this_round.items()))
            continue
        for name, workers in (("prepare", 0), ("prepare_1proc", 1)):
            root = Path(tempfile.mkdtemp(prefix="cache-", dir=work))
            try:
                t = time.perf_counter()
                out = prepare(
                    paths,
                    policy(resolution),
                    cache=ImageCache(root),
                    workers=workers,
                    progress=False,
                )
                keep(name, time.perf_counter() - t)
                if workers == 0:
                    t = time.perf_counter()
                    prepare(paths, policy(resolution), cache=ImageCache(root), progress=False)
                    keep("prepare_warm", time.perf_counter() - t)
                    if out.skipped:
                        log(f"  prepare skipped {len(out.skipped)}: {out.skipped[:2]}")
            finally:
                shutil.rmtree(root, ignore_errors=True)
        log(f"  round {r + 1}: " + ", ".join(f"{k} {v:.0f}/s" for k, v in this_round.items()))
    out = {k: round(v, 1) for k, v in best.items()}
    out["count"] = len(paths)
    return out


def rss_curve(archive: Path, sizes: list[int], a, work: Path, log) -> dict:
    """Per N: peak RSS of the training input, streamed from a pack vs held in memory."""
    cache = work / "cache-rss"
    listing = work / "files.txt"
    listing.write_text("\n".join(map(str, data_archive.files(archive, max(sizes)))))
    common = ["--files", str(listing), "--cache", str(cache), "--resolution", str(a.resolution)]
    common += ["--batch-size", str(a.batch_size)]
    curve: dict = {"stream": {}, "memory": {}, "errors": {}}
    try:
        result, out = child(["warm", "--n", str(max(sizes)), *common])
        curve["warm_up"] = {**out, **_rss(result)}
        log(
            f"  cold prepare of {max(sizes)} (fills the cache): {out['images_per_s']:.0f} "
            f"images/s, peak RSS {result['peak_rss_mb']:.0f} MB "
            f"(tree {result['tree_peak_mb']:.0f} MB)"
        )
    except RuntimeError as exc:
        curve["errors"]["warm"] = str(exc)
        log(f"  warm-up failed: {str(exc).splitlines()[-1]}")
    for n in sizes:
        for mode in a.rss_modes:
            if mode == "stream" and "warm" in curve["errors"]:
                continue
            try:
                result, out = child([mode, "--n", str(n), *common])
            except RuntimeError as exc:
                curve["errors"][f"{mode}-{n}"] = str(exc)
                log(f"  N={n:>6} {mode:6}: failed: {str(exc).splitlines()[-1]}")
                continue
            curve[mode][n] = {**out, **_rss(result)}
            log(
                f"  N={n:>6} {mode:6}: peak RSS {result['peak_rss_mb']:.0f} MB "
                f"(tree {result['tree_peak_mb']:.0f} MB), {out['batches']} batches "
                f"in {out['epoch_s']:.1f} s, prepare {out['prepare_s']:.1f} s"
            )
    return curve


def _rss(result: dict) -> dict:
    return {k: result[k] for k in ("seconds", "peak_rss_mb", "tree_peak_mb")}


# "training RUN for epochs ..." is logged when the input is ready; the epoch's tqdm bar shows
# " 1/N [" once the first step has run.
FIRST_STEP = re.compile(
    r"(?P<ready>training \S+ for epochs)|(?P<stop>epoch 1/\d+:[^\r\n]*? [1-9]\d*/\d+ \[)"
)


def first_step(folder: Path, a, work: Path, log) -> dict:
    """Seconds from `python -m trainer train` to its first training step, cold and warm cache."""
    cache = Path(tempfile.mkdtemp(prefix="cache-first-", dir=work))
    out = {}
    try:
        for name in ("cold", "warm"):
            run = Path(tempfile.mkdtemp(prefix=f"run-{name}-", dir=work))
            cmd = [
                sys.executable,
                "-m",
                "trainer",
                "train",
                "--data",
                str(folder),
                "--run",
                str(run),
                "--epochs",
                "1",
                "--resolution",
                str(a.resolution),
                "--batch-size",
                str(a.batch_size),
            ]
            env = {**os.environ, "DERMSYNTH_CACHE_DIR": str(cache)}
            result = run_measured(cmd, env=env, stop_on=FIRST_STEP)
            shutil.rmtree(run, ignore_errors=True)
            if "stop" not in result["marks"]:
                tail = "\n".join(result["output"].splitlines()[-10:])
                raise RuntimeError(f"no training step seen (rc {result['rc']}):\n{tail}")
            out[name] = {
                "first_step_s": result["marks"]["stop"],
                "input_ready_s": result["marks"].get("ready"),
                "peak_rss_mb": result["peak_rss_mb"],
            }
            log(
                f"  {name}: first step after {out[name]['first_step_s']:.1f} s "
                f"(input ready {out[name]['input_ready_s']} s), peak RSS "
                f"{result['peak_rss_mb']:.0f} MB"
            )
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    out["count"] = sum(1 for _ in folder.glob("*.jpg"))
    return out


def validator_scale(a, sizes: list[int], log, out: dict, save) -> dict:
    """Fills ``out`` (saved after each measure): N x N for each N at each of
    ``--validator-budgets`` (``by_budget``: {memory_mb: {N: ...}}, with the ratio of the
    largest N's peak to the smallest's), then the full size at ``--memory-mb`` (unless
    ``--validator none``)."""
    from validator_scale import measure  # bench/validator_scale.py (helper S3)

    by_budget = out.setdefault("by_budget", {})
    for mb in a.validator_budgets:
        series = by_budget.setdefault(str(mb), {})
        for n in sizes:
            series[str(n)] = measure(n, n, dim=2048, memory_mb=mb)
            log(f"  --memory-mb {mb}, {n} x {n}: {_short(series[str(n)])}")
            save()
        lo, hi = series[str(min(sizes))], series[str(max(sizes))]
        out.setdefault("flatness", {})[str(mb)] = round(hi["peak_rss_mb"] / lo["peak_rss_mb"], 3)
        log(
            f"  --memory-mb {mb}: peak RSS N={max(sizes)} / N={min(sizes)}: "
            f"{out['flatness'][str(mb)]:.2f}x"
        )
    if a.validator:
        n_syn, n_real = a.validator
        out["full"] = measure(n_syn, n_real, dim=2048, memory_mb=a.memory_mb or 1024)
        log(f"  {n_syn} x {n_real}: {_short(out['full'])}")
    return {}


def _short(d: dict) -> str:
    keys = ("synthetic", "real", "memory_mb", "features_mb", "peak_rss_mb", "total_seconds")
    text = ", ".join(f"{k} {d[k]}" for k in keys if k in d)
    slowest = sorted((d.get("seconds") or {}).items(), key=lambda kv: -kv[1])[:4]
    if slowest:
        text += " (" + ", ".join(f"{k} {v} s" for k, v in slowest) + ")"
    if d.get("errors"):
        text += f"; ERRORS: {d['errors']}"
    return text


# ---------------------------------------------------------------- the child process
def run_child(argv: list[str]) -> int:
    """One measurement in this fresh process; prints one JSON line."""
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=("warm", "stream", "memory"))
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--files", type=Path, required=True)
    p.add_argument("--cache", type=Path, required=True)
    p.add_argument("--resolution", type=int, required=True)
    p.add_argument("--batch-size", type=int, required=True)
    a = p.parse_args(argv)
    paths = [Path(s) for s in a.files.read_text().splitlines()[: a.n]]
    t = time.perf_counter()
    try:
        from common.image_cache import ImageCache, prepare
    except ImportError:  # before issue 9: serial decode, in memory (the "memory" mode only)
        if a.mode != "memory":
            raise
        from common.images import load_images

        pixels, skipped = load_images(paths, a.resolution, progress=False), 0
    else:
        prepared = prepare(paths, policy(a.resolution), cache=ImageCache(a.cache), progress=False)
        pixels, skipped = None, len(prepared.skipped)
    prepare_s = time.perf_counter() - t
    out = {"n": a.n, "prepare_s": round(prepare_s, 2), "skipped": skipped}
    if a.mode == "warm":
        print(json.dumps(out | {"images_per_s": round(a.n / prepare_s, 1)}))
        return 0
    import tensorflow as tf

    with tempfile.TemporaryDirectory(dir=a.cache.parent) as tmp:
        if a.mode == "stream":
            from common.image_pack import PackReader
            from trainer.pipeline import ImagePipeline

            pipeline = ImagePipeline(
                PackReader(prepared.write_pack(Path(tmp) / "train.pack")), a.batch_size, 0
            )
            dataset = pipeline.batches(1, 1)
        else:  # the pipeline before issue 9: every image in memory, one tf.constant
            images = tf.constant(prepared.load_all() if pixels is None else pixels)
            order = tf.random.experimental.stateless_shuffle(tf.range(a.n), seed=[0, 1])
            dataset = (
                tf.data.Dataset.from_tensor_slices(order)
                .batch(a.batch_size, True)
                .map(lambda idx: tf.cast(tf.gather(images, idx), tf.float32) / 127.5 - 1.0)
                .prefetch(tf.data.AUTOTUNE)
            )
        t = time.perf_counter()
        batches = sum(1 for _ in dataset)
        out |= {"batches": batches, "epoch_s": round(time.perf_counter() - t, 2)}
    print(json.dumps(out))
    return 0


# ---------------------------------------------------------------- report
def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


def report(results: dict) -> str:
    lines = []
    for key, label in (("prep_1024x768", "1024x768"), ("prep_4000x3000", "4000x3000")):
        r = results.get(key)
        if not r:
            continue
        lines.append(
            f"\npreparation, {label} JPEG -> {results['resolution']} px, "
            f"{r['count']} images (images/s, best of {results['repeats']}):"
        )
        base = r.get("serial_pil")
        for name, text in (
            ("serial_pil", "plain serial PIL (load_square loop)"),
            ("prepare_1proc", "prepare, 1 process, cold cache"),
            ("prepare", "prepare, all cores, cold cache"),
            ("prepare_warm", "prepare, warm cache"),
            ("reference_draft_pool", "reference: draft + process pool, no cache"),
        ):
            if name in r:
                lines.append(f"  {text:42} {r[name]:9.1f}  {ratio(r[name], base):>8}")
    rss = results.get("rss")
    if rss:
        lines.append("\npeak RSS of training input (MB, own process / with children), one epoch:")
        for mode, text in (("stream", "streamed from the pack"), ("memory", "in memory (before)")):
            points = sorted((int(n), d) for n, d in rss[mode].items())
            for n, d in points:
                grow = ratio(d["peak_rss_mb"], points[0][1]["peak_rss_mb"])
                lines.append(
                    f"  {text:24} N={n:>6}  {d['peak_rss_mb']:7.0f} / {d['tree_peak_mb']:5.0f}"
                    f"  {grow:>6} of N={points[0][0]}  (prepare {d['prepare_s']:.1f} s, "
                    f"epoch {d['epoch_s']:.1f} s)"
                )
        for key, error in rss.get("errors", {}).items():
            lines.append(f"  {key}: FAILED: {error.splitlines()[-1]}")
    fs = results.get("first_step")
    if fs:
        lines.append(f"\ntime to first training step, {fs['count']} images (s):")
        for name in ("cold", "warm"):
            lines.append(
                f"  {name} cache: {fs[name]['first_step_s']:7.1f}  (input ready "
                f"{fs[name]['input_ready_s']}, peak RSS {fs[name]['peak_rss_mb']:.0f} MB)"
            )
        cold, warm = fs["cold"]["first_step_s"], fs["warm"]["first_step_s"]
        lines.append(f"  cold / warm: {ratio(cold, warm)}")
    v = results.get("validator")
    if v:
        lines.append("\nvalidator at scale (bench/validator_scale.py), N x N (+ N/10 held out):")
        for mb, series in v.get("by_budget", {}).items():
            for n, d in series.items():
                lines.append(f"  --memory-mb {mb}, N={n}: {_short(d)}")
            if mb in v.get("flatness", {}):
                lines.append(
                    f"  --memory-mb {mb}: peak RSS at the largest N / at the smallest: "
                    f"{v['flatness'][mb]:.2f}x"
                )
        if "full" in v:
            lines.append(f"  {_short(v['full'])}")
    for part, error in results.get("errors", {}).items():
        lines.append(f"\n{part}: NOT MEASURED: {error.splitlines()[0]}")
    return "\n".join(lines)


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    rss = results.get("rss") or {}
    series = [
        ("stream", "training input, streamed from the pack"),
        ("memory", "training input, in memory (before issue 9)"),
    ]
    for key, label in series:
        points = sorted((int(n), d["peak_rss_mb"]) for n, d in rss.get(key, {}).items())
        if points:
            ax.plot(*zip(*points), marker="o", label=label)
    validator = results.get("validator") or {}
    before = sorted((int(n), mb) for n, mb in validator.get("before", {}).items())
    if before:  # figures of an earlier run, features and pixels in memory (kept in the JSON)
        ax.plot(*zip(*before), marker="s", ls=":", label="validator, N x N, in memory (before)")
    by_budget = validator.get("by_budget", {})
    for mb, series in by_budget.items():
        points = sorted((int(n), d["peak_rss_mb"]) for n, d in series.items())
        if points:
            ax.plot(*zip(*points), marker="s", label=f"validator, N x N, --memory-mb {mb}")
    ax.set_xscale("log")
    ax.set_xlabel("images N")
    ax.set_ylabel("peak RSS (MB)")
    ax.set_ylim(bottom=0)
    ax.set_title(f"Peak RSS vs N ({results['resolution']} px, 2-core machine)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


# ---------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_child"]:
        return run_child(argv[1:])
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", type=Path, default=data_archive.DEFAULT_WORK, help="archive + caches")
    p.add_argument("--sizes", default="1000,5000,20000", help="N for the RSS curve")
    p.add_argument("--large-count", type=int, default=400, help="4000x3000 images made")
    p.add_argument("--prep-count", type=int, default=2000, help="1024x768 images timed")
    p.add_argument("--prep-count-large", type=int, default=150, help="4000x3000 images timed")
    p.add_argument("--first-step-n", type=int, default=5000)
    p.add_argument("--validator", default="100000x30000", help="SYNTHETICxREAL features, or none")
    p.add_argument(
        "--validator-budgets", default="128,1024", help="--memory-mb values of the N x N series"
    )
    p.add_argument("--validator-sizes", default=None, help="N for validator N x N (--sizes)")
    p.add_argument("--memory-mb", type=int, default=0, help="validator memory bound (0: its own)")
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--repeats", type=int, default=2, help="preparation rounds (best kept)")
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated of {PARTS}")
    p.add_argument(
        "--rss-modes", default="stream,memory", help="stream (pack) and/or memory (before)"
    )
    p.add_argument("--quick", action="store_true", help="small N: 500,1000,2000; 20k x 6k")
    p.add_argument("--out", type=Path, default=None, help="JSON (default WORK/results.json)")
    p.add_argument("--plot", type=Path, default=PLOT)
    a = p.parse_args(argv)
    if a.quick:
        a.sizes, a.large_count, a.prep_count, a.prep_count_large = "500,1000,2000", 40, 400, 30
        a.first_step_n, a.validator, a.repeats = 1000, "20000x6000", 1
    try:
        sizes = sorted({int(s) for s in a.sizes.split(",")})
        a.validator = (
            ()
            if a.validator.lower() == "none"
            else tuple(int(v) for v in a.validator.lower().split("x"))
        )
        a.validator_budgets = [int(v) for v in a.validator_budgets.split(",") if v.strip()]
        parts = [s.strip() for s in a.parts.split(",") if s.strip()]
        a.rss_modes = [m for m in ("stream", "memory") if m in a.rss_modes.split(",")]
        vsizes = (
            sizes
            if a.validator_sizes is None
            else [int(v) for v in a.validator_sizes.split(",") if v.strip()]
        )
        if not sizes or min(sizes) < a.batch_size or len(a.validator) not in (0, 2):
            raise ValueError
        if not a.validator_budgets or min(a.validator_budgets) < 16:
            raise ValueError
    except ValueError:
        p.error(
            "--sizes: N,N,... (each >= --batch-size); --validator: SYNxREAL or none; "
            "--validator-budgets: MiB,MiB,... (each >= 16)"
        )
    if unknown := set(parts) - set(PARTS):
        p.error(f"--parts: unknown {sorted(unknown)}; choose from {PARTS}")
    a.work.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="scratch-", dir=a.work))
    log = lambda s: print(s, flush=True)  # noqa: E731
    results: dict = {
        "resolution": a.resolution,
        "batch_size": a.batch_size,
        "repeats": a.repeats,
        "cpus": os.cpu_count(),
        "errors": {},
    }
    out = a.out or a.work / "results.json"
    t_start = time.perf_counter()
    need = max(sizes + [a.first_step_n, a.prep_count])
    archive = data_archive.build(a.work, (1024, 768), need, log=log)
    large = data_archive.build(
        a.work, (4000, 3000), max(a.large_count, a.prep_count_large), log=log
    )
    results["archive"] = {"1024x768": str(archive), "4000x3000": str(large)}
    steps = {
        "prep": lambda: {
            "prep_1024x768": prep_rates(
                data_archive.files(archive, a.prep_count), a.resolution, a.repeats, scratch, log
            ),
            "prep_4000x3000": prep_rates(
                data_archive.files(large, a.prep_count_large), a.resolution, a.repeats, scratch, log
            ),
        },
        "rss": lambda: {"rss": rss_curve(archive, sizes, a, scratch, log)},
        "first-step": lambda: {
            "first_step": first_step(data_archive.subset(archive, a.first_step_n), a, scratch, log)
        },
        "validator": lambda: validator_scale(
            a, vsizes, log, results.setdefault("validator", {}), save
        ),
    }
    try:

        def save() -> None:
            out.write_text(json.dumps(results, indent=1, default=str))

        for part in parts:
            log(f"\n== {part}")
            t = time.perf_counter()
            try:
                results.update(steps[part]())
            except Exception as exc:  # a part that is not ready: report it, go on
                results["errors"][part] = f"{type(exc).__name__}: {exc}"
                log(f"  {part} failed: {results['errors'][part]}")
            log(f"  ({time.perf_counter() - t:.0f} s)")
            save()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    results["wall_s"] = round(time.perf_counter() - t_start, 1)
    print(report(results))
    save()
    log(f"\nresults: {out}")
    if results.get("rss") or results.get("validator"):
        plot(results, a.plot)
        log(f"plot: {a.plot}")
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
