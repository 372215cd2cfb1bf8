"""Real or synthetic? A small CNN that tells real faces from a facelib generator's faces.

Why a separate network: the GAN's discriminator is trained to be fooled, so it says little about
whether faces are distinguishable. This detector is trained afterwards, against frozen
generators, the way Wang et al. (CVPR 2020, "CNN-generated images are surprisingly easy to
spot... for now", CNNDetection) trained theirs: binary real/fake labels, random horizontal flips,
and the augmentation that made their detector generalise to unseen generators and survive
post-processing: with probability 0.5 a Gaussian blur with sigma ~ U[0, 3], then independently
with probability 0.5 a JPEG re-compression with quality ~ U{30..100} (their ``blur_jpg_prob0.5``
model). Augmentation runs with OpenCV on uint8 faces inside a tf.data pipeline, and every batch
is a pure function of (seed, epoch, batch), so training is reproducible.

Evaluation follows the same paper: accuracy at threshold 0.5 and average precision (fake is the
positive class) on held-out real faces against fakes from seen and unseen generators, the same
under JPEG / blur / resize perturbations, and AP against the training step of a generator.

    det = train_detector("cache32", ["runs/a"], out_dir="detectors/a")
    det.predict_proba(faces)            # float32 (N,): probability each face is synthetic
    evaluate(det, real_faces, fake_faces)
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import cv2
import keras
import numpy as np
import tensorflow as tf
from keras import layers
from sklearn.metrics import average_precision_score, log_loss

from facelib.data.cache import FaceCache
from facelib.errors import FacelibError
from facelib.images import align_face, read_image, resize_batch, to_float, to_uint8
from facelib.run.folder import RunFolder
from facelib.run.interface import describe_run, open_run

# The CNNDetection "Blur+JPEG(0.5)" recipe (Wang et al. 2020, train.py --blur_prob 0.5
# --blur_sig 0.0,3.0 --jpg_prob 0.5 --jpg_qual 30,100).
BLUR_PROB = 0.5
BLUR_SIGMA = (0.0, 3.0)
JPEG_PROB = 0.5
JPEG_QUALITY = (30, 100)

MODEL_FILE = "detector.keras"
META_FILE = "meta.json"
FAKE_SEED_OFFSET = 1_000_003  # evaluation fakes use latents disjoint from the training fakes'

# ---------------------------------------------------------------------------------------------
# Image operations (uint8 RGB HWC in, uint8 out)


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur with standard deviation ``sigma`` pixels (kernel size from sigma)."""
    image = np.ascontiguousarray(image)
    if sigma <= 1e-3:
        return image.copy()
    return cv2.GaussianBlur(image, (0, 0), sigmaX=float(sigma), sigmaY=float(sigma),
                            borderType=cv2.BORDER_REFLECT_101)


def jpeg_compress(image: np.ndarray, quality: int) -> np.ndarray:
    """Encode as JPEG at ``quality`` (1-100) with OpenCV and decode again."""
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(image[..., ::-1]),
                           [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
    if not ok:
        raise FacelibError(f"OpenCV could not JPEG-encode an image of shape {image.shape}")
    return np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])


