"""Training on real faces: losses move, outputs are images, saving and resuming are exact."""

import json

import numpy as np
import pytest

from facelib.config import preset
from facelib.errors import FacelibError


def _weights(model):
    return [np.asarray(w) for w in model.get_weights()]


def test_short_training_on_real_faces(tiny_run):
    from facelib import load_run

    run = load_run(tiny_run)
    assert run.step == 6
    faces = run.synthesize(run.sample_latents(8, seed=1))
    assert faces.shape == (8, 32, 32, 3) and np.isfinite(faces).all()
    assert faces.min() >= -1 and faces.max() <= 1
    rows = [json.loads(line) for line in (tiny_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4, 6]
    assert all(np.isfinite(r["d_loss"]) and r["images_per_sec"] > 0 for r in rows)
    assert (tiny_run / "samples" / "latest.png").exists()
    assert (tiny_run / "generator.keras").exists()
    assert any((tiny_run / "tensorboard").rglob("*tfevents*"))


@pytest.mark.slow
def test_discriminator_learns_then_generator_fights_back(cache32, tmp_path):
    """On real faces D's loss falls below chance (log 4 = 1.386 for the NS loss) as it learns
    to separate real from fake, and G's loss rises in response."""
    from facelib.run.folder import RunFolder
    from facelib.run.train import train

    cfg = preset("smoke", steps=40, log_every=10, checkpoint_every=40, g_lr=1e-4, d_lr=4e-4)
    train(cfg, tmp_path / "run", data=cache32, verbose=0)
    rows = RunFolder(tmp_path / "run").read_metrics()
    d = [r["d_loss"] for r in rows]
    g = [r["g_loss"] for r in rows]
    assert d[-1] < np.log(4) and d[-1] < d[0], d
    assert g[-1] > g[0], g
    assert rows[-1]["real_logit"] > rows[-1]["fake_logit"]


def test_keras_save_and_load_give_identical_samples(tiny_run):
    import keras

    from facelib import load_run

    run = load_run(tiny_run)
    loaded = keras.saving.load_model(tiny_run / "generator.keras")
    z = run.sample_latents(5, seed=3)
    np.testing.assert_allclose(np.asarray(loaded(z, training=False)), run.synthesize(z), atol=1e-6)


def test_generate_is_seeded(tiny_run):
    from facelib import load_run

    run = load_run(tiny_run)
    a, b, c = run.generate(4, seed=0), run.generate(4, seed=0), run.generate(4, seed=1)
    assert a.dtype == np.uint8 and a.shape == (4, 32, 32, 3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("options", [
    dict(),
    dict(loss="wgan-gp", augment="diffaugment", conditional=True),
    dict(architecture="resnet", spectral_norm=True, loss="hinge", ema_rampup=True,
         augment="diffaugment", g_width=32, d_width=32, conditional=True, attribute_loss=1.0,
         minibatch_std=4),
    # ADA's p is training state: a resume that restarted it at 0 would gate other faces
    # ... and so are LeCam's moving averages
    dict(augment="diffaugment", ada_target=0.6, ada_kimg=0.05, r1_gamma=1.0, r1_every=3,
         diffaugment_policy=("color", "translation", "geometric", "cutout"), lecam_weight=0.3),
    dict(d_features="pretrained:celeba32-attributes"),  # D with heads on frozen features
    # the EMA generator saved with standing statistics (drawn attribute rows, conditional)
    dict(standing_statistics=40, conditional=True, attribute_loss=1.0),
    dict(ema_power=4.0),  # the power EMA's decay follows the restored step
    dict(self_modulation=8),  # G's BatchNorms read z
])
@pytest.mark.slow
def test_resume_equals_uninterrupted(cache32, tmp_path, options):
    """8 steps in one go == 4 steps, a fresh process-like restart from the checkpoint, 4 more.
    Epochs of 3 steps put the interruption mid-epoch."""
    from facelib.data.pipeline import attribute_rows
    from facelib.run import feature_network
    from facelib.run.checkpoints import CheckpointManager
    from facelib.training.gan import GAN
    from facelib.run.train import train

    cfg = preset("smoke", steps=8, checkpoint_every=4, epoch_steps=3, log_every=4, **options)
    train(cfg, tmp_path / "a", data=cache32, verbose=0)
    train(cfg.replace(steps=4), tmp_path / "b", data=cache32, verbose=0)
    train(cfg, tmp_path / "b", data=cache32, resume=True, verbose=0)

    def load(run):
        rows = (attribute_rows(cache32, cfg.standing_statistics, cfg.seed)
                if cfg.conditional and cfg.standing_statistics else None)
        gan = GAN(cfg, feature_network=feature_network.load(cfg), standing_attributes=rows)
        gan.compile()
        CheckpointManager(run / "checkpoints").restore(gan, CheckpointManager(run / "checkpoints").latest())
        return gan

    a, b = load(tmp_path / "a"), load(tmp_path / "b")
    assert int(a.step.numpy()) == int(b.step.numpy()) == 8
    for net in ("generator", "discriminator", "ema_generator"):
        for wa, wb in zip(_weights(getattr(a, net)), _weights(getattr(b, net))):
            np.testing.assert_allclose(wa, wb, rtol=1e-5, atol=1e-6)
    for wa, wb in zip(a.g_optimizer.variables, b.g_optimizer.variables):
        np.testing.assert_allclose(np.asarray(wa), np.asarray(wb), rtol=1e-5, atol=1e-6)
    if a.ada_p is not None:
        assert 0 < float(a.ada_p.numpy()) == pytest.approx(float(b.ada_p.numpy()), abs=1e-7)
    if a.lecam_state is not None:
        assert float(a.lecam_state.numpy()[2]) > 0
        np.testing.assert_allclose(a.lecam_state.numpy(), b.lecam_state.numpy(), rtol=1e-5)
    if cfg.d_features:  # 8 steps of fit left the network as shipped (its BatchNorm statistics
        # too), and analyses get the same D, its feature heads included
        from facelib import load_run

        shipped = feature_network.load(cfg)
        frozen = [layer for layer in a.discriminator.get_layer("pretrained_features").layers
                  if layer.weights]
        assert sum(len(layer.weights) for layer in frozen) == 20  # 4 convs, 4 BatchNorms
        for layer in frozen:
            for w, w0 in zip(layer.get_weights(), shipped.get_layer(layer.name).get_weights()):
                np.testing.assert_array_equal(w, w0)
        x = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)).astype("float32")
        np.testing.assert_allclose(np.asarray(load_run(tmp_path / "a").discriminator()(x)),
                                   np.asarray(a.discriminator(x)), rtol=1e-5, atol=1e-5)


