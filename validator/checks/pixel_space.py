"""The pixel space of the privacy checks (:mod:`validator.checks.dcr`,
:mod:`validator.checks.holdout_share`): each image shrunk to ``dcr_pixel_size`` px (box
filter) with its mean removed, so that the cosine distance is 1 - Pearson correlation; the
reference images also as mirror and zoom views.

The vectors are made on demand, a block of images at a time (:func:`pixel_rows`, a
:class:`validator.neighbours.Rows`), inside ``--memory-mb``: never for a whole set (the 12
reference views of 30,000 training images at 16 px would take 1.1 GiB).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from validator.neighbours import Rows


def pixel_vectors(images: np.ndarray, size: int, zoom: float = 1.0) -> np.ndarray:
    """[N, size*size*3] float32: centre crop ``zoom`` of each uint8 image, box-resized to
    ``size``, mean removed per image."""
    out = np.empty((len(images), size * size * 3), dtype=np.float32)
    for i, img in enumerate(images):
        side = img.shape[0]
        crop = max(1, round(side * zoom))
        off = (side - crop) // 2
        pil = Image.fromarray(img[off : off + crop, off : off + crop])
        v = np.asarray(pil.resize((size, size), Image.Resampling.BOX), dtype=np.float32)
        out[i] = v.reshape(-1) - v.mean()
    return out


def pixel_views(images: np.ndarray, size: int, zooms, vertical: bool) -> list[np.ndarray]:
    """Every (zoom, mirror) view of the reference images, each [N, D] in the same order."""
    views = []
    for zoom in zooms:
        base = pixel_vectors(images, size, zoom).reshape(len(images), size, size, 3)
        flips = [base, base[:, :, ::-1]]
        if vertical:
            flips += [base[:, ::-1], base[:, ::-1, ::-1]]
        views += [f.reshape(len(images), -1) for f in flips]
    return views


def pixel_rows(
    images: np.ndarray,
    size: int,
    zooms=(1.0,),
    *,
    mirrors: bool = False,
    vertical: bool = False,
    rows: np.ndarray | None = None,
) -> Rows:
    """The pixel vectors of ``images`` (of ``images[rows]``), made on demand a block at a time
    (:class:`validator.neighbours.Rows`): one view per zoom, or with ``mirrors`` every (zoom,
    mirror) view of :func:`pixel_views`. Nothing is made for the whole set at once: the
    reference views of 30,000 training images would take 1.1 GiB."""
    count = len(images) if rows is None else len(rows)
    n_views = len(zooms) * ((4 if vertical else 2) if mirrors else 1)

    def make(start: int, stop: int) -> list[np.ndarray]:
        part = images[start:stop] if rows is None else images[rows[start:stop]]
        if mirrors:
            return pixel_views(part, size, zooms, vertical)
        return [pixel_vectors(part, size, zoom) for zoom in zooms]

    return Rows(count, size * size * 3, n_views, make)
