"""``python -m validator release``: build the bundle folder ``OUT/NAME/`` and ``OUT/NAME.tar.gz``.

Steps: check every input (:func:`.inputs.load`: all refusals happen before anything is
written) and load the signing key; write into ``OUT/.NAME.tmp-PID/``: ``images/`` (metadata
stripped, :mod:`.strip`), ``report/`` (the report's files, byte for byte), ``LICENSES/``, the
three cards; then ``manifest.json`` (every other file's sha256 and size) and ``SIGNATURE``
(Ed25519 over manifest.json's bytes); rename the folder to ``OUT/NAME`` (a bundle folder that
exists is complete), then write the tar.gz. Nothing is ever overwritten: an existing
``NAME`` or ``NAME.tar.gz`` is refused before any work.

Manifest (``format`` dermsynth-release, ``schema_version`` 1; JSON, keys sorted):
``name``, ``created``, ``tool``, ``stamps`` (FAIL / RANDOM-WEIGHTS), ``terms`` (the bundle's
licence and the rule), ``generator`` (ONNX sha256, model.json sha256, model.json itself),
``generation`` (seed, index ranges, count, the client commands that regenerate them),
``training_data`` (fingerprint, count, layout, filters, licences counted), ``validation``
(report sha256 and file, verdict, reasons, random weights, feature model, the real and synthetic
fingerprints), ``images`` (file, index, the validated bytes' sha256), ``files`` (every file but
manifest.json and SIGNATURE: sha256, size).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from common.errors import UserError
from validator import __version__
from validator.release import (
    FORMAT,
    IMAGES,
    LICENSES,
    MANIFEST,
    REPORT,
    SCHEMA_VERSION,
    SIGNATURE,
)
from validator.release.archive import write_tar
from validator.release.cards import licence_files, render
from validator.release.config import ReleaseConfig
from validator.release.inputs import ReleaseInputs, load
from validator.release.signing import key_id, load_private, signature_file
from validator.release.strip import stripped_png

REPORT_FILES = ("report.json", "report.html", "config.json", "checks.jsonl")
CREATED_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True)
class Built:
    folder: Path
    tar: Path | None
    name: str
    images: int
    stamps: list[str]
    licence: str
    key_id: str


def _ranges(indices: list[int]) -> list[list[int]]:
    runs: list[list[int]] = []
    for i in sorted(indices):
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return runs


def bundle_name(config: ReleaseConfig, inputs: ReleaseInputs) -> str:
    base = config.name or (
        f"dermsynth-{inputs.model.onnx_sha256[:12]}-seed{inputs.fetch['seed']}"
        f"-n{len(inputs.images)}"
    )
    return "-".join([base, *(s for s in inputs.stamps if not base.endswith(s))])


def _facts(name: str, created: str, inputs: ReleaseInputs) -> dict:
    """The manifest without ``images`` and ``files``: what the cards are rendered from."""
    report, model, seed = inputs.report, inputs.model, inputs.fetch["seed"]
    ranges = _ranges([i.index for i in inputs.images])
    feature_model = report.get("feature_model") or {}
    sets = report.get("inputs") or {}
    return {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "name": name,
        "created": created,
        "tool": {"name": "dermsynth", "version": __version__},
        "stamps": list(inputs.stamps),
        "terms": inputs.terms.to_dict(),
        "generator": {
            "onnx_sha256": model.onnx_sha256,
            "model_json_sha256": inputs.model_json_sha256,
            "model_json": model.to_dict(),
        },
        "generation": {
            "seed": seed,
            "index_ranges": ranges,
            "count": len(inputs.images),
            "resolution": model.resolution,
            "latent_dim": model.latent_dim,
            "latent_distribution": model.latent_distribution,
            "regenerate": [
                f"python -m serving.client --target HOST:PORT --seed {seed} "
                f"--start-index {a} --count {b - a + 1} --out regenerated"
                for a, b in ranges
            ],
        },
        "training_data": {
            **{k: v for k, v in model.to_dict()["training_data"].items()},
            "licences": inputs.terms.counts,
        },
        "validation": {
            "report_file": f"{REPORT}/report.json",
            "report_sha256": inputs.report_sha256,
            "run_id": report.get("run_id"),
            "created": report.get("created"),
            "verdict": report.get("verdict"),
            "reasons": list(report.get("reasons") or []),
            "random_weights": bool(feature_model.get("random_weights", True)),
            "feature_model": feature_model.get("label"),
            "real_fingerprint": (sets.get("real") or {}).get("fingerprint"),
            "holdout_fingerprint": (sets.get("holdout") or {}).get("fingerprint"),
            "synthetic_fingerprint": (sets.get("synthetic") or {}).get("fingerprint"),
        },
    }


def _write(path: Path, data: bytes) -> tuple[str, int]:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest(), len(data)


def _fill(tmp: Path, facts: dict, inputs: ReleaseInputs) -> tuple[list[dict], dict]:
    files: dict[str, dict] = {}
    images = []
    for image in inputs.images:
        rel = f"{IMAGES}/{image.index:08d}.png"
        sha, size = _write(tmp / rel, stripped_png(image.source))
        files[rel] = {"sha256": sha, "size": size}
        images.append({"file": rel, "index": image.index, "source_sha256": image.source_sha256})
    for name in REPORT_FILES:
        source = inputs.report_dir / name
        if source.is_file():
            sha, size = _write(tmp / REPORT / name, source.read_bytes())
            files[f"{REPORT}/{name}"] = {"sha256": sha, "size": size}
    if inputs.turing is not None:  # the visual Turing test's results, covered by the signature
        data = (json.dumps(inputs.turing, indent=1, sort_keys=True) + "\n").encode()
        sha, size = _write(tmp / REPORT / "turing.json", data)
        files[f"{REPORT}/turing.json"] = {"sha256": sha, "size": size}
    for name, text in licence_files(inputs.terms, inputs.training_images).items():
        sha, size = _write(tmp / LICENSES / name, text.encode())
        files[f"{LICENSES}/{name}"] = {"sha256": sha, "size": size}
    for name, text in render(facts, inputs.report, inputs.terms, inputs.turing).items():
        sha, size = _write(tmp / name, text.encode())
        files[name] = {"sha256": sha, "size": size}
    return images, dict(sorted(files.items()))


def manifest_bytes(manifest: dict) -> bytes:
    return (json.dumps(manifest, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode()


def build(config: ReleaseConfig) -> Built:
    """Check the inputs and write the bundle; UserError for every refusal."""
    private_key = load_private(config.key)
    inputs = load(config)
    name = bundle_name(config, inputs)
    out = Path(config.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--out {out}: cannot create the folder ({exc.strerror})") from None
    folder, tar = out / name, out / f"{name}.tar.gz"
    for path in (folder, tar) if config.tar else (folder,):
        if path.exists() or path.is_symlink():
            raise UserError(f"{path} exists: a release never overwrites a bundle; remove it first")
    now = datetime.now(UTC).replace(microsecond=0)
    facts = _facts(name, now.strftime(CREATED_FORMAT), inputs)
    tmp = out / f".{name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        images, files = _fill(tmp, facts, inputs)
        data = manifest_bytes({**facts, "images": images, "files": files})
        (tmp / MANIFEST).write_bytes(data)
        (tmp / SIGNATURE).write_bytes(signature_file(private_key, data))
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    tar_path = write_tar(folder, tar, int(now.timestamp())) if config.tar else None
    from cryptography.hazmat.primitives import serialization

    public_raw = private_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return Built(
        folder,
        tar_path,
        name,
        len(images),
        list(inputs.stamps),
        inputs.terms.licence.spdx,
        key_id(public_raw),
    )
