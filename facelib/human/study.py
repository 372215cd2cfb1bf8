"""A human study: a shuffled set of real and generated faces, written to a folder once.

Real faces come from a prepared cache at the run's resolution (the same crop and resize as the
training data) and fakes from ``run.generate``, so both are uint8 NHWC of one size and nothing but
the content can tell them apart. Every face gets an id that says where it came from,
``real:<cache>#<filename>`` or ``fake:<run>@step<k>#seed<s>/<i>``, the manifest records how to
regenerate it, and every shown face is exported as PNG so that an auditor can look at exactly
what the judges saw.

    STUDY/
      manifest.json     items (id, kind, source, png, origin), pairs, runs, real-data source
      images/0000.png   the faces at their native resolution, numbered in shuffled order
      sessions/         one JSONL answer log per judge and mode (facelib.human.session)
"""

from __future__ import annotations

import json
import os
import re
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facelib.atomic import write_json
from facelib.errors import FacelibError
from facelib.data.cache import FaceCache
from facelib.images import read_image, write_image
from facelib.run.interface import open_run

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
MODES = ("untimed", "rapid", "pairwise")
_JUDGE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")


@dataclass(frozen=True)
class Item:
    """One face in the study and how to get it back."""

    id: str
    kind: str  # "real" or "fake"
    source: str  # "real" or the run label
    png: str  # path of the exported PNG, relative to the study folder
    origin: dict = field(default_factory=dict)  # how to regenerate it (see regenerate())


@dataclass(frozen=True)
class Trial:
    """One judgement to ask for: one face (real-or-fake modes) or two (pairwise)."""

    key: str  # stable across resumes: the item id, or "<id a>|<id b>" for a pair
    items: tuple[str, ...]  # in display order (left, right for pairs)
    truth: str | None  # "real"/"fake" for single faces, None for pairs
    sources: tuple[str, ...]


def check_judge(judge: str) -> str:
    """Judge ids name log files, so keep them to a safe, short alphabet."""
    if not isinstance(judge, str) or not _JUDGE_RE.match(judge):
        raise FacelibError(
            f"judge id {judge!r} is invalid: use 1-64 letters, digits, '_', '.', '@' or '-', "
            "starting with a letter or digit (e.g. 'ann' or 'judge-07')"
        )
    return judge


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise FacelibError(f"unknown mode {mode!r}: choose one of {MODES}")
    return mode


class Study:
    """A study folder opened for judging and scoring; see the module docstring for the layout."""

    def __init__(self, folder: Path, manifest: dict[str, Any]):
        self.folder = Path(folder)
        self.manifest = manifest
        self.name: str = manifest["name"]
        self.resolution: int = int(manifest["resolution"])
        self.seed: int = int(manifest["seed"])
        self.items: list[Item] = [Item(**d) for d in manifest["items"]]
        self.pairs: list[tuple[str, str]] = [tuple(p) for p in manifest.get("pairs", [])]
        self.runs: dict[str, dict] = manifest.get("runs", {})
        self._by_id = {it.id: it for it in self.items}
        self._images: dict[str, np.ndarray] = {}

    @classmethod
    def open(cls, folder: str | Path) -> "Study":
        folder = Path(folder)
        path = folder / MANIFEST
        if not path.is_file():
            raise FacelibError(
                f"{folder} is not a study folder (no {MANIFEST}): create one with "
                "facelib.human.build_study(folder, runs, real)"
            )
        manifest = json.loads(path.read_text())
        if manifest.get("version") != MANIFEST_VERSION:
            raise FacelibError(
                f"{path} has manifest version {manifest.get('version')!r}, this facelib reads "
                f"{MANIFEST_VERSION}: rebuild the study with this version of facelib"
            )
        return cls(folder, manifest)

    def __len__(self) -> int:
        return len(self.items)

    def item(self, item_id: str) -> Item:
        try:
            return self._by_id[item_id]
        except KeyError:
            raise FacelibError(f"no item {item_id!r} in study {self.folder}") from None

    def image(self, item_id: str) -> np.ndarray:
        """The face as exported (uint8 HWC RGB), read from its PNG once."""
        if item_id not in self._images:
            self._images[item_id] = read_image(self.folder / self.item(item_id).png)
        return self._images[item_id]

    @property
    def sessions_dir(self) -> Path:
        return self.folder / "sessions"

    def session_path(self, judge: str, mode: str) -> Path:
        """Where one judge's answers in one mode are logged (resuming appends to it)."""
        return self.sessions_dir / f"{check_judge(judge)}__{check_mode(mode)}.jsonl"

    def trials(self, judge: str, mode: str) -> list[Trial]:
        """The judge's trials in their own shuffled order (stable for a study, judge and mode).

        Each judge gets a different order so that order effects (fatigue, learning) average
        out over judges instead of hitting the same faces every time; pairs also get a random
        left/right placement, because people favour one side.
        """
        check_judge(judge)
        check_mode(mode)
        rng = np.random.default_rng([self.seed, zlib.crc32(judge.encode()), MODES.index(mode)])
        if mode == "pairwise":
            if not self.pairs:
                raise FacelibError(
                    f"study {self.folder} has no pairs: rebuild it with n_pairs > 0 "
                    "(build_study(..., n_pairs=100)) to use the pairwise mode"
                )
            out = []
            for k in rng.permutation(len(self.pairs)):
                a, b = self.pairs[k]
                shown = (b, a) if rng.random() < 0.5 else (a, b)
                out.append(Trial(f"{a}|{b}", shown, None,
                                 tuple(self.item(i).source for i in shown)))
            return out
        return [Trial(self.items[k].id, (self.items[k].id,), self.items[k].kind,
                      (self.items[k].source,))
                for k in rng.permutation(len(self.items))]


