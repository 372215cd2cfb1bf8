"""The CNN detector: a small convolutional network trained on pixels, real (0) vs synthetic (1).

Why a separate network: the GAN's discriminator is trained to be fooled, so it says little about
whether faces are distinguishable. This detector is trained afterwards, against frozen
generators, the way Wang et al. (CVPR 2020, "CNN-generated images are surprisingly easy to
spot... for now", CNNDetection) trained theirs: binary labels, the blur + JPEG augmentation of
``facelib.detector.faces``, the epoch with the best validation AP kept. Every batch is a pure
function of (seed, epoch, batch), so training is reproducible.

    det = train_detector("cache32", ["runs/a"], out_dir="detectors/a")
    det.predict_proba(faces)            # float32 (N,): probability each face is synthetic
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Mapping

import keras
import numpy as np
import tensorflow as tf
from keras import layers
from sklearn.metrics import log_loss

from facelib.data.cache import FaceCache
from facelib.detector.faces import (BLUR_PROB, BLUR_SIGMA, FAKE_SEED_OFFSET, JPEG_PROB,
                                    JPEG_QUALITY, augment_batch, detector_input, generate_fakes,
                                    real_faces)
from facelib.atomic import replace_file
from facelib.detector.folder import MODEL_FILE, TRAIN_HINT, read_meta, write_meta
from facelib.detector.report import average_precision, evaluate
from facelib.errors import FacelibError
from facelib.images import to_float
from facelib.run.folder import RunFolder
from facelib.run.interface import describe_run, open_run

# ---------------------------------------------------------------------------------------------
# The model


def build_detector_model(resolution: int, width: int = 32):
    """A plain CNN -> one logit (synthetic). The first layers keep full resolution so that the
    pixel-level traces of upsampling layers stay visible; no batch norm, so a short training
    gives the same function in training and inference."""
    if resolution < 8 or resolution & (resolution - 1):
        raise FacelibError(f"detector resolution {resolution}: use a power of two >= 8")
    if width < 1:
        raise FacelibError(f"detector width {width}: use a positive integer")
    inputs = keras.Input((resolution, resolution, 3), name="faces")
    x = inputs
    for i in range(int(math.log2(resolution)) - 2):  # down to 4x4
        w = width * 2 ** min(i, 3)
        x = layers.Conv2D(w, 3, padding="same", name=f"conv{i}a")(x)
        x = layers.LeakyReLU(0.2)(x)
        x = layers.Conv2D(w, 3, strides=2, padding="same", name=f"conv{i}b")(x)
        x = layers.LeakyReLU(0.2)(x)
    x = layers.GlobalAveragePooling2D()(x)
    logits = layers.Dense(1, name="logit")(x)
    return keras.Model(inputs, logits, name="real_or_synthetic")


@dataclass
class Detector:
    """A trained detector: the Keras model (faces in [-1, 1] -> logit) and its metadata."""

    model: object
    resolution: int
    meta: dict = field(default_factory=dict)

    def logits(self, images, batch_size: int = 256) -> np.ndarray:
        x = detector_input(images, self.resolution)
        out = [np.asarray(self.model(to_float(x[i:i + batch_size]), training=False)).reshape(-1)
               for i in range(0, len(x), batch_size)]
        return np.concatenate(out).astype(np.float32) if out else np.zeros(0, np.float32)

    def predict_proba(self, images, batch_size: int = 256) -> np.ndarray:
        """float32 (N,): the probability that each face is synthetic. Faces: uint8 or float
        [-1, 1] NHWC, any square size or CelebA portrait shape (``facelib.images.align_face``)."""
        z = self.logits(images, batch_size)
        return (1.0 / (1.0 + np.exp(-z.astype(np.float64)))).astype(np.float32)

    def save(self, path: str | Path) -> Path:
        """Write ``PATH/detector.keras`` and ``PATH/meta.json``."""
        path = Path(path)
        replace_file(path / MODEL_FILE, self.model.save)
        write_meta(path, {**self.meta, "kind": "cnn", "resolution": self.resolution})
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Detector":
        path = Path(path)
        if not (path / MODEL_FILE).is_file():
            raise FacelibError(f"{path} is not a detector folder (needs {MODEL_FILE} for a CNN); train "
                               f"one with {TRAIN_HINT}")
        meta = read_meta(path)
        try:
            # safe_mode=True (Keras' default, stated): a .keras file whose config holds Python
            # code (a Lambda layer's bytecode) is refused instead of run.
            model = keras.models.load_model(path / MODEL_FILE, compile=False, safe_mode=True)
        except Exception as e:  # noqa: BLE001 - Keras raises ValueError, OSError, zip errors
            raise FacelibError(f"{path / MODEL_FILE} could not be loaded ({type(e).__name__}: "
                               f"{str(e).splitlines()[0][:160] if str(e) else ''}); a damaged "
                               "file or one with code in it (refused): retrain the detector "
                               "with python -m facelib train-detector") from None
        return cls(model, meta["resolution"], meta)


# ---------------------------------------------------------------------------------------------
# Training


def make_training_dataset(images: np.ndarray, labels: np.ndarray, batch_size: int, seed: int = 0,
                          augment: bool = True, epochs: int = 1, **augment_options):
    """tf.data of (faces float32 [-1, 1], labels float32 (B, 1)) for ``epochs`` passes.

    Batch ``k`` of epoch ``e`` is the ``k``-th slice of the permutation ``default_rng([seed, e])``,
    augmented with ``default_rng([seed, e, k])``: the same on every machine, in any parallel order.
    """
    n = len(images)
    steps = n // batch_size
    if steps == 0:
        raise FacelibError(f"{n} training faces are fewer than one batch of {batch_size}; use a "
                           f"smaller batch size or more faces")
    labels = np.asarray(labels, np.float32).reshape(-1, 1)
    resolution = images.shape[1]

    def make_batch(k):
        k = int(k)
        epoch, b = divmod(k, steps)
        perm = np.random.default_rng([seed, epoch]).permutation(n)
        rows = np.sort(perm[b * batch_size:(b + 1) * batch_size])
        x = np.asarray(images[rows])
        if augment:
            x = augment_batch(x, np.random.default_rng([seed, epoch, b]), **augment_options)
        return to_float(x), labels[rows]

    def tf_batch(k):
        x, y = tf.numpy_function(make_batch, [k], [tf.float32, tf.float32])
        x.set_shape((batch_size, resolution, resolution, 3))
        y.set_shape((batch_size, 1))
        return x, y

    ds = tf.data.Dataset.range(steps * epochs)
    return ds.map(tf_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(2)


def fit_cnn(real, fake, val_real, val_fake, *, epochs: int = 5, batch_size: int = 64,
            width: int = 32, learning_rate: float = 5e-4, augment: bool = True,
            augment_options: Mapping | None = None, seed: int = 0,
            verbose: int = 0) -> Detector:
    """Train a CNN detector on face arrays: ``real`` (label 0) against ``fake`` (label 1), uint8
    NHWC at the detector's resolution (``detector_input``). ``val_real`` against ``val_fake``
    picks the epoch with the best average precision, ties (AP often reaches 1.0) to the lower
    validation loss (CNNDetection also kept its best epoch). ``meta`` holds the history."""
    if epochs < 1:
        raise FacelibError(f"epochs={epochs}: train for at least one epoch")
    real, fake = np.asarray(real, np.uint8), np.asarray(fake, np.uint8)
    resolution = int(real.shape[1])
    fake, val_real, val_fake = (detector_input(x, resolution) for x in (fake, val_real, val_fake))
    images = np.concatenate([real, fake])
    labels = np.concatenate([np.zeros(len(real)), np.ones(len(fake))]).astype(np.float32)
    val_x = np.concatenate([val_real, val_fake])
    val_y = np.concatenate([np.zeros(len(val_real)), np.ones(len(val_fake))])

    keras.utils.set_random_seed(seed)
    model = build_detector_model(resolution, width)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate, beta_1=0.9),
                  loss=keras.losses.BinaryCrossentropy(from_logits=True))
    detector = Detector(model, resolution)
    ds = make_training_dataset(images, labels, min(batch_size, len(images)), seed, augment, epochs,
                               **dict(augment_options or {}))
    steps = len(images) // min(batch_size, len(images))
    history: list[dict] = []
    best: dict = {"key": None, "weights": None, "epoch": 0}

    class _ValidationAP(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            scores = detector.predict_proba(val_x).astype(np.float64)
            val_loss = log_loss(val_y, scores, labels=[0, 1])
            row = {"epoch": epoch + 1, "loss": float((logs or {}).get("loss", float("nan"))),
                   "val_ap": average_precision(val_y, scores), "val_loss": float(val_loss),
                   "val_accuracy": float(np.mean((scores >= 0.5) == val_y))}
            history.append(row)
            if verbose:
                print(f"epoch {row['epoch']}: loss {row['loss']:.4f}  val AP {row['val_ap']:.4f}  "
                      f"val loss {row['val_loss']:.4f}  val accuracy {row['val_accuracy']:.4f}",
                      flush=True)
            # Best AP; AP often saturates at 1.0, so ties go to the lower validation loss.
            key = (round(row["val_ap"], 4), -row["val_loss"])
            if best["weights"] is None or key > best["key"]:
                best.update(key=key, weights=model.get_weights(), epoch=epoch + 1)

    model.fit(ds, epochs=epochs, steps_per_epoch=steps, callbacks=[_ValidationAP()],
              shuffle=False, verbose=verbose if verbose else 0)
    model.set_weights(best["weights"])
    detector.meta = {
        "format": 1, "kind": "cnn", "resolution": resolution, "width": width,
        "n_real": len(real), "n_fake": len(fake),
        "augment": ({"blur_prob": BLUR_PROB, "blur_sigma": list(BLUR_SIGMA), "jpeg_prob": JPEG_PROB,
                     "jpeg_quality": list(JPEG_QUALITY), "flip": True,
                     **{k: list(v) if isinstance(v, tuple) else v
                        for k, v in dict(augment_options or {}).items()}}
                    if augment else None),
        "epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate, "seed": seed,
        "best_epoch": best["epoch"], "history": history,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    return detector


def train_detector(cache, runs: Iterable, out_dir: str | Path | None = None, *,
                   n_real: int | None = None, n_fake: int | None = None, epochs: int = 5,
                   batch_size: int = 64, width: int = 32, learning_rate: float = 5e-4,
                   augment: bool = True, augment_options: Mapping | None = None,
                   n_val: int = 500, resolution: int | None = None, seed: int = 0,
                   verbose: int = 0) -> Detector:
    """Train a CNN detector on a cache's train split (real, label 0) and ``runs``' faces (label 1)
    with ``fit_cnn``.

    ``runs``: Run objects, run folders or ``RUN@CHECKPOINT`` specs. Fakes are as many as the real
    faces unless ``n_fake`` says otherwise, split evenly over the runs. The cache's valid split
    against fresh fakes (other latents) picks the epoch. Saved to ``out_dir`` when given.
    """
    cache = FaceCache.open(cache)
    resolution = int(resolution or cache.resolution)
    runs = [open_run(r) for r in runs]
    if not runs:
        raise FacelibError("no generator runs given: pass at least one run folder (--runs RUN)")
    if epochs < 1:
        raise FacelibError(f"epochs={epochs}: train for at least one epoch")
    real = real_faces(cache, "train", n_real, seed, resolution)
    n_fake = len(real) if n_fake is None else int(n_fake)
    fake = generate_fakes(runs, n_fake, resolution, seed=seed)
    val_split = "valid" if len(cache.indices("valid")) else "test"
    val_real = real_faces(cache, val_split, n_val, seed, resolution)
    val_fake = generate_fakes(runs, len(val_real), resolution, seed=seed + FAKE_SEED_OFFSET)
    detector = fit_cnn(real, fake, val_real, val_fake, epochs=epochs, batch_size=batch_size,
                       width=width, learning_rate=learning_rate, augment=augment,
                       augment_options=augment_options, seed=seed, verbose=verbose)
    detector.meta.update(
        runs=[describe_run(r) for r in runs],
        real={"cache": str(cache.path), "split": "train", "n": len(real)},
        validation={"split": val_split, "n_real": len(val_real), "n_fake": len(val_fake)})
    if out_dir is not None:
        detector.save(out_dir)
    return detector


def detectability_by_step(cache, run_dir: str | Path, *, n_real: int | None = 2000,
                          n_test: int = 500, epochs: int = 2, width: int = 16,
                          batch_size: int = 64, seed: int = 0, verbose: int = 0) -> list[dict]:
    """For each kept checkpoint, a fresh detector trained on *that* checkpoint's faces, tested on
    held-out real faces (test split) against fresh fakes of the same checkpoint.

    ``ap_by_step`` asks whether one fixed detector spots each checkpoint, which mixes "is this
    checkpoint easy to spot" with "does it resemble the generator the detector saw"; this asks
    only the first: how separable each checkpoint's faces are from real ones.
    """
    checkpoints = RunFolder(run_dir).step_checkpoints()
    if not checkpoints:
        raise FacelibError(f"{run_dir} has no complete checkpoints; train it first")
    rows = []
    for ckpt in checkpoints:
        run = open_run(run_dir, checkpoint=str(ckpt))
        det = train_detector(cache, [run], n_real=n_real, epochs=epochs, width=width,
                             batch_size=batch_size, seed=seed, verbose=verbose)
        real = real_faces(cache, "test", n_test, seed=1, resolution=det.resolution)
        fake = generate_fakes([run], len(real), det.resolution, seed=seed + FAKE_SEED_OFFSET)
        rows.append({"step": int(run.step), "checkpoint": ckpt.name,
                     **evaluate(det, real, fake)})
    return rows
