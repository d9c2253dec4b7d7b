"""The validation report: ``report.json`` (versioned schema, written atomically), a
self-contained ``report.html`` (jinja2 template ``templates/report.html.j2``: verdict first,
random-weights banner, the gate's policy, checks table with each check's status as the gate
counted it (``info``: report-only, never ``pass``), real-vs-synthetic values beside their
real-vs-real spread, plots and flagged image pairs embedded as base64 PNGs)
and ``config.json`` (the resolved config and thresholds) in the report directory.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from common.config import atomic_write_text, save, to_dict
from validator import __version__
from validator.checks import CheckResult, _jsonable

SCHEMA_VERSION = 1
MAX_PAIRS = 40


def _png(data: np.ndarray | Path, size: int | None = None) -> str:
    from PIL import Image

    if isinstance(data, Path):
        raw = data.read_bytes()
    else:
        img = Image.fromarray(data)
        if size:
            img = img.resize((size, size), Image.Resampling.NEAREST)
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        raw = buf.getvalue()
    return "data:image/png;base64," + base64.b64encode(raw).decode("ascii")


def _pairs(results: list[CheckResult], pixels: dict) -> list[dict]:
    """Flagged synthetic images (DCR, then NNDR copies not yet shown) with their nearest real
    images, as data URIs for the HTML."""
    seen, pairs = set(), []
    for r in sorted(results, key=lambda r: r.name != "nndr"):
        for item in r.flagged:
            if "index" not in item or item["index"] in seen or len(pairs) >= MAX_PAIRS:
                continue
            seen.add(item["index"])
            pairs.append(
                {
                    "synthetic": item["synthetic"],
                    "spaces": ", ".join(item.get("spaces", [])),
                    "nndr": item.get("nndr"),
                    "image": _png(pixels["synthetic"][item["index"]], 96),
                    "neighbours": [
                        {"path": p, "distance": d, "image": _png(pixels["real"][j], 96)}
                        for p, d, j in zip(
                            item["nearest_real"],
                            item["nearest_distances"],
                            item["nearest_real_indices"],
                        )
                    ],
                }
            )
    return pairs


def build_report(
    *,
    config,
    thresholds,
    inputs,
    model_info,
    feature_counts,
    results,
    verdict,
    views,
    run_id,
    seconds,
    view_samples: dict | None = None,
    turing: dict | None = None,
) -> dict:
    sets = {"real": inputs.real, "holdout": inputs.holdout, "synthetic": inputs.synthetic}
    return _jsonable(
        {
            "schema_version": SCHEMA_VERSION,
            "tool": {"name": "dermsynth-validator", "version": __version__},
            "run_id": run_id,
            "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "seconds": round(seconds, 2),
            "verdict": verdict.decision,
            "reasons": verdict.reasons,
            "warnings": verdict.warnings,
            "feature_model": {
                **dataclasses.asdict(model_info),
                "random_weights": model_info.random_weights,
                "label": model_info.label(),
            },
            "inputs": {
                role: None if s is None else {**s.info(), "features": feature_counts[role]}
                for role, s in sets.items()
            },
            "model_manifest": inputs.model_manifest,
            "thresholds": to_dict(thresholds),
            "gate": {
                "policy": verdict.policy,
                "deciding": [r.name for r in results if verdict.status(r.name) != "info"],
                "report_only": [r.name for r in results if verdict.status(r.name) == "info"],
            },
            "checks": [{**r.to_dict(), "status": verdict.status(r.name)} for r in results],
            "views": {
                name: str(Path(path).relative_to(Path(config.out))) for name, path in views.items()
            },
            # per view: points shown per source, of how many, seeded subsample (views.Drawn)
            "view_samples": view_samples or {},
            "turing": _turing(turing, sets.get("synthetic")),
            "config_file": "config.json",
        }
    )


def _turing(results: dict | None, synthetic) -> dict | None:
    """A visual Turing test's results, and whether its study showed images of this very
    synthetic set (its folder's fingerprint equals the set's)."""
    if results is None:
        return None
    study_set = ((results.get("study") or {}).get("fingerprint") or {}).get("synthetic")
    this_set = None if synthetic is None else synthetic.index.fingerprint
    return {"results": results, "same_synthetic_set": study_set == this_set}


def render_html(report: dict, views: dict, pairs: list[dict]) -> str:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
    )
    env.filters["num"] = _fmt
    env.filters["brief"] = _brief
    return env.get_template("report.html.j2").render(
        report=report, views={name: _png(Path(p)) for name, p in views.items()}, pairs=pairs
    )


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(
            f"{k}={_fmt(v)}" for k, v in value.items() if not isinstance(v, (list, dict))
        )
    return "" if value is None else str(value)


def _brief(numbers: dict) -> str:
    """The scalar numbers, less those the real-vs-real table shows (values and z-scores)."""
    shown = set(numbers.get("versus_real") or {})
    return _fmt(
        {
            k: v
            for k, v in numbers.items()
            if k not in shown and not (k.startswith("z_") and k[2:] in shown)
        }
    )


def write_report(
    out: Path,
    *,
    config,
    thresholds,
    inputs,
    model_info,
    feature_counts,
    results,
    verdict,
    views,
    pixels,
    run_id,
    seconds,
    view_samples: dict | None = None,
    turing: dict | None = None,
) -> tuple[dict, Path, Path]:
    report = build_report(
        config=config,
        thresholds=thresholds,
        inputs=inputs,
        model_info=model_info,
        feature_counts=feature_counts,
        results=results,
        verdict=verdict,
        views=views,
        run_id=run_id,
        seconds=seconds,
        view_samples=view_samples,
        turing=turing,
    )
    save(config, out / "config.json", thresholds_resolved=to_dict(thresholds))
    json_path, html_path = out / "report.json", out / "report.html"
    atomic_write_text(html_path, render_html(report, views, _pairs(results, pixels)))
    atomic_write_text(json_path, json.dumps(report, indent=2) + "\n")
    return report, json_path, html_path
