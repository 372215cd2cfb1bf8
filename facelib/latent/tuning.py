"""Pivotal tuning: fine-tune a copy of the generator so that an inverted photo comes back as
the photo, then edit with that copy.

Why: ``invert`` only moves z, so the reconstruction is the closest face the generator can draw,
and a small generator draws few faces (18-21 dB PSNR at 32 px for celeba32-cond): the edit
then smiles on somebody else's face. Pivotal tuning (Roich et al. 2022, "Pivotal Tuning for
Latent-based Editing of Real Images") keeps the inverted z as a pivot and trains the
generator's weights, for a few hundred steps, so that G(pivot) reproduces the photo (the same
pixel and feature loss as ``invert``), while a locality term holds G on latents around the
pivot to what the untuned generator draws there. The edits (a new attribute row, or z moved
along a direction) are then made with the tuned copy: the generator's knowledge of what a smile
is stays, the identity, hair and background come from the photo.

    r = invert(run, photos, scorer=classifier)
    tuned = tune_generator(run, r)                      # a Run; run itself is unchanged
    smiling = edit_attributes(tuned, r, {"Smiling": 1}, strength=2)
    tuned.tuning["psnr_db"]                             # the tuned reconstruction's PSNR

One tuned generator serves every face of ``inverted`` (tuned on them jointly); the paper tunes
one generator per photo, which is a loop over ``tuner(r.select([i]))`` with one
``tuner = PivotalTuner(run)`` (compiled once, reused).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from facelib.errors import FacelibError
from facelib.images import to_float, to_uint8
from facelib.latent.inversion import (features_for, image_error, reconstruction_errors,
                                      target_features)


def _check_settings(lr, locality_weight, locality_samples, locality_mix, pixel):
    if not (np.isfinite(lr) and lr > 0):
        raise FacelibError(f"lr={lr!r}: give a positive learning rate, e.g. 3e-4")
    if not (np.isfinite(locality_weight) and locality_weight >= 0):
        raise FacelibError(f"locality_weight={locality_weight!r}: give 0 (no locality term) or "
                           "more, e.g. 0.1")
    if locality_samples < 1:
        raise FacelibError(f"locality_samples={locality_samples!r}: give 1 or more")
    if not 0 < locality_mix <= 1:
        raise FacelibError(f"locality_mix={locality_mix!r}: give a share in (0, 1] of the way "
                           "from the pivot to a random latent, e.g. 0.5")
    if pixel not in ("l2", "l1"):
        raise FacelibError(f"pixel={pixel!r}: use 'l2' or 'l1'")


def _check_result(run, inverted, steps):
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise FacelibError(f"steps={steps!r}: give a whole number of tuning steps, 0 or more")
    z = getattr(inverted, "z", None)
    targets = getattr(inverted, "targets", None)
    if z is None or targets is None:
        raise FacelibError("tune_generator needs an inversion result (with .z and .targets): "
                           "invert the photos with facelib.latent.invert first")
    z = np.asarray(z, np.float32)
    targets = np.asarray(targets)
    if z.ndim != 2 or z.shape[1] != run.latent_dim or len(targets) != len(z) or not len(z):
        raise FacelibError(f"the inversion result holds {len(targets)} targets and latents of "
                           f"shape {z.shape}; {run.path} needs (N, {run.latent_dim}) latents, "
                           "one per target: invert the photos into this run")
    if targets.shape[1:] != (run.resolution, run.resolution, 3):
        raise FacelibError(f"the targets are {targets.shape[1:]} images; {run.path} draws "
                           f"{run.resolution}x{run.resolution}: invert the photos into this run")
    attrs = getattr(inverted, "attrs", None)
    if run.conditional and attrs is None:
        raise FacelibError(f"{run.path} is conditional: the inversion result needs the "
                           "attribute rows it was inverted with (.attrs)")
    return z, targets, None if not run.conditional else np.asarray(attrs, np.float32)


class PivotalTuner:
    """Pivotal tuning of one run's generator, compiled once and reused photo after photo.

    ``tuner(inverted, steps=150, seed=0)`` is ``tune_generator(run, inverted, ...)`` with this
    tuner's settings: it gives the same weights, and ``run`` is not changed. Why a class: a
    call's fixed cost (copying the generator, building the feature network and Adam, tracing
    the step) is about half of a 150-step call at 32 px, and a loop over photos (one generator
    per photo, as in the paper; ``benchmarks/bench_smile_edit.py``, the widget's uploads) pays
    it once here. Before each call the working copy, Adam's state and the best-weights record
    go back to where a fresh tuner starts. ``traces`` counts how often the step was traced
    (once per batch shape: 1 for a loop over single photos).
    """

    def __init__(self, run, *, lr: float = 3e-4, pixel: str = "l2", pixel_weight: float = 1.0,
                 feature_weight: float = 0.1, features: str = "discriminator",
                 locality_weight: float = 0.1, locality_samples: int = 4,
                 locality_mix: float = 0.5):
        _check_settings(float(lr), float(locality_weight), int(locality_samples),
                        float(locality_mix), pixel)
        self.run = run
        self.settings = {"lr": float(lr), "features": features,
                         "locality_weight": float(locality_weight),
                         "locality_samples": int(locality_samples),
                         "locality_mix": float(locality_mix)}
        self.traces = 0
        base = run.generator
        self._base = base
        self._tuned = keras.models.clone_model(base)
        self._tuned.set_weights(base.get_weights())
        weights = self._tuned.trainable_variables
        self._weights = weights
        self._start_trainable = [w.numpy() for w in weights]
        feature_fn = features_for(run, features)
        self._feature_fn, self._feature_weight = feature_fn, float(feature_weight)
        self._optimizer = keras.optimizers.Adam(float(lr))
        self._optimizer.build(weights)
        # a fresh Adam's state (zero moments, step 0, the learning rate), restored before each
        # call so that a reused tuner is a new one
        self._optimizer_start = [v.numpy() for v in self._optimizer.variables]
        # the best weights seen (lowest loss), as `invert` keeps the best z: a learning rate
        # that diverges returns the start, never something worse
        self._best = [tf.Variable(w) for w in weights]
        self._best_loss = tf.Variable(np.inf, dtype=tf.float32)
        k, w_loc, mix = int(locality_samples), float(locality_weight), float(locality_mix)
        d = run.latent_dim

        def draw(g, zz, yy):
            return g(zz if yy is None else [zz, yy], training=False)

        def objective(t, seed, pivots, rows, x, feats, energy, pool):
            seeds = tf.stack([seed, t])
            loss = tf.reduce_mean(image_error(draw(self._tuned, pivots, rows), x, feats, energy,
                                              feature_fn, pixel, float(pixel_weight),
                                              float(feature_weight)))
            if w_loc > 0:
                pick = tf.random.stateless_uniform((k,), seeds, 0, tf.shape(pivots)[0],
                                                   dtype=tf.int32)
                noise = tf.random.stateless_normal((k, d), seeds + 1)
                near = tf.gather(pivots, pick)
                near = near + mix * (noise - near)
                near_rows = None if pool is None else tf.gather(pool, tf.random.stateless_uniform(
                    (k,), seeds + 2, 0, tf.shape(pool)[0], dtype=tf.int32))
                loss += w_loc * tf.reduce_mean(tf.square(draw(self._tuned, near, near_rows)
                                                         - draw(base, near, near_rows)))
            return loss

        def keep_if_best(loss):
            better = loss < self._best_loss
            for b, w in zip(self._best, weights):
                b.assign(tf.where(better, w, b))
            self._best_loss.assign(tf.minimum(loss, self._best_loss))

        def step(*args):
            self.traces += 1  # Python runs only while tracing
            with tf.GradientTape() as tape:
                loss = objective(*args)
            keep_if_best(loss)  # the loss of the weights before this update
            self._optimizer.apply_gradients(zip(tape.gradient(loss, weights), weights))
            return loss

        def score_last(*args):  # the last update's weights, which no step has scored
            keep_if_best(objective(*args))

        # plain TF ops: nothing for AutoGraph to convert
        self._step = tf.function(step, autograph=False, reduce_retracing=True)
        self._score_last = tf.function(score_last, autograph=False, reduce_retracing=True)

    def _reset(self):
        for w, w0 in zip(self._weights, self._start_trainable):
            w.assign(w0)
        for b, w0 in zip(self._best, self._start_trainable):
            b.assign(w0)
        self._best_loss.assign(np.inf)
        for v, v0 in zip(self._optimizer.variables, self._optimizer_start):
            v.assign(v0)

    def __call__(self, inverted, *, steps: int = 150, seed: int = 0):
        """A copy of the run whose generator is tuned to ``inverted``'s photos (see
        ``tune_generator``)."""
        run = self.run
        z, targets, attrs = _check_result(run, inverted, steps)
        self._reset()
        x = tf.constant(to_float(targets))
        feats, energy = target_features(x, self._feature_fn, self._feature_weight)
        k = self.settings["locality_samples"]
        pool = (None if attrs is None else
                tf.constant(run.sample_attributes(max(256, k), seed=seed)))
        common = (tf.constant(seed, tf.int32), tf.constant(z),
                  None if attrs is None else tf.constant(attrs), x, feats, energy, pool)
        before = to_uint8(run.synthesize(z, attrs))
        history = []
        for t in range(1, int(steps) + 1):
            history.append(float(self._step(tf.constant(t, tf.int32), *common)))
        if steps:
            self._score_last(tf.constant(0, tf.int32), *common)
            for b, w in zip(self._best, self._weights):
                w.assign(b)
        # the returned copy owns its weights: the next call resets the working copy
        generator = keras.models.clone_model(self._base)
        generator.set_weights(self._tuned.get_weights())
        result = run.with_generator(generator)
        after = to_uint8(result.synthesize(z, attrs))
        result.tuning = {
            "steps": int(steps), **self.settings, "faces": int(len(z)), "seed": int(seed),
            "history": history,
            "psnr_db_before": float(np.mean(reconstruction_errors(targets, before)[1])),
            "psnr_db": float(np.mean(reconstruction_errors(targets, after)[1])),
        }
        return result


def tune_generator(run, inverted, *, steps: int = 150, lr: float = 3e-4, pixel: str = "l2",
                   pixel_weight: float = 1.0, feature_weight: float = 0.1,
                   features: str = "discriminator", locality_weight: float = 0.1,
                   locality_samples: int = 4, locality_mix: float = 0.5, seed: int = 0):
    """Pivotal tuning of ``run``'s generator on the faces of an inversion result.

    Returns a copy of the run (``run.with_generator``) whose generator is tuned so that
    G(inverted.z[, inverted.attrs]) reproduces ``inverted.targets``; ``run`` is not changed.
    Its ``tuning`` dict holds the settings, the loss per step and the reconstructions' mean
    PSNR before and after (``psnr_db_before``, ``psnr_db``). For many photos one at a time,
    build one ``PivotalTuner(run, ...)`` and call it per photo: the same weights, the fixed
    cost paid once.

    Loss: ``invert``'s image loss (``pixel``, ``pixel_weight``, ``feature_weight``,
    ``features``) at the pivots, plus ``locality_weight`` times the mean squared pixel
    difference between the tuned and the untuned generator on ``locality_samples`` latents a
    step, each ``locality_mix`` of the way from a pivot to a fresh standard normal latent (with
    attribute rows drawn from the data for conditional runs). 0 switches the locality term off:
    the copy then drifts further from the untuned generator away from the pivots
    (``tests/test_latent_tuning.py`` measures it). Adam, learning rate ``lr`` (the paper's 3e-4);
    the paper's 350 steps are for 1024 px StyleGAN2, and at 32 px 150 reach about 43 dB.
    Seeded: the same arguments give the same weights. The weights returned are the best seen
    (lowest loss), so a step size that diverges gives back the start, never worse.
    """
    _check_result(run, inverted, steps)  # a bad result is refused before anything is built
    tuner = PivotalTuner(run, lr=lr, pixel=pixel, pixel_weight=pixel_weight,
                         feature_weight=feature_weight, features=features,
                         locality_weight=locality_weight, locality_samples=locality_samples,
                         locality_mix=locality_mix)
    return tuner(inverted, steps=steps, seed=seed)


__all__ = ["PivotalTuner", "tune_generator"]
