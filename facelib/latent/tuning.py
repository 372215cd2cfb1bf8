"""Pivotal tuning: fine-tune a copy of the generator so that an inverted photo comes back as
the photo, then edit with that copy.

Why: ``invert`` only moves z, so the reconstruction is the closest face the generator can draw,
and a small generator draws few faces (about 21 dB PSNR at 32 px for celeba32-cond): the edit
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
one generator per photo, which is a loop over ``tune_generator(run, r.select([i]))``.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from facelib.errors import FacelibError
from facelib.images import to_float, to_uint8
from facelib.latent.inversion import features_for, image_loss, reconstruction_errors


def _check(run, inverted, steps, lr, locality_weight, locality_samples, locality_mix):
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise FacelibError(f"steps={steps!r}: give a whole number of tuning steps, 0 or more")
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


def tune_generator(run, inverted, *, steps: int = 150, lr: float = 3e-4, pixel: str = "l2",
                   pixel_weight: float = 1.0, feature_weight: float = 0.1,
                   features: str = "discriminator", locality_weight: float = 0.1,
                   locality_samples: int = 4, locality_mix: float = 0.5, seed: int = 0):
    """Pivotal tuning of ``run``'s generator on the faces of an inversion result.

    Returns a copy of the run (``run.with_generator``) whose generator is tuned so that
    G(inverted.z[, inverted.attrs]) reproduces ``inverted.targets``; ``run`` is not changed.
    Its ``tuning`` dict holds the settings, the loss per step and the reconstructions' mean
    PSNR before and after (``psnr_db_before``, ``psnr_db``).

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
    z, targets, attrs = _check(run, inverted, steps, float(lr), float(locality_weight),
                               int(locality_samples), float(locality_mix))
    if pixel not in ("l2", "l1"):
        raise FacelibError(f"pixel={pixel!r}: use 'l2' or 'l1'")
    base = run.generator
    tuned = keras.models.clone_model(base)
    tuned.set_weights(base.get_weights())
    of_image = image_loss(to_float(targets), features_for(run, features), pixel, pixel_weight,
                          feature_weight)
    pivots = tf.constant(z)
    rows = None if attrs is None else tf.constant(attrs)
    pool = (None if attrs is None else
            tf.constant(run.sample_attributes(max(256, int(locality_samples)), seed=seed)))
    optimizer = keras.optimizers.Adam(float(lr))
    k, d = int(locality_samples), run.latent_dim
    weights = tuned.trainable_variables
    # the best weights seen (lowest loss), as `invert` keeps the best z: a learning rate that
    # diverges returns the start, never something worse
    best = [tf.Variable(w) for w in weights]
    best_loss = tf.Variable(np.inf, dtype=tf.float32)

    def draw(g, zz, yy):
        return g(zz if yy is None else [zz, yy], training=False)

    def objective(t):
        seeds = tf.stack([tf.constant(seed, tf.int32), t])
        loss = tf.reduce_mean(of_image(draw(tuned, pivots, rows)))
        if locality_weight > 0:
            pick = tf.random.stateless_uniform((k,), seeds, 0, len(z), dtype=tf.int32)
            noise = tf.random.stateless_normal((k, d), seeds + 1)
            near = tf.gather(pivots, pick)
            near = near + locality_mix * (noise - near)
            near_rows = None if pool is None else tf.gather(pool, tf.random.stateless_uniform(
                (k,), seeds + 2, 0, tf.shape(pool)[0], dtype=tf.int32))
            loss += locality_weight * tf.reduce_mean(tf.square(draw(tuned, near, near_rows)
                                                               - draw(base, near, near_rows)))
        return loss

    def keep_if_best(loss):
        better = loss < best_loss
        for b, w in zip(best, weights):
            b.assign(tf.where(better, w, b))
        best_loss.assign(tf.minimum(loss, best_loss))

    @tf.function(autograph=False)  # plain TF ops: nothing for AutoGraph to convert
    def step(t):
        with tf.GradientTape() as tape:
            loss = objective(t)
        keep_if_best(loss)  # the loss of the weights before this update
        optimizer.apply_gradients(zip(tape.gradient(loss, weights), weights))
        return loss

    before = to_uint8(run.synthesize(z, attrs))
    history = []
    for t in range(1, int(steps) + 1):
        history.append(float(step(tf.constant(t, tf.int32))))
    if steps:  # the last update's weights have not been scored yet
        keep_if_best(tf.function(objective, autograph=False)(tf.constant(0, tf.int32)))
        for b, w in zip(best, weights):
            w.assign(b)
    result = run.with_generator(tuned)
    after = to_uint8(result.synthesize(z, attrs))
    result.tuning = {
        "steps": int(steps), "lr": float(lr), "faces": int(len(z)), "features": features,
        "locality_weight": float(locality_weight), "locality_samples": k,
        "locality_mix": float(locality_mix), "seed": int(seed), "history": history,
        "psnr_db_before": float(np.mean(reconstruction_errors(targets, before)[1])),
        "psnr_db": float(np.mean(reconstruction_errors(targets, after)[1])),
    }
    return result


__all__ = ["tune_generator"]
