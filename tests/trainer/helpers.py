"""Builders of small real data folders (real ISIC JPEGs from data/isic-demo) for trainer tests."""

from __future__ import annotations

import csv
import json
import shutil
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "data" / "isic-demo"
PYTHON = REPO / ".venv" / "bin" / "python"


def demo_rows() -> list[dict[str, str]]:
    with open(DEMO / "metadata.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def pick(n_benign: int, n_malignant: int) -> list[dict[str, str]]:
    rows = demo_rows()
    benign = [r for r in rows if r["benign_malignant"] == "benign"][:n_benign]
    malignant = [r for r in rows if r["benign_malignant"] == "malignant"][:n_malignant]
    return benign + malignant


def write_corrupt(
    folder: Path, stem_truncated: str, stem_text: str, stem_empty: str, suffix: str = ".jpg"
) -> list[Path]:
    """A truncated JPEG, a text file named like an image and a zero-byte file."""
    folder.mkdir(parents=True, exist_ok=True)
    source = (DEMO / "ISIC_0000002.jpg").read_bytes()
    paths = [
        folder / f"{stem_truncated}{suffix}",
        folder / f"{stem_text}{suffix}",
        folder / f"{stem_empty}{suffix}",
    ]
    paths[0].write_bytes(source[: len(source) // 2])
    paths[1].write_text("this is not an image\n")
    paths[2].write_bytes(b"")
    return paths


def isic_cli_folder(
    dest: Path, n_benign: int = 16, n_malignant: int = 8, *, corrupt: bool = True
) -> Path:
    """isic-cli layout: ISIC_*.jpg + metadata.csv, plus three corrupt files listed in it."""
    dest.mkdir(parents=True, exist_ok=True)
    rows = pick(n_benign, n_malignant)
    for r in rows:
        shutil.copy(DEMO / f"{r['isic_id']}.jpg", dest / f"{r['isic_id']}.jpg")
    if corrupt:
        bad = write_corrupt(dest, "ISIC_9000001", "ISIC_9000002", "ISIC_9000003")
        for p in bad:
            rows.append(
                {**rows[0], "isic_id": p.stem, "benign_malignant": "benign", "diagnosis": "nevus"}
            )
    with open(dest / "metadata.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return dest


def challenge_folder(dest: Path) -> Path:
    """ISIC 2017 layout: images folder + ground truth CSV (melanoma, seborrheic_keratosis)."""
    images = dest / "ISIC-2017_Training_Data"
    images.mkdir(parents=True, exist_ok=True)
    rows = pick(6, 4)
    out = []
    for i, r in enumerate(rows):
        shutil.copy(DEMO / f"{r['isic_id']}.jpg", images / f"{r['isic_id']}.jpg")
        melanoma = r["benign_malignant"] == "malignant"
        sk = (not melanoma) and i % 3 == 0  # relabel some benign ones as SK for the test
        out.append((r["isic_id"], "1.0" if melanoma else "0.0", "1.0" if sk else "0.0"))
    # the 2017 set ships superpixel masks beside the images: not training images
    Image.new("RGB", (8, 8)).save(images / f"{rows[0]['isic_id']}_superpixels.png")
    bad = write_corrupt(images, "ISIC_9000001", "ISIC_9000002", "ISIC_9000003")
    out += [(p.stem, "0.0", "0.0") for p in bad]
    with open(dest / "ISIC-2017_Training_Part3_GroundTruth.csv", "w", encoding="utf-8") as fh:
        fh.write("image_id,melanoma,seborrheic_keratosis\n")
        fh.writelines(f"{a},{b},{c}\n" for a, b, c in out)
    return dest


def plain_folder(dest: Path) -> Path:
    """Recursive folder of jpg/png/bmp with corrupt files and a non-image file mixed in."""
    rows = pick(3, 3)
    (dest / "a" / "b").mkdir(parents=True, exist_ok=True)
    for i, r in enumerate(rows):
        img = Image.open(DEMO / f"{r['isic_id']}.jpg")
        target = [
            dest / f"{r['isic_id']}.jpg",
            dest / "a" / f"{r['isic_id']}.png",
            dest / "a" / "b" / f"{r['isic_id']}.bmp",
        ][i % 3]
        img.save(target)
    write_corrupt(dest / "a", "truncated", "text", "empty")
    (dest / "notes.txt").write_text("ignored: not an image suffix\n")
    return dest


def legacy_save(folder: Path, epoch: int, gan, *, state: dict) -> Path:
    """Format 1, as trainer.checkpoints.save wrote it before checkpoints by name (its file
    layout and contents; the temporary folder and rename left out)."""
    final = folder / f"epoch_{epoch:04d}"
    final.mkdir(parents=True)
    gan.generator.save_weights(final / "generator.weights.h5")
    gan.discriminator.save_weights(final / "discriminator.weights.h5")
    if gan.ema_generator is not None:
        gan.ema_generator.save_weights(final / "ema_generator.weights.h5")
    arrays = {
        f"{prefix}/{i:04d}": np.asarray(v.numpy())
        for prefix, opt in (("g", gan.g_optimizer), ("d", gan.d_optimizer))
        for i, v in enumerate(opt.variables)
    }
    np.savez(final / "optimizers.npz", **arrays)
    payload = {**state, "epoch": epoch, "saved": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    (final / "state.json").write_text(
        json.dumps(payload, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    return final


def batch(seed=0):
    """A seeded batch of 4 images, 32 px, in [-1, 1], as a float32 tensor."""
    import tensorflow as tf

    return tf.constant(np.random.default_rng(seed).uniform(-1, 1, (4, 32, 32, 3)), tf.float32)


def variable_bytes(gan) -> dict[str, bytes]:
    """Every variable of ``gan`` by group and name, as bytes (exact-resume comparisons)."""
    from trainer.checkpoints import named_variables

    return {
        f"{g}/{name}": np.asarray(v.numpy()).tobytes()
        for g, vs in named_variables(gan).items()
        for name, v in vs.items()
    }
