"""Mode-collapse diagnostics: birthday paradox, NDB, attribute marginals."""

import math

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon

from facelib.errors import FacelibError
from facelib.images import read_image
from facelib.metrics.modes import (
    attribute_tv,
    birthday_paradox,
    js_divergence,
    ndb,
    pair_grid,
    support_size_estimate,
    two_proportion_z,
)


def _mixture(n, centres, rng, scale=0.3):
    return centres[rng.integers(0, len(centres), n)] + rng.normal(size=(n, centres.shape[1])) * scale


# ----------------------------------------------------------------------------- birthday paradox


def test_support_size_formula():
    assert support_size_estimate(0.5, 20) == pytest.approx(20 * 19 / (2 * math.log(2)))
    assert support_size_estimate(0.0, 20) == math.inf
    assert math.isfinite(support_size_estimate(1.0, 20, num_batches=10))
    with pytest.raises(FacelibError, match="duplicate_rate"):
        support_size_estimate(1.5, 20)


def test_birthday_paradox_detects_a_small_support_and_estimates_its_size():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(4000, 8))
    support = rng.normal(size=(400, 8))  # the generator can only make these 400 faces
    gen = support[rng.integers(0, 400, 3000)]
    res = birthday_paradox(gen, batch_size=20, num_batches=200, real=real, percentile=5, seed=1)
    # P(duplicate in 20 draws from 400) = 1 - exp(-190/400) ~ 0.38; the false-alarm rate is ~5%
    assert 0.25 < res.duplicate_rate < 0.55
    assert 200 < res.support_size < 800
    assert res.real_duplicate_rate == pytest.approx(0.05, abs=0.02)
    i, j = res.pairs[0]
    assert i != j and res.pair_distances[0] == pytest.approx(0.0, abs=1e-6)
    np.testing.assert_array_equal(gen[i], gen[j])
    assert np.all(np.diff(res.pair_distances) >= 0)


def test_birthday_paradox_on_real_like_samples_finds_few_duplicates():
    rng = np.random.default_rng(2)
    real, fresh = rng.normal(size=(3000, 8)), rng.normal(size=(3000, 8))
    res = birthday_paradox(fresh, batch_size=50, num_batches=100, real=real, percentile=5)
    assert res.duplicate_rate < 0.2
    # with an explicit threshold and real data, the real rate is measured at that threshold
    strict = birthday_paradox(fresh, batch_size=50, num_batches=100, real=real, threshold=0.0)
    assert strict.duplicate_rate == 0.0 and strict.real_duplicate_rate == 0.0
    assert res.support_size > 50 * 49  # no evidence of a support near s^2
    assert set(res.as_dict()) >= {"birthday_duplicate_rate", "birthday_support_size"}


def test_birthday_paradox_inputs_and_pair_grid(tmp_path):
    rng = np.random.default_rng(3)
    imgs = rng.integers(0, 256, size=(30, 6, 6, 3), dtype=np.uint8)
    imgs[10] = imgs[4]
    res = birthday_paradox(imgs, batch_size=30, num_batches=1, threshold=1.0, pairs_per_batch=3)
    assert sorted(res.pairs[0]) == [4, 10] and res.duplicate_rate == 1.0
    out = read_image(pair_grid(imgs, res.pairs, tmp_path / "pairs.png"))
    assert out.shape == (3 * 8 + 2, 2 * 8 + 2, 3)
    with pytest.raises(FacelibError, match="calibrate"):
        birthday_paradox(imgs, batch_size=10)
    with pytest.raises(FacelibError, match="fewer than batch_size"):
        birthday_paradox(imgs, batch_size=31, threshold=1.0)


# ----------------------------------------------------------------------------- NDB


def test_two_proportion_z_known_value():
    # 30/100 (real) vs 50/100 (generated): pooled 0.4, se = sqrt(0.4 * 0.6 * 0.02) = 0.069282,
    # z = (0.5 - 0.3) / se = +2.8868 (positive: the generator over-fills the bin)
    z, p = two_proportion_z(np.array([30.0]), 100, np.array([50.0]), 100)
    assert z[0] == pytest.approx(0.2 / math.sqrt(0.0048), rel=1e-12)
    assert p[0] == pytest.approx(0.003892, abs=2e-6)


def test_ndb_small_for_the_real_distribution_large_for_a_collapsed_one():
    rng = np.random.default_rng(4)
    centres = rng.normal(size=(20, 8)) * 4
    real = _mixture(4000, centres, rng)
    good = _mixture(4000, centres, rng)
    collapsed = _mixture(4000, centres[:3], rng)
    r_good = ndb(real, good, k=20, seed=0)
    r_bad = ndb(real, collapsed, k=20, seed=0)
    assert r_good.ndb_over_k <= 0.15
    assert r_bad.ndb >= 15
    assert r_bad.js > 10 * r_good.js
    assert r_good.real_proportions.sum() == pytest.approx(1.0)
    assert set(r_bad.as_dict()) == {"ndb", "ndb_k", "ndb_js"}


def test_ndb_default_bins_and_errors():
    rng = np.random.default_rng(5)
    real, gen = rng.normal(size=(300, 3)), rng.normal(size=(300, 3))
    assert ndb(real, gen).k == 15  # 300 // 20: about 20 real samples per bin
    with pytest.raises(FacelibError, match="k="):
        ndb(real, gen, k=1)
    with pytest.raises(FacelibError, match="dimension"):
        ndb(real, rng.normal(size=(10, 4)))


def test_js_divergence_known_answers():
    assert js_divergence([1, 2, 3], [2, 4, 6]) == pytest.approx(0.0, abs=1e-15)
    assert js_divergence([1, 0], [0, 1]) == pytest.approx(1.0)
    p, q = np.array([1.0, 0.0]), np.array([0.5, 0.5])
    expected = 0.5 * math.log2(1 / 0.75) + 0.5 * (0.5 * math.log2(0.5 / 0.75) + 0.5 * math.log2(2))
    assert js_divergence(p, q) == pytest.approx(expected, rel=1e-12)
    assert js_divergence(p, q) == pytest.approx(jensenshannon(p, q, base=2) ** 2, rel=1e-9)


# ----------------------------------------------------------------------------- attributes


def test_attribute_tv_known_answers():
    real = np.array([[1, 0, 1], [0, 0, 1], [1, 0, 1], [0, 0, 1]])  # p_real = .5, 0, 1
    gen = np.array([[1, 1, 1], [1, 1, 0], [1, 0, 0], [1, 0, 0]])  # p_gen = 1, .5, .25
    res = attribute_tv(gen, real, names=["Smiling", "Eyeglasses", "Young"])
    assert res["per_attribute"] == pytest.approx({"Smiling": 0.5, "Eyeglasses": 0.5, "Young": 0.75})
    assert res["attribute_tv"] == pytest.approx(1.75 / 3)
    assert attribute_tv(real, real)["attribute_tv"] == 0.0
    forty = attribute_tv(np.ones((2, 40)), np.zeros((3, 40)))
    assert forty["attribute_tv"] == 1.0 and len(forty["per_attribute"]) == 40
    with pytest.raises(FacelibError, match="-1/1"):
        attribute_tv(np.full((2, 3), -1), real)
    with pytest.raises(FacelibError, match="same A"):
        attribute_tv(np.ones((2, 4)), real)
