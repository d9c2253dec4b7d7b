"""One validation run, end to end: inputs -> features -> checks -> views -> gate -> report.

Shared by the CLI (``python -m validator validate``) and the gRPC service; progress goes to an
optional callback ``on_progress(stage, done, total, message)``. Returns the verdict; exit codes
are the CLI's business.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from common.errors import UserError
from threadpoolctl import threadpool_limits
from trainer.data import load_images
from validator import checks as registry
from validator.checks import CheckInputs, CheckResult
from validator.config import ValidateConfig, load_thresholds
from validator.features import FeatureCache, FeatureModel, extract
from validator.gate import Verdict, decide
from validator.inputs import check_config, load_inputs
from validator.report import write_report
from validator.views import draw_views

Progress = Callable[[str, int, int, str], None]


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    report_json: Path
    report_html: Path
    results: list[CheckResult]
    report: dict


def _quiet(stage: str, done: int, total: int, message: str) -> None:
    pass


def run_validation(config: ValidateConfig, *, on_progress: Progress | None = None,
                   model: FeatureModel | None = None) -> Outcome:
    """Validate the synthetic set of ``config``; raises UserError for bad input."""
    say = on_progress or _quiet
    started, run_id = time.time(), uuid.uuid4().hex[:12]
    check_config(config)
    unknown = [c for c in config.checks if c not in registry.names()]
    if unknown or not config.checks:
        raise UserError(f"--checks: unknown {', '.join(unknown) or '(none given)'}; "
                        f"choose from {', '.join(registry.names())}")
    thresholds = load_thresholds(config.thresholds)
    model = model or FeatureModel(config.features_model, threads=config.threads)
    out = Path(config.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--out {out}: cannot create the report directory ({exc.strerror})"
                        ) from None
    say("inputs", 0, 1, "scanning image folders")
    inputs = load_inputs(config, progress=config.progress)
    sets = {"real": inputs.real, "holdout": inputs.holdout, "synthetic": inputs.synthetic}
    sets = {k: v for k, v in sets.items() if v is not None}
    say("inputs", 1, 1, ", ".join(f"{k}: {len(v.records)} images" for k, v in sets.items()))
    cache = FeatureCache(None if config.no_cache else config.cache_dir)
    feats, pixels, counts = {}, {}, {}
    for role, image_set in sets.items():
        res = extract(model, image_set.records, cache=cache, batch_size=config.batch_size,
                      progress=config.progress, desc=f"features {role}",
                      on_batch=lambda d, t, r=role: say(f"features:{r}", d, t, ""))
        feats[role], counts[role] = res.features, {"computed": res.computed,
                                                   "cached": res.cached}
        say(f"features:{role}", len(image_set.records), len(image_set.records),
            f"{res.computed} computed, {res.cached} from cache")
        pixels[role] = load_images(image_set.records, config.pixel_size, progress=False)
    check_inputs = CheckInputs(
        real=feats["real"], synthetic=feats["synthetic"], holdout=feats.get("holdout"),
        real_pixels=pixels["real"], synthetic_pixels=pixels["synthetic"],
        holdout_pixels=pixels.get("holdout"), real_paths=inputs.real.paths,
        synthetic_paths=inputs.synthetic.paths,
        holdout_paths=inputs.holdout.paths if inputs.holdout else None,
        thresholds=thresholds, seed=config.seed)
    with threadpool_limits(config.blas_threads or None):
        results = _run_checks(config, check_inputs, out, say, run_id)
        say("views", 0, 1, "PCA and t-SNE")
        view_warnings = []
        try:
            views = draw_views({r: (feats[r], pixels[r]) for r in sets}, out / "plots",
                               label=model.info.label(), tsne=config.tsne, seed=config.seed)
        except Exception as exc:  # a plot must not hide the verdict; say so in the report
            views, view_warnings = {}, [f"views failed: {type(exc).__name__}: {exc}"]
    say("views", 1, 1, f"{len(views)} plots")
    verdict = decide(results, random_weights=model.info.random_weights,
                     allow_random_weights=config.allow_random_weights)
    if view_warnings:
        verdict = Verdict(verdict.verdict, verdict.reasons, verdict.warnings + view_warnings)
    say("report", 0, 1, "writing report")
    report, json_path, html_path = write_report(
        out, config=config, thresholds=thresholds, inputs=inputs, model_info=model.info,
        feature_counts=counts, results=results, verdict=verdict, views=views,
        pixels=pixels, run_id=run_id, seconds=time.time() - started)
    say("report", 1, 1, str(json_path))
    return Outcome(verdict, json_path, html_path, results, report)


def _run_checks(config: ValidateConfig, check_inputs: CheckInputs, out: Path,
                say: Progress, run_id: str) -> list[CheckResult]:
    results = []
    for i, name in enumerate(config.checks):
        say("checks", i, len(config.checks), f"running {name}")
        result = registry.run_check(name, check_inputs, out / "checks.jsonl", run_id)
        results.append(result)
        say("checks", i + 1, len(config.checks),
            f"{name}: {'error' if result.error else 'pass' if result.passed else 'fail'}")
    return results
