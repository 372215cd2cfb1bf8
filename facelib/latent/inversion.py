"""GAN inversion: find z with G(z) close to a real photo, so the photo can be edited.

Optimisation (Adam on z, as in Zhu et al. 2016 "iGAN" and Abdal et al. 2019 "Image2StyleGAN")
minimises, per image,

    pixel_weight * pixel(G(z), x) + feature_weight * features(G(z), x)
        + norm_weight * (|z|^2 / d - 1)^2

pixel: mean squared (or absolute) error in [-1, 1]. features: a perceptual-ish term from the
run's own discriminator: its intermediate activations (every (Leaky)ReLU), each layer's squared
error relative to the target's energy. LPIPS would be the standard choice but needs pretrained
weights that are not available offline; ``features="fixed"`` uses a small fixed network (an image
pyramid and its Sobel gradients) when the discriminator is unwanted. The norm term keeps z near
the sphere of radius sqrt(d) where standard normal latents live, so that edits along directions
found on sampled latents still apply.

Initialisation: a small CNN encoder trained on generated (image, z) pairs (``train_encoder``,
saved in ``RUN/encoder/``) puts z close to the answer in one forward pass; without it, the best
of a few random latents ("search") is used. Conditional runs invert z with the attribute vector
held fixed (given, predicted by a scorer, or drawn from the data).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from facelib.data.cache import FaceCache
from facelib.data.sample import sample_cache
from facelib.errors import FacelibError
from facelib.images import resize_batch, to_float, to_uint8
from facelib.latent.align import load_face
from facelib.latent.directions import latent_attributes, score_images

INITS = ("auto", "encoder", "search", "zeros", "random")
FEATURES = ("discriminator", "fixed", "none")


# ---------------------------------------------------------------------------------------------
# Error measures


def reconstruction_errors(targets, reconstructions) -> tuple[np.ndarray, np.ndarray]:
    """Per-image MSE (pixel values scaled to [0, 1]) and PSNR in dB (peak 1), on uint8 images."""
    a = np.asarray(targets, np.float64) / 255.0
    b = np.asarray(reconstructions, np.float64) / 255.0
    if a.shape != b.shape:
        raise FacelibError(f"cannot compare images of shapes {a.shape} and {b.shape}")
    mse = ((a - b) ** 2).reshape(len(a), -1).mean(axis=1)
    with np.errstate(divide="ignore"):
        psnr = np.where(mse > 0, 10.0 * np.log10(1.0 / np.maximum(mse, 1e-20)), np.inf)
    return mse, psnr


# ---------------------------------------------------------------------------------------------
# Feature extractors


def discriminator_features(run):
    """A keras.Model: images in [-1, 1] -> the run's discriminator activations (list), or None
    when the checkpoint has no discriminator weights."""
    d = run.discriminator()
    if d is None:
        return None
    # The nonlinearities' outputs: LeakyReLU in the DCGAN, ReLU in the residual net.
    outs = [layer.output for layer in d.layers
            if isinstance(layer, (keras.layers.LeakyReLU, keras.layers.ReLU))]
    images = d.inputs[0]
    return keras.Model(images, outs, name="discriminator_features")


def fixed_features(x):
    """A small fixed network (no weights): the image at 1/2 and 1/4 size and Sobel gradients at
    full, 1/2 and 1/4 size. Cheap structure-aware features when the discriminator is not used."""
    outs = []
    for level in range(3):
        if level:
            x = tf.nn.avg_pool2d(x, 2, 2, "VALID")
            outs.append(x)
        outs.append(tf.image.sobel_edges(x))
    return outs


def features_for(run, features: str):
    """``features`` ("discriminator", "fixed" or "none") as a function images -> list of
    feature tensors, or None for "none" (the discriminator falls back to the fixed network when
    the checkpoint holds none)."""
    if features not in FEATURES:
        raise FacelibError(f"features={features!r}: use one of {', '.join(FEATURES)}")
    if features == "none":
        return None
    if features == "discriminator":
        model = discriminator_features(run)
        if model is not None:
            return lambda x: model(x, training=False)
    return fixed_features


# ---------------------------------------------------------------------------------------------
# The encoder (optional initialiser)


def _encoder_dir(run) -> Path:
    return Path(run.path) / "encoder"


def build_encoder(resolution: int, latent_dim: int, width: int = 32):
    """Images (R, R, 3) in [-1, 1] -> z: stride-2 convolutions down to 4x4, then a Dense."""
    x = keras.Input((resolution, resolution, 3), name="images")
    h, w = x, width
    for i in range(int(np.log2(resolution // 4))):
        h = layers.Conv2D(w, 4, strides=2, padding="same", name=f"enc{i}")(h)
        h = layers.LeakyReLU(0.2)(h)
        w = min(w * 2, 8 * width)
    h = layers.Flatten()(h)
    z = layers.Dense(latent_dim, name="z")(h)
    return keras.Model(x, z, name="encoder")


def train_encoder(run, steps: int = 1000, batch_size: int = 64, *, width: int = 32,
                  lr: float = 1e-3, seed: int = 0, save: bool = True, verbose: int = 0):
    """Train an encoder images -> z on freshly generated pairs (z, G(z)) (conditional runs: the
    attributes come from the data's joint distribution) with a squared error on z; saved to
    ``RUN/encoder/`` (``load_encoder``) and returned. It regresses E[z | image], a starting point
    for ``invert``, not a replacement for it."""
    if steps < 1 or batch_size < 1:
        raise FacelibError(f"train_encoder: steps={steps} and batch_size={batch_size} must be >= 1")
    keras.utils.set_random_seed(seed)
    encoder = build_encoder(run.resolution, run.latent_dim, width)
    optimizer = keras.optimizers.Adam(lr)
    gen = run.generator
    y_pool = (tf.constant(run.sample_attributes(max(4096, batch_size), seed=seed))
              if run.conditional else None)

    @tf.function(autograph=False)  # plain TF ops: nothing for AutoGraph to convert
    def train_step(step):
        z = tf.random.stateless_normal((batch_size, run.latent_dim), seed=tf.stack([seed, step]))
        if y_pool is None:
            x = gen(z, training=False)
        else:
            pick = tf.random.stateless_uniform((batch_size,), tf.stack([seed + 1, step]), 0,
                                               tf.shape(y_pool)[0], dtype=tf.int32)
            x = gen([z, tf.gather(y_pool, pick)], training=False)
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(encoder(x, training=True) - z))
        grads = tape.gradient(loss, encoder.trainable_variables)
        optimizer.apply_gradients(zip(grads, encoder.trainable_variables))
        return loss

    losses = []
    for step in range(int(steps)):
        losses.append(float(train_step(tf.constant(step, tf.int32))))
        if verbose and (step + 1) % max(1, steps // 10) == 0:
            print(f"encoder step {step + 1}/{steps}: z error {np.mean(losses[-50:]):.4f}")
    encoder.facelib_info = {"width": width, "steps": int(steps), "batch_size": batch_size,
                            "run_step": int(getattr(run, "step", -1)),
                            "final_loss": float(np.mean(losses[-max(1, min(50, steps)):]))}
    if save:
        folder = _encoder_dir(run)
        folder.mkdir(parents=True, exist_ok=True)
        encoder.save_weights(folder / "encoder.weights.h5")
        info = {**encoder.facelib_info, "resolution": run.resolution, "latent_dim": run.latent_dim}
        (folder / "encoder.json").write_text(json.dumps(info, indent=2) + "\n")
    return encoder


def load_encoder(run):
    """The run's saved encoder (``train_encoder``), or None when there is none."""
    folder = _encoder_dir(run)
    if not (folder / "encoder.json").exists() or not (folder / "encoder.weights.h5").exists():
        return None
    info = json.loads((folder / "encoder.json").read_text())
    if info.get("latent_dim") != run.latent_dim or info.get("resolution") != run.resolution:
        raise FacelibError(f"{folder} holds an encoder for another model ({info}); retrain it "
                           "with facelib.latent.train_encoder(run)")
    encoder = build_encoder(run.resolution, run.latent_dim, info.get("width", 32))
    encoder.load_weights(folder / "encoder.weights.h5")
    encoder.facelib_info = info
    return encoder


def encode(encoder, images, batch_size: int = 256) -> np.ndarray:
    x = _as_float_images(images, int(encoder.inputs[0].shape[1]))
    return np.concatenate([np.asarray(encoder(x[i:i + batch_size], training=False))
                           for i in range(0, len(x), batch_size)]).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Inversion


@dataclass
class InversionResult:
    """Latents found for each target and how well they reproduce it."""

    z: np.ndarray                 # (N, latent_dim) float32
    attrs: np.ndarray | None      # (N, 40) 0/1 for conditional runs
    targets: np.ndarray           # uint8 (N, R, R, 3)
    reconstructions: np.ndarray   # uint8 (N, R, R, 3)
    initial_loss: np.ndarray      # (N,) loss at the initial z
    final_loss: np.ndarray        # (N,) loss at the returned z (the best seen)
    history: list[float] = field(default_factory=list)  # mean loss per step
    mse: np.ndarray | None = None   # (N,) on [0, 1] pixels
    psnr: np.ndarray | None = None  # (N,) dB
    init: str = ""

    def select(self, index) -> "InversionResult":
        """The result for some faces only (``index``: a list of positions, a slice or a
        boolean mask), e.g. ``r.select([i])`` to tune a generator on one photo."""
        def pick(a):
            return None if a is None else np.asarray(a)[index]

        return InversionResult(pick(self.z), pick(self.attrs), pick(self.targets),
                               pick(self.reconstructions), pick(self.initial_loss),
                               pick(self.final_loss), list(self.history), pick(self.mse),
                               pick(self.psnr), self.init)

    def summary(self) -> dict:
        return {"n": int(len(self.z)), "init": self.init, "steps": len(self.history),
                "mse": float(np.mean(self.mse)), "psnr_db": float(np.mean(self.psnr)),
                "initial_loss": float(np.mean(self.initial_loss)),
                "final_loss": float(np.mean(self.final_loss))}


def _as_float_images(images, resolution: int) -> np.ndarray:
    x = np.asarray(images)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[-1] != 3 or x.shape[1] != x.shape[2]:
        raise FacelibError(f"images must be square RGB (N, R, R, 3) (or one HxWx3 image); got "
                           f"{x.shape}. Use facelib.latent.load_face for photos")
    if x.dtype == np.uint8:
        return to_float(resize_batch(x, resolution))
    x = np.asarray(x, np.float32)
    if x.min() < -1.001 or x.max() > 1.001:
        raise FacelibError("float images must be in [-1, 1]; pass uint8 for 0-255 images")
    if x.shape[1] != resolution:
        x = to_float(resize_batch(to_uint8(x), resolution))
    return x


def attributes_from_scorer(scorer, images) -> np.ndarray:
    """0/1 attribute rows for images from a scorer's probabilities (threshold 0.5)."""
    p = score_images(scorer, images)
    if p.shape[1] != 40:
        raise FacelibError(f"the scorer gives {p.shape[1]} columns; conditional runs need the "
                           "40 CelebA attributes")
    return (p >= 0.5).astype(np.float32)


def _inversion_attrs(run, attrs, n: int, seed: int, scorer, x) -> np.ndarray | None:
    if run.conditional and attrs is None and scorer is not None:
        return attributes_from_scorer(scorer, x)
    return latent_attributes(run, n, attrs, seed)


def target_features(x, feature_fn, feature_weight: float):
    """The targets' features and their mean energies (what ``image_error`` divides by), or
    two empty lists when the feature term is off."""
    if feature_fn is None or feature_weight <= 0:
        return [], []
    targets = [tf.convert_to_tensor(np.asarray(f)) for f in feature_fn(x)]
    energy = [tf.reduce_mean(tf.square(t), axis=list(range(1, t.shape.rank))) + 1e-6
              for t in targets]
    return targets, energy


def image_error(g, x, targets, energy, feature_fn, pixel: str, pixel_weight: float,
                feature_weight: float):
    """Per-image loss (TF) of images ``g`` against ``x`` (float, [-1, 1]): the pixel error plus
    the feature term against ``target_features``' output (skipped when that is empty)."""
    diff = g - x
    err = tf.abs(diff) if pixel == "l1" else tf.square(diff)
    loss = pixel_weight * tf.reduce_mean(err, axis=[1, 2, 3])
    if targets:
        terms = [tf.reduce_mean(tf.square(f - t), axis=list(range(1, t.shape.rank))) / e
                 for f, t, e in zip(feature_fn(g), targets, energy)]
        loss += feature_weight * tf.add_n(terms) / len(terms)
    return loss


def image_loss(x, feature_fn, pixel: str, pixel_weight: float, feature_weight: float):
    """A function g -> per-image loss (TF) against the fixed targets ``x``, their features
    computed once: ``invert``'s (g = G(z), z moving). ``PivotalTuner`` (G moving) calls
    ``image_error`` with targets that change from photo to photo."""
    x = tf.constant(x)
    targets, energy = target_features(x, feature_fn, feature_weight)
    return lambda g: image_error(g, x, targets, energy, feature_fn, pixel, pixel_weight,
                                 feature_weight)


def _make_loss(run, x, y, feature_fn, pixel: str, pixel_weight: float, feature_weight: float,
               norm_weight: float):
    """A function z -> per-image loss (TF): ``image_loss`` of G(z) plus the norm term."""
    gen = run.generator
    y = None if y is None else tf.constant(y, tf.float32)
    of_image = image_loss(x, feature_fn, pixel, pixel_weight, feature_weight)

    def per_image(z):
        loss = of_image(gen(z if y is None else [z, y], training=False))
        if norm_weight > 0:
            loss += norm_weight * tf.square(tf.reduce_mean(tf.square(z), axis=1) - 1.0)
        return loss

    return per_image


def invert(run, images, *, attrs=None, steps: int = 300, lr: float = 0.05, init="auto",
           encoder=None, pixel: str = "l2", pixel_weight: float = 1.0,
           feature_weight: float = 0.1, norm_weight: float = 0.01,
           features: str = "discriminator", n_candidates: int = 32, seed: int = 0,
           scorer=None, callback: Callable[[int, float], None] | None = None) -> InversionResult:
    """Invert face images (uint8 or float [-1, 1], (N, R, R, 3) or one image) into z.

    init: "auto" (the run's saved encoder if any, else "search"), "encoder", "search" (best of
    ``n_candidates`` random latents per image), "zeros", "random", or an (N, latent_dim) array.
    Conditional runs: ``attrs`` (dict, (40,) or (N, 40) 0/1) is held fixed; if None, a
    ``scorer``'s thresholded predictions are used when given, else rows drawn from the data.
    Returns the best latent seen per image (lowest loss), its reconstruction, MSE and PSNR.
    """
    if pixel not in ("l2", "l1"):
        raise FacelibError(f"pixel={pixel!r}: use 'l2' or 'l1'")
    if steps < 0:
        raise FacelibError(f"steps={steps}: use 0 or more optimisation steps")
    x = _as_float_images(images, run.resolution)
    n = len(x)
    y = _inversion_attrs(run, attrs, n, seed, scorer, x)
    features_of = features_for(run, features)
    per_image = _make_loss(run, x, y, features_of, pixel, pixel_weight, feature_weight,
                           norm_weight)
    per_image_fn = tf.function(per_image, autograph=False)

    # -- initial latents --
    label = init if isinstance(init, str) else "given"
    if isinstance(init, str):
        if init not in INITS:
            raise FacelibError(f"init={init!r}: use one of {', '.join(INITS)} or an array")
        if init in ("auto", "encoder"):
            encoder = encoder if encoder is not None else load_encoder(run)
            if encoder is None and init == "encoder":
                raise FacelibError(f"{run.path} has no encoder: train one with "
                                   "facelib.latent.train_encoder(run), or use init='search'")
            label = "encoder" if encoder is not None else "search"
        rng = np.random.default_rng(seed)
        if label == "encoder":
            z0 = encode(encoder, x)
        elif label == "zeros":
            z0 = np.zeros((n, run.latent_dim), np.float32)
        elif label == "random":
            z0 = rng.standard_normal((n, run.latent_dim)).astype(np.float32)
        else:  # search
            k = max(1, int(n_candidates))
            cands = rng.standard_normal((k, n, run.latent_dim)).astype(np.float32)
            losses = np.stack([np.asarray(per_image_fn(tf.constant(c))) for c in cands])
            z0 = cands[losses.argmin(axis=0), np.arange(n)]
    else:
        z0 = np.asarray(init, np.float32)
        if z0.shape != (n, run.latent_dim):
            raise FacelibError(f"init array must have shape {(n, run.latent_dim)}, got {z0.shape}")

    # -- Adam on z (written out: per-element, so every image is optimised independently) --
    z = tf.Variable(z0)
    m, v = tf.Variable(tf.zeros_like(z0)), tf.Variable(tf.zeros_like(z0))
    best_z = tf.Variable(z0)
    best = tf.Variable(per_image_fn(tf.constant(z0)))
    initial = best.numpy().copy()
    b1, b2, eps = 0.9, 0.999, 1e-8

    @tf.function(autograph=False)  # plain TF ops: nothing for AutoGraph to convert
    def step(t):
        with tf.GradientTape() as tape:
            loss = per_image(z)
            total = tf.reduce_sum(loss)
        g = tape.gradient(total, z)
        better = loss < best
        best_z.assign(tf.where(better[:, None], z, best_z))
        best.assign(tf.where(better, loss, best))
        m.assign(b1 * m + (1 - b1) * g)
        v.assign(b2 * v + (1 - b2) * tf.square(g))
        mhat = m / (1 - tf.pow(b1, t))
        vhat = v / (1 - tf.pow(b2, t))
        z.assign_sub(lr * mhat / (tf.sqrt(vhat) + eps))
        return tf.reduce_mean(loss)

    history = []
    for t in range(1, int(steps) + 1):
        history.append(float(step(tf.constant(float(t)))))
        if callback is not None:
            callback(t, history[-1])
    if steps:  # the last update's result has not been scored yet
        final = np.asarray(per_image_fn(z))
        keep = final < best.numpy()
        best_z.assign(tf.where(keep[:, None], z, best_z))
        best.assign(tf.where(keep, final, best))
    z_best = best_z.numpy()
    recon = to_uint8(run.synthesize(z_best, y))
    targets = to_uint8(x)
    mse, psnr = reconstruction_errors(targets, recon)
    return InversionResult(z_best, y, targets, recon, initial, best.numpy().copy(), history,
                           mse, psnr, label)


def invert_file(run, source, **kwargs) -> InversionResult:
    """Invert one photo (path, bytes or array): checked and cropped by ``load_face`` first."""
    return invert(run, load_face(source, run.resolution)[None], **kwargs)


def heldout_faces(data, n: int, split: str = "heldout", seed: int = 0
                  ) -> tuple[np.ndarray, np.ndarray]:
    """n faces (uint8) and their attributes from a prepared cache's non-training rows
    ("heldout" = valid + test, or "valid" / "test"), picked with ``seed``."""
    cache = FaceCache.open(data)
    if split == "heldout":
        idx = np.flatnonzero(cache.partition != 0)
    elif split in ("valid", "test"):
        idx = cache.indices(split)
    else:
        raise FacelibError(f"split={split!r}: held-out faces come from 'heldout', 'valid' or "
                           "'test' (never the training split)")
    if len(idx) == 0:
        raise FacelibError(f"{data} has no {split} rows; prepare it with a partition")
    pick = np.sort(np.random.default_rng(seed).choice(idx, size=min(n, len(idx)), replace=False))
    return np.asarray(cache.images[pick]), cache.attributes[pick].astype(np.float32)


def evaluate_inversion(run, data=None, n: int = 16, split: str = "heldout", seed: int = 0,
                       **kwargs) -> dict:
    """Invert ``n`` held-out real faces and report mean MSE / PSNR (plus the result).

    data: a prepared cache (default: the one the run trained on, else the bundled sample).
    Conditional runs use the faces' own CelebA labels as the fixed attributes.
    """
    if data is None:
        data = run.training_data()
        if data is None:
            data = sample_cache(run.resolution)
    faces, labels = heldout_faces(data, n, split, seed)
    if run.conditional and "attrs" not in kwargs and "scorer" not in kwargs:
        kwargs["attrs"] = labels
    result = invert(run, faces, seed=seed, **kwargs)
    return {**result.summary(), "data": str(data), "split": split,
            "psnr_std_db": float(np.std(result.psnr)), "result": result}
