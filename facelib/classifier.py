"""The CelebA attribute classifier: a measuring stick for generated faces.

Mode coverage (do generated faces have real attribute frequencies?), attribute control (does
``Smiling=1`` give smiles?) and synthetic-data usefulness (train on synthetic, test on real) all
need labels for images that have none. This module trains a compact CNN on real CelebA faces to
predict the 40 binary attributes, and reports how good it is on held-out real faces, per
attribute, next to the majority-class baseline (many CelebA attributes are so rare that always
answering "no" is 95% accurate; only accuracy above that, and AUC above 0.5, is information).

Files of a saved classifier (a folder)::

    classifier.keras   the Keras model: float [-1, 1] NHWC at `resolution` -> 40 logits
    meta.json          resolution, attribute names, training-label rates, training settings
    report.json        per-attribute accuracy / AUC / majority baseline on held-out real faces
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import layers
from sklearn.metrics import roc_auc_score

from facelib.data.cache import FaceCache
from facelib.data.celeba import ATTRIBUTE_NAMES
from facelib.atomic import replace_file, write_json
from facelib.errors import FacelibError
from facelib.images import resize_batch, to_float, to_uint8
from facelib.run.pretrained import is_pretrained, pretrained_path

FORMAT = "facelib-attribute-classifier-v1"
MODEL_FILE = "classifier.keras"
META_FILE = "meta.json"
REPORT_FILE = "report.json"
TRAIN_HINT = "train one with `python -m facelib train-classifier --data CACHE --out DIR`"


# --------------------------------------------------------------------------------------------
# Input checks and conversion: everything becomes float32 [-1, 1] at the classifier resolution.
# --------------------------------------------------------------------------------------------

def _check_images(images, what: str = "images") -> np.ndarray:
    x = images.numpy() if hasattr(images, "numpy") else images
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        x = np.asarray(x)
    if x.ndim == 3 and x.shape[-1] == 3:
        raise FacelibError(f"{what}: got one image of shape {tuple(x.shape)}; pass a batch "
                           "(N, H, W, 3), e.g. image[None]")
    if x.ndim != 4 or x.shape[-1] != 3:
        raise FacelibError(f"{what} must be RGB images (N, H, W, 3), got shape {tuple(x.shape)}; "
                           "use channels-last layout and np.repeat(x, 3, -1) for grayscale")
    if x.dtype != np.uint8 and not np.issubdtype(x.dtype, np.floating):
        raise FacelibError(f"{what} must be uint8 (0..255) or float in [-1, 1], got dtype "
                           f"{x.dtype}; cast 0..255 data with .astype(np.uint8)")
    return x


def _check_attrs(attrs, n: int, num_attributes: int | None, what: str = "attributes") -> np.ndarray:
    a = np.asarray(attrs)
    if a.ndim != 2:
        raise FacelibError(f"{what} must be a 2-D (N, attributes) array of 0/1, got shape "
                           f"{a.shape}")
    if a.shape[0] != n:
        raise FacelibError(f"{what} has {a.shape[0]} rows but there are {n} images; pass one "
                           "label row per image")
    if num_attributes is not None and a.shape[1] != num_attributes:
        raise FacelibError(f"{what} has {a.shape[1]} columns, the classifier predicts "
                           f"{num_attributes} attributes; pass all of them in the official order")
    if not np.isin(a, (0, 1)).all():
        raise FacelibError(f"{what} must hold only 0 and 1; convert CelebA's -1/1 labels with "
                           "(a + 1) // 2")
    return a.astype(np.float32)


def _check_float_range(x: np.ndarray) -> None:
    lo, hi = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise FacelibError("images contain NaN or inf; check the generator output")
    if lo < -1.01 or hi > 1.01:
        raise FacelibError(f"float images must be in [-1, 1] (facelib's convention), got "
                           f"[{lo:.3g}, {hi:.3g}]; pass uint8 for 0..255 data")


def _to_model_input(batch: np.ndarray, resolution: int) -> np.ndarray:
    """A batch (uint8 or float [-1, 1], any size) -> float32 [-1, 1] at `resolution`.

    Resizing goes through uint8 with the same routine that prepares caches (centre square,
    area averaging when shrinking), so a face fed at another size meets the classifier the way
    its training faces did.
    """
    x = np.asarray(batch)
    if np.issubdtype(x.dtype, np.floating):
        _check_float_range(x)
        if x.shape[1:3] == (resolution, resolution):
            return x.astype(np.float32)
        x = to_uint8(x)
    x = resize_batch(x, resolution)
    return to_float(x)


# --------------------------------------------------------------------------------------------
# The network.
# --------------------------------------------------------------------------------------------

def build_classifier_model(resolution: int, width: int = 32, num_attributes: int = 40,
                           dropout: float = 0.2, seed: int = 0):
    """Compact CNN: [3x3 conv, BN, ReLU, 2x2 max-pool] down to 4x4, one more conv, global
    average pool, Dense logits. ~70 M multiply-adds per 64 px face at width 32."""
    if resolution < 8 or resolution & (resolution - 1):
        raise FacelibError(f"classifier resolution must be a power of two >= 8 (e.g. 32, 64, 128),"
                           f" got {resolution}")
    if width < 1:
        raise FacelibError(f"classifier width must be >= 1, got {width}")
    init = keras.initializers.HeNormal(seed=seed)
    inputs = keras.Input((resolution, resolution, 3), name="images")
    x = layers.RandomFlip("horizontal", seed=seed, name="flip")(inputs)  # training only
    w = width
    for i in range(int(math.log2(resolution // 4))):
        x = layers.Conv2D(w, 3, padding="same", use_bias=False, kernel_initializer=init,
                          name=f"conv{i}")(x)
        x = layers.BatchNormalization(name=f"bn{i}")(x)
        x = layers.ReLU(name=f"relu{i}")(x)
        x = layers.MaxPooling2D(2, name=f"pool{i}")(x)
        w = min(w * 2, width * 8)
    x = layers.Conv2D(w, 3, padding="same", use_bias=False, kernel_initializer=init,
                      name="conv_top")(x)
    x = layers.BatchNormalization(name="bn_top")(x)
    x = layers.ReLU(name="relu_top")(x)
    x = layers.GlobalAveragePooling2D(name="pool_top")(x)
    x = layers.Dropout(dropout, seed=seed, name="dropout")(x)
    logits = layers.Dense(num_attributes, kernel_initializer=keras.initializers.GlorotUniform(seed),
                          name="logits")(x)
    return keras.Model(inputs, logits, name="attribute_classifier")


# --------------------------------------------------------------------------------------------
# Scoring.
# --------------------------------------------------------------------------------------------

def score_predictions(probs: np.ndarray, attrs: np.ndarray, names, threshold: float = 0.5,
                      train_positive_rate=None) -> dict:
    """Per-attribute accuracy, ROC AUC and the majority-class baseline, and their means.

    The baseline always answers the attribute's majority class in the training labels (or in
    `attrs` when those rates are unknown). AUC is undefined when only one class is present;
    it is then None with the reason, and left out of the mean.
    """
    n = int(attrs.shape[0])
    if n == 0:
        raise FacelibError("no images to evaluate on; pass at least one labelled face")
    rates = attrs.mean(axis=0) if train_positive_rate is None else np.asarray(train_positive_rate)
    per = {}
    for j, name in enumerate(names):
        y = attrs[:, j].astype(np.int64)
        p = probs[:, j]
        majority = int(rates[j] >= 0.5)
        entry = {
            "accuracy": float(np.mean((p >= threshold).astype(np.int64) == y)),
            "majority_class": majority,
            "majority_accuracy": float(np.mean(y == majority)),
            "positive_rate": float(y.mean()),
            "predicted_rate": float(np.mean(p >= threshold)),
        }
        if y.min() == y.max():
            entry["auc"] = None
            entry["auc_reason"] = (f"only one class present (all {int(y[0])}) in the {n} "
                                   "evaluation faces: ROC AUC is undefined")
        else:
            entry["auc"] = float(roc_auc_score(y, p))
        entry["above_baseline"] = entry["accuracy"] - entry["majority_accuracy"]
        per[name] = entry
    aucs = [e["auc"] for e in per.values() if e["auc"] is not None]
    return {
        "n": n,
        "threshold": threshold,
        "mean_accuracy": float(np.mean([e["accuracy"] for e in per.values()])),
        "mean_majority_accuracy": float(np.mean([e["majority_accuracy"] for e in per.values()])),
        "mean_auc": float(np.mean(aucs)) if aucs else None,
        "auc_defined": len(aucs),
        "baseline": ("majority class of the training labels" if train_positive_rate is not None
                     else "majority class of these labels"),
        "per_attribute": per,
    }


def format_report(report: dict, top: int = 8) -> str:
    """A short text summary: means vs the baseline, then the best and worst attributes by AUC."""
    lines = [
        f"held-out faces: {report['n']}",
        f"mean accuracy {report['mean_accuracy']:.3f} vs majority baseline "
        f"{report['mean_majority_accuracy']:.3f}",
        "mean AUC " + ("n/a" if report["mean_auc"] is None else f"{report['mean_auc']:.3f}")
        + f" (chance 0.5; defined for {report['auc_defined']} of {len(report['per_attribute'])})",
    ]
    ranked = sorted(((e["auc"], name) for name, e in report["per_attribute"].items()
                     if e["auc"] is not None), reverse=True)
    if ranked:
        def row(auc, name):
            e = report["per_attribute"][name]
            return (f"  {name:<20} AUC {auc:.3f}  acc {e['accuracy']:.3f}  "
                    f"(majority {e['majority_accuracy']:.3f}, positives {e['positive_rate']:.2f})")

        lines.append(f"best {min(top, len(ranked))} attributes by AUC:")
        lines += [row(a, nm) for a, nm in ranked[:top]]
        lines.append(f"worst {min(top, len(ranked))} attributes by AUC:")
        lines += [row(a, nm) for a, nm in ranked[::-1][:top]]
    undefined = [name for name, e in report["per_attribute"].items() if e["auc"] is None]
    if undefined:
        lines.append(f"AUC undefined (one class present): {', '.join(undefined)}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# The classifier object.
# --------------------------------------------------------------------------------------------

class AttributeClassifier:
    """A trained attribute CNN with its metadata; predicts P(attribute) for faces of any size."""

    def __init__(self, model, attribute_names, resolution: int, meta: dict | None = None,
                 report: dict | None = None):
        self.model = model
        self.attribute_names = list(attribute_names)
        self.resolution = int(resolution)
        self.meta = dict(meta or {})
        self.report = report
        self.history: dict | None = self.meta.get("history")
        self._fn = None
        if int(model.output.shape[-1]) != len(self.attribute_names):
            raise FacelibError(f"the model predicts {model.output.shape[-1]} attributes but "
                               f"{len(self.attribute_names)} names were given")

    @property
    def num_attributes(self) -> int:
        return len(self.attribute_names)

    def __repr__(self) -> str:
        auc = (self.report or {}).get("mean_auc")
        extra = f", held-out mean AUC {auc:.3f}" if auc is not None else ""
        return (f"AttributeClassifier({self.num_attributes} attributes, {self.resolution}px"
                f"{extra})")

    # -- prediction ----------------------------------------------------------------------
    def _forward(self, x: np.ndarray) -> np.ndarray:
        if self._fn is None:
            model = self.model

            def forward(t):
                return model(t, training=False)

            self._fn = tf.function(forward, reduce_retracing=True, autograph=False)
        return np.asarray(self._fn(x), dtype=np.float32)

    def predict_logits(self, images, batch_size: int = 256) -> np.ndarray:
        """Logits (N, 40) float32 for uint8 or float [-1, 1] NHWC images of any size."""
        x = _check_images(images)
        if batch_size < 1:
            raise FacelibError(f"batch_size must be >= 1, got {batch_size}")
        out = [self._forward(_to_model_input(x[i:i + batch_size], self.resolution))
               for i in range(0, int(x.shape[0]), batch_size)]
        if not out:
            return np.zeros((0, self.num_attributes), np.float32)
        return np.concatenate(out)

    def predict_proba(self, images, batch_size: int = 256) -> np.ndarray:
        """P(attribute present), float32 (N, 40), in the order of `attribute_names`."""
        logits = self.predict_logits(images, batch_size)
        return (1.0 / (1.0 + np.exp(-logits.astype(np.float64)))).astype(np.float32)

    def predict(self, images, threshold: float = 0.5, batch_size: int = 256) -> np.ndarray:
        """Hard 0/1 labels, int8 (N, 40)."""
        return (self.predict_proba(images, batch_size) >= threshold).astype(np.int8)

    def evaluate(self, images, attrs, threshold: float = 0.5, batch_size: int = 256) -> dict:
        """Per-attribute accuracy and ROC AUC on labelled faces, with the majority baseline."""
        x = _check_images(images)
        a = _check_attrs(attrs, int(x.shape[0]), self.num_attributes)
        probs = self.predict_proba(x, batch_size)
        return score_predictions(probs, a, self.attribute_names, threshold,
                                 self.meta.get("train_positive_rate"))

    # -- files ---------------------------------------------------------------------------
    def save(self, path) -> Path:
        """Write classifier.keras, meta.json (and report.json when there is a report) into the
        folder `path`; each file is replaced atomically.

        The model is saved without its optimizer: ``load`` never compiles it (a classifier is
        only ever used to predict), and Adam's two moments would double the file's size."""
        path = Path(path)
        if path.suffix == ".keras":
            raise FacelibError(f"save() takes a folder, got {path}; pass {path.with_suffix('')}")
        path.mkdir(parents=True, exist_ok=True)
        model = self.model
        if getattr(model, "optimizer", None) is not None:
            # the same layers, uncompiled (keras.models.clone_model would compile the copy)
            model = type(self.model).from_config(self.model.get_config())
            model.set_weights(self.model.get_weights())
        replace_file(path / MODEL_FILE, model.save)
        meta = {**self.meta, "format": FORMAT, "resolution": self.resolution,
                "attribute_names": self.attribute_names}
        write_json(path / META_FILE, meta, indent=2)
        if self.report is not None:
            write_json(path / REPORT_FILE, self.report, indent=2)
        return path

    @classmethod
    def load(cls, path) -> "AttributeClassifier":
        """Open a folder written by `save` (or its classifier.keras file), or
        ``pretrained:celeba32-attributes``, the classifier shipped with facelib."""
        if is_pretrained(str(path)):
            path = pretrained_path(str(path), kind="classifier")
        path = Path(path)
        if path.suffix == ".keras":
            path = path.parent
        if not path.exists():
            raise FacelibError(f"attribute classifier {path} does not exist; {TRAIN_HINT}")
        missing = [f for f in (MODEL_FILE, META_FILE) if not (path / f).is_file()]
        if missing:
            raise FacelibError(f"{path} is not a saved attribute classifier (missing "
                               f"{', '.join(missing)}); {TRAIN_HINT}")
        try:
            meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as e:  # JSON/UTF-8 errors are ValueErrors
            raise FacelibError(f"{path / META_FILE} is not valid JSON ({e}); retrain or "
                               "restore the file") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            meta = meta if isinstance(meta, dict) else {}
            raise FacelibError(f"{path / META_FILE} has format {meta.get('format')!r}, expected "
                               f"{FORMAT!r}; {TRAIN_HINT}")
        try:
            # safe_mode=True (Keras' default, stated): a .keras file whose config holds Python
            # code (a Lambda layer's bytecode) is refused instead of run.
            model = keras.models.load_model(path / MODEL_FILE, compile=False, safe_mode=True)
        except Exception as e:  # Keras raises ValueError, OSError or zipfile errors here
            raise FacelibError(f"{path / MODEL_FILE} could not be loaded ({type(e).__name__}: "
                               f"{str(e).splitlines()[0][:160] if str(e) else ''}); the file is "
                               f"damaged, or holds code (refused): retrain ({TRAIN_HINT})"
                               ) from None
        report = None
        if (path / REPORT_FILE).is_file():
            report = json.loads((path / REPORT_FILE).read_text())
        return cls(model, meta["attribute_names"], meta["resolution"], meta, report)


# --------------------------------------------------------------------------------------------
# Training.
# --------------------------------------------------------------------------------------------

def _prepare_split(images, attrs, resolution: int, num_attributes: int | None, what: str):
    x = _check_images(images, f"{what} images")
    a = _check_attrs(attrs, int(x.shape[0]), num_attributes, f"{what} attributes")
    if x.shape[0] == 0:
        raise FacelibError(f"no {what} images; pass at least one labelled face")
    if x.dtype != np.uint8:
        _check_float_range(x)
        x = to_uint8(x)
    return resize_batch(x, resolution), a


def fit_attribute_classifier(train_images, train_attrs, val_images, val_attrs, *, epochs: int = 10,
                             batch_size: int = 64, width: int = 32, seed: int = 0,
                             out_dir=None, verbose=0, resolution: int | None = None,
                             attribute_names=None, learning_rate: float = 2e-3,
                             callbacks=None) -> AttributeClassifier:
    """Train the CNN on labelled faces and score it on the validation faces.

    Arrays: uint8 (or float [-1, 1]) NHWC images and 0/1 (N, A) labels. `resolution` defaults to
    the training images' size. Adam with a cosine learning-rate decay, binary cross-entropy on
    logits, random horizontal flips (CelebA's attributes do not change under a mirror). Sets
    Keras' global seed from `seed` so a run is repeatable. With `out_dir` the result is saved.
    """
    if not isinstance(epochs, int) or epochs < 1:
        raise FacelibError(f"epochs must be a positive integer, got {epochs!r}")
    if batch_size < 1:
        raise FacelibError(f"batch_size must be >= 1, got {batch_size}")
    x0 = _check_images(train_images, "training images")
    resolution = int(resolution or x0.shape[1])
    x_train, a_train = _prepare_split(train_images, train_attrs, resolution, None, "training")
    num_attributes = a_train.shape[1]
    x_val, a_val = _prepare_split(val_images, val_attrs, resolution, num_attributes, "validation")
    if attribute_names is None:
        attribute_names = (list(ATTRIBUTE_NAMES) if num_attributes == len(ATTRIBUTE_NAMES)
                           else [f"attr_{i:02d}" for i in range(num_attributes)])
    attribute_names = list(attribute_names)
    if len(attribute_names) != num_attributes:
        raise FacelibError(f"{len(attribute_names)} attribute names for {num_attributes} label "
                           "columns; pass one name per column")

    keras.utils.set_random_seed(seed)
    model = build_classifier_model(resolution, width, num_attributes, seed=seed)
    batch_size = min(batch_size, len(x_train))
    steps = max(1, len(x_train) // batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, epochs * steps, alpha=0.05)
    model.compile(optimizer=keras.optimizers.Adam(schedule),
                  loss=keras.losses.BinaryCrossentropy(from_logits=True),
                  metrics=[keras.metrics.BinaryAccuracy(threshold=0.0, name="accuracy")])

    def to_float(x, a):
        return tf.cast(x, tf.float32) / 127.5 - 1.0, a

    train_ds = (tf.data.Dataset.from_tensor_slices((x_train, a_train))
                .shuffle(len(x_train), seed=seed, reshuffle_each_iteration=True)
                .batch(batch_size, drop_remainder=True).map(to_float).prefetch(2))
    val_ds = (tf.data.Dataset.from_tensor_slices((x_val, a_val))
              .batch(256).map(to_float).prefetch(2))
    t0 = time.perf_counter()
    history = model.fit(train_ds, validation_data=val_ds, epochs=epochs, verbose=verbose,
                        shuffle=False, callbacks=list(callbacks or []))
    seconds = time.perf_counter() - t0
    meta = {
        "width": width,
        "epochs": epochs,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "seed": seed,
        "n_train": int(len(x_train)),
        "n_val": int(len(x_val)),
        "train_positive_rate": a_train.mean(axis=0).astype(float).tolist(),
        "train_seconds": round(seconds, 2),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "history": {k: [float(v) for v in vals] for k, vals in history.history.items()},
    }
    clf = AttributeClassifier(model, attribute_names, resolution, meta)
    clf.report = clf.evaluate(x_val, a_val)
    if out_dir is not None:
        clf.save(out_dir)
    return clf


def train_attribute_classifier(cache_path, out_dir, *, epochs: int = 10, batch_size: int = 64,
                               width: int = 32, seed: int = 0, resolution: int | None = None,
                               limit: int | None = None, learning_rate: float = 2e-3,
                               verbose=1) -> AttributeClassifier:
    """Train on a prepared cache's train split, report on its valid split (test split when the
    cache has no valid faces), and save to `out_dir`.

    `limit` caps the training faces (a quick classifier); `resolution` defaults to the cache's.
    """
    cache = FaceCache.open(cache_path)
    train_idx = cache.indices("train")
    if limit is not None:
        if limit < 1:
            raise FacelibError(f"limit must be >= 1, got {limit}")
        train_idx = train_idx[:limit]
    split = "valid" if len(cache.indices("valid")) else "test"
    val_idx = cache.indices(split)
    if len(train_idx) == 0 or len(val_idx) == 0:
        raise FacelibError(f"{cache_path} needs faces in its train split and in its valid or test "
                           f"split (it has {len(train_idx)} train, {len(val_idx)} {split}); "
                           "prepare it again with the default partition")
    names = cache.attribute_names or None
    clf = fit_attribute_classifier(
        np.asarray(cache.images[train_idx]), cache.attributes[train_idx],
        np.asarray(cache.images[val_idx]), cache.attributes[val_idx],
        epochs=epochs, batch_size=batch_size, width=width, seed=seed, verbose=verbose,
        resolution=resolution or cache.resolution, attribute_names=names,
        learning_rate=learning_rate)
    clf.meta["data"] = str(Path(cache_path).resolve())
    clf.meta["report_split"] = split
    clf.report = {**clf.report, "split": split, "data": clf.meta["data"]}
    clf.save(out_dir)
    return clf


__all__ = ["AttributeClassifier", "build_classifier_model", "fit_attribute_classifier",
           "format_report", "score_predictions", "train_attribute_classifier"]
