"""Synthetic faces as training data for other models, and whether they are any use.

Three things, each a question the issue asks with numbers:

* ``write_synthetic_dataset``: a generator's faces written in CelebA's own layout
  (``img_align_celeba/000001.jpg ...`` and ``list_attr_celeba.txt`` in the official format), so
  any CelebA tool, ``facelib.data.prepare`` included, can read them. The 40 labels are the
  attributes a conditional generator was *asked* for, or, for an unconditional run, what an
  attribute classifier trained on real faces *predicts*; README.md and meta.json say which.
* ``cas_table``: Classification Accuracy Score (Ravuri and Vinyals, NeurIPS 2019): train the
  attribute classifier on real faces only, on synthetic faces only and on both, and test all three
  on the same held-out real faces. Synthetic data is as good as real exactly when the
  synthetic-only row matches the real-only row.
* ``rebalance_experiment``: a small real training set where one attribute is rare (Eyeglasses,
  ~6.5% of CelebA) topped up with conditional faces that have it; the effect on that attribute's
  recall and on the other attributes, against a control that adds as many synthetic faces with
  attributes drawn from the data's distribution (more data, same imbalance).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Mapping, Sequence

import cv2
import numpy as np

from facelib.atomic import replace_dir
from facelib.classifier import AttributeClassifier, fit_attribute_classifier, score_predictions
from facelib.data.cache import FaceCache
from facelib.data.celeba import (
    ATTR_FILE, ATTRIBUTE_NAMES, IMAGES_DIR, AttributeTable, format_attributes, locate,
    parse_attributes,
)
from facelib.data.prepare import load_processed
from facelib.errors import FacelibError
from facelib.images import resize_batch, to_uint8
from facelib.run.interface import describe_run, open_run

KIND = "facelib-synthetic-celeba"
LABEL_SOURCES = {
    "requested": "the attribute rows the conditional generator was asked for (its input labels)",
    "predicted": "an attribute classifier's predictions (threshold 0.5) for an unconditional run",
}
IMAGE_FORMATS = ("jpg", "png")


@dataclass
class SyntheticSet:
    """Generated faces with 40 labels: uint8 (N, R, R, 3), int8 (N, 40) 0/1."""

    images: np.ndarray
    attributes: np.ndarray
    names: list[str]
    label_source: str  # "requested" | "predicted"
    info: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.images)

    def split(self, fraction: float, seed: int = 0) -> tuple["SyntheticSet", "SyntheticSet"]:
        """(first, second): a seeded random split with ``fraction`` of the faces in second."""
        order = np.random.default_rng([seed, 5]).permutation(len(self))
        k = int(round(len(self) * fraction))
        a, b = np.sort(order[k:]), np.sort(order[:k])
        return (SyntheticSet(self.images[a], self.attributes[a], self.names, self.label_source,
                             self.info),
                SyntheticSet(self.images[b], self.attributes[b], self.names, self.label_source,
                             self.info))


def _load_classifier(classifier):
    if classifier is None or hasattr(classifier, "predict_proba"):
        return classifier
    return AttributeClassifier.load(classifier)


def synthesize_labelled(run, n: int, *, seed: int = 0, attrs=None, classifier=None,
                        threshold: float = 0.5, batch_size: int = 256) -> SyntheticSet:
    """``n`` faces from ``run`` (a Run, run folder or ``RUN@CHECKPOINT``) with 40 labels.

    Conditional runs: labels are the requested rows: ``attrs=None`` draws them from the training
    faces' joint distribution, a dict fixes some (e.g. ``{"Eyeglasses": 1}``), an (n, 40) 0/1
    array gives them all. Unconditional runs need ``classifier`` (an AttributeClassifier or its
    folder) whose predictions become the labels.
    """
    if n < 1:
        raise FacelibError(f"n={n}: ask for at least one synthetic face")
    run = open_run(run)
    names = list(ATTRIBUTE_NAMES)
    if run.conditional:
        if attrs is None or isinstance(attrs, Mapping):
            labels = run.sample_attributes(n, fixed=attrs, seed=seed)
        else:
            labels = np.asarray(attrs, np.float32)
        z = run.sample_latents(n, seed=seed)
        images = to_uint8(run.synthesize(z, labels, batch_size=batch_size, seed=seed))
        labels = np.asarray(labels).astype(np.int8)
        if list(run.attribute_names) != names:
            order = [list(run.attribute_names).index(a) for a in names]
            labels = labels[:, order]
        source = "requested"
    else:
        if attrs is not None:
            raise FacelibError(f"{run.path} is an unconditional run: attributes cannot be "
                               f"requested; drop attrs (labels then come from a classifier) or "
                               f"use a run trained with --conditional")
        classifier = _load_classifier(classifier)
        if classifier is None:
            raise FacelibError(
                f"{run.path} is an unconditional run, so its faces have no labels: pass an "
                f"attribute classifier (python -m facelib train-classifier) to label them, or use "
                f"a run trained with --conditional")
        images = run.generate(n, seed=seed, batch_size=batch_size)
        probs = classifier.predict_proba(images)
        cnames = list(getattr(classifier, "attribute_names", names))
        if sorted(cnames) != sorted(names):
            raise FacelibError("the classifier does not predict the 40 CelebA attributes; use "
                               "one trained on a CelebA cache")
        probs = probs[:, [cnames.index(a) for a in names]]
        labels = (probs >= threshold).astype(np.int8)
        source = "predicted"
    info = {"run": describe_run(run), "seed": seed, "n": n, "resolution": int(images.shape[1]),
            "label_source": source, "label_source_description": LABEL_SOURCES[source]}
    if source == "predicted":
        info["threshold"] = threshold
        info["classifier"] = str(getattr(classifier, "meta", {}).get("data", type(classifier).__name__))
    if isinstance(attrs, Mapping):
        info["fixed_attributes"] = {k: int(v) for k, v in attrs.items()}
    return SyntheticSet(images, labels, names, source, info)


# ---------------------------------------------------------------------------------------------
# Writing and reading the CelebA layout

README = """# Synthetic CelebA-layout dataset (facelib)