def test_a_run_folder_is_not_overwritten_without_resume(tiny_run, cache32):
    from facelib.run.train import train

    with pytest.raises(FacelibError, match="--resume"):
        train(preset("smoke", steps=2), tiny_run, data=cache32, verbose=0)


@pytest.mark.parametrize("options,name,bad", [
    (dict(lecam_weight=0.3), "lecam", ["x", 0, 1]),
    (dict(augment="diffaugment", ada_target=0.6, ada_kimg=0.05), "ada_p", 1.5),
])
def test_a_checkpoint_with_unreadable_training_state_is_refused_in_one_line(
        cache32, tmp_path, options, name, bad):
    """LeCam's averages and ADA's p are training state: a state.json that holds no valid value
    for them names the file and the fix, instead of resuming from other values."""
    import json

    from facelib.run.checkpoints import CheckpointManager, DamagedCheckpoint
    from facelib.run.train import train
    from facelib.training.gan import GAN

    cfg = preset("smoke", steps=2, checkpoint_every=2, **options)
    train(cfg, tmp_path / "r", data=cache32, verbose=0)
    manager = CheckpointManager(tmp_path / "r" / "checkpoints")
    path = manager.latest()
    state = json.loads((path / "state.json").read_text())
    if name == "lecam":
        assert len(state["lecam"]) == 3 and 0 < state["lecam"][2] < 1
    else:
        assert 0 < state["ada_p"] <= 1
    (path / "state.json").write_text(json.dumps({**state, name: bad}))
    gan = GAN(cfg)
    gan.compile()
    with pytest.raises(DamagedCheckpoint, match=rf"state\.json says {name} .*restore") as e:
        manager.restore(gan, path)
    assert "\n" not in str(e.value)


def test_resume_refuses_architecture_changes(tiny_run, cache32):
    from facelib.run.train import train

    with pytest.raises(FacelibError, match="g_width"):
        train(preset("smoke", steps=8, g_width=128), tiny_run, data=cache32, resume=True, verbose=0)


def test_resolution_mismatch_is_a_clear_error(cache32, tmp_path):
    from facelib.run.train import train

    with pytest.raises(FacelibError, match="--resolution 64"):
        train(preset("smoke", resolution=64), tmp_path / "r", data=cache32, verbose=0)


@pytest.mark.slow
def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(
        cache32, tmp_path, monkeypatch):
    """The discriminator loss turns NaN from the 5th call on (as a blown-up model would)."""
    import tensorflow as tf

    from facelib.training import gan as gan_module
    from facelib.run.checkpoints import CheckpointManager
    from facelib.training.losses import d_loss_ns, g_loss_ns
    from facelib.run.train import train

    calls = tf.Variable(0)

    def poisoned(real, fake):
        calls.assign_add(1)
        return d_loss_ns(real, fake) * tf.where(calls > 4, float("nan"), 1.0)

    monkeypatch.setitem(gan_module.LOSSES, "ns", (poisoned, g_loss_ns))
    cfg = preset("smoke", steps=20, checkpoint_every=2, log_every=1)
    with pytest.raises(FacelibError, match="non-finite loss at step 5") as e:
        train(cfg, tmp_path / "r", data=cache32, verbose=0)
    assert "last good checkpoint (step 4)" in str(e.value) and "--resume" in str(e.value)
    latest = CheckpointManager(tmp_path / "r" / "checkpoints").latest()
    assert CheckpointManager.state(latest)["step"] == 4


