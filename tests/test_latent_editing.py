"""Editing an inverted photo's attributes in a conditional run (facelib.latent.editing)."""

import numpy as np
import pytest

from facelib.data.celeba import ATTRIBUTE_NAMES
from facelib.errors import FacelibError
from facelib.images import to_float, to_uint8
from facelib.latent import edit_attributes, invert, set_attributes
from helpers import boosted_run

SMILING = ATTRIBUTE_NAMES.index("Smiling")


def pseudo_scorer(images):
    """A deterministic stand-in for the 40-attribute classifier: Smiling is read off the mouth
    region's brightness, Male off red minus blue, every other attribute is a fixed 0.2 or 0.8."""
    x = np.asarray(images, np.float32)
    r = x.shape[1]
    p = np.where(np.arange(40) % 3 == 0, 0.8, 0.2)[None].repeat(len(x), 0).astype(np.float32)
    mouth = x[:, int(0.62 * r):int(0.81 * r), int(0.31 * r):int(0.69 * r)].mean(axis=(1, 2, 3))
    p[:, SMILING] = 1 / (1 + np.exp(-20 * mouth))
    red = (x[..., 0] - x[..., 2]).mean(axis=(1, 2))
    p[:, ATTRIBUTE_NAMES.index("Male")] = 1 / (1 + np.exp(-20 * red))
    return p


def test_set_attributes_changes_only_the_named_columns(crun):
    rows = np.zeros((3, 40), np.float32)
    out = set_attributes(crun, rows, {"Smiling": 1, "Male": True})
    assert rows.sum() == 0  # the input is left alone
    changed = np.flatnonzero(out.any(axis=0))
    assert sorted(changed) == sorted([SMILING, ATTRIBUTE_NAMES.index("Male")])
    assert set_attributes(crun, np.ones(40), {"Smiling": 0})[SMILING] == 0  # one (40,) row
    with pytest.raises(FacelibError, match="unknown attribute 'Smile'"):
        set_attributes(crun, rows, {"Smile": 1})
    with pytest.raises(FacelibError, match="use 0"):
        set_attributes(crun, rows, {"Smiling": 2})
    with pytest.raises(FacelibError, match="shape"):
        set_attributes(crun, np.zeros((3, 39)), {"Smiling": 1})


def test_edit_keeps_z_and_changes_only_the_asked_attribute(crun, tiny_run):
    targets = to_uint8(crun.synthesize(crun.sample_latents(3, seed=4),
                                       crun.sample_attributes(3, {"Smiling": 0}, seed=4)))
    result = invert(crun, targets, scorer=pseudo_scorer, steps=3, init="search",
                    n_candidates=2, features="none")
    np.testing.assert_array_equal(result.attrs, (pseudo_scorer(to_float(targets)) >= 0.5))

    # no change: the reconstructions themselves
    np.testing.assert_array_equal(edit_attributes(crun, result, {}), result.reconstructions)
    # Smiling on, off: the same z with only that input changed
    for value in (0, 1):
        rows = result.attrs.copy()
        rows[:, SMILING] = value
        expected = to_uint8(crun.synthesize(result.z, rows))
        np.testing.assert_array_equal(edit_attributes(crun, result, {"Smiling": value}), expected)
    on = edit_attributes(crun, result, {"Smiling": 1})
    off = edit_attributes(crun, result, {"Smiling": 0})
    assert on.shape == result.reconstructions.shape and on.dtype == np.uint8
    assert np.abs(on.astype(int) - off.astype(int)).max() > 0  # the attribute input matters

    with pytest.raises(FacelibError, match="unconditional run"):
        edit_attributes(boosted_run(tiny_run), result, {"Smiling": 1})
    with pytest.raises(FacelibError, match="inversion result"):
        edit_attributes(crun, type("R", (), {"z": result.z, "attrs": None})(), {"Smiling": 1})


def test_strength_scales_the_attribute_change_and_only_edits_may_leave_0_1(crun):
    """strength s sets the rows to attrs + s * (new - attrs): 1 is the plain edit, 2 feeds the
    generator Smiling = 2 (and removing at 2 feeds -1); the other columns never move."""
    z = crun.sample_latents(3, seed=5)
    rows = crun.sample_attributes(3, {"Smiling": 0}, seed=5)
    result = type("R", (), {"z": z, "attrs": rows})()
    np.testing.assert_array_equal(edit_attributes(crun, result, {"Smiling": 1}, strength=1.0),
                                  edit_attributes(crun, result, {"Smiling": 1}))
    pushed = rows.copy()
    pushed[:, SMILING] = 2.5
    expected = to_uint8(crun.synthesize(z, pushed, extrapolate=True))
    np.testing.assert_array_equal(edit_attributes(crun, result, {"Smiling": 1}, strength=2.5),
                                  expected)
    assert np.abs(expected.astype(int)
                  - edit_attributes(crun, result, {"Smiling": 1}).astype(int)).max() > 0
    on = type("R", (), {"z": z, "attrs": crun.sample_attributes(3, {"Smiling": 1}, seed=5)})()
    removed = on.attrs.copy()
    removed[:, SMILING] = -1.0
    np.testing.assert_array_equal(edit_attributes(crun, on, {"Smiling": 0}, strength=2),
                                  to_uint8(crun.synthesize(z, removed, extrapolate=True)))
    with pytest.raises(FacelibError, match="finite"):
        edit_attributes(crun, result, {"Smiling": 1}, strength=float("nan"))
    # plain synthesis keeps refusing values beyond 0/1 (CelebA's raw -1 labels, say) ...
    with pytest.raises(FacelibError, match="map -1 to 0"):
        crun.synthesize(z, np.where(rows > 0, 1.0, -1.0))
    # ... and an edit still refuses non-finite rows
    with pytest.raises(FacelibError, match="finite"):
        crun.synthesize(z, np.full_like(rows, np.inf), extrapolate=True)
