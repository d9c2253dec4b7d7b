"""Checkpoints by name (trainer.checkpoints): exact round trip, names not positions, refusal of
another model's checkpoint, and the old positional format (format 1) still loading."""

from __future__ import annotations

import numpy as np
import pytest

from common.errors import UserError
from tests.trainer.helpers import batch, legacy_save, variable_bytes

SMALL = {
    "resolution": 32,
    "latent_dim": 8,
    "seed": 1,
    "augmentations": ("translation", "cutout"),
    "ema_decay": 0.9,
    "r1_gamma": 0.1,
    "r1_interval": 2,
}


def _gan(**overrides):
    from trainer.gan import DCGAN

    return DCGAN(**{"width": 4, **SMALL, **overrides})


@pytest.fixture(scope="module")
def trained():
    """A small DCGAN after two steps (one with R1): non-trivial weights, moments, counters."""
    gan = _gan()
    for i in range(2):
        gan.step(batch(i), regularize=gan.r1_due(gan.step_count))
    return gan


def _continues_exactly(a, b) -> None:
    """``b`` holds ``a``'s state and takes the same step (the seed is config, not state: the
    same for both; TensorFlow's op determinism on, as trainer.train sets it)."""
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    assert variable_bytes(b) == variable_bytes(a) and b.step_count == a.step_count
    for gan in (a, b):
        gan.step(batch(7), regularize=gan.r1_due(gan.step_count))
    assert variable_bytes(b) == variable_bytes(a)


def test_round_trip_is_exact_and_continues_the_run(trained, tmp_path):
    from trainer import checkpoints

    path = checkpoints.save(tmp_path, 5, trained, state={"step": trained.step_count}, keep=2)
    assert sorted(p.name for p in path.iterdir()) == [
        "checkpoint.data-00000-of-00001",
        "checkpoint.index",
        "state.json",
    ]
    info = checkpoints.latest(tmp_path)
    assert (info.epoch, info.state["format"], info.legacy) == (5, 2, False)
    ema = checkpoints.load_export_generator(info, 32, 8, 4, ema=True)
    assert all(
        x.tobytes() == y.tobytes()
        for x, y in zip(ema.get_weights(), trained.ema_generator.get_weights())
    )
    plain = checkpoints.load_export_generator(info, 32, 8, 4, ema=False)
    assert all(
        x.tobytes() == y.tobytes()
        for x, y in zip(plain.get_weights(), trained.generator.get_weights())
    )
    fresh = _gan()  # initial weights, zero moments
    assert variable_bytes(fresh) != variable_bytes(trained)
    checkpoints.restore(info, fresh)
    _continues_exactly(trained, fresh)


def test_optimizer_state_is_matched_by_name_not_position(trained, tmp_path):
    import keras

    from trainer import checkpoints

    checkpoints.save(tmp_path, 1, trained, state={}, keep=1)
    other = _gan()
    # the same optimizer, its variables created in the reverse order: a positional restore
    # would put one layer's moments into another's
    other.g_optimizer = keras.optimizers.Adam(2e-4, beta_1=0.5, name="g_adam")
    other.g_optimizer.build(other.generator.trainable_variables[::-1])
    assert [v.path for v in other.g_optimizer.variables] != [
        v.path for v in trained.g_optimizer.variables
    ]
    checkpoints.restore(checkpoints.latest(tmp_path), other)
    assert variable_bytes(other) == variable_bytes(trained)


def test_another_models_checkpoint_is_refused_naming_the_differences(trained, tmp_path):
    from trainer import checkpoints

    checkpoints.save(tmp_path, 1, trained, state={}, keep=1)
    info = checkpoints.latest(tmp_path)
    with pytest.raises(UserError) as err:
        checkpoints.restore(info, _gan(width=8))
    message = str(err.value)
    assert str(info.path) in message and "of another shape" in message
    assert "start a new --run" in message and err.value.exit_code == 2
    with pytest.raises(UserError, match=r"not in this model: ema_generator/project/kernel"):
        checkpoints.restore(info, _gan(ema_decay=0.0))


def test_old_format_checkpoint_loads_every_variable_exactly(trained, tmp_path):
    """The full state comes back bit for bit, so the run resumes exactly as it would have from
    a new-format checkpoint (test_round_trip_is_exact_and_continues_the_run)."""
    from trainer import checkpoints

    legacy_save(tmp_path, 3, trained, state={"step": trained.step_count})
    info = checkpoints.latest(tmp_path)
    assert info.legacy and "format" not in info.state
    restored = _gan()
    assert variable_bytes(restored) != variable_bytes(trained)
    checkpoints.restore(info, restored)
    assert variable_bytes(restored) == variable_bytes(trained)
    ema = checkpoints.load_export_generator(info, 32, 8, 4, ema=True)
    assert all(
        x.tobytes() == y.tobytes()
        for x, y in zip(ema.get_weights(), trained.ema_generator.get_weights())
    )


def test_old_format_checkpoint_of_another_model_is_refused(trained, tmp_path):
    from trainer import checkpoints

    legacy_save(tmp_path, 3, trained, state={})
    info = checkpoints.latest(tmp_path)
    with pytest.raises(UserError) as err:
        checkpoints.restore(info, _gan(width=8))
    assert str(info.path) in str(err.value) and "start a new --run" in str(err.value)
    assert err.value.exit_code == 2
    # weights that fit, optimizer state that does not (one variable missing)
    with np.load(info.path / "optimizers.npz") as arrays:
        kept = {k: arrays[k] for k in arrays.files if k != "d/0003"}
    np.savez(info.path / "optimizers.npz", **kept)
    with pytest.raises(
        UserError,
        match=r"optimizers.npz: old-format checkpoint .* "
        r"d-optimizer variables",
    ):
        checkpoints.restore(info, _gan())