def _as_runs(runs: Any) -> dict[str, Any]:
    """Normalise a run, a run path, or a list/dict of them to {label: run}."""
    def load(r):
        return open_run(r)

    if isinstance(runs, dict):
        items = [(str(k), load(v)) for k, v in runs.items()]
    else:
        seq = runs if isinstance(runs, (list, tuple)) else [runs]
        items = []
        for i, r in enumerate(seq):
            label = str(r) if isinstance(r, (str, os.PathLike)) else None
            r = load(r)
            label = label or (str(getattr(r, "path", "")) or None) or f"run{i}"
            items.append((label, r))
    if not items:
        raise FacelibError("no runs given: pass at least one run (or run folder) to judge")
    labels = [k for k, _ in items]
    if len(set(labels)) != len(labels) or "real" in labels:
        raise FacelibError(
            f"run labels {labels} must be unique and not 'real': pass a dict {{label: run}}"
        )
    return dict(items)


def _open_real(real: Any) -> tuple[Any, str]:
    """A FaceCache-like object (images, filenames, indices(split)) and the label for its ids."""
    if isinstance(real, (str, os.PathLike)):
        return FaceCache.open(real), str(real)
    for attr in ("images", "filenames", "indices"):
        if not hasattr(real, attr):
            raise FacelibError(
                f"real faces {real!r} lack .{attr}: pass a prepared cache folder (python -m "
                "facelib prepare SRC OUT --resolution R) or facelib.data.cache.FaceCache"
            )
    return real, str(getattr(real, "path", "cache"))


def build_study(folder: str | Path, runs: Any, real: Any, *, n_fake: int = 50,
                n_real: int | None = None, split: str = "test", seed: int = 0,
                fake_seed: int = 1, n_pairs: int = 0, name: str | None = None,
                overwrite: bool = False) -> Study:
    """Draw real and fake faces, shuffle them, export PNGs and write the manifest.

    ``n_fake`` faces per run come from ``run.generate(n_fake, seed=fake_seed)`` (the same seed
    for every run, so runs render the same latents); ``n_real`` held-out faces (default: as many
    as all fakes together, a balanced study where 50% error means chance) are drawn from the
    cache's ``split``. ``n_pairs`` pairs of fakes for the pairwise mode are drawn across runs
    when there are several (to rank runs), else within the one run (to rank images).
    """
    folder = Path(folder)
    if (folder / MANIFEST).exists() and not overwrite:
        raise FacelibError(
            f"{folder} already holds a study: open it with Study.open({str(folder)!r}), or pass "
            "overwrite=True to rebuild it (its answer logs stay; their ids may then not match)"
        )
    runs = _as_runs(runs)
    cache, cache_label = _open_real(real)
    if n_fake < 1:
        raise FacelibError(f"n_fake={n_fake}: ask for at least 1 generated face per run")
    n_real = n_fake * len(runs) if n_real is None else int(n_real)
    if n_real < 0:
        raise FacelibError(f"n_real={n_real}: must be >= 0")
    rng = np.random.default_rng(seed)

    pool = np.asarray(cache.indices(split))
    if len(pool) < n_real:
        raise FacelibError(
            f"the real-face cache {cache_label} has {len(pool)} faces in split '{split}', the "
            f"study needs {n_real}: lower n_real, or use split='valid' or 'all' (but 'all' "
            "may include faces the run was trained on)"
        )
    real_idx = np.sort(rng.choice(pool, size=n_real, replace=False)) if n_real else pool[:0]
    real_images = np.asarray(cache.images[real_idx]) if n_real else None
    resolution = int(real_images.shape[1]) if n_real else None

    entries: list[tuple[dict, np.ndarray]] = []
    for k, idx in enumerate(real_idx):
        filename = str(cache.filenames[int(idx)])
        entries.append((dict(id=f"real:{cache_label}#{filename}", kind="real", source="real",
                             origin=dict(cache=cache_label, filename=filename, index=int(idx),
                                         split=split)), real_images[k]))
    runs_meta = {}
    fakes_by_run: dict[str, list[str]] = {}
    for label, run in runs.items():
        step = getattr(run, "step", None)
        images = np.asarray(run.generate(n_fake, seed=fake_seed))
        res = int(getattr(run, "resolution", images.shape[1]))
        if images.dtype != np.uint8 or images.shape != (n_fake, res, res, 3):
            raise FacelibError(
                f"run {label} generated {images.dtype} {images.shape}, expected uint8 "
                f"({n_fake}, {res}, {res}, 3): run.generate must return uint8 NHWC RGB"
            )
        if resolution is None:
            resolution = res
        if res != resolution:
            raise FacelibError(
                f"run {label} generates {res}px faces but the other faces are {resolution}px: "
                f"judges would see the size; prepare the real cache at {res}px (python -m "
                f"facelib prepare SRC OUT --resolution {res}) and judge runs of one resolution"
            )
        at = f"@step{step}" if step is not None else ""
        path = getattr(run, "path", None)
        ckpt = getattr(run, "checkpoint", None)
        runs_meta[label] = dict(path=str(path if path is not None else label), step=step,
                                resolved=None if path is None else str(Path(path).resolve()),
                                checkpoint=None if ckpt is None else str(Path(ckpt).resolve()))
        fakes_by_run[label] = []
        for i in range(n_fake):
            item_id = f"fake:{label}{at}#seed{fake_seed}/{i}"
            fakes_by_run[label].append(item_id)
            entries.append((dict(id=item_id, kind="fake", source=label,
                                 origin=dict(run=runs_meta[label]["path"], label=label,
                                             step=step, seed=fake_seed, n=n_fake, index=i)),
                            images[i]))

    # Shuffle before numbering the PNGs, so file names say nothing about real or fake.
    order = rng.permutation(len(entries))
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "sessions").mkdir(exist_ok=True)
    items = []
    for pos, k in enumerate(order):
        meta, image = entries[k]
        png = f"images/{pos:04d}.png"
        write_image(folder / png, image)
        items.append(Item(png=png, **meta))

    pairs = _draw_pairs(fakes_by_run, n_pairs, rng)
    manifest = dict(version=MANIFEST_VERSION, name=name or folder.name, resolution=resolution,
                    seed=seed, fake_seed=fake_seed, real=dict(cache=cache_label, split=split),
                    runs=runs_meta, items=[asdict(it) for it in items],
                    pairs=[list(p) for p in pairs])
    write_json(folder / MANIFEST, manifest)
    return Study(folder, manifest)


