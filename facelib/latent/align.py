"""Input photos for inversion: accept aligned face crops, crop them like the training data, or
reject them with a message that says what is expected.

What this does NOT do: detect faces or align them by landmarks (eyes, nose, mouth). CelebA's
``img_align_celeba`` images were aligned by their landmarks to a fixed 178x218 frame; the model
only ever saw faces in that frame, so a photo must already be aligned the same way. This module
checks what it can without a detector (OpenCV 5 ships no Haar cascades and facelib ships no
landmark model): the image decodes to RGB; the rest is ``facelib.images.align_face``, the rule
``detect`` uses too: its shape is that of a CelebA aligned image (about 178x218, any scale) or of
a square face crop, it is large enough, and it gets the same crop and antialiased resize as the
training data. A misaligned face that passes these checks still inverts badly; align such photos
first with an external landmark tool (e.g. dlib's 68-landmark predictor or the ``face_alignment``
package, with the FFHQ/CelebA alignment recipe: rotate so the eyes are level, scale so the
eye-to-mouth distance is fixed, crop around them).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facelib.errors import FacelibError
from facelib.images import ALIGN_HINT, ImageTooLarge, align_face, decode_image, to_uint8


def _decode(source) -> tuple[np.ndarray, str]:
    """Path, bytes or an array -> (uint8 RGB HWC, what to call it in messages)."""
    if isinstance(source, np.ndarray):
        img = source
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        if img.ndim != 3 or img.shape[2] not in (3, 4):
            raise FacelibError(f"an image array must be HxWx3 RGB, got shape {img.shape}; "
                               f"expected {ALIGN_HINT}")
        if img.dtype != np.uint8:
            if np.issubdtype(img.dtype, np.floating) and img.min() >= -1.0 and img.max() <= 1.0:
                img = to_uint8(img)
            else:
                raise FacelibError(f"image array of dtype {img.dtype}: pass uint8 RGB (0-255) "
                                   "or float in [-1, 1]")
        return np.ascontiguousarray(img[..., :3]), "image"
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, what = np.frombuffer(bytes(source), np.uint8), "the uploaded data"
    else:
        path = Path(source)
        if not path.is_file():
            raise FacelibError(f"{path}: no such image file")
        data, what = np.fromfile(str(path), np.uint8), str(path)
    try:  # header size checked before decoding (ImageTooLarge is a FacelibError: it propagates)
        img = decode_image(data, what)
    except ImageTooLarge:
        raise
    except ValueError:
        raise FacelibError(f"{what} is not a readable image (JPEG, PNG, BMP or WebP); expected "
                           f"{ALIGN_HINT}") from None
    return np.ascontiguousarray(img[..., ::-1]), what


def load_face(source, resolution: int) -> np.ndarray:
    """An aligned face photo (path, encoded bytes, or uint8 RGB array) -> uint8 (R, R, 3) cropped
    and resized exactly like the training data; FacelibError if it cannot be one (the rule:
    ``facelib.images.align_face``, shared with ``detect``)."""
    img, what = _decode(source)
    return align_face(img, resolution, name=what)
