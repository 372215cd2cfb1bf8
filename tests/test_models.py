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

    cfg = preset("colab", precision="float32")
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


@pytest.mark.parametrize("architecture", ["dcgan", "resnet"])
def test_projection_that_starts_at_zero_leaves_d_unconditional_until_it_learns(architecture):
    """projection="zeros": at the first step D's logit ignores the attributes (the
    projection term is exactly 0) and the rest of D is the random start's; one D step on real
    faces with their attributes moves the embedding off zero, so the term is learnt."""
    import tensorflow as tf

    from facelib.models import build_discriminator
    from facelib.training.gan import GAN

    cfg = preset("smoke", architecture=architecture, conditional=True, d_lr=1e-3)
    x = np.random.default_rng(0).uniform(-1, 1, (4, 32, 32, 3)).astype("float32")
    ones, zeros = np.ones((4, 40), "float32"), np.zeros((4, 40), "float32")
    random_d = build_discriminator(cfg)
    zero_d = build_discriminator(cfg.replace(projection="zeros"))
    assert not np.allclose(np.asarray(random_d([x, ones])), np.asarray(random_d([x, zeros])))
    np.testing.assert_array_equal(np.asarray(zero_d([x, ones])), np.asarray(zero_d([x, zeros])))
    shared = [w.path for w in zero_d.weights if "attribute_embedding" not in w.path]
    for path in shared:  # only the embedding's start differs
        np.testing.assert_array_equal(*(np.asarray(next(w for w in d.weights if w.path == path))
                                        for d in (zero_d, random_d)))
    assert len(shared) == len(zero_d.weights) - 1

    gan = GAN(cfg.replace(projection="zeros", batch_size=4))
    gan.compile()
    gan.fit(tf.data.Dataset.from_tensors((x, ones)).repeat(), steps_per_epoch=1, epochs=1,
            verbose=0)
    embedding = next(w for w in gan.discriminator.weights if "attribute_embedding" in w.path)
    assert np.abs(np.asarray(embedding)).max() > 0
    d = gan.discriminator
    assert not np.allclose(np.asarray(d([x, ones])), np.asarray(d([x, zeros])))


@pytest.mark.parametrize("architecture", ["dcgan", "resnet"])
def test_projection_off_leaves_the_attributes_to_the_attribute_head(architecture):
    """projection="off": D's real/fake logit (column 0) is the same for any attributes, its
    attribute head (columns 1..) is there, and its projection embedding is zero and frozen
    (so training cannot turn the term on)."""
    from facelib.models import build_discriminator

    cfg = preset("smoke", architecture=architecture, conditional=True, attribute_loss=1.0,
                 projection="off")
    d = build_discriminator(cfg)
    x = np.random.default_rng(0).uniform(-1, 1, (4, 32, 32, 3)).astype("float32")
    a = np.asarray(d([x, np.ones((4, 40), "float32")]))
    b = np.asarray(d([x, np.zeros((4, 40), "float32")]))
    assert a.shape == (4, 41)
    np.testing.assert_array_equal(a, b)
    embedding = [w for w in d.weights if "attribute_embedding" in w.path]
    assert len(embedding) == 1 and not np.asarray(embedding[0]).any()
    assert not any("attribute_embedding" in w.path for w in d.trainable_weights)
    with_projection = build_discriminator(cfg.replace(projection="random"))
    assert len(with_projection.trainable_weights) == len(d.trainable_weights) + 1

    import tensorflow as tf

    from facelib.training.gan import GAN

    gan = GAN(cfg.replace(batch_size=4, d_lr=1e-3))
    gan.compile()
    before = [np.asarray(w) for w in gan.discriminator.trainable_weights]
    gan.fit(tf.data.Dataset.from_tensors((x, np.ones((4, 40), "float32"))).repeat(),
            steps_per_epoch=1, epochs=1, verbose=0)
    assert any(not np.array_equal(b, np.asarray(w))
               for b, w in zip(before, gan.discriminator.trainable_weights))  # D trained ...
    embedding = next(w for w in gan.discriminator.weights if "attribute_embedding" in w.path)
    assert not np.asarray(embedding).any()  # ... and the projection stayed off


