"""Input photos for inversion: accept aligned face crops, crop them like the training data, or
reject them with a message that says what is expected.

What this does NOT do: detect faces or align them by landmarks (eyes, nose, mouth). CelebA's
``img_align_celeba`` images were aligned by their landmarks to a fixed 178x218 frame; the model
only ever saw faces in that frame, so a photo must already be aligned the same way. This module
checks what it can without a detector (OpenCV 5 ships no Haar cascades and facelib ships no
landmark model): the image decodes to RGB, its shape is that of a CelebA aligned image (about
178x218, any scale) or of a square face crop, and it is large enough. It then applies the same
crop and antialiased resize as ``facelib.data.prepare``. A misaligned face that passes these
checks still inverts badly; align such photos first with an external landmark tool (e.g. dlib's
68-landmark predictor or the ``face_alignment`` package, with the FFHQ/CelebA alignment recipe:
rotate so the eyes are level, scale so the eye-to-mouth distance is fixed, crop around them).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facelib.errors import FacelibError

CELEBA_ASPECT = 218 / 178  # height / width of CelebA's aligned images
ASPECT_TOLERANCE = 0.08     # relative tolerance around the CelebA aspect
SQUARE_TOLERANCE = 0.10     # |h/w - 1| allowed for a "square" face crop
MIN_FACE_SIDE = 24          # pixels: below this there is no face left to invert

EXPECTED = ("an aligned, CelebA-style face crop: either a CelebA img_align_celeba-like image "
            "(178x218 at any scale: eyes level, about 40% from the top) or a square crop of "
            "such a face (as in the bundled sample). Align other photos first with a landmark "
            "tool (e.g. dlib or face_alignment, FFHQ/CelebA alignment recipe) and crop them to "
            "that frame")


def _decode(source) -> np.ndarray:
    """Path, bytes or an array -> uint8 RGB HWC."""
    import cv2

    if isinstance(source, np.ndarray):
        img = source
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        if img.ndim != 3 or img.shape[2] not in (3, 4):
            raise FacelibError(f"an image array must be HxWx3 RGB, got shape {img.shape}; "
                               f"expected {EXPECTED}")
        if img.dtype != np.uint8:
            if np.issubdtype(img.dtype, np.floating) and img.min() >= -1.0 and img.max() <= 1.0:
                from facelib.images import to_uint8

                img = to_uint8(img)
            else:
                raise FacelibError(f"image array of dtype {img.dtype}: pass uint8 RGB (0-255) "
                                   "or float in [-1, 1]")
        return np.ascontiguousarray(img[..., :3])
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, what = np.frombuffer(bytes(source), np.uint8), "the uploaded data"
    else:
        path = Path(source)
        if not path.is_file():
            raise FacelibError(f"{path}: no such image file")
        data, what = np.fromfile(str(path), np.uint8), str(path)
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if img is None:
        raise FacelibError(f"{what} is not a readable image (JPEG, PNG, BMP or WebP); expected "
                           f"{EXPECTED}")
    return np.ascontiguousarray(img[..., ::-1])


def face_crop_mode(height: int, width: int, resolution: int) -> str:
    """'celeba' (apply the CelebA face box) or 'none' (already a square face crop); raises
    FacelibError for shapes that cannot be an aligned face crop."""
    from facelib.data.prepare import crop_box

    aspect = height / width
    if abs(aspect - 1.0) <= SQUARE_TOLERANCE:
        mode = "none"
    elif abs(aspect / CELEBA_ASPECT - 1.0) <= ASPECT_TOLERANCE:
        mode = "celeba"
    else:
        raise FacelibError(
            f"image is {width}x{height} (aspect h/w {aspect:.2f}): neither square nor CelebA's "
            f"aligned 178x218 ({CELEBA_ASPECT:.2f}); expected {EXPECTED}")
    side = crop_box(height, width, mode)[2]
    need = max(MIN_FACE_SIDE, resolution // 2)
    if side < need:
        raise FacelibError(
            f"image is {width}x{height}: its face region is {side} px, too small to invert at "
            f"{resolution} px (need at least {need} px); use a larger crop. Expected "
            f"{EXPECTED}")
    return mode


def load_face(source, resolution: int) -> np.ndarray:
    """An aligned face photo (path, encoded bytes, or uint8 RGB array) -> uint8 (R, R, 3) cropped
    and resized exactly like the training data; FacelibError if it cannot be one."""
    from facelib.data.prepare import process_image

    img = _decode(source)
    mode = face_crop_mode(img.shape[0], img.shape[1], resolution)
    return np.ascontiguousarray(process_image(img, resolution, mode))
