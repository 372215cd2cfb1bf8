"""Leave-one-generator-out validation: does a detector catch generators it never trained on?

A detector scored on the generator it trained on measures memory, not detection (issue: AP 0.999
on the seen generator, 0.18 on an unseen one). Here the generators are grouped into *families*
(one training run with its checkpoints, or one architecture), and for each family in turn a
detector is trained on real faces against every *other* family, then tested on held-out real
faces (the cache's test split) against fresh faces of the held-out family, one row per member
(for example an early and a late checkpoint). Nothing of the held-out family, no checkpoint and no
latent, reaches training or calibration.

Recipes are functions ``(real, fakes, valid_real, valid_fakes) -> detector``: ``fakes`` is a list
of face arrays, one per training generator, ``valid_*`` are faces for epoch choice and threshold
calibration (real: the valid split; fake: other latents of the training generators). ``recipes()``
gives the ones facelib compares.

    table = leave_one_generator_out("cache64", {"dcgan": ["runs/a"], "resnet": ["runs/b"]},
                                    recipes(), n_real=1500, n_fake=300, n_test=400)
    print(format_table(summarize(table), ["min_ap", "mean_ap", "real_accuracy"], key="recipe"))
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from facelib.data.cache import FaceCache
from facelib.detector.cnn import fit_cnn
from facelib.detector.faces import FAKE_SEED_OFFSET, generate_fakes, real_faces
from facelib.detector.probe import fit_probe
from facelib.detector.report import evaluate
from facelib.errors import FacelibError
from facelib.run.interface import open_run

Recipe = Callable[..., object]

# The resolution history of the "+resize" recipes: half of all training faces, real and fake,
# shrunk to 50-100 % of the side and enlarged back, so that enlargement is no cue to the label.
RESIZE_HISTORY = {"resize_prob": 0.5, "resize_scale": (0.5, 1.0)}


def cnn_recipe(width: int = 16, epochs: int = 3, **options) -> Recipe:
    """The pixel CNN (``fit_cnn``) with CNNDetection's augmentation; as many fakes as real faces,
    drawn evenly from the training generators."""
    def fit(real, fakes, valid_real, valid_fakes, seed=0):
        fake = _even_subset(fakes, len(real), seed)
        valid_fake = _even_subset(valid_fakes, len(valid_real), seed + 1)
        return fit_cnn(real, fake, valid_real, valid_fake, width=width, epochs=epochs,
                       seed=seed, **options)
    return fit


def probe_recipe(features: Sequence[str], resolution: int, **options) -> Recipe:
    """A linear probe (``fit_probe``) on ``features``, calibrated on the valid real faces."""
    def fit(real, fakes, valid_real, valid_fakes, seed=0):
        return fit_probe(real, list(fakes), features=features, resolution=resolution,
                         valid_real=valid_real, seed=seed, **options)
    return fit


def recipes(resolution: int = 64) -> dict[str, Recipe]:
    """The recipes compared in facelib's validation (README, "A detector for unseen
    generators"): the CNNDetection-style CNN, then linear probes on spectra, on Inception
    features, on both, and on both with a resolution history in training and/or the distance
    from real faces as two more features."""
    return {
        "cnn (CNNDetection augmentation)": cnn_recipe(),
        "probe: spectrum": probe_recipe(["spectrum"], resolution),
        "probe: inception": probe_recipe(["inception"], resolution),
        "probe: inception+spectrum": probe_recipe(["inception", "spectrum"], resolution),
        "probe: inception+spectrum, +resize": probe_recipe(
            ["inception", "spectrum"], resolution, augment_options=RESIZE_HISTORY),
        "probe: inception+spectrum, +distance": probe_recipe(
            ["inception", "spectrum"], resolution, distance=True),
        "probe: inception+spectrum, +resize, +distance": probe_recipe(
            ["inception", "spectrum"], resolution, augment_options=RESIZE_HISTORY, distance=True),
    }


def _even_subset(sets: Sequence[np.ndarray], n: int, seed: int) -> np.ndarray:
    """``n`` faces taken evenly from the arrays in ``sets`` (seeded), as one array."""
    pool = np.concatenate(list(sets))
    if len(pool) <= n:
        return pool
    owner = np.concatenate([np.full(len(s), i) for i, s in enumerate(sets)])
    rng = np.random.default_rng([seed, 17])
    weights = 1.0 / np.bincount(owner)[owner]
    pick = rng.choice(len(pool), n, replace=False, p=weights / weights.sum())
    return pool[np.sort(pick)]


def _member_name(spec) -> str:
    """A short name for a report: the spec itself, or a file's folder and name."""
    text = str(getattr(spec, "path", spec))
    if text.endswith(".keras"):
        return "/".join(Path(text).parts[-2:])
    return text if len(text) <= 60 else "..." + text[-57:]


def _real_splits(cache, n_real, n_valid, n_test, resolution, seed):
    """Real faces: training (train split), calibration (valid split), testing (test split)."""
    if not len(cache.indices("valid")):
        raise FacelibError(f"{cache.path} has no valid split; prepare it with its partition "
                           "(python -m facelib prepare) so calibration uses faces training never saw")
    return (real_faces(cache, "train", n_real, seed, resolution),
            real_faces(cache, "valid", n_valid, seed, resolution),
            real_faces(cache, "test", n_test, seed + 1, resolution))


