"""Deterministic initial weights: every random draw at build time is a function of the config.

Two builds of one config, in one process or in two, must start from the same weights: a run
trained twice with one ``--seed`` must give the same faces, a run on N replicas must match one
device, and layers of equal shape must still start different. A shared unseeded Keras
initializer breaks both: Keras fixes its seed once per process (from the OS), and a stateless
draw with that one seed gives every layer of equal size the same values. So each layer gets its
own seed from (config.seed, layer name).
"""

from __future__ import annotations

import zlib

import keras
import numpy as np

from facelib.config import Config


def layer_seed(config: Config, name: str) -> int:
    """A 32-bit seed from the layer's name, chained on ``config.seed`` (CRC-32 with the seed as
    its start value, so seed 0 gives the plain CRC-32 of the name)."""
    return zlib.crc32(name.encode(), config.seed & 0xFFFFFFFF)


def normal(config: Config, name: str, stddev: float = 0.02) -> keras.initializers.Initializer:
    """N(0, stddev), the DCGAN initialisation (Radford et al. 2016), seeded for one layer."""
    return keras.initializers.RandomNormal(stddev=stddev, seed=layer_seed(config, name))


def glorot(config: Config, name: str) -> keras.initializers.Initializer:
    """Glorot-uniform, Keras' default for convolutions and Dense layers, seeded for one layer."""
    return keras.initializers.GlorotUniform(seed=layer_seed(config, name))


def seed_power_iteration(model: keras.Model, seed: int) -> None:
    """Keras' SpectralNormalization draws its power-iteration vector u from an unseeded
    initializer, so two runs of one config (or a resumed run and its uninterrupted twin) would
    start from different u and drift apart. Draw each u from (seed, layer index) instead, with
    Keras' own distribution (truncated normal, stddev 0.02)."""
    index = 0
    for layer in model.layers:
        u = getattr(layer, "vector_u", None)
        if u is None:
            continue
        rng = np.random.default_rng([seed, index])
        values = np.clip(rng.standard_normal(u.shape), -2.0, 2.0) * 0.02
        u.assign(values.astype(u.dtype))
        index += 1