def resize_down_up(image: np.ndarray, factor: float = 2.0) -> np.ndarray:
    """Shrink by ``factor`` (area averaging) and enlarge back (bilinear): loses fine detail the
    way re-uploaded thumbnails do."""
    h, w = image.shape[:2]
    small = cv2.resize(np.ascontiguousarray(image), (max(1, round(w / factor)),
                                                     max(1, round(h / factor))),
                       interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def augment_batch(images: np.ndarray, rng: np.random.Generator, *, blur_prob: float = BLUR_PROB,
                  blur_sigma: tuple[float, float] = BLUR_SIGMA, jpeg_prob: float = JPEG_PROB,
                  jpeg_quality: tuple[int, int] = JPEG_QUALITY, flip: bool = True) -> np.ndarray:
    """CNNDetection's training augmentation on uint8 NHWC faces, one independent draw per face:
    blur (prob ``blur_prob``, sigma ~ U[blur_sigma]), then JPEG (prob ``jpeg_prob``, quality
    uniform over the integers in ``jpeg_quality``), then a horizontal flip with probability 0.5.
    Deterministic given ``rng``'s state."""
    out = np.array(images, dtype=np.uint8, copy=True)
    n = len(out)
    do_blur = rng.random(n) < blur_prob
    sigmas = rng.uniform(blur_sigma[0], blur_sigma[1], n)
    do_jpeg = rng.random(n) < jpeg_prob
    qualities = rng.integers(jpeg_quality[0], jpeg_quality[1] + 1, n)
    flips = rng.random(n) < 0.5 if flip else np.zeros(n, bool)
    for i in range(n):
        if do_blur[i]:
            out[i] = gaussian_blur(out[i], sigmas[i])
        if do_jpeg[i]:
            out[i] = jpeg_compress(out[i], qualities[i])
        if flips[i]:
            out[i] = out[i, :, ::-1]
    return out


# The perturbations of the robustness report (applied to real and fake faces alike).
PERTURBATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "clean": lambda img: img,
    "jpeg90": lambda img: jpeg_compress(img, 90),
    "jpeg75": lambda img: jpeg_compress(img, 75),
    "jpeg50": lambda img: jpeg_compress(img, 50),
    "blur1": lambda img: gaussian_blur(img, 1.0),
    "blur2": lambda img: gaussian_blur(img, 2.0),
    "resize0.5": lambda img: resize_down_up(img, 2.0),
}


def perturb(images: np.ndarray, name: str) -> np.ndarray:
    """Apply one named perturbation (see ``PERTURBATIONS``) to every face of a uint8 batch."""
    if name not in PERTURBATIONS:
        raise FacelibError(f"unknown perturbation {name!r}: use one of {', '.join(PERTURBATIONS)}")
    fn = PERTURBATIONS[name]
    images = np.asarray(images, np.uint8)
    return np.stack([fn(img) for img in images]) if len(images) else images.copy()


def high_frequency_energy(images: np.ndarray) -> float:
    """Mean squared Laplacian of the grey image: how much fine detail a batch carries."""
    grey = np.asarray(images, np.float32).mean(axis=-1)
    return float(np.mean([np.mean(cv2.Laplacian(g, cv2.CV_32F) ** 2) for g in grey]))


# ---------------------------------------------------------------------------------------------
# Getting faces into the detector's input shape


def read_face(path: str | Path, resolution: int) -> np.ndarray:
    """Read one image file and align it with ``facelib.images.align_face`` (the rule ``edit``
    uses too); FacelibError if it cannot be used."""
    path = Path(path)
    if not path.is_file():
        raise FacelibError(f"{path}: no such file; pass image files (JPEG/PNG)")
    try:
        image = read_image(path)
    except ValueError:
        raise FacelibError(f"{path}: not a readable image; pass a JPEG or PNG file") from None
    return align_face(image, resolution, name=str(path))


