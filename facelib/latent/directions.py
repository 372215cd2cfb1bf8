"""Latent directions: supervised (InterFaceGAN) and unsupervised (GANSpace), saved in the run.

InterFaceGAN (Shen et al. 2020): sample latents, synthesize, score the faces with an attribute
classifier, label the top and bottom quantiles of the score as positive and negative, fit a linear
SVM in latent space; its unit normal is the editing direction. A "conditional" edit (add a smile,
keep the gender) projects the direction onto the orthogonal complement of the other directions, so
moving along it leaves the others' linear scores unchanged.

GANSpace (Haerkoenen et al. 2020): PCA of generator activations. A DCGAN has no mapping network,
so as the paper does for BigGAN, PCA runs on an early layer's activations and the components are
regressed back to z (least squares of z on the standardised PCA coordinates), giving unit
directions in z with the variance they explain. The "project" Dense layer is linear in z, so for
it the answer is known in closed form (the left singular vectors of its z-kernel,
``method="weights"``); the default layer is the ReLU after it, where PCA sees the nonlinearity.

A scorer is any callable ``images (float NHWC in [-1, 1]) -> (N, A) probabilities``, e.g.
``AttributeClassifier.predict_proba``; its ``attribute_names`` (or the classifier's) name the
columns. Directions live in ``RUN/directions/<set>.npz`` (names, unit vectors, JSON metadata).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import keras
import numpy as np
from sklearn.decomposition import PCA
from sklearn.svm import LinearSVC

from facelib.data.celeba import ATTRIBUTE_NAMES
from facelib.atomic import replace_file
from facelib.errors import FacelibError
from facelib.images import make_grid, to_uint8, write_image

Scorer = Callable[[np.ndarray], np.ndarray]
KINDS = ("attribute", "principal", "custom")


# ---------------------------------------------------------------------------------------------
# A named set of directions, saved as .npz


@dataclass
class DirectionSet:
    """Unit directions in z (rows of ``vectors``) with names and JSON-able metadata.

    ``meta["per_direction"][name]`` holds each direction's own numbers (SVM accuracy, explained
    variance, ...); the rest of ``meta`` describes how the set was made.
    """

    names: list[str]
    vectors: np.ndarray
    kind: str = "custom"
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.names = [str(n) for n in self.names]
        vectors = np.asarray(self.vectors, np.float64).reshape(len(self.names), -1)
        self.vectors = (np.stack([_unit(v, n) for v, n in zip(vectors, self.names)])
                        if len(vectors) else vectors.astype(np.float32))
        if len(set(self.names)) != len(self.names):
            raise FacelibError(f"direction names must be unique, got {self.names}")
        if self.kind not in KINDS:
            raise FacelibError(f"direction set kind {self.kind!r}: use one of {KINDS}")
        self.meta.setdefault("per_direction", {})

    @property
    def latent_dim(self) -> int:
        return int(self.vectors.shape[1])

    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, name: str) -> bool:
        return name in self.names

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self.names:
            raise FacelibError(f"no direction named {name!r}; this set has: "
                               f"{', '.join(self.names)}")
        return self.vectors[self.names.index(name)]

    def info(self, name: str) -> dict:
        return dict(self.meta["per_direction"].get(name, {}))

    def with_direction(self, name: str, vector, **info) -> "DirectionSet":
        """A copy with ``name`` added (or replaced), normalised to unit length."""
        v = _unit(vector, name)
        names, vectors = list(self.names), self.vectors.copy()
        if name in names:
            vectors[names.index(name)] = v
        else:
            names.append(name)
            vectors = np.concatenate([vectors, v[None]]) if len(vectors) else v[None]
        meta = json.loads(json.dumps(self.meta))
        meta["per_direction"][name] = _jsonable(info)
        return DirectionSet(names, vectors, self.kind, meta)

    def merge(self, other: "DirectionSet") -> "DirectionSet":
        """This set with ``other``'s directions added (``other`` wins on equal names)."""
        out = self
        for name in other.names:
            out = out.with_direction(name, other[name], **other.info(name))
        return out

    def save(self, path: str | Path) -> Path:
        """Write atomically (temp file + rename), like every other facelib artefact."""
        def write(tmp):
            with open(tmp, "wb") as f:
                np.savez(f, names=np.array(self.names, dtype=str), vectors=self.vectors,
                         kind=np.array(self.kind),
                         meta=np.array(json.dumps(_jsonable(self.meta))))

        return replace_file(path, write)

    @classmethod
    def load(cls, path: str | Path) -> "DirectionSet":
        path = Path(path)
        if not path.is_file():
            raise FacelibError(f"{path}: no such direction file; compute directions first "
                               "(facelib.latent.compute_attribute_directions / "
                               "principal_directions, or python -m facelib edit --classifier)")
        try:
            with np.load(path, allow_pickle=False) as f:
                return cls([str(n) for n in f["names"]], f["vectors"], str(f["kind"]),
                           json.loads(str(f["meta"])))
        except (KeyError, ValueError, OSError) as e:
            raise FacelibError(f"{path} is not a facelib direction file ({e}); "
                               "recompute it") from None


