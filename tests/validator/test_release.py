"""``python -m validator release | keygen | verify`` on real parts: the tiny exported generator
(re-labelled with the fingerprint of a real ISIC training folder), served by the real gRPC
server on port 0 and fetched with the real client, validated by the real pipeline (a small real
ONNX feature model), then released and verified in subprocesses without TensorFlow. Each
refusal and each verify problem asserts its exit code and its message."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.validator.validator_server import tiny_feature_model

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "data" / "isic-demo"
TRAIN_IMAGES = 16
SEED, COUNT = 7, 12
# TensorFlow and the trainer unimportable, as in the serving image that runs the release
RUNNER = (
    "import sys; sys.modules.update(tensorflow=None, keras=None, tf2onnx=None, trainer=None); "
    "from common.cli import run_cli; from validator.cli import main; "
    "sys.exit(run_cli(main, sys.argv[1:], prog='validator'))"
)


def cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", RUNNER, *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


@dataclasses.dataclass(frozen=True)
class Setup:
    root: Path
    train: Path
    model: Path
    synthetic: Path
    report_pass: Path  # PASS, features labelled pretrained
    report_fail: Path  # FAIL (no held-out set for data_copying), random-weight features
    key: Path
    public: Path

    def release(self, *extra, report=None, out=None, **options):
        args = {
            "--report": report or self.report_pass,
            "--synthetic": self.synthetic,
            "--model-dir": self.model,
            "--real": self.train,
            "--key": self.key,
            "--out": out or self.root / "releases",
        }
        args.update({"--" + k.replace("_", "-"): v for k, v in options.items()})
        flat = [str(x) for kv in args.items() for x in kv]
        return cli("release", *flat, *extra)


def _training_folder(dst: Path) -> Path:
    """The first benign images of isic-demo with their metadata rows (isic-cli layout)."""
    dst.mkdir(parents=True)
    with open(DEMO / "metadata.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["benign_malignant"] == "benign"]
    rows = rows[:TRAIN_IMAGES]
    for r in rows:
        shutil.copy(DEMO / f"{r['isic_id']}.jpg", dst)
    _write_metadata(dst, rows)
    return dst


def _write_metadata(folder: Path, rows: list[dict]) -> None:
    with open(folder / "metadata.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _relabel_model(tiny_model_dir: Path, dst: Path, train: Path) -> Path:
    """The tiny exported generator, its model.json saying it was trained on ``train``."""
    from common.datasets import scan
    from common.manifest import ModelManifest, TrainingData

    shutil.copytree(tiny_model_dir, dst)
    index = scan(train, progress=False)
    manifest = ModelManifest.load(dst)
    data = TrainingData(
        fingerprint=index.fingerprint,
        image_count=len(index.records),
        layout=index.layout,
        filters={"benign_malignant": None, "diagnosis": None},
    )
    dataclasses.replace(manifest, training_data=data).write(dst)
    return dst


def _fetch(model: Path, out: Path) -> None:
    from serving.client import fetch
    from serving.config import ServeConfig
    from serving.server import create_server

    config = ServeConfig(model=model, host="127.0.0.1", port=0, metrics_port=None, grace_seconds=0)
    server, port = create_server(config)
    server.start()
    try:
        fetch(f"127.0.0.1:{port}", seed=SEED, count=COUNT, out_dir=out, progress=False)
    finally:
        server.stop(0).wait(10)


def _pretrained_label(features: Path) -> Path:
    """The tiny feature model with its sidecar saying ``file:<sha256>`` weights (not random)."""
    from common.feature_model import Sidecar, sidecar_path

    sidecar = json.loads(sidecar_path(features).read_text())
    sidecar["weights"] = "file:" + sidecar["onnx_sha256"]
    Sidecar(**sidecar).write(features)
    return features


def _validate(setup_root, train, synthetic, model, features, out, checks):
    from validator.config import ValidateConfig
    from validator.pipeline import run_validation

    config = ValidateConfig(
        real=train,
        synthetic=synthetic,
        model_dir=model,
        features_model=features,
        out=out,
        checks=checks,
        cache=False,
        tsne=False,
        progress=False,
        allow_random_weights=True,
    )
    return run_validation(config).verdict.decision


@pytest.fixture(scope="module")
def setup(tiny_model_dir, tmp_path_factory) -> Setup:
    root = tmp_path_factory.mktemp("release")
    train = _training_folder(root / "train")
    model = _relabel_model(tiny_model_dir, root / "model", train)
    synthetic = root / "synthetic"
    _fetch(model, synthetic)
    random_features = tiny_feature_model(root / "features-random")
    pretrained = _pretrained_label(tiny_feature_model(root / "features-pretrained"))
    report_pass, report_fail = root / "report-pass", root / "report-fail"
    assert _validate(root, train, synthetic, model, pretrained, report_pass, ("dcr",)) == "PASS"
    verdict = _validate(
        root, train, synthetic, model, random_features, report_fail, ("dcr", "data_copying")
    )
    assert verdict == "FAIL"
    proc = cli("keygen", "--out", root / "key")
    assert proc.returncode == 0, proc.stderr
    return Setup(
        root, train, model, synthetic, report_pass, report_fail, root / "key", root / "key.pub"
    )


@pytest.fixture(scope="module")
def bundle(setup) -> Path:
    """A bundle of the PASS report, no stamps."""
    proc = setup.release(out=setup.root / "good")
    assert proc.returncode == 0, proc.stderr
    (folder,) = [p for p in (setup.root / "good").iterdir() if p.is_dir()]
    return folder


def _error(proc) -> str:
    return proc.stderr.strip().splitlines()[-1]


# --- the bundle ---------------------------------------------------------------------------------


def test_release_writes_a_complete_signed_bundle(setup, bundle):
    from common.manifest import ModelManifest

    model = ModelManifest.load(setup.model)
    assert bundle.name == f"dermsynth-{model.onnx_sha256[:12]}-seed{SEED}-n{COUNT}"
    assert (bundle.parent / f"{bundle.name}.tar.gz").is_file()
    names = {p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file()}
    assert {
        "manifest.json",
        "SIGNATURE",
        "MODEL_CARD.md",
        "DATASHEET.md",
        "ATTRIBUTION.md",
        "LICENSES/CC0-1.0.txt",
        "LICENSES/training-images.csv",
        "report/report.json",
        "report/report.html",
    } <= names
    m = json.loads((bundle / "manifest.json").read_text())
    assert (m["format"], m["schema_version"], m["stamps"]) == ("dermsynth-release", 1, [])
    assert m["generation"]["seed"] == SEED
    assert m["generation"]["index_ranges"] == [[0, COUNT - 1]]
    assert m["generator"]["onnx_sha256"] == model.onnx_sha256
    assert m["generator"]["model_json"] == json.loads((setup.model / "model.json").read_text())
    assert m["training_data"]["fingerprint"] == model.training_data.fingerprint
    report_bytes = (setup.report_pass / "report.json").read_bytes()
    assert (bundle / "report" / "report.json").read_bytes() == report_bytes
    import hashlib

    assert m["validation"]["report_sha256"] == hashlib.sha256(report_bytes).hexdigest()
    assert m["validation"]["verdict"] == "PASS"
    # every file but manifest and signature listed with its hash; each image with its index
    assert set(m["files"]) == names - {"manifest.json", "SIGNATURE"}
    for rel, entry in m["files"].items():
        assert hashlib.sha256((bundle / rel).read_bytes()).hexdigest() == entry["sha256"]
    fetched = {int(p.stem): p for p in setup.synthetic.glob("*.png")}
    assert [i["index"] for i in m["images"]] == list(range(COUNT))
    for image in m["images"]:
        source = fetched[image["index"]]
        assert image["source_sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
        # the same pixels, in a PNG without ancillary chunks
        assert np.array_equal(
            np.asarray(Image.open(bundle / image["file"]).convert("RGB")),
            np.asarray(Image.open(source).convert("RGB")),
        )
    card = (bundle / "MODEL_CARD.md").read_text()
    for heading in ("Model details", "Intended use", "Metrics", "Training data", "Caveats"):
        assert f"## {heading}" in card
    assert "STAMPED" not in card and "Out of scope" in card and "| dcr | privacy | **pass**" in card
    assert "Composition" in (bundle / "DATASHEET.md").read_text()


def test_bundled_images_carry_no_metadata(bundle):
    from validator.release.strip import CRITICAL, chunk_types

    for path in (bundle / "images").iterdir():
        assert set(chunk_types(path.read_bytes())) <= CRITICAL, path.name


def test_strip_removes_exif_and_text_and_keeps_pixels(tmp_path):
    from validator.release.strip import chunk_types, stripped_png

    pixels = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    info = __import__("PIL.PngImagePlugin", fromlist=["PngInfo"]).PngInfo()
    info.add_text("Comment", "patient 123")
    exif = Image.Exif()
    exif[0x010E] = "secret description"  # ImageDescription
    src = tmp_path / "with-metadata.png"
    Image.fromarray(pixels).save(src, pnginfo=info, exif=exif.tobytes(), dpi=(300, 300))
    before = chunk_types(src.read_bytes())
    assert {b"tEXt", b"eXIf", b"pHYs"} <= set(before)
    data = stripped_png(src)
    assert chunk_types(data) == [b"IHDR", b"IDAT", b"IEND"]
    assert b"patient 123" not in data and b"secret" not in data
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), pixels)
    assert stripped_png(src) == data  # deterministic


def test_verify_accepts_the_bundle_and_its_archive(setup, bundle):
    for target in (bundle, bundle.parent / f"{bundle.name}.tar.gz"):
        proc = cli("verify", target, "--public-key", setup.public)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert f"OK: {bundle.name}:" in proc.stdout
        assert "signature: valid, by the given public key" in proc.stdout
        assert "terms: CC0-1.0" in proc.stdout


def test_archive_is_deterministic_and_safe(bundle, tmp_path):
    from validator.release.archive import write_tar

    tar_path = bundle.parent / f"{bundle.name}.tar.gz"
    with tarfile.open(tar_path) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names) and names[0] == bundle.name
    for m in members:
        assert not m.name.startswith("/") and ".." not in m.name.split("/")
        assert m.name.split("/")[0] == bundle.name
        assert m.isfile() or m.isdir()
        assert (m.uid, m.gid, m.uname, m.gname) == (0, 0, "", "")
    again = write_tar(bundle, tmp_path / tar_path.name, int(members[0].mtime))
    assert again.read_bytes() == tar_path.read_bytes()


# --- verify: each problem named, exit 1 ---------------------------------------------------------


@pytest.fixture
def copy(bundle, tmp_path) -> Path:
    dst = tmp_path / bundle.name
    shutil.copytree(bundle, dst)
    return dst


def _problems(proc) -> list[str]:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[-1].endswith(f"{len(lines) - 1} problem(s)")
    return [line.removeprefix("PROBLEM: ") for line in lines[:-1]]


def test_verify_names_a_tampered_an_added_and_a_removed_file(setup, copy):
    image = copy / "images" / "00000003.png"
    data = bytearray(image.read_bytes())
    data[-20] ^= 0xFF
    image.write_bytes(bytes(data))
    (copy / "images" / "99999999.png").write_bytes(b"\x89PNG extra")
    (copy / "images" / "00000005.png").unlink()
    problems = _problems(cli("verify", copy, "--public-key", setup.public))
    assert len(problems) == 3, problems
    assert problems[0].startswith("changed: images/00000003.png (sha256 ")
    assert problems[1] == "removed: images/00000005.png (listed in manifest.json, missing)"
    assert problems[2] == "added: images/99999999.png (not listed in manifest.json)"


def test_verify_rejects_an_edited_manifest(setup, copy):
    path = copy / "manifest.json"
    path.write_text(path.read_text().replace('"verdict": "PASS"', '"verdict": "PASS "'))
    problems = _problems(cli("verify", copy, "--public-key", setup.public))
    assert problems == ["SIGNATURE does not match manifest.json (manifest or signature edited)"]


def test_verify_rejects_another_public_key(setup, copy, tmp_path):
    other = cli("keygen", "--out", tmp_path / "other")
    assert other.returncode == 0
    other_id = other.stdout.split("key id:")[1].split()[0]
    problems = _problems(cli("verify", copy, "--public-key", tmp_path / "other.pub"))
    assert len(problems) == 1
    assert problems[0].startswith("SIGNATURE was made with key ")
    assert problems[0].endswith(f", not with the given public key {other_id}")


def test_verify_names_a_renamed_bundle(setup, copy):
    renamed = copy.with_name("renamed")
    copy.rename(renamed)
    problems = _problems(cli("verify", renamed))
    assert problems == [
        f"the bundle is named 'renamed' but its manifest says '{copy.name}' "
        "(renamed: a stamp such as -FAIL may have been removed)"
    ]


def test_verify_reads_an_unsafe_archive_without_extracting(bundle, tmp_path):
    evil = tmp_path / f"{bundle.name}.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        for path in sorted(bundle.rglob("*")):
            tar.add(path, f"{bundle.name}/{path.relative_to(bundle).as_posix()}", recursive=False)
        payload = tarfile.TarInfo(f"{bundle.name}/../escaped.txt")
        payload.size = 3
        tar.addfile(payload, io.BytesIO(b"bad"))
        link = tarfile.TarInfo(f"{bundle.name}/images/link.png")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    problems = _problems(cli("verify", evil))
    assert problems == [
        f"unsafe member '{bundle.name}/../escaped.txt' in {evil.name}",
        f"images/link.png: not a regular file in {evil.name} (link/device)",
    ]
    assert not (tmp_path / "escaped.txt").exists()


def test_verify_of_nothing_is_a_usage_error(tmp_path):
    proc = cli("verify", tmp_path / "missing")
    assert proc.returncode == 2
    assert (
        _error(proc)
        == f"validator: error: {tmp_path / 'missing'}: no such bundle folder or .tar.gz"
    )


# --- refusals: exit 2 and the reason ------------------------------------------------------------


def test_a_fail_report_is_refused_without_allow_fail(setup):
    proc = setup.release("--allow-random-weights", report=setup.report_fail)
    assert proc.returncode == 2
    assert _error(proc) == (
        f"validator: error: --report {setup.report_fail / 'report.json'}: the report's verdict "
        "is FAIL (failed: data_copying); --allow-fail releases it stamped FAIL"
    )


def test_random_weights_are_refused_without_allow_random_weights(setup):
    proc = setup.release("--allow-fail", report=setup.report_fail)
    assert proc.returncode == 2
    assert _error(proc) == (
        f"validator: error: --report {setup.report_fail / 'report.json'}: the report's features "
        "came from RANDOM Xception weights; --allow-random-weights releases it stamped "
        "RANDOM-WEIGHTS"
    )


def test_a_stamped_release_carries_its_stamps(setup):
    out = setup.root / "stamped"
    proc = setup.release(
        "--allow-fail", "--allow-random-weights", report=setup.report_fail, out=out
    )
    assert proc.returncode == 0, proc.stderr
    assert "STAMPED: FAIL, RANDOM-WEIGHTS" in proc.stdout
    (folder,) = [p for p in out.iterdir() if p.is_dir()]
    assert folder.name.endswith("-FAIL-RANDOM-WEIGHTS")
    assert json.loads((folder / "manifest.json").read_text())["stamps"] == [
        "FAIL",
        "RANDOM-WEIGHTS",
    ]
    assert "STAMPED FAIL + RANDOM-WEIGHTS" in (folder / "MODEL_CARD.md").read_text()
    verified = cli("verify", f"{folder}.tar.gz", "--public-key", setup.public)
    assert verified.returncode == 0 and "STAMPED: FAIL, RANDOM-WEIGHTS" in verified.stdout


def test_a_report_for_other_images_is_refused(setup, tmp_path):
    other = tmp_path / "fewer"
    shutil.copytree(setup.synthetic, other)
    (other / "00000000.png").unlink()
    proc = setup.release(synthetic=other)
    assert proc.returncode == 2
    assert re.fullmatch(
        re.escape(
            f"validator: error: --report {setup.report_pass / 'report.json'} was made for other "
            f"images: its synthetic set ({COUNT} images, fingerprint "
        )
        + "[0-9a-f]{12}"
        + re.escape(f") is not the {COUNT - 1} images in {other} (fingerprint ")
        + "[0-9a-f]{12}\\)",
        _error(proc),
    ), _error(proc)


def test_another_model_is_refused(setup, tmp_path):
    import onnx

    from common.hashing import sha256_file
    from common.manifest import ModelManifest

    other = tmp_path / "other-model"
    shutil.copytree(setup.model, other)
    proto = onnx.load(other / "model.onnx")
    proto.producer_name = "another export"
    onnx.save(proto, other / "model.onnx")
    manifest = ModelManifest.load(setup.model)
    dataclasses.replace(manifest, onnx_sha256=sha256_file(other / "model.onnx")).write(other)
    new = ModelManifest.load(other).onnx_sha256
    proc = setup.release(model_dir=other)
    assert proc.returncode == 2
    assert _error(proc) == (
        f"validator: error: --report {setup.report_pass / 'report.json'}: made for generator "
        f"{manifest.onnx_sha256[:12]}, but --model-dir {other} holds generator {new[:12]}"
    )


def test_another_training_set_is_refused(setup, tmp_path):
    other = tmp_path / "train"
    shutil.copytree(setup.train, other)
    sorted(other.glob("*.jpg"))[0].unlink()
    proc = setup.release(real=other)
    assert proc.returncode == 2
    assert "but the model was trained on" in _error(proc)
    assert _error(proc).startswith(
        f"validator: error: --real {other}: its {TRAIN_IMAGES - 1} images"
    )


def test_an_unknown_licence_is_refused_naming_the_images(setup, tmp_path):
    train = tmp_path / "train"
    shutil.copytree(setup.train, train)
    with open(train / "metadata.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    rows[2]["copyright_license"] = "All rights reserved"
    rows[5]["copyright_license"] = ""
    _write_metadata(train, rows)
    proc = setup.release(real=train)
    assert proc.returncode == 2
    assert _error(proc) == (
        f"validator: error: --real {train}: 2 training image(s) have no known licence "
        "(copyright_license in metadata.csv must be one of CC-0, CC-BY, CC-BY-NC): "
        f"{rows[2]['isic_id']} ('All rights reserved'), {rows[5]['isic_id']}; the release "
        "cannot state its terms (--training-licence declares one for such images)"
    )


def test_one_non_commercial_image_makes_the_bundle_non_commercial(setup, tmp_path):
    train = tmp_path / "train"
    shutil.copytree(setup.train, train)
    with open(train / "metadata.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    rows[0].update(copyright_license="CC-BY-NC", attribution="Hospital A")
    rows[1].update(copyright_license="CC-BY", attribution="Clinic | B")
    _write_metadata(train, rows)
    out = tmp_path / "out"
    proc = setup.release(real=train, out=out)
    assert proc.returncode == 0, proc.stderr
    assert "terms: CC-BY-NC-4.0" in proc.stdout
    (folder,) = [p for p in out.iterdir() if p.is_dir()]
    attribution = (folder / "ATTRIBUTION.md").read_text()
    assert "Attribution-NonCommercial 4.0 International (CC-BY-NC-4.0)" in attribution
    assert "**Non-commercial use only.**" in attribution and "Rule: " in attribution
    assert "| Hospital A | CC-BY-NC | 1 |" in attribution
    assert "| Clinic \\| B | CC-BY | 1 |" in attribution  # escaped inside the table
    assert f"| Anonymous | CC-0 | {TRAIN_IMAGES - 2} |" in attribution
    assert {p.name for p in (folder / "LICENSES").iterdir()} == {
        "CC0-1.0.txt",
        "CC-BY-4.0.txt",
        "CC-BY-NC-4.0.txt",
        "training-images.csv",
    }
    m = json.loads((folder / "manifest.json").read_text())
    assert m["terms"]["licence"] == "CC-BY-NC-4.0" and m["terms"]["commercial_use"] is False
    assert "Commercial use is not permitted" in (folder / "MODEL_CARD.md").read_text()


def _turing_results(setup, tmp_path) -> Path:
    """A real study (validator.turing) of 4 training and 4 synthetic images, answered by two
    scripted raters, and its results as `turing results --json` writes them."""
    from validator.turing.app import results_of
    from validator.turing.store import Store
    from validator.turing.study import create_study, new_session, rater_order

    store = Store(tmp_path / "turing.sqlite")
    study = create_study(
        store, "release", setup.train, setup.synthetic, per_rater=8, size=32, seed=3
    )
    roles = [role for _, role, _ in store.image_roles(study.name)]
    for seq, rater in enumerate(("a", "b"), start=1):
        session = new_session(store, study, rater)
        order = rater_order(study, len(roles), seq)
        while (trial := store.current(session)).token:  # "" once every image is answered
            right = roles[order[trial.position]]
            guess = right if trial.position % 2 else "real"  # right at least half the time
            assert store.answer(session, trial.position, guess, 3)
    path = tmp_path / "turing.json"
    path.write_text(json.dumps(results_of(store, study)))
    return path


def test_turing_results_become_a_model_card_section_and_a_signed_file(setup, tmp_path):
    results = _turing_results(setup, tmp_path)
    out = tmp_path / "out"
    proc = setup.release(out=out, turing_results=results)
    assert proc.returncode == 0, proc.stderr
    (folder,) = [p for p in out.iterdir() if p.is_dir()]
    card = (folder / "MODEL_CARD.md").read_text()
    want = json.loads(results.read_text())
    assert "### Visual Turing test" in card and want["summary"] in card
    acc = want["accuracy"]
    assert (
        f"| accuracy (Wilson 95 % CI) | {100 * acc['value']:.1f} % ({acc['k']}/{acc['n']};" in card
    )
    assert json.loads((folder / "report" / "turing.json").read_text()) == want
    assert cli("verify", folder, "--public-key", setup.public).returncode == 0
    results.write_text(json.dumps({"raters": 3, "accuracy": 0.52}))  # not the study's output
    proc = setup.release(out=tmp_path / "out2", turing_results=results)
    assert proc.returncode == 2
    assert _error(proc) == (
        f"validator: error: --turing-results {results}: not the output of `python -m "
        "validator turing results --json` (dermsynth-turing-results v1)"
    )
    results.write_text("[1, 2]")
    proc = setup.release(out=tmp_path / "out3", turing_results=results)
    assert proc.returncode == 2
    assert _error(proc) == (
        f"validator: error: --turing-results {results}: should hold a JSON object"
    )


def test_an_existing_bundle_is_never_overwritten(setup, bundle):
    proc = setup.release(out=bundle.parent)
    assert proc.returncode == 2
    assert _error(proc) == (
        f"validator: error: {bundle} exists: a release never overwrites a bundle; remove it first"
    )


def test_missing_options_are_named(setup):
    proc = cli("release", "--report", setup.report_pass)
    assert proc.returncode == 2
    assert _error(proc) == "validator: error: --model-dir: required"


# --- keys ---------------------------------------------------------------------------------------


def test_keygen_writes_a_private_key_only_its_owner_reads(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import os; os.umask(0); exec({RUNNER!r})",
            "keygen",
            "--out",
            str(tmp_path / "k"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "k").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "k.pub").stat().st_mode & 0o777 == 0o644
    secret = (tmp_path / "k").read_text()
    body = "".join(secret.splitlines()[1:-1])
    assert body and body not in proc.stdout + proc.stderr
    again = cli("keygen", "--out", tmp_path / "k")
    assert again.returncode == 2
    assert _error(again) == (
        f"validator: error: {tmp_path / 'k'} exists: keygen never overwrites a key; "
        "choose another --out"
    )


def test_the_private_key_never_reaches_the_output(setup, bundle):
    secret = setup.key.read_text()
    body = "".join(secret.splitlines()[1:-1])
    for proc in (
        setup.release(out=bundle.parent),  # refused
        setup.release(out=setup.root / "again", name="again"),
    ):
        assert body not in proc.stdout + proc.stderr
    assert not any(
        body in p.read_text(errors="replace")
        for p in (setup.root / "again").rglob("*")
        if p.is_file() and p.suffix != ".gz"
    )


def test_a_private_key_others_can_read_is_refused(setup, tmp_path):
    key = tmp_path / "open-key"
    shutil.copy(setup.key, key)
    os.chmod(key, 0o644)
    proc = setup.release(key=key)
    assert proc.returncode == 2
    assert _error(proc) == (
        f"validator: error: --key {key}: the private key is accessible to other users "
        f"(mode 0644); run `chmod 600 {key}`"
    )
    assert "PRIVATE KEY" not in proc.stdout + proc.stderr
