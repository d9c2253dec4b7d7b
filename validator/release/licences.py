"""The training images' licences and the bundle's own terms (the aggregation rule).

ISIC Archive images carry one of three licences in the isic-cli ``metadata.csv``
(``copyright_license``): ``CC-0`` (CC0 1.0, no rights reserved), ``CC-BY`` (CC BY 4.0,
attribution) and ``CC-BY-NC`` (CC BY-NC 4.0, attribution, non-commercial), with the credit
line in ``attribution``.

Rule: **the most restrictive licence in the training set wins**, ordered
CC-0 < CC-BY < CC-BY-NC. Whether an image made by a generator is a derivative of its training
images is legally unsettled, so dermsynth assumes it is: a bundle made from CC-0 images only is
released under CC0 1.0; with any CC-BY image, under CC BY 4.0 with the training images'
attributions; with any CC-BY-NC image, under CC BY-NC 4.0 (non-commercial use only). A
training image whose licence is missing or not one of the three is refused (the release
cannot state terms for it), unless the releaser declares one for such images
(``--training-licence``), which ATTRIBUTION.md then says.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from common.errors import UserError


@dataclass(frozen=True)
class Licence:
    key: str  # as the ISIC Archive writes it
    spdx: str
    title: str
    url: str
    rank: int  # higher: more restrictive
    attribution: bool
    commercial: bool


LICENCES = {
    lic.key: lic
    for lic in (
        Licence(
            "CC-0",
            "CC0-1.0",
            "Creative Commons Zero v1.0 Universal (public domain dedication)",
            "https://creativecommons.org/publicdomain/zero/1.0/legalcode",
            0,
            False,
            True,
        ),
        Licence(
            "CC-BY",
            "CC-BY-4.0",
            "Creative Commons Attribution 4.0 International",
            "https://creativecommons.org/licenses/by/4.0/legalcode",
            1,
            True,
            True,
        ),
        Licence(
            "CC-BY-NC",
            "CC-BY-NC-4.0",
            "Creative Commons Attribution-NonCommercial 4.0 International",
            "https://creativecommons.org/licenses/by-nc/4.0/legalcode",
            2,
            True,
            False,
        ),
    )
}
RULE = (
    "The bundle's terms follow the most restrictive licence among the training images, "
    "ordered CC-0 < CC-BY < CC-BY-NC: CC-0 images only give CC0-1.0; any CC-BY image gives "
    "CC-BY-4.0 (credit the attributions below); any CC-BY-NC image gives CC-BY-NC-4.0 "
    "(non-commercial use only). Whether generated images are derivatives of their training "
    "images is legally unsettled; dermsynth assumes they are."
)
SHOWN = 5  # image ids named in a refusal


def normalise(value: str | None) -> str | None:
    """``CC-0``, ``CC0``, ``cc by-nc 4.0``, ``CC-BY-NC-4.0`` ... -> a key of :data:`LICENCES`;
    None when empty or unknown."""
    text = re.sub(r"[\s_]+", "-", (value or "").strip().upper())
    text = re.sub(r"-?(4\.0|1\.0)$", "", text)
    text = {"CC0": "CC-0", "CC-ZERO": "CC-0"}.get(text, text)
    return text if text in LICENCES else None


@dataclass(frozen=True)
class TrainingImage:
    image_id: str
    sha256: str
    licence: str  # a key of LICENCES
    attribution: str
    declared: bool = False  # licence declared by the releaser, not read from metadata


@dataclass(frozen=True)
class Terms:
    licence: Licence  # the bundle's own
    counts: dict[str, int]  # licence key -> training images
    attributions: list[tuple[str, str, int]]  # (attribution, licence key, images), sorted
    declared: int  # images whose licence the releaser declared
    rule: str = RULE

    @property
    def commercial(self) -> bool:
        return self.licence.commercial

    def to_dict(self) -> dict:
        return {
            "licence": self.licence.spdx,
            "licence_url": self.licence.url,
            "commercial_use": self.commercial,
            "attribution_required": self.licence.attribution,
            "training_licences": self.counts,
            "declared_by_releaser": self.declared,
            "rule": self.rule,
        }


def aggregate(images: list[TrainingImage]) -> Terms:
    """The bundle's terms under :data:`RULE` (most restrictive wins)."""
    if not images:
        raise UserError("no training images: the release cannot state its terms")
    counts = Counter(i.licence for i in images)
    worst = max((LICENCES[k] for k in counts), key=lambda lic: lic.rank)
    credits = Counter((i.attribution or "(no attribution given)", i.licence) for i in images)
    return Terms(
        licence=worst,
        counts={k: counts[k] for k in LICENCES if counts[k]},
        attributions=sorted(((a, k, n) for (a, k), n in credits.items()), key=lambda t: (-t[2], t)),
        declared=sum(i.declared for i in images),
    )


def read_licences(root: Path) -> dict[str, tuple[str, str]]:
    """``isic_id -> (copyright_license, attribution)`` from ``root/metadata.csv``; empty when
    there is none (a layout without licence columns)."""
    path = root / "metadata.csv"
    if not path.is_file():
        return {}
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"cannot read {path}: {exc}") from None
    return {
        (r.get("isic_id") or "").strip(): (
            (r.get("copyright_license") or "").strip(),
            (r.get("attribution") or "").strip(),
        )
        for r in rows
        if (r.get("isic_id") or "").strip()
    }


def training_images(records, root: Path, declared: str | None) -> list[TrainingImage]:
    """Each training record with its licence; refuses (UserError) the images whose licence is
    missing or unknown, naming them, unless ``declared`` (a licence key) covers them."""
    table = read_licences(root)
    out, unknown = [], []
    for r in records:
        raw, credit = table.get(r.image_id, ("", ""))
        key = normalise(raw)
        if key is None and declared is not None:
            out.append(TrainingImage(r.image_id, r.sha256, declared, credit, declared=True))
        elif key is None:
            unknown.append(f"{r.image_id} ({raw!r})" if raw else r.image_id)
        else:
            out.append(TrainingImage(r.image_id, r.sha256, key, credit))
    if unknown:
        shown = ", ".join(unknown[:SHOWN]) + (
            f" and {len(unknown) - SHOWN} more" if unknown[SHOWN:] else ""
        )
        raise UserError(
            f"--real {root}: {len(unknown)} training image(s) have no known licence "
            f"(copyright_license in metadata.csv must be one of {', '.join(LICENCES)}): "
            f"{shown}; the release cannot state its terms (--training-licence declares one "
            "for such images)"
        )
    return out
