"""Interpolation: known answers for lerp/slerp, grids and GIFs over real (tiny) runs."""

import numpy as np
import pytest

from facelib.errors import FacelibError
from facelib.latent.interpolate import interpolate, lerp, slerp, write_gif
from helpers import boosted_run


def _pair(d=64, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(d), rng.standard_normal(d)


def test_endpoints_reproduce_inputs():
    a, b = _pair()
    for fn in (lerp, slerp):
        out = fn(a, b, [0.0, 1.0])
        np.testing.assert_allclose(out[0], a, rtol=0, atol=1e-6)
        np.testing.assert_allclose(out[1], b, rtol=0, atol=1e-6)
    z = interpolate(a, b, 5)
    assert z.shape == (5, 64) and z.dtype == np.float32
    np.testing.assert_allclose(z[[0, -1]], np.stack([a, b]), atol=1e-6)


def test_lerp_midpoint_is_the_mean():
    a, b = _pair()
    np.testing.assert_allclose(lerp(a, b, 0.5), (a + b) / 2, atol=1e-6)


def test_slerp_keeps_the_norm_of_equal_norm_endpoints():
    a, b = _pair()
    b = b / np.linalg.norm(b) * np.linalg.norm(a)
    path = slerp(a, b, np.linspace(0, 1, 11))
    np.testing.assert_allclose(np.linalg.norm(path, axis=1), np.linalg.norm(a), rtol=1e-5)
    # lerp does not: its midpoint dips inside the sphere
    assert np.linalg.norm(lerp(a, b, 0.5)) < 0.9 * np.linalg.norm(a)


def test_slerp_of_orthogonal_unit_vectors_is_the_great_circle():
    a, b = np.eye(3)[0], np.eye(3)[1]
    np.testing.assert_allclose(slerp(a, b, 0.5), [2 ** -0.5, 2 ** -0.5, 0], atol=1e-6)
    np.testing.assert_allclose(slerp(a, b, 1 / 3), [np.cos(np.pi / 6), np.sin(np.pi / 6), 0],
                               atol=1e-6)
    # parallel endpoints fall back to lerp
    np.testing.assert_allclose(slerp(a, 2 * a, 0.5), 1.5 * a, atol=1e-6)


def test_bad_interpolation_requests_raise():
    a, b = _pair()
    with pytest.raises(FacelibError, match="same length"):
        lerp(a, b[:3], 0.5)
    with pytest.raises(FacelibError, match="at least 2"):
        interpolate(a, b, 1)
    with pytest.raises(FacelibError, match="slerp"):
        interpolate(a, b, 4, method="cubic")


def test_write_gif_has_frames_durations_and_loops(tmp_path):
    from PIL import Image

    frames = np.stack([np.full((8, 8, 3), v, np.uint8) for v in (0, 120, 250)])
    path = write_gif(frames, tmp_path / "a.gif", duration_ms=[100, 200, 300], scale=2)
    with Image.open(path) as im:
        assert im.n_frames == 3 and im.size == (16, 16)
        assert im.info["loop"] == 0
        durations = []
        for i in range(im.n_frames):
            im.seek(i)
            durations.append(im.info["duration"])
            assert abs(int(np.asarray(im.convert("RGB"))[0, 0, 0]) - [0, 120, 250][i]) <= 2
    assert durations == [100, 200, 300]
    with pytest.raises(FacelibError, match="one positive duration per frame"):
        write_gif(frames, tmp_path / "b.gif", duration_ms=[100])


def test_grid_rows_start_at_each_seed_face(tiny_run, tmp_path):
    import facelib
    from facelib.latent.interpolate import interpolation_grid

    run = facelib.load_run(tiny_run)
    grid = interpolation_grid(run, [(0, 1), (2, 3)], steps=4, path=tmp_path / "g.png")
    r, pad = run.resolution, 2
    assert grid.shape == (2 * (r + pad) + pad, 4 * (r + pad) + pad, 3)
    assert (tmp_path / "g.png").exists()
    for row, (a, b) in enumerate([(0, 1), (2, 3)]):
        y0 = pad + row * (r + pad)
        first = grid[y0:y0 + r, pad:pad + r]
        last = grid[y0:y0 + r, pad + 3 * (r + pad):pad + 3 * (r + pad) + r]
        np.testing.assert_array_equal(first, run.generate(1, seed=a)[0])
        np.testing.assert_array_equal(last, run.generate(1, seed=b)[0])




def test_conditional_gif_loops_through_seeds(tiny_conditional_run, tiny_run, tmp_path):
    from PIL import Image

    import facelib
    from facelib.latent.interpolate import interpolation_gif, interpolation_images

    run = boosted_run(tiny_conditional_run)
    path = interpolation_gif(run, [0, 1, 2], tmp_path / "c.gif", steps=4, duration_ms=50,
                             hold_ms=300, attrs={"Smiling": 1}, scale=1)
    with Image.open(path) as im:
        assert im.n_frames == 3 * 3  # each leg drops its last frame (the next leg's first)
        assert im.info["loop"] == 0
        assert im.info["duration"] == 300
        im.seek(1)
        assert im.info["duration"] == 50
    faces = interpolation_images(run, 0, 1, steps=3, attrs={"Smiling": 1})
    assert faces.shape == (3, run.resolution, run.resolution, 3) and faces.dtype == np.uint8
    with pytest.raises(FacelibError, match="unconditional"):
        interpolation_images(facelib.load_run(tiny_run), 0, 1, attrs={"Smiling": 1})
