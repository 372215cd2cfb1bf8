import numpy as np
import pytest

from facelib.config import preset


@pytest.mark.parametrize("resolution", [32, 64, 128])
@pytest.mark.parametrize("conditional", [False, True])
@pytest.mark.slow
def test_shapes_and_ranges(resolution, conditional):
    from facelib.models.dcgan import build_discriminator, build_generator

    cfg = preset("smoke", resolution=resolution, conditional=conditional, g_width=32, d_width=32)
    g, d = build_generator(cfg), build_discriminator(cfg)
    z = np.random.default_rng(0).standard_normal((3, cfg.latent_dim)).astype("float32")
    y = np.zeros((3, 40), "float32")
    x = np.asarray(g([z, y] if conditional else z))
    assert x.shape == (3, resolution, resolution, 3)
    assert np.isfinite(x).all() and x.min() >= -1 and x.max() <= 1
    logits = np.asarray(d([x, y] if conditional else x))
    assert logits.shape == (3, 1) and logits.dtype == np.float32


def test_radford_layout_channels_shrink_as_resolution_grows():
    from facelib.models.dcgan import build_discriminator, build_generator

    cfg = preset("colab", mixed_precision=False)
    g_out = [w.shape[-2] for w in build_generator(cfg).weights if "up" in w.path and "kernel" in w.path]
    assert g_out == [256, 128, 64]  # after the 512-channel 4x4 projection
    d_out = [w.shape[-1] for w in build_discriminator(cfg).weights
             if "down" in w.path and "kernel" in w.path]
    assert d_out == [64, 128, 256, 512]


def test_spectral_norm_option_wraps_discriminator_convs():
    from facelib.models.dcgan import build_discriminator

    d = build_discriminator(preset("smoke", spectral_norm=True))
    assert sum("SpectralNormalization" in type(layer).__name__ for layer in d.layers) == 3
    assert not any("BatchNormalization" in type(layer).__name__ for layer in d.layers)


def test_conditional_discriminator_depends_on_attributes():
    from facelib.models.dcgan import build_discriminator

    d = build_discriminator(preset("smoke", conditional=True))
    x = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)).astype("float32")
    a = np.asarray(d([x, np.zeros((2, 40), "float32")]))
    b = np.asarray(d([x, np.ones((2, 40), "float32")]))
    assert not np.allclose(a, b)