def _unit(vector, name: str = "direction") -> np.ndarray:
    v = np.asarray(vector, np.float64).reshape(-1)
    n = np.linalg.norm(v)
    if not np.isfinite(n) or n < 1e-8:
        raise FacelibError(f"{name}: a direction must be a finite, non-zero vector")
    return (v / n).astype(np.float32)


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, np.generic):
        return x.item()
    return x


# -- the run folder's directions ----------------------------------------------------------------

def directions_dir(run) -> Path:
    return Path(run.path) / "directions"


def save_directions(run, directions: DirectionSet, name: str, merge: bool = True) -> Path:
    """Write ``RUN/directions/<name>.npz``; with ``merge`` an existing set keeps its other
    directions (same-named ones are replaced)."""
    if directions.latent_dim != run.latent_dim:
        raise FacelibError(f"directions have {directions.latent_dim} dimensions but {run.path} "
                           f"has latent_dim {run.latent_dim}: they belong to another run")
    path = directions_dir(run) / f"{name}.npz"
    if merge and path.exists():
        directions = DirectionSet.load(path).merge(directions)
    return directions.save(path)


def load_directions(run, name: str) -> DirectionSet:
    path = directions_dir(run) / f"{name}.npz"
    if not path.exists():
        have = sorted(p.stem for p in directions_dir(run).glob("*.npz"))
        raise FacelibError(f"{path} not found; saved sets in this run: {have or 'none'}")
    return DirectionSet.load(path)


def available_directions(run) -> dict[str, str]:
    """Every saved direction name in the run -> the set (file stem) that holds it."""
    out: dict[str, str] = {}
    for path in sorted(directions_dir(run).glob("*.npz")):
        for name in DirectionSet.load(path).names:
            out.setdefault(name, path.stem)
    return out


def find_saved_direction(run, name: str) -> np.ndarray | None:
    """The unit vector of a saved direction by name, or None."""
    where = available_directions(run).get(name)
    return None if where is None else load_directions(run, where)[name]


# ---------------------------------------------------------------------------------------------
# Scoring


def scorer_names(scorer, n_columns: int) -> list[str]:
    """Column names of a scorer: its (or its bound object's) ``attribute_names``; the 40 CelebA
    names for 40 columns; else attr0, attr1, ..."""
    for obj in (scorer, getattr(scorer, "__self__", None)):
        names = getattr(obj, "attribute_names", None)
        if names is not None and len(names) == n_columns:
            return [str(n) for n in names]
    if n_columns == 40:
        return list(ATTRIBUTE_NAMES)
    return [f"attr{i}" for i in range(n_columns)]


def as_scorer(scorer) -> Scorer:
    """A classifier object (``predict_proba``) or a callable -> a callable scorer."""
    if hasattr(scorer, "predict_proba"):
        return scorer.predict_proba
    if callable(scorer):
        return scorer
    raise FacelibError("scorer must be a callable images -> (N, A) probabilities or an object "
                       "with predict_proba (facelib.classifier.AttributeClassifier)")


