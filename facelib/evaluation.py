"""The evaluation driver: every metric of a run against held-out real faces, and FID between sets.

`evaluate_run` is what ``python -m facelib evaluate`` and the evaluation notebook call;
`fid_between` is what ``python -m facelib fid`` calls. Both measure through the one metric door,
``facelib.metrics.registry`` (as KID inside training does). `evaluate_run`
generates faces, extracts features once (cached on disk by content), and computes:

- fidelity/diversity: FID, KID, precision/recall, density/coverage (feature space);
- memorization: nearest training neighbours of generated faces in pixel and feature space, and
  the fraction closer to a training face than the 1st percentile of held-out real faces;
- mode drop and collapse: birthday-paradox duplicates (feature space), NDB (k-means bins in
  pixel space, as in Richardson and Weiss 2018), and, with an attribute classifier, the total
  variation between real and generated attribute frequencies;
- figures: sample grid, nearest neighbours, closest pairs, NDB bins, attribute marginals, and
  the networks' activation maps; written to OUT with report.json and a readable report.md.

Which real faces: when the real source is the run's own training cache, its valid+test splits
are the real set and its train split is the memorization reference, so no real face used for
FID was seen in training. Any null entry of report.json has its reason in report["reasons"].
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from facelib.data.cache import FaceCache
from facelib.data.celeba import locate
from facelib.data.sources import list_image_files, load_images, source_kind
from facelib.errors import FacelibError
from facelib.images import crop_box, read_image, resize_batch, save_grid
from facelib.metrics import registry
from facelib.metrics.features import features_for
from facelib.metrics.internals import internals_figure
from facelib.metrics.memorization import memorization_score, nearest_neighbours, neighbour_grid
from facelib.metrics.modes import attribute_tv, birthday_paradox, ndb, pair_grid

REQUIRED_KEYS = ("fid", "kid_mean", "kid_std", "precision", "recall", "density", "coverage",
                 "memorization", "attribute_tv", "n_generated", "n_real", "feature_network")
MIN_SAMPLES = 10


# --------------------------------------------------------------------------------------------
# The real faces.
# --------------------------------------------------------------------------------------------

@dataclass
class RealData:
    """Held-out real faces (and labels when known) and the training faces for memorization."""

    images: np.ndarray                 # uint8 (N, R, R, 3)
    attributes: np.ndarray | None      # int8 (N, 40) ground-truth labels, when known
    description: str
    source: str
    train_images: np.ndarray | None    # uint8 (M, R, R, 3) training faces, or None
    train_description: str


def _subset(idx: np.ndarray, limit: int | None, seed: int) -> np.ndarray:
    if limit is None or len(idx) <= limit:
        return idx
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(idx, limit, replace=False))


def load_real_data(run, real_source, limit: int | None, seed: int = 0,
                   max_train: int | None = 20000) -> RealData:
    """Real faces at the run's resolution from a cache, a CelebA folder or an image folder.

    The run's own training cache (or a cache of the same faces and partition at another
    resolution) gives its valid+test faces (never trained on); any other source is used whole
    (its first `limit` images, or a seeded subset for caches). The training faces (for
    memorization) come from the run's training cache, `max_train` at most.
    """
    res = run.resolution
    run_train = run.training_data()
    if real_source is None:
        if run_train is None:
            raise FacelibError(f"no real faces given and the run {run.path} does not record its "
                               "training data: pass --real PATH (a prepared cache, a CelebA "
                               "folder or a folder of images)")
        real_source = run_train
    real_source = Path(real_source)
    kind = source_kind(real_source)
    same = run_train is not None and kind == "cache" and (
        real_source.resolve() == Path(run_train).resolve())
    attributes = None
    if kind == "cache":
        cache = FaceCache.open(real_source)
        if not same and run_train is not None:
            # The same faces and partition at another resolution: still hold out the train split.
            tcache = FaceCache.open(run_train)
            sibling = (cache.filenames == tcache.filenames
                       and np.array_equal(cache.partition, tcache.partition))
        else:
            sibling = False
        if same or sibling:
            idx = np.concatenate([cache.indices("valid"), cache.indices("test")])
            idx.sort()
            what = ("held-out valid+test faces of the run's own training cache" if same else
                    "held-out valid+test faces (same faces and partition as the run's training "
                    "cache) of")
        else:
            idx = cache.indices("all")
            what = "faces of the prepared cache"
        if len(idx) == 0:
            raise FacelibError(f"{real_source} has no held-out (valid/test) faces to compare "
                               "with; prepare it with the default partition or pass another "
                               "--real source")
        idx = _subset(idx, limit, seed)
        images = resize_batch(cache.images[idx], res)
        attributes = np.asarray(cache.attributes[idx])
        description = f"{len(idx)} {what} {real_source}"
    else:
        images = load_images(real_source, res, limit=limit)
        description = f"{len(images)} faces from the {kind} folder {real_source}"
    if len(images) < MIN_SAMPLES:
        raise FacelibError(f"only {len(images)} real faces in {real_source}; the metrics need at "
                           f"least {MIN_SAMPLES} (a few hundred for stable numbers)")

    train_images, train_desc = None, ""
    if run_train is not None:
        tcache = FaceCache.open(run_train)
        tidx = _subset(tcache.indices("train"), max_train, seed + 1)
        if len(tidx):
            train_images = resize_batch(tcache.images[tidx], res)
            total = len(tcache.indices("train"))
            train_desc = (f"{len(tidx)} of the {total} train-split faces of the run's training "
                          f"cache {run_train}")
    return RealData(images, attributes, description, str(real_source), train_images, train_desc)


# --------------------------------------------------------------------------------------------
# Figures.
# --------------------------------------------------------------------------------------------

def _save_fig(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path


def attribute_figure(tv: dict, path, title: str = "") -> Path:
    """Horizontal bars: real vs generated frequency of each attribute, sorted by |difference|."""
    names = sorted(tv["per_attribute"], key=lambda k: tv["per_attribute"][k])
    y = np.arange(len(names))
    fig = Figure(figsize=(7.5, 0.22 * len(names) + 1.4), layout="constrained")
    ax = fig.subplots()
    ax.barh(y - 0.2, [tv["p_real"][k] for k in names], 0.4, label="real", color="#4c72b0")
    ax.barh(y + 0.2, [tv["p_gen"][k] for k in names], 0.4, label="generated", color="#dd8452")
    ax.set_yticks(y, names, fontsize=7)
    ax.set_xlim(0, 1)
    ax.set_xlabel("fraction of faces with the attribute (classifier labels)")
    ax.set_title(title or f"attribute marginals, mean TV {tv['attribute_tv']:.3f}", fontsize=9)
    ax.legend(loc="lower right", fontsize=8)
    return _save_fig(fig, Path(path))


def ndb_figure(result, path) -> Path:
    """Bars of real and generated bin proportions; statistically different bins marked."""
    order = np.argsort(-result.real_proportions, kind="stable")
    x = np.arange(result.k)
    fig = Figure(figsize=(max(5.0, 0.16 * result.k + 2), 3.2), layout="constrained")
    ax = fig.subplots()
    ax.bar(x - 0.2, result.real_proportions[order], 0.4, label="real", color="#4c72b0")
    ax.bar(x + 0.2, result.gen_proportions[order], 0.4, label="generated", color="#dd8452")
    top = max(result.real_proportions.max(), result.gen_proportions.max())
    diff = np.flatnonzero(result.different[order])
    ax.scatter(diff, np.full(len(diff), top * 1.05), marker="v", color="crimson", s=14,
               label="different (p < alpha)")
    ax.set_xlabel("k-means bin (sorted by real share)")
    ax.set_ylabel("share of samples")
    ax.set_title(f"NDB: {result.ndb} of {result.k} bins differ (JS {result.js:.3f})", fontsize=9)
    ax.legend(fontsize=8)
    return _save_fig(fig, Path(path))


# --------------------------------------------------------------------------------------------
# The evaluation.
# --------------------------------------------------------------------------------------------

def _clean(value):
    """JSON-safe copy: numpy scalars/arrays to Python, non-finite floats to None."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return _clean(value.tolist())
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return v if math.isfinite(v) else None
    if isinstance(value, (np.bool_,)):
        return bool(value)
    return value


