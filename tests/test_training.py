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
])
@pytest.mark.slow
def test_resume_equals_uninterrupted(cache32, tmp_path, options):
    """8 steps in one go == 4 steps, a fresh process-like restart from the checkpoint, 4 more.
    Epochs of 3 steps put the interruption mid-epoch."""
    from facelib.run.checkpoints import CheckpointManager
    from facelib.training.gan import GAN
    from facelib.run.train import train

    cfg = preset("smoke", steps=8, checkpoint_every=4, epoch_steps=3, log_every=4, **options)
    train(cfg, tmp_path / "a", data=cache32, verbose=0)
    train(cfg.replace(steps=4), tmp_path / "b", data=cache32, verbose=0)
    train(cfg, tmp_path / "b", data=cache32, resume=True, verbose=0)

    def load(run):
        gan = GAN(cfg)
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


def test_a_run_folder_is_not_overwritten_without_resume(tiny_run, cache32):
    from facelib.run.train import train

    with pytest.raises(FacelibError, match="--resume"):
        train(preset("smoke", steps=2), tiny_run, data=cache32, verbose=0)


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