def family_faces(families: Mapping[str, Sequence], n: int, resolution: int, seed: int = 0,
                 log=None) -> dict[str, list[np.ndarray]]:
    """``n`` faces of every member of every family (uint8, at ``resolution``), member ``j`` of a
    family drawn with seed ``seed + 7919 j``: the same faces (and cached features) every call."""
    out: dict[str, list[np.ndarray]] = {}
    for family, specs in families.items():
        if not specs:
            raise FacelibError(f"generator family {family!r} has no members")
        out[family] = []
        for j, spec in enumerate(specs):
            run = open_run(spec)
            out[family].append(generate_fakes([run], n, resolution, seed=seed + 7919 * j))
            if log:
                log(f"faces of {family}: {_member_name(spec)} ({run.resolution} px)")
    return out


def fit_on_families(cache, families: Mapping[str, Sequence], fit: Recipe, *, n_real: int = 1500,
                    n_fake: int = 300, n_valid: int = 400, n_test: int = 400,
                    resolution: int | None = None, seed: int = 0):
    """The detector a recipe makes from every family: what ships after the validation. The faces
    are those ``leave_one_generator_out`` used with the same numbers and seed."""
    cache = FaceCache.open(cache)
    resolution = int(resolution or cache.resolution)
    real, valid_real, _ = _real_splits(cache, n_real, n_valid, n_test, resolution, seed)
    fakes = family_faces(families, n_fake, resolution, seed)
    valid_fakes = family_faces(families, n_test, resolution, seed + FAKE_SEED_OFFSET)
    return fit(real, [x for f in fakes.values() for x in f], valid_real,
               [x for f in valid_fakes.values() for x in f], seed=seed)


def leave_one_generator_out(cache, families: Mapping[str, Sequence], recipes: Mapping[str, Recipe],
                            *, n_real: int = 1500, n_fake: int = 300, n_valid: int = 400,
                            n_test: int = 400, resolution: int | None = None, seed: int = 0,
                            log=print) -> list[dict]:
    """One row per (recipe, held-out family, member): accuracy at 0.5, real and fake accuracy and
    AP on ``n_test`` held-out real faces (test split) against ``n_test`` fresh faces of that
    member. ``families``: name -> run specs (run folders, ``RUN@CKPT``, ``pretrained:NAME``,
    ``.keras`` generator files, or run objects). Each member gives ``n_fake`` training faces and
    ``n_test`` faces used for testing when its family is held out and for validation otherwise
    (other latents than its training faces)."""
    if len(families) < 2:
        raise FacelibError(f"leave-one-generator-out needs at least two generator families, got "
                           f"{len(families)}: add runs of another architecture or checkpoint")
    if not recipes:
        raise FacelibError("no detector recipes given: pass facelib.detector.recipes()")
    cache = FaceCache.open(cache)
    resolution = int(resolution or cache.resolution)
    real, valid_real, test_real = _real_splits(cache, n_real, n_valid, n_test, resolution, seed)
    train_fakes = family_faces(families, n_fake, resolution, seed, log=log)
    test_fakes = family_faces(families, n_test, resolution, seed + FAKE_SEED_OFFSET)
    names = {family: [_member_name(spec) for spec in specs] for family, specs in families.items()}
    rows = []
    for recipe_name, fit in recipes.items():
        for held in families:
            others = [f for f in families if f != held]
            det = fit(real, [x for f in others for x in train_fakes[f]], valid_real,
                      [x for f in others for x in test_fakes[f]], seed=seed)
            for member, fake in zip(names[held], test_fakes[held]):
                row = {"recipe": recipe_name, "held_out": held, "member": member,
                       **evaluate(det, test_real, fake)}
                rows.append(row)
                if log:
                    log(f"{recipe_name} | held out {held} | {member}: AP {row['ap']:.3f}, "
                        f"real acc {row['real_accuracy']:.3f}, fake acc {row['fake_accuracy']:.3f}")
    return rows


def summarize(rows: Sequence[Mapping]) -> dict[str, dict]:
    """Per recipe: the worst and mean AP over the unseen splits, the worst real accuracy, and the
    mean share of unseen fakes caught, for choosing a recipe (the lowest AP decides: the goal is
    every unseen generator)."""
    out: dict[str, dict] = {}
    for recipe in dict.fromkeys(r["recipe"] for r in rows):
        mine = [r for r in rows if r["recipe"] == recipe]
        out[recipe] = {"min_ap": float(min(r["ap"] for r in mine)),
                       "mean_ap": float(np.mean([r["ap"] for r in mine])),
                       "real_accuracy": float(min(r["real_accuracy"] for r in mine)),
                       "fake_accuracy": float(np.mean([r["fake_accuracy"] for r in mine])),
                       "splits": len(mine)}
    return out


def markdown_table(rows: Sequence[Mapping], recipe: str) -> str:
    """One recipe's rows as a Markdown table (held-out family, member, AP, accuracies)."""
    lines = ["| held-out family | generator | AP | accuracy | real faces right | fakes caught |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        if r["recipe"] == recipe:
            lines.append(f"| {r['held_out']} | {r['member']} | "
                         f"{r['ap']:.3f} | {r['accuracy']:.3f} | {r['real_accuracy']:.3f} | "
                         f"{r['fake_accuracy']:.3f} |")
    return "\n".join(lines)


__all__ = ["RESIZE_HISTORY", "cnn_recipe", "family_faces", "fit_on_families",
           "leave_one_generator_out", "markdown_table", "probe_recipe", "recipes", "summarize"]
