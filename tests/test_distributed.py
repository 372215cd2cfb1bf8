"""Training under MirroredStrategy over two logical CPU devices equals one device.

Losses are summed per replica and divided by the global batch, and every random draw is made
for the global batch and sliced per replica, so the two runs must agree. Logical devices must be
configured before TensorFlow starts, hence the subprocess.
"""

import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from facelib.config import preset
    from facelib.run.train import train
    from facelib.run.checkpoints import CheckpointManager
    from facelib.training.gan import GAN

    cache, out = sys.argv[1], sys.argv[2]
    cfg = preset("smoke", steps=3, batch_size=8, checkpoint_every=3, log_every=1, **OPTIONS)
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert mirrored.num_replicas_in_sync == 2
    train(cfg, out + "/mirrored", data=cache, strategy=mirrored, verbose=0)
    train(cfg, out + "/single", data=cache, strategy=tf.distribute.OneDeviceStrategy("/cpu:0"),
          verbose=0)

    def load(name):
        gan = GAN(cfg); gan.compile()
        m = CheckpointManager(out + "/" + name + "/checkpoints"); m.restore(gan, m.latest())
        return gan
    a, b = load("mirrored"), load("single")
    worst = 0.0
    for net in ("generator", "discriminator", "ema_generator"):
        for wa, wb in zip(getattr(a, net).get_weights(), getattr(b, net).get_weights()):
            worst = max(worst, float(np.max(np.abs(np.asarray(wa) - np.asarray(wb)))))
    import json
    def losses(name):
        rows = [json.loads(l) for l in open(out + "/" + name + "/metrics.jsonl")]
        return np.array([[r["d_loss"], r["g_loss"]] for r in rows])
    la, lb = losses("mirrored"), losses("single")
    rel = float(np.max(np.abs(la - lb) / np.abs(lb)))
    print("MAXDIFF", worst, "STEP", int(a.step.numpy()), int(b.step.numpy()), "LOSSREL", rel)
""")


def _run(cache32, tmp_path, options):
    code = "OPTIONS = " + repr(options) + "\n" + SCRIPT
    proc = subprocess.run([sys.executable, "-c", code, str(cache32), str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("MAXDIFF")][-1].split()
    return float(line[1]), int(line[3]), int(line[4]), float(line[6])


# Adam's first steps move each weight by about lr * sign(gradient), so float noise in a
# near-zero gradient can flip one weight by ~lr (2e-4): weights are compared at 5 * lr, the
# per-step losses (global-batch means, which a wrong reduction would double) tightly.
@pytest.mark.slow
def test_mirrored_two_cpus_matches_one_device(cache32, tmp_path):
    worst, step_a, step_b, loss_rel = _run(cache32, tmp_path, {})
    assert step_a == step_b == 3
    assert loss_rel < 1e-3, loss_rel
    assert worst < 1e-3, worst


@pytest.mark.slow
def test_mirrored_with_augmentation_and_gradient_penalty(cache32, tmp_path):
    worst, step_a, step_b, loss_rel = _run(cache32, tmp_path,
                                           {"loss": "wgan-gp", "augment": "diffaugment"})
    assert step_a == step_b == 3
    assert loss_rel < 1e-3, loss_rel
    assert worst < 1e-3, worst
