"""A smile on a real photo, end to end: invert held-out non-smiling faces, add the smile, measure.

The deliverable it measures: "On held-out photos that are not smiling: invert, add the smile,
and report the share the classifier then calls smiling (goal at least 90%), how far the other
39 attributes move (goal: mean |change| at most 0.05) and the inversion PSNR. A figure of
before and after."

1. Photos: ``--n`` faces of the cache's ``--split`` (default test: neither the generator nor
   the shipped classifier trained on it) that are labelled not Smiling AND that the classifier
   calls not smiling (p < 0.5), picked with ``--seed``. Everything is looked at at the run's
   resolution (the photos are resized to it first), so photo, reconstruction and edit meet the
   classifier the same way.
2. Inversion (``facelib.latent.invert``, ``--steps`` Adam steps). Conditional runs hold the
   attributes at the classifier's binarized reading of each photo (so Smiling = 0).
3. The smile. Conditional runs, route "label": the same z with the attribute vector's Smiling
   set to 1 (``facelib.latent.edit_attributes``), and pushed further at each
   ``--label-strength`` (2: Smiling 0 -> 2; the generator only saw 0 and 1); with
   ``--direction-route`` also route
   "direction": z moved along an InterFaceGAN Smiling direction fitted on ``--n-direction``
   latents with Smiling held at 0 (what z adds to the smile on top of the label), attributes
   unchanged. Unconditional runs: z moved along the InterFaceGAN Smiling direction (scored by
   the classifier) at each ``--strength``. Directions are fitted afresh and never saved into
   the run folder (it may be read-only or still training).
   With ``--tune-steps K`` (pivotal tuning, ``facelib.latent.PivotalTuner``): each photo also
   gets its own copy of the generator, tuned for K steps so that its inverted z draws the photo,
   and every edit above is made again with that copy (routes marked "tuned"), measured against
   the tuned reconstruction.
4. Measures, per route and strength: the mean inversion PSNR (reconstruction vs photo, dB);
   the share of edited faces the classifier calls smiling (p >= 0.5), and the same share for
   the reconstructions (the baseline: should be low); the mean over faces and the 39 other
   attributes of |p(edit) - p(reconstruction)| (the edit's own move), and of
   |p(edit) - p(photo)| (what the user sees move: the inversion's drift and the edit's move
   together), and the attribute that moved most; and how much of the picture the edit
   changed, as the PSNR of the edited face against the reconstruction it was made from and
   against the photo (the classifier's 39 numbers can stay put while the person, the hair
   colour or the background changes; the pixels cannot). Also how
   far the reconstruction's other attributes are from the photo's (the inversion's own drift).
   With two or more ``--label-strength`` values, one more row, "per-face smallest (bound)":
   each face at the smallest of them the classifier calls smiling. It chooses with the judge,
   so it is no edit; it says how low the other attributes' move can go at that share of smiles
   when the smile is this label (what a per-face strength could reach at best).

Writes OUT/smile_edit.json (settings, the measures, per-attribute changes, per-face numbers),
OUT/smile_edit.png (rows: photo, reconstruction, + smile per route/strength, for the first
``--figure-faces`` faces, each tile with the classifier's p(smile)), and prints a Markdown table.

    # the conditional run (read-only; `@latest` = its newest complete checkpoint)
    python benchmarks/bench_smile_edit.py --run pretrained:celeba32-cond \\
        --data caches/celeba8k-64 --label-strength 1,1.5,2,2.5,3 --out reports/smile-edit-cond
    # the same edits again with one generator tuned to each photo (pivotal tuning)
    python benchmarks/bench_smile_edit.py --run pretrained:celeba32-cond \\
        --data caches/celeba8k-64 --label-strength 2,2.5,2.75 --tune-steps 150 \\
        --out reports/smile-edit-tuned
    # an unconditional run: the InterFaceGAN route at three strengths
    python benchmarks/bench_smile_edit.py --run pretrained:celeba32 \\
        --data caches/celeba8k-64 --strength 1,2,3 --out reports/smile-edit-uncond
    # smoke test (minutes on 2 busy cores; the numbers mean nothing)
    python benchmarks/bench_smile_edit.py --run pretrained:celeba32 \\
        --data caches/celeba8k-64 --n 8 --steps 30 --n-direction 500 --out /tmp/smile

``--data`` defaults to the cache the run trained on. A different cache must share its seeded
partition, or "held-out" faces may be training faces.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

TARGET = "Smiling"
GOAL_SHARE = 0.90       # share of edits the classifier must call smiling
GOAL_OTHERS = 0.05      # mean |change| of the other 39 attributes' probabilities


def _floats(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give comma-separated numbers, e.g. 1,2,3")
    if not values:
        raise argparse.ArgumentTypeError("give at least one strength")
    return values


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, help="run folder, RUN@CKPT or pretrained:NAME")
    ap.add_argument("--classifier", default="pretrained:celeba32-attributes",
                    help="40-attribute classifier folder or pretrained:NAME (scores every face "
                         "and, for unconditional runs, fits the Smiling direction)")
    ap.add_argument("--data", default=None,
                    help="prepared cache the photos come from (default: the run's training cache)")
    ap.add_argument("--split", default="test", choices=("test", "valid"),
                    help="held-out split the photos come from")
    ap.add_argument("--n", type=int, default=100, help="photos to invert and edit")
    ap.add_argument("--steps", type=int, default=300, help="inversion steps")
    ap.add_argument("--init", default="auto",
                    help="inversion start: auto (the run's encoder if saved, else search), "
                         "search, zeros, random")
    ap.add_argument("--strength", type=_floats, default=[1.0, 2.0, 3.0],
                    help="comma-separated strengths along the Smiling direction (units of z's "
                         "standard deviation); unconditional runs and --direction-route")
    ap.add_argument("--label-strength", type=_floats, default=[1.0],
                    help="conditional runs: comma-separated strengths of the label edit "
                         "(facelib.latent.edit_attributes; 1 sets Smiling to 1)")
    ap.add_argument("--n-direction", type=int, default=2000,
                    help="sampled latents to fit the Smiling direction on")
    ap.add_argument("--direction-route", action="store_true",
                    help="conditional runs: also report the InterFaceGAN-direction route")
    ap.add_argument("--tune-steps", type=int, default=0,
                    help="pivotal tuning steps per photo (one tuned generator per photo); 0: "
                         "no tuning, else every edit is also made with the tuned generators")
    ap.add_argument("--figure-faces", type=int, default=8, help="faces (columns) in the figure")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="reports/smile-edit", help="output folder")
    args = ap.parse_args(argv)
    if args.tune_steps < 0:
        ap.error("--tune-steps must be 0 or more")
    for name in ("n", "n_direction", "figure_faces"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.steps < 0:
        ap.error("--steps must be 0 or more")
    return args


# -- picking the photos -------------------------------------------------------------------------

def pick_photos(cache, clf, resolution: int, n: int, split: str, seed: int):
    """(rows, photos uint8 at ``resolution``, the classifier's probabilities on them, counts):
    ``n`` ``split`` faces labelled not smiling that the classifier also calls not smiling."""
    from facelib.errors import FacelibError
    from facelib.images import resize_batch

    names = cache.attribute_names or list(clf.attribute_names)
    if TARGET not in names:
        raise FacelibError(f"{cache.path} has no {TARGET} attribute column")
    rows = cache.indices(split)
    if len(rows) == 0:
        raise FacelibError(f"{cache.path} has no {split} rows; prepare it with a partition")
    labelled = rows[cache.attributes[rows, names.index(TARGET)] <= 0]  # 0/1 (or -1/1) labels
    photos = resize_batch(np.asarray(cache.images[labelled]), resolution)
    p = clf.predict_proba(photos)
    keep = p[:, clf.attribute_names.index(TARGET)] < 0.5
    counts = {"split_faces": int(len(rows)), "labelled_not_smiling": int(len(labelled)),
              "also_classified_not_smiling": int(keep.sum())}
    if keep.sum() < n:
        raise FacelibError(f"only {int(keep.sum())} {split} faces are non-smiling by label and "
                           f"classifier; ask for --n {int(keep.sum())} or fewer")
    pick = np.sort(np.random.default_rng(seed).choice(np.flatnonzero(keep), n, replace=False))
    return labelled[pick], photos[pick], p[pick], counts


# -- measures -----------------------------------------------------------------------------------

def edit_measures(p_recon: np.ndarray, p_edit: np.ndarray, names: list[str],
                  p_photo: np.ndarray | None = None) -> dict:
    """The deliverable's numbers for one route: smile shares and the other attributes' moves,
    from the reconstruction (the edit's own move) and, given ``p_photo``, from the photo (what
    the user sees change: the inversion's drift and the edit's move together)."""
    j = names.index(TARGET)
    others = [i for i in range(len(names)) if i != j]
    delta = p_edit - p_recon
    abs_per_attr = np.abs(delta[:, others]).mean(axis=0)
    top = int(np.argmax(abs_per_attr))
    share = float(np.mean(p_edit[:, j] >= 0.5))
    others_mad = float(abs_per_attr.mean())
    return {
        "smiling_share_edit": share,
        "smiling_share_reconstruction": float(np.mean(p_recon[:, j] >= 0.5)),
        "p_smiling_edit": float(p_edit[:, j].mean()),
        "p_smiling_reconstruction": float(p_recon[:, j].mean()),
        "others_mean_abs_change": others_mad,
        "others_max_abs_change_per_face": float(np.abs(delta[:, others]).max(axis=1).mean()),
        "most_moved": {"attribute": names[others[top]],
                       "mean_abs_change": float(abs_per_attr[top]),
                       "mean_change": float(delta[:, others[top]].mean())},
        "per_attribute": {names[i]: {"mean_change": float(delta[:, i].mean()),
                                     "mean_abs_change": float(np.abs(delta[:, i]).mean())}
                          for i in range(len(names))},
        **({} if p_photo is None else {"others_mean_abs_change_from_photo": float(
            np.abs(p_edit[:, others] - p_photo[:, others]).mean())}),
        "goal_smiling_share_met": share >= GOAL_SHARE,
        "goal_others_met": others_mad <= GOAL_OTHERS,
    }


def pixel_measures(base: np.ndarray, edit: np.ndarray, photo: np.ndarray) -> dict:
    """How much of the picture one route changed (uint8 faces): the mean PSNR in dB of the
    edits against the faces they were made from (the reconstruction, tuned or not) and against
    the photos. Lower = more changed; a smile alone changes the mouth and cheeks, so it stays
    high. Identical faces (no change) count as 100 dB, not infinity, so means stay finite."""
    from facelib.latent import reconstruction_errors

    def mean_db(a, b):
        return float(np.mean(np.minimum(reconstruction_errors(a, b)[1], 100.0)))

    return {"pixels_psnr_db_from_reconstruction": mean_db(base, edit),
            "pixels_psnr_db_from_photo": mean_db(photo, edit)}


def smallest_smiling_bound(edits, scored, j: int, route_name: str = "label"):
    """Each face at the smallest label strength the classifier calls smiling (the largest where
    none does): (its probabilities (N, 40), the mean strength chosen, its images), or None with
    fewer than two label strengths. Not an edit a user can make: it picks with the judge
    itself, so it bounds from below how little the other attributes can move at that share of
    smiles."""
    label = sorted(((strength, p, images)
                    for (route, strength, images), p in zip(edits, scored)
                    if route == route_name), key=lambda row: row[0])
    if len(label) < 2:
        return None
    strengths = np.array([s for s, _, _ in label])
    p = np.stack([p for _, p, _ in label])             # (strengths, faces, attributes)
    images = np.stack([im for _, _, im in label])      # (strengths, faces, H, W, 3)
    smiling = p[:, :, j] >= 0.5
    pick = np.where(smiling.any(axis=0), smiling.argmax(axis=0), len(label) - 1)
    faces = np.arange(p.shape[1])
    return p[pick, faces], float(strengths[pick].mean()), images[pick, faces]


def markdown_table(report: dict) -> str:
    lines = ["| route | strength | faces | PSNR dB | smiling: recon | smiling: edit (goal >= "
             f"{GOAL_SHARE:.0%}) | mean abs change, other 39 (goal <= {GOAL_OTHERS}) | "
             "the same, from the photo | most moved other (mean abs / mean change) | "
             "edit vs its reconstruction, PSNR dB | goals |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---|"]
    for r in report["routes"]:
        top = r["most_moved"]
        goals = "both" if r["goal_smiling_share_met"] and r["goal_others_met"] else (
            "smile only" if r["goal_smiling_share_met"] else
            "others only" if r["goal_others_met"] else "neither")
        strength = "-" if r["strength"] is None else f"{r['strength']:g}"
        lines.append(
            f"| {r['route']} | {strength} | {report['n']} | {r['psnr_db']:.2f} | "
            f"{r['smiling_share_reconstruction']:.0%} | {r['smiling_share_edit']:.0%} | "
            f"{r['others_mean_abs_change']:.3f} | {r['others_mean_abs_change_from_photo']:.3f} | "
            f"{top['attribute']} ({top['mean_abs_change']:.3f} / {top['mean_change']:+.3f}) "
            f"| {r['pixels_psnr_db_from_reconstruction']:.1f} | {goals} |")
    return "\n".join(lines)


def _route_name(route: str, strength: float | None) -> str:
    return route if strength is None else f"{route} {strength:g}"


# -- the figure ---------------------------------------------------------------------------------

def write_figure(path: Path, rows: list[tuple[str, np.ndarray, np.ndarray | None]],
                 title: str) -> Path:
    """rows: (label, uint8 images (k, R, R, 3), p(smile) per image or None)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(rows[0][1])
    fig, axes = plt.subplots(len(rows), k, figsize=(1.3 * k + 1.2, 1.45 * len(rows) + 0.6),
                             squeeze=False)
    for r, (label, images, p) in enumerate(rows):
        for c in range(k):
            ax = axes[r, c]
            ax.imshow(images[c], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if p is not None:
                ax.set_title(f"p={p[c]:.2f}", fontsize=7, pad=2,
                             color="tab:green" if p[c] >= 0.5 else "black")
        axes[r, 0].set_ylabel(label, fontsize=8)
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
    return path


# -- the benchmark ------------------------------------------------------------------------------

def main(argv=None) -> int:
    args = parse_args(argv)
    import facelib
    from facelib.classifier import AttributeClassifier
    from facelib.data.cache import FaceCache
    from facelib.errors import FacelibError
    from facelib.images import to_uint8
    from facelib.latent import (
        PivotalTuner, compute_attribute_directions, edit_attributes, invert, move,
        reconstruction_errors,
    )

    t_start = time.perf_counter()
    run = facelib.load_run(args.run)
    clf = AttributeClassifier.load(args.classifier)
    names = list(clf.attribute_names)
    if TARGET not in names:
        raise FacelibError(f"the classifier has no {TARGET} column")
    data = args.data or run.training_data()
    if data is None:
        raise FacelibError(f"{args.run} does not name an existing training cache; pass --data "
                           "(a prepared cache with the run's partition)")
    cache = FaceCache.open(data)
    print(f"{run}; {clf}; photos from {cache}", flush=True)

    rows, photos, p_photo, counts = pick_photos(cache, clf, run.resolution, args.n, args.split,
                                                args.seed)
    print(f"{counts['split_faces']} {args.split} faces, {counts['labelled_not_smiling']} labelled "
          f"not smiling, {counts['also_classified_not_smiling']} also classified not smiling; "
          f"inverting {len(rows)} ({args.steps} steps)", flush=True)

    attrs = None
    if run.conditional:  # the classifier's reading of each photo, in the run's column order
        missing = [a for a in run.attribute_names if a not in names]
        if missing:
            raise FacelibError(f"the classifier lacks the run's attributes {missing}")
        attrs = (p_photo[:, [names.index(a) for a in run.attribute_names]] >= 0.5
                 ).astype(np.float32)
    t = time.perf_counter()
    result = invert(run, photos, attrs=attrs, steps=args.steps, init=args.init, seed=args.seed)
    t_invert = time.perf_counter() - t
    p_recon = clf.predict_proba(result.reconstructions)

    # -- the edits: (route, strength, uint8 images) --
    edits, direction_info, t_direction, direction = [], None, 0.0, None
    if run.conditional:
        for s in args.label_strength:
            edits.append(("label", float(s), edit_attributes(run, result, {TARGET: 1},
                                                             strength=s)))
    if not run.conditional or args.direction_route:
        t = time.perf_counter()
        held = {TARGET: 0} if run.conditional else None
        dset = compute_attribute_directions(run, clf, [TARGET], n=args.n_direction,
                                            seed=args.seed, attrs=held)
        t_direction = time.perf_counter() - t
        direction_info = {**dset.info(TARGET), "n": args.n_direction,
                          "attrs_held": held, "seconds": round(t_direction, 1)}
        print(f"{TARGET} direction from {args.n_direction} latents: SVM held-out accuracy "
              f"{direction_info['accuracy']:.2f}", flush=True)
        direction = dset[TARGET]
        for s in args.strength:
            images = to_uint8(run.synthesize(move(result.z, direction, s), result.attrs))
            edits.append(("direction", float(s), images))

    # -- pivotal tuning: one tuned generator per photo, every edit again with it --
    tuned_recon, tuned_edits, tuning = None, [], None
    if args.tune_steps:
        t = time.perf_counter()
        recons, images = [], {(route, s): [] for route, s, _ in edits}
        tuner = PivotalTuner(run)  # compiled once, reset before each photo
        for i in range(len(rows)):
            one = result.select([i])
            tuned = tuner(one, steps=args.tune_steps, seed=args.seed + i)
            recons.append(to_uint8(tuned.synthesize(one.z, one.attrs)))
            for route, s in images:
                images[route, s].append(
                    edit_attributes(tuned, one, {TARGET: 1}, strength=s) if route == "label"
                    else to_uint8(tuned.synthesize(move(one.z, direction, s), one.attrs)))
            if (i + 1) % 10 == 0:
                print(f"tuned {i + 1}/{len(rows)} generators", flush=True)
        tuned_recon = np.concatenate(recons)
        tuned_edits = [(f"{route}, tuned", s, np.concatenate(v))
                       for (route, s), v in images.items()]
        psnr = reconstruction_errors(result.targets, tuned_recon)[1]
        tuning = {"steps": args.tune_steps, "psnr_db": float(np.mean(psnr)),
                  "psnr_std_db": float(np.std(psnr)), "psnr": psnr,
                  "seconds": round(time.perf_counter() - t, 1)}
        print(f"pivotal tuning, {args.tune_steps} steps per photo: reconstruction PSNR "
              f"{np.mean(result.psnr):.1f} -> {tuning['psnr_db']:.1f} dB "
              f"({tuning['seconds']:.0f} s)", flush=True)

    j = names.index(TARGET)
    routes, scored = [], []
    p_tuned = None if tuned_recon is None else clf.predict_proba(tuned_recon)
    for group, p_base, base, psnr_db in (
            (edits, p_recon, result.reconstructions, float(np.mean(result.psnr))),
            (tuned_edits, p_tuned, tuned_recon, tuning and tuning["psnr_db"])):
        group_scores = []
        for route, strength, images in group:
            p_edit = clf.predict_proba(images)
            group_scores.append(p_edit)
            routes.append({"route": route, "strength": strength, "psnr_db": psnr_db,
                           **edit_measures(p_base, p_edit, names, p_photo),
                           **pixel_measures(base, images, result.targets)})
        label = "label" if group is edits else "label, tuned"
        bound = smallest_smiling_bound(group, group_scores, j, label)
        if bound is not None:
            p_bound, mean_strength, bound_images = bound
            routes.append({"route": f"{label}, per-face smallest (bound)", "strength": None,
                           "mean_strength": mean_strength, "psnr_db": psnr_db,
                           **edit_measures(p_base, p_bound, names, p_photo),
                           **pixel_measures(base, bound_images, result.targets)})
        scored += group_scores
    edits = edits + tuned_edits
    others = [i for i in range(len(names)) if i != j]
    report = {
        "benchmark": "smile edit on real photos",
        "run": str(args.run), "run_path": str(run.path), "run_step": int(run.step),
        "conditional": bool(run.conditional), "resolution": int(run.resolution),
        "classifier": str(args.classifier), "data": str(cache.path), "split": args.split,
        "seed": args.seed, "n": int(len(rows)), "steps": args.steps, "init": result.init,
        "strengths": args.strength, "label_strengths": args.label_strength,
        "goals": {"smiling_share_edit": GOAL_SHARE, "others_mean_abs_change": GOAL_OTHERS},
        "selection": counts,
        "psnr_db": float(np.mean(result.psnr)), "psnr_std_db": float(np.std(result.psnr)),
        "mse": float(np.mean(result.mse)),
        "smiling_share_photo": float(np.mean(p_photo[:, j] >= 0.5)),
        "reconstruction_vs_photo_others_mean_abs_change": float(
            np.abs(p_recon[:, others] - p_photo[:, others]).mean()),
        "direction": direction_info,
        "tuning": None if tuning is None else {
            **{k: v for k, v in tuning.items() if k != "psnr"},
            "reconstruction_vs_photo_others_mean_abs_change": float(
                np.abs(p_tuned[:, others] - p_photo[:, others]).mean())},
        "routes": routes,
        "faces": [{"row": int(r), "filename": cache.filenames[int(r)],
                   "psnr_db": float(result.psnr[i]),
                   "p_smiling_photo": float(p_photo[i, j]),
                   "p_smiling_reconstruction": float(p_recon[i, j]),
                   **({} if tuning is None else {
                       "psnr_db_tuned": float(tuning["psnr"][i]),
                       "p_smiling_reconstruction_tuned": float(p_tuned[i, j])}),
                   "p_smiling_edit": {_route_name(route, strength): float(p[i, j])
                                      for (route, strength, _), p in zip(edits, scored)}}
                  for i, r in enumerate(rows)],
        "seconds": {"inversion": round(t_invert, 1), "direction": round(t_direction, 1),
                    "tuning": 0.0 if tuning is None else tuning["seconds"],
                    "total": round(time.perf_counter() - t_start, 1)},
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
    }

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".smile_edit.json.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(report, indent=1) + "\n")
    os.replace(tmp, out / "smile_edit.json")

    k = min(args.figure_faces, len(rows))
    fig_rows = [("photo", result.targets[:k], p_photo[:k, j]),
                ("reconstruction", result.reconstructions[:k], p_recon[:k, j])]
    if tuned_recon is not None:
        fig_rows.append(("reconstruction, tuned", tuned_recon[:k], p_tuned[:k, j]))
    for (route, strength, images), p_edit in zip(edits, scored):
        fig_rows.append((f"+ smile ({_route_name(route, strength)})", images[:k], p_edit[:k, j]))
    title = (f"{Path(str(run.path)).name} step {run.step}: {len(rows)} held-out non-smiling "
             f"photos, {args.steps} inversion steps, PSNR {report['psnr_db']:.1f} dB"
             + ("" if tuning is None else
                f" ({tuning['psnr_db']:.1f} dB tuned, {args.tune_steps} steps per photo)")
             + "; p = classifier's p(Smiling)")
    write_figure(out / "smile_edit.png", fig_rows, title)

    print()
    print(markdown_table(report))
    print(f"\nreconstructions' other 39 attributes vs the photos': mean abs change "
          f"{report['reconstruction_vs_photo_others_mean_abs_change']:.3f}; "
          f"wrote {out / 'smile_edit.json'} and {out / 'smile_edit.png'} "
          f"({report['seconds']['total']:.0f} s)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # FacelibError: one line with the fix, not a traceback
        from facelib.errors import FacelibError

        if isinstance(e, FacelibError):
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
        raise
