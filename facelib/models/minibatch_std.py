"""StyleGAN's minibatch standard deviation: a feature map that tells D how varied a batch is.

A generator that draws a few faces well can fool a discriminator that judges each face alone:
nothing in one face says that the batch around it repeats itself, so low recall costs G nothing.
Karras et al. (ProGAN 2018, kept in StyleGAN2-ADA's D epilogue) append one channel at D's lowest
resolution: the standard deviation of each feature over a small group of faces, averaged over
features and positions. Real batches are varied, so a D that sees the channel can score a
collapsed batch as fake, and G is pushed to spread out.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers


@keras.saving.register_keras_serializable(package="facelib")
class MinibatchStdDev(layers.Layer):
    """(N, H, W, C) -> (N, H, W, C + 1): the last channel is, for each face, the mean over C, H
    and W of the features' standard deviation over its group of ``group_size`` faces.

    Faces i, i + M, i + 2M, ... (M = N / group_size) form a group, as in StyleGAN. A batch that
    does not divide into groups of ``group_size`` (a last partial batch, one face scored alone)
    is one group, so D still runs on any batch; a single face gets 0. Under tf.distribute the
    groups form within each replica's batch, as StyleGAN's within each GPU's, so two replicas
    do not group faces as one device does. Computed in float32: the
    difference of near-equal features loses most of bfloat16's 8 bits of mantissa.
    """

    def __init__(self, group_size: int = 4, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(group_size, int) or isinstance(group_size, bool) or group_size < 2:
            raise ValueError(f"group_size must be an integer >= 2, got {group_size!r}")
        self.group_size = group_size

    def call(self, x):
        n = tf.shape(x)[0]
        groups = tf.where(n % self.group_size == 0, self.group_size, n)
        h = tf.cast(x, tf.float32)
        grouped = tf.reshape(h, tf.concat([[groups, n // groups], tf.shape(h)[1:]], axis=0))
        std = tf.sqrt(tf.math.reduce_variance(grouped, axis=0) + 1e-8)  # (M, H, W, C)
        per_group = tf.reduce_mean(std, axis=[1, 2, 3])  # (M,)
        per_face = tf.tile(per_group, [groups])  # face g*M + m belongs to group m
        channel = tf.ones_like(h[..., :1]) * per_face[:, None, None, None]
        return tf.cast(tf.concat([h, channel], axis=-1), x.dtype)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] + 1)

    def get_config(self):
        return {**super().get_config(), "group_size": self.group_size}
