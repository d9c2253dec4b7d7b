"""The run's training images: prepared once through the shared cache, then streamed from a pack.

:func:`scan` indexes ``--data`` and prepares its files in the same pass
(``common.image_cache.prepare``: parallel processes, one read per file for its sha256, its
decode check and its pixels; a file already in the cache is read and hashed, not decoded).
:func:`open_images` then writes the usable images, in the scan's order, to a pack
(``common.image_pack``: one flat file of uint8 rows + a header with the sha256 list and the
preparation policy) in the cache::

    <cache>/packs/<sha256 of the ordered file hashes, 32 hex>-<policy key>.pack

Content-addressed like the images: runs on the same files share it (a resume finds it and
writes nothing), the workers of a multi-worker run (one cache volume) write the same bytes
atomically, and only the chief writes the run directory. Training reads rows from the pack a
batch at a time (trainer.pipeline), so memory does not grow with the number of images. A pack
is derived data: deleting ``<cache>/packs`` is always safe. A file the preparation cannot
decode is skipped with its reason, like every skip of the scan, and is not in the fingerprint.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from pathlib import Path

from common import datasets
from common.hashing import fingerprint

log = logging.getLogger("trainer")


def cache_root(configured: Path | None) -> Path:
    """``--cache-dir``, else the shared default (common.image_cache.default_cache_root:
    $DERMSYNTH_CACHE_DIR, else $XDG_CACHE_HOME/dermsynth, else ~/.cache/dermsynth)."""
    from common.image_cache import default_cache_root

    return Path(configured) if configured is not None else default_cache_root()


def policy(resolution: int):
    """How the trainer's pixels are made (common.image_cache.PrepPolicy)."""
    from common.image_cache import PrepPolicy

    return PrepPolicy(size=resolution, draft=True)


def scan(config) -> datasets.DatasetIndex:
    """The data set index of ``--data``, its files prepared in the same pass (one read each:
    sha256, decode check and pixels; files in the cache are not decoded)."""
    from common.image_cache import ImageCache

    return datasets.scan(
        config.data,
        benign_malignant=config.benign_malignant,
        diagnosis=config.diagnosis,
        layout=config.layout,
        progress=config.progress,
        policy=policy(config.resolution),
        cache=ImageCache(cache_root(config.cache_dir)),
        workers=config.prep_workers,
    )


def pack_path(root: Path, shas: list[str], key: str) -> Path:
    digest = hashlib.sha256("\n".join(shas).encode("ascii")).hexdigest()[:32]
    return Path(root) / "packs" / f"{digest}-{key}.pack"


def _matching_pack(path: Path, shas: list[str], key: str):
    """The pack at ``path`` when it holds exactly these files under this policy, else None."""
    from common.image_pack import PackError, PackReader

    if not path.is_file():
        return None
    try:
        reader = PackReader(path)
    except (OSError, ValueError, PackError) as exc:
        log.warning("%s is unreadable (%s): rebuilding it", path, exc)
        return None
    if list(reader.sha256) == shas and reader.policy_key == key:
        return reader
    log.info("%s holds other images or another policy: rebuilding it", path)
    return None


def _prepare(config, index: datasets.DatasetIndex, prep, root: Path):
    """(Prepared, index without the files it skipped): the scan's own when it prepared."""
    from common.image_cache import ImageCache, prepare

    prepared = getattr(index, "prepared", None)
    if prepared is None:
        prepared = prepare(
            [r.path for r in index.records],
            prep,
            cache=ImageCache(root),
            workers=config.prep_workers,
            progress=config.progress,
        )
    log.info(
        "images prepared in %.1f s: %d decoded, %d from the cache %s (policy %s)",
        prepared.seconds,
        prepared.decoded,
        prepared.hits,
        root,
        prep.key,
    )
    if prepared.skipped:
        bad = {Path(p) for p, _ in prepared.skipped}
        kept = tuple(r for r in index.records if Path(r.path) not in bad)
        extra = tuple(
            datasets.Skipped(Path(p), reason)
            for p, reason in prepared.skipped
            if all(Path(p) != s.path for s in index.skipped)
        )
        index = dataclasses.replace(
            index,
            records=kept,
            skipped=index.skipped + extra,
            fingerprint=fingerprint([r.sha256 for r in kept]),
        )
    return prepared, index


def open_images(config, index: datasets.DatasetIndex, check=None):
    """(the run's pack reader, the index without files the preparation skipped).

    ``check(index)`` runs on that final index before training uses it (the trainer refuses a
    resume on changed data there)."""
    from common.image_pack import PackReader

    prep = policy(config.resolution)
    root = cache_root(config.cache_dir)
    if getattr(index, "prepared", None) is None:  # a scan that verified and hashed itself
        shas = [r.sha256 for r in index.records]
        reader = _matching_pack(pack_path(root, shas, prep.key), shas, prep.key)
        if reader is not None:
            if check is not None:
                check(index)
            log.info("images: %d from %s (policy %s)", reader.count, reader.path, prep.key)
            return reader, index
    prepared, index = _prepare(config, index, prep, root)
    if check is not None:
        check(index)
    shas = [r.sha256 for r in index.records]
    path = pack_path(root, shas, prep.key)
    reader = _matching_pack(path, shas, prep.key)
    if reader is not None:
        log.info("images: %d from %s (policy %s)", reader.count, reader.path, prep.key)
        return reader, index
    if list(prepared.kept) != shas:  # the pack's rows must be the index's records, in order
        raise RuntimeError("prepared images do not match the data set index")
    prepared.write_pack(path)
    log.info("images: %d written to %s", len(shas), path)
    return PackReader(path), index
