"""Activation maps of G and D: the right layers, channels ranked by activation, a figure."""

from __future__ import annotations

import numpy as np
import pytest

from facelib.errors import FacelibError


def _known_conv_model():
    """One 1x1 conv with 3 output channels: channel c = scale[c] * (sum of input channels)."""
    import keras

    inp = keras.Input((6, 6, 3))
    conv = keras.layers.Conv2D(3, 1, use_bias=False, name="mix")
    out = keras.layers.Dense(2, name="head")(keras.layers.Flatten()(conv(inp)))
    model = keras.Model(inp, out)
    kernel = np.zeros((1, 1, 3, 3), np.float32)
    kernel[..., 0] = 0.5  # channel 0: 0.5 * sum, channel 1: 0, channel 2: -2 * sum
    kernel[..., 2] = -2.0
    conv.set_weights([kernel])
    return model


def test_maps_and_channel_ranking_known_answer():
    from facelib.metrics.internals import activation_maps, conv_layers, top_channels

    model = _known_conv_model()
    assert [layer.name for layer in conv_layers(model)] == ["mix"]
    x = np.ones((2, 6, 6, 3), np.float32)
    maps = activation_maps(model, x)
    assert list(maps) == ["mix"] and maps["mix"].shape == (2, 6, 6, 3)
    np.testing.assert_allclose(maps["mix"][0, 0, 0], [1.5, 0.0, -6.0])
    order, scores = top_channels(maps["mix"][0], 3)
    assert order.tolist() == [2, 0, 1]           # by mean |activation|: 6, 1.5, 0
    np.testing.assert_allclose(scores, [6.0, 1.5, 0.0])
    with pytest.raises(FacelibError, match="no layer 'nope'"):
        activation_maps(model, x, layers=["nope"])


def test_model_without_convolutions_is_refused():
    import keras

    from facelib.metrics.internals import conv_layers

    inp = keras.Input((4,))
    with pytest.raises(FacelibError, match="no 2-D convolution"):
        conv_layers(keras.Model(inp, keras.layers.Dense(1)(inp)))


@pytest.mark.slow
def test_run_generator_and_discriminator_figure(tiny_run, cache32, tmp_path):
    import facelib
    from facelib.data.cache import FaceCache
    from facelib.images import read_image
    from facelib.metrics.internals import (
        activation_maps, conv_layers, internals_figure,
    )

    run = facelib.load_run(tiny_run)
    assert [layer.name for layer in conv_layers(run.generator)] == ["up0", "up1", "to_rgb"]
    d = run.discriminator()
    assert [layer.name for layer in conv_layers(d)] == ["down0", "down1", "down2"]
    maps = activation_maps(d, run.synthesize(run.sample_latents(2)))
    assert [m.shape for m in maps.values()] == [(2, 16, 16, 16), (2, 8, 8, 32), (2, 4, 4, 64)]
    real = np.asarray(FaceCache.open(cache32).images[0])
    path = internals_figure(run, tmp_path / "internals.png", real_image=real, top_k=4,
                            discriminator=d)
    img = read_image(path)
    assert img.ndim == 3 and img.shape[0] > 400 and img.shape[1] > 300
    with pytest.raises(FacelibError, match="real_image must be uint8"):
        internals_figure(run, tmp_path / "x.png", real_image=real[:16], discriminator=d)
