"""Known answers for the Frechet distance and its streaming statistics."""

import numpy as np
import pytest
import scipy.linalg

from facelib.errors import FacelibError
from facelib.metrics.fid import FeatureStats, feature_stats, fid_from_features, frechet_distance


def _random_rotation(d, rng):
    q, r = np.linalg.qr(rng.normal(size=(d, d)))
    return q * np.sign(np.diag(r))


def _direct_fd(mu1, s1, mu2, s2):
    """The textbook formula with a general matrix square root (the pytorch-fid route)."""
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    covmean = np.real(covmean)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def test_one_dimensional_closed_form():
    # N(0, 1) vs N(3, 4): 3^2 + 1 + 4 - 2 * sqrt(1 * 4) = 10
    assert frechet_distance([0.0], [[1.0]], [3.0], [[4.0]]) == pytest.approx(10.0, abs=1e-12)


def test_diagonal_covariances_closed_form():
    rng = np.random.default_rng(0)
    d = 30
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    s1, s2 = rng.uniform(0.1, 5, d), rng.uniform(0.1, 5, d)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected, rel=1e-10)


def test_commuting_non_diagonal_covariances_via_rotation():
    rng = np.random.default_rng(1)
    d = 40
    q = _random_rotation(d, rng)
    a, b = rng.uniform(0.01, 3, d), rng.uniform(0.01, 3, d)
    s1, s2 = q @ np.diag(a) @ q.T, q @ np.diag(b) @ q.T
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(a + b - 2 * np.sqrt(a * b))
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)


def test_agrees_with_direct_sqrtm_on_non_commuting_covariances():
    rng = np.random.default_rng(2)
    d = 50
    x, y = rng.normal(size=(200, d)), rng.normal(size=(300, d)) @ rng.normal(size=(d, d)) * 0.3
    mu1, s1 = feature_stats(x)
    mu2, s2 = feature_stats(y)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(_direct_fd(mu1, s1, mu2, s2), rel=1e-8)


def test_identical_sets_give_zero_even_with_singular_covariance():
    rng = np.random.default_rng(3)
    full = rng.normal(size=(500, 20))
    assert fid_from_features(full, full) == pytest.approx(0.0, abs=1e-9)
    # 30 samples in 64 dimensions: rank-29 covariance, where sqrtm needs an eps offset.
    few = rng.normal(size=(30, 64))
    assert fid_from_features(few, few.copy()) == pytest.approx(0.0, abs=1e-8)
    other = rng.normal(size=(30, 64)) + 0.5
    assert fid_from_features(few, other) > 1.0


def test_symmetric_and_translation_invariant():
    rng = np.random.default_rng(4)
    a = rng.normal(size=(400, 16))
    b = rng.normal(size=(300, 16)) * 1.5 + 0.2
    ab = fid_from_features(a, b)
    assert ab > 0
    assert fid_from_features(b, a) == pytest.approx(ab, rel=1e-10)
    shift = rng.normal(size=16) * 100
    assert fid_from_features(a + shift, b + shift) == pytest.approx(ab, rel=1e-8)


def test_mean_shift_adds_squared_norm():
    rng = np.random.default_rng(5)
    a = rng.normal(size=(200, 8))
    delta = np.arange(8.0)
    assert fid_from_features(a, a + delta) == pytest.approx(np.sum(delta**2), rel=1e-10)


def test_streaming_stats_match_numpy_and_survive_a_large_offset():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(1000, 12)) + 1e6  # naive sum-of-squares would lose ~12 digits here
    stats = FeatureStats()
    for start in range(0, 1000, 77):
        stats.update(x[start:start + 77].astype(np.float64))
    stats.update(np.zeros((0, 12)))  # an empty last batch changes nothing
    centred = x - 1e6
    np.testing.assert_allclose(stats.mean - 1e6, centred.mean(axis=0), atol=1e-8)
    np.testing.assert_allclose(stats.cov, np.cov(centred, rowvar=False), rtol=1e-7, atol=1e-9)
    assert stats.count == 1000


def test_merge_of_shards_equals_one_pass_and_save_load(tmp_path):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(300, 5)).astype(np.float32)
    one = FeatureStats().update(x)
    a, b = FeatureStats().update(x[:120]), FeatureStats().update(x[120:])
    merged = a.merge(b)
    np.testing.assert_allclose(merged.mean, one.mean, rtol=1e-12)
    np.testing.assert_allclose(merged.cov, one.cov, rtol=1e-10)
    loaded = FeatureStats.load(one.save(tmp_path / "real_stats.npz"))
    assert loaded.count == 300
    np.testing.assert_allclose(loaded.cov, one.cov, rtol=1e-12)
    assert loaded.cov.dtype == np.float64


def test_bad_inputs_raise_facelib_error(tmp_path):
    rng = np.random.default_rng(8)
    with pytest.raises(FacelibError, match="different dimensions"):
        fid_from_features(rng.normal(size=(10, 4)), rng.normal(size=(10, 5)))
    with pytest.raises(FacelibError, match="at least 2"):
        fid_from_features(rng.normal(size=(1, 4)), rng.normal(size=(10, 4)))
    with pytest.raises(FacelibError, match="2-D"):
        fid_from_features(rng.normal(size=(10,)), rng.normal(size=(10, 4)))
    with pytest.raises(FacelibError, match="NaN"):
        FeatureStats().update(np.full((3, 2), np.nan))
    with pytest.raises(FacelibError, match="dimensions but earlier"):
        FeatureStats().update(np.zeros((3, 2))).update(np.zeros((3, 4)))
    with pytest.raises(FacelibError, match="not a covariance"):
        frechet_distance(np.zeros(2), -np.eye(2), np.zeros(2), np.eye(2))
    with pytest.raises(FacelibError, match="inconsistent"):
        frechet_distance(np.zeros(2), np.eye(3), np.zeros(2), np.eye(2))
    with pytest.raises(FacelibError, match="not found"):
        FeatureStats.load(tmp_path / "missing.npz")


def test_few_samples_shortcut_equals_the_covariance_route():
    """n < D takes an SVD of the n x n cross product; it must equal the D x D computation."""
    rng = np.random.default_rng(7)
    a = rng.standard_normal((40, 64)) @ rng.standard_normal((64, 64))
    b = rng.standard_normal((30, 64)) * 1.5 + 0.3
    mu1, s1 = feature_stats(a)
    mu2, s2 = feature_stats(b)
    assert fid_from_features(a, b) == pytest.approx(frechet_distance(mu1, s1, mu2, s2), rel=1e-8)
    assert fid_from_features(a, a) == pytest.approx(0.0, abs=1e-6)