def test_checkpoint_write_is_atomic(tiny_run, monkeypatch, tmp_path):
    """A crash while a checkpoint is written leaves `latest` pointing at the previous one."""
    import shutil

    from facelib.run.checkpoints import CheckpointManager
    from facelib.training.gan import GAN

    run = tmp_path / "copy"
    shutil.copytree(tiny_run, run)
    manager = CheckpointManager(run / "checkpoints")
    before = manager.latest()
    cfg = preset("smoke", steps=6, checkpoint_every=3, log_every=2)
    gan = GAN(cfg)
    gan.compile()
    manager.restore(gan, before)
    gan.step.assign(7)

    def crash(*args, **kwargs):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(gan.discriminator, "save_weights", crash)
    with pytest.raises(OSError):
        manager.save(gan)
    assert manager.latest() == before
    assert CheckpointManager.state(manager.latest())["step"] == 6
    assert not (run / "checkpoints" / "step-00000007").exists()


@pytest.mark.slow
def test_kid_in_the_loop_logs_kid_and_keeps_the_best_checkpoint(cache32, tmp_path):
    """kid_every=1 measures KID each epoch (test network: no weights needed, not comparable)."""
    from facelib import load_run
    from facelib.run.folder import RunFolder
    from facelib.run.checkpoints import CheckpointManager
    from facelib.run.train import train

    cfg = preset("smoke", steps=6, epoch_steps=3, checkpoint_every=3, kid_every=1,
                 kid_samples=16, kid_network="test")
    train(cfg, tmp_path / "r", data=cache32, verbose=0)
    kids = [r for r in RunFolder(tmp_path / "r").read_metrics() if "kid_mean" in r]
    assert [r["step"] for r in kids] == [3, 6]
    assert all(np.isfinite(r["kid_mean"]) for r in kids)
    best = CheckpointManager(tmp_path / "r" / "checkpoints").best()
    best_step = CheckpointManager.state(best)["step"]
    assert best_step == min(kids, key=lambda r: r["kid_mean"])["step"]
    assert load_run(tmp_path / "r", checkpoint="best").step == best_step