class _Timer:
    def __init__(self):
        self.times: dict[str, float] = {}

    def __call__(self, name: str):
        timer = self

        class _Ctx:
            def __enter__(self):
                self.t0 = time.perf_counter()

            def __exit__(self, *exc):
                timer.times[name] = round(timer.times.get(name, 0.0) + time.perf_counter()
                                          - self.t0, 2)

        return _Ctx()


def _memorization(gen_vecs, train_vecs, heldout_vecs, q: float):
    """(MemorizationResult, its summary dict)."""
    res = memorization_score(gen_vecs, train_vecs, heldout_vecs, q=q)
    return res, {
        "fraction": res.fraction,
        "threshold": res.threshold,
        "expected_by_chance": q / 100.0,
        "n_flagged": int(res.flagged.sum()),
        "median_nn_distance_generated": float(np.median(res.distances)),
        "median_nn_distance_heldout": float(np.median(res.heldout_distances)),
    }


def _nn_grid(gen_images, gen_vecs, train_images, train_vecs, distances, path, rows=8, k=4):
    """Grid of the `rows` generated faces closest to the training set, each followed by its k
    nearest training faces (in the same space as the distances)."""
    pick = np.argsort(distances, kind="stable")[:rows]
    k = min(k, len(train_vecs))
    _, idx = nearest_neighbours(gen_vecs[pick], train_vecs, k)
    return neighbour_grid(gen_images[pick], train_images, idx, path)


