"""What goes into a release, read and checked before anything is written. Every refusal is a
:class:`~common.errors.UserError` (exit 2) with a message that says what to do:

- the report's verdict is FAIL, unless ``--allow-fail`` (then stamped FAIL);
- the report's features came from random weights, unless ``--allow-random-weights`` (stamped
  RANDOM-WEIGHTS);
- the report was made for other images: the fingerprint (:func:`common.hashing.fingerprint`)
  of the synthetic files differs from the report's ``inputs.synthetic.fingerprint``;
- the report's generator (``model_manifest``: ONNX sha256) differs from the model folder's, or
  the images were fetched from another model (the fetch manifest's ``model_sha256``);
- the model's ONNX file does not match its model.json; the training set (filtered as model.json
  says) does not give model.json's training-data fingerprint;
- the synthetic folder has no fetch manifest (seed and indices unknown), or holds other files;
- a training image has no known licence (:mod:`.licences`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from common.datasets import DatasetIndex, scan
from common.errors import UserError
from common.hashing import fingerprint, sha256_file
from common.manifest import MANIFEST_FILE, ManifestError, ModelManifest
from validator.release import STAMP_FAIL, STAMP_RANDOM
from validator.release.config import ReleaseConfig
from validator.release.licences import Terms, TrainingImage, aggregate, normalise, training_images
from validator.turing.stats import load_results

REPORT_SCHEMA = 1
_IMAGE_NAME = re.compile(r"^(\d{8,})\.png$")  # serving.client.image_name


@dataclass(frozen=True)
class SyntheticImage:
    index: int
    source: Path
    source_sha256: str  # the bytes the report validated


@dataclass(frozen=True)
class ReleaseInputs:
    report_dir: Path
    report: dict
    report_sha256: str
    model: ModelManifest
    model_json_sha256: str
    synthetic_dir: Path
    fetch: dict  # the client's manifest.json
    images: list[SyntheticImage]
    training: DatasetIndex
    training_images: list[TrainingImage]
    terms: Terms
    stamps: list[str]
    turing: dict | None


def _json(path: Path, what: str) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"{what} {path}: not readable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise UserError(f"{what} {path}: should hold a JSON object")
    return data


def _trainer_prep(model: ModelManifest) -> dict:
    """scan()'s preparation arguments as the trainer used them (draft decode at the model's
    resolution, in parallel), with the shared image cache where it can be written (a warm
    cache on the training machine decodes nothing), else a temporary one."""
    from common.image_cache import ImageCache, PrepPolicy, default_cache_root

    cache = ImageCache(default_cache_root())
    try:
        cache.check_writable()
    except UserError:
        cache = None
    return {"policy": PrepPolicy(size=model.resolution, draft=True), "cache": cache}


def _report(path: Path) -> tuple[Path, Path, dict]:
    json_path = path / "report.json" if path.is_dir() else path
    if not json_path.is_file():
        raise UserError(f"--report {path}: no report.json (run `python -m validator validate`)")
    report = _json(json_path, "--report")
    if report.get("schema_version") != REPORT_SCHEMA or "verdict" not in report:
        raise UserError(
            f"--report {json_path}: not a dermsynth validation report of schema "
            f"{REPORT_SCHEMA} (schema_version {report.get('schema_version')!r})"
        )
    return json_path.parent, json_path, report


def _policy(report: dict, config: ReleaseConfig, json_path: Path) -> list[str]:
    """The stamps the release carries; UserError when the report may not be released."""
    stamps, refusals = [], []
    if report.get("verdict") != "PASS":
        if config.allow_fail:
            stamps.append(STAMP_FAIL)
        else:
            failed = ", ".join(str(r).split(":")[0] for r in report.get("reasons") or [])
            refusals.append(
                f"the report's verdict is {report.get('verdict')} (failed: {failed or '?'}); "
                "--allow-fail releases it stamped FAIL"
            )
    if (report.get("feature_model") or {}).get("random_weights", True):
        if config.allow_random_weights:
            stamps.append(STAMP_RANDOM)
        else:
            refusals.append(
                "the report's features came from RANDOM Xception weights; "
                "--allow-random-weights releases it stamped RANDOM-WEIGHTS"
            )
    if refusals:
        raise UserError(f"--report {json_path}: " + "; ".join(refusals))
    return stamps


def _model(config: ReleaseConfig, report: dict, json_path: Path) -> ModelManifest:
    try:
        model = ModelManifest.load(config.model_dir)
        model.check_onnx(config.model_dir)
    except ManifestError as exc:
        raise UserError(f"--model-dir: {exc}") from None
    described = report.get("model_manifest") or {}
    named = described.get("onnx_sha256") or described.get("model_sha256")
    if not named:
        raise UserError(
            f"--report {json_path}: names no generator (validate with --model-dir or "
            "--from-server), so it cannot vouch for this model"
        )
    if named != model.onnx_sha256:
        raise UserError(
            f"--report {json_path}: made for generator {named[:12]}, but --model-dir "
            f"{config.model_dir} holds generator {model.onnx_sha256[:12]}"
        )
    return model


def _synthetic(folder: Path, model: ModelManifest, report: dict, json_path: Path):
    from serving.client import MANIFEST, MANIFEST_FORMAT, manifest_indices

    fetch_path = folder / MANIFEST
    if not fetch_path.is_file():
        raise UserError(
            f"--synthetic {folder}: no {MANIFEST} from `python -m serving.client`: the seed and "
            "indices of its images are unknown, so nobody could regenerate them"
        )
    fetch = _json(fetch_path, "--synthetic")
    if fetch.get("format") != MANIFEST_FORMAT or not isinstance(fetch.get("seed"), int):
        raise UserError(f"--synthetic {fetch_path}: not a {MANIFEST_FORMAT} manifest")
    if fetch.get("model_sha256") != model.onnx_sha256:
        raise UserError(
            f"--synthetic {folder}: images of generator {str(fetch.get('model_sha256'))[:12]}, "
            f"not of --model-dir's {model.onnx_sha256[:12]}"
        )
    listed = set(manifest_indices(fetch))
    images, foreign = [], []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.name == MANIFEST:
            continue
        match = _IMAGE_NAME.match(path.name)
        if not match or not path.is_file() or path.is_symlink():
            foreign.append(path.name)
            continue
        index = int(match.group(1))
        if index not in listed:
            raise UserError(
                f"--synthetic {folder}: {path.name} is not listed in {MANIFEST}; "
                "complete the fetch (re-run the same client command)"
            )
        images.append(SyntheticImage(index, path, sha256_file(path)))
    if foreign:
        raise UserError(
            f"--synthetic {folder}: holds {', '.join(foreign[:5])}"
            f"{' ...' if foreign[5:] else ''}, not fetched images; release the client's folder"
        )
    if not images:
        raise UserError(f"--synthetic {folder}: holds no images")
    want = (report.get("inputs") or {}).get("synthetic") or {}
    got = fingerprint(i.source_sha256 for i in images)
    if want.get("fingerprint") != got:
        raise UserError(
            f"--report {json_path} was made for other images: its synthetic set "
            f"({want.get('count')} images, fingerprint {str(want.get('fingerprint'))[:12]}) is "
            f"not the {len(images)} images in {folder} (fingerprint {got[:12]})"
        )
    return fetch, images


def _training(config: ReleaseConfig, model: ModelManifest):
    filters = {k: v for k, v in model.training_data.filters.items() if v is not None}
    unknown = sorted(set(filters) - {"benign_malignant", "diagnosis"})
    if unknown:
        raise UserError(
            f"--model-dir {config.model_dir}: {MANIFEST_FILE} filters the training data by "
            f"{', '.join(unknown)}, which this dermsynth cannot apply to --real"
        )
    try:  # as the trainer indexed it: its preparation policy, so the same files are usable
        index = scan(config.real, progress=False, **filters, **_trainer_prep(model))
    except UserError as exc:
        raise UserError(f"--real: {exc}") from None
    want = model.training_data.fingerprint
    if want is None:
        raise UserError(
            f"--model-dir {config.model_dir}: {MANIFEST_FILE} names no training-data "
            "fingerprint, so the training set (and its licences) cannot be tied to the model"
        )
    if index.fingerprint != want:
        shown = ", ".join(f"{k}={v}" for k, v in filters.items()) or "no filters"
        raise UserError(
            f"--real {config.real}: its {len(index.records)} images ({shown}) have fingerprint "
            f"{index.fingerprint[:12]}, but the model was trained on {want[:12]} "
            f"({model.training_data.image_count} images): not the training set"
        )
    declared = normalise(config.training_licence) if config.training_licence else None
    return index, training_images(index.records, index.root, declared)


def load(config: ReleaseConfig) -> ReleaseInputs:
    """Read and check every input of ``config``; raises UserError with the first refusal."""
    report_dir, json_path, report = _report(config.report)
    stamps = _policy(report, config, json_path)
    model = _model(config, report, json_path)
    synthetic_dir = config.synthetic or report_dir / "synthetic"
    if not synthetic_dir.is_dir():
        raise UserError(
            f"--synthetic: not given and {synthetic_dir} does not exist; name the folder of "
            "the images the report validated"
        )
    fetch, images = _synthetic(synthetic_dir, model, report, json_path)
    training, licensed = _training(config, model)
    turing = load_results(config.turing_results) if config.turing_results else None
    return ReleaseInputs(
        report_dir=report_dir,
        report=report,
        report_sha256=sha256_file(json_path),
        model=model,
        model_json_sha256=sha256_file(Path(config.model_dir) / MANIFEST_FILE),
        synthetic_dir=synthetic_dir,
        fetch=fetch,
        images=images,
        training=training,
        training_images=licensed,
        terms=aggregate(licensed),
        stamps=stamps,
        turing=turing,
    )