def score_images(scorer, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    fn = as_scorer(scorer)
    out = []
    for i in range(0, len(images), batch_size):
        s = np.asarray(fn(images[i:i + batch_size]), np.float32)
        if s.ndim == 1:
            s = s[:, None]
        if s.ndim != 2 or len(s) != len(images[i:i + batch_size]):
            raise FacelibError(f"the scorer returned shape {s.shape} for "
                               f"{len(images[i:i + batch_size])} images; expected (N, A)")
        out.append(s)
    return np.concatenate(out)


def latent_attributes(run, n: int, attrs=None, seed: int = 0) -> np.ndarray | None:
    """The attribute rows a conditional run is driven with while z varies (None if
    unconditional): drawn from the data's joint distribution (with ``attrs`` dict entries held),
    or a given (40,) / (n, 40) 0/1 array."""
    if not run.conditional:
        if attrs is not None:
            raise FacelibError(f"{run.path} is an unconditional run: attributes cannot be set")
        return None
    if attrs is None or isinstance(attrs, Mapping):
        return run.sample_attributes(n, dict(attrs) if attrs else None, seed=seed)
    arr = np.asarray(attrs, np.float32)
    return np.broadcast_to(arr, (n, arr.shape[-1])).astype(np.float32)


def synthesize_and_score(run, scorer, z: np.ndarray, attrs=None, batch_size: int = 256,
                         seed: int = 0) -> np.ndarray:
    """Scores (N, A) of the faces G(z[, attrs]), generated and scored in batches."""
    y = latent_attributes(run, len(z), attrs, seed)
    out = []
    for i in range(0, len(z), batch_size):
        images = run.synthesize(z[i:i + batch_size], None if y is None else y[i:i + batch_size])
        out.append(score_images(scorer, images, batch_size))
    return np.concatenate(out)


# ---------------------------------------------------------------------------------------------
# InterFaceGAN directions


def fit_direction(z: np.ndarray, score: np.ndarray, quantile: float = 0.25, C: float = 1.0,
                  val_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, dict]:
    """The unit normal of a linear SVM separating the top ``quantile`` of ``score`` from the
    bottom ``quantile`` (the ambiguous middle is left out), pointing to higher scores.

    Returns (direction, stats) with the SVM's accuracy on a held-out share of the labelled
    latents: near 0.5 means the attribute is not linearly readable from z.
    """
    z = np.asarray(z, np.float64)
    score = np.asarray(score, np.float64).reshape(-1)
    if not 0 < quantile <= 0.5:
        raise FacelibError(f"quantile={quantile}: use a value in (0, 0.5]")
    lo, hi = np.quantile(score, [quantile, 1 - quantile])
    pos, neg = np.flatnonzero(score >= hi), np.flatnonzero(score <= lo)
    if hi <= lo:  # ties: the score hardly varies
        pos, neg = np.flatnonzero(score > lo), np.flatnonzero(score <= lo)
    if min(len(pos), len(neg)) < 4:
        raise FacelibError(f"the score barely varies over {len(z)} latents ({len(pos)} high, "
                           f"{len(neg)} low): sample more latents or check the scorer")
    idx = np.concatenate([pos, neg])
    labels = np.concatenate([np.ones(len(pos)), np.zeros(len(neg))])
    order = np.random.default_rng(seed).permutation(len(idx))
    idx, labels = idx[order], labels[order]
    n_val = int(round(val_fraction * len(idx)))
    svm = LinearSVC(C=C, max_iter=20000, random_state=seed)
    svm.fit(z[idx[n_val:]], labels[n_val:])
    accuracy = float(svm.score(z[idx[:n_val]], labels[:n_val])) if n_val else float("nan")
    direction = _unit(svm.coef_[0], "SVM normal")
    return direction, {"accuracy": accuracy, "n_positive": int(len(pos)),
                       "n_negative": int(len(neg)), "low_threshold": float(lo),
                       "high_threshold": float(hi)}


def compute_attribute_directions(run, scorer, attributes: Sequence[str] | None = None, *,
                                 n: int = 2000, seed: int = 0, quantile: float = 0.25,
                                 C: float = 1.0, attrs=None, batch_size: int = 256,
                                 names: Sequence[str] | None = None) -> DirectionSet:
    """InterFaceGAN directions for ``attributes`` (default: every scorer column) from ``n``
    sampled latents. Conditional runs: attributes are drawn from the data's joint distribution
    per latent (or held per ``attrs``), so the SVM finds what z adds on top of them."""
    z = run.sample_latents(n, seed=seed)
    scores = synthesize_and_score(run, scorer, z, attrs, batch_size, seed)
    names = list(names) if names is not None else scorer_names(scorer, scores.shape[1])
    if len(names) != scores.shape[1]:
        raise FacelibError(f"{len(names)} names for a scorer with {scores.shape[1]} columns")
    wanted = list(attributes) if attributes is not None else names
    unknown = [a for a in wanted if a not in names]
    if unknown:
        raise FacelibError(f"unknown attribute(s) {unknown}; the scorer's are: {', '.join(names)}")
    vectors, info = [], {}
    for attr in wanted:
        j = names.index(attr)
        v, stats = fit_direction(z, scores[:, j], quantile, C, seed=seed)
        vectors.append(v)
        info[attr] = {**stats, "target": attr, "score_mean": float(scores[:, j].mean()),
                      "score_std": float(scores[:, j].std())}
    meta = {"method": "interfacegan (linear SVM on top/bottom quantiles)", "n": n, "seed": seed,
            "quantile": quantile, "C": C, "run_step": int(getattr(run, "step", -1)),
            "conditional": bool(run.conditional), "attrs": _describe_attrs(attrs),
            "scorer_columns": names, "per_direction": info}
    return DirectionSet(wanted, np.stack(vectors), "attribute", meta)


def _describe_attrs(attrs):
    if attrs is None or isinstance(attrs, Mapping):
        return dict(attrs or {})
    return np.asarray(attrs).tolist()


def orthogonalize(direction, others) -> np.ndarray:
    """``direction`` projected onto the orthogonal complement of span(others), unit length.

    One other direction n2 gives n1 - (n1.n2) n2 (then renormalised); several use an
    orthonormal basis of their span (QR), so correlated conditions are handled exactly.
    """
    d = np.asarray(direction, np.float64).reshape(-1)
    basis = np.atleast_2d(np.asarray(others, np.float64))
    if basis.size == 0:
        return _unit(d)
    if basis.shape[1] != d.shape[0]:
        raise FacelibError(f"directions of different sizes: {d.shape[0]} vs {basis.shape[1]}")
    q, r = np.linalg.qr(basis.T)
    q = q[:, np.abs(np.diag(r)) > 1e-8 * max(1.0, np.abs(r).max())]
    residual = d - q @ (q.T @ d)
    if np.linalg.norm(residual) < 1e-6 * np.linalg.norm(d):
        raise FacelibError("the direction lies in the span of the conditions: nothing is left "
                           "after projecting them out; drop a condition")
    return _unit(residual)


def conditional_direction(directions: DirectionSet, target: str, keep: Sequence[str]
                          ) -> tuple[str, np.ndarray]:
    """("target|keep1,keep2", unit vector): ``target`` with the ``keep`` directions projected
    out. Add a smile while keeping gender: ``conditional_direction(d, "Smiling", ["Male"])``."""
    keep = [k for k in keep if k != target]
    missing = [k for k in [target, *keep] if k not in directions]
    if missing:
        raise FacelibError(f"direction(s) {missing} not in the set; it has: "
                           f"{', '.join(directions.names)}")
    v = orthogonalize(directions[target], np.stack([directions[k] for k in keep]) if keep
                      else np.zeros((0, directions.latent_dim)))
    return (f"{target}|{','.join(keep)}" if keep else target), v


def move(z, direction, strength) -> np.ndarray:
    """z + strength * direction (strength in units of z's standard deviation along a unit
    direction); broadcasts over rows of z and over a sequence of strengths."""
    z = np.asarray(z, np.float32)
    d = np.asarray(direction, np.float32).reshape(-1)
    s = np.asarray(strength, np.float32)
    if s.ndim == 0:
        return z + s * d
    return z[None] + s.reshape(-1, *([1] * z.ndim)) * d


# ---------------------------------------------------------------------------------------------
# Entanglement


@dataclass
class EntanglementRow:
    direction: str
    target: str | None
    delta_target: float          # mean change of the target's probability
    mean_abs_delta_others: float  # mean over the other attributes of |mean change|
    top_entangled: list[tuple[str, float]]  # the 3 other attributes that moved most
    deltas: dict[str, float]


def _target_of(directions: DirectionSet, name: str, names: list[str]) -> str | None:
    target = directions.info(name).get("target", name.split("|")[0])
    return target if target in names else None


def entanglement(run, scorer, directions: DirectionSet, names: Sequence[str] | None = None, *,
                 n: int = 256, step: float = 2.0, seed: int = 1, attrs=None,
                 batch_size: int = 256, top: int = 3) -> list[EntanglementRow]:
    """For each direction: move ``n`` fresh latents by ``step`` along it and compare the scorer's
    probabilities before and after. A clean direction changes its target a lot and the rest
    little; the top entangled attributes show what else it drags along."""
    z = run.sample_latents(n, seed=seed)
    y = latent_attributes(run, n, attrs, seed)
    before = synthesize_and_score(run, scorer, z, y, batch_size)
    cols = scorer_names(scorer, before.shape[1])
    rows = []
    for name in (list(names) if names is not None else directions.names):
        after = synthesize_and_score(run, scorer, move(z, directions[name], step), y, batch_size)
        delta = (after - before).mean(axis=0)
        target = _target_of(directions, name, cols)
        others = [j for j, c in enumerate(cols) if c != target]
        order = sorted(others, key=lambda j: -abs(delta[j]))[:top]
        rows.append(EntanglementRow(
            name, target, float(delta[cols.index(target)]) if target else float("nan"),
            float(np.abs(delta[others]).mean()) if others else 0.0,
            [(cols[j], float(delta[j])) for j in order],
            {c: float(d) for c, d in zip(cols, delta)}))
    return rows


def format_entanglement(rows: Sequence[EntanglementRow]) -> str:
    """A Markdown table of entanglement rows."""
    lines = ["| direction | target | Δ target | mean abs Δ others | most entangled (Δ) |",
             "|---|---|---:|---:|---|"]
    for r in rows:
        top = ", ".join(f"{a} ({d:+.3f})" for a, d in r.top_entangled)
        dt = "n/a" if np.isnan(r.delta_target) else f"{r.delta_target:+.3f}"
        lines.append(f"| {r.direction} | {r.target or '-'} | {dt} | "
                     f"{r.mean_abs_delta_others:.3f} | {top} |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# GANSpace principal directions


def _default_layer(generator) -> str:
    """The first ReLU: the first nonlinear features of the DCGAN (after the projection and its
    (conditional) BatchNorm). ``model.layers`` is in topological order, so it is the shallowest."""
    for layer in generator.layers:
        if isinstance(layer, keras.layers.ReLU):
            return layer.name
    raise FacelibError("the generator has no ReLU layer: pass layer=<name> (one of "
                       f"{', '.join(layer.name for layer in generator.layers)})")


def feature_model(run, layer: str):
    """A keras.Model with the generator's inputs and ``layer``'s output."""
    g = run.generator
    try:
        out = g.get_layer(layer).output
    except ValueError:
        raise FacelibError(f"the generator has no layer {layer!r}; layers: "
                           f"{', '.join(layer.name for layer in g.layers)}") from None
    return keras.Model(g.inputs if len(g.inputs) > 1 else g.inputs[0], out)


def _features(run, model, z, y, batch_size):
    out = []
    for i in range(0, len(z), batch_size):
        inputs = z[i:i + batch_size] if y is None else [z[i:i + batch_size], y[i:i + batch_size]]
        out.append(np.asarray(model(inputs, training=False)).reshape(len(z[i:i + batch_size]), -1))
    return np.concatenate(out).astype(np.float64)


def _fix_signs(vectors: np.ndarray) -> np.ndarray:
    """Deterministic signs: each vector's largest-magnitude entry is positive."""
    idx = np.abs(vectors).argmax(axis=1)
    return vectors * np.sign(vectors[np.arange(len(vectors)), idx])[:, None]


def principal_directions(run, k: int = 10, *, n: int = 2000, method: str = "activations",
                         layer: str | None = None, seed: int = 0, attrs=None,
                         batch_size: int = 256) -> DirectionSet:
    """``k`` GANSpace directions (names PC0, PC1, ...) with their explained variance ratios.

    method="activations": PCA (sklearn) of ``n`` samples of ``layer``'s activations (default:
    the first ReLU, right after the first projection), then least squares of z on the
    standardised PCA coordinates; the regression rows, normalised, are the z directions.
    Conditional runs draw attributes from the data distribution and PCA runs on the part of the
    activations the attributes do not explain linearly, so the components describe what z varies.
    method="weights": the exact answer for the linear "project" layer: PCA of z @ K (z standard
    normal) has covariance K^T K, so the directions are the left singular vectors of K's z rows
    and the variance ratios their squared singular values' shares.
    """
    k = int(k)
    if not 1 <= k <= run.latent_dim:
        raise FacelibError(f"k={k}: choose 1 to latent_dim={run.latent_dim} directions (each "
                           "is a direction in z)")
    if method == "weights":
        kernel = np.asarray(run.generator.get_layer("project").kernel, np.float64)[:run.latent_dim]
        u, s, _ = np.linalg.svd(kernel, full_matrices=False)
        vectors = _fix_signs(u[:, :k].T)
        ratio = (s ** 2 / np.sum(s ** 2))[:k]
        layer = "project"
    elif method == "activations":
        layer = layer or _default_layer(run.generator)
        z = run.sample_latents(n, seed=seed).astype(np.float64)
        y = latent_attributes(run, n, attrs, seed)
        acts = _features(run, feature_model(run, layer), z.astype(np.float32), y, batch_size)
        if y is not None:  # remove what the attributes explain linearly
            design = np.concatenate([y, np.ones((n, 1))], axis=1).astype(np.float64)
            acts = acts - design @ np.linalg.lstsq(design, acts, rcond=None)[0]
        # exact PCA by the cheaper route: SVD of the samples when they are fewer than the
        # features, else the covariance's eigenvectors (sklearn >= 1.5); randomized when huge
        n_feat = acts.shape[1]
        solver = ("full" if n <= n_feat and n <= 4096 else
                  "covariance_eigh" if n_feat <= 4096 else "randomized")
        try:
            pca = PCA(n_components=k, svd_solver=solver, random_state=seed).fit(acts)
        except ValueError:  # older sklearn
            pca = PCA(n_components=k, svd_solver="randomized", random_state=seed).fit(acts)
        coords = pca.transform(acts) / np.sqrt(np.maximum(pca.explained_variance_, 1e-12))
        design = np.concatenate([coords, np.ones((n, 1))], axis=1)
        m = np.linalg.lstsq(design, z, rcond=None)[0][:k]
        norms = np.linalg.norm(m, axis=1, keepdims=True)
        if np.any(norms < 1e-8):
            raise FacelibError(f"some principal components of layer {layer!r} do not depend on "
                               "z; pick an earlier layer or a smaller k")
        vectors = _fix_signs(m / norms)
        ratio = pca.explained_variance_ratio_
    else:
        raise FacelibError(f"method {method!r}: use 'activations' or 'weights'")
    names = [f"PC{i}" for i in range(k)]
    meta = {"method": f"ganspace ({method})", "layer": layer, "n": n, "seed": seed,
            "run_step": int(getattr(run, "step", -1)), "conditional": bool(run.conditional),
            "explained_variance_ratio": [float(r) for r in ratio],
            "per_direction": {nm: {"explained_variance_ratio": float(r)}
                              for nm, r in zip(names, ratio)}}
    return DirectionSet(names, vectors.astype(np.float32), "principal", meta)


# ---------------------------------------------------------------------------------------------
# Pictures


def direction_grid(run, direction, seeds: Sequence[int] = (0, 1, 2, 3),
                   strengths: Sequence[float] = (-3, -1.5, 0, 1.5, 3), attrs=None,
                   path: str | Path | None = None) -> np.ndarray:
    """Faces moved along one direction: a row per seed, a column per strength (0 is the
    original). Conditional runs keep each row's attributes fixed (drawn with its seed, holding
    ``attrs``). Returns the uint8 grid and writes it to ``path`` if given."""
    d = _unit(direction)
    if d.shape[0] != run.latent_dim:
        raise FacelibError(f"direction has {d.shape[0]} dimensions, the run {run.latent_dim}")
    rows = []
    for seed in seeds:
        z = move(run.sample_latents(1, int(seed))[0], d, list(strengths))
        y = latent_attributes(run, 1, attrs, int(seed))
        y = None if y is None else np.broadcast_to(y[0], (len(z), y.shape[1]))
        rows.append(to_uint8(run.synthesize(z, y)))
    grid = make_grid(np.concatenate(rows), ncols=len(strengths))
    if path is not None:
        write_image(path, grid)
    return grid
