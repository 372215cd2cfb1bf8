"""Reading image sets from caches, CelebA folders, plain folders and .npy arrays."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from facelib.data.cache import FaceCache
from facelib.data.prepare import prepare
from facelib.data.sources import iter_image_batches, list_image_files, load_images, source_kind
from facelib.errors import FacelibError
from facelib.images import write_image

FIXTURE = Path(__file__).parent / "fixtures" / "celeba-tiny"


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sources") / "cache32"
    prepare(FIXTURE, out, 32, progress=False)
    return out


def test_celeba_folder_reads_like_the_prepared_cache(cache_dir):
    assert source_kind(FIXTURE) == "celeba" and source_kind(cache_dir) == "cache"
    from_folder = load_images(FIXTURE, 32)
    assert from_folder.shape == (24, 32, 32, 3) and from_folder.dtype == np.uint8
    np.testing.assert_array_equal(from_folder, FaceCache.open(cache_dir).images)
    np.testing.assert_array_equal(load_images(cache_dir, 32), from_folder)


def test_cache_at_another_resolution_is_resized(cache_dir):
    small = load_images(cache_dir, 16, limit=5)
    assert small.shape == (5, 16, 16, 3)
    # Area averaging by exactly 2: each output pixel is the rounded mean of a 2x2 block.
    src = FaceCache.open(cache_dir).images[:5].astype(np.float64)
    blocks = src.reshape(5, 16, 2, 16, 2, 3).mean(axis=(2, 4))
    assert np.abs(small - blocks).max() <= 0.5 + 1e-6


def test_plain_folder_is_centre_cropped_not_squashed(tmp_path):
    wide = np.zeros((40, 60, 3), np.uint8)
    wide[:, :10] = (255, 0, 0)  # red bands left and right, outside the centre square
    wide[:, 50:] = (255, 0, 0)
    wide[:, 10:50] = (0, 200, 0)
    write_image(tmp_path / "b_wide.png", wide)
    write_image(tmp_path / "sub" / "c_square.png", np.full((50, 50, 3), 90, np.uint8))
    write_image(tmp_path / "a_small.png", np.full((8, 8, 3), 30, np.uint8))  # enlarged
    (tmp_path / "notes.txt").write_text("not an image")
    assert source_kind(tmp_path) == "folder"
    assert [p.name for p in list_image_files(tmp_path)] == ["a_small.png", "b_wide.png", "c_square.png"]
    got = load_images(tmp_path, 32)
    assert got.shape == (3, 32, 32, 3)
    assert (got[0] == 30).all() and (got[2] == 90).all()
    assert (got[1] == (0, 200, 0)).all()  # only the green centre is left


def test_unreadable_files_are_skipped_with_a_warning(tmp_path):
    shutil.copytree(FIXTURE / "img_align_celeba", tmp_path / "faces")
    (tmp_path / "faces" / "000002.jpg").write_bytes(b"broken")
    with pytest.warns(UserWarning, match="skipped 1 unreadable"):
        got = load_images(tmp_path / "faces", 32)
    assert got.shape == (23, 32, 32, 3)
    for p in (tmp_path / "faces").iterdir():
        p.write_bytes(b"broken")
    with pytest.raises(FacelibError, match="none of the 24 image files"), pytest.warns(UserWarning):
        load_images(tmp_path / "faces", 32)


def test_batches_stream_in_order_with_limit(cache_dir):
    sizes = [len(b) for b in iter_image_batches(FIXTURE, 32, batch_size=10)]
    assert sizes == [10, 10, 4]
    assert [len(b) for b in iter_image_batches(cache_dir, 32, batch_size=10, limit=13)] == [10, 3]
    assert load_images(FIXTURE, 32, limit=5).shape == (5, 32, 32, 3)


def test_npy_arrays_uint8_and_float(tmp_path):
    rng = np.random.default_rng(0)
    u = rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    np.save(tmp_path / "u.npy", u)
    np.testing.assert_array_equal(load_images(tmp_path / "u.npy", 32), u)
    f = u.astype(np.float32) / 127.5 - 1.0
    np.save(tmp_path / "f.npy", f)
    np.testing.assert_array_equal(load_images(tmp_path / "f.npy", 32), u)
    np.save(tmp_path / "bad.npy", np.zeros((4, 5)))
    with pytest.raises(FacelibError, match=r"shape \(4, 5\)"):
        load_images(tmp_path / "bad.npy", 32)


def test_bad_sources(tmp_path):
    with pytest.raises(FacelibError, match="does not exist"):
        load_images(tmp_path / "nope", 32)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FacelibError, match="no images"):
        load_images(tmp_path / "empty", 32)
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(FacelibError, match="is a file"):
        load_images(tmp_path / "x.txt", 32)
    with pytest.raises(FacelibError, match="batch_size must be positive"):
        next(iter_image_batches(FIXTURE, 32, batch_size=0))
