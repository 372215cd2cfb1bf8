"""Preprocessing speed and peak memory: facelib's prepare vs the seed loop vs Keras' folder loader.

    python benchmarks/bench_preprocess.py DATA_DIR [--sizes 2000 8000] [--resolution 64]

DATA_DIR is a CelebA folder (img_align_celeba/ + list_attr_celeba.txt), e.g. ../shared/data/celeba-8k.
For each size N it links the first N images into a temporary CelebA-layout folder, reads every file
once (so all approaches see a warm page cache), then runs each approach in a fresh subprocess:

  ours   facelib.data.prepare.prepare: decode, CelebA crop and INTER_AREA in worker processes (one
         per CPU unless --workers), streamed in order to a uint8 .npy cache
  seed   the seed notebook's loop: cv2.imread + cv2.resize per file in Python, appended to a list and
         stacked into one float32 array in [0, 1] (the list-then-stack variant, the kinder one)
  keras  keras.utils.image_dataset_from_directory(labels=None, image_size=(R, R)) iterated fully

Throughput counts the work only (after imports); "CPU us/img" is the CPU time of all the child's
threads and of its own worker processes per image (what the work costs, whatever else the machine
is doing). Peak RSS is the child's ru_maxrss (whole process, imports included); "work RSS"
subtracts the RSS measured right before the work started; "worker RSS" is the peak RSS of the
largest of ours' worker processes (forked: most of it is pages shared with the parent). Repeats are
interleaved (ours, seed, keras, ours, ...) so that a change in the machine's load hits every
approach alike, and the fastest of each is reported, with the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

APPROACHES = ("ours", "seed", "keras")
FULL_CELEBA = 202_599


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds() -> float:
    """User + system CPU time of this process (all threads) and of its finished child processes."""
    r, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime + c.ru_utime + c.ru_stime


def worker(approach: str, data: Path, resolution: int, out: Path, workers: int | None) -> dict:
    """Run one approach in this (fresh) process; return timings and memory."""
    import numpy as np

    images_dir = data / "img_align_celeba"
    if approach == "ours":
        from facelib.data.prepare import prepare

        base = rss_mb()
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        c0, t0 = cpu_seconds(), time.perf_counter()
        report = prepare(data, out / "cache", resolution, progress=False, workers=workers)
        n = report.written
    elif approach == "seed":
        import cv2

        base = rss_mb()
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        c0, t0 = cpu_seconds(), time.perf_counter()
        images = []
        for name in sorted(os.listdir(images_dir)):
            img = cv2.imread(str(images_dir / name))
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
            img = cv2.resize(img, (resolution, resolution))
            images.append(img.astype(np.float32) / 255.0)
        x = np.array(images, dtype=np.float32)
        n = len(x)
    elif approach == "keras":
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import keras

        base = rss_mb()
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        c0, t0 = cpu_seconds(), time.perf_counter()
        ds = keras.utils.image_dataset_from_directory(
            str(images_dir), labels=None, image_size=(resolution, resolution), batch_size=64,
            shuffle=False, verbose=False)
        n = 0
        for batch in ds:
            n += int(np.asarray(batch).shape[0])
    else:
        raise SystemExit(f"unknown approach {approach}")
    seconds = time.perf_counter() - t0
    cpu = cpu_seconds() - c0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    # The largest child process waited for; 0 unless the work started one bigger than those
    # that imports ran (TensorFlow's import runs a large one).
    workers_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    workers_peak = workers_peak if workers_peak > children_before else 0.0
    return {"approach": approach, "images": n, "seconds": seconds, "cpu_seconds": cpu, "peak_rss_mb": peak,
            "work_rss_mb": peak - base, "worker_rss_mb": workers_peak}


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def worker_rss(r: dict) -> str:
    return f"{r['worker_rss_mb']:.0f}" if r.get("worker_rss_mb") else "-"


def subset(data: Path, n: int, into: Path) -> Path:
    """A CelebA-layout folder with the first ``n`` labelled images of ``data`` (symlinks)."""
    lines = (data / "list_attr_celeba.txt").read_text().splitlines()
    rows = [ln for ln in lines[2:] if ln.strip()][:n]
    if len(rows) < n:
        raise SystemExit(f"{data} has only {len(rows)} labelled images, fewer than {n}")
    folder = into / f"celeba-{n}"
    (folder / "img_align_celeba").mkdir(parents=True)
    for row in rows:
        name = row.split()[0]
        src = (data / "img_align_celeba" / name).resolve()
        os.symlink(src, folder / "img_align_celeba" / name)
        with open(src, "rb") as f:  # warm the page cache for every approach alike
            f.read()
    (folder / "list_attr_celeba.txt").write_text("\n".join([str(n), lines[1]] + rows) + "\n")
    return folder


def run_child(approach: str, data: Path, resolution: int, workers: int | None, tmp: Path) -> dict:
    out = Path(tempfile.mkdtemp(dir=tmp))
    cmd = [sys.executable, __file__, "--worker", approach, str(data), "--resolution", str(resolution),
           "--out", str(out)]
    if workers:
        cmd += ["--workers", str(workers)]
    repo = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(repo) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    shutil.rmtree(out, ignore_errors=True)
    if proc.returncode != 0:
        raise SystemExit(f"{approach} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", type=Path, help="a CelebA folder (img_align_celeba/ + list_attr_celeba.txt)")
    p.add_argument("--sizes", type=int, nargs="+", default=[2000, 8000])
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes for ours (default: prepare's, one per CPU; 1: serial)")
    p.add_argument("--approaches", nargs="+", default=list(APPROACHES), choices=APPROACHES)
    p.add_argument("--repeats", type=int, default=1, help="runs per cell; the fastest is reported")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.data, args.resolution, args.out, args.workers)))
        return 0

    print(f"data {args.data} | resolution {args.resolution} | CPUs {os.cpu_count()} | "
          f"python {sys.version.split()[0]} | load average {load_average()}")
    results: dict[tuple[str, int], dict] = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for n in args.sizes:
            folder = subset(args.data, n, tmp)
            runs: dict[str, list[dict]] = {a: [] for a in args.approaches}
            for _ in range(args.repeats):
                for approach in args.approaches:
                    runs[approach].append(run_child(approach, folder, args.resolution, args.workers, tmp))
            for approach in args.approaches:
                results[approach, n] = min(runs[approach], key=lambda r: r["seconds"])
                r = results[approach, n]
                print(f"  {approach:5s} n={n:6d}: {r['images'] / r['seconds']:8.0f} img/s, "
                      f"{1e6 * r['cpu_seconds'] / r['images']:5.0f} CPU us/img, "
                      f"peak RSS {r['peak_rss_mb']:7.0f} MB", flush=True)

    print(f"\nload average after: {load_average()}")
    header = f"{'approach':8s} {'N':>6s} {'seconds':>8s} {'img/s':>8s} {'vs seed':>8s} " \
             f"{'CPU us/img':>11s} {'peak RSS MB':>12s} {'work RSS MB':>12s} {'worker RSS MB':>14s}"
    print(header)
    print("-" * len(header))
    for n in args.sizes:
        seed = results.get(("seed", n))
        for approach in args.approaches:
            r = results[approach, n]
            rate = r["images"] / r["seconds"]
            ratio = f"{rate / (seed['images'] / seed['seconds']):7.2f}x" if seed else "     n/a"
            print(f"{approach:8s} {n:6d} {r['seconds']:8.2f} {rate:8.0f} {ratio:>8s} "
                  f"{1e6 * r['cpu_seconds'] / r['images']:11.0f} {r['peak_rss_mb']:12.0f} "
                  f"{r['work_rss_mb']:12.0f} {worker_rss(r):>14s}")
    if len(args.sizes) > 1:
        lo, hi = min(args.sizes), max(args.sizes)
        print(f"\npeak RSS growth from N={lo} to N={hi}, and projected (linearly) to all {FULL_CELEBA:,} "
              f"CelebA images:")
        for approach in args.approaches:
            a, b = results[approach, lo]["peak_rss_mb"], results[approach, hi]["peak_rss_mb"]
            projected = b + (b - a) / (hi - lo) * (FULL_CELEBA - hi)
            line = f"  {approach:6s} {b - a:+8.0f} MB   -> about {projected / 1024:6.1f} GB"
            wa, wb = results[approach, lo]["worker_rss_mb"], results[approach, hi]["worker_rss_mb"]
            if wa or wb:
                line += f"   (largest worker process: {wb - wa:+.0f} MB, {wb:.0f} MB at N={hi})"
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
