"""Time and peak memory of the feature-space metrics on cached-feature-sized inputs.

Timing only: the features are synthetic (rectified Gaussians shaped like Inception pool
features, 10k x 10k x 2048 by default), so the metric values printed are meaningless.
Each metric runs in a fresh subprocess so its peak RSS (ru_maxrss) is its own;
"base MB" is the RSS with the two feature arrays loaded, before the metric starts.

    python benchmarks/bench_metrics.py                 # all metrics, 10k x 10k x 2048
    python benchmarks/bench_metrics.py --n 2000 --metrics fid,kid
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

CASES = {
    "fid": ("fid", {}),
    "kid": ("kid", {}),
    "kid-f32": ("kid", {"dtype": "float32"}),
    "pr": ("pr", {}),
    "dc": ("dc", {}),
    "prdc": ("prdc", {}),
    "ndb": ("ndb", {}),
}


def _rss_mb(which=resource.RUSAGE_SELF) -> float:
    return resource.getrusage(which).ru_maxrss / 1024.0  # Linux reports KiB


def _current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _features(n: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    real = np.maximum(rng.standard_normal((n, dim), dtype=np.float32), 0)
    gen = np.maximum(rng.standard_normal((n, dim), dtype=np.float32) + 0.05, 0)
    return real, gen


def run_one(case: str, n: int, dim: int) -> dict:
    from facelib.metrics import kid as kid_mod
    from facelib.metrics import registry

    real, gen = _features(n, dim, seed=0)
    base = _current_rss_mb()
    name, opts = CASES[case]
    t0 = time.perf_counter()
    if case == "kid-f32":
        res = kid_mod.kid(real, gen, dtype=np.float32)
        values = {"kid": res.mean, "kid_std": res.std}
    else:
        values = registry.compute([name], real, gen, options={name: opts} if opts else None)
    seconds = time.perf_counter() - t0
    return {"case": case, "seconds": seconds, "base_mb": base, "peak_mb": _rss_mb(), "values": values}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=10000, help="samples per set (real and generated)")
    p.add_argument("--dim", type=int, default=2048, help="feature dimension")
    p.add_argument("--metrics", default="fid,kid,kid-f32,pr,dc,prdc", help=f"comma list of {','.join(CASES)}")
    p.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one case, print JSON
    args = p.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(args.one, args.n, args.dim)))
        return 0
    cases = [c.strip() for c in args.metrics.split(",") if c.strip()]
    bad = [c for c in cases if c not in CASES]
    if bad:
        p.error(f"unknown metric(s) {bad}; choose from {', '.join(CASES)}")
    print(f"{args.n} real x {args.n} generated, {args.dim}-d float32 features (synthetic; timing only)")
    print(f"numpy {np.__version__}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start\n")
    print(f"{'metric':<8} {'seconds':>8} {'base MB':>8} {'peak MB':>8}  values")
    for case in cases:
        cmd = [sys.executable, os.path.abspath(__file__), "--one", case, "--n", str(args.n), "--dim", str(args.dim)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            print(f"{case:<8} failed:\n{out.stderr}")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        vals = ", ".join(f"{k}={v:.4g}" for k, v in r["values"].items())
        print(f"{case:<8} {r['seconds']:>8.2f} {r['base_mb']:>8.0f} {r['peak_mb']:>8.0f}  {vals}", flush=True)
    print(f"\nload average {os.getloadavg()[0]:.1f} at end (other processes on the machine slow every row)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