def test_a_run_from_another_architecture_gives_a_clear_error(tiny_run, tmp_path):
    """Weights that do not fit the generator rebuilt from config.json (e.g. a run trained by an
    older facelib) are refused with a message, not a raw Keras error."""
    import shutil

    from facelib import load_run

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("tensorboard"))
    cfg = json.loads((run / "config.json").read_text())
    cfg["conditional"] = True
    (run / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(FacelibError, match="older architecture"):
        load_run(run)


def _one_minus_decay_at(gan, step: int) -> float:
    """1 - the EMA decay the GAN applies at ``step``: what one update leaves in an EMA at 0 from
    G at 1 (compared as is, so that a decay near 1 is checked to the digits that matter)."""
    import tensorflow as tf

    gan.step.assign(step)
    for e, g in zip(gan.ema_generator.trainable_variables, gan.generator.trainable_variables):
        e.assign(tf.zeros_like(e))
        g.assign(tf.ones_like(g))
    gan._update_ema()
    return float(np.asarray(gan.ema_generator.trainable_variables[0]).ravel()[0])


def test_ema_rampup_follows_the_generator_early_then_the_set_decay():
    """Known answer: at step s the EMA decay is min(ema_decay, (1 + s) / (10 + s))."""
    from facelib.training.gan import GAN

    gan = GAN(preset("smoke", ema_decay=0.99, ema_rampup=True))
    gan.compile()
    for step, decay in ((0, 0.1), (5, 6 / 15), (10_000, 0.99)):
        assert _one_minus_decay_at(gan, step) == pytest.approx(1.0 - decay, rel=1e-5), step
    off = GAN(preset("smoke", ema_decay=0.99))
    off.compile()
    assert _one_minus_decay_at(off, 0) == pytest.approx(0.01, rel=1e-5)  # no ramp: the set decay


def test_power_ema_decay_is_a_power_of_the_step_capped_by_ema_decay():
    """Known answer (Karras et al. 2024): at step s the decay is (1 - 1/(s+1))^(gamma+1), so the
    first update copies G, and ema_decay caps it."""
    from facelib.training.gan import GAN

    gan = GAN(preset("smoke", ema_decay=0.99, ema_power=4.0))
    gan.compile()
    for step, decay in ((0, 0.0), (1, 0.5 ** 5), (9, 0.9 ** 5), (10_000, 0.99)):
        assert _one_minus_decay_at(gan, step) == pytest.approx(1.0 - decay, rel=1e-5), step


def test_diffaugment_draws_stay_in_range_for_bfloat16_images():
    """bfloat16 rounds a draw of 0.999 up to 1.0; the shifts must still index inside the image."""
    import tensorflow as tf

    from facelib.training.augment import diff_augment, n_draws

    policy = ("color", "translation", "cutout")
    x = tf.cast(tf.random.uniform((6, 32, 32, 3), -1, 1, seed=1), tf.bfloat16)
    u = tf.constant(np.full((6, n_draws(policy)), 0.9999, np.float32))
    out = diff_augment(x, policy, u)
    assert out.dtype == tf.bfloat16 and out.shape == x.shape
    assert np.isfinite(np.asarray(tf.cast(out, tf.float32))).all()
    moved = diff_augment(x, ("translation",), u[:, :2])
    ref = diff_augment(tf.cast(x, tf.float32), ("translation",), u[:, :2])
    np.testing.assert_array_equal(np.asarray(tf.cast(moved, tf.float32)), np.asarray(ref))


def test_affine_warp_known_answers():
    """Identity is exact, a quarter turn is rot90, a one-pixel shift mirrors the border, and the
    gradient is the warp's exact adjoint (<warp(x), y> == <x, warp^T(y)>)."""
    import tensorflow as tf

    from facelib.training.augment import affine_warp

    x = tf.random.stateless_uniform((3, 16, 16, 3), seed=(5, 6), minval=-1, maxval=1)

    def warp(rows):
        return np.asarray(affine_warp(x, tf.constant([rows] * 3, tf.float32)))

    np.testing.assert_array_equal(warp([[1, 0, 0], [0, 1, 0]]), np.asarray(x))
    quarter = warp([[0, 1, 0], [-1, 0, 0]])  # output (u, v) shows input (v, -u)
    np.testing.assert_allclose(quarter, np.asarray(tf.image.rot90(x, 3)), atol=1e-6)
    shifted = warp([[1, 0, 1], [0, 1, 0]])  # shows the pixel one to the right
    np.testing.assert_array_equal(shifted[:, :, :-1], np.asarray(x)[:, :, 1:])
    np.testing.assert_array_equal(shifted[:, :, -1], np.asarray(x)[:, :, -1])  # mirrored edge
    half = warp([[1, 0, 0.5], [0, 1, 0]])  # half a pixel: the mean of the two neighbours
    np.testing.assert_allclose(half[:, :, :-1], (np.asarray(x)[:, :, :-1] + np.asarray(x)[:, :, 1:]) / 2,
                               atol=1e-6)
    m = tf.constant([[[0.9, 0.3, 1.7], [-0.2, 1.1, -2.4]]] * 3, tf.float32)
    y = tf.random.stateless_normal(x.shape, seed=(7, 8))
    with tf.GradientTape() as tape:
        tape.watch(x)
        inner = tf.reduce_sum(affine_warp(x, m) * y)
    adjoint_y = tape.gradient(inner, x)
    assert float(inner) == pytest.approx(float(tf.reduce_sum(x * adjoint_y)), rel=1e-4)


def test_geometric_op_is_identity_at_the_median_draw_and_moves_faces_otherwise():
    """u = 0.5 is the median of every normal draw: scale 1, angle 0, no shift, the face as it
    was. Other draws move it, differently per face, and keep its range (bilinear taps)."""
    import tensorflow as tf

    from facelib.training.augment import diff_augment

    x = tf.random.stateless_uniform((8, 32, 32, 3), seed=(1, 2), minval=-1, maxval=1)
    same = diff_augment(x, ("geometric",), tf.fill((8, 4), 0.5))
    np.testing.assert_allclose(np.asarray(same), np.asarray(x), atol=1e-5)
    u = tf.random.stateless_uniform((8, 4), seed=(3, 4))
    moved = np.asarray(diff_augment(x, ("geometric",), u))
    change = np.abs(moved - np.asarray(x)).mean(axis=(1, 2, 3))
    assert (change > 0.05).all(), change
    assert moved.min() >= -1 - 1e-5 and moved.max() <= 1 + 1e-5
    bf16 = diff_augment(tf.cast(x, tf.bfloat16), ("geometric",), u)
    assert bf16.dtype == tf.bfloat16
    np.testing.assert_allclose(np.asarray(tf.cast(bf16, tf.float32)), moved, atol=0.05)


@pytest.mark.slow
def test_bfloat16_training_moves_the_losses_and_saves_float32_weights(cache32, tmp_path):
    from facelib import load_run
    from facelib.run.train import train

    cfg = preset("cpu-conditional", g_width=32, d_width=32, batch_size=16, steps=6,
                 checkpoint_every=6, log_every=3, precision="mixed_bfloat16")
    result = train(cfg, tmp_path / "bf16", data=cache32, verbose=0)
    assert result.step == 6 and np.isfinite(list(result.logs.values())).all()
    run = load_run(tmp_path / "bf16")
    assert all(w.dtype == "float32" for w in run.generator.weights)
    assert run.generate(2, seed=0).shape == (2, 32, 32, 3)


def test_time_budget_marks_in_order_then_stops(cache32, tmp_path):
    from facelib.run.folder import RunFolder
    from facelib.run.train import train
    from facelib.training.callbacks import TimeBudget

    seen = []
    budget = TimeBudget([1e-9, 2e-9], lambda s, gan: seen.append((s, int(gan.step.numpy()))))
    result = train(preset("smoke", steps=50), tmp_path / "b", data=cache32, callbacks=[budget],
                   verbose=0)
    # both marks pass after the first step; training stops there, checkpointed as at the end
    assert [s for s, _ in seen] == [1e-9, 2e-9] and seen[0][1] == 1
    assert result.step == 1 and budget.reached == [(1e-9, 1), (2e-9, 1)]
    assert RunFolder(tmp_path / "b").checkpoints.latest() is not None
    with pytest.raises(ValueError, match="positive"):
        TimeBudget([0])
    with pytest.raises(ValueError, match="clock"):
        TimeBudget([1], clock="gpu")


def test_train_minutes_stops_early_and_resume_continues(cache32, tmp_path):
    from facelib.run.train import train

    cfg = preset("smoke", steps=10_000, checkpoint_every=10_000)
    first = train(cfg, tmp_path / "m", data=cache32, verbose=0, minutes=1e-6)
    assert 1 <= first.step < 10_000 and first.checkpoint is not None
    more = train(cfg.replace(steps=first.step + 3), tmp_path / "m", data=cache32, resume=True,
                 verbose=0)
    assert more.step == first.step + 3
    with pytest.raises(Exception, match="positive"):
        train(cfg, tmp_path / "n", data=cache32, verbose=0, minutes=0)


def test_balanced_attribute_weights_known_answers_and_refusals():
    from facelib.errors import FacelibError
    from facelib.training.gan import GAN, attribute_weights

    present, absent = attribute_weights([0.5, 0.02, 0.9], 3)
    np.testing.assert_allclose(present, [1.0, 10.0, 0.5 / 0.9], rtol=1e-6)  # 25 capped at 10
    np.testing.assert_allclose(absent, [1.0, 0.5 / 0.98, 5.0], rtol=1e-6)
    # uncapped, the weights average 1 over the rows
    assert 0.9 * float(present[2]) + 0.1 * float(absent[2]) == pytest.approx(1.0)
    with pytest.raises(FacelibError, match="3 shares in \\[0, 1\\]"):
        attribute_weights([0.5, 0.5], 3)
    with pytest.raises(FacelibError, match="3 shares"):
        attribute_weights([0.5, 1.5, 0.1], 3)
    cfg = preset("smoke", conditional=True, attribute_loss=1.0, balanced_attribute_loss=True)
    with pytest.raises(FacelibError, match="attribute_share=") as e:
        GAN(cfg)
    assert "\n" not in str(e.value)
    with pytest.raises(FacelibError, match="balanced_attribute_loss") as e:
        preset("smoke", conditional=True, balanced_attribute_loss=True)
    assert "attribute_loss > 0" in str(e.value) and "\n" not in str(e.value)


def test_balanced_attribute_loss_weights_each_attributes_present_and_absent_rows():
    """The balanced loss is the plain per-attribute cross-entropy times 0.5/p where the attribute
    is present and 0.5/(1-p) where absent; on a rare attribute asked for and missed it is
    several times the plain loss, and at p = 0.5 it equals it."""
    import tensorflow as tf

    from facelib.training.gan import GAN

    cfg = preset("smoke", conditional=True, attribute_loss=1.0, num_attributes=2)
    share = np.array([0.05, 0.5])
    plain = GAN(cfg)
    balanced = GAN(cfg.replace(balanced_attribute_loss=True), attribute_share=share)
    logits = tf.constant([[-2.0, 0.3], [-2.0, -0.7], [1.0, 0.3]])
    attrs = tf.constant([[1.0, 1.0], [0.0, 0.0], [0.0, 1.0]])
    ce = np.asarray(tf.nn.sigmoid_cross_entropy_with_logits(labels=attrs, logits=logits))
    w = np.where(np.asarray(attrs) > 0, 0.5 / share, 0.5 / (1 - share))
    np.testing.assert_allclose(balanced._attribute_loss(logits, attrs), (ce * w).mean(axis=1),
                               rtol=1e-6)
    np.testing.assert_allclose(plain._attribute_loss(logits, attrs), ce.mean(axis=1), rtol=1e-6)
    # a hat asked for and missed weighs 10 times; the common attribute's term is unchanged
    assert float(balanced._attribute_loss(logits, attrs)[0]) > 5 * float(
        plain._attribute_loss(logits, attrs)[0])


@pytest.mark.parametrize("conditional", [True, False])
def test_attribute_loss_trains_d_to_read_attributes_of_real_faces(cache32, conditional):
    """AC-GAN's head: after a few steps on real faces, D's attribute logits predict the
    labels of training faces better than they did at the start (its loss falls). On an
    unconditional run the head is D's alone, G taking z only."""
    import tensorflow as tf

    from facelib.training.gan import GAN

    x, y = _labelled_faces(cache32)
    cfg = preset("smoke", conditional=conditional, attribute_loss=1.0, batch_size=32, d_lr=5e-3)
    gan = GAN(cfg)
    gan.compile()
    assert gan.discriminator.output.shape[-1] == 41  # logit, then 40 attribute logits
    assert len(gan.generator.inputs) == (2 if conditional else 1)

    def loss():
        return float(np.mean(gan._attribute_loss(gan.discriminator(gan._inputs(x, y))[:, 1:], y)))

    before = loss()
    history = gan.fit(tf.data.Dataset.from_tensors((x, y)).repeat(), steps_per_epoch=30,
                      epochs=1, verbose=0)
    assert "attribute_loss" in history.history
    assert loss() < 0.85 * before  # chance: ln 2 = 0.693; the label priors alone: about 0.45


def test_logged_real_logit_is_ds_real_or_fake_logit_not_its_attribute_logits(cache32):
    """With AC-GAN's head D outputs 41 columns; the logged real_logit is the mean of column 0
    alone. Learning rates of 1e-12 and no augmentation: the step's D is the D measured here."""
    import tensorflow as tf

    from facelib.training.gan import GAN

    x, y = _labelled_faces(cache32, 16)
    cfg = preset("smoke", conditional=True, attribute_loss=1.0, batch_size=16, g_lr=1e-12,
                 d_lr=1e-12, flip=False)
    gan = GAN(cfg)
    gan.compile()
    logits = np.asarray(gan.discriminator([x, y], training=True))
    history = gan.fit(tf.data.Dataset.from_tensors((x, y)).repeat(), steps_per_epoch=1,
                      epochs=1, verbose=0).history
    assert history["real_logit"][0] == pytest.approx(float(logits[:, 0].mean()), abs=1e-4)
    assert abs(float(logits[:, 0].mean()) - float(logits.mean())) > 1e-3  # the two differ here


def test_unconditional_attribute_loss_leaves_g_without_an_attribute_term(cache32):
    """On an unconditional run the attribute head is D's alone (G is given no labels): with the
    weights held still, the step's G loss is the loss of D's real/fake logit on G's faces alone."""
    import tensorflow as tf

    from facelib.training.gan import _G_LATENT, GAN

    x, y = _labelled_faces(cache32)
    data = tf.data.Dataset.from_tensors((x, y)).repeat()
    frozen = preset("smoke", attribute_loss=1.0, batch_size=32, d_lr=1e-12, g_lr=1e-12,
                    augment="none")
    gan = GAN(frozen)
    gan.compile()
    z = gan._draw("normal", _G_LATENT, 32, frozen.latent_dim)  # G's latents at step 0
    out = gan.discriminator(gan.generator(z, training=True), training=True)
    without_head = float(tf.reduce_mean(gan._g_loss_fn(tf.cast(out[:, 0], tf.float32))))
    with_head = without_head + float(np.mean(gan._attribute_loss(out[:, 1:], y)))
    g_loss = gan.fit(data, steps_per_epoch=1, epochs=1, verbose=0).history["g_loss"][0]
    assert g_loss == pytest.approx(without_head, rel=1e-3)
    assert abs(with_head - without_head) > 0.1  # the term it leaves out is not negligible


def _linear_critic(weights):
    """D(x) = <w, x>: its input gradient is w for every face."""
    import keras

    x = keras.Input((32, 32, 3))
    dense = keras.layers.Dense(1, use_bias=False)
    out = dense(keras.layers.Flatten()(x))
    model = keras.Model(x, out)
    dense.kernel.assign(weights.reshape(-1, 1))
    return model


def test_r1_penalty_known_answer_and_lazy_schedule():
    """Known answer: for D(x) = <w, x>, R1 is gamma/2 |w|^2 per face, times r1_every at steps
    divisible by r1_every and 0 at the others (StyleGAN2's lazy regularisation)."""
    import tensorflow as tf

    from facelib.training.gan import GAN

    w = np.random.default_rng(0).normal(size=32 * 32 * 3).astype("float32") * 0.1
    gan = GAN(preset("smoke", r1_gamma=0.5, r1_every=4), discriminator=_linear_critic(w))
    x = tf.constant(np.random.default_rng(1).uniform(-1, 1, (3, 32, 32, 3)).astype("float32"))
    expected = 0.5 * 0.5 * 4 * float(np.sum(w.astype(np.float64) ** 2))
    for step, want in ((0, expected), (1, 0.0), (4, expected), (6, 0.0)):
        gan.step.assign(step)
        got = np.asarray(gan._r1_penalty(x, None))
        np.testing.assert_allclose(got, [want] * 3, rtol=1e-4, err_msg=f"step {step}")


def _input_gradient_norm(gan, x):
    import tensorflow as tf

    with tf.GradientTape() as tape:
        tape.watch(x)
        total = tf.reduce_sum(gan.discriminator(x, training=True))
    return float(tf.reduce_mean(tf.norm(tf.reshape(tape.gradient(total, x), [len(x), -1]), axis=1)))


def _labelled_faces(cache32, n: int = 32):
    """The first ``n`` training faces as tensors: images in [-1, 1] and their 0/1 attributes."""
    import tensorflow as tf

    from facelib.data.cache import FaceCache
    from facelib.images import to_float

    cache = FaceCache.open(cache32)
    idx = cache.indices("train")[:n]
    return (tf.constant(to_float(cache.images[idx])),
            tf.constant(np.asarray(cache.attributes[idx], np.float32)))


def _one_batch_of_real_faces(cache32):
    """32 training faces as a tensor in [-1, 1], and a dataset that repeats them (no attributes):
    the same batch every step, so two runs differ only in the setting under test."""
    import tensorflow as tf

    x, _ = _labelled_faces(cache32)
    return x, tf.data.Dataset.from_tensors((x, tf.zeros((32, 40)))).repeat()


@pytest.mark.slow
def test_r1_flattens_the_discriminator_on_real_faces(cache32):
    """The perturbation: the same 30 steps on real faces from the same initialisation, with a
    strong R1 and without; D's input gradient on those faces ends up smaller with it."""
    from facelib.training.gan import GAN

    x, data = _one_batch_of_real_faces(cache32)
    norms = {}
    for gamma in (0.0, 10.0):
        gan = GAN(preset("smoke", batch_size=32, d_lr=1e-3, r1_gamma=gamma, r1_every=1))
        gan.compile()
        history = gan.fit(data, steps_per_epoch=30, epochs=1, verbose=0)
        assert ("r1" in history.history) == (gamma > 0)
        norms[gamma] = _input_gradient_norm(gan, x)
    assert norms[10.0] < 0.5 * norms[0.0], norms


def test_ada_gates_choose_which_faces_each_op_touches():
    """Known answer: a gate that is off leaves the face as it was for that op; all gates on is
    DiffAugment itself."""
    import tensorflow as tf

    from facelib.training.augment import diff_augment, n_draws

    policy = ("color", "translation", "cutout")
    x = tf.random.stateless_uniform((4, 32, 32, 3), seed=(1, 2), minval=-1, maxval=1)
    u = tf.random.stateless_uniform((4, n_draws(policy)), seed=(3, 4))
    full = np.asarray(diff_augment(x, policy, u))
    np.testing.assert_array_equal(np.asarray(diff_augment(x, policy, u, tf.ones((4, 3), bool))), full)
    np.testing.assert_array_equal(np.asarray(diff_augment(x, policy, u, tf.zeros((4, 3), bool))),
                                  np.asarray(x))
    # face 0 all ops, face 1 none, face 2 only the cutout, face 3 only the colour
    gates = tf.constant(np.array([[1, 1, 1], [0, 0, 0], [0, 0, 1], [1, 0, 0]], bool))
    out = np.asarray(diff_augment(x, policy, u, gates))
    np.testing.assert_array_equal(out[0], full[0])
    np.testing.assert_array_equal(out[1], np.asarray(x)[1])
    np.testing.assert_array_equal(out[2], np.asarray(diff_augment(x[2:3], ("cutout",), u[2:3, 5:7]))[0])
    np.testing.assert_array_equal(out[3], np.asarray(diff_augment(x[3:4], ("color",), u[3:4, 0:3]))[0])


def test_ada_probability_follows_the_sign_of_real_logits():
    """Known answer: with ada_kimg=1 and a batch of 16, p moves by 16/1000 a step: up while
    E[sign D(x)] > target, down below it, never outside [0, 1]."""
    import tensorflow as tf

    from facelib.training.gan import GAN

    gan = GAN(preset("smoke", augment="diffaugment", ada_target=0.6, ada_kimg=1.0))
    ctx = tf.distribute.get_replica_context()
    sure = tf.ones((16, 1))  # every real face called real: r = 1 > 0.6
    for _ in range(3):
        gan._update_ada(sure, ctx, 16)
    assert float(gan.ada_p.numpy()) == pytest.approx(0.048, abs=1e-6)
    unsure = tf.constant([[1.0]] * 8 + [[-1.0]] * 8)  # r = 0 < 0.6
    for _ in range(5):
        gan._update_ada(unsure, ctx, 16)
    assert float(gan.ada_p.numpy()) == 0.0
    gan.ada_p.assign(0.995)
    gan._update_ada(sure, ctx, 16)
    assert float(gan.ada_p.numpy()) == 1.0


def test_r1_and_ada_settings_are_checked():
    with pytest.raises(FacelibError, match="ada_target.*augment='diffaugment'"):
        preset("smoke", ada_target=0.6)
    with pytest.raises(FacelibError, match="r1_gamma"):
        preset("smoke", r1_gamma=-1.0)
    with pytest.raises(FacelibError, match="r1_every"):
        preset("smoke", r1_gamma=1.0, r1_every=0)
    with pytest.raises(FacelibError, match="ada_kimg"):
        preset("smoke", augment="diffaugment", ada_target=0.6, ada_kimg=0)


def test_lecam_penalty_known_answer_and_unbiased_anchors():
    """Known answer: the first batch's anchors are its own mean logits (the averages are
    unbiased from the first step), later ones the decayed averages; the penalty is
    relu(D(x) - a_fake)^2 + relu(a_real - D(G(z)))^2 per face."""
    import tensorflow as tf

    from facelib.training.gan import GAN
    from facelib.training.losses import lecam_penalty

    np.testing.assert_allclose(
        np.asarray(lecam_penalty(tf.constant([2.0, -1.0]), tf.constant([0.5, -3.0]), 1.0, -0.5)),
        [2.5 ** 2 + 0.5 ** 2, 0.0 + 4.0 ** 2])
    gan = GAN(preset("smoke", lecam_weight=0.5, lecam_decay=0.9))
    ctx = tf.distribute.get_replica_context()
    real, fake = tf.constant([3.0, 1.0]), tf.constant([-1.0, -3.0])  # means 2 and -2
    got = np.asarray(gan._lecam(real, fake, ctx, 2))
    np.testing.assert_allclose(got, [(3 + 2) ** 2 + (2 + 1) ** 2, (1 + 2) ** 2 + (2 + 3) ** 2],
                               rtol=1e-6)
    real2, fake2 = tf.constant([0.0, 0.0]), tf.constant([0.0, 0.0])
    gan._lecam(real2, fake2, ctx, 2)
    # after two batches: a_real = (0.9 * 0.1 * 2 + 0.1 * 0) / (0.9 * 0.1 + 0.1) = 0.18 / 0.19
    anchors = gan.lecam_state.numpy()
    assert anchors[0] / anchors[2] == pytest.approx(0.18 / 0.19, rel=1e-6)
    assert anchors[1] / anchors[2] == pytest.approx(-0.18 / 0.19, rel=1e-6)


@pytest.mark.slow
def test_lecam_keeps_real_and_fake_logits_closer(cache32):
    """The perturbation: the same 40 steps on the same real faces from the same initialisation,
    with a strong LeCam weight and without; with it, D's mean logits on real and on fake faces
    end up closer together."""
    from facelib.training.gan import GAN

    _, data = _one_batch_of_real_faces(cache32)
    gaps = {}
    for weight in (0.0, 3.0):
        gan = GAN(preset("smoke", batch_size=32, d_lr=1e-3, lecam_weight=weight))
        gan.compile()
        history = gan.fit(data, steps_per_epoch=40, epochs=1, verbose=0).history
        assert ("lecam" in history) == (weight > 0)
        gaps[weight] = history["real_logit"][-1] - history["fake_logit"][-1]
    assert gaps[0.0] > 0 and gaps[3.0] < 0.5 * gaps[0.0], gaps


def test_lecam_settings_are_checked():
    with pytest.raises(FacelibError, match="lecam_weight"):
        preset("smoke", lecam_weight=-0.1)
    with pytest.raises(FacelibError, match="lecam_decay"):
        preset("smoke", lecam_weight=0.1, lecam_decay=1.0)


def test_config_names_exactly_the_augment_ops_training_has():
    """config validates diffaugment_policy against its own list (it cannot import training): an op
    added to one and not the other would pass validation and fail mid-training, or be refused."""
    from facelib.config import DIFFAUGMENT_OPS
    from facelib.training.augment import OPS, n_draws

    assert sorted(DIFFAUGMENT_OPS) == sorted(OPS)
    assert n_draws(DIFFAUGMENT_OPS) == 11  # 3 colour + 2 translation + 2 cutout + 4 geometric


def _norm_statistics(model):
    from facelib.models.standing_statistics import batch_norms

    return [np.concatenate([np.asarray(layer.moving_mean), np.asarray(layer.moving_variance)])
            for layer in batch_norms(model)]


@pytest.mark.slow
def test_standing_statistics_are_the_ema_generators_own(cache32, tmp_path):
    """With standing_statistics, what a run saves (checkpoint and generator.keras) is the EMA
    generator with BatchNorm statistics measured on its own activations over the run's fixed
    latents; without, G's moving statistics, as before. Training itself is the same."""
    import keras

    from facelib import load_run
    from facelib.models import build_generator, standing_statistics
    from facelib.run.checkpoints import CheckpointManager
    from facelib.run.interface import build_float32
    from facelib.run.train import train
    from facelib.training.gan import GAN, standing_inputs

    cfg = preset("smoke", steps=6, checkpoint_every=6, epoch_steps=3, log_every=6, ema_decay=0.5)
    on = cfg.replace(standing_statistics=48)
    train(cfg, tmp_path / "off", data=cache32, verbose=0)
    train(on, tmp_path / "on", data=cache32, verbose=0)

    def restored(run, config):
        gan = GAN(config)
        gan.compile()
        manager = CheckpointManager(run / "checkpoints")
        manager.restore(gan, manager.latest())
        return gan

    off, std = restored(tmp_path / "off", cfg), restored(tmp_path / "on", on)
    for wa, wb in zip(_weights(off.generator), _weights(std.generator)):  # training unchanged
        np.testing.assert_allclose(wa, wb, rtol=1e-5, atol=1e-6)
    ema_weights = [np.asarray(w) for w in std.ema_generator.trainable_weights]
    for wa, wb in zip([np.asarray(w) for w in off.ema_generator.trainable_weights], ema_weights):
        np.testing.assert_allclose(wa, wb, rtol=1e-5, atol=1e-6)
    # off: the EMA generator holds G's statistics; on: its own, measured anew
    for a, b in zip(_norm_statistics(off.ema_generator), _norm_statistics(off.generator)):
        np.testing.assert_array_equal(a, b)
    expected = build_float32(build_generator, on)
    expected.set_weights(std.generator.get_weights())
    for e, w in zip(expected.trainable_weights, ema_weights):
        e.assign(w)
    standing_statistics.recompute(expected, *standing_inputs(on))
    saved, g_stats = _norm_statistics(std.ema_generator), _norm_statistics(std.generator)
    assert len(saved) == 3
    for s, e, g in zip(saved, _norm_statistics(expected), g_stats):
        np.testing.assert_allclose(s, e, rtol=1e-4, atol=1e-5)
        assert np.abs(s - g).max() > 1e-2  # a perturbation: not G's statistics
    # generator.keras and every analysis (load_run) sample the same network
    exported = keras.saving.load_model(tmp_path / "on" / "generator.keras")
    z = load_run(tmp_path / "on").sample_latents(4, seed=2)
    np.testing.assert_allclose(np.asarray(exported(z, training=False)),
                               load_run(tmp_path / "on").synthesize(z), atol=1e-5)
    np.testing.assert_allclose(np.asarray(exported(z, training=False)),
                               np.asarray(expected(z, training=False)), atol=1e-4)


def test_standing_statistics_of_a_conditional_run_need_attribute_rows():
    from facelib.training.gan import GAN

    cfg = preset("smoke", conditional=True, standing_statistics=16)
    with pytest.raises(FacelibError, match="standing_attributes=ROWS"):
        GAN(cfg)
    with pytest.raises(FacelibError, match=r"given shape \(8, 40\)"):
        GAN(cfg, standing_attributes=np.zeros((8, 40)))