@dataclass
class _Evaluation:
    """What the steps of one evaluation share: the faces, their features, where to write."""

    run: object
    real: RealData
    gen: np.ndarray                    # uint8 generated faces
    net: object                        # the FeatureNetwork
    real_f: np.ndarray
    gen_f: np.ndarray
    out: Path
    seed: int
    figures: bool
    cache_dir: object
    progress: bool
    log: object
    timer: _Timer
    reasons: dict = field(default_factory=dict)
    figs: dict = field(default_factory=dict)

    def features(self, images: np.ndarray) -> np.ndarray:
        return features_for(images, self.net, cache_dir=self.cache_dir, progress=self.progress)


def _fidelity(ev: _Evaluation) -> dict:
    """FID, KID, precision/recall and density/coverage, through the metric registry."""
    with ev.timer("fid_kid_prdc"):
        m = registry.compute(["fid", "kid", "prdc"], ev.real_f, ev.gen_f,
                             options={"kid": {"num_subsets": 100, "seed": ev.seed}})
    ev.log(f"FID {m['fid']:.2f}  KID {m['kid']:.4f} ± {m['kid_std']:.4f}  precision "
           f"{m['precision']:.3f} recall {m['recall']:.3f}")
    return {"fid": m["fid"], "kid_mean": m["kid"], "kid_std": m["kid_std"],
            "kid_subset_size": m["kid_subset_size"],
            **{k: m[k] for k in ("precision", "recall", "density", "coverage")}}


def _memorization_section(ev: _Evaluation, q: float, max_train_features: int | None) -> dict:
    """Generated faces closer to a training face than q% of held-out faces, in pixel and in
    feature space, and the nearest-neighbour figures."""
    real = ev.real
    memorization: dict = {"q_percentile": q, "reference": real.train_description,
                          "heldout": real.description}
    if real.train_images is None:
        memorization.update(pixel=None, features=None)
        ev.reasons["memorization"] = (
            "the run's training data is unknown or gone (RUN/data.json points nowhere), so "
            "there is no training set to search for copies; keep the prepared cache the run "
            "was trained on")
        return memorization
    with ev.timer("memorization"):
        # Real faces that are exact copies of training faces (e.g. --real is the CelebA folder
        # the run was trained on) would make the threshold 0: leave them out.
        real_nn, _ = nearest_neighbours(real.images, real.train_images, 1)
        fresh = real_nn[:, 0] > 0
        memorization["real_faces_in_training_set"] = int((~fresh).sum())
        if fresh.sum() < MIN_SAMPLES:
            memorization.update(pixel=None, features=None)
            ev.reasons["memorization"] = (
                f"only {int(fresh.sum())} of the {len(fresh)} real faces are not in the "
                "training set; pass held-out real faces (e.g. the run's own cache, whose "
                "valid+test splits are used)")
            return memorization
        pix_res, memorization["pixel"] = _memorization(ev.gen, real.train_images,
                                                       real.images[fresh], q)
        train_sub = real.train_images
        if max_train_features is not None and len(train_sub) > max_train_features:
            pick = np.sort(np.random.default_rng(ev.seed + 2).choice(
                len(train_sub), max_train_features, replace=False))
            train_sub = train_sub[pick]
        train_f = ev.features(train_sub)
        feat_res, memorization["features"] = _memorization(ev.gen_f, train_f, ev.real_f[fresh], q)
        memorization["n_train_pixel"] = int(len(real.train_images))
        memorization["n_train_features"] = int(len(train_sub))
        memorization["n_heldout"] = int(fresh.sum())
        if ev.figures:
            ev.figs["nearest_pixel"] = _nn_grid(
                ev.gen, ev.gen.reshape(len(ev.gen), -1), real.train_images,
                real.train_images.reshape(len(real.train_images), -1),
                pix_res.distances, ev.out / "nearest_pixel.png").name
            ev.figs["nearest_features"] = _nn_grid(
                ev.gen, ev.gen_f, train_sub, train_f, feat_res.distances,
                ev.out / "nearest_features.png").name
    ev.log(f"memorization: {memorization['pixel']['fraction']:.3f} (pixels), "
           f"{memorization['features']['fraction']:.3f} (features) of generated faces are "
           f"closer to a training face than {q:g}% of held-out faces (chance: {q / 100:.3f})")
    return memorization


