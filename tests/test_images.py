"""facelib.images, the image-geometry layer: the one face-alignment rule that `detect` and `edit`
share, the batch resize, and the layer rule (it imports nothing of facelib but errors)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import facelib.images as images
from facelib.detector import read_face
from facelib.errors import FacelibError
from facelib.images import (
    CELEBA_ASPECT, align_face, crop_box, process_image, resize_batch, resize_square, write_image,
)
from facelib.latent.align import load_face

RNG = np.random.default_rng(0)


def _image(h: int, w: int) -> np.ndarray:
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _detect_and_edit(path: Path, resolution: int):
    """What `python -m facelib detect` and `python -m facelib edit` make of one photo file:
    the aligned face, or the FacelibError message."""
    out = []
    for read in (read_face, load_face):
        try:
            out.append(read(path, resolution))
        except FacelibError as e:
            out.append(str(e))
    return out


CELEBA_W = 178
# (height, width, resolution, accepted): shapes at and around the two accepted aspects.
CASES = [
    (64, 64, 32, True),                                         # square, aspect 1.0
    (218, 178, 64, True),                                       # CelebA, 218/178
    (109, 89, 32, True),                                        # CelebA at half size
    (107, 100, 32, True),                                       # square off by 7 %
    (93, 100, 32, True),                                        # square off by -7 %
    (round(CELEBA_W * CELEBA_ASPECT * 1.07), CELEBA_W, 32, True),   # CelebA off by 7 %
    (round(CELEBA_W * CELEBA_ASPECT * 0.93), CELEBA_W, 32, True),   # CelebA off by -7 %
    (110, 100, 32, False),                                      # square off by 10 %: neither
    (120, 100, 32, True),                                       # 1.20: within 8 % of CelebA's
    (80, 100, 32, False),                                       # square off by -20 %
    (round(CELEBA_W * CELEBA_ASPECT * 1.2), CELEBA_W, 32, False),   # CelebA off by 20 %
    (100, 300, 32, False),                                      # a wide photo
    (40, 40, 64, True),                                         # face 40 px for 64: <= 2x upscale
    (30, 30, 64, False),                                        # face 30 px for 64: too small
    (20, 20, 32, False),                                        # under MIN_FACE_SIDE
]


@pytest.mark.parametrize("h, w, resolution, accepted", CASES)
def test_detect_and_edit_accept_and_refuse_the_same_photos(tmp_path, h, w, resolution, accepted):
    """Both take square crops and CelebA portraits the same way. Other framings: `edit` refuses
    them (it must put the face where the generator draws it), `detect` judges their centre square,
    so that any input, real or synthetic, gets one crop and one resize; too small is refused by
    both."""
    img = _image(h, w)
    path = write_image(tmp_path / "face.png", img)
    detected, edited = _detect_and_edit(path, resolution)
    if accepted:
        assert isinstance(detected, np.ndarray) and isinstance(edited, np.ndarray), (detected, edited)
        assert detected.shape == (resolution, resolution, 3) and detected.dtype == np.uint8
        np.testing.assert_array_equal(detected, edited)
        np.testing.assert_array_equal(detected, align_face(img, resolution))
    else:
        assert isinstance(edited, str), edited
        assert "neither square" in edited or "too small" in edited
        with pytest.raises(FacelibError):
            align_face(img, resolution)
        if "too small" in edited:
            assert isinstance(detected, str) and "too small" in detected
        else:
            np.testing.assert_array_equal(detected, process_image(img, resolution, "none"))
            side = min(h, w)
            top, left = (h - side) // 2, (w - side) // 2
            np.testing.assert_array_equal(
                detected, resize_square(img[top:top + side, left:left + side], resolution))


def test_align_face_crops_like_the_training_data():
    celeba = _image(218, 178)
    np.testing.assert_array_equal(align_face(celeba, 64), process_image(celeba, 64, "celeba"))
    top, left, side, _ = crop_box(218, 178, "celeba")
    assert (top, left, side) == (40, 15, 148)
    np.testing.assert_array_equal(
        align_face(celeba, 64),
        cv2.resize(celeba[40:188, 15:163], (64, 64), interpolation=cv2.INTER_AREA))
    square = _image(48, 48)
    out = align_face(square, 48)
    np.testing.assert_array_equal(out, square)
    assert out.flags.c_contiguous
    with pytest.raises(FacelibError, match="photo.png is 300x100.*neither square nor CelebA"):
        align_face(_image(100, 300), 32, name="photo.png")
    with pytest.raises(FacelibError, match="face region is 30 px, too small for 64 px.*32 px"):
        align_face(_image(30, 30), 64)


def test_resize_batch_is_resize_square_per_image_and_leaves_right_sized_batches_alone():
    batch = np.stack([_image(64, 64) for _ in range(3)])
    assert resize_batch(batch, 64) is batch
    small = resize_batch(batch, 32)
    assert small.shape == (3, 32, 32, 3) and small.dtype == np.uint8
    for got, img in zip(small, batch):
        np.testing.assert_array_equal(got, cv2.resize(img, (32, 32), interpolation=cv2.INTER_AREA))
    big = resize_batch(batch[:, :16, :16], 32)  # a strided view: enlarged bicubically
    np.testing.assert_array_equal(
        big[1], cv2.resize(np.ascontiguousarray(batch[1, :16, :16]), (32, 32),
                           interpolation=cv2.INTER_CUBIC))
    np.testing.assert_array_equal(big[0], resize_square(np.ascontiguousarray(batch[0, :16, :16]), 32))
    wide = np.stack([_image(40, 60) for _ in range(2)])  # not square: centre square, never squashed
    np.testing.assert_array_equal(resize_batch(wide, 20)[1], process_image(wide[1], 20, "none"))
    np.testing.assert_array_equal(resize_batch(wide, 20)[1],
                                  cv2.resize(wide[1][:, 10:50], (20, 20), interpolation=cv2.INTER_AREA))
    empty = resize_batch(np.zeros((0, 64, 64, 3), np.uint8), 32)
    assert empty.shape == (0, 32, 32, 3) and empty.dtype == np.uint8
    with pytest.raises(ValueError, match="NHWC"):
        resize_batch(batch[0], 32)


def test_images_is_the_lowest_layer():
    """images.py imports only numpy, cv2, the standard library and the base layer (facelib.errors,
    facelib.limits, facelib.atomic) (and PIL, a
    hard dependency, for clean_fid_resize: clean-fid's resize is PIL's bicubic, bit for bit)."""
    tree = ast.parse(Path(images.__file__).read_text())
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            modules.add(node.module)
    allowed = {"numpy", "cv2", "PIL", "facelib.errors", "facelib.limits", "facelib.atomic",
               "__future__"}
    outside = {m for m in modules if m not in allowed and m.split(".")[0] not in sys.stdlib_module_names}
    assert not outside, f"facelib/images.py imports {sorted(outside)}"


def test_face_frame_bands():
    """The aspect rule face_crop_mode and the detector's read_face share: square and CelebA's
    178x218 portrait each within 8 % (relative); anything between or beyond is neither."""
    from facelib.images import face_frame

    assert face_frame(64, 64) == "none" and face_frame(107, 100) == "none"
    assert face_frame(218, 178) == "celeba" and face_frame(109, 89) == "celeba"
    assert face_frame(110, 100) is None          # between the bands (1.10)
    assert face_frame(100, 200) is None and face_frame(300, 178) is None
