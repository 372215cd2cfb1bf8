"""Linear-probe detectors: fixed features of a face, a logistic regression on top.

Why: a CNN trained on one generator's pixels learns that generator's blur, and unseen generators
pass as real. Ojha et al. (CVPR 2023, "Towards universal fake image detectors that generalize
across generative models") found that a *linear* classifier on the features of a network trained
on real images only generalises to generators it never saw, because it cannot fit the training
generators' idiosyncrasies. facelib ships one such network, the FID Inception (ImageNet), so the
``inception`` features are its 2048-d pool3 vector; ``spectrum`` is the azimuthal power spectrum
of ``facelib.detector.spectrum`` (Durall et al. 2020), where upsampling layers leave their traces.
Features of several kinds are concatenated.

Every face reaches the features by the detector's one input path (``detector_input``): the same
crop and resize for real and synthetic faces. Training faces get the CNNDetection augmentation
(blur, JPEG, flip; optionally a resolution history), one augmented copy per face, drawn from the
seed. Features go through the content-keyed feature cache, so refitting on other generator
subsets (leave-one-generator-out) reuses them.

The decision threshold is calibrated: the logistic intercept is shifted so that a chosen share of
held-out real faces (``real_accuracy``, default 0.97) score below 0.5, on faces the fit never saw
(the cache's valid split). A fixed false-positive rate on real faces is what users of a detector
need to trust a "synthetic" verdict; the AP does not depend on it.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from sklearn.linear_model import LogisticRegression

from facelib.atomic import replace_file
from facelib.detector.faces import augment_batch, detector_input
from facelib.detector.folder import PROBE_FILE, TRAIN_HINT, read_meta, write_meta
from facelib.detector.spectrum import SpectrumNetwork
from facelib.errors import FacelibError
from facelib.metrics.features import features_for

FEATURES = ("spectrum", "inception")
REAL_ACCURACY = 0.97


def feature_network(name: str, resolution: int):
    """The FeatureNetwork behind a feature name (``FEATURES``)."""
    if name == "spectrum":
        return SpectrumNetwork(resolution)
    if name == "inception":
        from facelib.metrics.registry import feature_network as standard

        return standard("standard", log=None,
                        if_missing="use a detector with features=('spectrum',)")
    raise FacelibError(f"unknown detector feature {name!r}: use one of {', '.join(FEATURES)}")


def check_features(features: Sequence[str]) -> tuple[str, ...]:
    features = tuple(features)
    bad = [f for f in features if f not in FEATURES]
    if not features or bad or len(set(features)) != len(features):
        raise FacelibError(f"detector features {','.join(features) or '(none)'}: use one or more "
                           f"of {', '.join(FEATURES)}, each once")
    return features


def _as_sets(images) -> list[np.ndarray]:
    """One array, or a list of arrays (each cached separately), -> list of arrays."""
    if isinstance(images, (list, tuple)):
        return [np.asarray(x) for x in images if len(x)]
    return [np.asarray(images)]


def face_features(images, features: Sequence[str], resolution: int, *, augment: bool = False,
                  augment_options: Mapping | None = None, seed=0,
                  cache_dir=None) -> np.ndarray:
    """float32 (N, D): the named features of faces (one array or a list of arrays), each set
    through ``detector_input`` and, with ``augment``, one augmented copy drawn from
    ``default_rng([*seed, crc32 of the set's pixels])``: keyed by content, not by position, so a
    set draws the same augmentation in whatever company it comes, and its features are found
    in the content-keyed cache (``cache_dir``: see ``facelib.metrics.features.features_for``;
    False: none)."""
    nets = [feature_network(f, resolution) for f in check_features(features)]
    seed = list(np.atleast_1d(seed).astype(int))
    out = []
    for x in _as_sets(images):
        x = detector_input(x, resolution)
        if augment:
            rng = np.random.default_rng([*seed, zlib.crc32(x.tobytes())])
            x = augment_batch(x, rng, **dict(augment_options or {}))
        out.append(np.concatenate([features_for(x, net, cache_dir=cache_dir) for net in nets],
                                  axis=1))
    if not out:
        raise FacelibError("no faces given: pass at least one face")
    return np.concatenate(out).astype(np.float32)


@dataclass
class RealFaceModel:
    """Where real faces lie in (standardised) feature space: their mean and top-k principal axes.

    Why: a linear probe only learns the direction from real faces to the fakes it saw; a
    generator that fails differently (noise, colour blotches) can fall on the real side of that
    line. Distance from the real faces flags anything unlike them, whatever made it. Two numbers
    per face: the log mean squared Mahalanobis distance within the top-k axes, and the log energy
    outside them relative to real faces'."""

    center: np.ndarray     # (D,)
    axes: np.ndarray       # (k, D), orthonormal rows
    variances: np.ndarray  # (k,)
    residual: float        # mean energy per dimension outside the axes, on the reference faces

    @classmethod
    def fit(cls, z: np.ndarray, k: int = 32) -> "RealFaceModel":
        z = np.asarray(z, np.float64)
        k = int(min(k, len(z) - 1, z.shape[1] - 1))
        if k < 1:
            raise FacelibError(f"{len(z)} reference real faces are too few to model; use more")
        center = z.mean(axis=0)
        _, sv, vt = np.linalg.svd(z - center, full_matrices=False)
        axes, variances = vt[:k], np.maximum(sv[:k] ** 2 / (len(z) - 1), 1e-12)
        model = cls(center, axes, variances, 1.0)
        d = z - center
        rest = d - (d @ axes.T) @ axes
        model.residual = float(max(np.mean(np.sum(rest ** 2, axis=1)) / (z.shape[1] - k), 1e-12))
        return model

    def distances(self, z: np.ndarray) -> np.ndarray:
        d = np.asarray(z, np.float64) - self.center
        c = d @ self.axes.T
        inside = np.mean(c ** 2 / self.variances, axis=1)
        rest = d - c @ self.axes
        outside = np.sum(rest ** 2, axis=1) / (d.shape[1] - len(self.axes)) / self.residual
        return np.log(np.stack([inside, outside], axis=1) + 1e-12)


@dataclass
class ProbeDetector:
    """Standardised features -> logistic regression -> probability that a face is synthetic."""

    features: tuple[str, ...]
    resolution: int
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    meta: dict = field(default_factory=dict)
    cache_dir: object = None  # where features of judged faces are cached (None: the default)
    # With a real-face model: the mean and standard deviation, on held-out real faces, of the
    # probe's logit and of the two distances; the score is then the largest of the three
    # standardised values (how far beyond real faces a face is, by either test), shifted by
    # ``intercept``.
    real_model: RealFaceModel | None = None
    real_stats: np.ndarray | None = None  # (2, 3): means, standard deviations

    def inputs(self, feats: np.ndarray) -> np.ndarray:
        """The logistic regression's inputs: the standardised features."""
        return (np.asarray(feats, np.float64) - self.mean) / self.scale

    def _scores(self, feats: np.ndarray, intercept: float) -> np.ndarray:
        z = self.inputs(feats)
        linear = z @ self.coef
        if self.real_model is None:
            return linear + intercept
        parts = np.column_stack([linear, self.real_model.distances(z)])
        return ((parts - self.real_stats[0]) / self.real_stats[1]).max(axis=1) + intercept

    def logits_from_features(self, feats: np.ndarray) -> np.ndarray:
        return self._scores(feats, self.intercept).astype(np.float32)

    def logits(self, images) -> np.ndarray:
        x = detector_input(images, self.resolution)
        if len(x) == 0:
            return np.zeros(0, np.float32)
        return self.logits_from_features(
            face_features(x, self.features, self.resolution, cache_dir=self.cache_dir))

    def predict_proba(self, images) -> np.ndarray:
        """float32 (N,): the probability that each face is synthetic; 0.5 is the calibrated
        threshold. Faces: uint8 or float [-1, 1] NHWC, any square size or CelebA portraits."""
        z = self.logits(images).astype(np.float64)
        return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)

    def save(self, path: str | Path) -> Path:
        """Write ``PATH/probe.npz`` (plain arrays, no pickle) and ``PATH/meta.json``."""
        path = Path(path)
        arrays = dict(mean=self.mean, scale=self.scale, coef=self.coef,
                      intercept=np.float64(self.intercept))
        if self.real_model is not None:
            m = self.real_model
            arrays.update(real_center=m.center, real_axes=m.axes, real_variances=m.variances,
                          real_residual=np.float64(m.residual), real_stats=self.real_stats)

        def write(tmp):
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)

        replace_file(path / PROBE_FILE, write)
        write_meta(path, {**self.meta, "kind": "probe", "features": list(self.features),
                          "resolution": self.resolution})
        return path

    @classmethod
    def load(cls, path: str | Path) -> "ProbeDetector":
        path = Path(path)
        meta = read_meta(path)
        try:
            with np.load(path / PROBE_FILE, allow_pickle=False) as f:
                arrays = {k: np.asarray(f[k], np.float64) for k in f.files}
            missing = [k for k in ("mean", "scale", "coef", "intercept") if k not in arrays]
            if missing:
                raise KeyError(f"no array {missing[0]!r}")
            features = check_features(meta["features"])
        except (OSError, ValueError, KeyError, TypeError, FacelibError) as e:
            raise FacelibError(f"{path / PROBE_FILE} is not a probe detector's weights "
                               f"({type(e).__name__}: {str(e).splitlines()[0][:100]}); train one "
                               f"again with {TRAIN_HINT}") from None
        real_model = None
        if "real_center" in arrays:
            real_model = RealFaceModel(arrays["real_center"], arrays["real_axes"],
                                       arrays["real_variances"], float(arrays["real_residual"]))
        dim = arrays["mean"].shape
        fits = arrays["scale"].shape == dim and len(dim) == 1 and arrays["coef"].shape == dim
        if real_model is not None:
            fits = fits and (real_model.center.shape == dim and real_model.axes.ndim == 2
                             and real_model.axes.shape[1] == dim[0]
                             and real_model.variances.shape == (len(real_model.axes),)
                             and arrays.get("real_stats", np.zeros(0)).shape == (2, 3))
        if not fits:
            raise FacelibError(f"{path / PROBE_FILE}: its arrays do not fit together; train the "
                               "detector again")
        return cls(features, meta["resolution"], arrays["mean"], arrays["scale"], arrays["coef"],
                   float(arrays["intercept"]), meta, real_model=real_model,
                   real_stats=arrays.get("real_stats"))


