"""The DCGAN: networks, optimizers and one compiled training ``step()``, plus DiffAugment,
one-sided label smoothing, a generator EMA and lazy R1. A plain class, not a ``keras.Model``:
the loop (trainer.train) drives it step by step and hands each epoch's end to trainer.hooks.

One step makes one discriminator update (real and generated images in one batch, binary
cross-entropy on logits, Goodfellow et al. 2014 with the non-saturating generator loss) and one
generator update. Real targets are ``1 - label_smoothing`` (one-sided smoothing, Salimans et al.
2016). With DiffAugment (Zhao et al. 2020) the discriminator only ever sees augmented images,
real and fake alike. The EMA generator (Karras et al. 2018; Yazici et al. 2019) keeps an
exponential moving average of the generator's weights and the generator's batch norm
statistics; it is the one exported.

Optional R1 penalty (Mescheder et al. 2018) on the discriminator's gradient at the (augmented)
real images, applied lazily every ``r1_interval`` steps with weight gamma * interval (Karras
et al. 2020). Why: on tiny data (96 nevi, 32 px, batch 16) the discriminator overfits late
(D(real) ~0.8, D(fake) ~0.2) and the generator's colours drift away from the data (background
pink -> near-white by epoch 150), with or without the colour augmentation, EMA or a lower D
learning rate. Measured with trainer.quality over two seeds: gamma 0.1 every 4 steps (the
default, ~+10 % step time) gives a best snapshot with clearly closer colours (background
Delta E 4.6 / 6.6 vs 10.2 / 8.0) at no SWD cost, but does not stop the late drift in every
run, hence the best-snapshot export; gamma 1 every step stops the brightening in both seeds
but darkens and blurs (SWD worse) at twice the step time. With gamma 0 the step is exactly
the plain one.

Randomness is stateless, derived from (seed, step, replica), so a run resumed from a
checkpoint continues exactly as an uninterrupted one would. The per-replica part
(``_replica_step``) runs in a replica context (``strategy.run``); gradients are summed across
replicas by the Keras optimizer, so losses are divided by the number of replicas.
``_update_ema`` runs in the cross-replica context.

Throughput (trainer.throughput decides the two switches from the config): ``jit_compile``
compiles the whole step with XLA (D and G updates, DiffAugment, the EMA update: one XLA
cluster), on one device only: compiled per replica under MirroredStrategy, Keras' optimizer
reached another replica's variables (tested on two logical CPUs). The stateless random draws are
the same kind of op under XLA (a function of the seed only), so a compiled run repeats itself
bit for bit, but it draws other numbers than an uncompiled one. ``precision`` is a Keras
mixed-precision policy: with ``mixed_bfloat16``/``mixed_float16`` the networks compute in
16 bits and keep float32 variables; images, logits and losses stay float32 (the generator's
and the discriminator's last layers are float32), the EMA generator is float32, and
``mixed_float16`` scales the losses (keras.optimizers.LossScaleOptimizer, dynamic scale, a
non-finite step is skipped and does not advance the step counter).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from trainer.augment import diff_augment
from trainer.model import build_discriminator, build_generator
from trainer.throughput import PRECISIONS


class DCGAN:
    """Build under ``strategy`` (default: the current one); then call :meth:`step` per batch."""

    def __init__(
        self,
        *,
        resolution: int,
        latent_dim: int,
        width: int = 64,
        seed: int = 0,
        augmentations: tuple[str, ...] = (),
        ema_decay: float = 0.0,
        label_smoothing: float = 0.0,
        learning_rate: float = 2e-4,
        beta1: float = 0.5,
        d_learning_rate: float | None = None,
        r1_gamma: float = 0.0,
        r1_interval: int = 1,
        strategy: tf.distribute.Strategy | None = None,
        jit_compile: bool = False,
        precision: str = "float32",
    ):
        self.strategy = strategy or tf.distribute.get_strategy()
        self.resolution, self.latent_dim, self.seed = resolution, latent_dim, seed
        self.augmentations = tuple(augmentations)
        self.ema_decay, self.label_smoothing = float(ema_decay), float(label_smoothing)
        self.r1_gamma, self.r1_interval = float(r1_gamma), max(1, int(r1_interval))
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.jit_compile, self.precision = bool(jit_compile), precision
        policy = None if precision == "float32" else precision
        with self.strategy.scope():
            self.generator = build_generator(
                resolution, latent_dim, width=width, seed=seed, dtype=policy
            )
            self.discriminator = build_discriminator(
                resolution, width=width, seed=seed, dtype=policy
            )
            self.ema_generator = None
            if self.ema_decay > 0:  # float32 whatever the policy: it is the exported one
                self.ema_generator = build_generator(resolution, latent_dim, width=width)
                self.ema_generator.set_weights(self.generator.get_weights())
            d_rate = learning_rate if d_learning_rate is None else d_learning_rate
            self.g_optimizer = self._optimizer(learning_rate, beta1, "g")
            self.d_optimizer = self._optimizer(d_rate, beta1, "d")
            self.g_optimizer.build(self.generator.trainable_variables)
            self.d_optimizer.build(self.discriminator.trainable_variables)
        self._compiled: dict[bool, object] = {}

    def _optimizer(self, rate: float, beta1: float, net: str) -> keras.optimizers.Optimizer:
        adam = keras.optimizers.Adam(rate, beta_1=beta1, name=f"{net}_adam")
        if self.precision != "mixed_float16":
            return adam
        return keras.optimizers.LossScaleOptimizer(adam, name=f"{net}_loss_scale")

    def _scale(self, optimizer, loss):
        """The loss the gradients are taken of: scaled up under mixed_float16."""
        return optimizer.scale_loss(loss) if self.precision == "mixed_float16" else loss

    @property
    def export_generator(self) -> keras.Model:
        """The generator to sample from and export: the EMA one when EMA is on."""
        return self.ema_generator if self.ema_generator is not None else self.generator

    @property
    def step_count(self) -> int:
        """Steps done (the discriminator optimizer's counter, restored with a checkpoint)."""
        return int(self.d_optimizer.iterations.numpy())

    def r1_due(self, step: int) -> bool:
        """Whether step number ``step`` (0-based, global) carries the lazy R1 penalty: a
        function of the step alone, so a resumed run regularises the same steps."""
        return self.r1_gamma > 0 and step % self.r1_interval == 0

    def step(self, batch, *, regularize: bool = False) -> dict[str, tf.Tensor]:
        """One distributed D + G update and the EMA update; the replicas' mean metrics.

        ``batch``: a global batch, or a per-replica one from ``trainer.pipeline.distribute``.
        ``regularize``: the step with the R1 penalty (a second traced graph; ignored when
        r1_gamma is 0, where the step is exactly the plain one).
        """
        key = bool(regularize) and self.r1_gamma > 0
        fn = self._compiled.get(key)
        if fn is None:
            fn = self._compiled[key] = self._compile(key)
        return fn(batch)

    def _compile(self, regularize: bool):
        strategy = self.strategy
        if self.jit_compile and strategy.num_replicas_in_sync > 1:
            raise ValueError(
                "XLA (jit_compile) is supported on one device only: compiled per replica, "
                "Keras' optimizer reached another replica's variables (logical CPU devices)"
            )

        def step(batch):
            per_replica = strategy.run(self._replica_step, args=(batch, regularize))
            self._update_ema()
            return {
                k: strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None)
                for k, v in per_replica.items()
            }

        return tf.function(step, jit_compile=self.jit_compile)

    def _seed(self, salt: int) -> tf.Tensor:
        ctx = tf.distribute.get_replica_context()
        replica = ctx.replica_id_in_sync_group if ctx is not None else 0
        step = tf.cast(self.d_optimizer.iterations, tf.int64)
        return tf.stack(
            [tf.constant(self.seed, tf.int64), step * 1024 + tf.cast(replica, tf.int64) * 16 + salt]
        )

    def _augment(self, images, salt: int):
        if not self.augmentations:
            return images
        return diff_augment(images, self.augmentations, self._seed(salt))

    @staticmethod
    def _bce(targets, logits):
        return tf.reduce_mean(
            tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=logits)
        )

    def _replica_step(self, real_images, regularize: bool):
        """One D and one G update on this replica's images; ``regularize`` (a Python flag)
        adds the lazy R1 penalty, gamma * interval / 2 * E|grad_x D(x)|^2 (Karras et al. 2020,
        "Analyzing and Improving the Image Quality of StyleGAN", lazy regularisation)."""
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        batch = tf.shape(real_images)[0]
        z = tf.random.stateless_normal([batch, self.latent_dim], seed=self._seed(1))
        real_target = tf.fill([batch, 1], 1.0 - self.label_smoothing)
        fake_target = tf.zeros([batch, 1])
        with tf.GradientTape() as tape:
            fake = self.generator(z, training=True)
            if regularize:  # Python branch: otherwise the plain step
                real_aug = self._augment(real_images, 2)
                with tf.GradientTape() as r1_tape:
                    r1_tape.watch(real_aug)
                    images = tf.concat([real_aug, self._augment(fake, 3)], axis=0)
                    logits = self.discriminator(images, training=True)
                    real_sum = tf.reduce_sum(logits[:batch])
                    scaled_sum = self._scale(self.d_optimizer, real_sum)
                # R1 (Mescheder et al. 2018): gamma/2 E[|grad_x D(x)|^2] on (augmented) reals
                r1_grads = r1_tape.gradient(scaled_sum, real_aug)
                if self.precision == "mixed_float16":  # float16 gradients, scaled: unscale
                    r1_grads = r1_grads / self.d_optimizer.dynamic_scale
                r1 = tf.reduce_mean(tf.reduce_sum(tf.square(r1_grads), axis=[1, 2, 3]))
            else:
                images = tf.concat([self._augment(real_images, 2), self._augment(fake, 3)], axis=0)
                logits = self.discriminator(images, training=True)
            real_logits, fake_logits = logits[:batch], logits[batch:]
            d_loss = self._bce(tf.concat([real_target, fake_target], 0), logits)
            scaled = d_loss / replicas
            if regularize:
                scaled += 0.5 * self.r1_gamma * self.r1_interval * r1 / replicas
            scaled = self._scale(self.d_optimizer, scaled)
        grads = tape.gradient(scaled, self.discriminator.trainable_variables)
        self.d_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_variables))

        z = tf.random.stateless_normal([batch, self.latent_dim], seed=self._seed(4))
        with tf.GradientTape() as tape:
            fake = self.generator(z, training=True)
            g_logits = self.discriminator(self._augment(fake, 5), training=True)
            g_loss = self._bce(tf.ones([batch, 1]), g_logits)  # non-saturating loss
            scaled = self._scale(self.g_optimizer, g_loss / replicas)
        grads = tape.gradient(scaled, self.generator.trainable_variables)
        self.g_optimizer.apply_gradients(zip(grads, self.generator.trainable_variables))
        out = {
            "d_loss": d_loss,
            "g_loss": g_loss,
            "d_real": tf.reduce_mean(tf.sigmoid(real_logits)),
            "d_fake": tf.reduce_mean(tf.sigmoid(fake_logits)),
        }
        if regularize:
            out["r1"] = r1
        return out

    def _update_ema(self):
        """EMA of trainable weights; batch-norm statistics copied. Cross-replica context.

        The decay warms up as min(decay, (1 + t) / (10 + t)) with t the generator's step count
        (as in TensorFlow's ExponentialMovingAverage with num_updates), so that a short run
        does not export weights still close to the random initialisation.
        """
        if self.ema_generator is None:
            return
        t = tf.cast(self.g_optimizer.iterations, tf.float32)
        decay = tf.minimum(self.ema_decay, (1.0 + t) / (10.0 + t))
        for ema_w, w in zip(
            self.ema_generator.trainable_variables, self.generator.trainable_variables
        ):
            ema_w.assign(decay * ema_w + (1.0 - decay) * w)
        for ema_w, w in zip(
            self.ema_generator.non_trainable_variables, self.generator.non_trainable_variables
        ):
            ema_w.assign(w)
