"""Does a conditional run do what it is asked? Attribute control accuracy and on/off figures.

For each attribute, the run generates ``n`` faces with it forced to 1 and ``n`` with it forced
to 0 (the same latents for every request), an attribute classifier looks at them, and we count
how often it sees what was asked: *on-accuracy* (classified present when asked present) and
*off-accuracy* (classified absent when asked absent). Their mean, the *balanced control
accuracy*, is 0.5 for a generator that ignores the attribute, whatever the classifier's bias,
and 1.0 for perfect control as far as the classifier can tell; the *AUC* column is its
threshold-free twin (how well the classifier's scores separate on from off faces), useful where
a weak classifier rarely crosses 0.5 for a rare attribute. The classifier's own on/off
accuracy on held-out real faces is the matching reference: generated faces that show an
attribute as clearly as real ones would score about the same.

The other 39 attributes come from the training faces' joint distribution given the forced value
(``others="joint"``, what ``run.generate(attrs=...)`` does: forcing Male=1 also makes beards
likely), or stay the same rows with only the one attribute flipped (``others="flip"``: the
attribute's input alone; it may ask for combinations no training face has).
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from scipy.stats import rankdata

from facelib.data.cache import FaceCache
from facelib.errors import FacelibError
from facelib.images import make_grid, to_uint8
from facelib.run.interface import run_label

OTHERS = ("joint", "flip")
COLUMNS = ("attribute", "share", "on_accuracy", "off_accuracy", "balanced", "auc", "p_on",
           "p_off", "real_on", "real_off", "real_balanced", "real_auc", "n_on", "n_off", "note")


# -- the training data's attribute distribution -------------------------------------------
def attribute_prior(run) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(names, unique rows int8 (K, 40), counts (K,)) of the run's training faces."""
    if run.attribute_prior is None:
        raise FacelibError(f"{run.path} has no attribute_prior.npz: retrain it with this "
                           "version of facelib (python -m facelib train --conditional ...)")
    rows, counts = run.attribute_prior
    return list(run.attribute_names), rows.astype(np.int8), counts.astype(np.int64)


def attribute_shares(run) -> dict[str, float]:
    """Fraction of the run's training faces that have each attribute (e.g. Pale_Skin ~0.04)."""
    names, rows, counts = attribute_prior(run)
    share = (rows * counts[:, None]).sum(0) / counts.sum()
    return {name: float(s) for name, s in zip(names, share)}


def conditional_shares(run, attribute: str, top: int | None = None) -> list[dict]:
    """How the other attributes' shares differ between training faces with and without
    ``attribute``, largest difference first: what forcing it drags along in ``joint`` mode."""
    names, rows, counts = attribute_prior(run)
    i = _index(names, attribute)
    out = []
    on, off = rows[:, i] == 1, rows[:, i] == 0
    for j, name in enumerate(names):
        if j == i:
            continue
        s_on = float((rows[on, j] * counts[on]).sum() / counts[on].sum()) if on.any() else math.nan
        s_off = float((rows[off, j] * counts[off]).sum() / counts[off].sum()) if off.any() else math.nan
        out.append({"attribute": name, f"share_if_{attribute}=1": s_on,
                    f"share_if_{attribute}=0": s_off, "difference": s_on - s_off})
    out.sort(key=lambda r: -abs(r["difference"]) if not math.isnan(r["difference"]) else 0)
    return out[:top] if top else out


def _index(names: Sequence[str], attribute: str) -> int:
    if attribute not in names:
        raise FacelibError(f"unknown attribute '{attribute}'; valid names: {', '.join(names)}")
    return list(names).index(attribute)


def _require_conditional(run) -> None:
    if not run.conditional:
        raise FacelibError(f"{run.path} is an unconditional run: attribute control needs a run "
                           "trained with --conditional")


# -- scoring ------------------------------------------------------------------------------
def separation_auc(p_on, p_off) -> float | None:
    """P(score of a random 'on' face > score of a random 'off' face), ties counting half: the
    threshold-free version of balanced accuracy (0.5 = the classifier cannot tell them apart)."""
    p_on, p_off = np.asarray(p_on, np.float64), np.asarray(p_off, np.float64)
    if len(p_on) == 0 or len(p_off) == 0:
        return None
    ranks = rankdata(np.concatenate([p_on, p_off]))
    u = ranks[:len(p_on)].sum() - len(p_on) * (len(p_on) + 1) / 2
    return float(u / (len(p_on) * len(p_off)))


