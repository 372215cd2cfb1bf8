"""Adversarial losses, per example (the caller reduces over the global batch).

Each function takes discriminator logits and returns a float32 vector, one value per example.
"""

from __future__ import annotations

import tensorflow as tf


def d_loss_ns(real_logits, fake_logits):
    """Non-saturating (Goodfellow et al. 2014): -log D(x) - log(1 - D(G(z)))."""
    return tf.nn.softplus(-real_logits) + tf.nn.softplus(fake_logits)


def g_loss_ns(fake_logits):
    return tf.nn.softplus(-fake_logits)


def d_loss_hinge(real_logits, fake_logits):
    """Hinge (Lim and Ye 2017; used with spectral normalisation by Miyato et al. 2018)."""
    return tf.nn.relu(1.0 - real_logits) + tf.nn.relu(1.0 + fake_logits)


def g_loss_hinge(fake_logits):
    return -fake_logits


def d_loss_wasserstein(real_logits, fake_logits):
    """The critic part of WGAN-GP; the gradient penalty is added by the caller."""
    return fake_logits - real_logits


def g_loss_wasserstein(fake_logits):
    return -fake_logits


LOSSES = {
    "ns": (d_loss_ns, g_loss_ns),
    "hinge": (d_loss_hinge, g_loss_hinge),
    "wgan-gp": (d_loss_wasserstein, g_loss_wasserstein),
}


def lecam_penalty(real_logits, fake_logits, real_anchor, fake_anchor):
    """relu(D(x) - a_fake)^2 + relu(a_real - D(G(z)))^2 per example (Tseng et al. 2021), with
    a_real and a_fake the moving averages of D's logits on real and on fake faces. It only
    pulls a real logit that rose above the fakes' average back down and a fake one that sank
    below the reals' average back up, so D cannot keep widening the gap on faces it memorised."""
    return (tf.square(tf.nn.relu(real_logits - fake_anchor))
            + tf.square(tf.nn.relu(real_anchor - fake_logits)))


def gradient_penalty(critic, real, fake, alpha, extra_inputs=None):
    """(||grad_x D(x_hat)||_2 - 1)^2 per example at x_hat = alpha*real + (1-alpha)*fake
    (Gulrajani et al. 2017), with alpha ~ U(0, 1) drawn per example by the caller."""
    alpha = tf.reshape(tf.cast(alpha, real.dtype), [-1, 1, 1, 1])
    x_hat = alpha * real + (1.0 - alpha) * fake
    grads = _input_gradients(critic, x_hat, extra_inputs)
    norms = tf.sqrt(tf.reduce_sum(tf.square(grads), axis=[1, 2, 3]) + 1e-12)
    return tf.square(norms - 1.0)


def r1_penalty(critic, real, extra_inputs=None):
    """|grad_x D(x)|^2 per example on real faces (Mescheder et al. 2018); the caller scales it
    by gamma/2 and decides how often to pay for it."""
    return tf.reduce_sum(tf.square(_input_gradients(critic, real, extra_inputs)), axis=[1, 2, 3])


def _input_gradients(critic, x, extra_inputs=None):
    """float32 gradient of each example's real/fake logit (column 0) with respect to its image."""
    with tf.GradientTape() as tape:
        tape.watch(x)
        inputs = x if extra_inputs is None else [x, extra_inputs]
        logits = tf.cast(critic(inputs, training=True), tf.float32)[:, :1]
    return tf.cast(tape.gradient(logits, x), tf.float32)
