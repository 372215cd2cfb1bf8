"""Nearest-neighbour search and the memorization score: copies are flagged, fresh samples not."""

import numpy as np
import pytest

from facelib.errors import FacelibError
from facelib.images import read_image
from facelib.metrics.memorization import memorization_score, nearest_neighbours, neighbour_grid


def test_nearest_neighbours_match_brute_force_across_tiles():
    rng = np.random.default_rng(0)
    q, r = rng.normal(size=(37, 5)), rng.normal(size=(83, 5))
    full = np.linalg.norm(q[:, None] - r[None], axis=-1)
    expected_i = np.argsort(full, axis=1)[:, :4]
    for block_bytes in (512, 64 * 2**20):  # 512 B -> 8x8 tiles, many of them
        d, i = nearest_neighbours(q, r, k=4, block_bytes=block_bytes)
        np.testing.assert_array_equal(i, expected_i)
        np.testing.assert_allclose(d, np.take_along_axis(full, expected_i, axis=1), atol=1e-12)
        assert np.all(np.diff(d, axis=1) >= 0)


def test_exclude_self_and_uint8_memmap_images(tmp_path):
    rng = np.random.default_rng(1)
    imgs = rng.integers(0, 256, size=(20, 4, 4, 3), dtype=np.uint8)
    path = tmp_path / "images.npy"
    np.save(path, imgs)
    mm = np.load(path, mmap_mode="r")
    d, i = nearest_neighbours(mm[:5], mm, k=1, block_bytes=1024)
    np.testing.assert_array_equal(i[:, 0], np.arange(5))  # each image finds itself
    np.testing.assert_array_equal(d[:, 0], 0.0)
    d, i = nearest_neighbours(mm, mm, k=1, exclude_self=True, block_bytes=1024)
    assert np.all(i[:, 0] != np.arange(20)) and np.all(d[:, 0] > 0)
    flat = imgs.reshape(20, -1).astype(np.float64)
    brute = np.linalg.norm(flat[:, None] - flat[None], axis=-1) + np.diag(np.full(20, np.inf))
    np.testing.assert_allclose(d[:, 0], brute.min(axis=1))


def test_exclude_self_keeps_duplicates_as_neighbours_at_zero():
    # The radii of precision/recall and density/coverage: a point is not its own neighbour, but
    # an exact copy of it elsewhere in the set is, at distance 0.
    pts = np.array([[0.0], [0.0], [2.0], [5.0]])
    d, _ = nearest_neighbours(pts, pts, k=2, exclude_self=True)
    np.testing.assert_allclose(d, [[0.0, 2.0], [0.0, 2.0], [2.0, 2.0], [3.0, 5.0]])


def test_copies_of_training_points_are_flagged_and_fresh_samples_are_not():
    rng = np.random.default_rng(2)
    train = rng.normal(size=(600, 12))
    heldout = rng.normal(size=(500, 12))
    copied = [3, 50, 51, 400, 599]
    fresh = rng.normal(size=(300, 12))
    generated = np.concatenate([train[copied], fresh])
    res = memorization_score(generated, train, heldout, q=1.0)
    assert res.threshold > 0
    assert res.flagged[:5].all()
    np.testing.assert_array_equal(res.indices[:5], copied)
    np.testing.assert_allclose(res.distances[:5], 0.0, atol=1e-6)
    assert res.flagged[5:].mean() < 0.05  # ~1% expected by construction
    assert res.fraction == pytest.approx(res.flagged.mean())
    assert set(res.as_dict()) == {"memorization_fraction", "memorization_threshold"}


def test_neighbour_grid_writes_query_then_neighbours(tmp_path):
    rng = np.random.default_rng(3)
    train = rng.integers(0, 256, size=(10, 8, 8, 3), dtype=np.uint8)
    query = train[[2, 7]].astype(np.float32) / 127.5 - 1.0  # float images in [-1, 1]
    _, idx = nearest_neighbours(query.reshape(2, -1), train.astype(np.float32) / 127.5 - 1.0, k=3)
    out = neighbour_grid(query, train, idx, tmp_path / "nn.png")
    grid = read_image(out)
    assert grid.shape == (2 * 10 + 2, 4 * 10 + 2, 3)  # 2 rows, query + 3 neighbours, 2 px padding
    np.testing.assert_array_equal(grid[2:10, 12:20], train[2])  # first neighbour of a copy: itself
    with pytest.raises(FacelibError, match="out of range"):
        neighbour_grid(query, train[:5], idx + 5, tmp_path / "bad.png")


def test_bad_inputs_raise_facelib_error():
    rng = np.random.default_rng(4)
    with pytest.raises(FacelibError, match="k=5"):
        nearest_neighbours(rng.normal(size=(3, 2)), rng.normal(size=(4, 2)), k=5)
    with pytest.raises(FacelibError, match="dimension"):
        nearest_neighbours(rng.normal(size=(3, 2)), rng.normal(size=(4, 3)))
    with pytest.raises(FacelibError, match="percentile"):
        memorization_score(rng.normal(size=(3, 2)), rng.normal(size=(4, 2)), rng.normal(size=(4, 2)), q=0)
    with pytest.raises(FacelibError, match="one row per sample"):
        nearest_neighbours(np.zeros(3), np.zeros((3, 1)))
