"""DiffAugment (Zhao et al. 2020): differentiable augmentation of both real and fake images
before the discriminator, which keeps D from memorising small datasets. Plus ADA's (Karras et
al. 2020) general geometric transform, for when DiffAugment's ops are not enough to stop D
memorising (ADA's probability p reaching 1).

Randomness is passed in explicitly (uniform draws per example) so that training stays a pure
function of (seed, step): resumed and distributed runs see the same augmentations.
"""

from __future__ import annotations

import tensorflow as tf

# ADA's geometric ops, in units of the image: log2 of the isotropic scale ~ N(0, 0.2^2), the
# fractional translation ~ N(0, 0.125^2) per axis. ADA rotates uniformly over the full circle;
# here the angle ~ N(0, 0.25^2 rad) keeps faces upright-ish and, being Gaussian, invertible
# (G cannot hide a fixed rotation in the augmented distribution), since p may reach 1 here.
SCALE_STD, ROTATION_STD, TRANSLATION_STD = 0.2, 0.25, 0.125


def n_draws(policy) -> int:
    """Uniform draws per example that ``policy``'s ops consume together."""
    return sum(OPS[op][1] for op in policy)


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


def _reflect(coord, size):
    """Pixel-index coordinates folded into [-0.5, size - 0.5] by mirroring at the borders (ADA
    pads by reflection: no black corners for D to spot)."""
    period = 2.0 * size
    c = tf.math.floormod(coord + 0.5, period)
    return tf.where(c >= size, period - c, c) - 0.5


def affine_warp(x, matrix):
    """Bilinear resampling of ``x`` (B, H, W, C) at ``matrix`` (B, 2, 3) applied to each output
    pixel's centre, in coordinates centred on the image with y down (source = M @ [x, y, 1]).

    Built from gathers, so its gradient is the exact adjoint of the warp (TF's
    ImageProjectiveTransform gradient warps by the inverse instead, which is not)."""
    h, w = x.shape[1], x.shape[2]
    ys, xs = tf.meshgrid(tf.range(h, dtype=tf.float32) + 0.5 - h / 2,
                         tf.range(w, dtype=tf.float32) + 0.5 - w / 2, indexing="ij")
    grid = tf.stack([tf.reshape(xs, [-1]), tf.reshape(ys, [-1]), tf.ones([h * w])])  # (3, HW)
    src = tf.einsum("bij,jn->bin", tf.cast(matrix, tf.float32), grid)  # (B, 2, HW)
    sx = _reflect(src[:, 0] + w / 2 - 0.5, w)
    sy = _reflect(src[:, 1] + h / 2 - 0.5, h)
    x0, y0 = tf.floor(sx), tf.floor(sy)
    wx, wy = sx - x0, sy - y0
    flat = tf.reshape(x, [-1, h * w, x.shape[3]])

    def tap(yy, xx):
        yy = tf.clip_by_value(tf.cast(yy, tf.int32), 0, h - 1)
        xx = tf.clip_by_value(tf.cast(xx, tf.int32), 0, w - 1)
        return tf.gather(flat, yy * w + xx, axis=1, batch_dims=1)

    wx, wy = tf.cast(wx[..., None], x.dtype), tf.cast(wy[..., None], x.dtype)
    out = ((1 - wy) * ((1 - wx) * tap(y0, x0) + wx * tap(y0, x0 + 1))
           + wy * ((1 - wx) * tap(y0 + 1, x0) + wx * tap(y0 + 1, x0 + 1)))
    return tf.reshape(out, [-1, h, w, x.shape[3]])


def _normal(u):
    """A standard normal draw from a uniform one (inverse CDF; 0 clipped off the tails)."""
    return tf.math.ndtri(tf.clip_by_value(u, 1e-6, 1 - 1e-6))


def _geometric(x, u):
    """ADA's scale, rotation and fractional translation in one resampling (one blur, not three)."""
    h, w = x.shape[1], x.shape[2]
    scale = tf.pow(2.0, SCALE_STD * _normal(u[:, 0]))
    angle = ROTATION_STD * _normal(u[:, 1])
    tx, ty = (TRANSLATION_STD * _normal(u[:, k]) for k in (2, 3))
    # The output pixel p shows the input at M p: the inverse of "scale, rotate, then translate".
    cos, sin = tf.cos(angle) / scale, tf.sin(angle) / scale
    ox, oy = -tx * w, -ty * h
    matrix = tf.stack([tf.stack([cos, sin, cos * ox + sin * oy], -1),
                       tf.stack([-sin, cos, -sin * ox + cos * oy], -1)], 1)
    return affine_warp(x, matrix)


# name -> (op, uniform draws it consumes per example). config.DIFFAUGMENT_OPS lists the same
# names for validation (config cannot import training); a test keeps the two equal.
OPS = {"color": (_color, 3), "translation": (_translation, 2), "cutout": (_cutout, 2),
       "geometric": (_geometric, 4)}


def diff_augment(x, policy, uniforms, gates=None):
    """Apply the ops of ``policy`` in order; ``uniforms``: (B, n_draws(policy)) in [0, 1).

    ``gates`` (B, len(policy)) booleans, for ADA: op j touches image i only where
    ``gates[i, j]``; None applies every op to every image (DiffAugment).

    The draws stay float32 whatever the images' dtype: in bfloat16 (8 significant bits) a
    draw near 1 rounds up to 1 and a shift would index outside the padded image."""
    uniforms = tf.cast(uniforms, tf.float32)
    i = 0
    for j, op in enumerate(policy):
        fn, k = OPS[op]
        out = fn(x, uniforms[:, i:i + k])
        x = out if gates is None else tf.where(tf.reshape(gates[:, j], [-1, 1, 1, 1]), out, x)
        i += k
    return x
