"""FID resize conventions: known answers for each resize, per-convention cache keys, errors.

Fast and weight-free: the resizes are checked on tiny synthetic images against references
computed here independently (TF1's own kernel, PIL, and numpy re-implementations); the network
plumbing uses a tiny stand-in graph with the same preprocessing layers as the FID Inception.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest

from facelib.errors import FacelibError
from facelib.images import clean_fid_resize
from facelib.metrics import features as F
from facelib.metrics import inception as inc

ROOT = Path(__file__).resolve().parents[1]


def synthetic(h, w, seed=0, n=1):
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


# --- tensorflow: TF1 bilinear, align_corners=False, no half-pixel centres --------------------

def test_tf1_resize_known_answer_by_hand():
    """Upsampling [0, 10] to 4 samples at out * in/out = 0, .5, 1, 1.5 (clamped): 0, 5, 10, 10.
    torch/pytorch-fid's half-pixel sampling would give 0, 2.5, 7.5, 10."""
    row = np.array([0.0, 10.0], np.float32).reshape(1, 1, 2, 1)
    img = np.repeat(row, 2, axis=1)                                   # (1, 2, 2, 1)
    got = np.asarray(inc.tf1_bilinear_resize(img, 4))
    np.testing.assert_array_equal(got[0, 0, :, 0], [0, 5, 10, 10])
    np.testing.assert_array_equal(got[0, :, 0, 0], [0, 0, 0, 0])       # constant along y


