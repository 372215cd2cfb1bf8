"""Residual generator and discriminator in the SNGAN layout (Miyato et al. 2018, CIFAR-10 nets).

They trade the DCGAN's single stride-2 layers for pairs of 3x3 convolutions with identity-like
shortcuts: at the same CPU time they reach better faces on small data (``benchmarks/
bench_quality.py`` measures it), and spectral normalisation on every discriminator layer keeps
hinge training stable without BatchNorm in D.

- Generator: ``project`` (Dense to 4x4) -> one up-block per doubling -> BN, ReLU -> ``to_rgb``
  (3x3 conv) -> tanh. Up-block: BN, ReLU, nearest x2, conv3x3, BN, ReLU, conv3x3, plus a
  nearest-x2 + 1x1-conv shortcut. ``g_width`` channels in the first three blocks, halved in each
  later block (64 px: 128-128-128-64 for width 128).
- Discriminator: an optimised first block (conv, ReLU, conv, avg-pool; shortcut avg-pool then
  1x1 conv) down to R/2, down-blocks to 8x8, two plain residual blocks at 8x8, ReLU, global sum
  pooling, a linear logit; ``d_width`` channels throughout.
- ``conditional=True``: conditional BatchNorm in G (as in ``dcgan``) and a projection head on
  the pooled features in D.

Layer names the analyses rely on are shared with ``dcgan``: ``project``, ``to_rgb``, ``tanh``.
"""

from __future__ import annotations

import math

import keras
from keras import layers

from facelib.config import Config
from facelib.models import conditioning, seeds
from facelib.models.minibatch_std import MinibatchStdDev


def _n_up(resolution: int) -> int:
    return int(math.log2(resolution // 4))


def _g_channels(config: Config, block: int) -> int:
    return max(8, config.g_width // 2 ** max(0, block - 2))


def _up_block(config: Config, h, channels: int, condition, name: str):
    shortcut = layers.UpSampling2D(2, name=f"{name}_skip_up")(h)
    shortcut = layers.Conv2D(channels, 1, kernel_initializer=seeds.glorot(config, f"{name}_skip"),
                             name=f"{name}_skip")(shortcut)
    h = layers.ReLU(name=f"{name}_relu1")(conditioning.batch_norm(h, condition, f"{name}_bn1"))
    h = layers.UpSampling2D(2, name=f"{name}_up")(h)
    h = layers.Conv2D(channels, 3, padding="same", kernel_initializer=seeds.glorot(config, f"{name}_conv1"),
                      name=f"{name}_conv1")(h)
    h = layers.ReLU(name=f"{name}_relu2")(conditioning.batch_norm(h, condition, f"{name}_bn2"))
    h = layers.Conv2D(channels, 3, padding="same", kernel_initializer=seeds.glorot(config, f"{name}_conv2"),
                      name=f"{name}_conv2")(h)
    return layers.Add(name=f"{name}_add")([h, shortcut])


def build_generator(config: Config, name: str = "generator") -> keras.Model:
    """z (latent_dim) [, attrs (num_attributes) in {0,1}] -> images (R, R, 3) in [-1, 1]."""
    z = keras.Input((config.latent_dim,), name="z")
    inputs, h, y_signed = [z], z, None
    if config.conditional:
        y = keras.Input((config.num_attributes,), name="attributes")
        inputs.append(y)
        y_signed = conditioning.signed(y, name="attributes_signed")
        h = layers.Concatenate(name="z_and_attributes")([z, y_signed])
    width = _g_channels(config, 0)
    h = layers.Dense(4 * 4 * width, kernel_initializer=seeds.glorot(config, "project"), name="project")(h)
    h = layers.Reshape((4, 4, width))(h)
    bn_on = conditioning.bn_condition(config, z, y_signed)
    for i in range(_n_up(config.resolution)):
        h = _up_block(config, h, _g_channels(config, i), bn_on, f"up{i}")
    h = layers.ReLU(name="out_relu")(conditioning.batch_norm(h, bn_on, "out_bn"))
    h = layers.Conv2D(3, 3, padding="same", kernel_initializer=seeds.glorot(config, "to_rgb"), name="to_rgb")(h)
    out = layers.Activation("tanh", dtype="float32", name="tanh")(h)
    return keras.Model(inputs if config.conditional else z, out, name=name)


def _sn(config: Config, layer: layers.Layer) -> layers.Layer:
    if not config.spectral_norm:
        return layer
    return layers.SpectralNormalization(layer, name=f"{layer.name}_sn")


def _conv(config: Config, channels: int, size: int, name: str) -> layers.Layer:
    return _sn(config, layers.Conv2D(channels, size, padding="same",
                                     kernel_initializer=seeds.glorot(config, name), name=name))


def _d_block(config: Config, h, channels: int, name: str, down: bool, first: bool):
    shortcut = h
    if first:  # the optimised block: no ReLU on the images, pool before the 1x1 shortcut
        shortcut = layers.AveragePooling2D(2, name=f"{name}_skip_pool")(shortcut)
        shortcut = _conv(config, channels, 1, f"{name}_skip")(shortcut)
    elif down or h.shape[-1] != channels:
        shortcut = _conv(config, channels, 1, f"{name}_skip")(shortcut)
        if down:
            shortcut = layers.AveragePooling2D(2, name=f"{name}_skip_pool")(shortcut)
    if not first:
        h = layers.ReLU(name=f"{name}_relu1")(h)
    h = _conv(config, channels, 3, f"{name}_conv1")(h)
    h = layers.ReLU(name=f"{name}_relu2")(h)
    h = _conv(config, channels, 3, f"{name}_conv2")(h)
    if down:
        h = layers.AveragePooling2D(2, name=f"{name}_pool")(h)
    return layers.Add(name=f"{name}_add")([h, shortcut])


def build_discriminator(config: Config, name: str = "discriminator") -> keras.Model:
    """images (R, R, 3) in [-1, 1] [, attrs] -> one real/fake logit per image (float32)."""
    x = keras.Input((config.resolution, config.resolution, 3), name="images")
    channels = config.d_width
    n_down = int(math.log2(config.resolution // 8))
    h = x
    for i in range(n_down):
        h = _d_block(config, h, channels, f"down{i}", down=True, first=i == 0)
    for i in range(2):
        if i == 1 and config.minibatch_std:  # StyleGAN's place: a conv sees it before the head
            h = MinibatchStdDev(config.minibatch_std, name="minibatch_std")(h)
        h = _d_block(config, h, channels, f"block{i}", down=False, first=False)
    h = layers.ReLU(name="features_relu")(h)
    # Global sum pooling (SNGAN): mean pooling times the number of positions.
    features = layers.GlobalAveragePooling2D(name="features_mean")(h)
    features = layers.Rescaling(float(h.shape[1] * h.shape[2]), name="features")(features)
    logit = _sn(config, layers.Dense(1, kernel_initializer=seeds.glorot(config, "logit"), name="logit"))(features)
    if not config.conditional:
        out = layers.Activation("linear", dtype="float32", name="out")(logit)
        return keras.Model(x, out, name=name)
    y = keras.Input((config.num_attributes,), name="attributes")
    proj = conditioning.projection(config, y, features, seeds.glorot, lambda layer: _sn(config, layer))
    out = layers.Activation("linear", dtype="float32", name="out")(layers.Add()([logit, proj]))
    return keras.Model([x, y], out, name=name)
