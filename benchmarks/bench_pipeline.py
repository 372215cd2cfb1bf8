"""The input pipeline alone: images/s that `make_dataset` delivers, against what a train step
consumes, to show whether the data can keep an accelerator busy.

Iterates the training tf.data chain (shuffled batches gathered from the uint8 memmap, mirrored,
optionally area-downsampled, cast to float in [-1, 1]) without any model, for each batch size
and resolution, after one warm-up pass; then times the `colab` preset's train step on this
machine at the same batch for the ratio. A GPU step is faster than this CPU's, so the column to
read is the pipeline's rate: a GPU consuming fewer images/s than that is never starved.

    python benchmarks/bench_pipeline.py --data caches/celeba8k-64 --batches 128 --batch-size 128
"""

from __future__ import annotations

import argparse
import json
import time


def pipeline_rate(cache, batch_size: int, resolution: int, batches: int) -> float:
    from facelib.data.pipeline import make_dataset

    ds = make_dataset(cache, batch_size, seed=0, resolution=resolution)
    it = iter(ds)
    for _ in range(5):  # warm-up: tracing, first pages of the memmap
        next(it)
    t = time.perf_counter()
    for _ in range(batches):
        images, _ = next(it)
    images.numpy()
    return batches * batch_size / (time.perf_counter() - t)


def train_step_rate(cache, batch_size: int, resolution: int, steps: int) -> float:
    import keras

    from facelib.config import preset
    from facelib.data.pipeline import make_dataset
    from facelib.training.gan import GAN

    keras.config.set_dtype_policy("float32")
    gan = GAN(preset("colab", precision="float32", jit_compile=False, resolution=resolution,
                     batch_size=batch_size))
    gan.compile()
    ds = make_dataset(cache, batch_size, seed=0, resolution=resolution)
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
        for b in (int(v) for v in args.batch_size.split(",")):
            data = pipeline_rate(cache, b, r, args.batches)
            step = train_step_rate(cache, b, r, args.steps)
            print(json.dumps({"resolution": r, "batch_size": b, "pipeline_images_per_s":
                              round(data, 1), "colab_train_step_images_per_s_here":
                              round(step, 1), "pipeline_over_step": round(data / step, 1)}),
                  flush=True)


if __name__ == "__main__":
    main()