def _draw_pairs(fakes_by_run: dict[str, list[str]], n_pairs: int,
                rng: np.random.Generator) -> list[tuple[str, str]]:
    """Distinct pairs of fakes: across runs when there are several, else within the one run."""
    if n_pairs <= 0:
        return []
    labels = list(fakes_by_run)
    candidates: list[tuple[str, str]] = []
    if len(labels) > 1:
        for a in range(len(labels)):
            for b in range(a + 1, len(labels)):
                candidates += [(x, y) for x in fakes_by_run[labels[a]]
                               for y in fakes_by_run[labels[b]]]
    else:
        ids = fakes_by_run[labels[0]]
        candidates = [(ids[i], ids[j]) for i in range(len(ids)) for j in range(i + 1, len(ids))]
    if n_pairs > len(candidates):
        raise FacelibError(
            f"n_pairs={n_pairs} but only {len(candidates)} distinct pairs of fakes exist: "
            "lower n_pairs or raise n_fake"
        )
    return [candidates[k] for k in rng.choice(len(candidates), size=n_pairs, replace=False)]


def regenerate(study: Study, item_id: str, source: Any = None) -> np.ndarray:
    """Rebuild one face from its origin (for audits): the cache row, or the run's generate()
    at the checkpoint the study used.

    ``source`` overrides where to get it from (a run object for fakes, a FaceCache for reals)
    when the manifest's paths cannot be opened here.
    """
    item = study.item(item_id)
    o = item.origin
    if item.kind == "real":
        cache, _ = _open_real(o["cache"] if source is None else source)
        return np.asarray(cache.images[o["index"]])
    if source is None:
        meta = study.runs.get(o["label"], {})
        path = o["run"]
        if not Path(path).exists() and meta.get("resolved"):
            path = meta["resolved"]
        ckpt = meta.get("checkpoint")
        source = open_run(path, checkpoint=ckpt) if ckpt and Path(ckpt).exists() \
            else open_run(path)
        if o["step"] is not None and getattr(source, "step", o["step"]) != o["step"]:
            raise FacelibError(
                f"{item_id} came from step {o['step']} but {path} now loads step "
                f"{source.step} (that checkpoint is gone): pass the run at step {o['step']} "
                "as source, or keep more checkpoints (keep_checkpoints) while studies run"
            )
    run = next(iter(_as_runs(source).values()))
    return np.asarray(run.generate(o["n"], seed=o["seed"]))[o["index"]]