def _scorer_fn(scorer, names: Sequence[str], batch_size: int):
    """A function uint8 images -> (N, len(names)) probabilities in the run's attribute order,
    plus the list of run attributes the scorer does not know (their columns are NaN)."""
    predict = scorer.predict_proba if hasattr(scorer, "predict_proba") else scorer
    if not callable(predict):
        raise FacelibError("scorer must be an AttributeClassifier or a callable "
                           "images -> (N, 40) probabilities")
    scorer_names = list(getattr(scorer, "attribute_names", None) or names)
    columns = [scorer_names.index(n) if n in scorer_names else -1 for n in names]
    unknown = [n for n, c in zip(names, columns) if c < 0]

    def score(images: np.ndarray) -> np.ndarray:
        parts = []
        for s in range(0, len(images), batch_size):
            p = np.asarray(predict(images[s:s + batch_size]), np.float32)
            if p.ndim != 2 or p.shape != (len(images[s:s + batch_size]), len(scorer_names)):
                raise FacelibError(f"the scorer returned shape {p.shape} for "
                                   f"{len(images[s:s + batch_size])} images; expected (N, "
                                   f"{len(scorer_names)}) probabilities, one column per attribute")
            if not np.all((p >= 0) & (p <= 1)):
                raise FacelibError("the scorer returned values outside [0, 1]: it must give "
                                   "probabilities (apply a sigmoid to logits)")
            parts.append(p)
        p = np.concatenate(parts) if parts else np.zeros((0, len(scorer_names)), np.float32)
        out = np.full((len(p), len(names)), np.nan, np.float32)
        for k, c in enumerate(columns):
            if c >= 0:
                out[:, k] = p[:, c]
        return out

    return score, unknown


def real_accuracy(scorer, images, attributes, names: Sequence[str], threshold: float = 0.5,
                  batch_size: int = 512) -> dict[str, dict]:
    """The classifier's on/off accuracy on real faces with known labels: per attribute
    ``{"on": TPR, "off": TNR, "balanced": mean, "auc", "n_on", "n_off"}`` (None where a value
    is absent)."""
    attributes = np.asarray(attributes)
    if len(images) != len(attributes) or attributes.shape[1:] != (len(names),):
        raise FacelibError(f"real images ({len(images)}) and attributes {attributes.shape} must "
                           f"match, with {len(names)} attribute columns")
    score, unknown = _scorer_fn(scorer, names, batch_size)
    probs = score(np.asarray(images))
    present = probs >= threshold
    out = {}
    for k, name in enumerate(names):
        on, off = attributes[:, k] == 1, attributes[:, k] == 0
        if name in unknown:  # the classifier has no column for it
            on[:], off[:] = False, False
        tpr = float(present[on, k].mean()) if on.any() else None
        tnr = float((~present[off, k]).mean()) if off.any() else None
        out[name] = {"on": tpr, "off": tnr,
                     "balanced": None if tpr is None or tnr is None else (tpr + tnr) / 2,
                     "auc": separation_auc(probs[on, k], probs[off, k]),
                     "n_on": int(on.sum()), "n_off": int(off.sum())}
    return out


def _real_faces(real, split: str, limit: int | None):
    """real: a prepared cache path (its first ``limit`` faces of ``split``) or (images uint8
    NHWC, attributes 0/1) -> arrays."""
    if isinstance(real, (str, Path)):
        cache = FaceCache.open(real)
        idx = cache.indices(split)[:limit]
        if len(idx) == 0:
            raise FacelibError(f"{real} has no '{split}' faces: pass real_split='all' or "
                               "another cache")
        return np.asarray(cache.images[idx]), np.asarray(cache.attributes[idx]), cache.attribute_names
    images, attributes = real
    return np.asarray(images), np.asarray(attributes), None


# -- the report ---------------------------------------------------------------------------
def _fmt(v, digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _mean(values) -> float | None:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(vals)) if vals else None


