"""FID Inception feature-extraction speed and peak memory on this machine's CPU.

Each configuration (batch size x jit_compile) runs in a fresh subprocess so its peak RSS is its
own. Reported: warm-up time (first batch: tracing, and XLA compilation when jit_compile), steady
images/s over --images images, and peak resident memory. Images are real faces when a data path is
given (resized to --resolution by facelib.data.sources), else seeded random uint8 images.

    python benchmarks/bench_features.py [/work/shared/data/celeba-8k] --images 128

Numbers depend on what else runs on the machine: the load average is printed with each line.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def child(args) -> None:
    sys.path.insert(0, str(ROOT))
    import numpy as np

    from facelib.metrics import inception as inc

    t0 = time.perf_counter()
    if args.data:
        from facelib.data.sources import load_images

        images = load_images(args.data, args.resolution, limit=args.images)
    else:
        images = np.random.default_rng(0).integers(
            0, 256, (args.images, args.resolution, args.resolution, 3), dtype=np.uint8)
    rss_data = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    net = inc.fid_inception(jit_compile=args.jit)
    t_build = time.perf_counter() - t0
    rss_built = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    bs = args.batch_size
    t1 = time.perf_counter()
    net(images[:bs])  # warm-up: trace (and XLA-compile) once
    t_warm = time.perf_counter() - t1
    t2 = time.perf_counter()
    feats = net.extract(images, batch_size=bs)
    t_run = time.perf_counter() - t2
    print(json.dumps({
        "batch_size": bs, "jit_compile": args.jit, "images": int(feats.shape[0]),
        "build_s": round(t_build, 1), "warmup_s": round(t_warm, 1), "run_s": round(t_run, 1),
        "img_per_s": round(feats.shape[0] / t_run, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "rss_after_build_mb": round(rss_built / 1024), "rss_data_mb": round(rss_data / 1024),
        "load_avg": round(os.getloadavg()[0], 1),
    }))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data", nargs="?", help="image source (CelebA folder, cache, folder)")
    ap.add_argument("--images", type=int, default=128)
    ap.add_argument("--resolution", type=int, default=64)
    ap.add_argument("--batch-sizes", default="32,64")
    ap.add_argument("--jit", default="0,1", help="jit_compile settings to try, e.g. 0,1")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--batch-size", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        args.jit = args.jit == "1"
        child(args)
        return 0

    print(f"FID Inception feature extraction, {args.images} images "
          f"{args.resolution}x{args.resolution} -> 299x299, {os.cpu_count()} CPUs, "
          f"load avg at start {os.getloadavg()[0]:.1f}")
    print(f"{'batch':>5} {'jit':>5} {'img/s':>7} {'warm-up s':>9} {'build s':>7} "
          f"{'peak RSS MB':>11} {'load':>5}")
    for bs in [int(b) for b in args.batch_sizes.split(",")]:
        for jit in args.jit.split(","):
            cmd = [sys.executable, __file__, "--child", "--batch-size", str(bs), "--jit", jit,
                   "--images", str(args.images), "--resolution", str(args.resolution)]
            if args.data:
                cmd.insert(2, args.data)
            proc = subprocess.run(cmd, capture_output=True, text=True,
                                  env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
            if proc.returncode or not lines:
                print(f"{bs:>5} {jit:>5} FAILED: {proc.stderr.strip().splitlines()[-1:]}")
                continue
            r = json.loads(lines[-1])
            print(f"{bs:>5} {str(r['jit_compile']):>5} {r['img_per_s']:>7.2f} "
                  f"{r['warmup_s']:>9.1f} {r['build_s']:>7.1f} {r['peak_rss_mb']:>11} "
                  f"{r['load_avg']:>5}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
