"""How a conditional network reads the attributes, shared by every architecture.

Miyato and Koyama (2018): G's BatchNorm becomes conditional (its scale and shift linear in the
attributes) and D adds a projection term <embed(y), h> to its logit. Self-modulation (Chen et
al. 2019) conditions the same BatchNorms on z, with or without the attributes. Both architectures
build them here, so a change to either (how it starts, whether it is trained) reaches both at
once.
"""

from __future__ import annotations

from typing import Callable

from keras import layers

from facelib.config import Config
from facelib.models import seeds


def signed(y, name: str | None = None):
    """{0, 1} attributes as {-1, 1}, so an absent attribute is as informative as a present one."""
    return layers.Rescaling(2.0, -1.0, name=name)(y)


def bn_condition(config: Config, z, y_signed):
    """What G's BatchNorms are conditioned on, or None (plain BatchNorm): the signed attributes
    of a conditional G, self-modulation's hidden ReLU layer on z (``config.self_modulation``
    units, one layer shared by every BatchNorm), or both side by side."""
    parts = [] if y_signed is None else [y_signed]
    if config.self_modulation:
        parts.append(layers.Dense(config.self_modulation, activation="relu",
                                  kernel_initializer=seeds.glorot(config, "self_modulation"),
                                  name="self_modulation")(z))
    if len(parts) < 2:
        return parts[0] if parts else None
    return layers.Concatenate(name="bn_condition")(parts)


def batch_norm(h, condition, name: str):
    """BatchNorm; with a ``condition`` (not None: the signed attributes or ``bn_condition``'s
    vector), conditional BatchNorm: h_hat * (1 + gamma(c)) + beta(c), gamma and beta linear in
    it and starting at zero, so it starts as plain BatchNorm."""
    if condition is None:
        return layers.BatchNormalization(synchronized=True, name=name)(h)
    h = layers.BatchNormalization(synchronized=True, center=False, scale=False, name=name)(h)
    channels = h.shape[-1]
    gamma = layers.Dense(channels, kernel_initializer="zeros", name=f"{name}_gamma")(condition)
    beta = layers.Dense(channels, kernel_initializer="zeros", name=f"{name}_beta")(condition)
    gamma = layers.Reshape((1, 1, channels))(gamma)
    beta = layers.Reshape((1, 1, channels))(beta)
    return layers.Add()([h, layers.Multiply()([h, gamma]), beta])


def projection(config: Config, y, features, initializer,
               wrap: Callable[[layers.Layer], layers.Layer] = lambda layer: layer):
    """D's projection term <embed(y), h>, one value per image: a linear embedding of the
    multi-hot vector is the sum of per-attribute embeddings, and its inner product with D's
    features is the class-conditional part of D's logit.

    ``config.projection`` says how the embedding starts: "random", drawn by ``initializer``
    (the architecture's own, a ``seeds`` function); "zeros", so D starts as the unconditional D;
    or "off", held at zero and frozen, so the term is 0 throughout (the layer stays because
    Keras 3.13, Colab's, refuses a functional model with an input that does not reach its
    output). ``wrap`` is the architecture's weight wrapper (spectral norm in ``resnet``); it is
    not applied to the "off" embedding, since spectral norm divides by its largest singular
    value, 0 for a zero matrix.
    """
    off = config.projection == "off"
    embedding = layers.Dense(
        features.shape[-1], use_bias=False, name="attribute_embedding", trainable=not off,
        kernel_initializer=("zeros" if config.projection in ("zeros", "off")
                            else initializer(config, "attribute_embedding")))
    if not off:
        embedding = wrap(embedding)
    embed = embedding(signed(y))
    return layers.Dot(axes=1, name="projection")([embed, features])
