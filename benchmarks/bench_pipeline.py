"""The input pipeline alone: images/s that `make_dataset` delivers, against what a train step
consumes, to show whether the data can keep an accelerator busy.

Iterates the tf.data chain (shuffled batches gathered from the uint8 memmap, mirrored) without
any model, for each batch size and resolution, after a warm-up, in both of its outputs: uint8,
what training uses (the train step converts on its device), and float in [-1, 1] converted on
the CPU (optionally area-downsampled), the baseline. Then it times the `colab` preset's train
step on this machine at the same batch for the ratio.

A GPU step is faster than this CPU's, and no GPU may be at hand, so the rate is also set against
an upper bound on what a GPU can consume: the `colab` step's FLOPs per image (counted from the
layers, as ``bench_train.py`` does) at the GPU's full dense tensor-core peak. No training step
reaches its peak, so a pipeline faster than that bound cannot starve that GPU. The peaks are
NVIDIA's datasheet figures for 16-bit inputs (dense, no sparsity).

    python benchmarks/bench_pipeline.py --data caches/celeba8k-64 --batches 128 --batch-size 128
"""

from __future__ import annotations

import argparse
import json
import time

from bench_train import step_flops_per_image

# Dense 16-bit tensor-core peaks, FLOP/s (NVIDIA datasheets): the GPUs Colab lends, and an H100.
GPU_PEAK_FLOPS = {"T4": 65e12, "L4": 121e12, "A100": 312e12, "H100 SXM": 989e12}


def pipeline_rate(cache, batch_size: int, resolution: int, batches: int,
                  uint8: bool = False) -> float:
    from facelib.data.pipeline import make_dataset

    ds = make_dataset(cache, batch_size, seed=0, resolution=resolution, uint8=uint8)
    it = iter(ds)
    for _ in range(5):  # warm-up: tracing, first pages of the memmap
        next(it)
    t = time.perf_counter()
    for _ in range(batches):
        images, _ = next(it)
    images.numpy()
    return batches * batch_size / (time.perf_counter() - t)


def colab_step_flops_per_image(resolution: int) -> float:
    from facelib.config import preset
    from facelib.models import build_discriminator, build_generator

    cfg = preset("colab", precision="float32", resolution=resolution)
    return step_flops_per_image(build_generator(cfg), build_discriminator(cfg))


def train_step_rate(cache, batch_size: int, resolution: int, steps: int) -> float:
    import keras

    from facelib.config import preset
    from facelib.data.pipeline import make_dataset
    from facelib.training.gan import GAN

    keras.config.set_dtype_policy("float32")
    gan = GAN(preset("colab", precision="float32", jit_compile=False, resolution=resolution,
                     batch_size=batch_size))
    gan.compile()
    ds = make_dataset(cache, batch_size, seed=0, resolution=resolution, uint8=True)
    gan.fit(ds, steps_per_epoch=2, epochs=1, verbose=0)
    t = time.perf_counter()
    gan.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0)
    return steps * batch_size / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="a prepared cache (python -m facelib prepare)")
    ap.add_argument("--batch-size", default="64,128")
    ap.add_argument("--resolutions", default="", help="default: the cache's, and half of it")
    ap.add_argument("--batches", type=int, default=100)
    ap.add_argument("--steps", type=int, default=5, help="train steps timed for the ratio")
    args = ap.parse_args()

    from facelib.data.cache import FaceCache

    cache = FaceCache.open(args.data)
    resolutions = ([int(r) for r in args.resolutions.split(",")] if args.resolutions
                   else [cache.resolution, cache.resolution // 2])
    for r in resolutions:
        flops = colab_step_flops_per_image(r)
        for b in (int(v) for v in args.batch_size.split(",")):
            data = pipeline_rate(cache, b, r, args.batches, uint8=True)
            floats = pipeline_rate(cache, b, r, args.batches)
            step = train_step_rate(cache, b, r, args.steps)
            row = {"resolution": r, "batch_size": b, "pipeline_images_per_s": round(data, 1),
                   "float_on_cpu_images_per_s": round(floats, 1),
                   "uint8_over_float": round(data / floats, 2),
                   "colab_train_step_images_per_s_here": round(step, 1),
                   "pipeline_over_step_here": round(data / step, 1),
                   "colab_step_gflop_per_image": round(flops / 1e9, 3)}
            for gpu, peak in GPU_PEAK_FLOPS.items():
                key = f"pipeline_over_{gpu.replace(' ', '_')}_at_peak"
                row[key] = round(data / (peak / flops), 2)
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