@pytest.mark.parametrize("options, needs", [
    (dict(projection="normal"), "one of"),
    (dict(projection="zeros", architecture="resnet", spectral_norm=True, loss="hinge"),
     "'random' or 'off' with spectral_norm"),
    (dict(projection="off"), "unless attribute_loss > 0"),
])
def test_projection_is_refused_in_one_line_naming_what_works(options, needs):
    from facelib.errors import FacelibError

    with pytest.raises(FacelibError, match="projection") as e:
        preset("smoke", conditional=True, **options)
    assert needs in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("resolution", [32, 64])
@pytest.mark.parametrize("conditional", [False, True])
def test_residual_networks_shapes_ranges_and_shared_layer_names(resolution, conditional):
    from facelib.models import build_discriminator, build_generator

    cfg = preset("smoke", architecture="resnet", spectral_norm=True, loss="hinge",
                 resolution=resolution, conditional=conditional, g_width=32, d_width=32)
    g, d = build_generator(cfg), build_discriminator(cfg)
    assert g.name == "generator" and {"project", "to_rgb", "tanh"} <= {l.name for l in g.layers}
    z = np.random.default_rng(0).standard_normal((3, cfg.latent_dim)).astype("float32")
    y = np.zeros((3, 40), "float32")
    x = np.asarray(g([z, y] if conditional else z))
    assert x.shape == (3, resolution, resolution, 3)
    assert np.isfinite(x).all() and x.min() >= -1 and x.max() <= 1
    assert np.abs(x[0] - x[1]).max() > 1e-3  # z reaches the pixels
    logits = np.asarray(d([x, y] if conditional else x))
    assert logits.shape == (3, 1) and logits.dtype == np.float32
    if conditional:  # the projection head reads the attributes
        assert not np.allclose(logits, np.asarray(d([x, np.ones((3, 40), "float32")])))


def test_residual_layout_channels_and_spectral_norm_everywhere_in_d():
    from facelib.models import build_discriminator, build_generator

    cfg = preset("smoke", architecture="resnet", spectral_norm=True, resolution=64, g_width=128,
                 d_width=64)
    convs = [w.shape[-1] for w in build_generator(cfg).weights
             if w.path.endswith("conv2/kernel")]
    assert convs == [128, 128, 128, 64]  # halved only past the third block
    d = build_discriminator(cfg)
    wrapped = [l for l in d.layers if "SpectralNormalization" in type(l).__name__]
    plain = [l for l in d.layers if type(l).__name__ in ("Conv2D", "Dense")]
    assert len(wrapped) == 3 * 3 + 2 * 2 + 1 and not plain  # 3 down (2 conv + skip), 2 plain, logit
    assert not any("BatchNormalization" in type(l).__name__ for l in d.layers)


def test_architecture_is_chosen_by_config():
    from facelib.models import build_generator

    dcgan = build_generator(preset("smoke"))
    resnet = build_generator(preset("smoke", architecture="resnet"))
    assert any(l.name == "up0" and "Transpose" in type(l).__name__ for l in dcgan.layers)
    assert any(l.name == "up0_conv1" for l in resnet.layers)
    assert not any(l.name == "up0_conv1" for l in dcgan.layers)


