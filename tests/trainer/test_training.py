"""A tiny real training run (32 px, 24 real ISIC images, 2 epochs), resume, refusal, export."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from common.config import resolve
from common.errors import UserError
from common.manifest import ModelManifest
from tests.trainer.helpers import isic_cli_folder, legacy_save

pytestmark = pytest.mark.slow

TINY = dict(
    resolution=32,
    batch_size=8,
    width=8,
    latent_dim=16,
    ema=0.99,
    label_smoothing=0.1,
    keep_checkpoints=1,
    benign_malignant="benign",
    progress=False,
    sample_count=9,
)


def make_config(data, run, **overrides):
    from trainer.config import TrainConfig

    return resolve(
        TrainConfig, {"data": data, "run": run, "epochs": 2, **TINY, **overrides}, env={}
    )


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return isic_cli_folder(tmp_path_factory.mktemp("data") / "isic", 24, 8)


@pytest.fixture(scope="module")
def tiny_run(dataset, tmp_path_factory):
    from trainer.train import train

    run = tmp_path_factory.mktemp("runs") / "tiny"
    config = make_config(dataset, run)
    return config, train(config)


def test_run_writes_every_artifact(tiny_run, dataset):
    from common import datasets

    config, result = tiny_run
    run = config.run
    assert (result.start_epoch, result.epochs, result.image_count, result.skipped) == (0, 2, 24, 3)
    saved = json.loads((run / "config.json").read_text())
    assert saved["resolution"] == 32 and saved["benign_malignant"] == "benign"
    info = json.loads((run / "data.json").read_text())
    index = datasets.scan(dataset, benign_malignant="benign", progress=False)
    assert info["fingerprint"] == index.fingerprint == result.fingerprint
    assert info["image_count"] == 24 and info["layout"] == "isic-cli"
    log = (run / "run.log").read_text()
    for name in ("ISIC_9000001.jpg", "ISIC_9000002.jpg", "ISIC_9000003.jpg"):
        assert f"skipped {dataset / name}" in log
    with open(run / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert [int(r["step"]) for r in rows] == [3, 6]  # 24 images / batch 8
    assert all(np.isfinite(float(r[k])) for r in rows for k in ("d_loss", "g_loss"))
    for epoch in (1, 2):
        grid = Image.open(run / "samples" / f"epoch_{epoch:04d}.png")
        assert grid.size == (3 * 34 + 2, 3 * 34 + 2)  # 3x3 grid of 32 px with 2 px padding
    grid1 = np.asarray(Image.open(run / "samples" / "epoch_0001.png"), np.int16)
    grid2 = np.asarray(Image.open(run / "samples" / "epoch_0002.png"), np.int16)
    assert np.abs(grid1 - grid2).max() > 0  # the EMA generator moved between epochs
    events = list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
    ckpts = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert ckpts == ["epoch_0002"]  # keep_checkpoints=1 pruned epoch 1, no temp folders left
    state = json.loads((run / "checkpoints" / "epoch_0002" / "state.json").read_text())
    assert state["epoch"] == 2 and state["step"] == 6 and state["format"] == 2
    assert (run / "checkpoints" / "epoch_0002" / "checkpoint.index").is_file()


def test_resume_continues_exactly_like_an_uninterrupted_run(tiny_run, dataset, tmp_path):
    from trainer import checkpoints
    from trainer.train import train

    config, _ = tiny_run
    resumed_run = tmp_path / "resumed"
    shutil.copytree(config.run, resumed_run)
    resumed = train(make_config(dataset, resumed_run, epochs=3))
    assert (resumed.start_epoch, resumed.epochs) == (2, 3)
    straight = train(make_config(dataset, tmp_path / "straight", epochs=3))
    assert straight.start_epoch == 0

    def weights(run):
        info = checkpoints.latest(run / "checkpoints")
        assert info.epoch == 3
        return checkpoints.load_export_generator(info, 32, 16, 8, ema=True).get_weights()

    diffs = [
        np.abs(a - b).max() for a, b in zip(weights(resumed_run), weights(tmp_path / "straight"))
    ]
    assert max(diffs) < 1e-5
    with open(resumed_run / "metrics.csv", newline="") as fh:
        assert [int(r["epoch"]) for r in csv.DictReader(fh)] == [1, 2, 3]
    assert "resumed from" in (resumed_run / "run.log").read_text()
    # the first run decoded the images into the (session's) cache and wrote the pack there;
    # the resume and a new run on the same files decode nothing and reuse that pack
    resumed_log, straight_log = (
        (r / "run.log").read_text() for r in (resumed_run, tmp_path / "straight")
    )
    assert resumed_log.count("images: 24 written to") == 1  # the first run's line
    assert resumed_log.count("0 decoded, 24 from the cache") == 1  # the resume's
    assert resumed_log.count("images: 24 from ") == 1
    assert "0 decoded, 24 from the cache" in straight_log and "written to" not in straight_log
    # the same run with its checkpoint in the old format (variables by position) resumes to
    # exactly the same weights, and goes on in the new format
    from trainer.gan import DCGAN

    legacy_run = tmp_path / "legacy"
    shutil.copytree(config.run, legacy_run)
    info = checkpoints.latest(legacy_run / "checkpoints")
    gan = DCGAN(resolution=32, latent_dim=16, width=8, ema_decay=0.99)
    checkpoints.restore(info, gan)
    shutil.rmtree(info.path)
    legacy_save(
        legacy_run / "checkpoints",
        2,
        gan,
        state={k: v for k, v in info.state.items() if k not in ("format", "saved")},
    )
    assert checkpoints.latest(legacy_run / "checkpoints").legacy
    train(make_config(dataset, legacy_run, epochs=3))
    assert "old checkpoint format" in (legacy_run / "run.log").read_text()
    assert not checkpoints.latest(legacy_run / "checkpoints").legacy
    assert all(
        a.tobytes() == b.tobytes() for a, b in zip(weights(legacy_run), weights(resumed_run))
    )


def test_incompatible_resume_is_refused(tiny_run, dataset, tmp_path):
    from common.config import ConfigError
    from trainer.train import train

    config, _ = tiny_run
    with pytest.raises(ConfigError) as err:
        train(make_config(dataset, config.run, resolution=64, latent_dim=32))
    assert "latent_dim: 16 in the run, 32 now" in str(err.value)
    assert "resolution: 32 in the run, 64 now" in str(err.value)
    # the same run on other data (malignant instead of benign images)
    with pytest.raises(ConfigError, match="benign_malignant"):
        train(make_config(dataset, config.run, benign_malignant="malignant"))
    # compatible: same config, epochs already reached -> nothing to do, nothing changed
    before = (config.run / "metrics.csv").read_text()
    result = train(make_config(dataset, config.run, keep_checkpoints=2))
    assert (result.start_epoch, result.epochs) == (2, 2)
    assert (config.run / "metrics.csv").read_text() == before


def test_run_from_before_r1_is_not_resumed_with_r1(tiny_run, tmp_path):
    """A run saved before --r1-gamma existed trained without R1: resuming it with today's
    default (R1 on) would change training silently, so it is refused, naming the key."""
    import json

    from common.config import ConfigError
    from trainer.train import train

    config, _ = tiny_run
    run = tmp_path / "old-run"
    shutil.copytree(config.run, run)
    saved = json.loads((run / "config.json").read_text())
    saved.pop("r1_gamma")
    (run / "config.json").write_text(json.dumps(saved))
    with pytest.raises(ConfigError, match="r1_gamma: 0.0 in the run"):
        train(make_config(config.data, run, epochs=3, r1_gamma=0.1))


def test_changed_training_data_is_refused(tiny_run, dataset, tmp_path):
    from common import datasets
    from common.config import ConfigError
    from trainer.train import train

    config, _ = tiny_run
    other, run = tmp_path / "other", tmp_path / "run"
    shutil.copytree(dataset, other)
    shutil.copytree(config.run, run)
    benign = datasets.scan(other, benign_malignant="benign", progress=False)
    benign.records[0].path.unlink()  # one training image fewer
    with pytest.raises(ConfigError, match="training data changed"):
        train(make_config(other, run, epochs=3))


def test_export_parity_and_manifest(tiny_run, tmp_path):
    import onnxruntime as ort

    from trainer import checkpoints
    from trainer.export_run import export_run

    config, result = tiny_run
    out = export_run(config.run, tmp_path / "model")
    manifest = json.loads((out / "model.json").read_text())
    assert manifest["format"] == "dermsynth-generator" and manifest["format_version"] == 1
    assert manifest["onnx_sha256"] == hashlib.sha256((out / "model.onnx").read_bytes()).hexdigest()
    assert manifest["training_data"] == {
        "fingerprint": result.fingerprint,
        "image_count": 24,
        "layout": "isic-cli",
        "filters": {"benign_malignant": "benign", "diagnosis": None},
    }
    assert (manifest["epochs"], manifest["seed"], manifest["ema"]) == (2, 0, True)
    assert (manifest["latent_dim"], manifest["resolution"], manifest["opset"]) == (16, 32, 17)
    assert manifest["parity_max_abs_diff"] <= 1e-4
    assert set(manifest["versions"]) >= {"tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime"}
    assert ModelManifest.load(out).to_dict() == manifest  # what serving and the validator read
    assert json.loads((out / "config.json").read_text()) == json.loads(
        (config.run / "config.json").read_text()
    )
    # the ONNX model is the EMA generator of the last checkpoint
    ema = checkpoints.load_export_generator(
        checkpoints.latest(config.run / "checkpoints"), 32, 16, 8, ema=True
    )
    z = np.random.default_rng(5).standard_normal((4, 16)).astype(np.float32)
    got = ort.InferenceSession(str(out / "model.onnx")).run(["images"], {"latent": z})[0]
    assert got.shape == (4, 32, 32, 3)
    assert np.abs(got - np.asarray(ema(z, training=False))).max() < 1e-4
    assert np.abs(got).max() <= 1.0


def test_export_refuses_a_run_without_checkpoint(tmp_path, dataset):
    from common.config import save
    from trainer.export_run import export_run

    run = tmp_path / "fresh"
    run.mkdir()
    save(make_config(dataset, run), run / "config.json")
    with pytest.raises(UserError, match="no complete checkpoint"):
        export_run(run, tmp_path / "model")
    with pytest.raises(UserError, match="does not exist"):
        export_run(tmp_path / "missing", tmp_path / "model")


def test_tiny_model_dir_fixture_meets_the_contract(tiny_model_dir):
    import onnxruntime as ort

    manifest = json.loads((tiny_model_dir / "model.json").read_text())
    assert (manifest["latent_dim"], manifest["resolution"]) == (16, 32)
    session = ort.InferenceSession(str(tiny_model_dir / "model.onnx"))
    assert [i.name for i in session.get_inputs()] == ["latent"]
    assert [o.name for o in session.get_outputs()] == ["images"]
    out = session.run(["images"], {"latent": np.zeros((2, 16), np.float32)})[0]
    assert out.shape == (2, 32, 32, 3) and out.dtype == np.float32
