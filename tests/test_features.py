"""Feature extraction plumbing, the weight-free test network, and the content-keyed cache."""

from __future__ import annotations

import numpy as np
import pytest

from facelib.errors import FacelibError
from facelib.metrics import features as F


def faces(n=10, size=24, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)


class CountingNetwork(F.FeatureNetwork):
    """Test double: the random conv features, counting how many images went through."""

    def __init__(self, inner=None, id_suffix=""):
        self.inner = inner or F.random_feature_network()
        self.name, self.dim = self.inner.name, self.inner.dim
        self.id = self.inner.id + id_suffix
        self.preprocessing = self.inner.preprocessing
        self.default_batch_size = 4
        self.seen = 0

    def _forward(self, batch):
        self.seen += batch.shape[0]
        return self.inner._forward(batch)


# --- input normalisation ---------------------------------------------------------------------

def test_uint8_passes_and_float_is_quantised():
    x = faces(3)
    assert F.as_uint8_images(x) is x
    back = F.as_uint8_images(x.astype(np.float32) / 127.5 - 1.0)
    np.testing.assert_array_equal(back, x)


@pytest.mark.parametrize("bad, message", [
    (np.zeros((24, 24, 3), np.uint8), "add a batch axis"),
    (np.zeros((2, 24, 24, 1), np.uint8), r"RGB images \(N, H, W, 3\)"),
    (np.zeros((2, 8, 8, 3), np.int32), "dtype int32"),
    (np.full((2, 8, 8, 3), 200.0, np.float32), r"\[-1, 1\]"),
    (np.full((2, 8, 8, 3), np.nan, np.float32), "NaN"),
])
def test_bad_images_are_explained(bad, message):
    with pytest.raises(FacelibError, match=message):
        F.as_uint8_images(bad)


def test_batches_from_array_iterables_and_tuples():
    x = faces(10)
    assert [b.shape[0] for b in F.iter_uint8_batches(x, 4)] == [4, 4, 2]
    # a list of batches of 3 is re-cut into batches of 4, in order
    got = list(F.iter_uint8_batches([x[0:3], x[3:6], x[6:9], x[9:10]], 4))
    assert [b.shape[0] for b in got] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate(got), x)
    # (images, labels) pairs as tf.data yields, and single HWC images
    pairs = [(x[:5], np.zeros(5)), (x[5:], np.zeros(5))]
    np.testing.assert_array_equal(np.concatenate(list(F.iter_uint8_batches(pairs, 6))), x)
    singles = list(F.iter_uint8_batches(iter(list(x)), 3))
    assert [b.shape[0] for b in singles] == [3, 3, 3, 1]
    # an image-size change closes the current batch instead of failing to stack
    mixed = list(F.iter_uint8_batches([x[:2], faces(2, size=30)], 8))
    assert [b.shape for b in mixed] == [(2, 24, 24, 3), (2, 30, 30, 3)]
    with pytest.raises(FacelibError, match="batch_size"):
        list(F.iter_uint8_batches(x, 0))


def test_batches_from_tf_dataset():
    import tensorflow as tf

    x = faces(7)
    ds = tf.data.Dataset.from_tensor_slices((x, np.zeros(7))).batch(3)
    np.testing.assert_array_equal(np.concatenate(list(F.iter_uint8_batches(ds, 5))), x)


# --- the test network ------------------------------------------------------------------------

def test_random_network_is_labelled_and_deterministic(monkeypatch):
    net = F.random_feature_network()
    assert "NOT comparable" in net.name and net.dim == 64
    assert F.random_feature_network() is net
    x = faces(5)
    a = net(x)
    assert a.shape == (5, 64) and a.dtype == np.float32 and np.all(np.isfinite(a))
    monkeypatch.setattr(F, "_RANDOM_NETWORKS", {})
    rebuilt = F.random_feature_network()
    assert rebuilt is not net
    np.testing.assert_allclose(rebuilt(x), a, rtol=1e-5, atol=1e-6)  # same seed, same weights
    other = F.random_feature_network(seed=1)
    assert other.id != net.id
    assert not np.allclose(other(x), a)
    # any input size; different images give different features
    assert net(faces(2, size=57)).shape == (2, 64)
    assert not np.allclose(a[0], a[1])


def test_extract_does_not_depend_on_batch_size():
    net = F.random_feature_network()
    x = faces(11)
    whole = net.extract(x, batch_size=11)
    np.testing.assert_allclose(net.extract(x, batch_size=3), whole, rtol=1e-5, atol=1e-6)
    with pytest.raises(FacelibError, match="empty"):
        net.extract(x[:0], batch_size=4)


