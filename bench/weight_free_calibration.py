"""Calibration of the weight-free quality checks (swd, colour, pixel_c2st) on real ISIC images.

Each trial splits one image folder at random into a "real" set and a disjoint "synthetic" set of
unseen real images (sizes from --sizes, REAL:SYNTHETIC), runs the three checks as the validator
does (pixels at --pixel-size, the thresholds' *_splits) and records each check's largest
z-score. The same synthetic images, blurred (Gaussian, --blur px radius at the pixel
size) and colour-shifted (--shift: a blend toward a pale pink, the demo's drift), measure the
power. Prints per size: the quantiles of the real-vs-real largest z per check, the false-fail
rate at the configured limits (per check and of the three together) with a Clopper-Pearson 95 %
interval, the fail rate of the degraded sets, and the median metric values of each kind.

Bounded: stops starting trials after --budget seconds; --jsonl appends every trial, so several
short runs (different --first-trial) can be summarised together with --summarise.

    .venv/bin/python bench/weight_free_calibration.py --data ../shared/data/isic-sample \
        --sizes 200:100,100:50 --trials 20 --budget 100 --jsonl /tmp/wf.jsonl
    .venv/bin/python bench/weight_free_calibration.py --summarise /tmp/wf.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHECKS = ("swd", "colour", "pixel_c2st")
LIMITS = {"swd": "swd_max_z", "colour": "colour_max_z", "pixel_c2st": "pixel_c2st_max_z"}
SHOWN = (
    "swd_64",
    "swd_32",
    "swd_16",
    "w1_L",
    "w1_a",
    "w1_b",
    "lab_w1",
    "background_delta_e",
    "auc",
)
PALE_PINK = np.array([255, 235, 235], np.float32)


def blurred(images: np.ndarray, radius: float) -> np.ndarray:
    from PIL import Image, ImageFilter

    return np.stack(
        [
            np.asarray(Image.fromarray(img).filter(ImageFilter.GaussianBlur(radius)))
            for img in images
        ]
    )


def colour_shifted(images: np.ndarray, amount: float) -> np.ndarray:
    return np.clip(images * (1 - amount) + amount * PALE_PINK, 0, 255).round().astype(np.uint8)


def load(folder: Path, size: int) -> np.ndarray:
    from common.datasets import scan
    from common.images import load_images

    seen, records = set(), []
    for record in scan(folder, progress=False).records:
        if record.sha256 not in seen:  # isic-sample holds byte-identical duplicates
            seen.add(record.sha256)
            records.append(record)
    return load_images(records, size, progress=False)


def run_trial(pixels, n_real, n_syn, trial, thresholds, variants, checks=CHECKS) -> dict:
    from validator.checks import CheckInputs, run_check

    rng = np.random.default_rng(10_000 + trial)
    order = rng.permutation(len(pixels))
    real, syn = pixels[order[:n_real]], pixels[order[n_real : n_real + n_syn]]
    out = {"sizes": f"{n_real}:{n_syn}", "trial": trial}
    for variant, make in variants.items():
        images = make(syn)
        inputs = CheckInputs(
            real=np.zeros((n_real, 1)),
            synthetic=np.zeros((n_syn, 1)),
            holdout=None,
            real_pixels=real,
            synthetic_pixels=images,
            holdout_pixels=None,
            real_paths=[],
            synthetic_paths=[],
            holdout_paths=None,
            thresholds=thresholds,
            seed=trial,
        )
        for name in checks:
            result = run_check(name, inputs)
            if result.error:
                raise RuntimeError(f"{name}: {result.error}")
            out[f"{variant}/{name}/max_z"] = result.numbers["max_z"]
            out[f"{variant}/{name}/seconds"] = result.seconds
            for stat in SHOWN:
                if stat in result.numbers:
                    table = result.numbers["versus_real"][stat]
                    out[f"{variant}/{stat}"] = table["value"]
                    out[f"{variant}/{stat}/rr_mean"] = table["real_vs_real_mean"]
                    out[f"{variant}/{stat}/rr_sd"] = table["real_vs_real_sd"]
                    out[f"{variant}/{stat}/z"] = table["z"]
    return out


def clopper_pearson(k: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    from scipy.stats import beta

    lo = 0.0 if k == 0 else float(beta.ppf(alpha / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - alpha / 2, k + 1, n - k))
    return lo, hi


def summarise(rows: list[dict], thresholds) -> None:
    limits = {name: getattr(thresholds, LIMITS[name]) for name in CHECKS}
    print(f"limits: {limits}")
    by_size = defaultdict(list)
    for row in rows:
        by_size[row["sizes"]].append(row)
    variants = sorted(
        {k.split("/")[0] for row in rows for k in row if "/" in k}, key=lambda v: (v != "real", v)
    )
    for sizes, group in by_size.items():
        n = len(group)
        print(f"\n== real:synthetic {sizes}, {n} trials ==")
        for variant in variants:
            fails = np.zeros(n, bool)
            cells = []
            for name in CHECKS:
                if f"{variant}/{name}/max_z" not in group[0]:
                    continue
                z = np.array([row[f"{variant}/{name}/max_z"] for row in group])
                over = z > limits[name] if limits[name] is not None else np.zeros(n, bool)
                fails |= over
                q = np.quantile(z, [0.5, 0.95, 0.99]) if n > 1 else [z[0]] * 3
                cells.append(
                    f"{name}: z50 {q[0]:.1f} z95 {q[1]:.1f} z99 {q[2]:.1f} "
                    f"max {z.max():.1f}, fail {over.sum()}/{n}"
                )
            lo, hi = clopper_pearson(int(fails.sum()), n)
            print(
                f"  {variant:12s} any check fails {fails.sum()}/{n} = {fails.mean():.3f} "
                f"[{lo:.3f}, {hi:.3f}]"
            )
            print("      " + " | ".join(cells))
        print("  median values (real vs synthetic; real-vs-real mean +- sd):")
        for stat in SHOWN:
            key = f"real/{stat}"
            if key not in group[0]:
                continue
            rr = (
                f"{np.median([r[key + '/rr_mean'] for r in group]):.4g} +- "
                f"{np.median([r[key + '/rr_sd'] for r in group]):.2g}"
            )
            values = "  ".join(
                f"{v} {np.median([r[f'{v}/{stat}'] for r in group]):.4g}" for v in variants
            )
            print(f"    {stat:20s} real-vs-real {rr:18s} {values}")
        secs = {
            name: np.median([r[f"real/{name}/seconds"] for r in group])
            for name in CHECKS
            if f"real/{name}/seconds" in group[0]
        }
        print("  median seconds per check: " + ", ".join(f"{k} {v:.2f}" for k, v in secs.items()))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "isic-sample")
    p.add_argument("--sizes", default="200:100,100:50", help="REAL:SYNTHETIC,...")
    p.add_argument("--trials", type=int, default=20, help="trials per size")
    p.add_argument("--first-trial", type=int, default=0)
    p.add_argument("--pixel-size", type=int, default=64)
    p.add_argument("--blur", type=float, default=1.0)
    p.add_argument("--shift", type=float, default=0.2)
    p.add_argument("--checks", default=",".join(CHECKS), help="a subset of " + ",".join(CHECKS))
    p.add_argument(
        "--null-only",
        action="store_true",
        help="unseen real images only (no blurred or shifted sets): 3x faster",
    )
    p.add_argument("--budget", type=float, default=100.0, help="seconds")
    p.add_argument("--jsonl", type=Path)
    p.add_argument("--summarise", type=Path, help="only summarise this JSON-lines file")
    args = p.parse_args()
    from threadpoolctl import threadpool_limits

    from validator.thresholds import Thresholds

    thresholds = Thresholds()
    if args.summarise:
        summarise(
            [json.loads(line) for line in args.summarise.read_text().splitlines()], thresholds
        )
        return 0
    pixels = load(args.data, args.pixel_size)
    variants = {
        "real": lambda x: x,
        f"blur{args.blur:g}": lambda x: blurred(x, args.blur),
        f"shift{args.shift:g}": lambda x: colour_shifted(x, args.shift),
    }
    if args.null_only:
        variants = {"real": variants["real"]}
    sizes = [tuple(int(v) for v in s.split(":")) for s in args.sizes.split(",")]
    rows, start = [], time.time()
    with threadpool_limits(1):
        for trial in range(args.first_trial, args.first_trial + args.trials):
            for n_real, n_syn in sizes:
                if time.time() - start > args.budget:
                    break
                row = run_trial(
                    pixels,
                    n_real,
                    n_syn,
                    trial,
                    thresholds,
                    variants,
                    tuple(args.checks.split(",")),
                )
                rows.append(row)
                if args.jsonl:
                    with open(args.jsonl, "a") as fh:
                        fh.write(json.dumps(row) + "\n")
    print(
        f"{len(rows)} trials of {len(pixels)} images from {args.data} in "
        f"{time.time() - start:.0f} s"
    )
    summarise(rows, thresholds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
