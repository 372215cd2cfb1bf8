"""The training input pipeline: deterministic, resumable batches from a prepared cache.

Which rows form batch ``k`` depends only on (seed, k): epoch ``e`` uses the permutation from
``np.random.default_rng([seed, e])`` over the split's rows, and flips come from
``default_rng([seed, e, 1])``. A training resumed at step ``k`` (``start_step=k``) therefore sees
exactly the batches an uninterrupted run would have seen from step ``k`` on.
The generator only gathers uint8 rows from the memmap; the float conversion and the flip run in
the TensorFlow graph.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import tensorflow as tf

from facelib.data.cache import FaceCache
from facelib.errors import FacelibError


def _as_cache(cache) -> FaceCache:
    return FaceCache.open(cache)


def steps_per_epoch(cache, batch_size: int, split: str = "train") -> int:
    """Full batches in one pass over ``split`` (the remainder is dropped)."""
    return len(_as_cache(cache).indices(split)) // int(batch_size)


def rare_attribute_weights(attributes, share: float, cap: float = 10.0) -> np.ndarray:
    """A draw weight per row: rows holding an attribute that fewer than ``share`` of the rows
    hold get ``share / its share`` (their rarest such attribute's), at most ``cap``; others 1.

    Why: a conditional generator sees each attribute as often as the data has it, and
    CelebA's rare ones (Bald 2%, Wearing_Hat 5%, Eyeglasses 7%) come out weakest when asked
    for. Drawn with these weights, each rare attribute appears in about ``share`` of the rows
    (less where the cap binds); the cap bounds how often one face repeats per epoch.
    """
    a = np.asarray(attributes) > 0
    if a.ndim != 2 or len(a) == 0:
        raise FacelibError(f"attribute rows must be a non-empty (N, A) array, got shape {a.shape}")
    if not 0 < float(share) < 1:
        raise FacelibError(f"share {share}: give a fraction in (0, 1), e.g. 0.15")
    freq = a.mean(axis=0)
    boost = np.where((freq > 0) & (freq < share), share / np.maximum(freq, 1e-12), 1.0)
    return np.minimum(np.max(np.where(a, boost[None], 1.0), axis=1), float(cap))


def balance_weights(cache, names, share: float, split: str = "train") -> np.ndarray | None:
    """``rare_attribute_weights`` over the named attribute columns of ``cache``'s ``split``
    (one weight per row of the split, for ``make_dataset(weights=...)``); None when no names
    are given. Unknown names are one FacelibError that lists the cache's attributes."""
    if not names:
        return None
    cache = _as_cache(cache)
    known = list(cache.attribute_names or [])
    unknown = [a for a in names if a not in known]
    if unknown:
        raise FacelibError(f"balance_attributes {unknown} are not attributes of {cache.path}; "
                           f"choose from {', '.join(known) or 'none (the cache has no labels)'}")
    rows = np.asarray(cache.attributes[cache.indices(split)])
    return rare_attribute_weights(rows[:, [known.index(a) for a in names]], share)


def attribute_share(cache, weights: np.ndarray | None = None, split: str = "train") -> np.ndarray:
    """Each attribute's share of ``split``'s rows as training draws them (float64, one per
    attribute column): the plain mean of the 0/1 rows, or their ``weights``-weighted mean when
    rare rows are drawn more often (``balance_weights``)."""
    cache = _as_cache(cache)
    rows = np.asarray(cache.attributes[cache.indices(split)]) > 0
    if rows.ndim != 2 or len(rows) == 0:
        raise FacelibError(f"{cache.path} has no attribute rows in its {split} split: a "
                           "conditional run needs labelled faces (prepare them with their "
                           "list_attr_celeba.txt)")
    return np.average(rows, axis=0, weights=weights)


def attribute_rows(cache, n: int, seed: int, weights: np.ndarray | None = None,
                   split: str = "train") -> np.ndarray:
    """``n`` of ``split``'s attribute rows (float32 0/1) drawn with replacement as training
    draws them: uniformly, or in proportion to ``weights`` (``balance_weights``)."""
    cache = _as_cache(cache)
    rows = np.asarray(cache.attributes[cache.indices(split)], np.float32)
    p = None if weights is None else np.asarray(weights, np.float64) / np.sum(weights)
    return rows[np.random.default_rng(seed).choice(len(rows), n, p=p)]


def batch_plan(indices: np.ndarray, batch_size: int, seed: int = 0, start_step: int = 0,
               flip: bool = True, repeat: bool = True, weights: np.ndarray | None = None
               ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (rows int64 (B,), flip bool (B,)) for steps ``start_step, start_step + 1, ...``.

    With ``repeat=False`` it stops at the end of the epoch that contains ``start_step``.
    ``weights`` (one per index, e.g. ``rare_attribute_weights``): each epoch draws its rows
    with replacement in proportion to them instead of permuting the split; still a function
    of (seed, epoch), so resuming stays exact.
    """
    indices = np.asarray(indices, dtype=np.int64)
    n, b = len(indices), int(batch_size)
    p = None
    if weights is not None:
        w = np.asarray(weights, np.float64)
        if w.shape != (n,) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
            raise FacelibError(f"weights must be {n} finite non-negative numbers, not all 0 "
                               f"(one per row of the split); got shape {w.shape}")
        p = w / w.sum()
    if b <= 0:
        raise FacelibError(f"batch_size must be positive, got {batch_size}")
    steps = n // b
    if steps == 0:
        raise FacelibError(f"the split has {n} images, fewer than one batch of {b}; use a smaller "
                           f"batch size or a bigger dataset")
    if start_step < 0:
        raise FacelibError(f"start_step must be >= 0, got {start_step}")
    epoch, first = divmod(int(start_step), steps)
    while True:
        rng = np.random.default_rng([seed, epoch])
        perm = rng.permutation(n) if p is None else rng.choice(n, size=n, replace=True, p=p)
        flips = (np.random.default_rng([seed, epoch, 1]).random(n) < 0.5) if flip else np.zeros(n, bool)
        for k in range(first, steps):
            sl = slice(k * b, (k + 1) * b)
            yield indices[perm[sl]], flips[sl]
        if not repeat:
            return
        first = 0
        epoch += 1


def gather(images: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``images[rows]`` read in ascending row order (sequential memmap access), then reordered."""
    order = np.argsort(rows, kind="stable")
    out = np.empty((len(rows),) + images.shape[1:], images.dtype)
    out[order] = images[rows[order]]
    return out


def downsample_factor(cache_resolution: int, resolution: int | None) -> int:
    """The integer factor that takes a cache's faces to ``resolution`` (1 when None or equal).

    A cache serves any resolution that divides its own: a 64 px cache trains a 32 px model.
    Above the cache's resolution, or at a size that does not divide it, there is no exact
    answer: say which resolutions it can serve and how to get the one asked for."""
    if resolution is None or resolution == cache_resolution:
        return 1
    if resolution > cache_resolution or cache_resolution % resolution:
        served = [cache_resolution // f for f in range(1, cache_resolution + 1)
                  if cache_resolution % f == 0 and cache_resolution // f >= 8]
        raise FacelibError(
            f"the cache is prepared at {cache_resolution}px and cannot serve {resolution}px "
            f"(it serves {', '.join(map(str, served))}px, exact area downsampling by an integer "
            f"factor): prepare the data with --resolution {resolution}")
    return cache_resolution // resolution


def to_model_input(images, resolution: int | None = None):
    """uint8 faces (B, r, r, 3) -> float32 (B, R, R, 3) in [-1, 1], area-downsampled to
    ``resolution`` R when below r (an integer factor, as ``downsample_factor`` checks).

    The same arithmetic as ``make_dataset``'s float output (cast, scale as
    ``facelib.images.to_float``, then average f x f blocks in float), as TensorFlow ops so it
    runs wherever it is called: inside a train step, on the accelerator."""
    x = tf.cast(images, tf.float32) / 127.5 - 1.0
    r = x.shape[1]
    if resolution is not None and r is not None and r != resolution:
        factor = r // int(resolution)
        x = tf.nn.avg_pool2d(x, factor, factor, "VALID")
    return x


def make_dataset(cache, batch_size: int, seed: int = 0, start_step: int = 0, flip: bool = True,
                 split: str = "train", repeat: bool = True, resolution: int | None = None,
                 uint8: bool = False, weights: np.ndarray | None = None):
    """A tf.data.Dataset of (images float32 [-1, 1] (B, R, R, 3), attributes float32 0/1 (B, A)).

    ``cache``: a FaceCache or the path of one. Batches are full (remainder dropped), shuffled per
    epoch, optionally mirrored, deterministic given ``seed`` and resumable with ``start_step``.
    Works with ``strategy.experimental_distribute_dataset`` (the batch is the global batch).
    ``resolution``: R, when below the cache's own: each face is downsampled on the fly by exact
    area averaging over f x f blocks (f = cache resolution / R, an integer), in float, so no
    rounding is added (a cache prepared at R rounds its area averages to uint8).

    ``uint8=True``: the same faces (same rows, same mirroring) as uint8 at the cache's own
    resolution, for a model that converts them itself with ``to_model_input(images, R)``, as
    ``GAN.train_step`` does. Why: converting to float on the CPU took more time than gathering
    the faces (``benchmarks/bench_pipeline.py`` measures both), and a GPU does it in
    microseconds; uint8 is also a quarter of the bytes to copy to it.

    ``weights``: one per row of ``split``, for ``batch_plan`` (rows drawn in proportion).
    """
    cache = _as_cache(cache)
    indices = cache.indices(split)
    plan_args = (indices, int(batch_size), int(seed), int(start_step), bool(flip), bool(repeat),
                 weights)
    next(batch_plan(*plan_args), None)  # validate the arguments now, not inside TensorFlow
    factor = downsample_factor(cache.resolution, resolution)
    images, attributes = cache.images, cache.attributes
    r, a, b = cache.resolution, cache.num_attributes, int(batch_size)

    def generate():
        for rows, flips in batch_plan(*plan_args):
            x = gather(images, rows)  # a fresh array: mirrored in place, in uint8
            x[flips] = x[flips, :, ::-1]
            yield x, attributes[rows]

    ds = tf.data.Dataset.from_generator(
        generate,
        output_signature=(
            tf.TensorSpec((b, r, r, 3), tf.uint8),
            tf.TensorSpec((b, a), tf.int8),
        ),
    )

    if uint8:
        def to_model(x, attrs):
            return x, tf.cast(attrs, tf.float32)
    else:
        def to_model(x, attrs):
            return to_model_input(x, r // factor), tf.cast(attrs, tf.float32)

    ds = ds.map(to_model, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)
