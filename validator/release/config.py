"""The options of ``python -m validator release``: one frozen dataclass, filled from flags then
``DERMSYNTH_RELEASE_*`` environment variables by :func:`common.config.resolve`, checked once in
:meth:`ReleaseConfig.validate` (the files and folders exist and are of the right kind). What the
inputs *say* (verdict, hashes, fingerprints, licences) is checked in :mod:`.inputs`."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from common.config import OptionError, option

ENV_PREFIX = "DERMSYNTH_RELEASE_"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


@dataclass(frozen=True, kw_only=True)
class ReleaseConfig:
    ENV_PREFIX: ClassVar[str] = ENV_PREFIX

    report: Path | None = field(
        default=None,
        metadata=option("the validation report folder (or its report.json) (required)"),
    )
    synthetic: Path | None = field(
        default=None,
        metadata=option(
            "the synthetic images the report validated: a folder written by "
            "`python -m serving.client` (its manifest.json gives seed and indices); default: "
            "the report folder's synthetic/ (validate --from-server)"
        ),
    )
    model_dir: Path | None = field(
        default=None, metadata=option("the generator's model folder (model.json + ONNX) (required)")
    )
    real: Path | None = field(
        default=None,
        metadata=option(
            "the real training set (isic-cli layout: metadata.csv gives each image's "
            "copyright_license and attribution); filtered as model.json says (required)"
        ),
    )
    key: Path | None = field(
        default=None,
        metadata=option(
            "Ed25519 private key from `python -m validator keygen` (mode 0600; never printed) "
            "(required)"
        ),
    )
    out: Path | None = field(
        default=None,
        metadata=option("folder to write the bundle NAME/ and NAME.tar.gz into (required)"),
    )
    name: str | None = field(
        default=None,
        metadata=option(
            "bundle name (default dermsynth-<model sha256[:12]>-seed<S>-n<N>); the stamps "
            "-FAIL and -RANDOM-WEIGHTS are appended"
        ),
    )
    allow_fail: bool = field(
        default=False,
        metadata=option(
            "release a report whose verdict is FAIL, stamped FAIL on the cards, the manifest "
            "and the bundle's name"
        ),
    )
    allow_random_weights: bool = field(
        default=False,
        metadata=option(
            "release a report whose features came from random Xception weights, stamped "
            "RANDOM-WEIGHTS the same way"
        ),
    )
    training_licence: str | None = field(
        default=None,
        metadata=option(
            "licence to declare for training images whose metadata gives none (e.g. the ISIC "
            "2017 challenge layout: the licence its download page states); stated in "
            "ATTRIBUTION.md",
        ),
    )
    turing_results: Path | None = field(
        default=None,
        metadata=option(
            "optional JSON of a visual Turing test (validator/turing/), shown in MODEL_CARD.md"
        ),
    )
    tar: bool = field(default=True, metadata=option("also write NAME.tar.gz"))

    def validate(self) -> None:
        from validator.release.licences import LICENCES, normalise

        for name in ("report", "model_dir", "real", "key", "out"):
            if getattr(self, name) is None:
                raise OptionError(name, "required")
        for name in ("report", "synthetic", "model_dir", "real"):
            path = getattr(self, name)
            if path is not None and not path.exists():
                raise OptionError(name, f"{path} does not exist")
        for name in ("synthetic", "model_dir", "real"):
            path = getattr(self, name)
            if path is not None and not path.is_dir():
                raise OptionError(name, f"{path} is not a folder")
        for name in ("key", "turing_results"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise OptionError(name, f"{path} is not a file")
        if self.name is not None and not _NAME.fullmatch(self.name):
            raise OptionError(
                "name",
                "use 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit",
            )
        if self.training_licence is not None and normalise(self.training_licence) is None:
            raise OptionError(
                "training_licence",
                f"{self.training_licence!r} is not one of {', '.join(LICENCES)}",
            )
