"""Release bundles: one command turns a validated synthetic set into a signed, attributed,
self-verifying data set (``python -m validator release``), and a recipient checks it
(``python -m validator verify``). ``python -m validator keygen`` makes the Ed25519 key pair.

A bundle folder ``NAME/`` (and ``NAME.tar.gz`` of it) holds::

    images/              the synthetic images, re-encoded as PNG without ancillary chunks
                         (no EXIF, text, time or colour-profile metadata)
    manifest.json        format dermsynth-release v1: seed + indices, per-file sha256 and size,
                         the generator's model.json and ONNX sha256, the training-data
                         fingerprint, the validation report's sha256 and verdict, the terms
    MODEL_CARD.md        Mitchell et al. 2019 headings
    DATASHEET.md         Gebru et al. 2021, short form
    ATTRIBUTION.md       training images' licences counted, attributions, the bundle's terms
    LICENSES/            one notice per licence + training-images.csv (id, licence, attribution)
    report/              the validation report (report.json, report.html, ...)
    SIGNATURE            Ed25519 over the exact bytes of manifest.json

Modules by concern: :mod:`.config` (the typed options), :mod:`.inputs` (reading and checking
what goes in, every refusal), :mod:`.licences` (the aggregation rule), :mod:`.strip` (metadata-
free PNG), :mod:`.cards` (+ ``templates/``), :mod:`.signing`, :mod:`.archive` (deterministic,
safe tar.gz), :mod:`.bundle` (the build), :mod:`.verify`, :mod:`.cli` (the sub-commands).
Nothing here imports TensorFlow or the trainer: the release runs in the serving image.
"""

FORMAT = "dermsynth-release"
SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
SIGNATURE = "SIGNATURE"
IMAGES = "images"
REPORT = "report"
LICENSES = "LICENSES"
CARDS = ("MODEL_CARD.md", "DATASHEET.md", "ATTRIBUTION.md")
# stamps a bundle carries in its name, manifest and cards when released despite a refusal
STAMP_FAIL = "FAIL"
STAMP_RANDOM = "RANDOM-WEIGHTS"