@pytest.mark.parametrize("architecture", ["dcgan", "resnet"])
def test_spectral_norm_networks_start_alike_for_one_seed_and_differ_across_seeds(architecture):
    """Keras draws SpectralNormalization's power-iteration vector (and any unseeded initializer)
    afresh per build; facelib seeds them, so a run and its resumed twin start identical."""
    from facelib.models import build_discriminator

    cfg = preset("smoke", architecture=architecture, spectral_norm=True, loss="hinge",
                 conditional=True, attribute_loss=1.0)  # the AC head's initializer is seeded too
    a, b = build_discriminator(cfg), build_discriminator(cfg)
    c = build_discriminator(cfg.replace(seed=1))
    u = [w.path for w in a.weights if "vector_u" in w.path]
    assert u  # the networks do have power-iteration vectors
    for wa, wb in zip(a.weights, b.weights):
        np.testing.assert_array_equal(np.asarray(wa), np.asarray(wb))
    assert any(not np.array_equal(np.asarray(wa), np.asarray(wc))
               for wa, wc in zip(a.weights, c.weights) if "vector_u" in wa.path)


_DIGEST = """
import hashlib, sys
import numpy as np
from facelib.config import preset
from facelib.models import build_discriminator, build_generator

def digest(architecture, seed):
    cfg = preset("smoke", architecture=architecture, conditional=True, seed=seed)
    h = hashlib.sha256()
    for net in (build_generator(cfg), build_discriminator(cfg)):
        for w in net.weights:
            h.update(np.ascontiguousarray(np.asarray(w)).tobytes())
    return h.hexdigest()
"""


def test_initial_weights_are_a_function_of_the_config_across_processes():
    """A shared unseeded Keras initializer takes its seed from the OS once per process, so
    ``train --seed 0`` twice started from different weights (the two-replica test only agreed
    because both builds shared a process). Now a second process builds the same bytes."""
    import os
    import subprocess
    import sys

    namespace: dict = {}
    exec(_DIGEST, namespace)
    here = {arch: namespace["digest"](arch, 0) for arch in ("dcgan", "resnet")}
    code = _DIGEST + "\nprint(digest('dcgan', 0), digest('resnet', 0))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONHASHSEED": "123"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    there = proc.stdout.split()[-2:]
    assert there == [here["dcgan"], here["resnet"]]
    assert namespace["digest"]("dcgan", 1) != here["dcgan"]  # --seed still matters


@pytest.mark.parametrize("architecture", ["dcgan", "resnet"])
def test_layers_of_equal_shape_start_with_different_weights(architecture):
    """One seed per layer: a stateless draw with one shared seed gave every kernel of equal size
    the same values."""
    from facelib.models import build_discriminator, build_generator

    cfg = preset("smoke", architecture=architecture)
    kernels = [np.asarray(w) for net in (build_generator(cfg), build_discriminator(cfg))
               for w in net.weights if w.path.endswith("kernel")]
    by_size: dict[int, list[np.ndarray]] = {}
    for k in kernels:
        by_size.setdefault(k.size, []).append(k.ravel())
    pairs = [(a, b) for group in by_size.values() for i, a in enumerate(group) for b in group[i + 1:]]
    assert pairs  # both architectures have kernels of equal size in G and D together
    for a, b in pairs:
        assert not np.array_equal(a, b)


def test_minibatch_std_channel_known_answer_groups_and_any_batch():
    from facelib.models.minibatch_std import MinibatchStdDev

    x = np.random.default_rng(0).standard_normal((8, 4, 4, 3)).astype("float32")
    out = np.asarray(MinibatchStdDev(4)(x))
    assert out.shape == (8, 4, 4, 4)
    np.testing.assert_array_equal(out[..., :3], x)  # the features pass through
    # StyleGAN's grouping: faces i, i+2, i+4, i+6 (M = 8 / 4 = 2) share a value
    want = np.sqrt(x.reshape(4, 2, 4, 4, 3).var(axis=0) + 1e-8).mean(axis=(1, 2, 3))
    np.testing.assert_allclose(out[:, 0, 0, 3], np.tile(want, 4), rtol=1e-5)
    assert np.ptp(out[..., 3], axis=(1, 2)).max() == 0  # constant over positions
    # a batch that does not divide into groups of 4 is one group; one face alone gets 0
    odd = np.asarray(MinibatchStdDev(4)(x[:3]))[:, 0, 0, 3]
    np.testing.assert_allclose(odd, np.sqrt(x[:3].var(axis=0) + 1e-8).mean(), rtol=1e-5)
    assert np.asarray(MinibatchStdDev(4)(x[:1]))[0, 0, 0, 3] < 1e-3
    copies = np.asarray(MinibatchStdDev(4)(np.repeat(x[:1], 8, axis=0)))[:, 0, 0, 3]
    assert copies.max() < 1e-3 < out[:, 0, 0, 3].min()  # a batch of copies reads as one
    with pytest.raises(ValueError, match="group_size"):
        MinibatchStdDev(1)


