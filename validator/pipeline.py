"""One validation run, end to end: inputs -> features -> checks -> views -> gate -> report.

Shared by the CLI (``python -m validator validate``) and the gRPC service; progress goes to an
optional callback ``on_progress(stage, done, total, message)``, called at least once per fetched
batch, feature batch, pixel chunk and check: an exception it raises stops the run there (the
service's cancellation). Returns the verdict; exit codes are the CLI's business.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from common.errors import UserError
from common.images import load_images
from validator import checks as registry
from validator.checks import CheckInputs, CheckResult
from validator.config import ValidateConfig
from validator.features import FeatureCache, FeatureModel, extract
from validator.gate import Verdict, decide
from validator.inputs import Inputs, load_inputs
from validator.report import write_report
from validator.roots import is_report_folder, mark_report_folder
from validator.rowfile import Scratch
from validator.thresholds import Thresholds, load_thresholds
from validator.views import draw_views

Progress = Callable[[str, int, int, str], None]
PIXEL_CHUNK = 256  # images per pixel-loading step between progress calls
# what write_report and the checks write into the report folder
REPORT_FILES = ("config.json", "report.json", "report.html", "checks.jsonl", "plots")


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    report_json: Path
    report_html: Path
    results: list[CheckResult]
    report: dict


def _quiet(stage: str, done: int, total: int, message: str) -> None:
    pass


def run_validation(
    config: ValidateConfig,
    *,
    on_progress: Progress | None = None,
    model: FeatureModel | None = None,
    thresholds: Thresholds | None = None,
) -> Outcome:
    """Validate the synthetic set of ``config``; raises UserError for bad input data.
    ``config`` obeys :meth:`ValidateConfig.validate` (as :func:`common.config.resolve` and the
    service build it); ``thresholds`` (already loaded) wins over ``config.thresholds``."""
    say = on_progress or _quiet
    started, run_id = time.time(), uuid.uuid4().hex[:12]
    if thresholds is None:
        thresholds = load_thresholds(config.thresholds)
    turing = None
    if config.turing_results is not None:  # checked before any work (exit 2 when bad)
        from validator.turing.stats import load_results

        turing = load_results(config.turing_results)
    out = _report_folder(Path(config.out), fetching=config.from_server is not None)
    model = model or FeatureModel(config.features_model, threads=config.threads)
    say("inputs", 0, 1, "scanning image folders")
    inputs = load_inputs(
        config, progress=config.progress, on_fetch=lambda d, t: say("fetch", d, t, "")
    )
    sets = {"real": inputs.real, "holdout": inputs.holdout, "synthetic": inputs.synthetic}
    sets = {k: v for k, v in sets.items() if v is not None}
    say("inputs", 1, 1, ", ".join(f"{k}: {len(v.records)} images" for k, v in sets.items()))
    cache = FeatureCache(config.cache_dir if config.cache else None)
    with Scratch(out) as scratch:  # features and pixels on disk, read a chunk at a time
        loaded = _Loaded(inputs, {}, {}, {})
        side, dim = config.pixel_size, model.info.feature_dim
        total = sum(len(s.records) for s in sets.values())
        scratch.require(total * (4 * dim + 3 * side * side), "the features and pixels")
        for role, image_set in sets.items():
            n = len(image_set.records)
            res = extract(
                model,
                image_set.records,
                cache=cache,
                batch_size=config.batch_size,
                progress=config.progress,
                desc=f"features {role}",
                on_batch=lambda d, t, r=role: say(f"features:{r}", d, t, ""),
                out=scratch.rows(f"{role}.features", n, (dim,), np.float32),
            )
            loaded.features[role] = res.features
            loaded.counts[role] = {"computed": res.computed, "cached": res.cached}
            say(f"features:{role}", n, n, f"{res.computed} computed, {res.cached} from cache")
            loaded.pixels[role] = _load_pixels(
                image_set.index,
                scratch.rows(f"{role}.pixels", n, (side, side, 3), np.uint8),
                lambda d, t, r=role: say(f"pixels:{r}", d, t, ""),
            )
        outcome = _check_and_report(
            config,
            loaded,
            model=model,
            thresholds=thresholds,
            turing=turing,
            out=out,
            say=say,
            run_id=run_id,
            started=started,
        )
    say("report", 1, 1, str(outcome.report_json))
    return outcome


@dataclass
class _Loaded:
    """A run's inputs with their features and pixels (RowFiles in its scratch folder) and the
    feature counts (computed, from cache) per role."""

    inputs: Inputs
    features: dict
    pixels: dict
    counts: dict


def _check_and_report(
    config: ValidateConfig, loaded: _Loaded, *, model, thresholds, turing, out, say, run_id, started
) -> Outcome:
    inputs, feats, pixels = loaded.inputs, loaded.features, loaded.pixels
    sets = [r for r in ("real", "holdout", "synthetic") if r in feats]
    check_inputs = CheckInputs(
        real=feats["real"],
        synthetic=feats["synthetic"],
        holdout=feats.get("holdout"),
        real_pixels=pixels["real"],
        synthetic_pixels=pixels["synthetic"],
        holdout_pixels=pixels.get("holdout"),
        real_paths=inputs.real.paths,
        synthetic_paths=inputs.synthetic.paths,
        holdout_paths=inputs.holdout.paths if inputs.holdout else None,
        thresholds=thresholds,
        seed=config.seed,
        memory_mb=config.memory_mb,
    )
    with threadpool_limits(config.blas_threads or None):
        results = _run_checks(config, check_inputs, out, say, run_id)
        say("views", 0, 1, "PCA and t-SNE")
        view_warnings = []
        try:
            drawn = draw_views(
                {r: (feats[r], pixels[r]) for r in sets},
                out / "plots",
                label=model.info.label(),
                tsne=config.tsne,
                seed=config.seed,
                memory_mb=config.memory_mb,
            )
            views, view_samples = drawn.files, drawn.samples
        except Exception as exc:  # a plot must not hide the verdict; say so in the report
            views, view_samples = {}, {}
            view_warnings = [f"views failed: {type(exc).__name__}: {exc}"]
    say("views", 1, 1, f"{len(views)} plots")
    verdict = decide(
        results,
        random_weights=model.info.random_weights,
        allow_random_weights=config.allow_random_weights,
    )
    if view_warnings:
        verdict = replace(verdict, warnings=verdict.warnings + view_warnings)
    say("report", 0, 1, "writing report")
    report, json_path, html_path = write_report(
        out,
        config=config.for_saving(),
        thresholds=thresholds,
        inputs=inputs,
        model_info=model.info,
        feature_counts=loaded.counts,
        results=results,
        verdict=verdict,
        views=views,
        view_samples=view_samples,
        turing=turing,
        pixels=pixels,
        run_id=run_id,
        seconds=time.time() - started,
    )
    return Outcome(verdict, json_path, html_path, results, report)


def _report_folder(out: Path, *, fetching: bool) -> Path:
    """Create the report folder; refuse one that holds files a report would overwrite (or,
    ``fetching``, a ``synthetic/`` folder) but is not a previous report (e.g. a training run's
    ``config.json``)."""
    if out.is_dir() and not is_report_folder(out):
        names = REPORT_FILES + (("synthetic",) if fetching else ())
        clash = sorted(name for name in names if (out / name).exists())
        if clash:
            raise UserError(
                f"--out {out}: holds {', '.join(clash)} but is not a validator "
                "report folder; choose a new folder"
            )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(
            f"--out {out}: cannot create the report directory ({exc.strerror})"
        ) from None
    if is_report_folder(out):
        mark_report_folder(out)
    return out


def _load_pixels(index, out, on_chunk: Callable[[int, int], None]):
    """The pixels of ``index.records`` at ``out``'s size, read from the image cache the scan
    prepared them into (:func:`validator.inputs.pixel_policy`; an entry pruned meanwhile is
    prepared again from its file), written into ``out`` (a RowFile) :data:`PIXEL_CHUNK` images
    at a time, reporting (and allowing a stop) after every chunk."""
    records, prepared, size = index.records, index.prepared, out.shape[1]
    for start in range(0, len(records), PIXEL_CHUNK):
        part = records[start : start + PIXEL_CHUNK]
        if prepared is None:  # scanned without preparation: plain decode
            out[start : start + len(part)] = load_images(part, size, progress=False)
        else:
            chunk = np.empty((len(part), size, size, 3), np.uint8)
            for i, rec in enumerate(part):
                pixels = prepared.cache.get(rec.sha256, prepared.policy)
                chunk[i] = _prepare_again(rec, prepared) if pixels is None else pixels
            out[start : start + len(part)] = chunk
        on_chunk(min(start + PIXEL_CHUNK, len(records)), len(records))
    return out


def _prepare_again(record, prepared) -> np.ndarray:
    from common.image_cache import prepare

    again = prepare([record.path], prepared.policy, cache=prepared.cache, workers=1, progress=False)
    if again.sha256[0] != record.sha256:
        reason = again.skipped[0][1] if again.skipped else "its content changed"
        raise UserError(f"{record.path}: changed during the run ({reason})")
    return prepared.cache.get(record.sha256, prepared.policy)


def _run_checks(
    config: ValidateConfig, check_inputs: CheckInputs, out: Path, say: Progress, run_id: str
) -> list[CheckResult]:
    results = []
    for i, name in enumerate(config.checks):
        say("checks", i, len(config.checks), f"running {name}")
        result = registry.run_check(name, check_inputs, out / "checks.jsonl", run_id)
        results.append(result)
        say(
            "checks",
            i + 1,
            len(config.checks),
            f"{name}: {'error' if result.error else 'pass' if result.passed else 'fail'}",
        )
    return results
