"""The real-or-synthetic study end to end, with timings: detector, robustness, AP by step, CAS,
rebalancing. Prints Markdown tables and writes everything to OUT/study.json.

    python -m facelib prepare /work/shared/data/celeba-8k /tmp/c32 --resolution 32
    python -m facelib train --data /tmp/c32 --run runs/uncond --preset cpu-diffaugment --steps 1500 \
        --set keep_checkpoints=10
    python -m facelib train --data /tmp/c32 --run runs/cond --preset cpu-diffaugment --steps 1500 \
        --conditional --set keep_checkpoints=10
    python -m facelib train --data /tmp/c32 --run runs/hinge64 --preset cpu-diffaugment --steps 1000 \
        --loss hinge --set g_width=64 --set d_width=64 --seed 1
    python benchmarks/bench_detector.py --data /tmp/c32 --seen runs/uncond \
        --unseen runs/cond runs/hinge64 runs/uncond@step-00000250 \
        --steps-runs runs/uncond runs/cond --conditional runs/cond --out /tmp/study \
        --no-augment-baseline --retrain-per-step
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


def markdown(rows, columns, key=None) -> str:
    items = list(rows.items()) if isinstance(rows, dict) else [(None, r) for r in rows]
    head = ([key] if key else []) + list(columns)
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, row in items:
        cells = [str(name)] if key else []
        for c in columns:
            v = row.get(c)
            cells.append("n/a" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v))
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


class Timer:
    def __init__(self):
        self.times = {}

    def __call__(self, name):
        timer = self

        class _T:
            def __enter__(self):
                self.t = time.perf_counter()
                print(f"\n## {name}", flush=True)

            def __exit__(self, *exc):
                timer.times[name] = round(time.perf_counter() - self.t, 1)
                print(f"({timer.times[name]} s)", flush=True)

        return _T()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", required=True, help="prepared cache (32 px celeba-8k)")
    p.add_argument("--seen", nargs="+", required=True, help="runs the detector trains on")
    p.add_argument("--unseen", nargs="*", default=[], help="runs it never sees")
    p.add_argument("--steps-runs", nargs="*", default=[], help="runs for AP against the step")
    p.add_argument("--conditional", help="conditional run for CAS and rebalancing")
    p.add_argument("--unconditional", help="unconditional run for CAS with predicted labels "
                   "(default: the first --seen run)")
    p.add_argument("--out", required=True)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--no-augment-baseline", action="store_true",
                   help="also train a detector without blur/JPEG to compare robustness")
    p.add_argument("--n-test", type=int, default=800)
    p.add_argument("--cas-epochs", type=int, default=5)
    p.add_argument("--rebalance-n-real", type=int, default=1000)
    p.add_argument("--rebalance-epochs", type=int, default=10)
    p.add_argument("--rebalance-seeds", type=int, nargs="+", default=[0])
    p.add_argument("--retrain-per-step", action="store_true",
                   help="also train a fresh detector on each checkpoint of --steps-runs")
    p.add_argument("--retrain-n-real", type=int, default=2000)
    p.add_argument("--retrain-epochs", type=int, default=2)
    p.add_argument("--skip", nargs="*", default=[],
                   choices=["detector", "retrain", "cas", "cas-unconditional", "rebalance"])
    args = p.parse_args(argv)

    from facelib.data.cache import FaceCache
    from facelib.detector import ap_by_step, detection_report, train_detector

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    study: dict = {"args": vars(args)}
    timer = Timer()
    cols = ["accuracy", "real_accuracy", "fake_accuracy", "ap"]
    cache = FaceCache.open(args.data)

    def save():
        study["seconds"] = timer.times
        (out / "study.json").write_text(json.dumps(study, indent=1, default=str) + "\n")

    if "detector" not in args.skip:
        variants = {"blur+jpeg": True}
        if args.no_augment_baseline:
            variants["no augmentation"] = False
        for name, augment in variants.items():
            with timer(f"train detector ({name})"):
                det = train_detector(cache, args.seen, out / f"detector-{name.replace(' ', '-')}",
                                     epochs=args.epochs, width=args.width, augment=augment,
                                     verbose=2)
                print(f"best epoch {det.meta['best_epoch']}: history {det.meta['history']}")
            with timer(f"evaluate detector ({name})"):
                report = detection_report(det, cache, args.seen, args.unseen, n=args.n_test)
                print(f"held-out real faces (test split, n={report['n_real']}) vs fakes:")
                print(markdown(report["generators"], cols, key="generator"))
                for group, table in report["robustness"].items():
                    print(f"\nrobustness, {group} generators (perturbation on real and fake):")
                    print(markdown(table, cols, key="perturbation"))
            steps = {}
            with timer(f"AP by generator step ({name})"):
                real = np.asarray(cache.images[cache.indices("test")[:args.n_test]])
                for run in args.steps_runs:
                    steps[run] = ap_by_step(det, run, real)
                    print(f"\n{run}:")
                    print(markdown(steps[run], ["step"] + cols))
            study[f"detector ({name})"] = {"meta": det.meta, "report": report, "by_step": steps}
            save()

    if args.retrain_per_step and "retrain" not in args.skip:
        from facelib.detector import detectability_by_step

        study["detectability_by_step"] = {}
        for run in args.steps_runs:
            with timer(f"detectability by step, a fresh detector per checkpoint: {run}"):
                rows = detectability_by_step(cache, run, n_real=args.retrain_n_real,
                                             epochs=args.retrain_epochs, n_test=args.n_test)
                print(markdown(rows, ["step"] + cols))
            study["detectability_by_step"][run] = rows
            save()

    if "cas" not in args.skip and args.conditional:
        from facelib.synthetic import cas_table, synthesize_labelled

        n_syn = len(cache.indices("train"))
        with timer("CAS, conditional run (requested labels)"):
            syn = synthesize_labelled(args.conditional, n_syn, seed=11)
            table = cas_table(cache, syn, epochs=args.cas_epochs, seed=0)
            print(markdown({k: v for k, v in table.items() if k != "_info"},
                           ["n_real", "n_synthetic", "mean_accuracy", "mean_majority_accuracy",
                            "mean_auc"], key="trained on"))
        study["cas_conditional"] = table
        save()

    if "cas-unconditional" not in args.skip:
        from facelib.classifier import fit_attribute_classifier
        from facelib.synthetic import cas_table, synthesize_labelled

        n_syn = len(cache.indices("train"))
        uncond = args.unconditional or args.seen[0]
        with timer("CAS, unconditional run (labels predicted by a real-trained classifier)"):
            tr, va = cache.indices("train"), cache.indices("valid")
            labeller = fit_attribute_classifier(
                np.asarray(cache.images[tr]), cache.attributes[tr], np.asarray(cache.images[va]),
                cache.attributes[va], epochs=args.cas_epochs, batch_size=64, width=32, seed=1)
            syn_u = synthesize_labelled(uncond, n_syn, seed=12, classifier=labeller)
            table_u = cas_table(cache, syn_u, settings=["synthetic", "real+synthetic"],
                                epochs=args.cas_epochs, seed=0)
            print(markdown({k: v for k, v in table_u.items() if k != "_info"},
                           ["n_real", "n_synthetic", "mean_accuracy", "mean_majority_accuracy",
                            "mean_auc"], key="trained on"))
        study["cas_unconditional"] = table_u
        save()

    if "rebalance" not in args.skip and args.conditional:
        from facelib.synthetic import rebalance_experiment

        results = []
        with timer("rebalancing Eyeglasses"):
            for seed in args.rebalance_seeds:
                res = rebalance_experiment(cache, args.conditional, "Eyeglasses",
                                           n_real=args.rebalance_n_real,
                                           epochs=args.rebalance_epochs, seed=seed)
                results.append(res)
                print(f"\nseed {seed}: {res['_info']}")
                print(markdown({k: v for k, v in res.items() if k != "_info"},
                               ["n_train", "train_rate", "recall", "precision", "auc",
                                "others_mean_accuracy", "others_mean_auc"], key="training set"))
        study["rebalance"] = results
        save()
    save()
    print(f"\nwrote {out / 'study.json'}; seconds per stage: {timer.times}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