{n} generated {res}x{res} faces in CelebA's layout, so tools that read CelebA can read it:

    img_align_celeba/000001.{ext} ...   the faces ({fmt})
    list_attr_celeba.txt               official format: count line, the 40 attribute names, then
                                       one row per face with -1/1 values
    meta.json                          how it was made (run, checkpoint, step, seed, labels)

Labels: {label_text}.
Generator: {run} (step {step}, {kind}).

These faces are synthetic: they show no real person. They were made by a model trained on CelebA,
whose terms limit it to non-commercial research and education; use this data the same way.
Read them back with `python -m facelib prepare THIS_FOLDER OUT --resolution {res}` (square images
are kept whole, then resized).
"""


def write_dataset(out: str | Path, data: SyntheticSet, *, image_format: str = "jpg",
                  jpeg_quality: int = 95, overwrite: bool = False) -> Path:
    """Write a SyntheticSet in CelebA layout (atomically: temp folder, then rename)."""
    if image_format not in IMAGE_FORMATS:
        raise FacelibError(f"image format {image_format!r}: use one of {', '.join(IMAGE_FORMATS)}")
    if not 1 <= int(jpeg_quality) <= 100:
        raise FacelibError(f"jpeg_quality={jpeg_quality}: use 1..100 (95 keeps faces crisp)")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        is_ours = (out / "meta.json").is_file() and \
            json.loads((out / "meta.json").read_text()).get("kind") == KIND
        if not overwrite:
            raise FacelibError(f"{out} already exists and is not empty; choose another folder or "
                               f"pass overwrite=True (--force) to replace it")
        if not is_ours:
            raise FacelibError(f"{out} exists and is not a facelib synthetic dataset; refusing to "
                               f"replace it, choose another folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    os.chmod(tmp, 0o755)
    try:
        (tmp / IMAGES_DIR).mkdir()
        params = [int(cv2.IMWRITE_JPEG_QUALITY), int(jpeg_quality)] if image_format == "jpg" else []
        filenames = []
        for i, img in enumerate(data.images):
            name = f"{i + 1:06d}.{image_format}"
            ok, buf = cv2.imencode(f".{image_format}", np.ascontiguousarray(img[..., ::-1]), params)
            if not ok:
                raise FacelibError(f"could not encode face {i} as {image_format}")
            (tmp / IMAGES_DIR / name).write_bytes(buf.tobytes())
            filenames.append(name)
        table = AttributeTable(filenames, np.asarray(data.attributes, np.int8), list(data.names))
        (tmp / ATTR_FILE).write_text(format_attributes(table))
        run = data.info.get("run", {})
        meta = {"kind": KIND, **data.info, "count": len(data), "image_format": image_format,
                "jpeg_quality": int(jpeg_quality) if image_format == "jpg" else None,
                "label_rates": dict(zip(data.names, np.asarray(data.attributes).mean(0).round(4)
                                        .astype(float).tolist())),
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
        res = int(data.images.shape[1]) if len(data) else 0
        (tmp / "README.md").write_text(README.format(
            n=len(data), res=res, ext=image_format,
            fmt=f"JPEG quality {jpeg_quality}" if image_format == "jpg" else "PNG, lossless",
            label_text=LABEL_SOURCES.get(data.label_source, data.label_source),
            run=run.get("path", "?"), step=run.get("step", "?"),
            kind="conditional" if run.get("conditional") else "unconditional"))
        replace_dir(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def write_synthetic_dataset(run, out: str | Path, n: int, *, seed: int = 0, attrs=None,
                            classifier=None, image_format: str = "jpg", jpeg_quality: int = 95,
                            overwrite: bool = False, batch_size: int = 256) -> Path:
    """Generate ``n`` labelled faces (``synthesize_labelled``) and write them in CelebA layout."""
    data = synthesize_labelled(run, n, seed=seed, attrs=attrs, classifier=classifier,
                               batch_size=batch_size)
    return write_dataset(out, data, image_format=image_format, jpeg_quality=jpeg_quality,
                         overwrite=overwrite)


def read_dataset(path: str | Path, resolution: int | None = None) -> SyntheticSet:
    """Read a CelebA-layout folder (ours or CelebA itself) back into a SyntheticSet-like bundle."""
    path = Path(path)
    files = locate(path)
    table = parse_attributes(files.attributes)
    meta = json.loads((path / "meta.json").read_text()) if (path / "meta.json").is_file() else {}
    resolution = int(resolution or meta.get("resolution") or 64)
    images = np.stack([load_processed(files.images / name, resolution, "auto")
                       for name in table.filenames])
    return SyntheticSet(images, table.values, list(table.names),
                        meta.get("label_source", "file"), meta)


# ---------------------------------------------------------------------------------------------
# Train on synthetic, test on real

FitFn = Callable[..., object]


def _default_fit() -> FitFn:
    return fit_attribute_classifier


def _score(classifier, images, attrs, names, train_attrs) -> dict:
    probs = np.asarray(classifier.predict_proba(images), np.float32)
    return score_predictions(probs, np.asarray(attrs, np.int64), names,
                             train_positive_rate=np.asarray(train_attrs, np.float64).mean(0))


def _split_rows(cache, split: str, n: int | None, seed: int) -> np.ndarray:
    rows = cache.indices(split)
    if len(rows) == 0:
        raise FacelibError(f"{cache.path} has no faces in its {split!r} split")
    if n is not None and n < len(rows):
        rows = np.sort(np.random.default_rng([seed, 17]).choice(rows, n, replace=False))
    return rows


def _open_cache(cache):
    return FaceCache.open(cache)


CAS_SETTINGS = ("real", "synthetic", "real+synthetic")


def cas_table(cache, synthetic: SyntheticSet, *, n_real: int | None = None,
              n_test: int | None = None, val_fraction: float = 0.1,
              settings: Sequence[str] = CAS_SETTINGS, fit: FitFn | None = None, epochs: int = 5,
              batch_size: int = 64, width: int = 32, seed: int = 0, verbose: int = 0) -> dict:
    """Classification Accuracy Score: the attribute classifier trained on real faces (the cache's
    train split), on ``synthetic`` and on both, each tested on the cache's test split.

    Each setting validates on held-out faces of its own training source (the cache's valid split,
    a ``val_fraction`` of the synthetic set, or both), so synthetic-only never sees a real face.
    Returns {setting: {n_train, n_real, n_synthetic, mean_accuracy, mean_auc,
    mean_majority_accuracy, per_attribute_auc}}.
    """
    cache = _open_cache(cache)
    fit = fit or _default_fit()
    unknown = [s for s in settings if s not in CAS_SETTINGS]
    if unknown:
        raise FacelibError(f"unknown CAS setting(s) {unknown}: use {', '.join(CAS_SETTINGS)}")
    if len(synthetic) < 2:
        raise FacelibError("the synthetic set needs at least 2 faces (one to validate on)")
    res = cache.resolution
    names = cache.attribute_names or list(synthetic.names)
    if list(synthetic.names) != list(names):
        raise FacelibError("the synthetic labels and the cache use different attribute orders")
    syn_train, syn_val = synthetic.split(val_fraction, seed)
    syn_x = resize_batch(syn_train.images, res)
    syn_vx = resize_batch(syn_val.images, res)
    real_rows = _split_rows(cache, "train", n_real, seed)
    val_split = "valid" if len(cache.indices("valid")) else "train"
    val_rows = _split_rows(cache, val_split, None if n_test is None else n_test, seed)
    test_rows = _split_rows(cache, "test", n_test, seed)
    real_x, real_a = np.asarray(cache.images[real_rows]), cache.attributes[real_rows]
    rval_x, rval_a = np.asarray(cache.images[val_rows]), cache.attributes[val_rows]
    test_x, test_a = np.asarray(cache.images[test_rows]), cache.attributes[test_rows]
    sources = {
        "real": ((real_x, real_a), (rval_x, rval_a), len(real_x), 0),
        "synthetic": ((syn_x, syn_train.attributes), (syn_vx, syn_val.attributes), 0, len(syn_x)),
        "real+synthetic": ((np.concatenate([real_x, syn_x]),
                            np.concatenate([real_a, syn_train.attributes])),
                           (np.concatenate([rval_x, syn_vx]),
                            np.concatenate([rval_a, syn_val.attributes])),
                           len(real_x), len(syn_x)),
    }
    table = {}
    for setting in settings:
        (tx, ta), (vx, va), n_r, n_s = sources[setting]
        clf = fit(tx, ta.astype(np.int8), vx, va.astype(np.int8), epochs=epochs,
                  batch_size=batch_size, width=width, seed=seed, verbose=verbose)
        scores = _score(clf, test_x, test_a, names, ta)
        table[setting] = {
            "n_train": int(len(tx)), "n_real": int(n_r), "n_synthetic": int(n_s),
            "n_test": int(len(test_x)), "mean_accuracy": scores["mean_accuracy"],
            "mean_auc": scores["mean_auc"],
            "mean_majority_accuracy": scores["mean_majority_accuracy"],
            "per_attribute_auc": {k: v["auc"] for k, v in scores["per_attribute"].items()},
        }
    table["_info"] = {"test": f"{cache.path} test split", "label_source": synthetic.label_source,
                      "synthetic": synthetic.info, "epochs": epochs, "width": width, "seed": seed}
    return table


# ---------------------------------------------------------------------------------------------
# Rebalancing a rare attribute with conditional faces


def rebalance_experiment(cache, run, attribute: str = "Eyeglasses", *, n_real: int = 1000,
                         target_rate: float = 0.5, max_synthetic: int | None = None,
                         n_test: int | None = None, fit: FitFn | None = None, epochs: int = 5,
                         batch_size: int = 64, width: int = 32, seed: int = 0,
                         verbose: int = 0) -> dict:
    """Top up a small real training set with conditional faces that have ``attribute``.

    Three classifiers, each tested on the cache's test split: ``real`` (``n_real`` real faces),
    ``real+synthetic (random)`` (plus m faces with attributes from the data's distribution: more
    data, same imbalance) and ``real+synthetic ({attribute}=1)`` (plus m faces with the attribute,
    m chosen so its share reaches ``target_rate``). Reports the attribute's recall (threshold 0.5),
    precision, AUC, and the other attributes' mean accuracy and mean AUC.
    """
    cache = _open_cache(cache)
    run = open_run(run)
    if not run.conditional:
        raise FacelibError(f"{run.path} is unconditional: rebalancing needs a run trained with "
                           f"--conditional (it asks the generator for {attribute}=1)")
    names = cache.attribute_names
    if attribute not in names:
        raise FacelibError(f"unknown attribute {attribute!r}; valid names: {', '.join(names)}")
    if not 0 < target_rate < 1:
        raise FacelibError(f"target_rate={target_rate}: use a share between 0 and 1, e.g. 0.5")
    j = names.index(attribute)
    fit = fit or _default_fit()
    real_rows = _split_rows(cache, "train", n_real, seed)
    real_x, real_a = np.asarray(cache.images[real_rows]), cache.attributes[real_rows]
    k = int(real_a[:, j].sum())
    m = int(np.ceil(max(0.0, target_rate * len(real_x) - k) / (1 - target_rate)))
    if max_synthetic is not None:
        m = min(m, int(max_synthetic))
    if m < 1:
        raise FacelibError(f"{attribute} already has a share of {k / len(real_x):.2f} >= "
                           f"target_rate {target_rate} in the {len(real_x)} training faces")
    val_split = "valid" if len(cache.indices("valid")) else "train"
    val_rows = _split_rows(cache, val_split, n_test, seed)
    test_rows = _split_rows(cache, "test", n_test, seed)
    val_x, val_a = np.asarray(cache.images[val_rows]), cache.attributes[val_rows]
    test_x, test_a = np.asarray(cache.images[test_rows]), cache.attributes[test_rows]
    res = cache.resolution
    with_attr = synthesize_labelled(run, m, seed=seed + 1, attrs={attribute: 1})
    random_attrs = synthesize_labelled(run, m, seed=seed + 2)
    settings = {
        "real": (real_x, real_a, 0),
        "real+synthetic (random)": (np.concatenate([real_x, resize_batch(random_attrs.images, res)]),
                                    np.concatenate([real_a, random_attrs.attributes]), m),
        f"real+synthetic ({attribute}=1)": (np.concatenate([real_x, resize_batch(with_attr.images, res)]),
                                            np.concatenate([real_a, with_attr.attributes]), m),
    }
    others = [i for i in range(len(names)) if i != j]
    y = test_a[:, j].astype(np.int64)
    out = {}
    for name, (tx, ta, n_syn) in settings.items():
        clf = fit(tx, ta.astype(np.int8), val_x, val_a.astype(np.int8), epochs=epochs,
                  batch_size=batch_size, width=width, seed=seed, verbose=verbose)
        scores = _score(clf, test_x, test_a, names, ta)
        probs = np.asarray(clf.predict_proba(test_x))[:, j]
        pred = probs >= 0.5
        per = scores["per_attribute"]
        other_auc = [per[names[i]]["auc"] for i in others if per[names[i]]["auc"] is not None]
        out[name] = {
            "n_train": int(len(tx)), "n_synthetic": int(n_syn),
            "train_rate": float(ta[:, j].mean()),
            "recall": float(pred[y == 1].mean()) if (y == 1).any() else None,
            "precision": float(y[pred].mean()) if pred.any() else None,
            "auc": per[attribute]["auc"], "accuracy": per[attribute]["accuracy"],
            "others_mean_accuracy": float(np.mean([per[names[i]]["accuracy"] for i in others])),
            "others_mean_auc": float(np.mean(other_auc)) if other_auc else None,
        }
    out["_info"] = {"attribute": attribute, "n_real": int(len(real_x)), "real_positives": k,
                    "test_positives": int(y.sum()), "n_test": int(len(test_x)),
                    "target_rate": target_rate, "run": str(run.path), "step": int(run.step),
                    "epochs": epochs, "width": width, "seed": seed}
    return out


__all__ = ["CAS_SETTINGS", "LABEL_SOURCES", "SyntheticSet", "cas_table", "read_dataset",
           "rebalance_experiment", "synthesize_labelled", "write_dataset",
           "write_synthetic_dataset"]
