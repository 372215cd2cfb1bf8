"""The GAN as one ``keras.Model``: ``compile(d_optimizer, g_optimizer)`` then ``fit``.

Randomness in a step (latents, DiffAugment draws, ADA's coin flips, WGAN-GP's alpha) is a pure
function of ``(config.seed, step)``, drawn for the *global* batch and sliced per replica. So the
step counter and ADA's probability (checkpointed beside it) are the whole training state besides
weights: a resumed run replays exactly what an uninterrupted one would have drawn, and a run on N
replicas matches one device with the same global batch.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from facelib.config import Config
from facelib.errors import FacelibError
from facelib.data.pipeline import to_model_input
from facelib.models import build_discriminator, build_generator, standing_statistics
from facelib.training import augment
from facelib.training.losses import LOSSES, gradient_penalty, lecam_penalty, r1_penalty

# Salts that keep the random streams of one step apart.
_D_LATENT, _G_LATENT, _D_AUG_REAL, _D_AUG_FAKE, _G_AUG, _GP_ALPHA = range(6)
_SALTS_PER_STEP = 64
_ADA_GATES = 32  # ADA's per-op coin flips: the augmentation's salt + this (n_critic <= 4)
_STANDING_SEED = 104729  # the standing statistics' latents: rng([config.seed, this])


def standing_inputs(config: Config, attributes=None) -> tuple[np.ndarray, np.ndarray | None]:
    """The fixed inputs that the EMA generator's standing statistics are measured on:
    ``config.standing_statistics`` latents drawn from the run's seed and, for a conditional
    run, the first that many of ``attributes`` (rows drawn as training draws them)."""
    n = config.standing_statistics
    latents = np.random.default_rng([config.seed, _STANDING_SEED]).standard_normal(
        (n, config.latent_dim)).astype(np.float32)
    if not config.conditional:
        return latents, None
    rows = None if attributes is None else np.asarray(attributes, np.float32)
    if rows is None or rows.ndim != 2 or len(rows) < n or rows.shape[1] != config.num_attributes:
        given = "none" if rows is None else f"shape {rows.shape}"
        raise FacelibError(
            f"standing_statistics={n} on a conditional run needs {n} attribute rows of "
            f"{config.num_attributes} (given {given}): pass GAN(config, standing_attributes=ROWS) "
            "drawn from the training faces, or set standing_statistics=0")
    return latents, rows[:n]


def attribute_weights(share, num_attributes: int, cap: float = 10.0):
    """Balanced cross-entropy's weights per attribute, (present, absent): 0.5 / p and
    0.5 / (1 - p), p the attribute's share of the training rows, each at most ``cap`` (an
    attribute in 2% of the rows gets 10, not 25, so one face does not dominate a batch's
    gradient). Uncapped, they average 1 over the rows: p * 0.5/p + (1-p) * 0.5/(1-p)."""
    p = np.asarray(share, np.float64)
    if p.shape != (num_attributes,) or not np.all((p >= 0) & (p <= 1)):
        raise FacelibError(f"attribute_share must be {num_attributes} shares in [0, 1] (one per "
                           f"attribute), got shape {p.shape}: pass rows.mean(axis=0) of the "
                           "training rows' 0/1 attributes")
    present = np.minimum(0.5 / np.maximum(p, 1e-12), cap)
    absent = np.minimum(0.5 / np.maximum(1.0 - p, 1e-12), cap)
    return tf.constant(present, tf.float32), tf.constant(absent, tf.float32)


def ema_decay(config: Config, step) -> tf.Tensor:
    """The EMA generator's decay at the update made at ``step`` (0-based, before the increment),
    under the config's rule, capped at ``config.ema_decay``. One home for the rules, so that a
    benchmark comparing them (benchmarks/bench_ema.py) averages exactly as training does."""
    decay = tf.constant(config.ema_decay, tf.float32)
    if config.ema_power:
        # Karras et al. 2024: at the t-th update (t = step + 1) the decay (1 - 1/t)^(gamma+1)
        # keeps the average's weights a power function of time, so it spans the same share of
        # the run at any length; the first update copies G (decay 0).
        t = tf.cast(step, tf.float32) + 1.0
        return tf.minimum(decay, tf.pow(1.0 - 1.0 / t, config.ema_power + 1.0))
    if config.ema_rampup:
        # Early on the EMA would average mostly the random initialisation; this ramp (as in
        # TF's ExponentialMovingAverage with num_updates) follows G closely at first.
        step = tf.cast(step, tf.float32)
        return tf.minimum(decay, (1.0 + step) / (10.0 + step))
    return decay


class GAN(keras.Model):
    """Generator, discriminator and an exponential moving average (EMA) of the generator.

    ``train_step`` takes ``(images in [-1, 1], attributes in {0, 1})`` batches. Losses are summed
    per replica and divided by the global batch, so gradients all-reduced across replicas are
    the global-batch mean.
    """

    def __init__(self, config: Config, generator: keras.Model | None = None,
                 discriminator: keras.Model | None = None, attribute_share=None,
                 feature_network: keras.Model | None = None, standing_attributes=None,
                 **kwargs):
        """generator/discriminator: other architectures with the same inputs and outputs
        (default: the DCGAN pair built from ``config``). attribute_share: each attribute's share
        of the training rows (num_attributes values in [0, 1]), which
        ``config.balanced_attribute_loss`` weights AC-GAN's loss by (``attribute_weights``).
        feature_network: the pretrained network ``config.d_features`` names
        (``facelib.run.feature_network.load(config)``), whose frozen features D also reads.
        standing_attributes: for a conditional run with ``config.standing_statistics``, attribute
        rows drawn as training draws them (at least that many), which the EMA generator's
        standing statistics are measured with (``sampling_generator``)."""
        super().__init__(**kwargs)
        self.config = config
        self._attribute_weights = None
        if config.balanced_attribute_loss:
            if attribute_share is None:
                raise FacelibError("balanced_attribute_loss needs the attributes' shares of the "
                                   "training rows: GAN(config, attribute_share=rows.mean(axis=0))")
            self._attribute_weights = attribute_weights(attribute_share, config.num_attributes)
        self.generator = generator or build_generator(config)
        self.discriminator = discriminator or build_discriminator(
            config, feature_network=feature_network)
        self.ema_generator = None
        if config.ema_decay > 0:
            self.ema_generator = (build_generator(config, name="ema_generator") if generator is None
                                  else keras.models.clone_model(generator))
            self.ema_generator.set_weights(self.generator.get_weights())
        self._standing = None  # (step, the EMA generator's copy with standing statistics)
        self._standing_inputs = None
        if config.standing_statistics:
            self._standing_inputs = standing_inputs(config, standing_attributes)
        # Only replica 0's increment counts (all replicas agree anyway).
        self.step = keras.Variable(0, dtype="int64", trainable=False, name="step",
                                   aggregation="only_first_replica")
        self._d_loss_fn, self._g_loss_fn = LOSSES[config.loss]
        self.trackers = {name: keras.metrics.Mean(name=name)
                         for name in ("d_loss", "g_loss", "real_logit", "fake_logit")}
        if config.attribute_loss > 0:
            self.trackers["attribute_loss"] = keras.metrics.Mean(name="attribute_loss")
        if config.loss == "wgan-gp":
            self.trackers["gradient_penalty"] = keras.metrics.Mean(name="gradient_penalty")
        if config.r1_gamma > 0:
            # Mean per step of the lazy penalty (r1_every times gamma/2 |grad|^2 one step in
            # r1_every): on average gamma/2 |grad_x D(x)|^2.
            self.trackers["r1"] = keras.metrics.Mean(name="r1")
        # Training state besides weights, optimizers and the step: its name in a checkpoint's
        # state.json -> (variable, the least and the most any of its values may be). The
        # checkpoint manager saves and restores every entry; a new one needs nothing there.
        self.training_state: dict[str, tuple[keras.Variable, float, float]] = {}
        # ADA's augmentation probability.
        self.ada_p = None
        if config.ada_target > 0:
            self.ada_p = self._state_variable("ada_p", (), 0.0, 1.0)
            self.trackers["ada_p"] = keras.metrics.Mean(name="ada_p")
        # LeCam's moving averages: [decayed sum of mean real logits, of mean fake logits, of 1],
        # so the anchors (the first two over the third) are unbiased from the first step on.
        self.lecam_state = None
        if config.lecam_weight > 0:
            self.lecam_state = self._state_variable("lecam", (3,), -math.inf, math.inf)
            self.trackers["lecam"] = keras.metrics.Mean(name="lecam")
        # The sub-networks are built functional models; fit() need not trace call() to build.
        self.built = True

    def _state_variable(self, name: str, shape: tuple, low: float, high: float) -> keras.Variable:
        """A training-state variable, zeros at the start. Only replica 0's update counts (all
        replicas compute the same global statistic)."""
        var = keras.Variable(np.zeros(shape, np.float32), dtype="float32", trainable=False,
                             name=name, aggregation="only_first_replica")
        self.training_state[name] = (var, low, high)
        return var

    @property
    def sampler(self) -> keras.Model:
        """The network to sample from: the EMA generator when there is one."""
        return self.ema_generator if self.ema_generator is not None else self.generator

    def sampling_generator(self) -> keras.Model:
        """The network that saving and sampling during training read: ``sampler``, or with
        ``config.standing_statistics`` a copy of the EMA generator whose BatchNorm statistics
        are measured on its own activations over fixed inputs (computed once per step).

        A copy, so that training's networks are never touched: the EMA update keeps copying G's
        statistics into the EMA generator, and a resumed run continues exactly."""
        if self._standing_inputs is None:
            return self.sampler
        step = int(self.step.numpy())
        if self._standing is None or self._standing[0] != step:
            copy = self._standing[1] if self._standing else keras.models.clone_model(self.sampler)
            copy.set_weights(self.sampler.get_weights())
            standing_statistics.recompute(copy, *self._standing_inputs)
            self._standing = (step, copy)
        return self._standing[1]

    def compile(self, d_optimizer=None, g_optimizer=None, **kwargs):
        cfg = self.config
        d_optimizer = d_optimizer or keras.optimizers.Adam(cfg.d_lr, cfg.beta1, cfg.beta2)
        g_optimizer = g_optimizer or keras.optimizers.Adam(cfg.g_lr, cfg.beta1, cfg.beta2)
        if cfg.precision == "mixed_float16":
            # float16 only (bfloat16 has float32's exponent range and needs no loss scale).
            # One loss scale per network: their gradients have very different magnitudes.
            if not isinstance(d_optimizer, keras.optimizers.LossScaleOptimizer):
                d_optimizer = keras.optimizers.LossScaleOptimizer(d_optimizer)
            if not isinstance(g_optimizer, keras.optimizers.LossScaleOptimizer):
                g_optimizer = keras.optimizers.LossScaleOptimizer(g_optimizer)
        kwargs.setdefault("jit_compile", cfg.jit_compile)
        super().compile(**kwargs)
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer
        self.d_optimizer.build(self.discriminator.trainable_variables)
        self.g_optimizer.build(self.generator.trainable_variables)

    @property
    def metrics(self):
        return list(self.trackers.values())

    def call(self, z, training=False):
        return self.sampler(z, training=training)

    # -- randomness ----------------------------------------------------------------------
    def _draw(self, kind: str, salt: int, local_batch: int, width: int):
        """Draws for the global batch at this step, sliced to this replica's rows."""
        ctx = tf.distribute.get_replica_context()
        replicas = ctx.num_replicas_in_sync if ctx is not None else 1
        replica = ctx.replica_id_in_sync_group if ctx is not None else 0
        seed = tf.stack([tf.constant(self.config.seed, tf.int64),
                         tf.cast(self.step, tf.int64) * _SALTS_PER_STEP + salt])
        shape = [local_batch * replicas, width]
        fn = tf.random.stateless_normal if kind == "normal" else tf.random.stateless_uniform
        values = fn(shape, seed=seed)
        start = tf.cast(replica, tf.int32) * local_batch
        return values[start:start + local_batch]

    def _augment(self, images, salt: int):
        cfg = self.config
        if cfg.augment != "diffaugment":
            return images
        b = images.shape[0]
        draws = self._draw("uniform", salt, b, augment.n_draws(cfg.diffaugment_policy))
        gates = None
        if self.ada_p is not None:
            coins = self._draw("uniform", salt + _ADA_GATES, b, len(cfg.diffaugment_policy))
            gates = coins < tf.cast(self.ada_p.value, tf.float32)
        return augment.diff_augment(images, cfg.diffaugment_policy, draws, gates)

    def _r1_penalty(self, real_in, attrs):
        """Per example: r1_every * gamma/2 * |grad_x D(x)|^2 on the (augmented) real faces at
        steps divisible by r1_every, else 0 (StyleGAN2's lazy regularisation)."""
        cfg = self.config

        def penalty():
            extra = attrs if cfg.conditional else None
            return (0.5 * cfg.r1_gamma * cfg.r1_every) * r1_penalty(self.discriminator, real_in, extra)

        if cfg.r1_every == 1:
            return penalty()
        return tf.cond(self.step % cfg.r1_every == 0, penalty,
                       lambda: tf.zeros([real_in.shape[0]], tf.float32))

    def _inputs(self, x, attrs):
        return [x, attrs] if self.config.conditional else x

    # -- one step ------------------------------------------------------------------------
    def train_step(self, data):
        cfg = self.config
        real, attrs = data
        if real.dtype == tf.uint8:  # make_dataset(uint8=True): converted here, on the device
            real = to_model_input(real, cfg.resolution)
        real = tf.cast(real, self.compute_dtype)
        attrs = tf.cast(attrs, "float32")
        b = real.shape[0]
        if b is None:
            raise ValueError("train_step needs a static batch size: batch with drop_remainder=True")
        ctx = tf.distribute.get_replica_context()
        global_b = b * (ctx.num_replicas_in_sync if ctx is not None else 1)

        def average(per_example):
            return tf.reduce_sum(tf.cast(per_example, tf.float32)) / global_b

        d_vars = self.discriminator.trainable_variables
        g_vars = self.generator.trainable_variables
        for i in range(cfg.n_critic):
            salt = i * 8
            z = self._draw("normal", _D_LATENT + salt, b, cfg.latent_dim)
            fake = tf.stop_gradient(self.generator(self._inputs(z, attrs), training=True))
            fake = tf.cast(fake, real.dtype)
            with tf.GradientTape() as tape:
                real_in = self._augment(real, _D_AUG_REAL + salt)
                fake_in = self._augment(fake, _D_AUG_FAKE + salt)
                real_logit, real_attr_logits = self._read(real_in, attrs)
                fake_logit, _ = self._read(fake_in, attrs)
                per_example = self._d_loss_fn(real_logit, fake_logit)
                if cfg.attribute_loss > 0:  # AC-GAN: D reads the attributes of real faces
                    attr_loss = self._attribute_loss(real_attr_logits, attrs)
                    per_example = per_example + cfg.attribute_loss * attr_loss
                if cfg.r1_gamma > 0:
                    r1 = self._r1_penalty(real_in, attrs)
                    per_example = per_example + r1
                if cfg.lecam_weight > 0:
                    lecam = self._lecam(real_logit, fake_logit, ctx, global_b)
                    per_example = per_example + cfg.lecam_weight * lecam
                if cfg.loss == "wgan-gp":
                    alpha = self._draw("uniform", _GP_ALPHA + salt, b, 1)
                    gp = gradient_penalty(self.discriminator, real_in, fake_in, alpha,
                                          attrs if cfg.conditional else None)
                    per_example = per_example + cfg.gp_weight * gp
                d_loss = average(per_example)
                scaled = self.d_optimizer.scale_loss(d_loss) if cfg.precision == "mixed_float16" else d_loss
            grads = tape.gradient(scaled, d_vars)
            self.d_optimizer.apply_gradients(zip(grads, d_vars))

        z = self._draw("normal", _G_LATENT, b, cfg.latent_dim)
        with tf.GradientTape() as tape:
            fake = self.generator(self._inputs(z, attrs), training=True)
            fake_in = self._augment(tf.cast(fake, real.dtype), _G_AUG)
            logit, attr_logits = self._read(fake_in, attrs)
            per_example = self._g_loss_fn(logit)
            if cfg.attribute_loss > 0 and cfg.conditional:  # ... and G makes them readable
                per_example = per_example + cfg.attribute_loss * self._attribute_loss(attr_logits, attrs)
            g_loss = average(per_example)
            scaled = self.g_optimizer.scale_loss(g_loss) if cfg.precision == "mixed_float16" else g_loss
        grads = tape.gradient(scaled, g_vars)
        self.g_optimizer.apply_gradients(zip(grads, g_vars))

        if self.ada_p is not None:
            self._update_ada(real_logit, ctx, global_b)
        if self.ema_generator is not None:
            self._update_ema()
        self.step.assign_add(1)

        # Trackers take this replica's mean; Keras aggregates them over replicas.
        replicas = global_b // b
        self.trackers["d_loss"].update_state(d_loss * replicas)
        self.trackers["g_loss"].update_state(g_loss * replicas)
        self.trackers["real_logit"].update_state(tf.reduce_mean(real_logit))
        self.trackers["fake_logit"].update_state(tf.reduce_mean(fake_logit))
        if cfg.attribute_loss > 0:
            self.trackers["attribute_loss"].update_state(tf.reduce_mean(attr_loss))
        if cfg.loss == "wgan-gp":
            self.trackers["gradient_penalty"].update_state(tf.reduce_mean(gp))
        if cfg.r1_gamma > 0:
            self.trackers["r1"].update_state(tf.reduce_mean(r1))
        if cfg.lecam_weight > 0:
            self.trackers["lecam"].update_state(tf.reduce_mean(lecam))
        if self.ada_p is not None:
            self.trackers["ada_p"].update_state(self.ada_p.value)
        return {name: t.result() for name, t in self.trackers.items()}

    def _read(self, images, attrs):
        """D on a batch, split once: (the real/fake logit (B,), the attribute logits (B, A)), in
        float32. Column 0 of D's output is the real/fake logit; an AC-GAN D's attribute logits
        follow it (an empty (B, 0) without the head)."""
        out = tf.cast(self.discriminator(self._inputs(images, attrs), training=True), tf.float32)
        return out[:, 0], out[:, 1:]

    def _attribute_loss(self, attr_logits, attrs):
        """Per example: binary cross-entropy of D's attribute head, mean over attributes (each
        attribute's present and absent rows weighted apart with balanced_attribute_loss)."""
        ce = tf.nn.sigmoid_cross_entropy_with_logits(labels=attrs, logits=attr_logits)
        if self._attribute_weights is not None:
            present, absent = self._attribute_weights
            ce = ce * (attrs * present + (1.0 - attrs) * absent)
        return tf.reduce_mean(ce, axis=1)

    def _lecam(self, real_logits, fake_logits, ctx, global_b):
        """Per example: LeCam's penalty against the anchors after this batch's update. The
        anchors move with the global batch's mean logits (no gradient flows through them)."""
        sums = tf.stop_gradient(tf.stack([tf.reduce_sum(real_logits), tf.reduce_sum(fake_logits)]))
        if ctx is not None:
            sums = ctx.all_reduce(tf.distribute.ReduceOp.SUM, sums)
        batch = tf.concat([sums / global_b, [1.0]], axis=0)
        decay = tf.constant(self.config.lecam_decay, tf.float32)
        state = self.lecam_state.value * decay + (1.0 - decay) * batch
        self.lecam_state.assign(state)
        return lecam_penalty(real_logits, fake_logits, state[0] / state[2], state[1] / state[2])

    def _update_ada(self, real_logit, ctx, global_b):
        """ADA's controller: r = E[sign D(x)] over the global batch of (augmented) real faces;
        p moves by sign(r - target) * batch / (ada_kimg * 1000), clipped to [0, 1]. D that is
        sure of the real faces (overfitting) gets more augmentation, and less as it recovers."""
        cfg = self.config
        signs = tf.reduce_sum(tf.sign(real_logit))
        if ctx is not None:
            signs = ctx.all_reduce(tf.distribute.ReduceOp.SUM, signs)
        step = tf.sign(signs / global_b - cfg.ada_target) * (global_b / (cfg.ada_kimg * 1000.0))
        self.ada_p.assign(tf.clip_by_value(self.ada_p.value + step, 0.0, 1.0))

    def _update_ema(self):
        decay = ema_decay(self.config, self.step)
        pairs = [(e.value, g.value) for e, g in zip(self.ema_generator.trainable_variables,
                                                     self.generator.trainable_variables)]
        # BatchNorm statistics are copied, not averaged.
        copies = [(e.value, g.value) for e, g in zip(self.ema_generator.non_trainable_variables,
                                                      self.generator.non_trainable_variables)]

        def update(strategy, pairs, copies):
            for ema, var in pairs:
                strategy.extended.update(
                    ema, lambda e, v: e.assign(tf.cast(decay, e.dtype) * e
                                               + tf.cast(1.0 - decay, e.dtype) * tf.cast(v, e.dtype)),
                    args=(var,), group=False)
            for ema, var in copies:
                strategy.extended.update(ema, lambda e, v: e.assign(tf.cast(v, e.dtype)),
                                         args=(var,), group=False)

        # The update runs once in cross-replica context (MirroredStrategy: on every mirror, with
        # the replicas' values already equal); merge_call is the public way to get there.
        context = tf.distribute.get_replica_context()
        if context is None:
            update(tf.distribute.get_strategy(), pairs, copies)
        else:
            context.merge_call(update, args=(pairs, copies))