def fit_probe(real, fake, *, features: Sequence[str] = ("inception", "spectrum"),
              resolution: int = 64, valid_real=None, real_accuracy: float = REAL_ACCURACY,
              c: float = 0.05, augment: bool = True, augment_options: Mapping | None = None,
              distance: bool = False, k: int = 32, seed: int = 0,
              cache_dir=None) -> ProbeDetector:
    """Fit a probe: ``real`` (label 0) against ``fake`` (label 1), each one array of uint8 NHWC
    faces or a list of them (one per generator: each list item is cached on its own, so refits
    on other subsets reuse the features). Classes are weighted to count equally. ``c``: inverse
    L2 strength of the logistic regression. With ``valid_real`` (faces the fit never sees), the
    threshold is calibrated so that ``real_accuracy`` of them score below 0.5.

    ``distance``: also score how far a face lies from real faces (a ``RealFaceModel`` of the real
    training faces, top ``k`` axes). The probe's logit and the two distances are standardised on
    ``valid_real`` (required) and the score is the largest of the three: a face is synthetic when
    it lies beyond real faces by either test. Why not more regression inputs: a linear weight
    on a distance is outvoted by the linear term for faces far off in the "real" direction
    (noise looks sharper than any face), and those are exactly the generators to catch."""
    features = check_features(features)
    if not 0.5 <= real_accuracy < 1.0:
        raise FacelibError(f"real_accuracy={real_accuracy}: use a share in [0.5, 1)")
    if distance and valid_real is None:
        raise FacelibError("distance=True needs valid_real: held-out real faces to standardise "
                           "the distances on")
    xr = face_features(real, features, resolution, augment=augment,
                       augment_options=augment_options, seed=[seed, 0], cache_dir=cache_dir)
    xf = face_features(fake, features, resolution, augment=augment,
                       augment_options=augment_options, seed=[seed, 1], cache_dir=cache_dir)
    x = np.concatenate([xr, xf]).astype(np.float64)
    y = np.concatenate([np.zeros(len(xr)), np.ones(len(xf))])
    mean = x.mean(axis=0)
    scale = np.maximum(x.std(axis=0), 1e-6)
    det = ProbeDetector(features, int(resolution), mean, scale, np.zeros(0), 0.0,
                        cache_dir=cache_dir)
    clf = LogisticRegression(C=c, class_weight="balanced", max_iter=5000, random_state=seed)
    clf.fit(det.inputs(x), y)
    det.coef, det.intercept = clf.coef_[0].astype(np.float64), float(clf.intercept_[0])
    if valid_real is not None:
        xv = face_features(valid_real, features, resolution, cache_dir=cache_dir)
    if distance:
        det.real_model = RealFaceModel.fit(det.inputs(xr), k)
        zv = det.inputs(xv)
        parts = np.column_stack([zv @ det.coef, det.real_model.distances(zv)])
        det.real_stats = np.stack([parts.mean(axis=0), np.maximum(parts.std(axis=0), 1e-6)])
        det.intercept = 0.0
    calibration = None
    if valid_real is not None:
        z = det.logits_from_features(xv)
        shift = float(np.quantile(z.astype(np.float64), real_accuracy))
        det.intercept -= shift
        calibration = {"n_valid_real": int(len(z)), "real_accuracy": real_accuracy,
                       "intercept_shift": -shift}
    det.meta = {
        "format": 1, "kind": "probe", "features": list(features), "resolution": int(resolution),
        "c": c, "n_real": int(len(xr)), "n_fake": int(len(xf)), "seed": seed,
        "distance": {"k": len(det.real_model.axes), "n_reference": int(len(xr))}
        if distance else None,
        "augment": dict(augment_options or {}, cnndetection=True) if augment else None,
        "calibration": calibration,
        "train_accuracy": float(np.mean((det.logits_from_features(x) >= 0) == y)),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    return det


def train_probe(cache, runs, out_dir=None, *, features: Sequence[str] = ("inception", "spectrum"),
                resolution: int = 64, n_real: int | None = None, n_fake: int | None = None,
                n_val: int = 500, c: float = 0.05, augment: bool = True,
                augment_options: Mapping | None = None, real_accuracy: float = REAL_ACCURACY,
                distance: bool = False, seed: int = 0, cache_dir=None) -> ProbeDetector:
    """``fit_probe`` on a cache's train split (real) against ``runs``' faces (as many, split
    evenly over the runs, each run's faces cached on their own), calibrated on the valid split.
    Saved to ``out_dir`` when given."""
    from facelib.data.cache import FaceCache
    from facelib.detector.faces import generate_fakes, real_faces
    from facelib.run.interface import describe_run, open_run

    cache = FaceCache.open(cache)
    runs = [open_run(r) for r in runs]
    if not runs:
        raise FacelibError("no generator runs given: pass at least one run folder (--runs RUN)")
    real = real_faces(cache, "train", n_real, seed)
    n_fake = len(real) if n_fake is None else int(n_fake)
    counts = [n_fake // len(runs) + (i < n_fake % len(runs)) for i in range(len(runs))]
    # one array per run (each cached on its own), drawn as generate_fakes draws run i's share
    fakes = [generate_fakes([run], k, resolution, seed=seed + 7919 * i)
             for i, (run, k) in enumerate(zip(runs, counts)) if k]
    val_split = "valid" if len(cache.indices("valid")) else "test"
    valid = real_faces(cache, val_split, n_val, seed)
    det = fit_probe(real, fakes, features=features, resolution=resolution, valid_real=valid,
                    real_accuracy=real_accuracy, c=c, augment=augment,
                    augment_options=augment_options, distance=distance, seed=seed,
                    cache_dir=cache_dir)
    det.meta.update(runs=[describe_run(r) for r in runs],
                    real={"cache": str(cache.path), "split": "train", "n": len(real)},
                    validation={"split": val_split, "n_real": len(valid)})
    if out_dir is not None:
        det.save(out_dir)
    return det


__all__ = ["FEATURES", "ProbeDetector", "RealFaceModel", "face_features", "feature_network",
           "fit_probe", "train_probe"]