@dataclass
class ControlReport:
    """Per-attribute control accuracy of one run (``rows``: one dict per attribute, keys
    ``COLUMNS``) and the headline means."""

    run: str
    step: int
    n: int
    seed: int
    others: str
    threshold: float
    rows: list[dict]
    skipped: list[str] = field(default_factory=list)
    n_real: int = 0  # real faces behind the real_* columns (0: none given)

    @property
    def mean_balanced(self) -> float | None:
        """The headline: mean balanced control accuracy over attributes with both values."""
        return _mean(r["balanced"] for r in self.rows)

    @property
    def mean_on(self) -> float | None:
        return _mean(r["on_accuracy"] for r in self.rows)

    @property
    def mean_off(self) -> float | None:
        return _mean(r["off_accuracy"] for r in self.rows)

    @property
    def mean_auc(self) -> float | None:
        """Mean threshold-free separation of on and off faces (0.5 = no control)."""
        return _mean(r["auc"] for r in self.rows)

    @property
    def mean_real_balanced(self) -> float | None:
        """The classifier's mean balanced accuracy on real faces, over the same attributes as
        :attr:`mean_balanced` (None when no real faces were given)."""
        both = [r for r in self.rows if r["balanced"] is not None]
        return _mean(r["real_balanced"] for r in both)

    @property
    def mean_real_auc(self) -> float | None:
        both = [r for r in self.rows if r["auc"] is not None]
        return _mean(r["real_auc"] for r in both)

    def row(self, attribute: str) -> dict:
        for r in self.rows:
            if r["attribute"] == attribute:
                return r
        raise FacelibError(f"no row for '{attribute}' in this report; rows: "
                           f"{', '.join(r['attribute'] for r in self.rows)}")

    def describe(self, attribute: str) -> str:
        """One line for one attribute: its share, control and the real-face reference."""
        r = self.row(attribute)
        text = (f"{attribute}: {r['share']:.1%} of training faces; asked on -> seen "
                f"{_fmt(r['on_accuracy'])}, asked off -> not seen {_fmt(r['off_accuracy'])}, "
                f"balanced {_fmt(r['balanced'])}, AUC {_fmt(r['auc'])}")
        if r["real_balanced"] is not None or r["real_auc"] is not None:
            text += (f"; the classifier on real faces: balanced {_fmt(r['real_balanced'])}, "
                     f"AUC {_fmt(r['real_auc'])}")
        return text + (f" ({r['note']})" if r["note"] else "")

    def summary(self) -> str:
        real = self.mean_real_balanced
        text = (f"balanced control accuracy {_fmt(self.mean_balanced, 3)} (0.5 = no control, "
                f"1 = perfect) over {sum(r['balanced'] is not None for r in self.rows)} "
                f"attributes; on {_fmt(self.mean_on, 3)}, off {_fmt(self.mean_off, 3)}, "
                f"AUC {_fmt(self.mean_auc, 3)}")
        if real is not None:
            text += f"; the classifier on {self.n_real} real faces: {real:.3f}"
        return f"{text}. {self.run} at step {self.step}, n={self.n} per value, others={self.others}"

    def to_markdown(self, sort: str | None = None) -> str:
        """A Markdown table; ``sort='balanced'`` puts the best-controlled attributes first."""
        rows = self.rows
        if sort:
            rows = sorted(rows, key=lambda r: -(r[sort] if r[sort] is not None else -1))
        head = ["attribute", "share in data", "on", "off", "balanced", "AUC", "real on",
                "real off", "real balanced", "real AUC", "note"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in rows:
            cells = [r["attribute"], _fmt(r["share"], 3), _fmt(r["on_accuracy"]),
                     _fmt(r["off_accuracy"]), _fmt(r["balanced"]), _fmt(r["auc"]),
                     _fmt(r["real_on"]), _fmt(r["real_off"]), _fmt(r["real_balanced"]),
                     _fmt(r["real_auc"]), r["note"]]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append(f"| **mean** | | {_fmt(self.mean_on)} | {_fmt(self.mean_off)} | "
                     f"**{_fmt(self.mean_balanced)}** | {_fmt(self.mean_auc)} | | | "
                     f"{_fmt(self.mean_real_balanced)} | {_fmt(self.mean_real_auc)} | |")
        return "\n".join(lines) + "\n"

    def to_csv(self, path: str | Path | None = None) -> str:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        for r in self.rows:
            writer.writerow({k: "" if r[k] is None else r[k] for k in COLUMNS})
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(buf.getvalue())
        return buf.getvalue()

    def to_dict(self) -> dict:
        return {"run": self.run, "step": self.step, "n": self.n, "seed": self.seed,
                "others": self.others, "threshold": self.threshold,
                "mean_balanced": self.mean_balanced, "mean_on": self.mean_on,
                "mean_off": self.mean_off, "mean_auc": self.mean_auc,
                "mean_real_balanced": self.mean_real_balanced, "mean_real_auc": self.mean_real_auc,
                "n_real": self.n_real, "skipped": self.skipped, "rows": self.rows}

    def save(self, folder: str | Path) -> Path:
        """control.md, control.csv and control.json in ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "control.md").write_text(f"{self.summary()}\n\n{self.to_markdown()}")
        self.to_csv(folder / "control.csv")
        (folder / "control.json").write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return folder


# -- generation requests ------------------------------------------------------------------
def _requests(run, attribute: str, n: int, seed: int, others: str, base: np.ndarray | None):
    """The (n, 40) attribute rows for attribute=1 and attribute=0; None for a value no
    training face has (its embedding never saw a gradient)."""
    names, rows, counts = attribute_prior(run)
    i = _index(names, attribute)
    out = {}
    for value in (1, 0):
        if not (rows[:, i] == value).any():
            out[value] = None
            continue
        if others == "joint":
            out[value] = run.sample_attributes(n, {attribute: value}, seed=seed + 2 * i + value)
        else:
            y = np.array(base, np.float32, copy=True)
            y[:, i] = value
            out[value] = y
    return out


def _check(run, n: int, others: str) -> None:
    _require_conditional(run)
    if others not in OTHERS:
        raise FacelibError(f"others={others!r}: choose 'joint' (the other attributes from the "
                           "data given the forced value) or 'flip' (only this attribute changes)")
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise FacelibError(f"n={n!r}: ask for at least one face per attribute value")


def control_accuracy(run, scorer: Callable | object, n: int = 64, seed: int = 0,
                     attributes: Sequence[str] | None = None, others: str = "joint",
                     real=None, real_split: str = "test", real_limit: int | None = 5000,
                     threshold: float = 0.5,
                     batch_size: int = 256) -> ControlReport:
    """Attribute control accuracy of a conditional run, as seen by ``scorer``.

    scorer: an ``AttributeClassifier`` (its ``attribute_names`` pick the columns) or any callable
    uint8 NHWC images -> (N, 40) probabilities in the run's attribute order.
    real: a prepared cache (up to ``real_limit`` of its ``real_split`` faces: CelebA's test
    split has 20k) or (images, attributes) to measure the
    classifier's own on/off accuracy on real faces, the reference each row is compared with.
    """
    _check(run, n, others)
    names = list(run.attribute_names)
    attributes = list(attributes) if attributes is not None else names
    for a in attributes:
        _index(names, a)
    score, unknown = _scorer_fn(scorer, names, batch_size)
    shares = attribute_shares(run)
    z = run.sample_latents(n, seed)   # the same latents for every request: a paired comparison
    base = run.sample_attributes(n, None, seed=seed) if others == "flip" else None

    real_acc, n_real = None, 0
    if real is not None:
        images, labels, real_names = _real_faces(real, real_split, real_limit)
        if real_names is not None and list(real_names) != names:
            labels = labels[:, [list(real_names).index(a) for a in names]]
        real_acc = real_accuracy(scorer, images, labels, names, threshold, batch_size)
        n_real = len(images)

    rows, skipped = [], []
    for a in attributes:
        k = names.index(a)
        row = {c: None for c in COLUMNS}
        row.update(attribute=a, share=shares[a], n_on=0, n_off=0, note="")
        if real_acc is not None:
            row.update(real_on=real_acc[a]["on"], real_off=real_acc[a]["off"],
                       real_balanced=real_acc[a]["balanced"], real_auc=real_acc[a]["auc"])
        if a in unknown:
            row["note"] = "the classifier does not score this attribute"
            skipped.append(f"{a} (not scored by the classifier)")
            rows.append(row)
            continue
        notes, probs = [], {}
        for value, y in _requests(run, a, n, seed, others, base).items():
            key = "on" if value else "off"
            if y is None:
                notes.append(f"{a}={value} skipped: no training face has it")
                skipped.append(f"{a}={value} (no training face has it)")
                continue
            p = score(_faces(run, z, y, batch_size))[:, k]
            present = p >= threshold
            row[f"{key}_accuracy"] = float(present.mean() if value else (~present).mean())
            row[f"p_{key}"] = float(p.mean())
            probs[value] = p
            row[f"n_{key}"] = n
        if row["on_accuracy"] is not None and row["off_accuracy"] is not None:
            row["balanced"] = (row["on_accuracy"] + row["off_accuracy"]) / 2
            row["auc"] = separation_auc(probs[1], probs[0])
        row["note"] = "; ".join(notes)
        rows.append(row)
    return ControlReport(str(run.path), int(getattr(run, "step", 0)), n, seed, others,
                         threshold, rows, skipped, n_real)


def _faces(run, z: np.ndarray, y: np.ndarray, batch_size: int) -> np.ndarray:
    return to_uint8(run.synthesize(z, y, batch_size=batch_size))


# -- figures ------------------------------------------------------------------------------
def attribute_rows(run, attributes: Sequence[str], n: int = 8, seed: int = 0,
                   others: str = "flip") -> tuple[np.ndarray, list[str]]:
    """For each attribute two rows of ``n`` faces, attribute=1 then attribute=0, all from the
    same latents: uint8 (2 * len(attributes), n, R, R, 3) and the row labels. ``others='flip'``
    (default) keeps every other attribute the same too, so a column differs in one input only."""
    _check(run, n, others)
    z = run.sample_latents(n, seed)
    base = run.sample_attributes(n, None, seed=seed) if others == "flip" else None
    faces, labels = [], []
    for a in attributes:
        for value, y in _requests(run, a, n, seed, others, base).items():
            if y is None:
                raise FacelibError(f"no training face has {a}={value}: the run cannot show it; "
                                   "leave this attribute out of the figure")
            faces.append(_faces(run, z, y, 256))
            labels.append(f"{a}={value}")
    return np.stack(faces), labels


def attribute_figure(run, attributes: Sequence[str], n: int = 8, seed: int = 0,
                     others: str | None = None, report: ControlReport | None = None,
                     path: str | Path | None = None, face_inches: float = 0.9):
    """A matplotlib figure of :func:`attribute_rows`: one panel per attribute, its on and off
    rows labelled (with on/off accuracy from ``report`` when given); saved to ``path`` if given.
    ``others`` defaults to the report's mode, else 'flip'; a label names the report's mode when
    it differs from the figure's."""
    import matplotlib.pyplot as plt  # heavy; only this figure needs it, the scores do not

    others = others or (report.others if report is not None else "flip")
    faces, labels = attribute_rows(run, attributes, n, seed, others)
    fig, axes = plt.subplots(len(attributes), 1, squeeze=False,
                             figsize=(n * face_inches + 1.8, len(labels) * face_inches + 0.6))
    for k, ax in enumerate(axes[:, 0]):
        grid = make_grid(faces[2 * k:2 * k + 2].reshape((-1,) + faces.shape[2:]), ncols=n)
        ax.imshow(grid)
        ticks = []
        for label in labels[2 * k:2 * k + 2]:
            if report is not None:
                name, value = label.rsplit("=", 1)
                acc = report.row(name)["on_accuracy" if value == "1" else "off_accuracy"]
                mode = "" if report.others == others else f" {report.others}"
                label += f"\n(acc {_fmt(acc)}{mode})"
            ticks.append(label)
        ax.set_yticks([grid.shape[0] * 0.25, grid.shape[0] * 0.75], ticks, fontsize=9)
        ax.set_xticks([])
        for side in ax.spines.values():
            side.set_visible(False)
    fig.suptitle(f"same latents per column, others={others} ({run_label(run)}, "
                 f"step {getattr(run, 'step', '?')})", fontsize=9)
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120, bbox_inches="tight")
    return fig
