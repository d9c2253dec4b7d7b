"""The licence rule of release bundles (validator.release.licences): the most restrictive
licence among the training images decides the bundle's terms; unknown licences are refused."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from common.errors import UserError
from validator.release.licences import RULE, aggregate, normalise, training_images


@dataclass(frozen=True)
class Record:
    image_id: str
    sha256: str = "0" * 64


def _folder(tmp_path: Path, licences: list[str]) -> tuple[Path, list[Record]]:
    rows = ["isic_id,attribution,copyright_license"]
    records = []
    for i, lic in enumerate(licences):
        rows.append(f"ISIC_{i:07d},Contributor {i % 2},{lic}")
        records.append(Record(f"ISIC_{i:07d}"))
    (tmp_path / "metadata.csv").write_text("\n".join(rows) + "\n")
    return tmp_path, records


def _terms(tmp_path, licences, declared=None):
    root, records = _folder(tmp_path, licences)
    return aggregate(training_images(records, root, declared))


def test_cc0_only_gives_cc0(tmp_path):
    terms = _terms(tmp_path, ["CC-0"] * 4)
    assert terms.licence.spdx == "CC0-1.0" and terms.commercial
    assert not terms.licence.attribution
    assert terms.counts == {"CC-0": 4}


def test_cc0_with_cc_by_gives_cc_by_with_attributions(tmp_path):
    terms = _terms(tmp_path, ["CC-0", "CC-BY", "CC-0"])
    assert terms.licence.spdx == "CC-BY-4.0" and terms.commercial and terms.licence.attribution
    assert terms.counts == {"CC-0": 2, "CC-BY": 1}
    assert terms.attributions == [
        ("Contributor 0", "CC-0", 2),
        ("Contributor 1", "CC-BY", 1),
    ]


@pytest.mark.parametrize("mix", [["CC-BY-NC"], ["CC-0", "CC-BY-NC"], ["CC-0", "CC-BY", "CC-BY-NC"]])
def test_any_cc_by_nc_makes_the_bundle_non_commercial(tmp_path, mix):
    terms = _terms(tmp_path, mix * 3)
    assert terms.licence.spdx == "CC-BY-NC-4.0" and not terms.commercial
    assert terms.to_dict()["commercial_use"] is False and terms.to_dict()["rule"] == RULE


def test_unknown_or_missing_licence_is_refused_naming_the_images(tmp_path):
    root, records = _folder(tmp_path, ["CC-0", "GPL", "", "CC-BY"])
    with pytest.raises(UserError) as err:
        training_images(records, root, None)
    assert "2 training image(s) have no known licence" in str(err.value)
    assert "ISIC_0000001 ('GPL'), ISIC_0000002;" in str(err.value)


def test_a_declared_licence_covers_only_images_without_one(tmp_path):
    root, records = _folder(tmp_path, ["CC-0", ""])
    images = training_images(records, root, "CC-BY-NC")
    assert [(i.licence, i.declared) for i in images] == [("CC-0", False), ("CC-BY-NC", True)]
    terms = aggregate(images)
    assert terms.licence.spdx == "CC-BY-NC-4.0" and terms.declared == 1


@pytest.mark.parametrize(
    "raw, key",
    [
        ("CC-0", "CC-0"),
        ("CC0", "CC-0"),
        ("cc0-1.0", "CC-0"),
        ("CC BY 4.0", "CC-BY"),
        ("CC-BY-NC", "CC-BY-NC"),
        ("cc by-nc 4.0", "CC-BY-NC"),
        ("CC-BY-SA", None),
        ("", None),
    ],
)
def test_licence_names_normalise(raw, key):
    assert normalise(raw) == key
