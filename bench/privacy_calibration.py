"""Calibration of the privacy checks on real ISIC images (bounded: a few minutes on 2 cores).

Many random splits of one image folder (split by lesion where its metadata has lesion_id or
patient_id) into a training set, a held-out baseline of each size in --sizes and a set of unseen
real images given as the "synthetic" set. Measured per baseline size:
- the per-image false-flag rate (BH flags of unseen real images) and the fraction of unseen
  images with p <= dcr_quantile (nominal rate), with Clopper-Pearson 95 % intervals, beside the
  real-vs-real (leave-one-out) rates the report shows;
- how often each privacy check FAILs on unseen real images (false failures of the gate);
- the holdout share of unseen images on the equal-size scale (0.5 without memorisation);
- planted near-copies of training images (exact, JPEG q70, mirrored, 90 % crop, colour jitter)
  mixed into the unseen set: recall per edit, and how often each check fails.

    .venv/bin/python bench/privacy_calibration.py --features-model X.onnx \
        [--data ../shared/data/isic-sample] [--sizes 30,60,100] [--splits 10]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHECKS = ("dcr", "nndr", "holdout_share", "data_copying")


def encode(folder: Path, model_path: Path, n_sources: int, seed: int, tmp: Path):
    from common.datasets import scan
    from common.images import load_images
    from tests.validator.planting import plant
    from validator.features import FeatureCache, FeatureModel, extract
    from validator.lesions import Groups

    records = list(scan(folder, progress=False).records)
    seen, unique = set(), []
    for r in records:  # byte-identical duplicates would be removed by the validator's inputs
        if r.sha256 not in seen:
            seen.add(r.sha256)
            unique.append(r)
    model, cache = FeatureModel(model_path), FeatureCache(tmp / "cache")
    feats = extract(model, unique, cache=cache, progress=False).features
    pixels = load_images(unique, 64, progress=False)
    pool = np.sort(np.random.default_rng(seed).choice(len(unique), n_sources, replace=False))
    planted = plant([unique[i].path for i in pool], tmp / "planted")
    p_records = list(scan(tmp / "planted", layout="folder", progress=False).records)
    by_path = {str(unique[i].path): i for i in pool}
    p_source = np.array([by_path[str(planted[r.path.name])] for r in p_records])
    p_kind = [r.path.stem.split("_")[-1] for r in p_records]
    return {
        "paths": [str(r.path) for r in unique],
        "features": feats,
        "pixels": pixels,
        "lesions": Groups.read([r.path for r in unique]),
        "p_features": extract(model, p_records, cache=cache, progress=False).features,
        "p_pixels": load_images(p_records, 64, progress=False),
        "p_source": p_source,
        "p_kind": p_kind,
        "p_paths": [str(r.path) for r in p_records],
    }


def run_split(enc, train, holdout, unseen, planted_idx):
    from validator.checks import CheckInputs, run_check
    from validator.checks.dcr import analyse
    from validator.thresholds import load_thresholds

    f, px, paths = enc["features"], enc["pixels"], enc["paths"]
    syn_f, syn_px = f[unseen], px[unseen]
    syn_paths = [paths[i] for i in unseen]
    if planted_idx is not None:
        syn_f = np.concatenate([syn_f, enc["p_features"][planted_idx]])
        syn_px = np.concatenate([syn_px, enc["p_pixels"][planted_idx]])
        syn_paths += [enc["p_paths"][i] for i in planted_idx]
    inputs = CheckInputs(
        real=f[train],
        real_pixels=px[train],
        real_paths=[paths[i] for i in train],
        holdout=f[holdout],
        holdout_pixels=px[holdout],
        holdout_paths=[paths[i] for i in holdout],
        synthetic=syn_f,
        synthetic_pixels=syn_px,
        synthetic_paths=syn_paths,
        thresholds=load_thresholds(None),
    )
    results = {c: run_check(c, inputs) for c in CHECKS}
    return inputs, analyse(inputs), results


def main() -> None:
    from validator.checks.calibration import clopper_pearson
    from validator.lesions import grouping_column, split_by_group

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--features-model", type=Path, required=True)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/isic-sample")
    ap.add_argument("--sizes", default="30,60,100")
    ap.add_argument("--splits", type=int, default=10)
    ap.add_argument("--train", type=int, default=200)
    ap.add_argument("--unseen", type=int, default=100)
    ap.add_argument("--sources", type=int, default=20, help="planted training images per split")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        enc = encode(args.data, args.features_model, 120, args.seed, Path(tmp))
    n = len(enc["paths"])
    column = grouping_column(enc["lesions"])
    keys = enc["lesions"].column(column) if column else [None] * n
    print(
        f"{n} images from {args.data} (grouping: {column or 'none: random split'}); "
        f"encoded in {time.perf_counter() - start:.0f} s"
    )
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        acc = defaultdict(float)
        recall = defaultdict(lambda: [0, 0])
        sparse = defaultdict(lambda: [0, 0])
        lows = []  # holdout_share lower bounds with planted copies
        shares = []
        for r in range(args.splits):
            rng = np.random.default_rng([args.seed, size, r])
            rest = n - args.train - size
            train, holdout, unseen = split_by_group(
                keys,
                [args.train, size, min(args.unseen, rest)]
                + ([rest - args.unseen] if rest > args.unseen else []),
                rng,
            )[:3]
            _, a, res = run_split(enc, train, holdout, unseen, None)
            acc["images"] += len(unseen)
            acc["flagged"] += a.flagged.sum()
            acc["close"] += np.sum(a.p <= 0.01)
            acc["real"] += len(a.real_p)
            acc["real_flagged"] += a.real_flagged.sum()
            acc["real_close"] += np.sum(a.real_p <= 0.01)
            for c in CHECKS:
                acc[f"fail_{c}"] += not res[c].passed
            shares.append(
                [res["holdout_share"].numbers[s]["share_equal_size"] for s in ("feature", "pixel")]
                + [res["holdout_share"].numbers["share_equal_size_lower"]]
            )
            in_train = np.flatnonzero(np.isin(enc["p_source"], train))
            sources = rng.permutation(np.unique(enc["p_source"][in_train]))[: args.sources]
            planted = in_train[np.isin(enc["p_source"][in_train], sources)]
            inputs, a, res = run_split(enc, train, holdout, unseen, planted)
            for j, i in enumerate(planted):
                rec = recall[enc["p_kind"][i]]
                rec[0] += bool(a.flagged[len(unseen) + j])
                rec[1] += 1
            for c in CHECKS:
                acc[f"planted_fail_{c}"] += not res[c].passed
            lows.append(res["holdout_share"].numbers["share_equal_size_lower"])
            # sparse: one copy per edit, each of another training image, among the unseen
            kinds = sorted(set(enc["p_kind"]))
            one = [
                int(
                    in_train[
                        (enc["p_source"][in_train] == src)
                        & (np.array(enc["p_kind"])[in_train] == kind)
                    ][0]
                )
                for src, kind in zip(sources[-len(kinds) :], kinds)
            ]
            _, a, res = run_split(enc, train, holdout, unseen, np.array(one))
            for j, i in enumerate(one):
                rec = sparse[enc["p_kind"][i]]
                rec[0] += bool(a.flagged[len(unseen) + j])
                rec[1] += 1
            acc["sparse_fail_dcr"] += not res["dcr"].passed
        rows.append((size, acc, recall, np.array(shares), sparse, np.array(lows)))
        print(
            f"baseline {size}: {args.splits} splits, {time.perf_counter() - start:.0f} s",
            flush=True,
        )
    report(rows, args, clopper_pearson)


def report(rows, args, cp) -> None:
    def rate(k, n):
        lo, hi = cp(int(k), int(n))
        return f"{int(k)}/{int(n)} = {k / n:.2%} [{lo:.2%}, {hi:.2%}]"

    print(
        "\n| held-out | unseen flagged (BH) | unseen p<=0.01 | real-vs-real flagged "
        "| real-vs-real p<=0.01 | check FAILs on unseen (of splits) | share_eq feature / pixel "
        "(mean, min-max) |"
    )
    print("|---|---|---|---|---|---|---|")
    for size, acc, _, shares, _, _ in rows:
        fails = ", ".join(f"{c} {int(acc['fail_' + c])}" for c in CHECKS)
        sh = " / ".join(
            f"{shares[:, j].mean():.3f} ({shares[:, j].min():.2f}-{shares[:, j].max():.2f})"
            for j in range(2)
        )
        print(
            f"| {size} | {rate(acc['flagged'], acc['images'])} "
            f"| {rate(acc['close'], acc['images'])} | {rate(acc['real_flagged'], acc['real'])} "
            f"| {rate(acc['real_close'], acc['real'])} | {fails} | {sh} |"
        )
    kinds = sorted({k for _, _, rec, _, _, _ in rows for k in rec})
    print(
        "\n| held-out | "
        + " | ".join(f"recall {k}" for k in kinds)
        + " | check FAILs with planted copies (of splits) |"
    )
    print("|---|" + "---|" * (len(kinds) + 1))
    for size, acc, rec, _, _, _ in rows:
        fails = ", ".join(f"{c} {int(acc['planted_fail_' + c])}" for c in CHECKS)
        print(f"| {size} | " + " | ".join(rate(*rec[k]) for k in kinds) + f" | {fails} |")
    print(
        f"\nSparse: {len(kinds)} copies (one per edit, each of another training image) among "
        f"{args.unseen} unseen images\n\n| held-out | "
        + " | ".join(f"recall {k}" for k in kinds)
        + " | dcr FAILs (of splits) |"
    )
    print("|---|" + "---|" * (len(kinds) + 1))
    for size, acc, _, _, rec, _ in rows:
        print(
            f"| {size} | "
            + " | ".join(rate(*rec[k]) for k in kinds)
            + f" | {int(acc['sparse_fail_dcr'])} |"
        )
    print(
        "\n| held-out | holdout_share lower bound (share_eq scale): unseen max, 95th pct "
        "| with planted copies: min, median |\n|---|---|---|"
    )
    for size, _, _, shares, _, lows in rows:
        print(
            f"| {size} | {shares[:, 2].max():.3f}, {np.quantile(shares[:, 2], 0.95):.3f} "
            f"| {lows.min():.3f}, {np.median(lows):.3f} |"
        )
    print(
        f"\n{args.splits} splits per size, train {args.train}, unseen {args.unseen}, "
        f"{args.sources} planted training images x {len(kinds)} edits per split"
    )


if __name__ == "__main__":
    main()
