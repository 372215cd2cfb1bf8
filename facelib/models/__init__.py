"""The generator and discriminator architectures, chosen by ``config.architecture``."""

from __future__ import annotations

import keras
from keras import layers

from facelib.config import Config
from facelib.errors import FacelibError
from facelib.models import dcgan, projected, resnet, seeds

ARCHITECTURES = {"dcgan": dcgan, "resnet": resnet}


def build_generator(config: Config, name: str = "generator"):
    """z [, attributes] -> images in [-1, 1], in the architecture the config names."""
    return ARCHITECTURES[config.architecture].build_generator(config, name=name)


def build_discriminator(config: Config, name: str = "discriminator", feature_network=None):
    """images [, attributes] -> one logit per image, in the architecture the config names.

    feature_network: the pretrained network that ``config.d_features`` names, loaded by the
    caller (``facelib.run.feature_network``); its frozen features get heads of their own."""
    model = ARCHITECTURES[config.architecture].build_discriminator(config, name=name)
    if config.d_features:
        if feature_network is None:
            raise FacelibError(f"d_features={config.d_features!r} needs its network: pass "
                               "feature_network=facelib.run.feature_network.load(config)")
        model = projected.with_feature_heads(model, config, feature_network, name)
    if config.attribute_loss > 0:  # AC-GAN's head; on an unconditional run, D's alone
        model = _with_attribute_head(model, config, name)
    seeds.seed_power_iteration(model, config.seed)
    return model


def _with_attribute_head(model, config: Config, name: str):
    """AC-GAN's second head on D's features: output column 0 stays the real/fake logit (what
    every reader of D takes), columns 1.. are the attribute logits."""
    features = model.get_layer("features").output
    head = layers.Dense(config.num_attributes, name="attribute_logits",
                        kernel_initializer=seeds.glorot(config, "attribute_logits"))
    if config.spectral_norm:
        head = layers.SpectralNormalization(head, name="attribute_logits_sn")
    head = head(features)
    head = layers.Activation("linear", dtype="float32", name="attribute_out")(head)
    out = layers.Concatenate(dtype="float32", name="logit_and_attributes")([model.output, head])
    return keras.Model(model.inputs, out, name=name)