def test_jit_compiled_extraction_pads_last_batch_and_matches():
    net = F.random_feature_network()
    x = faces(10)
    jit = net.with_jit(True)
    assert jit.model is net.model and not net.jit_compile
    np.testing.assert_allclose(jit.extract(x, batch_size=4), net.extract(x, batch_size=4),
                               rtol=1e-4, atol=1e-5)


# --- the cache -------------------------------------------------------------------------------

def test_features_are_cached_by_content(tmp_path):
    net = CountingNetwork()
    x = faces(9)
    first = F.features_for(x, net, cache_dir=tmp_path)
    assert net.seen == 9 and first.shape == (9, 64)
    again = F.features_for(x.copy(), net, cache_dir=tmp_path)
    assert net.seen == 9  # served from disk
    np.testing.assert_array_equal(again, first)
    # the key does not depend on how the images are batched
    F.features_for(x, net, cache_dir=tmp_path, batch_size=2)
    F.features_for([x[:5], x[5:]], net, cache_dir=tmp_path)
    assert net.seen == 9
    # the same images as floats in [-1, 1] are the same content
    F.features_for(x.astype(np.float32) / 127.5 - 1.0, net, cache_dir=tmp_path)
    assert net.seen == 9
    # one changed pixel is new content
    y = x.copy()
    y[4, 0, 0, 0] ^= 1
    F.features_for(y, net, cache_dir=tmp_path)
    assert net.seen == 18
    files = sorted(p.name for p in (tmp_path / F._slug(net.id)).iterdir())
    assert len([f for f in files if f.endswith(".npy")]) == 2
    assert len([f for f in files if f.endswith(".json")]) == 2


def test_cache_key_depends_on_network_id(tmp_path):
    x = faces(4)
    a, b = CountingNetwork(), CountingNetwork(id_suffix="-other-weights")
    assert F.content_key(x, a) != F.content_key(x, b)
    assert F.content_key(x, a) == F.content_key(list(x), a)
    F.features_for(x, a, cache_dir=tmp_path)
    F.features_for(x, b, cache_dir=tmp_path)
    assert a.seen == 4 and b.seen == 4


def test_one_pass_iterator_is_stored_then_reused(tmp_path):
    net = CountingNetwork()
    x = faces(6)
    from_gen = F.features_for((x[i:i + 2] for i in range(0, 6, 2)), net, cache_dir=tmp_path)
    assert net.seen == 6
    np.testing.assert_array_equal(F.features_for(x, net, cache_dir=tmp_path), from_gen)
    assert net.seen == 6


def test_no_cache_and_damaged_cache(tmp_path):
    net = CountingNetwork()
    x = faces(3)
    F.features_for(x, net, cache_dir=False)
    assert net.seen == 3 and not any(tmp_path.iterdir())
    F.features_for(x, net, cache_dir=tmp_path)
    (path,) = (tmp_path / F._slug(net.id)).glob("*.npy")
    path.write_bytes(b"garbage")
    again = F.features_for(x, net, cache_dir=tmp_path)
    assert net.seen == 9 and again.shape == (3, 64)  # recomputed and replaced
    assert np.load(path).shape == (3, 64)


def test_default_cache_dir_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("FACELIB_CACHE", str(tmp_path))
    assert F.default_cache_dir() == tmp_path / "features"
    net = CountingNetwork()
    F.features_for(faces(2), net)
    assert list((tmp_path / "features" / F._slug(net.id)).glob("*.npy"))


def test_path_source_needs_resolution_and_matches_arrays(tmp_path):
    from facelib.data.sources import load_images
    from facelib.images import write_image

    folder = tmp_path / "imgs"
    for i, img in enumerate(faces(5, size=40)):
        write_image(folder / f"{i:03d}.png", img)
    net = CountingNetwork()
    with pytest.raises(FacelibError, match="resolution"):
        F.features_for(folder, net, cache_dir=tmp_path / "c")
    from_path = F.features_for(folder, net, cache_dir=tmp_path / "c", resolution=32)
    assert net.seen == 5
    arr = load_images(folder, 32)
    np.testing.assert_array_equal(F.features_for(arr, net, cache_dir=tmp_path / "c"), from_path)
    assert net.seen == 5  # same content as the folder: cache hit
