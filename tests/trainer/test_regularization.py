"""The R1 gradient penalty (--r1-gamma, --r1-interval) in the DCGAN's train step."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from trainer.gan import DCGAN, make_step


def _gan(**kw):
    return DCGAN(resolution=32, latent_dim=8, width=4, seed=1, augmentations=("translation",),
                 **kw)


def _batch():
    return tf.constant(np.random.default_rng(0).uniform(-1, 1, (4, 32, 32, 3)), tf.float32)


def _d_weights(gan):
    return [w.copy() for w in gan.discriminator.get_weights()]


def test_r1_step_reports_the_penalty_and_changes_the_discriminator_update():
    strategy = tf.distribute.get_strategy()
    plain, reg = _gan(r1_gamma=10.0), _gan(r1_gamma=10.0)
    out_plain = make_step(plain, strategy)(_batch())
    out_reg = make_step(reg, strategy, regularize=True)(_batch())
    assert "r1" not in out_plain  # the unregularised step is the plain one
    assert float(out_reg["r1"]) > 0 and np.isfinite(float(out_reg["r1"]))
    assert float(out_reg["d_loss"]) == float(out_plain["d_loss"])  # same data, same start
    diff = max(np.abs(a - b).max() for a, b in zip(_d_weights(plain), _d_weights(reg)))
    assert diff > 0  # the penalty's gradient reached the discriminator's weights


def test_r1_off_never_adds_the_penalty():
    gan = _gan(r1_gamma=0.0)
    out = make_step(gan, tf.distribute.get_strategy(), regularize=True)(_batch())
    assert "r1" not in out
