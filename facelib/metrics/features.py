"""Feature networks, batched extraction, and an on-disk feature cache keyed by content.

Every metric that compares image sets (FID, KID, precision/recall) first maps images to feature
vectors. That is the slow part (the FID Inception is ~6 GFLOP per image), so features are computed
once per (image set, network, preprocessing) and cached on disk under a key made from a hash of the
uint8 image bytes, the network id and its preprocessing: the same images never go through the
network twice, and a different network or weights can never be served a stale file.

A network object (`FeatureNetwork`) carries a human `name` for reports, a stable `id` for caches,
its feature `dim`, a `preprocessing` description and, for the FID Inception, the resize
`convention` ('pytorch-fid', 'tensorflow', 'clean'; None for networks without one). All four of
id, preprocessing and convention go into the cache key. `random_feature_network()` is a tiny
random-init conv net for tests that must run without Inception weights; its features are NOT
comparable with any published FID.

This module knows no particular network: facelib.metrics.inception builds on it (imports point
that way only), so pass the network, e.g. `features_for(x, fid_inception(convention="clean"))`,
or use facelib.metrics.inception.fid_features.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from facelib.atomic import replace_file, write_json
from facelib.errors import FacelibError
from facelib.images import to_uint8

CACHE_FORMAT = "facelib-features-v1"


# --------------------------------------------------------------------------------------------
# Input normalisation: everything becomes uint8 NHWC RGB batches.
# --------------------------------------------------------------------------------------------

def as_uint8_images(images) -> np.ndarray:
    """uint8 NHWC RGB batch from uint8 images or float images in [-1, 1] (quantized like a PNG).

    Floats are quantized to uint8 first so generated and real images take exactly the same path
    through the feature network (real images come from uint8 files).
    """
    x = images.numpy() if hasattr(images, "numpy") else np.asarray(images)
    if x.ndim == 3 and x.shape[-1] == 3:
        raise FacelibError(
            f"feature extraction expects a batch (N, H, W, 3), got one image of shape {x.shape}; "
            "add a batch axis, e.g. images[None]"
        )
    if x.ndim != 4 or x.shape[-1] != 3:
        raise FacelibError(
            f"feature extraction expects RGB images (N, H, W, 3), got shape {x.shape}; "
            "convert grayscale with np.repeat(x, 3, axis=-1) and use channels-last layout"
        )
    if x.dtype == np.uint8:
        return x
    if np.issubdtype(x.dtype, np.floating):
        if x.size:
            lo, hi = float(np.min(x)), float(np.max(x))
            if not (np.isfinite(lo) and np.isfinite(hi)):
                raise FacelibError("images contain NaN or inf; check the generator output")
            if lo < -1.01 or hi > 1.01:
                raise FacelibError(
                    f"float images must be in [-1, 1] (facelib's convention), got range "
                    f"[{lo:.3g}, {hi:.3g}]; pass uint8 images for 0..255 data, or rescale "
                    "with facelib.images.to_float"
                )
        return to_uint8(x)
    raise FacelibError(
        f"images must be uint8 (0..255) or float in [-1, 1], got dtype {x.dtype}; "
        "cast with images.astype(np.uint8) if the values are 0..255"
    )


def iter_uint8_batches(images_or_batches, batch_size: int) -> Iterator[np.ndarray]:
    """Yield uint8 NHWC batches of at most `batch_size` images, holding one batch at a time.

    Accepts one array (N, H, W, 3) (a memmap is read slice by slice), or an iterable of batches
    (arrays, tf tensors, or (images, labels) tuples as tf.data yields) or of single HWC images.
    """
    if batch_size < 1:
        raise FacelibError(f"batch_size must be >= 1, got {batch_size}")
    if isinstance(images_or_batches, (str, Path)):
        raise FacelibError(
            f"got a path ({images_or_batches}); load it first with "
            "facelib.data.sources.load_images, or use features_for(path, ..., resolution=R)"
        )
    if hasattr(images_or_batches, "ndim") and hasattr(images_or_batches, "shape"):
        x = images_or_batches
        if getattr(x, "ndim", 0) != 4:
            as_uint8_images(np.asarray(x))  # raises the helpful error
        for i in range(0, int(x.shape[0]), batch_size):
            yield as_uint8_images(x[i:i + batch_size])
        return
    pending: list[np.ndarray] = []
    count = 0
    for item in images_or_batches:
        if isinstance(item, (tuple, list)) and item and hasattr(item[0], "shape"):
            item = item[0]  # (images, labels) from a tf.data pipeline
        arr = item.numpy() if hasattr(item, "numpy") else np.asarray(item)
        if arr.ndim == 3:
            arr = arr[None]
        arr = as_uint8_images(arr)
        if pending and arr.shape[1:] != pending[0].shape[1:]:
            yield np.concatenate(pending)  # image size changed: flush what we have
            pending, count = [], 0
        pending.append(arr)
        count += arr.shape[0]
        while count >= batch_size:
            merged = np.concatenate(pending) if len(pending) > 1 else pending[0]
            yield merged[:batch_size]
            rest = merged[batch_size:]
            pending, count = ([rest], rest.shape[0]) if rest.shape[0] else ([], 0)
    if count:
        yield np.concatenate(pending) if len(pending) > 1 else pending[0]


# --------------------------------------------------------------------------------------------
# Feature networks
# --------------------------------------------------------------------------------------------

class FeatureNetwork:
    """A callable uint8/float images -> float32 (N, dim) features, with a name reports can print.

    Subclasses implement `_forward(uint8 batch) -> (B, dim)` and set `name`, `id`, `dim`,
    `preprocessing`. `id` must change whenever the features could change (weights, layout).
    `convention` names the FID resize convention, None for networks that have none.
    """

    name: str = "feature network"
    id: str = "feature-network"
    dim: int = 0
    preprocessing: str = ""
    convention: str | None = None
    default_batch_size: int = 50

    def with_convention(self, convention: str | None) -> "FeatureNetwork":
        """This network fed as `convention` does it; None keeps the network's own. Networks
        with conventions (the FID Inception) override this."""
        if convention is None or convention == getattr(self, "convention", None):
            return self
        raise FacelibError(
            f"{self.name} has no FID resize conventions (asked for {convention!r}); "
            "conventions apply to the standard FID Inception: "
            "facelib.metrics.inception.fid_inception(convention=...)"
        )

    def __call__(self, images) -> np.ndarray:
        """Features of one batch (no caching; use `extract` for many images)."""
        return self._forward(as_uint8_images(images))

    def _forward(self, batch: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def extract(self, images_or_batches, batch_size: int | None = None,
                progress: bool = False) -> np.ndarray:
        """Features of many images, streamed in batches: memory holds one batch plus the output."""
        out = []
        bar = _progress(progress, self.name)
        for batch in iter_uint8_batches(images_or_batches, batch_size or self.default_batch_size):
            out.append(np.asarray(self._forward(batch), dtype=np.float32))
            if bar is not None:
                bar.update(batch.shape[0])
        if bar is not None:
            bar.close()
        if not out:
            raise FacelibError("no images to extract features from; the image set is empty")
        return np.concatenate(out)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} dim={self.dim} id={self.id!r}>"


def _progress(enabled: bool, desc: str):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(desc=desc, unit="img")


class KerasFeatureNetwork(FeatureNetwork):
    """A FeatureNetwork backed by a keras.Model taking float32 0..255 NHWC (any size).

    With `jit_compile=True` (XLA) a smaller last batch is padded to the previous batch size so
    XLA does not compile a second program for it.
    """

    def __init__(self, model, jit_compile: bool = False):
        self.model = model
        self.jit_compile = bool(jit_compile)
        self._functions: dict[bool, Callable] = {}
        self._batch_seen = 0

    def with_jit(self, jit_compile: bool) -> "KerasFeatureNetwork":
        """The same network (shared model and compiled functions) with another jit setting."""
        import copy

        other = copy.copy(self)
        other.jit_compile = bool(jit_compile)
        return other

    def _function(self):
        fn = self._functions.get(self.jit_compile)
        if fn is None:
            import tensorflow as tf

            model = self.model
            fn = tf.function(lambda x: model(x, training=False), jit_compile=self.jit_compile,
                             reduce_retracing=True)
            self._functions[self.jit_compile] = fn
        return fn

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        n = batch.shape[0]
        x = batch.astype(np.float32)
        if self.jit_compile and 0 < n < self._batch_seen:
            pad = np.repeat(x[-1:], self._batch_seen - n, axis=0)
            x = np.concatenate([x, pad])
        self._batch_seen = max(self._batch_seen, n)
        return np.asarray(self._function()(x))[:n].astype(np.float32, copy=False)


def _random_conv_model(dim: int, seed: int):
    """Tiny conv net: resize to 32x32, three 3x3 convs, global average. Weights from numpy RNG
    so they are identical on every machine and backend version."""
    import keras

    rng = np.random.default_rng(seed)
    inputs = keras.Input((None, None, 3), name="images_0_255")
    x = keras.layers.Lambda(
        lambda t: keras.ops.image.resize(t / 127.5 - 1.0, (32, 32), interpolation="bilinear"),
        name="resize_32")(inputs)
    widths = [(3, 16, 2), (16, 32, 2), (32, dim, 1)]
    convs = []
    for i, (cin, cout, stride) in enumerate(widths):
        last = i == len(widths) - 1
        conv = keras.layers.Conv2D(cout, 3, strides=stride, padding="same",
                                   activation=None if last else "relu", name=f"conv{i}")
        x = conv(x)
        convs.append((conv, cin, cout))
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    model = keras.Model(inputs, x, name="test_random_conv")
    for conv, cin, cout in convs:
        kernel = rng.normal(0.0, np.sqrt(2.0 / (9 * cin)), size=(3, 3, cin, cout))
        conv.set_weights([kernel.astype(np.float32), np.zeros(cout, np.float32)])
    return model


class RandomConvNetwork(KerasFeatureNetwork):
    """Random-init conv features for tests of metric code; never report these as FID."""

    default_batch_size = 256

    def __init__(self, dim: int = 64, seed: int = 0):
        if dim < 1:
            raise FacelibError(f"dim must be >= 1, got {dim}")
        super().__init__(_random_conv_model(dim, seed))
        self.dim = dim
        self.seed = seed
        self.name = "test-random-conv (NOT comparable)"
        self.id = f"test-random-conv-d{dim}-s{seed}-v1"
        self.preprocessing = "uint8 /127.5-1, bilinear resize 32x32 (half-pixel), 3 random convs"


_RANDOM_NETWORKS: dict[tuple[int, int], RandomConvNetwork] = {}


def random_feature_network(dim: int = 64, seed: int = 0) -> RandomConvNetwork:
    """The weight-free test feature network (built once per process per (dim, seed))."""
    key = (int(dim), int(seed))
    if key not in _RANDOM_NETWORKS:
        _RANDOM_NETWORKS[key] = RandomConvNetwork(dim, seed)
    return _RANDOM_NETWORKS[key]


# --------------------------------------------------------------------------------------------
# Content-keyed feature cache
# --------------------------------------------------------------------------------------------

def default_cache_dir() -> Path:
    """~/.cache/facelib/features, or $FACELIB_CACHE/features when that variable is set."""
    root = os.environ.get("FACELIB_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "facelib") / "features"


class _ContentHash:
    """sha256 of network id + preprocessing + resize convention + the image bytes, independent
    of how the images are split into batches (an image-size marker is added only when the size
    changes)."""

    def __init__(self, network: FeatureNetwork):
        self._h = hashlib.sha256()
        parts = [CACHE_FORMAT, network.id, network.preprocessing]
        convention = getattr(network, "convention", None)
        if convention is not None:
            parts.append(f"convention={convention}")
        for part in parts:
            self._h.update(part.encode("utf-8") + b"\0")
        self._shape = None
        self.count = 0

    def update(self, batch: np.ndarray) -> None:
        if batch.shape[1:] != self._shape:
            self._shape = batch.shape[1:]
            self._h.update(f"|{self._shape}|".encode())
        self._h.update(np.ascontiguousarray(batch).tobytes())
        self.count += batch.shape[0]

    def hexdigest(self) -> str:
        return self._h.hexdigest()


def _slug(text: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-_." else "-" for c in text)
    return keep.strip("-")[:80] or "network"


def _batch_factory(images_or_source, batch_size: int, resolution: int | None):
    """A function giving a fresh batch iterator, or None when the input can be read only once."""
    if isinstance(images_or_source, (str, Path)):
        if resolution is None:
            raise FacelibError(
                f"features_for({str(images_or_source)!r}) needs resolution=R so the images are "
                "cropped and resized like the generated ones they will be compared with"
            )
        from facelib.data.sources import iter_image_batches

        path = images_or_source
        return lambda: iter_uint8_batches(iter_image_batches(path, resolution, batch_size),
                                          batch_size)
    if callable(images_or_source) and not hasattr(images_or_source, "shape"):
        return lambda: iter_uint8_batches(images_or_source(), batch_size)
    if hasattr(images_or_source, "shape"):
        return lambda: iter_uint8_batches(images_or_source, batch_size)
    if iter(images_or_source) is images_or_source:
        return None  # generator / iterator: one pass only
    return lambda: iter_uint8_batches(images_or_source, batch_size)


def content_key(images_or_source, network: FeatureNetwork, batch_size: int = 256,
                resolution: int | None = None, convention: str | None = None) -> str:
    """The cache key of an image set for a network (under `convention`, None: the network's
    own): sha256 of ids + convention + every image's bytes."""
    network = _network(network, convention)
    factory = _batch_factory(images_or_source, batch_size, resolution)
    if factory is None:
        raise FacelibError(
            "cannot key a one-pass iterator without consuming it; pass an array, a list, a path "
            "or a function returning a fresh iterator"
        )
    h = _ContentHash(network)
    for batch in factory():
        h.update(batch)
    if h.count == 0:
        raise FacelibError("the image set is empty; nothing to key")
    return h.hexdigest()


