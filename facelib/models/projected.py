"""D reading its input twice: as pixels, and through a frozen pretrained network's features.

Projected GANs (Sauer et al. 2021) train small discriminator heads on the feature maps of a
frozen pretrained network and converge in a fraction of the steps, because D no longer learns
its features from a few thousand faces while G changes under it. Their network is ImageNet's
EfficientNet, which cannot be fetched here; facelib ships one pretrained network that has seen
faces, the attribute classifier (``pretrained:celeba32-attributes``, trained on celeba-8k's
training split only). ``config.d_features`` names it; this module adds one head per feature
map (``TAPS``: 8x8, 4x4 and the top 4x4 of the classifier at 32 px) and adds the heads' logits
to the pixel D's, so every reader of D still gets one real/fake logit (column 0). The network's
weights are frozen (its BatchNorm in inference mode); G's gradient flows through it.

Not the metric's network: FID and KID read Inception features, and D must never be given those
(it would optimise the yardstick instead of the faces).
"""

from __future__ import annotations

import keras
from keras import layers

from facelib.config import Config
from facelib.errors import FacelibError
from facelib.models import seeds

# The classifier's layers (facelib.classifier.build_classifier_model) whose outputs D reads.
TAPS = ("pool1", "pool2", "relu_top")
# The layer types of the classifier's feature stack; anything else (its training-time flip,
# global pooling, dropout and logits) is left out.
_FEATURE_LAYERS = (layers.Conv2D, layers.BatchNormalization, layers.ReLU, layers.MaxPooling2D)


def frozen_taps(network: keras.Model, resolution: int) -> keras.Model:
    """images (R, R, 3) in [-1, 1] -> the feature maps at ``TAPS``, frozen.

    The layers are rebuilt under the current dtype policy (so a bfloat16 run computes them in
    bfloat16) and given the network's weights. ``network`` must be an attribute classifier
    at ``resolution``."""
    missing = [name for name in TAPS if name not in {layer.name for layer in network.layers}]
    if missing:
        raise FacelibError(f"d_features: the network '{network.name}' lacks the layers {missing};"
                           " name an attribute classifier written by train-classifier (e.g. "
                           "pretrained:celeba32-attributes)")
    size = tuple(network.input_shape[1:3])
    if size != (resolution, resolution):
        raise FacelibError(f"d_features: the feature network takes {size[0]} px faces, the run "
                           f"is at {resolution} px; train a classifier at {resolution} px "
                           f"(train-classifier --resolution {resolution}) or set d_features=''")
    policy = keras.config.dtype_policy().name
    x = keras.Input((resolution, resolution, 3), name="images")
    h, outputs = x, []
    for layer in network.layers:
        if len(outputs) == len(TAPS):
            break
        if not isinstance(layer, _FEATURE_LAYERS):
            continue
        clone = type(layer).from_config({**layer.get_config(), "dtype": policy})
        h = clone(h)
        clone.set_weights(layer.get_weights())
        if layer.name in TAPS:
            outputs.append(h)
    if len(outputs) != len(TAPS):  # a tap that is not a feature layer (another network's names)
        raise FacelibError(f"d_features: the network '{network.name}' does not compute {TAPS} "
                           "from a stack of convolutions; name an attribute classifier written by "
                           "train-classifier (e.g. pretrained:celeba32-attributes)")
    model = keras.Model(x, outputs, name="pretrained_features")
    model.trainable = False  # frozen weights; BatchNorm in inference mode
    return model


def _head(config: Config, feature_map, index: int):
    """One feature map -> one logit: 4x4 stride-2 convolutions down to 4x4, then a Dense
    layer, with LeakyReLU(0.2), at half D's width, spectrally normalised where D is. No
    BatchNorm: the frozen network's own has scaled the features, and a batch statistic here
    would couple the examples that WGAN-GP's and R1's per-example gradients keep apart."""
    width = max(8, config.d_width // 2)
    h = feature_map
    size = int(feature_map.shape[1])
    i = 0
    while size > 4:
        name = f"features{index}_down{i}"
        h = _normed(config, layers.Conv2D(width, 4, strides=2, padding="same", name=name,
                                          kernel_initializer=seeds.normal(config, name)))(h)
        h = layers.LeakyReLU(0.2)(h)
        size //= 2
        i += 1
    h = layers.Flatten(name=f"features{index}_flat")(h)
    name = f"features{index}_logit"
    return _normed(config, layers.Dense(1, kernel_initializer=seeds.normal(config, name),
                                        name=name))(h)


def _normed(config: Config, layer: layers.Layer) -> layers.Layer:
    """The layer under spectral normalisation when D's own layers are (config.spectral_norm)."""
    if not config.spectral_norm:
        return layer
    return layers.SpectralNormalization(layer, name=f"{layer.name}_sn")


def with_feature_heads(model: keras.Model, config: Config, network: keras.Model,
                       name: str) -> keras.Model:
    """``model`` (a D whose output is one logit) with heads on ``network``'s frozen features,
    their logits added to its own."""
    images = model.inputs[0]
    features = frozen_taps(network, config.resolution)(images)
    logits = [_head(config, f, i) for i, f in enumerate(features)]
    total = layers.Add(name="pixel_and_feature_logits")([model.output, *logits])
    out = layers.Activation("linear", dtype="float32", name="out_with_features")(total)
    return keras.Model(model.inputs, out, name=name)