@pytest.mark.parametrize("architecture", ["dcgan", "resnet"])
def test_minibatch_std_lets_d_see_the_other_faces_of_a_group(architecture):
    import keras

    from facelib.models import build_discriminator

    cfg = preset("smoke", architecture=architecture, spectral_norm=architecture == "resnet",
                 minibatch_std=4)
    d = build_discriminator(cfg)
    assert d.get_layer("minibatch_std").output.shape[-1] == d.get_layer("minibatch_std").input.shape[-1] + 1
    x = np.random.default_rng(0).uniform(-1, 1, (8, 32, 32, 3)).astype("float32")
    moved = x.copy()
    moved[4] = -moved[4]  # face 4 is in group 0 (faces 0, 2, 4, 6)
    a, b = np.asarray(d(x)), np.asarray(d(moved))
    assert not np.allclose(a[[0, 2, 6]], b[[0, 2, 6]])  # its group-mates' scores move
    np.testing.assert_allclose(a[[1, 3, 5, 7]], b[[1, 3, 5, 7]], rtol=1e-6)  # the other group's do not
    plain = build_discriminator(cfg.replace(minibatch_std=0))
    np.testing.assert_allclose(np.asarray(plain(x))[[0, 2, 6]], np.asarray(plain(moved))[[0, 2, 6]],
                               rtol=1e-6)  # without it (BatchNorm at inference) faces are scored alone
    again = keras.Model.from_config(d.get_config())  # the layer is serialisable
    again.set_weights(d.get_weights())
    np.testing.assert_allclose(np.asarray(again(x)), a, rtol=1e-6)


@pytest.mark.parametrize("architecture", ["dcgan", "resnet"])
@pytest.mark.parametrize("conditional", [False, True])
def test_self_modulation_starts_as_the_plain_generator_and_then_reads_z(architecture, conditional,
                                                                        tmp_path):
    """Each BatchNorm's scale and shift start at zero, so a self-modulated G draws what the plain
    G of the same seed draws; once the scales move, every face gets its own (what z says, not
    only the batch's statistics), and the network survives a .keras round trip."""
    import keras

    from facelib.models import build_generator

    cfg = preset("smoke", architecture=architecture, conditional=conditional,
                 spectral_norm=architecture == "resnet")
    plain, modulated = build_generator(cfg), build_generator(cfg.replace(self_modulation=32))
    rng = np.random.default_rng(0)
    z = rng.standard_normal((8, cfg.latent_dim)).astype("float32")
    inputs = [z, (rng.random((8, 40)) < 0.5).astype("float32")] if conditional else z
    a = np.asarray(plain(inputs, training=True))
    np.testing.assert_allclose(np.asarray(modulated(inputs, training=True)), a, atol=1e-6)
    hidden = modulated.get_layer("self_modulation")
    assert hidden.units == 32 and hidden.input.shape[-1] == cfg.latent_dim
    scales = [layer for layer in modulated.layers if layer.name.endswith("_gamma")]
    assert scales and all(layer.input.shape[-1] == 32 + 40 * conditional for layer in scales)
    for i, layer in enumerate(scales):  # move only the rows that read z (the attributes' first)
        kernel = np.random.default_rng(i).normal(0, 0.5, layer.kernel.shape)
        kernel[:40 * conditional] = 0
        layer.kernel.assign(kernel)
    b = np.asarray(modulated(inputs, training=True))
    assert np.abs(b - a).max() > 0.05  # z reaches G's BatchNorms
    modulated.save(tmp_path / "g.keras")
    again = keras.saving.load_model(tmp_path / "g.keras", compile=False)
    np.testing.assert_allclose(np.asarray(again(inputs, training=False)),
                               np.asarray(modulated(inputs, training=False)), atol=1e-5)


