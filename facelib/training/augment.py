"""DiffAugment (Zhao et al. 2020): differentiable augmentation of both real and fake images
before the discriminator, which keeps D from memorising small datasets.

Randomness is passed in explicitly (uniform draws per example) so that training stays a pure
function of (seed, step): resumed and distributed runs see the same augmentations.
"""

from __future__ import annotations

import tensorflow as tf

# Uniform draws each op consumes per example.
DRAWS = {"color": 3, "translation": 2, "cutout": 2}


def n_draws(policy) -> int:
    return sum(DRAWS[op] for op in policy)


def _color(x, u):
    u = tf.cast(u, x.dtype)
    b = u[:, 0:1] - 0.5  # brightness shift in [-0.5, 0.5)
    s = u[:, 1:2] * 2.0  # saturation scale in [0, 2)
    c = u[:, 2:3] + 0.5  # contrast scale in [0.5, 1.5)
    b, s, c = (tf.reshape(v, [-1, 1, 1, 1]) for v in (b, s, c))
    x = x + b
    mean_c = tf.reduce_mean(x, axis=3, keepdims=True)
    x = (x - mean_c) * s + mean_c
    mean_all = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    return (x - mean_all) * c + mean_all


def _translation(x, u, ratio=0.125):
    h, w = x.shape[1], x.shape[2]
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = tf.cast(tf.floor(u[:, 0] * (2 * sh + 1)), tf.int32) - sh
    dx = tf.cast(tf.floor(u[:, 1] * (2 * sw + 1)), tf.int32) - sw
    padded = tf.pad(x, [[0, 0], [sh, sh], [sw, sw], [0, 0]])
    rows = tf.range(h)[None, :] + sh - dy[:, None]  # (B, H) source rows in padded
    cols = tf.range(w)[None, :] + sw - dx[:, None]
    out = tf.gather(padded, rows, axis=1, batch_dims=1)
    return tf.gather(out, cols, axis=2, batch_dims=1)


def _cutout(x, u, ratio=0.5):
    h, w = x.shape[1], x.shape[2]
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = tf.floor(u[:, 0] * (h + 1 - ch % 2))  # as DiffAugment: centre anywhere, box clipped
    cx = tf.floor(u[:, 1] * (w + 1 - cw % 2))
    y0 = cy[:, None, None] - ch // 2
    x0 = cx[:, None, None] - cw // 2
    ys = tf.range(h, dtype=cy.dtype)[None, :, None]
    xs = tf.range(w, dtype=cx.dtype)[None, None, :]
    inside = (ys >= y0) & (ys < y0 + ch) & (xs >= x0) & (xs < x0 + cw)
    return x * tf.cast(~inside, x.dtype)[..., None]


OPS = {"color": _color, "translation": _translation, "cutout": _cutout}


def diff_augment(x, policy, uniforms, gates=None):
    """Apply the ops of ``policy`` in order; ``uniforms``: (B, n_draws(policy)) in [0, 1).

    ``gates`` (B, len(policy)) booleans, for ADA: op j touches image i only where
    ``gates[i, j]``; None applies every op to every image (DiffAugment).

    The draws stay float32 whatever the images' dtype: in bfloat16 (8 significant bits) a
    draw near 1 rounds up to 1 and a shift would index outside the padded image."""
    uniforms = tf.cast(uniforms, tf.float32)
    i = 0
    for j, op in enumerate(policy):
        k = DRAWS[op]
        out = OPS[op](x, uniforms[:, i:i + k])
        x = out if gates is None else tf.where(tf.reshape(gates[:, j], [-1, 1, 1, 1]), out, x)
        i += k
    return x
