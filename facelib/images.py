"""Image geometry, the lowest layer of facelib: decoding, the face crop, resizing, the one rule
for aligning a face photo, uint8/float conversion and grid figures.

Models work in float32 NHWC in [-1, 1]; files, caches and users see uint8 NHWC RGB. This module
imports only numpy, OpenCV (Pillow to read image headers), the standard library and the base
layer (``facelib.errors``, ``facelib.limits``, ``facelib.atomic``); everything else takes
its geometry from here, so the cache writer, the detector and inversion crop and resize alike.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import cv2
import numpy as np

from facelib.atomic import replace_file
from facelib.errors import FacelibError
from facelib.limits import limit


def to_uint8(images) -> np.ndarray:
    """Float images in [-1, 1] (any array-like, NHWC or HWC) to uint8 in [0, 255], rounded."""
    x = np.asarray(images, dtype=np.float32)
    return np.clip(np.rint((x + 1.0) * 127.5), 0, 255).astype(np.uint8)


def to_float(images) -> np.ndarray:
    """uint8 images in [0, 255] to float32 in [-1, 1]."""
    return np.asarray(images, dtype=np.float32) / 127.5 - 1.0


def make_grid(images, ncols: int | None = None, pad: int = 2, pad_value: int = 255) -> np.ndarray:
    """Tile N images (uint8 or float in [-1, 1], NHWC) into one uint8 HWC image."""
    x = np.asarray(images)
    if x.dtype != np.uint8:
        x = to_uint8(x)
    if x.ndim != 4:
        raise ValueError(f"make_grid expects NHWC images, got shape {x.shape}")
    n, h, w, c = x.shape
    ncols = ncols or int(math.ceil(math.sqrt(n)))
    nrows = int(math.ceil(n / ncols))
    grid = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad, c), pad_value, np.uint8)
    for i in range(n):
        r, col = divmod(i, ncols)
        y0, x0 = pad + r * (h + pad), pad + col * (w + pad)
        grid[y0:y0 + h, x0:x0 + w] = x[i]
    return grid


def write_image(path: str | Path, image: np.ndarray) -> Path:
    """Write one uint8 RGB HWC image (PNG/JPEG by suffix), atomically (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix or ".png"
    ok, buf = cv2.imencode(suffix, np.ascontiguousarray(np.asarray(image)[..., ::-1]))
    if not ok:
        raise ValueError(f"could not encode an image as {suffix}")
    return replace_file(path, lambda tmp: Path(tmp).write_bytes(buf.tobytes()))


def save_grid(images, path: str | Path, ncols: int | None = None) -> Path:
    """Tile images into a grid and write it as PNG (or JPEG by suffix)."""
    return write_image(path, make_grid(images, ncols=ncols))


class ImageTooLarge(FacelibError, ValueError):
    """An image whose header claims more pixels than ``FACELIB_MAX_IMAGE_PIXELS`` (e.g. a
    decompression bomb: a few KB of PNG that decodes to gigabytes). A ValueError too, so
    callers that skip unreadable images (``prepare``) skip it, and a FacelibError, so the CLI
    prints it as one line."""


# Formats whose header Pillow reads and OpenCV decodes; each starts with its own magic bytes, so
# both libraries agree on what the file is (and on the size the header claims).
DECODABLE_FORMATS = frozenset({"JPEG", "PNG", "BMP", "WEBP", "TIFF", "PPM"})


def image_header_size(data, name: str | None = None) -> tuple[int, int]:
    """(width, height) that an encoded image's header claims, read without decoding any pixels;
    ValueError when the bytes are not one of DECODABLE_FORMATS.

    Pillow's format plugins parse the header (what ``Image.open`` does, minus its own
    decompression-bomb ceiling, so that FACELIB_MAX_IMAGE_PIXELS alone decides)."""
    import io

    from PIL import Image

    Image.init()
    prefix = bytes(memoryview(data)[:16])
    for fmt in [f for f in Image.ID if f in DECODABLE_FORMATS]:
        factory, accept = Image.OPEN[fmt]
        accepted = accept(prefix) if accept is not None else True
        if isinstance(accepted, str) or not accepted:  # a str: Pillow lacks the codec
            continue
        try:
            im = factory(io.BytesIO(memoryview(data)), "")
            size = im.size
        except Exception:  # noqa: BLE001 - a header this plugin cannot parse: try the next one
            continue
        return int(size[0]), int(size[1])
    raise ValueError(f"{_prefix(name)}not a readable image (facelib decodes JPEG, PNG, BMP, WebP, "
                     "TIFF and PPM)")


def _prefix(name: str | None) -> str:
    return f"{name}: " if name else ""


def decode_image(data, name: str | None = None) -> np.ndarray:
    """Encoded image bytes -> uint8 BGR HWC (OpenCV's order).

    The header's width x height is checked against ``FACELIB_MAX_IMAGE_PIXELS`` before OpenCV
    allocates anything (ImageTooLarge); undecodable data raises ValueError."""
    buf = np.frombuffer(data, np.uint8) if not isinstance(data, np.ndarray) else data
    if not buf.size:
        raise ValueError(f"{_prefix(name)}not a readable image (empty)")
    width, height = image_header_size(buf, name)
    cap = limit("FACELIB_MAX_IMAGE_PIXELS")
    if width * height > cap:
        raise ImageTooLarge(
            f"{_prefix(name)}its header claims {width}x{height} = {width * height:,} pixels, "
            f"over the {cap:,} facelib decodes (FACELIB_MAX_IMAGE_PIXELS); refusing to decode "
            f"it. If the image is genuine, shrink it first or export "
            f"FACELIB_MAX_IMAGE_PIXELS={width * height}")
    try:
        img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    except cv2.error as e:  # some broken files raise instead of returning None
        raise ValueError(f"{_prefix(name)}not a readable image "
                         f"({str(e).strip().splitlines()[-1][:120]})") from None
    if img is None:
        raise ValueError(f"{_prefix(name)}not a readable image")
    return img


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as uint8 RGB HWC; raises ValueError when it cannot be decoded (and
    ImageTooLarge, also a ValueError, when its header claims over FACELIB_MAX_IMAGE_PIXELS)."""
    img = decode_image(np.fromfile(str(path), dtype=np.uint8), str(path))
    return img[..., ::-1].copy()


# ---------------------------------------------------------------------------------------------
# The face crop and resizing (what ``facelib.data.prepare`` applies to every cached face)

CROPS = ("auto", "celeba", "none")

# The standard CelebA face box: 148x148 pixels of the aligned 178x218 image, centred horizontally,
# top at row 40; kept as fractions so it works at any scale (e.g. the 89x109 half-size copy).
CELEBA_BOX = (40 / 218, 15 / 178, 148 / 218, 148 / 178)  # (top, left, height, width)


def _round(x: float) -> int:
    return math.floor(x + 0.5)


@functools.lru_cache(maxsize=256)
def crop_box(height: int, width: int, crop: str = "auto") -> tuple[int, int, int, int]:
    """The (top, left, size, size) square to keep from an image of ``height`` x ``width``.

    ``celeba``: the CelebA face box scaled to the image; ``auto``: that box for non-square images,
    the whole image for square ones (e.g. the bundled, already-cropped sample); ``none``: no face
    crop. A region that is still not square is centre-cropped to a square: aspect ratio is never
    distorted.
    """
    if crop not in CROPS:
        raise FacelibError(f"unknown crop {crop!r}: use one of {', '.join(CROPS)}")
    top, left, h, w = 0, 0, height, width
    if crop == "celeba" or (crop == "auto" and height != width):
        t, l_, hh, ww = CELEBA_BOX
        top, left = _round(t * height), _round(l_ * width)
        h, w = _round(hh * height), _round(ww * width)
        h, w = min(h, height - top), min(w, width - left)
    side = min(h, w)
    top += (h - side) // 2
    left += (w - side) // 2
    return top, left, side, side


def resize_square(img: np.ndarray, resolution: int) -> np.ndarray:
    """Resize a square image: area averaging when shrinking (antialiased), bicubic when enlarging."""
    if img.shape[0] == resolution and img.shape[1] == resolution:
        return img
    interp = cv2.INTER_AREA if img.shape[0] >= resolution else cv2.INTER_CUBIC
    return cv2.resize(img, (resolution, resolution), interpolation=interp)


def process_image(img: np.ndarray, resolution: int, crop: str = "auto") -> np.ndarray:
    """Crop (see ``crop_box``) and resize one HWC image to ``resolution`` x ``resolution``."""
    top, left, side, _ = crop_box(img.shape[0], img.shape[1], crop)
    return resize_square(img[top:top + side, left:left + side], resolution)


def resize_batch(images, resolution: int) -> np.ndarray:
    """NHWC images -> (N, R, R, C) with ``resize_square`` (centre square first if not square).

    A batch already at ``resolution`` x ``resolution`` comes back unchanged (the same array when
    it is a C-contiguous ndarray: no copy); an empty batch keeps its dtype and channels.
    """
    x = np.asarray(images)
    if x.ndim != 4:
        raise ValueError(f"resize_batch expects NHWC images, got shape {x.shape}")
    if x.shape[1:3] == (resolution, resolution):
        return np.ascontiguousarray(x)
    if len(x) == 0:
        return np.empty((0, resolution, resolution) + x.shape[3:], x.dtype)
    return np.stack([process_image(np.ascontiguousarray(img), resolution, "none") for img in x])


# ---------------------------------------------------------------------------------------------
# Aligning a face photo: the one rule ``detect`` and ``edit`` (and the detector's batches) share

CELEBA_ASPECT = 218 / 178  # height / width of CelebA's aligned img_align_celeba images
ASPECT_TOLERANCE = 0.08    # relative: |(h / w) / target - 1| for target 1 (square) or CELEBA_ASPECT
MIN_FACE_SIDE = 24         # pixels: below this there is no face left to look at

ALIGN_HINT = ("an aligned, CelebA-style face crop: either a CelebA img_align_celeba-like image "
              "(178x218 at any scale: eyes level, about 40% from the top) or a square crop of "
              "such a face (as in the bundled sample). Align other photos first with a landmark "
              "tool (e.g. dlib or face_alignment, FFHQ/CelebA alignment recipe) and crop them to "
              "that frame")


def face_frame(height: int, width: int) -> str | None:
    """The face frame an image of ``height`` x ``width`` has by its aspect alone: ``"none"``
    (square), ``"celeba"`` (CelebA's aligned portrait) or None (neither); the bands are
    explained in :func:`face_crop_mode`."""
    aspect = height / width
    if abs(aspect - 1.0) <= ASPECT_TOLERANCE:
        return "none"
    if abs(aspect / CELEBA_ASPECT - 1.0) <= ASPECT_TOLERANCE:
        return "celeba"
    return None


def face_crop_mode(height: int, width: int, resolution: int, name: str = "image") -> str:
    """The crop an aligned face photo of ``height`` x ``width`` gets: ``"none"`` (a square face
    crop) or ``"celeba"`` (a CelebA-shaped portrait: the CelebA face box); FacelibError, naming
    ``name``, for any other shape or a face too small for a ``resolution`` px model.

    Shape: the aspect h/w must be within ``ASPECT_TOLERANCE`` = 8 % (relative) of 1 or of 218/178.
    8 % is the looser of the two rules this one replaced (inversion's; the detector had 6 %
    absolute, about 5 % relative at CelebA's aspect), so a face crop trimmed by a few pixels per
    side, or saved at a rounded size, still passes; the two bands (0.92-1.08 and 1.13-1.32) stay
    far apart, so the crop chosen is never ambiguous, and wider or taller images are refused rather
    than cropped to something that is not the face frame the models were trained on.

    Size: the face region must be at least ``max(MIN_FACE_SIDE, resolution // 2)`` px, i.e. at
    most a 2x enlargement. Not "never enlarge": the training caches themselves are enlarged
    (``prepare`` at 128 px resizes the 74 px face box of the 89x109 CelebA copy bicubically), so
    the generator and the detector both saw enlarged faces, and refusing them would refuse the
    training photos. Beyond 2x (or under 24 px) too little of the face is left to invert or judge.
    """
    mode = face_frame(height, width)
    if mode is None:
        raise FacelibError(
            f"{name} is {width}x{height} (aspect h/w {height / width:.2f}): neither square nor "
            f"CelebA's aligned 178x218 ({CELEBA_ASPECT:.2f}); expected {ALIGN_HINT}")
    side = crop_box(height, width, mode)[2]
    need = max(MIN_FACE_SIDE, resolution // 2)
    if side < need:
        raise FacelibError(
            f"{name} is {width}x{height}: its face region is {side} px, too small for {resolution} "
            f"px (need at least {need} px); use a larger crop. Expected {ALIGN_HINT}")
    return mode


def align_face(image: np.ndarray, resolution: int, name: str = "image") -> np.ndarray:
    """One uint8 RGB HWC face photo -> uint8 (R, R, 3), cropped and resized exactly like the
    training data (``process_image``), or a FacelibError saying why it cannot be used (see
    ``face_crop_mode`` for the rule and its reasons). No face detection or landmark alignment
    happens here: the photo must already be an aligned face crop."""
    mode = face_crop_mode(image.shape[0], image.shape[1], resolution, name)
    return np.ascontiguousarray(process_image(image, resolution, mode))


# --------------------------------------------------------------------------------------------
# FID resize conventions: the CPU-side resize (clean-fid's). The in-graph resizes of the
# 'pytorch-fid' and 'tensorflow' conventions are tensor ops in facelib.metrics.inception.
# --------------------------------------------------------------------------------------------

def clean_fid_resize(images, size: int = 299) -> np.ndarray:
    """clean-fid's "clean" resize: NHWC images (uint8 0..255) -> float32 (N, size, size, 3).

    The same steps as cleanfid.resize.make_resizer("PIL", quantize_after=False, "bicubic",
    (size, size)): every channel becomes a 32-bit float PIL image (mode 'F'), is resized with
    PIL's bicubic filter (a=-0.5; antialiased, i.e. the kernel is widened, when shrinking), then
    clipped to [0, 255] and kept as float: no re-quantisation to uint8.
    """
    from PIL import Image

    x = np.asarray(images)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"clean_fid_resize expects NHWC RGB images, got shape {x.shape}")
    out = np.empty((x.shape[0], size, size, 3), np.float32)
    for i in range(x.shape[0]):
        for c in range(3):
            channel = Image.fromarray(np.ascontiguousarray(x[i, :, :, c], dtype=np.float32))
            resized = channel.resize((size, size), resample=Image.BICUBIC)
            out[i, :, :, c] = np.clip(np.asarray(resized, dtype=np.float32), 0.0, 255.0)
    return out
