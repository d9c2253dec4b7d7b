"""Xception image features through ONNX Runtime, with a per-file feature cache.

Method: Xception (Chollet, "Xception: Deep Learning with Depthwise Separable Convolutions",
CVPR 2017) without its classifier, global-average-pooled to 2048-d, as in the PCA/t-SNE
views and as the Inception features of FID (Heusel et al. 2017). Preprocessing is Xception's own
(``keras.applications.xception.preprocess_input``: ``x / 127.5 - 1``), i.e.
:func:`common.images.to_unit_range`. The ONNX file and its sidecar come from
``python -m trainer export-xception``, under the contract in :mod:`common.feature_model`; this
module never imports TensorFlow.

Cache: one SQLite file in ``cache_dir`` keyed by (image file sha256, feature model sha256,
input size), so a re-run only computes features for files it has not seen.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.datasets import ImageRecord
from common.errors import UserError
from common.feature_model import EXPORT_COMMAND, RANDOM, Sidecar
from common.hashing import sha256_file
from common.images import load_images, to_unit_range

CACHE_READ_BATCH = 2000  # cached feature vectors read per SQLite round (16 MB at 2048-d)


@dataclass(frozen=True)
class FeatureModelInfo:
    """The loaded feature model as reports show it: its file and sha256, and the sidecar's
    weights kind, input size, feature size and export versions."""

    path: str
    sha256: str
    weights: str  # "imagenet" | "random" | "file:<sha256>"
    input_size: int
    feature_dim: int
    versions: dict

    @classmethod
    def of(cls, path: Path, sidecar: Sidecar) -> FeatureModelInfo:
        return cls(
            str(path),
            sidecar.onnx_sha256,
            sidecar.weights,
            sidecar.input_size,
            sidecar.feature_dim,
            dict(sidecar.versions),
        )

    @property
    def random_weights(self) -> bool:
        return self.weights == RANDOM

    def label(self) -> str:
        text = f"Xception {self.input_size}px, weights={self.weights}"
        return text + " (RANDOM WEIGHTS: NOT MEANINGFUL)" if self.random_weights else text


@dataclass(frozen=True)
class FeatureResult:
    features: np.ndarray  # float32 [N, feature_dim] (or the RowFile given as ``out``)
    computed: int
    cached: int


class FeatureModel:
    """An exported Xception ONNX file, checked against its sidecar, on ONNX Runtime."""

    def __init__(self, path: str | Path, *, threads: int = 0):
        path = Path(path)
        if not path.is_file():
            raise UserError(
                f"feature model {path} does not exist; make one with "
                f"`{EXPORT_COMMAND}` (in the trainer image)"
            )
        side = Sidecar.read(path)
        sha = sha256_file(path)
        if sha != side.onnx_sha256:
            raise UserError(
                f"{path}: sha256 {sha[:12]} does not match its sidecar "
                f"({side.onnx_sha256[:12]}); re-export the feature model"
            )
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        size, in_name, out_name = side.input_size, side.input_name, side.output_name
        inputs = {i.name: i.shape for i in self.session.get_inputs()}
        if in_name not in inputs or list(inputs[in_name][1:]) != [size, size, 3]:
            raise UserError(
                f"{path}: expected input {in_name!r} [N, {size}, {size}, 3] as its "
                f"sidecar says, found {inputs}"
            )
        outputs = {o.name: o.shape for o in self.session.get_outputs()}
        dim = outputs.get(out_name, [None])[-1]
        if out_name not in outputs or (isinstance(dim, int) and dim != side.feature_dim):
            raise UserError(
                f"{path}: expected output {out_name!r} [N, {side.feature_dim}] as "
                f"its sidecar says, found {outputs}"
            )
        self.input_name, self.output_name = in_name, out_name
        self.info = FeatureModelInfo.of(path, side)

    def __call__(self, images_uint8: np.ndarray) -> np.ndarray:
        """Features of uint8 [N, size, size, 3] images (Xception preprocessing applied here)."""
        x = to_unit_range(images_uint8)
        return self.session.run([self.output_name], {self.input_name: x})[0].astype(np.float32)


class FeatureCache:
    """(file sha256, model sha256, size) -> float32 vector, in one SQLite file."""

    def __init__(self, cache_dir: str | Path | None):
        self.path = None if cache_dir is None else Path(cache_dir) / "features.sqlite"
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as db:
                db.execute(
                    "CREATE TABLE IF NOT EXISTS features (image_sha TEXT, model_sha TEXT,"
                    " size INTEGER, vec BLOB, PRIMARY KEY (image_sha, model_sha, size))"
                )

    @contextmanager
    def _connect(self):
        db = sqlite3.connect(self.path, timeout=30)
        try:
            with db:  # commits on success, rolls back on error
                yield db
        finally:
            db.close()

    def get(self, shas: Sequence[str], model_sha: str, size: int) -> dict[str, np.ndarray]:
        if self.path is None or not shas:
            return {}
        found: dict[str, np.ndarray] = {}
        with self._connect() as db:
            unique = sorted(set(shas))
            for i in range(0, len(unique), 500):
                chunk = unique[i : i + 500]
                rows = db.execute(
                    f"SELECT image_sha, vec FROM features WHERE model_sha=? AND size=? AND "
                    f"image_sha IN ({','.join('?' * len(chunk))})",
                    [model_sha, size, *chunk],
                )
                for sha, blob in rows:
                    found[sha] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put(self, items: dict[str, np.ndarray], model_sha: str, size: int) -> None:
        if self.path is None or not items:
            return
        with self._connect() as db:
            db.executemany(
                "INSERT OR REPLACE INTO features VALUES (?, ?, ?, ?)",
                [
                    (sha, model_sha, size, np.asarray(v, np.float32).tobytes())
                    for sha, v in items.items()
                ],
            )


def extract(
    model: FeatureModel,
    records: Sequence[ImageRecord],
    *,
    cache: FeatureCache,
    batch_size: int = 32,
    progress: bool = True,
    desc: str = "features",
    on_batch: Callable[[int, int], None] | None = None,
    out=None,
) -> FeatureResult:
    """Features for ``records`` in order, written into ``out`` (a float32 [N, feature_dim]
    array or :class:`validator.rowfile.RowFile`; a new array when None): cached ones read in
    batches of :data:`CACHE_READ_BATCH`, the rest computed in batches of ``batch_size`` (only
    one batch of images and of features in memory at a time)."""
    info = model.info
    if out is None:
        out = np.zeros((len(records), info.feature_dim), dtype=np.float32)
    elif tuple(out.shape) != (len(records), info.feature_dim):
        raise ValueError(f"out has shape {out.shape}, needs {(len(records), info.feature_dim)}")
    rows_of: dict[str, list[int]] = {}  # sha256 -> its rows (a file may appear twice)
    for i, rec in enumerate(records):
        rows_of.setdefault(rec.sha256, []).append(i)
    shas = list(rows_of)
    todo: list[ImageRecord] = []
    for start in range(0, len(shas), CACHE_READ_BATCH):
        part = shas[start : start + CACHE_READ_BATCH]
        known = cache.get(part, info.sha256, info.input_size)
        for sha in part:
            if sha in known:
                out[rows_of[sha]] = known[sha]
            else:
                todo.append(records[rows_of[sha][0]])
    from tqdm import tqdm

    with tqdm(total=len(todo), desc=desc, unit="img", disable=not progress or not todo) as bar:
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            feats = model(load_images(batch, info.input_size, progress=False))
            cache.put({rec.sha256: f for rec, f in zip(batch, feats)}, info.sha256, info.input_size)
            for rec, f in zip(batch, feats):
                out[rows_of[rec.sha256]] = f
            bar.update(len(batch))
            if on_batch is not None:
                on_batch(min(start + batch_size, len(todo)), len(todo))
    return FeatureResult(out, computed=len(todo), cached=len(records) - len(todo))