@pytest.mark.parametrize("size", [(5, 7), (32, 32), (64, 64), (109, 89), (400, 350), (299, 299)])
def test_tf1_resize_matches_tensorflow_v1_resize(size):
    import tensorflow as tf

    x = synthetic(*size, seed=sum(size)).astype(np.float32)
    want = tf.compat.v1.image.resize(x, (299, 299), method=tf.compat.v1.image.ResizeMethod.BILINEAR,
                                     align_corners=False).numpy()
    eager = np.asarray(inc.tf1_bilinear_resize(x, 299))
    np.testing.assert_array_equal(eager, want)
    # traced with unknown height/width, as inside the feature network's tf.function
    fn = tf.function(inc.tf1_bilinear_resize,
                     input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    np.testing.assert_array_equal(fn(x).numpy(), want)
    np.testing.assert_array_equal(np.asarray(inc.fid_preprocess_tensorflow(x)),
                                  (want - 128.0) / 128.0)
    if size != (299, 299):  # distinguishable from the pytorch-fid (half-pixel) resize
        half = np.asarray(inc.fid_preprocess(x)) * 127.5 + 127.5
        assert np.abs(half - want).max() > 1.0


# --- clean: clean-fid's PIL bicubic on float channels -----------------------------------------

def pil_like_clean(img: np.ndarray) -> np.ndarray:
    """The reference, as clean-fid writes it: each channel a mode 'F' PIL image, BICUBIC."""
    from PIL import Image

    chans = []
    for c in range(3):
        pil = Image.fromarray(img[:, :, c].astype(np.float32), mode="F")
        out = pil.resize((299, 299), resample=Image.BICUBIC)
        chans.append(np.asarray(out).clip(0, 255).reshape(299, 299, 1))
    return np.concatenate(chans, axis=2).astype(np.float32)


def bicubic_weights(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights of PIL's separable bicubic (a = -0.5, support 2 widened by the
    scale when shrinking, pixel centres at +0.5, each row normalised), in float64 numpy."""
    def cubic(x, a=-0.5):
        x = np.abs(x)
        return np.where(x < 1, ((a + 2) * x - (a + 3)) * x * x + 1,
                        np.where(x < 2, (((x - 5) * x + 8) * x - 4) * a, 0.0))

    scale = n_in / n_out
    fscale = max(scale, 1.0)
    support = 2.0 * fscale
    w = np.zeros((n_out, n_in))
    for o in range(n_out):
        centre = (o + 0.5) * scale
        lo = max(int(centre - support + 0.5), 0)
        hi = min(int(centre + support + 0.5), n_in)
        xs = np.arange(lo, hi)
        k = cubic((xs - centre + 0.5) / fscale)
        w[o, lo:hi] = k / k.sum()
    return w


@pytest.mark.parametrize("size", [(8, 8), (64, 64), (109, 89), (400, 350)])
def test_clean_resize_matches_pil_float_bicubic(size):
    imgs = synthetic(*size, seed=7, n=2)
    got = clean_fid_resize(imgs)
    assert got.shape == (2, 299, 299, 3) and got.dtype == np.float32
    for i in range(2):
        np.testing.assert_array_equal(got[i], pil_like_clean(imgs[i]))
    # independent numpy re-implementation of the filter (PIL accumulates in double)
    wy, wx = bicubic_weights(size[0], 299), bicubic_weights(size[1], 299)
    rows = np.einsum("oh,nhwc->nowc", wy, imgs.astype(np.float64))
    want = np.clip(np.einsum("nowc,pw->nopc", rows, wx), 0, 255)
    np.testing.assert_allclose(got, want, atol=2e-3)
    if size[0] < 299:  # not re-quantised: fractional values survive; overshoot is clipped
        assert np.any(got != np.round(got))
        assert got.min() >= 0.0 and got.max() <= 255.0


def test_clean_resize_keeps_constants_and_refuses_bad_shapes():
    flat = np.full((1, 20, 30, 3), 77, np.uint8)
    np.testing.assert_allclose(clean_fid_resize(flat), 77.0, atol=1e-4)
    with pytest.raises(ValueError, match="NHWC"):
        clean_fid_resize(np.zeros((20, 30, 3), np.uint8))


# --- the network under each convention ----------------------------------------------------------

def tiny_fid_graph(convention="pytorch-fid"):
    """Stand-in for build_fid_inception: the same preprocessing layer, then a cheap body with
    2048 outputs (so FIDInception's dim checks hold)."""
    import keras

    fn, layer_name = inc._PREPROCESS[convention]
    inputs = keras.Input((None, None, 3), name="images_0_255")
    x = keras.layers.Lambda(fn, name=layer_name)(inputs)
    x = keras.layers.AveragePooling2D(23, 23, name="shrink")(x)          # 299 -> 13
    x = keras.layers.Conv2D(2048, 1, name="body", kernel_initializer="glorot_uniform",
                            bias_initializer="zeros")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool3")(x)
    return keras.Model(inputs, x)


@pytest.fixture(scope="module")
def tiny_net():
    return inc.FIDInception(tiny_fid_graph(), "tiny0000", "test")


def test_conventions_share_weights_and_differ_only_in_preprocessing(tiny_net):
    nets = {c: tiny_net.with_convention(c) for c in inc.CONVENTIONS}
    assert nets["pytorch-fid"] is tiny_net
    assert tiny_net.with_convention("clean") is nets["clean"]            # built once
    assert nets["clean"].with_convention("tensorflow") is nets["tensorflow"]
    kernel = tiny_net.model.get_layer("body").kernel
    for c, net in nets.items():
        assert net.convention == c
        assert c in net.name or c == inc.DEFAULT_CONVENTION   # the default keeps its name
        assert net.preprocessing == inc.CONVENTIONS[c]
        assert any(w is kernel for w in net.model.weights)              # shared, not copied
    x = synthetic(299, 299, seed=3, n=2)      # 299: both resizes are the identity here
    f = {c: n(x) for c, n in nets.items()}
    np.testing.assert_allclose(f["tensorflow"], f["clean"], rtol=1e-6, atol=1e-7)
    assert np.abs(f["tensorflow"] - f["pytorch-fid"]).max() > 1e-4     # (x-128)/128 vs 2x/255-1
    small = synthetic(40, 30, seed=4, n=2)    # and the three resizes all differ
    g = {c: n(small) for c, n in nets.items()}
    assert np.abs(g["tensorflow"] - g["clean"]).max() > 1e-5
    assert np.abs(g["clean"] - g["pytorch-fid"]).max() > 1e-5


def test_clean_convention_resizes_on_the_cpu_first(tiny_net, monkeypatch):
    clean = tiny_net.with_convention("clean")
    seen = []
    real = inc.clean_fid_resize
    monkeypatch.setattr(inc, "clean_fid_resize", lambda b, s: seen.append(b.shape) or real(b, s))
    x = synthetic(48, 40, n=3)
    got = clean(x)
    assert seen == [(3, 48, 40, 3)]
    want = np.asarray(clean.model(real(x, 299)))
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def test_cache_keys_differ_per_convention(tiny_net, tmp_path):
    x = synthetic(32, 32, n=4)
    nets = {c: tiny_net.with_convention(c) for c in inc.CONVENTIONS}
    keys = {c: F.content_key(x, n) for c, n in nets.items()}
    assert len(set(keys.values())) == 3
    assert F.content_key(x, tiny_net, convention="clean") == keys["clean"]
    # a cached pytorch-fid feature is never served for a clean (or tensorflow) request
    first = F.features_for(x, tiny_net, cache_dir=tmp_path)
    for c in ("clean", "tensorflow"):
        got = F.features_for(x, tiny_net, cache_dir=tmp_path, convention=c)
        assert np.abs(got - first).max() > 1e-5
        np.testing.assert_allclose(got, nets[c](x), rtol=1e-6, atol=1e-7)
    files = sorted(tmp_path.rglob("*.npy"))
    assert len(files) == 3
    metas = [json.loads(p.with_suffix(".json").read_text()) for p in files]
    assert sorted(m["convention"] for m in metas) == sorted(inc.CONVENTIONS)
    # and each one is found again
    again = F.features_for(x, nets["clean"], cache_dir=tmp_path)
    np.testing.assert_array_equal(again, F.features_for(x, tiny_net, cache_dir=tmp_path,
                                                        convention="clean"))
    assert len(sorted(tmp_path.rglob("*.npy"))) == 3


def test_default_convention_keeps_name_and_id(tiny_net):
    assert inc.DEFAULT_CONVENTION == "pytorch-fid"
    assert tiny_net.name == inc.NETWORK_NAME
    assert tiny_net.id == "inception-2015-12-05-pool3-tiny0000"
    assert tiny_net.preprocessing == inc.PREPROCESSING
    assert tiny_net.with_convention("tensorflow").id.endswith("-tensorflow")


# --- errors -------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", ["legacy_tensorflow", "PyTorch-FID", "", None, 3])
def test_unknown_convention_is_one_clear_error(bad):
    with pytest.raises(FacelibError, match=r"unknown FID convention .*'pytorch-fid', "
                                           r"'tensorflow', 'clean'"):
        inc.check_convention(bad)


def test_unknown_convention_errors_before_any_work(tiny_net, monkeypatch):
    monkeypatch.setattr(inc, "locate_weights", lambda *a, **k: pytest.fail("looked for weights"))
    with pytest.raises(FacelibError, match="choose one of"):
        inc.fid_inception(convention="stylegan")
    with pytest.raises(FacelibError, match="choose one of"):
        tiny_net.with_convention("Clean")
    with pytest.raises(FacelibError, match="choose one of"):
        F.features_for(synthetic(8, 8), tiny_net, cache_dir=False, convention="bilinear")


def test_networks_without_conventions_say_so():
    net = F.random_feature_network()
    assert net.convention is None and net.with_convention(None) is net
    with pytest.raises(FacelibError, match="no FID resize conventions"):
        F.features_for(synthetic(8, 8), net, cache_dir=False, convention="clean")
    with pytest.raises(FacelibError, match="no feature network given"):
        F.features_for(synthetic(8, 8), None)


# --- import direction ---------------------------------------------------------------------------

def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_features_does_not_import_inception():
    """inception builds on features (its network classes and cache), never the other way."""
    features = imported_modules(ROOT / "facelib" / "metrics" / "features.py")
    assert not any("inception" in name for name in features), features
    assert "facelib.metrics.features" in imported_modules(ROOT / "facelib" / "metrics" /
                                                           "inception.py")
