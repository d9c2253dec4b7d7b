"""The three image sets of a validation: real training set, optional held-out real set,
synthetic set (a folder, or fetched from a generation server into ``<out>/synthetic``).

All reading goes through :mod:`common.datasets` (layouts, metadata filters, fingerprints). Each
set is scanned with the trainer's preparation (:func:`common.image_cache.prepare` with
:func:`pixel_policy`: one read per file for its sha256, its decode check and its pixels at
``--pixel-size``, JPEG draft mode, parallel processes, the shared content-addressed image cache
under ``--image-cache-dir``), so a re-run, or a validation of the trainer's own images at its
resolution, decodes nothing, and the pixel-space checks see the trainer's pixels.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from common.datasets import DatasetIndex, scan
from common.errors import UserError
from common.hashing import fingerprint
from common.manifest import ManifestError, ModelManifest
from validator.config import ValidateConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImageSet:
    role: str  # "real" | "holdout" | "synthetic"
    source: str  # folder, or HOST:PORT for a fetched set
    index: DatasetIndex
    filters: dict
    removed_overlap: int = 0

    @property
    def records(self):
        return self.index.records

    @property
    def paths(self) -> list[str]:
        return [str(r.path) for r in self.index.records]

    def info(self) -> dict:
        return {
            "role": self.role,
            "source": self.source,
            "folder": str(self.index.root),
            "layout": self.index.layout,
            "count": len(self.index.records),
            "skipped": len(self.index.skipped),
            "skipped_examples": [
                {"path": str(s.path), "reason": s.reason} for s in self.index.skipped[:5]
            ],
            "fingerprint": self.index.fingerprint,
            "filters": self.filters,
            "removed_overlap": self.removed_overlap,
        }


@dataclass(frozen=True)
class Inputs:
    real: ImageSet
    holdout: ImageSet | None
    synthetic: ImageSet
    model_manifest: dict | None  # model.json (--model-dir) or the served ModelInfo (fetched)


def _drop_shared(holdout: ImageSet, real_shas: set[str]) -> ImageSet:
    """A held-out image whose bytes are also in the training set is not held out: drop it
    (counted in the report), or refuse if nothing is left."""
    kept = tuple(r for r in holdout.records if r.sha256 not in real_shas)
    if len(kept) == len(holdout.records):
        return holdout
    if not kept:
        raise UserError(
            f"--holdout {holdout.source}: every image is also in --real; a "
            "held-out set must hold images NOT used in training"
        )
    index = dataclasses.replace(
        holdout.index, records=kept, fingerprint=fingerprint(r.sha256 for r in kept)
    )
    return dataclasses.replace(
        holdout, index=index, removed_overlap=len(holdout.records) - len(kept)
    )


def _read_manifest(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise UserError(f"{path}: not valid JSON: {exc}") from exc


def fetch_synthetic(
    config: ValidateConfig,
    out_dir: Path,
    progress: bool,
    on_batch: Callable[[int, int], None] | None = None,
) -> None:
    """Pull ``count`` images for ``seed`` from a generation server (resumes on re-run), with
    ``config.generator_token`` and ``config.generator_tls_ca``. ``on_batch(done, count)`` runs
    after every batch; an exception it raises stops the fetch (cancellation)."""
    try:
        from serving.client import FetchFailed, fetch
    except ImportError as exc:
        raise UserError(f"--from-server needs serving.client ({exc})") from exc
    try:
        fetch(
            config.from_server,
            seed=config.seed,
            count=config.count,
            out_dir=out_dir,
            progress=progress,
            token=config.generator_token,
            root_cert=config.generator_tls_ca,
            on_batch=on_batch,
        )
    except FetchFailed as exc:  # the client's exit 1 would read as a FAIL verdict here
        raise UserError(f"--from-server {config.from_server}: {exc}") from None


def pixel_policy(config: ValidateConfig):
    """How the pixel-space checks' pixels are made: the trainer's policy (centre square,
    Lanczos, JPEG draft mode) at ``--pixel-size``."""
    from common.image_cache import PrepPolicy

    return PrepPolicy(size=config.pixel_size, draft=True)


def image_cache(config: ValidateConfig):
    """The shared image cache (``--image-cache-dir``, else the default root), or None (each
    run then prepares into a temporary folder) with ``--no-cache``, or when the DEFAULT root
    cannot be written (a read-only home, as in the Kubernetes Jobs: a cache only saves time,
    so that is a warning; an ``--image-cache-dir`` that cannot be written is an error)."""
    from common.image_cache import ImageCache, default_cache_root

    if not config.cache:
        return None
    if config.image_cache_dir is not None:
        cache = ImageCache(config.image_cache_dir)
        try:
            cache.check_writable()
        except UserError:
            raise UserError(
                f"--image-cache-dir {config.image_cache_dir}: cannot write there; choose "
                "another folder"
            ) from None
        return cache
    cache = ImageCache(default_cache_root())
    try:
        cache.check_writable()
    except UserError as exc:
        log.warning("%s: preparing images into a temporary folder instead", exc)
        return None
    return cache


def load_inputs(
    config: ValidateConfig,
    *,
    progress: bool = True,
    on_fetch: Callable[[int, int], None] | None = None,
) -> Inputs:
    """Scan the real sets and the synthetic one (fetched first with ``--from-server``;
    ``on_fetch(done, count)`` after every fetched batch). ``config`` is validated
    (:meth:`ValidateConfig.validate`)."""
    filters = {"benign_malignant": config.benign_malignant, "diagnosis": config.diagnosis}
    prep = {
        "policy": pixel_policy(config),
        "cache": image_cache(config),
        "workers": config.prep_workers,
        "progress": progress,
    }
    real = ImageSet("real", str(config.real), scan(config.real, **filters, **prep), filters)
    holdout = None
    if config.holdout is not None:
        holdout = ImageSet(
            "holdout", str(config.holdout), scan(config.holdout, **filters, **prep), filters
        )
        holdout = _drop_shared(holdout, {r.sha256 for r in real.records})
    manifest = None
    if config.from_server is not None:
        folder = Path(config.out) / "synthetic"
        fetch_synthetic(config, folder, progress, on_fetch)
        source = config.from_server
        fetched = _read_manifest(folder / "manifest.json") or {}
        manifest = fetched.get("model") or fetched.get("model_info")
    else:
        folder, source = Path(config.synthetic), str(config.synthetic)
    synthetic = ImageSet(
        "synthetic",
        source,
        scan(folder, layout="folder", **prep),
        {"seed": config.seed, "count": config.count} if config.from_server else {},
    )
    if config.model_dir is not None:
        try:
            manifest = ModelManifest.load(config.model_dir).to_dict()
        except ManifestError as exc:
            raise UserError(f"--model-dir: {exc}") from None
    return Inputs(real, holdout, synthetic, manifest)