def _network(network, convention: str | None) -> FeatureNetwork:
    """`network` under `convention` (None: its own); a clear error when no network is given."""
    if network is None:
        raise FacelibError(
            "no feature network given; for standard FID features pass "
            "facelib.metrics.inception.fid_inception(convention=...), or call "
            "facelib.metrics.inception.fid_features(...)"
        )
    if hasattr(network, "with_convention"):
        return network.with_convention(convention)
    return FeatureNetwork.with_convention(network, convention)  # duck-typed: no conventions


def features_for(images_or_source, network: FeatureNetwork,
                 cache_dir: str | Path | None | bool = None, batch_size: int | None = None,
                 resolution: int | None = None, progress: bool = False,
                 convention: str | None = None) -> np.ndarray:
    """Features (N, dim) float32 of an image set, computed once and then served from disk.

    images_or_source: uint8/float [-1,1] NHWC array (memmaps fine), list of batches, a function
    returning a fresh batch iterator, a one-pass iterator (cached for later calls, never looked
    up), or a path readable by facelib.data.sources (needs `resolution`).
    network: a FeatureNetwork, e.g. facelib.metrics.inception.fid_inception().
    cache_dir: folder for cached features; None -> default_cache_dir(); False -> no caching.
    convention: FID resize convention ('pytorch-fid', 'tensorflow', 'clean'); None keeps the
    network's own. The cache is keyed on it.
    """
    network = _network(network, convention)
    bs = batch_size or network.default_batch_size
    factory = _batch_factory(images_or_source, bs, resolution)
    if cache_dir is False:
        batches = factory() if factory is not None else iter_uint8_batches(images_or_source, bs)
        return network.extract(batches, bs, progress=progress)

    folder = (default_cache_dir() if cache_dir in (None, True) else Path(cache_dir))
    folder = folder / _slug(network.id)
    h = _ContentHash(network)
    if factory is not None:
        for batch in factory():
            h.update(batch)
        if h.count == 0:
            raise FacelibError("no images to extract features from; the image set is empty")
        path = folder / f"{h.hexdigest()}.npy"
        cached = _load_cached(path, h.count, network.dim)
        if cached is not None:
            return cached
        feats = network.extract(factory(), bs, progress=progress)
    else:
        def hashing(batches):
            for batch in batches:
                h.update(batch)
                yield batch

        feats = network.extract(hashing(iter_uint8_batches(images_or_source, bs)), bs,
                                progress=progress)
        path = folder / f"{h.hexdigest()}.npy"
    _store(path, feats, network)
    return feats


def _load_cached(path: Path, n: int, dim: int) -> np.ndarray | None:
    if not path.is_file():
        return None
    try:
        feats = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None  # a damaged file is recomputed and replaced
    if feats.shape != (n, dim) or feats.dtype != np.float32:
        return None
    return feats


def _store(path: Path, feats: np.ndarray, network: FeatureNetwork) -> None:
    def write(tmp):
        with open(tmp, "wb") as f:
            np.save(f, np.asarray(feats, dtype=np.float32))

    replace_file(path, write)
    meta = {"network": network.name, "network_id": network.id,
            "convention": getattr(network, "convention", None),
            "preprocessing": network.preprocessing, "count": int(feats.shape[0]),
            "dim": int(feats.shape[1]), "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    write_json(path.with_suffix(".json"), meta)
