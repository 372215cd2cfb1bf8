"""Standing BatchNorm statistics, measured: each exported generator as saved (its BatchNorm
statistics copied from G, as every run before ``config.standing_statistics`` saved them) and the
same weights with statistics measured on its own activations (``facelib.models.
standing_statistics.recompute``), against the same held-out faces.

Training never reads the EMA generator, so the second network is exactly what the run would have
saved with ``--set standing_statistics=N``: the comparison is paired (same weights, latents,
attribute rows and real faces), and the rows differ only by the statistics. The protocol is
``bench_quality.py``'s: n generated faces (latents from seed 1; a conditional generator gets
training faces' attribute rows) against n of the valid+test faces (seed 0), FID Inception.

    python benchmarks/bench_standing_statistics.py --data caches/celeba8k-64 --out standing \\
        bench-quality/cpu-wide-lr2x/generator-20min.keras ...

Writes OUT/standing.json and OUT/standing.md: per generator KID, FID, precision, recall and
coverage both ways, and over all generators the mean KID ratio with a paired t-test on the KID
differences.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_quality import generate_faces, held_out_faces  # noqa: E402  (the same protocol)

STANDING_SEED = 7  # the recomputation's latents and attribute rows: apart from the evaluation's
METRICS = ("kid", "fid", "precision", "recall", "density", "coverage")  # bench_quality.py's


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("generators", nargs="+", help="exported .keras generators")
    ap.add_argument("--data", required=True, help="the prepared cache the runs trained on")
    ap.add_argument("--out", required=True)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--standing", type=int, default=1024,
                    help="latents the statistics are measured over (config.standing_statistics)")
    ap.add_argument("--resolution", type=int, default=32)
    args = ap.parse_args()
    missing = [g for g in args.generators if not Path(g).is_file()]
    if missing:
        raise SystemExit(f"no generator file at {missing[0]}: give the .keras files a bench "
                         "wrote (e.g. OUT/CANDIDATE/generator-20min.keras)")

    import keras
    import numpy as np
    from scipy import stats

    from facelib.data.cache import FaceCache
    from facelib.data.pipeline import attribute_rows
    from facelib.images import resize_batch
    from facelib.metrics import registry
    from facelib.models.standing_statistics import recompute

    cache = FaceCache.open(args.data)
    held = held_out_faces(cache, args.n)[1]
    n = len(held)
    net = registry.feature_network("standard", log=None)

    def feats(images):
        return net.extract(resize_batch(np.asarray(images), args.resolution))

    real = feats(cache.images[held])
    rows = []
    for path in args.generators:
        g = keras.models.load_model(path, compile=False)
        conditional = len(g.inputs) > 1
        z = np.random.default_rng(1).standard_normal((n, g.inputs[0].shape[-1])).astype("float32")
        attrs = attribute_rows(cache, n, 2) if conditional else None

        def measure():
            m = registry.compute(["kid", "fid", "prdc"], real, feats(generate_faces(g, z, attrs)))
            return {k: float(m[k]) for k in METRICS}

        saved = measure()
        latents = np.random.default_rng(STANDING_SEED).standard_normal(
            (args.standing, z.shape[1])).astype("float32")
        recompute(g, latents, attribute_rows(cache, args.standing, STANDING_SEED)
                  if conditional else None)
        standing = measure()
        row = {"generator": path, **{f"{k}_saved": v for k, v in saved.items()},
               **{f"{k}_standing": v for k, v in standing.items()},
               "kid_ratio": standing["kid"] / saved["kid"]}
        print(json.dumps(row), flush=True)
        rows.append(row)

    diffs = np.array([r["kid_standing"] - r["kid_saved"] for r in rows])
    summary = {"generators": len(rows), "standing": args.standing, "n": n,
               "mean_kid_ratio": float(np.mean([r["kid_ratio"] for r in rows])),
               "lower_with_standing": int(np.sum(diffs < 0)),
               "paired_t_p": float(stats.ttest_1samp(diffs, 0.0).pvalue) if len(rows) > 1
               else None}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "standing.json").write_text(json.dumps({"summary": summary, "rows": rows}, indent=1))
    lines = [f"Standing statistics over {args.standing} latents, n = {n}", "",
             "| generator | KID as saved | KID standing | ratio | FID as saved | FID standing "
             "| recall as saved | recall standing | precision standing | coverage standing |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['generator']} | {r['kid_saved']:.4f} | {r['kid_standing']:.4f} | "
              f"{r['kid_ratio']:.2f} | {r['fid_saved']:.1f} | {r['fid_standing']:.1f} | "
              f"{r['recall_saved']:.2f} | {r['recall_standing']:.2f} | "
              f"{r['precision_standing']:.2f} | {r['coverage_standing']:.2f} |" for r in rows]
    p = summary["paired_t_p"]
    lines += ["", f"Mean KID ratio {summary['mean_kid_ratio']:.3f}; lower with standing "
              f"statistics for {summary['lower_with_standing']} of {len(rows)}"
              + (f"; paired t-test p = {p:.3g}" if p is not None else "")]
    (out / "standing.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
