"""DCGAN generator and discriminator in the Radford et al. (2016) layout, for 32, 64 and 128 px.

Channels shrink as resolution grows: the generator starts at ``g_width`` channels at 4x4 and
halves them per stride-2 transposed convolution; the discriminator mirrors it. With
``conditional=True`` (Miyato and Koyama 2018) the generator takes a 40-d multi-hot attribute
vector next to ``z`` and every BatchNorm becomes conditional (its scale and shift are linear in the
attributes), and the discriminator gets a projection head: logit = psi(h) + <embed(y), h>
(``config.projection``: embed drawn at random or started at zero, or no projection at all).
"""

from __future__ import annotations

import math

import keras
from keras import layers

from facelib.config import Config
from facelib.models import conditioning, seeds
from facelib.models.minibatch_std import MinibatchStdDev


def _n_blocks(resolution: int) -> int:
    return int(math.log2(resolution // 4))


def build_generator(config: Config, name: str = "generator") -> keras.Model:
    """z (latent_dim) [, attrs (num_attributes) in {0,1}] -> images (R, R, 3) in [-1, 1]."""
    width = config.g_width
    z = keras.Input((config.latent_dim,), name="z")
    inputs = [z]
    h = z
    y_signed = None
    if config.conditional:
        y = keras.Input((config.num_attributes,), name="attributes")
        inputs.append(y)
        y_signed = conditioning.signed(y, name="attributes_signed")
        h = layers.Concatenate(name="z_and_attributes")([z, y_signed])
    h = layers.Dense(4 * 4 * width, use_bias=False, kernel_initializer=seeds.normal(config, "project"), name="project")(h)
    h = layers.Reshape((4, 4, width))(h)
    bn_on = conditioning.bn_condition(config, z, y_signed)
    h = layers.ReLU()(conditioning.batch_norm(h, bn_on, "project_bn"))
    for i in range(_n_blocks(config.resolution) - 1):
        width //= 2
        h = layers.Conv2DTranspose(width, 4, strides=2, padding="same", use_bias=False,
                                   kernel_initializer=seeds.normal(config, f"up{i}"), name=f"up{i}")(h)
        h = layers.ReLU()(conditioning.batch_norm(h, bn_on, f"up{i}_bn"))
    h = layers.Conv2DTranspose(3, 4, strides=2, padding="same",
                               kernel_initializer=seeds.normal(config, "to_rgb"), name="to_rgb")(h)
    out = layers.Activation("tanh", dtype="float32", name="tanh")(h)
    return keras.Model(inputs if config.conditional else z, out, name=name)


def _conv(config: Config, filters: int, name: str, **kw) -> layers.Layer:
    conv = layers.Conv2D(filters, 4, kernel_initializer=seeds.normal(config, name), name=name, **kw)
    return layers.SpectralNormalization(conv, name=f"{name}_sn") if config.spectral_norm else conv


def _d_norm(config: Config, name: str) -> layers.Layer | None:
    if config.spectral_norm:
        return None
    if config.loss == "wgan-gp":
        # The gradient penalty is per example: batch statistics would couple examples.
        return layers.LayerNormalization(axis=[1, 2, 3], name=name)
    return layers.BatchNormalization(synchronized=True, name=name)


def build_discriminator(config: Config, name: str = "discriminator") -> keras.Model:
    """images (R, R, 3) in [-1, 1] [, attrs] -> one real/fake logit per image (float32)."""
    n = _n_blocks(config.resolution)
    width = config.d_width // 2 ** (n - 1)
    x = keras.Input((config.resolution, config.resolution, 3), name="images")
    h = x
    for i in range(n):
        h = _conv(config, width, f"down{i}", strides=2, padding="same")(h)
        if i > 0 and (norm := _d_norm(config, f"down{i}_norm")) is not None:
            h = norm(h)
        h = layers.LeakyReLU(0.2)(h)
        width *= 2
    if config.minibatch_std:
        h = MinibatchStdDev(config.minibatch_std, name="minibatch_std")(h)
    features = layers.Flatten(name="features")(h)
    logit = layers.Dense(1, kernel_initializer=seeds.normal(config, "logit"), name="logit")(features)
    if not config.conditional:
        out = layers.Activation("linear", dtype="float32", name="out")(logit)
        return keras.Model(x, out, name=name)
    y = keras.Input((config.num_attributes,), name="attributes")
    proj = conditioning.projection(config, y, features, seeds.normal)
    out = layers.Activation("linear", dtype="float32", name="out")(layers.Add()([logit, proj]))
    return keras.Model([x, y], out, name=name)