def _modes_section(ev: _Evaluation) -> dict:
    """Mode drop and collapse: birthday-paradox duplicates (features) and NDB (pixels)."""
    gen, real = ev.gen, ev.real
    with ev.timer("modes"):
        batch = min(400, len(gen) // 2, len(real.images) // 2)
        if batch >= 4:
            bday = birthday_paradox(ev.gen_f, batch_size=batch, num_batches=20, real=ev.real_f,
                                    seed=ev.seed)
            birthday = {**bday.as_dict(), "batch_size": batch, "space": "features"}
            if math.isinf(bday.support_size):
                birthday["birthday_support_size_note"] = (
                    "no generated batch held a pair closer than real batches' closest pairs: no "
                    "evidence of a small support")
            if ev.figures:
                ev.figs["birthday_pairs"] = pair_grid(gen, bday.pairs,
                                                      ev.out / "birthday_pairs.png",
                                                      max_pairs=12).name
        else:
            birthday = None
            ev.reasons["birthday"] = f"needs at least 8 generated and real faces, have {len(gen)}"
        ndb_res = ndb(real.images.reshape(len(real.images), -1), gen.reshape(len(gen), -1),
                      seed=ev.seed)
        ndb_out = {**ndb_res.as_dict(), "k": ndb_res.k, "space": "pixels",
                   "expected_by_chance": 0.05 * ndb_res.k}
        if ev.figures:
            ev.figs["ndb"] = ndb_figure(ndb_res, ev.out / "ndb.png").name
    return {"birthday": birthday, "ndb": ndb_out}


def _attributes_section(ev: _Evaluation, classifier) -> dict:
    """Real vs generated attribute frequencies as judged by the attribute classifier."""
    if classifier is None:
        why = ("no attribute classifier given: train one with `python -m facelib "
               "train-classifier --data CACHE --out DIR` and pass --classifier DIR")
        ev.reasons["attribute_tv"] = why
        ev.reasons["attributes"] = why
        return {"attribute_tv": None, "attributes": None}
    run, real = ev.run, ev.real
    with ev.timer("attributes"):
        tv = attribute_tv(classifier.predict(ev.gen), classifier.predict(real.images),
                          classifier.attribute_names)
        report = classifier.report or {}
        attributes = {
            "labels": "classifier predictions (threshold 0.5) on both sets",
            "per_attribute_tv": tv["per_attribute"],
            "p_gen": tv["p_gen"],
            "p_real": tv["p_real"],
            "classifier": {
                "resolution": classifier.resolution,
                "heldout_mean_auc": report.get("mean_auc"),
                "heldout_mean_accuracy": report.get("mean_accuracy"),
                "heldout_majority_accuracy": report.get("mean_majority_accuracy"),
            },
        }
        if classifier.resolution != run.resolution:
            attributes["note"] = (
                f"the classifier works at {classifier.resolution} px and the faces are "
                f"{run.resolution} px: both sets are resized, so the comparison is fair, but "
                "resolution-sensitive labels (e.g. Blurry) are distorted; a classifier "
                f"trained at {run.resolution} px gives truer labels")
        if real.attributes is not None:
            attributes["p_real_true_labels"] = dict(zip(
                classifier.attribute_names,
                np.asarray(real.attributes, np.float64).mean(axis=0).tolist()))
        if ev.figures:
            ev.figs["attributes"] = attribute_figure(tv, ev.out / "attributes.png").name
    ev.log(f"attribute marginals: mean TV {tv['attribute_tv']:.3f}")
    return {"attribute_tv": tv["attribute_tv"], "attributes": attributes}


def _write_report(report: dict, out: Path, log) -> dict:
    report = _clean(report)
    (out / "report.json").write_text(json.dumps(report, indent=2))
    (out / "report.md").write_text(render_markdown(report))
    log(f"wrote {out / 'report.json'} and {out / 'report.md'}")
    return report


def evaluate_run(run, real_source, out_dir, n: int = 1000, classifier=None, network="standard",
                 *, convention: str | None = None, seed: int = 0, n_real: int | None = None, max_train: int | None = 20000,
                 max_train_features: int | None = 5000, memorization_q: float = 1.0,
                 cache_dir=None, figures: bool = True, progress: bool = False,
                 log=print) -> dict:
    """Evaluate a run against real faces; writes OUT/report.json, OUT/report.md and figures.

    run: a Run (``facelib.load_run``). real_source: a prepared cache, a CelebA folder or a
    folder of images; None means the run's training cache (held-out splits). n: generated
    faces; n_real: real faces (default n). classifier: an AttributeClassifier, or None
    (attribute entries are then null with the reason). network: "standard", "test" or a
    FeatureNetwork (``metrics.registry.feature_network``); convention: how faces reach the
    Inception's 299x299 ('pytorch-fid' default, 'tensorflow', 'clean'; recorded in the report).
    max_train / max_train_features:
    training faces used as the memorization reference in pixel / feature space (features of
    every training face cost as much as FID on them). Returns the report.

    The steps, in order: real faces, generated faces, features (once, cached by content), then
    one function per report section: fidelity (the registry's FID/KID/PRDC), memorization,
    modes, attributes, internals; then report.json and report.md.
    """
    log = log or (lambda *_: None)
    if not isinstance(n, int) or n < MIN_SAMPLES:
        raise FacelibError(f"n={n}: generate at least {MIN_SAMPLES} faces (1000+ for numbers "
                           "worth comparing; FID is biased upwards at small n)")
    if not 0.0 < memorization_q < 100.0:
        raise FacelibError(f"memorization_q={memorization_q}: a percentile in (0, 100), usually 1")
    if not callable(getattr(run, "generate", None)):
        raise FacelibError(f"{run!r} is not a run: open it first with facelib.load_run(path)")
    if classifier is not None and not callable(getattr(classifier, "predict", None)):
        raise FacelibError(f"{classifier!r} is not an attribute classifier: load it with "
                           "facelib.classifier.AttributeClassifier.load(folder)")
    net = registry.feature_network(network, convention=convention, log=None)
    info = registry.network_info(net)
    if not info["comparable"]:
        log(f"NOTE: measuring with {net.name}: numbers are NOT comparable with published FID/KID")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    timer = _Timer()
    t_start = time.perf_counter()

    with timer("load_real"):
        real = load_real_data(run, real_source, n_real or n, seed=seed, max_train=max_train)
    log(f"real set: {real.description}")
    with timer("generate"):
        gen = run.generate(n, seed=seed)
    with timer("features"):
        real_f = features_for(real.images, net, cache_dir=cache_dir, progress=progress)
        gen_f = features_for(gen, net, cache_dir=cache_dir, progress=progress)
    ev = _Evaluation(run, real, gen, net, real_f, gen_f, out, seed, figures, cache_dir, progress,
                     log, timer)
    if figures:
        ev.figs["samples"] = save_grid(gen[:64], out / "samples.png").name

    report = _fidelity(ev)
    report["memorization"] = _memorization_section(ev, memorization_q, max_train_features)
    report.update(_modes_section(ev))
    report.update(_attributes_section(ev, classifier))
    if figures:
        with timer("internals"):
            ev.figs["internals"] = internals_figure(run, out / "internals.png", seed=seed,
                                                    real_image=real.images[0]).name
    if info["convention"] is None:
        ev.reasons["fid_convention"] = (f"{net.name} is not the FID Inception, so no FID resize "
                                        "convention applies")
    report.update({
        "n_generated": int(len(gen)),
        "n_real": int(len(real.images)),
        "feature_network": info,
        "fid_convention": info["convention"],
        "run": str(run.path),
        "step": int(run.step),
        "checkpoint": str(run.checkpoint),
        "real_source": real.source,
        "real_set": real.description,
        "seed": seed,
        "figures": ev.figs,
        "reasons": ev.reasons,
        "timings_s": {**timer.times, "total": round(time.perf_counter() - t_start, 2)},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    })
    return _write_report(report, out, log)


# --------------------------------------------------------------------------------------------
# FID between two image sets (python -m facelib fid).
# --------------------------------------------------------------------------------------------

def native_resolution(path) -> int | None:
    """The square size a source's images have after its face/centre crop (None if unknown)."""
    kind = source_kind(path)
    if kind == "cache":
        return FaceCache.open(path).resolution
    if kind == "array":
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
        return int(min(arr.shape[1], arr.shape[2])) if arr.ndim == 4 else None
    if kind == "celeba":
        files, crop = list_image_files(locate(path).images), "auto"
    else:
        files, crop = list_image_files(Path(path)), "none"
    for f in files[:5]:
        try:
            img = read_image(f)
        except ValueError:
            continue
        return int(crop_box(img.shape[0], img.shape[1], crop)[2])
    return None


def fid_between(path_a, path_b, resolution: int | None = None, weights=None,
                batch_size: int = 50, limit: int | None = None, cache: bool = True,
                progress: bool = False, convention: str | None = None
                ) -> tuple[float, int, int, int]:
    """(FID, resolution used, n_a, n_b) between two image sources with the standard network.

    resolution: compare both at RxR (default: the smaller native size; never upscaled);
    convention: 'pytorch-fid' (default), 'tensorflow' or 'clean'."""
    net = registry.feature_network("standard", weights=weights, convention=convention, log=None,
                                   if_missing="pass --weights FILE")
    if resolution is None:
        sizes = [s for s in (native_resolution(path_a), native_resolution(path_b)) if s]
        if not sizes:
            raise FacelibError("could not read an image size from either set; pass --resolution")
        resolution = min(sizes)
    feats = []
    for path in (path_a, path_b):
        source = load_images(path, resolution, limit=limit) if limit else path
        feats.append(features_for(source, net, cache_dir=None if cache else False,
                                  batch_size=batch_size, resolution=resolution,
                                  progress=progress))
    value = registry.compute(["fid"], *feats)["fid"]
    return value, resolution, len(feats[0]), len(feats[1])


# --------------------------------------------------------------------------------------------
# report.md
# --------------------------------------------------------------------------------------------

def _fmt(v, digits=3):
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def render_markdown(r: dict, figures: bool = True) -> str:
    """A readable summary of a report dict that links its figures (figures=False: text only,
    e.g. to display in a notebook that shows the PNGs itself)."""
    net = r["feature_network"]
    figs = r.get("figures", {}) if figures else {}
    lines = [f"# Evaluation of `{r['run']}` (step {r['step']})", ""]
    if not net["comparable"]:
        lines += ["> **Not comparable:** measured with the test feature network "
                  f"({net['name']}); FID/KID/PRDC here only compare with other runs measured "
                  "the same way.", ""]
    lines += [
        f"- generated faces: {r['n_generated']} (seed {r['seed']}), checkpoint `{r['checkpoint']}`",
        f"- real faces: {r['real_set']}",
        f"- feature network: {net['name']}",
        "",
        "## Fidelity and diversity",
        "",
        "| metric | value | reading |",
        "|---|---|---|",
        f"| FID | {_fmt(r['fid'], 2)} | lower is better; biased upwards at small n |",
        f"| KID | {_fmt(r['kid_mean'], 4)} ± {_fmt(r['kid_std'], 4)} | unbiased; ~0 when the "
        f"sets match (std over subsets of {r.get('kid_subset_size')}) |",
        f"| precision | {_fmt(r['precision'])} | fraction of fakes on the real manifold |",
        f"| recall | {_fmt(r['recall'])} | fraction of reals on the fake manifold |",
        f"| density | {_fmt(r['density'])} | ~1 when matched |",
        f"| coverage | {_fmt(r['coverage'])} | fraction of reals with a fake nearby |",
        "",
    ]
    if "samples" in figs:
        lines += [f"![samples]({figs['samples']})", ""]
    m = r["memorization"]
    lines += ["## Memorization", ""]
    if m.get("real_faces_in_training_set"):
        lines += [f"**Warning:** {m['real_faces_in_training_set']} of the real faces are training "
                  "faces: they are left out of the memorization threshold, but they flatter FID "
                  "and precision. Pass held-out faces (e.g. the run's own cache).", ""]
    if m.get("pixel"):
        q = m["q_percentile"]
        lines += [
            f"Reference: {m['reference']}. A generated face is flagged when it is closer to a "
            f"training face than {q:g}% of held-out real faces are (chance rate {q / 100:.3f}).",
            "",
            "| space | flagged fraction | threshold | median NN distance (generated / held-out) |",
            "|---|---|---|---|",
        ]
        for space in ("pixel", "features"):
            e = m[space]
            lines.append(f"| {space} | {_fmt(e['fraction'])} | {_fmt(e['threshold'], 2)} | "
                         f"{_fmt(e['median_nn_distance_generated'], 2)} / "
                         f"{_fmt(e['median_nn_distance_heldout'], 2)} |")
        lines.append("")
        for key, label in (("nearest_pixel", "pixel space"), ("nearest_features", "feature space")):
            if key in figs:
                lines += [f"Closest generated faces and their nearest training faces ({label}):",
                          "", f"![{key}]({figs[key]})", ""]
    else:
        lines += [f"Not computed: {r['reasons'].get('memorization', 'n/a')}", ""]
    lines += ["## Mode drop and collapse", ""]
    b = r.get("birthday")
    if b:
        support = b.get("birthday_support_size")
        support = "no evidence of a small support" if support is None else f"{support:.0f}"
        lines += [
            f"- birthday paradox (batches of {b['batch_size']}, feature space): duplicate rate "
            f"{_fmt(b['birthday_duplicate_rate'])} (real: "
            f"{_fmt(b['birthday_real_duplicate_rate'])}), estimated support {support}",
        ]
    else:
        lines.append(f"- birthday paradox: not computed ({r['reasons'].get('birthday')})")
    nd = r["ndb"]
    lines += [f"- NDB ({nd['space']}): {nd['ndb']} of {nd['k']} bins differ (about "
              f"{nd['expected_by_chance']:.1f} by chance), JS {_fmt(nd['ndb_js'])}", ""]
    if "birthday_pairs" in figs:
        lines += [f"Closest generated pairs: ![pairs]({figs['birthday_pairs']})", ""]
    if "ndb" in figs:
        lines += [f"![ndb]({figs['ndb']})", ""]
    lines += ["## Attributes", ""]
    if r["attribute_tv"] is None:
        lines += [f"Not computed: {r['reasons'].get('attribute_tv')}", ""]
    else:
        a = r["attributes"]
        worst = sorted(a["per_attribute_tv"].items(), key=lambda kv: -kv[1])[:5]
        auc = a["classifier"]["heldout_mean_auc"]
        lines += [
            f"Mean total variation between real and generated attribute frequencies: "
            f"**{_fmt(r['attribute_tv'])}** ({a['labels']}; classifier held-out mean AUC "
            f"{_fmt(auc)}).",
            "",
            "Largest gaps: " + ", ".join(f"{k} {a['p_real'][k]:.2f} real vs {a['p_gen'][k]:.2f} "
                                         "generated" for k, _ in worst),
            "",
        ]
        if a.get("note"):
            lines += [f"Note: {a['note']}.", ""]
        if "attributes" in figs:
            lines += [f"![attributes]({figs['attributes']})", ""]
    if "internals" in figs:
        lines += ["## Network internals", "", f"![internals]({figs['internals']})", ""]
    t = r.get("timings_s", {})
    lines += ["## Timings (s)", "", ", ".join(f"{k} {v}" for k, v in t.items()), ""]
    return "\n".join(lines)


__all__ = ["REQUIRED_KEYS", "RealData", "attribute_figure", "evaluate_run", "fid_between",
           "load_real_data", "native_resolution", "ndb_figure", "render_markdown"]
