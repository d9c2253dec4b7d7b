"""The DCGAN as a ``keras.Model`` with a custom ``train_step`` (after keras-io's "DCGAN to
generate face images"), plus DiffAugment, one-sided label smoothing and a generator EMA.

One ``train_step`` makes one discriminator update (real and generated images in one batch,
binary cross-entropy on logits, Goodfellow et al. 2014 with the non-saturating generator loss)
and one generator update. Real targets are ``1 - label_smoothing`` (one-sided smoothing,
Salimans et al. 2016). With DiffAugment (Zhao et al. 2020) the discriminator only ever sees
augmented images, real and fake alike. The EMA generator (Karras et al. 2018; Yazici et al.
2019) keeps an exponential moving average of the generator's weights and the generator's batch
norm statistics; it is the one exported.

Randomness is stateless, derived from (seed, step, replica), so a run resumed from a
checkpoint continues exactly as an uninterrupted one would. ``train_step`` runs in a replica
context (``strategy.run``); gradients are summed across replicas by the Keras optimizer, so
losses are divided by the number of replicas. ``update_ema`` runs in the cross-replica context.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from trainer.augment import diff_augment
from trainer.model import build_discriminator, build_generator


class DCGAN(keras.Model):
    def __init__(self, *, resolution: int, latent_dim: int, width: int = 64, seed: int = 0,
                 augmentations: tuple[str, ...] = (), ema_decay: float = 0.0,
                 label_smoothing: float = 0.0, learning_rate: float = 2e-4, beta1: float = 0.5,
                 **kwargs):
        super().__init__(**kwargs)
        self.resolution, self.latent_dim, self.seed = resolution, latent_dim, seed
        self.augmentations = tuple(augmentations)
        self.ema_decay, self.label_smoothing = float(ema_decay), float(label_smoothing)
        self.generator = build_generator(resolution, latent_dim, width=width)
        self.discriminator = build_discriminator(resolution, width=width)
        self.ema_generator = None
        if self.ema_decay > 0:
            self.ema_generator = build_generator(resolution, latent_dim, width=width)
            self.ema_generator.set_weights(self.generator.get_weights())
        self.g_optimizer = keras.optimizers.Adam(learning_rate, beta_1=beta1, name="g_adam")
        self.d_optimizer = keras.optimizers.Adam(learning_rate, beta_1=beta1, name="d_adam")
        self.g_optimizer.build(self.generator.trainable_variables)
        self.d_optimizer.build(self.discriminator.trainable_variables)

    @property
    def export_generator(self) -> keras.Model:
        """The generator to sample from and export: the EMA one when EMA is on."""
        return self.ema_generator if self.ema_generator is not None else self.generator

    def call(self, latent, training=False):
        return self.export_generator(latent, training=training)

    def _seed(self, salt: int) -> tf.Tensor:
        ctx = tf.distribute.get_replica_context()
        replica = ctx.replica_id_in_sync_group if ctx is not None else 0
        step = tf.cast(self.d_optimizer.iterations, tf.int64)
        return tf.stack([tf.constant(self.seed, tf.int64),
                         step * 1024 + tf.cast(replica, tf.int64) * 16 + salt])

    def _augment(self, images, salt: int):
        if not self.augmentations:
            return images
        return diff_augment(images, self.augmentations, self._seed(salt))

    @staticmethod
    def _bce(targets, logits):
        return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=logits))

    def train_step(self, real_images):
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        batch = tf.shape(real_images)[0]
        z = tf.random.stateless_normal([batch, self.latent_dim], seed=self._seed(1))
        real_target = tf.fill([batch, 1], 1.0 - self.label_smoothing)
        fake_target = tf.zeros([batch, 1])
        with tf.GradientTape() as tape:
            fake = self.generator(z, training=True)
            images = tf.concat([self._augment(real_images, 2), self._augment(fake, 3)], axis=0)
            logits = self.discriminator(images, training=True)
            real_logits, fake_logits = logits[:batch], logits[batch:]
            d_loss = self._bce(tf.concat([real_target, fake_target], 0), logits)
            scaled = d_loss / replicas
        grads = tape.gradient(scaled, self.discriminator.trainable_variables)
        self.d_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_variables))

        z = tf.random.stateless_normal([batch, self.latent_dim], seed=self._seed(4))
        with tf.GradientTape() as tape:
            fake = self.generator(z, training=True)
            g_logits = self.discriminator(self._augment(fake, 5), training=True)
            g_loss = self._bce(tf.ones([batch, 1]), g_logits)  # non-saturating loss
            scaled = g_loss / replicas
        grads = tape.gradient(scaled, self.generator.trainable_variables)
        self.g_optimizer.apply_gradients(zip(grads, self.generator.trainable_variables))
        return {"d_loss": d_loss, "g_loss": g_loss,
                "d_real": tf.reduce_mean(tf.sigmoid(real_logits)),
                "d_fake": tf.reduce_mean(tf.sigmoid(fake_logits))}

    def update_ema(self):
        """EMA of trainable weights; batch-norm statistics copied. Cross-replica context.

        The decay warms up as min(decay, (1 + t) / (10 + t)) with t the generator's step count
        (as in TensorFlow's ExponentialMovingAverage with num_updates), so that a short run
        does not export weights still close to the random initialisation.
        """
        if self.ema_generator is None:
            return
        t = tf.cast(self.g_optimizer.iterations, tf.float32)
        decay = tf.minimum(self.ema_decay, (1.0 + t) / (10.0 + t))
        for ema_w, w in zip(self.ema_generator.trainable_variables,
                            self.generator.trainable_variables):
            ema_w.assign(decay * ema_w + (1.0 - decay) * w)
        for ema_w, w in zip(self.ema_generator.non_trainable_variables,
                            self.generator.non_trainable_variables):
            ema_w.assign(w)


def make_step(gan: DCGAN, strategy: tf.distribute.Strategy):
    """A compiled function: one distributed train step + EMA update, returning mean metrics."""

    @tf.function
    def step(batch):
        per_replica = strategy.run(gan.train_step, args=(batch,))
        gan.update_ema()
        return {k: strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None)
                for k, v in per_replica.items()}

    return step
