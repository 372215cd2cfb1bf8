"""What attribute control accuracy costs: generating 2 x 40 x n faces and classifying them.

Times, for each n, the whole ``control_accuracy`` call and its two halves on their own
(generation through ``run.synthesize``, classification through ``predict_proba``), so one can
pick n for a time budget. Needs a conditional run and a saved attribute classifier:

    python benchmarks/bench_conditional.py --run RUN --classifier CLF --n 16,64
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True)
    ap.add_argument("--classifier", required=True)
    ap.add_argument("--n", default="16,64", help="faces per attribute value, comma-separated")
    ap.add_argument("--repeats", type=int, default=2, help="best of this many timings")
    args = ap.parse_args()

    import facelib
    from facelib.classifier import AttributeClassifier
    from facelib.attribute_control import control_accuracy

    run = facelib.load_run(args.run)
    clf = AttributeClassifier.load(args.classifier)
    print(f"{run}; {clf}")
    for n in (int(v) for v in args.n.split(",")):
        total = 2 * len(run.attribute_names) * n
        z = run.sample_latents(total, seed=0)
        y = run.sample_attributes(total, None, seed=0)

        def best(fn):
            times = []
            for _ in range(args.repeats):
                t = time.perf_counter()
                out = fn()
                times.append(time.perf_counter() - t)
            return min(times), out

        t_gen, faces = best(lambda: run.synthesize(z, y))
        t_clf, _ = best(lambda: clf.predict_proba(faces))
        t_all, report = best(lambda: control_accuracy(run, clf, n=n, seed=0))
        print(json.dumps({
            "n": n, "faces": total, "resolution": run.resolution,
            "control_accuracy_s": round(t_all, 2), "generate_s": round(t_gen, 2),
            "classify_s": round(t_clf, 2),
            "faces_per_s": round(total / t_all, 1),
            "mean_balanced": None if report.mean_balanced is None else round(report.mean_balanced, 3),
            "finite": bool(np.isfinite(faces).all())}))


if __name__ == "__main__":
    main()
