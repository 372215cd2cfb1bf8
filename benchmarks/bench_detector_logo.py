"""Leave-one-generator-out validation of detector recipes, and the detector facelib ships.

For every recipe (``facelib.detector.recipes``, or ``--recipes`` to pick) and every generator
family in turn: train on real faces against all other families, test on held-out real faces
(test split) against the held-out family's faces. Writes OUT/logo.json, OUT/logo.md (the summary
and one table per recipe) and, with ``--ship RECIPE``, trains that recipe on every family and
saves it to OUT/detector with the validation table in its meta.json (the shipped
``pretrained:detector`` is made this way).

    python -m facelib prepare ../shared/data/celeba-8k caches/celeba8k-64 --resolution 64
    python benchmarks/bench_detector_logo.py --data caches/celeba8k-64 --out logo \\
        --family "dcgan cpu=q32/cpu/generator-2.5min.keras,q32/cpu/generator-10min.keras" \\
        --family "resnet=q32/resnet/generator-10min.keras,runs/cond-resnet" \\
        --family "reference=pretrained:celeba32,pretrained:celeba32-cond" \\
        --ship "probe: inception+spectrum, +distance" --spectra-figure spectra.png

Families are ``NAME=SPEC,SPEC,...`` with run folders, ``RUN@step-NNNNNNNN``, ``pretrained:NAME``
or ``.keras`` generator files (``benchmarks/bench_quality.py`` writes those).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def parse_family(text: str) -> tuple[str, list[str]]:
    name, sep, specs = text.partition("=")
    members = [s.strip() for s in specs.split(",") if s.strip()]
    if not sep or not name.strip() or not members:
        raise SystemExit(f"--family {text!r}: write NAME=SPEC[,SPEC...]")
    return name.strip(), members


def spectra_figure(data, families, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from facelib.detector import plot_spectra, real_faces
    from facelib.run.interface import open_run

    sets = {"real (test split)": real_faces(data, "test", 400, seed=1)}
    for family, specs in families.items():
        sets[f"{family}: {Path(specs[-1]).name}"] = open_run(specs[-1]).generate(400, seed=3)
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2))
    for ax, res in zip(axes, (64, 32)):
        plot_spectra(sets, resolution=res, ax=ax)
        ax.set_title(f"every face resized to {res} px the same way")
    axes[1].get_legend().remove()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"spectra: {path}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", required=True, help="prepared cache with train/valid/test splits")
    p.add_argument("--out", required=True)
    p.add_argument("--family", action="append", required=True, metavar="NAME=SPEC,...")
    p.add_argument("--recipes", default="", help="recipe names separated by ';' (default: all)")
    p.add_argument("--resolutions", default="64", help="detector input sizes to compare, e.g. 32,64")
    p.add_argument("--n-real", type=int, default=1500)
    p.add_argument("--n-fake", type=int, default=300, help="training faces per generator")
    p.add_argument("--n-valid", type=int, default=400)
    p.add_argument("--n-test", type=int, default=400)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ship", help="recipe to train on every family and save to OUT/detector")
    p.add_argument("--ship-resolution", type=int, default=64)
    p.add_argument("--spectra-figure", metavar="PNG",
                   help="also plot the mean spectra of 400 real test faces and of the last member "
                        "of each family, at 64 and at 32 px (README's figure)")
    args = p.parse_args(argv)

    from facelib.detector import format_table, leave_one_generator_out, recipes, summarize
    from facelib.detector.validation import markdown_table

    families = dict(parse_family(f) for f in args.family)
    chosen = [r.strip() for r in args.recipes.split(";") if r.strip()]
    all_recipes, cnn = {}, {}
    for res in (int(r) for r in args.resolutions.split(",")):
        for name, fit in recipes(res).items():
            if name.startswith("cnn"):  # its input size is the cache's; trained last (slowest)
                if not chosen or name in chosen:
                    cnn[name] = fit
                continue
            key = f"{name} @{res}px"
            if not chosen or name in chosen or key in chosen:
                all_recipes[key] = fit
    all_recipes.update(cnn)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    rows = leave_one_generator_out(args.data, families, all_recipes, n_real=args.n_real,
                                   n_fake=args.n_fake, n_valid=args.n_valid, n_test=args.n_test,
                                   seed=args.seed, log=lambda m: print(m, flush=True))
    summary = summarize(rows)
    result = {"families": families, "rows": rows, "summary": summary,
              "n": {"real": args.n_real, "fake_per_generator": args.n_fake,
                    "valid": args.n_valid, "test": args.n_test},
              "seconds": round(time.time() - t0, 1), "data": str(args.data)}
    (out / "logo.json").write_text(json.dumps(result, indent=1) + "\n")
    cols = ["min_ap", "mean_ap", "real_accuracy", "fake_accuracy", "splits"]
    md = ["| recipe | worst unseen AP | mean unseen AP | worst real accuracy | "
          "mean fakes caught |", "|---|---|---|---|---|"]
    md += [f"| {k} | {v['min_ap']:.3f} | {v['mean_ap']:.3f} | {v['real_accuracy']:.3f} | "
           f"{v['fake_accuracy']:.3f} |" for k, v in summary.items()]
    for recipe in summary:
        md += ["", f"### {recipe}", "", markdown_table(rows, recipe)]
    (out / "logo.md").write_text("\n".join(md) + "\n")
    print(format_table(summary, cols, key="recipe"))
    print(f"{out / 'logo.md'} ({time.time() - t0:.0f} s)")

    if args.spectra_figure:
        spectra_figure(args.data, families, args.spectra_figure)
    if args.ship:
        from facelib.detector.validation import fit_on_families

        res = args.ship_resolution
        fit = recipes(res).get(args.ship)
        if fit is None:
            raise SystemExit(f"--ship {args.ship!r}: not one of {', '.join(recipes(res))}")
        det = fit_on_families(args.data, families, fit, n_real=args.n_real, n_fake=args.n_fake,
                              n_valid=args.n_valid, n_test=args.n_test, seed=args.seed)
        mine = args.ship if args.ship.startswith("cnn") else f"{args.ship} @{res}px"
        det.meta.update(recipe=mine, generators=families,
                        validation={"method": "leave-one-generator-out",
                                    "summary": summary.get(mine),
                                    "rows": [r for r in rows if r["recipe"] == mine],
                                    "n": result["n"]})
        det.save(out / "detector")
        print(f"shipped recipe saved: {out / 'detector'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
