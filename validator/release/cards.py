"""The bundle's documents, rendered from the release manifest (less its file list) and the
validation report with the Markdown templates in ``templates/``:

- ``MODEL_CARD.md``: the headings of Mitchell et al., "Model Cards for Model Reporting"
  (FAT* 2019): model details, intended use, factors, metrics (each gate check with its
  real-vs-real baseline), evaluation data, training data, quantitative analyses, ethical
  considerations, caveats and recommendations; an optional visual Turing test section;
- ``DATASHEET.md``: Gebru et al., "Datasheets for Datasets" (CACM 2021), short form: motivation,
  composition, collection, preprocessing, uses, distribution, maintenance;
- ``ATTRIBUTION.md`` and ``LICENSES/``: the training images' licences counted, the
  attributions, the bundle's terms and the rule (:mod:`.licences`).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from validator.release.licences import LICENCES, Terms, TrainingImage

TEMPLATES = Path(__file__).parent / "templates"


def _cell(value) -> str:
    """A value safe inside one Markdown table cell."""
    if isinstance(value, float):
        value = f"{value:.4g}"
    text = "" if value is None else str(value)
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _scalars(numbers: dict, limit: int = 6) -> str:
    shown = [
        f"{k}={_cell(v)}"
        for k, v in numbers.items()
        if isinstance(v, (int, float, str)) and not isinstance(v, bool) and not k.startswith("z_")
    ]
    return ", ".join(shown[:limit])


def _baselines(numbers: dict) -> str:
    """Each statistic beside its real-vs-real spread (weight-free checks), or the privacy
    checks' real-vs-real false-flag figures where the check reports them."""
    table = numbers.get("versus_real")
    if isinstance(table, dict) and table:
        return "; ".join(
            f"{k}: {_cell(v.get('value'))} vs real {_cell(v.get('real_vs_real_mean'))} "
            f"± {_cell(v.get('real_vs_real_sd'))} (max {_cell(v.get('real_vs_real_max'))})"
            for k, v in table.items()
            if isinstance(v, dict)
        )
    keys = [k for k in numbers if "real_vs_real" in k and isinstance(numbers[k], (int, float))]
    return ", ".join(f"{k}={_cell(numbers[k])}" for k in keys[:4])


def checks_table(report: dict) -> list[dict]:
    return [
        {
            "name": c.get("name"),
            "kind": c.get("kind"),
            "status": c.get("status"),
            "shown": _scalars(c.get("numbers") or {}),
            "baseline": _baselines(c.get("numbers") or {}) or "n/a",
            "note": c.get("error") or c.get("note") or "",
        }
        for c in report.get("checks") or []
    ]


def _env():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=False,  # Markdown; table cells go through the `cell` filter
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["cell"] = _cell
    env.filters["json"] = lambda v: json.dumps(v, sort_keys=True)
    return env


def render(facts: dict, report: dict, terms: Terms, turing: dict | None) -> dict[str, str]:
    """{file name: Markdown} for the three cards."""
    env = _env()
    context = {
        "m": facts,
        "report": report,
        "checks": checks_table(report),
        "terms": terms,
        "licences": LICENCES,
        "turing": turing,
        "real": (report.get("inputs") or {}).get("real") or {},
        "holdout": (report.get("inputs") or {}).get("holdout"),
        "synthetic": (report.get("inputs") or {}).get("synthetic") or {},
    }
    return {
        name: env.get_template(f"{name}.j2").render(**context)
        for name in ("MODEL_CARD.md", "DATASHEET.md", "ATTRIBUTION.md")
    }


def licence_files(terms: Terms, images: list[TrainingImage]) -> dict[str, str]:
    """{path under LICENSES/: text}: a notice per licence (the training images' and the
    bundle's) and ``training-images.csv`` (every training image's id, sha256, licence and
    attribution)."""
    out = {}
    used = {LICENCES[k] for k in terms.counts} | {terms.licence}
    for lic in sorted(used, key=lambda lic: lic.rank):
        roles = []
        if lic.key in terms.counts:
            roles.append(f"{terms.counts[lic.key]} training image(s) carry it")
        if lic is terms.licence:
            roles.append("the synthetic images of this bundle are released under it")
        out[f"{lic.spdx}.txt"] = (
            f"{lic.title} ({lic.spdx})\n\n"
            f"In this bundle: {'; '.join(roles)}.\n\n"
            f"The legal code: {lic.url}\n"
            "(this notice names the licence; the legal code at that address is the licence text)\n"
        )
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["isic_id", "sha256", "copyright_license", "attribution", "declared"])
    for i in sorted(images, key=lambda i: i.image_id):
        writer.writerow([i.image_id, i.sha256, i.licence, i.attribution, str(i.declared).lower()])
    out["training-images.csv"] = buf.getvalue()
    return out