def _as_uint8_batch(images, resolution: int) -> np.ndarray:
    """uint8 or float [-1, 1] NHWC faces of any size -> uint8 (N, R, R, 3) for the detector."""
    x = np.asarray(images)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[-1] != 3:
        raise FacelibError(f"expected faces as NHWC RGB arrays, got shape {x.shape}")
    if x.dtype != np.uint8:
        x = to_uint8(x)
    if x.shape[1:3] != (resolution, resolution):
        x = np.stack([align_face(img, resolution, name=f"face {i}") for i, img in enumerate(x)])
    return x


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
        x = _as_uint8_batch(images, self.resolution)
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
        path.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path, suffix=".keras")
        os.close(fd)
        self.model.save(tmp)
        os.replace(tmp, path / MODEL_FILE)
        meta = {**self.meta, "resolution": self.resolution}
        (path / META_FILE).write_text(json.dumps(meta, indent=1, default=str) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Detector":
        path = Path(path)
        if not (path / MODEL_FILE).is_file() or not (path / META_FILE).is_file():
            raise FacelibError(
                f"{path} is not a detector folder (needs {MODEL_FILE} and {META_FILE}); train one "
                f"with python -m facelib train-detector --data CACHE --runs RUN --out {path}")
        try:
            meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
            resolution = int(meta["resolution"])
        except (OSError, ValueError, KeyError, TypeError, RecursionError) as e:
            raise FacelibError(f"{path / META_FILE} is not a detector's meta.json ({type(e).__name__}"
                               f": {str(e).splitlines()[0][:100] if str(e) else ''}); restore it "
                               "or retrain the detector") from None
        try:
            # safe_mode=True (Keras' default, stated): a .keras file whose config holds Python
            # code (a Lambda layer's bytecode) is refused instead of run.
            model = keras.models.load_model(path / MODEL_FILE, compile=False, safe_mode=True)
        except Exception as e:  # noqa: BLE001 - Keras raises ValueError, OSError, zip errors
            raise FacelibError(f"{path / MODEL_FILE} could not be loaded ({type(e).__name__}: "
                               f"{str(e).splitlines()[0][:160] if str(e) else ''}); a damaged "
                               "file or one with code in it (refused): retrain the detector "
                               "with python -m facelib train-detector") from None
        return cls(model, resolution, meta)


def load_detector(path: str | Path) -> Detector:
    return Detector.load(path)


# ---------------------------------------------------------------------------------------------
# Faces from generators


def generate_fakes(runs: Sequence, n: int, resolution: int, seed: int = 0,
                   batch_size: int = 256) -> np.ndarray:
    """``n`` uint8 faces split evenly over ``runs`` (Run objects), resized to ``resolution``."""
    if not runs:
        raise FacelibError("no generator runs given: pass at least one run folder")
    counts = [n // len(runs) + (i < n % len(runs)) for i in range(len(runs))]
    out = []
    for i, (run, k) in enumerate(zip(runs, counts)):
        if k == 0:
            continue
        faces = run.generate(k, seed=seed + 7919 * i, batch_size=batch_size)
        out.append(resize_batch(faces, resolution))
    return np.concatenate(out)


def real_faces(cache, split: str = "train", n: int | None = None, seed: int = 0,
               resolution: int | None = None) -> np.ndarray:
    """Up to ``n`` real faces (a seeded random subset) of one split of a prepared cache."""
    cache = FaceCache.open(cache)
    rows = cache.indices(split)
    if len(rows) == 0:
        raise FacelibError(f"{cache.path} has no faces in its {split!r} split; prepare it again "
                           f"or use split='all'")
    if n is not None and n < len(rows):
        rows = np.sort(np.random.default_rng([seed, 99]).choice(rows, n, replace=False))
    faces = np.asarray(cache.images[rows])
    return faces if resolution is None else resize_batch(faces, resolution)


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
        return (x.astype(np.float32) / 127.5 - 1.0), labels[rows]

    def tf_batch(k):
        x, y = tf.numpy_function(make_batch, [k], [tf.float32, tf.float32])
        x.set_shape((batch_size, resolution, resolution, 3))
        y.set_shape((batch_size, 1))
        return x, y

    ds = tf.data.Dataset.range(steps * epochs)
    return ds.map(tf_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(2)


def average_precision(labels, scores) -> float:
    return float(average_precision_score(np.asarray(labels).reshape(-1),
                                         np.asarray(scores).reshape(-1)))


def train_detector(cache, runs: Iterable, out_dir: str | Path | None = None, *,
                   n_real: int | None = None, n_fake: int | None = None, epochs: int = 5,
                   batch_size: int = 64, width: int = 32, learning_rate: float = 5e-4,
                   augment: bool = True, augment_options: Mapping | None = None,
                   n_val: int = 500, resolution: int | None = None, seed: int = 0,
                   verbose: int = 0) -> Detector:
    """Train a detector on a cache's train split (real, label 0) and ``runs``' faces (label 1).

    ``runs``: Run objects, run folders or ``RUN@CHECKPOINT`` specs. Fakes are as many as the real
    faces unless ``n_fake`` says otherwise, split evenly over the runs. The cache's valid split
    against fresh fakes (other latents) picks the epoch with the best average precision, ties
    (AP often reaches 1.0) to the lower validation loss (CNNDetection also kept its best epoch).
    Saved to ``out_dir`` when given.
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
    images = np.concatenate([real, fake])
    labels = np.concatenate([np.zeros(len(real)), np.ones(len(fake))]).astype(np.float32)

    val_split = "valid" if len(cache.indices("valid")) else "test"
    val_real = real_faces(cache, val_split, n_val, seed, resolution)
    val_fake = generate_fakes(runs, len(val_real), resolution, seed=seed + FAKE_SEED_OFFSET)
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
        "format": 1,
        "resolution": resolution,
        "width": width,
        "runs": [describe_run(r) for r in runs],
        "real": {"cache": str(cache.path), "split": "train", "n": len(real)},
        "n_fake": len(fake),
        "validation": {"split": val_split, "n_real": len(val_real), "n_fake": len(val_fake)},
        "augment": ({"blur_prob": BLUR_PROB, "blur_sigma": list(BLUR_SIGMA), "jpeg_prob": JPEG_PROB,
                     "jpeg_quality": list(JPEG_QUALITY), "flip": True,
                     **{k: list(v) if isinstance(v, tuple) else v
                        for k, v in dict(augment_options or {}).items()}}
                    if augment else None),
        "epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate, "seed": seed,
        "best_epoch": best["epoch"], "history": history,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if out_dir is not None:
        detector.save(out_dir)
    return detector


# ---------------------------------------------------------------------------------------------
# Evaluation


def evaluate(detector: Detector, real, fake, threshold: float = 0.5) -> dict:
    """Accuracy (threshold 0.5; also per class) and average precision, fake = positive."""
    real = _as_uint8_batch(real, detector.resolution)
    fake = _as_uint8_batch(fake, detector.resolution)
    if len(real) == 0 or len(fake) == 0:
        raise FacelibError("evaluation needs at least one real and one fake face")
    p_real, p_fake = detector.predict_proba(real), detector.predict_proba(fake)
    labels = np.concatenate([np.zeros(len(real)), np.ones(len(fake))])
    scores = np.concatenate([p_real, p_fake])
    real_acc = float(np.mean(p_real < threshold))
    fake_acc = float(np.mean(p_fake >= threshold))
    return {"accuracy": float(np.mean((scores >= threshold) == labels)),
            "real_accuracy": real_acc, "fake_accuracy": fake_acc,
            "ap": average_precision(labels, scores),
            "n_real": int(len(real)), "n_fake": int(len(fake))}


def robustness(detector: Detector, real, fake, perturbations: Sequence[str] | None = None) -> dict:
    """``evaluate`` after each perturbation (applied to real and fake faces alike)."""
    names = list(perturbations or PERTURBATIONS)
    real = _as_uint8_batch(real, detector.resolution)
    fake = _as_uint8_batch(fake, detector.resolution)
    return {name: evaluate(detector, perturb(real, name), perturb(fake, name)) for name in names}


def ap_by_step(detector: Detector, run_dir: str | Path, real, n_fake: int | None = None,
               seed: int = FAKE_SEED_OFFSET) -> list[dict]:
    """Detector accuracy/AP against each kept checkpoint of one run: are later generators harder
    to spot? (Train with ``--set keep_checkpoints=N`` to keep enough of them.)"""
    checkpoints = RunFolder(run_dir).step_checkpoints()
    if not checkpoints:
        raise FacelibError(f"{run_dir} has no complete checkpoints; train it first")
    real = _as_uint8_batch(real, detector.resolution)
    n_fake = len(real) if n_fake is None else n_fake
    rows = []
    for ckpt in checkpoints:
        run = open_run(run_dir, checkpoint=str(ckpt))
        fake = generate_fakes([run], n_fake, detector.resolution, seed=seed)
        rows.append({"step": int(run.step), "checkpoint": ckpt.name,
                     **evaluate(detector, real, fake)})
    return rows


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


def plot_ap_by_step(by_run: Mapping[str, Sequence[Mapping]], ax=None):
    """Detector AP (and fake accuracy, dashed) against the generator's training step, one line
    per run (``{name: ap_by_step(...)}``). AP 0.5 would mean the fakes cannot be told apart."""
    import matplotlib.pyplot as plt  # heavy and only for this plot: detection needs no matplotlib

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.5))
    for i, (name, rows) in enumerate(by_run.items()):
        steps = [r["step"] for r in rows]
        line, = ax.plot(steps, [r["ap"] for r in rows], "o-", label=f"{name}: AP")
        ax.plot(steps, [r["fake_accuracy"] for r in rows], "s--", color=line.get_color(),
                alpha=0.6, label=f"{name}: fakes caught")
    ax.axhline(0.5, color="grey", lw=0.8, ls=":")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("generator training step")
    ax.set_ylabel("detector score")
    ax.set_title("are later checkpoints harder to spot?")
    ax.legend(fontsize=8)
    return ax


def format_table(rows: Mapping[str, Mapping] | Sequence[Mapping], columns: Sequence[str],
                 key: str = "") -> str:
    """A plain-text table (for reports and notebooks) of dict rows, floats to 3 decimals."""
    items = list(rows.items()) if isinstance(rows, Mapping) else [(None, r) for r in rows]
    header = ([key] if key else []) + list(columns)
    lines = []
    for name, row in items:
        cells = [str(name)] if key else []
        for c in columns:
            v = row.get(c, "")
            cells.append(f"{v:.3f}" if isinstance(v, float) else str(v))
        lines.append(cells)
    widths = [max(len(h), *(len(r[i]) for r in lines)) if lines else len(h)
              for i, h in enumerate(header)]
    fmt = lambda cells: "  ".join(c.rjust(w) for c, w in zip(cells, widths))  # noqa: E731
    return "\n".join([fmt(header), fmt(["-" * w for w in widths])] + [fmt(r) for r in lines])


def detection_report(detector: Detector, cache, seen_runs: Sequence = (),
                     unseen_runs: Sequence = (), n: int = 500, split: str = "test",
                     seed: int = FAKE_SEED_OFFSET) -> dict:
    """The numbers the issue asks for, in one dict: held-out real faces (``split`` of the cache)
    against fresh fakes of each seen and unseen run (``evaluate``), and the robustness table
    (``robustness``) against the seen runs' fakes and against the unseen runs' fakes."""
    real = real_faces(cache, split, n, seed=1, resolution=detector.resolution)
    report: dict = {"n_real": len(real), "split": split, "generators": {}, "robustness": {}}
    for kind, specs in (("seen", seen_runs), ("unseen", unseen_runs)):
        fakes = []
        for spec in specs:
            run = open_run(spec)
            fake = generate_fakes([run], len(real), detector.resolution, seed=seed)
            fakes.append(fake)
            name = f"{kind}: {Path(str(run.path)).name}@{run.step}"
            report["generators"][name] = {**evaluate(detector, real, fake), **describe_run(run),
                                          "seen": kind == "seen"}
        if fakes:
            # As many fakes as real faces, taken evenly from this group's runs.
            pool = np.concatenate(fakes)
            pick = np.sort(np.random.default_rng(seed).choice(len(pool), len(real), replace=False))
            report["robustness"][kind] = robustness(detector, real, pool[pick])
    return report


__all__ = [
    "BLUR_PROB", "BLUR_SIGMA", "JPEG_PROB", "JPEG_QUALITY", "PERTURBATIONS", "Detector",
    "ap_by_step", "augment_batch", "average_precision", "build_detector_model",
    "detectability_by_step", "detection_report", "evaluate", "format_table", "gaussian_blur",
    "generate_fakes", "high_frequency_energy", "jpeg_compress",
    "load_detector", "make_training_dataset", "perturb", "plot_ap_by_step",
    "read_face", "real_faces", "resize_down_up", "robustness", "train_detector",
]
