"""The R1 gradient penalty (--r1-gamma, --r1-interval) in the DCGAN's train step."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from trainer.gan import DCGAN


def _gan(**kw):
    return DCGAN(resolution=32, latent_dim=8, width=4, seed=1, augmentations=("translation",), **kw)


def _batch():
    return tf.constant(np.random.default_rng(0).uniform(-1, 1, (4, 32, 32, 3)), tf.float32)


def _d_weights(gan):
    return [w.copy() for w in gan.discriminator.get_weights()]


def test_r1_step_reports_the_penalty_and_changes_the_discriminator_update():
    plain, reg = _gan(r1_gamma=10.0), _gan(r1_gamma=10.0)
    out_plain = plain.step(_batch())
    out_reg = reg.step(_batch(), regularize=True)
    assert "r1" not in out_plain  # the unregularised step is the plain one
    assert float(out_reg["r1"]) > 0 and np.isfinite(float(out_reg["r1"]))
    assert float(out_reg["d_loss"]) == float(out_plain["d_loss"])  # same data, same start
    diff = max(np.abs(a - b).max() for a, b in zip(_d_weights(plain), _d_weights(reg)))
    assert diff > 0  # the penalty's gradient reached the discriminator's weights


def test_r1_off_never_adds_the_penalty():
    gan = _gan(r1_gamma=0.0)
    out = gan.step(_batch(), regularize=True)
    assert "r1" not in out
    assert not any(gan.r1_due(step) for step in range(8))


def test_lazy_r1_falls_on_every_interval_th_step():
    gan = _gan(r1_gamma=0.1, r1_interval=4)
    assert [s for s in range(10) if gan.r1_due(s)] == [0, 4, 8]
