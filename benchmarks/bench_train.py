"""Train-step throughput: facelib's 64x64 DCGAN vs the keras.io face DCGAN, in one process.

Prints images/s, achieved FLOP/s (FLOPs per step counted analytically from the layers) and the
fraction of a matmul peak measured in the same run, with and without XLA.

    python benchmarks/bench_train.py [--steps 10] [--batch 64]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import layers  # noqa: E402

from facelib.config import preset  # noqa: E402
from facelib.training.gan import GAN  # noqa: E402


def forward_flops(model: keras.Model) -> float:
    """Multiply-adds x 2 per image of the conv, transposed-conv and dense layers."""
    total = 0.0
    for layer in model._flatten_layers(include_self=False, recursive=True):
        inner = getattr(layer, "layer", None)  # SpectralNormalization wraps a conv
        layer = inner or layer
        if isinstance(layer, layers.Conv2DTranspose):
            _, h, w, cin = layer.input.shape
            k = np.prod(layer.kernel_size)
            total += 2.0 * h * w * cin * k * layer.filters
        elif isinstance(layer, layers.Conv2D):
            _, h, w, cout = layer.output.shape
            cin = layer.input.shape[-1]
            total += 2.0 * h * w * cout * np.prod(layer.kernel_size) * cin
        elif isinstance(layer, layers.Dense):
            total += 2.0 * layer.input.shape[-1] * layer.units
    return total


def step_flops_per_image(g: keras.Model, d: keras.Model) -> float:
    """One D step (G forward, D forward on real and fake, D backward ~2x forward) plus one G
    step (G forward, D forward, D input-gradient ~1x, G backward ~2x): 4 G_f + 8 D_f."""
    return 4 * forward_flops(g) + 8 * forward_flops(d)


def keras_io_face_dcgan(latent_dim: int = 128):
    """The keras.io 'DCGAN to generate face images' architecture, from its description."""
    d = keras.Sequential([
        keras.Input((64, 64, 3)),
        layers.Conv2D(64, 4, strides=2, padding="same"), layers.LeakyReLU(0.2),
        layers.Conv2D(128, 4, strides=2, padding="same"), layers.LeakyReLU(0.2),
        layers.Conv2D(128, 4, strides=2, padding="same"), layers.LeakyReLU(0.2),
        layers.Flatten(), layers.Dropout(0.2), layers.Dense(1),
    ], name="keras_io_discriminator")
    g = keras.Sequential([
        keras.Input((latent_dim,)),
        layers.Dense(8 * 8 * 128), layers.Reshape((8, 8, 128)),
        layers.Conv2DTranspose(128, 4, strides=2, padding="same"), layers.LeakyReLU(0.2),
        layers.Conv2DTranspose(256, 4, strides=2, padding="same"), layers.LeakyReLU(0.2),
        layers.Conv2DTranspose(512, 4, strides=2, padding="same"), layers.LeakyReLU(0.2),
        layers.Conv2D(3, 5, padding="same", activation="sigmoid"),
    ], name="keras_io_generator")
    return g, d


def matmul_peak(n: int = 2048, reps: int = 20) -> float:
    a = tf.random.normal((n, n))
    b = tf.random.normal((n, n))
    f = tf.function(lambda a, b: tf.matmul(a, b))
    f(a, b).numpy()
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(reps):
            out = f(a, b)
        out.numpy()
        best = min(best, (time.perf_counter() - t) / reps)
    return 2.0 * n**3 / best


def images_per_sec(gan: GAN, batch: int, steps: int, repeats: int = 3) -> float:
    """Best of ``repeats`` timed windows of ``steps`` steps, after a traced warm-up."""
    res = gan.discriminator.input_shape[1]
    x = np.random.default_rng(0).uniform(-1, 1, (batch, res, res, 3)).astype("float32")
    a = np.zeros((batch, 40), "float32")
    ds = tf.data.Dataset.from_tensors((x, a)).repeat()
    gan.fit(ds, steps_per_epoch=2, epochs=1, verbose=0, shuffle=False)  # trace + warm up
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        gan.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False)
        best = min(best, time.perf_counter() - t)
    return steps * batch / best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--batch", type=int, default=64, help="batch of the facelib DCGAN")
    args = p.parse_args()

    peak = matmul_peak()
    print(f"device: {tf.config.list_logical_devices()[-1].name}; matmul peak "
          f"{peak / 1e9:.1f} GFLOP/s (2048^2 fp32)")
    rows = []
    for xla in (False, True):
        cfg = preset("colab", precision="float32", jit_compile=xla, batch_size=args.batch,
                     ema_decay=0.999)
        gan = GAN(cfg)
        gan.compile()
        flops = step_flops_per_image(gan.generator, gan.discriminator)
        ips = images_per_sec(gan, args.batch, args.steps)
        rows.append(("facelib DCGAN 64 (G 512-256-128-64)", args.batch, xla, flops, ips))

        g, d = keras_io_face_dcgan()
        kcfg = preset("colab", precision="float32", jit_compile=xla, batch_size=32,
                      latent_dim=128, ema_decay=0.0)
        kgan = GAN(kcfg, generator=g, discriminator=d)
        kgan.compile()
        kflops = step_flops_per_image(g, d)
        kips = images_per_sec(kgan, 32, max(3, args.steps // 3))
        rows.append(("keras.io face DCGAN", 32, xla, kflops, kips))

    print(f"{'model':38s} {'batch':>5s} {'XLA':>5s} {'GFLOP/img':>10s} {'GFLOP/step':>10s} "
          f"{'img/s':>8s} {'GFLOP/s':>8s} {'% peak':>7s}")
    for name, batch, xla, flops, ips in rows:
        achieved = flops * ips
        print(f"{name:38s} {batch:5d} {str(xla):>5s} {flops / 1e9:10.2f} {flops * batch / 1e9:10.1f} "
              f"{ips:8.1f} {achieved / 1e9:8.1f} {100 * achieved / peak:6.1f}%")
    ours = {xla: ips for name, _, xla, _, ips in rows if name.startswith("facelib")}
    theirs = {xla: ips for name, _, xla, _, ips in rows if name.startswith("keras")}
    print(f"facelib / keras.io images/s: plain {ours[False] / theirs[False]:.1f}x, "
          f"XLA {ours[True] / theirs[True]:.1f}x; XLA speed-up on facelib: "
          f"{ours[True] / ours[False]:.2f}x")


if __name__ == "__main__":
    main()
