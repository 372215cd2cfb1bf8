"""How well a detector separates real from synthetic faces: accuracy at 0.5 and average precision
(fake = positive class), under perturbations, against a generator's training step, and the report
``train-detector`` writes. Any detector works here: it needs ``resolution`` and ``predict_proba``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from sklearn.metrics import average_precision_score

from facelib.detector.faces import (FAKE_SEED_OFFSET, PERTURBATIONS, detector_input,
                                    generate_fakes, perturb, real_faces)
from facelib.errors import FacelibError
from facelib.run.folder import RunFolder
from facelib.run.interface import describe_run, open_run, run_label


def average_precision(labels, scores) -> float:
    return float(average_precision_score(np.asarray(labels).reshape(-1),
                                         np.asarray(scores).reshape(-1)))


# ---------------------------------------------------------------------------------------------
# Evaluation


def evaluate(detector, real, fake, threshold: float = 0.5) -> dict:
    """Accuracy (threshold 0.5; also per class) and average precision, fake = positive."""
    real = detector_input(real, detector.resolution)
    fake = detector_input(fake, detector.resolution)
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


def robustness(detector, real, fake, perturbations: Sequence[str] | None = None) -> dict:
    """``evaluate`` after each perturbation (applied to real and fake faces alike)."""
    names = list(perturbations or PERTURBATIONS)
    real = detector_input(real, detector.resolution)
    fake = detector_input(fake, detector.resolution)
    return {name: evaluate(detector, perturb(real, name), perturb(fake, name)) for name in names}


def ap_by_step(detector, run_dir: str | Path, real, n_fake: int | None = None,
               seed: int = FAKE_SEED_OFFSET) -> list[dict]:
    """Detector accuracy/AP against each kept checkpoint of one run: are later generators harder
    to spot? (Train with ``--set keep_checkpoints=N`` to keep enough of them.)"""
    checkpoints = RunFolder(run_dir).step_checkpoints()
    if not checkpoints:
        raise FacelibError(f"{run_dir} has no complete checkpoints; train it first")
    real = detector_input(real, detector.resolution)
    n_fake = len(real) if n_fake is None else n_fake
    rows = []
    for ckpt in checkpoints:
        run = open_run(run_dir, checkpoint=str(ckpt))
        fake = generate_fakes([run], n_fake, detector.resolution, seed=seed)
        rows.append({"step": int(run.step), "checkpoint": ckpt.name,
                     **evaluate(detector, real, fake)})
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


def detection_report(detector, cache, seen_runs: Sequence = (),
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
            name = f"{kind}: {run_label(run)}@{run.step}"
            report["generators"][name] = {**evaluate(detector, real, fake), **describe_run(run),
                                          "seen": kind == "seen"}
        if fakes:
            # As many fakes as real faces, taken evenly from this group's runs.
            pool = np.concatenate(fakes)
            pick = np.sort(np.random.default_rng(seed).choice(len(pool), len(real), replace=False))
            report["robustness"][kind] = robustness(detector, real, pool[pick])
    return report