@pytest.mark.parametrize("value", [1, -4, 3])
def test_minibatch_std_group_is_refused_in_one_line_unless_it_divides_the_batch(value):
    from facelib.errors import FacelibError

    with pytest.raises(FacelibError, match="minibatch_std") as e:
        preset("smoke", minibatch_std=value)  # batch 16
    assert "\n" not in str(e.value)


def test_feature_heads_read_the_classifiers_frozen_features_beside_the_pixel_d():
    """d_features: the rebuilt feature stack computes the classifier's own activations (its
    BatchNorm in inference mode even in a training call); D's logit is the pixel D's plus the
    heads'; a D step moves the heads and leaves the pretrained weights as they were."""
    import keras
    import tensorflow as tf

    from facelib.models import build_discriminator, projected
    from facelib.run import feature_network

    cfg = preset("smoke", d_features="pretrained:celeba32-attributes")
    net = feature_network.load(cfg)
    x = np.random.default_rng(0).uniform(-1, 1, (4, 32, 32, 3)).astype("float32")
    reference = keras.Model(net.input, [net.get_layer(n).output for n in projected.TAPS])
    for got, want in zip(projected.frozen_taps(net, 32)(x, training=True),
                         reference(x, training=False)):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-4, atol=1e-4)

    d = build_discriminator(cfg, feature_network=net)
    plain = build_discriminator(cfg.replace(d_features=""))  # the same seeded pixel D
    assert d(x).shape == (4, 1) and d(x).dtype == "float32"
    assert np.abs(np.asarray(d(x)) - np.asarray(plain(x))).min() > 1e-4  # the heads add to it
    frozen = d.get_layer("pretrained_features")
    assert not frozen.trainable_weights and len(frozen.weights) == 5 * 4  # conv + BN's 4, 4 blocks
    before = [np.asarray(w).copy() for w in frozen.weights]
    heads = [w for w in d.trainable_weights if w.path.startswith("features")]
    heads_before = [np.asarray(w).copy() for w in heads]
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.nn.softplus(-d(x, training=True)))
    grads = tape.gradient(loss, d.trainable_weights)
    keras.optimizers.SGD(0.1).apply_gradients(zip(grads, d.trainable_weights))
    for w, w0 in zip(frozen.weights, before):
        np.testing.assert_array_equal(np.asarray(w), w0)
    assert all(not np.allclose(np.asarray(w), w0) for w, w0 in zip(heads, heads_before))


def test_feature_heads_refuse_a_missing_or_wrong_network_in_one_line(tmp_path):
    from facelib.errors import FacelibError
    from facelib.models import build_discriminator, build_generator
    from facelib.run import feature_network

    cfg = preset("smoke", d_features="pretrained:celeba32-attributes")
    net = feature_network.load(cfg)
    cases = [
        (lambda: build_discriminator(cfg), "feature_network"),
        (lambda: build_discriminator(cfg.replace(resolution=64), feature_network=net),
         "32 px faces, the run is at 64 px"),
        (lambda: build_discriminator(cfg, feature_network=build_generator(cfg)),
         "lacks the layers"),
        (lambda: feature_network.load(cfg.replace(d_features=str(tmp_path))), "not found"),
        (lambda: feature_network.load(cfg.replace(d_features="pretrained:celeba32")),
         "no pretrained network"),
        (lambda: preset("smoke", d_features=" "), "d_features"),
    ]
    for call, message in cases:
        with pytest.raises(FacelibError, match=message) as e:
            call()
        assert "\n" not in str(e.value)
    (tmp_path / "classifier.keras").write_bytes(b"not a keras file")
    with pytest.raises(FacelibError, match="could not be loaded") as e:
        feature_network.load(cfg.replace(d_features=str(tmp_path)))
    assert "\n" not in str(e.value)


