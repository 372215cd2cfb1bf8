"""Standing BatchNorm statistics: an averaged generator's normalisation measured on its own
activations (BigGAN's "standing statistics", SWA's ``bn_update``).

The EMA generator averages G's weights over thousands of steps, but its BatchNorm layers hold G's
moving statistics: those of another network's activations (the current G's, over its last ~100
batches). Sampling with them shifts and scales every channel a little wrongly. Running the
averaged weights in training mode over a fixed set of inputs, and keeping the pooled batch
statistics, gives each layer the mean and variance of the activations that it will actually
normalise when it samples.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers


def batch_norms(model: keras.Model) -> list[layers.BatchNormalization]:
    """The BatchNormalization layers of ``model``, nested models included, in build order."""
    return [layer for layer in model._flatten_layers(include_self=False, recursive=True)
            if isinstance(layer, layers.BatchNormalization)]


def recompute(generator: keras.Model, latents: np.ndarray, attributes: np.ndarray | None = None,
              batch_size: int = 256) -> keras.Model:
    """Set every BatchNorm's moving mean and variance of ``generator`` to the average of its
    batch statistics over ``latents`` (and ``attributes``, rows of 0/1, for a conditional
    generator), in batches of ``batch_size``; returns ``generator``, changed in place.

    Each layer sees the activations of the layers before it normalised by their batch
    statistics, as in training. Batches are weighted by their size, so any count works. Only
    the moving statistics change: no trainable weight does."""
    norms = batch_norms(generator)
    latents = np.asarray(latents, np.float32)
    if not norms or len(latents) == 0:
        return generator
    if attributes is not None:
        attributes = np.asarray(attributes, np.float32)
        if len(attributes) != len(latents):
            raise ValueError(f"{len(latents)} latents but {len(attributes)} attribute rows: "
                             "give one row per latent")
    saved = [(layer.momentum, layer.trainable) for layer in norms]
    seen = 0
    try:
        for layer in norms:  # a frozen BatchNorm runs in inference mode even with training=True
            layer.trainable = True
        for start in range(0, len(latents), batch_size):
            z = latents[start:start + batch_size]
            for layer in norms:  # moving = (seen * moving + len(z) * batch) / (seen + len(z))
                layer.momentum = seen / (seen + len(z))
            generator(z if attributes is None else [z, attributes[start:start + batch_size]],
                      training=True)
            seen += len(z)
    finally:
        for layer, (momentum, trainable) in zip(norms, saved):
            layer.momentum, layer.trainable = momentum, trainable
    return generator