def test_feature_heads_take_a_classifier_at_another_resolution_and_follow_ds_spectral_norm():
    """A 64 px classifier (train-classifier's layout, untrained here): its 16x16 map gets two
    stride-2 convolutions; with spectral_norm every head layer is normalised as D's are."""
    from facelib.classifier import build_classifier_model
    from facelib.models import build_discriminator

    cfg = preset("smoke", resolution=64, spectral_norm=True, loss="hinge",
                 d_features="a 64 px classifier")
    d = build_discriminator(cfg, feature_network=build_classifier_model(64, width=8))
    x = np.random.default_rng(0).uniform(-1, 1, (2, 64, 64, 3)).astype("float32")
    assert d(x).shape == (2, 1)
    heads = [layer.name for layer in d.layers if layer.name.startswith("features")]
    assert {"features0_down0_sn", "features0_down1_sn", "features1_down0_sn",
            "features0_logit_sn", "features1_logit_sn", "features2_logit_sn"} <= set(heads)
    assert not any(n.startswith("features2_down") for n in heads)  # the top map is 4x4 already


def test_standing_statistics_known_answer_any_batching_and_nothing_else_moves():
    """recompute() sets a BatchNorm's moving mean to the mean of its inputs over all latents
    (exactly, whatever the batching) and its variance to the size-weighted mean of the batches'
    variances (the population variance in one batch); a second BatchNorm sees the first's output
    normalised by batch statistics, as in training. Trainable weights, momentum and a frozen
    layer's trainable flag are left as they were."""
    import keras
    import numpy as np
    from keras import layers

    from facelib.models.standing_statistics import batch_norms, recompute

    z_in = keras.Input((3,))
    h = layers.Dense(5, name="dense")(z_in)
    norm = layers.BatchNormalization(momentum=0.9, name="bn1")
    out = layers.BatchNormalization(name="bn2")(layers.ReLU()(norm(h)))
    model = keras.Model(z_in, out)
    norm.trainable = False
    z = np.random.default_rng(0).standard_normal((10, 3)).astype("float32")
    trainable = [np.asarray(w).copy() for w in model.trainable_weights]
    pre = np.asarray(model.get_layer("dense")(z))

    recompute(model, z, batch_size=16)
    np.testing.assert_allclose(np.asarray(norm.moving_mean), pre.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(norm.moving_variance), pre.var(0), rtol=1e-4)
    second = np.maximum((pre - pre.mean(0)) / np.sqrt(pre.var(0) + norm.epsilon), 0)
    bn2 = model.get_layer("bn2")
    np.testing.assert_allclose(np.asarray(bn2.moving_mean), second.mean(0), rtol=1e-4, atol=1e-5)

    recompute(model, z, batch_size=4)  # batches of 4, 4 and 2
    np.testing.assert_allclose(np.asarray(norm.moving_mean), pre.mean(0), rtol=1e-5, atol=1e-6)
    weighted = (4 * pre[:4].var(0) + 4 * pre[4:8].var(0) + 2 * pre[8:].var(0)) / 10
    np.testing.assert_allclose(np.asarray(norm.moving_variance), weighted, rtol=1e-4)
    assert not np.allclose(weighted, pre.var(0), rtol=1e-2)  # the batching mattered

    for w, w0 in zip(model.trainable_weights, trainable):
        np.testing.assert_array_equal(np.asarray(w), w0)
    assert norm.momentum == 0.9 and norm.trainable is False
    assert [layer.name for layer in batch_norms(model)] == ["bn1", "bn2"]
    with pytest.raises(ValueError, match="one row per latent"):
        recompute(model, z, attributes=np.zeros((9, 40)))
