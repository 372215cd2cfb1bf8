"""KID: the unbiased MMD^2 estimator against a direct double loop, its behaviour, the Keras metric."""

import numpy as np
import pytest

from facelib.errors import FacelibError
from facelib.metrics.kid import KIDResult, kid, mmd2_unbiased


def _direct_mmd2(x, y):
    """O(n^2) loops straight from the definition, k(a, b) = (a.b / d + 1)^3."""
    d = x.shape[1]

    def k(a, b):
        return (float(np.dot(a, b)) / d + 1.0) ** 3

    m, n = len(x), len(y)
    kxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    kyy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    kxy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return kxx + kyy - 2 * kxy


def test_mmd2_matches_direct_formula_with_unequal_sizes():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(12, 5)), rng.normal(size=(9, 5)) + 0.7
    assert mmd2_unbiased(x, y) == pytest.approx(_direct_mmd2(x, y), rel=1e-12)


def test_single_full_subset_equals_the_whole_set_estimate():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(40, 6)), rng.normal(size=(40, 6)) * 2
    res = kid(x, y, num_subsets=1, subset_size=1000)
    assert isinstance(res, KIDResult) and res.std == 0.0
    assert res.mean == pytest.approx(_direct_mmd2(x, y), rel=1e-10)


def test_same_distribution_gives_kid_near_zero():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(2000, 16)), rng.normal(size=(2000, 16))
    mean, std = kid(a, b, num_subsets=20, subset_size=500)
    assert std > 0
    assert abs(mean) < std


def test_kid_grows_with_the_shift():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(1000, 16))
    base = rng.normal(size=(1000, 16))
    results = [kid(a, base + s, num_subsets=10, subset_size=300) for s in (0.1, 0.3, 0.6, 1.2)]
    means = [r.mean for r in results]
    assert all(m1 < m2 for m1, m2 in zip(means, means[1:])), means
    assert results[1].mean > 3 * results[1].std


def test_subset_size_capped_at_the_smaller_set_and_seed_is_deterministic():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(50, 4)), rng.normal(size=(7, 4)) + 1
    r1 = kid(a, b, num_subsets=10, seed=5)
    assert r1 == kid(a, b, num_subsets=10, seed=5)
    assert r1 != kid(a, b, num_subsets=10, seed=6)
    assert np.isfinite(r1.mean) and r1.mean > 0
    # the cap is the smaller set: 7 samples of each, so with a 7-sample real set the single
    # subset is all of both sets and equals the whole-set estimate
    assert kid(a[:7], b, num_subsets=1, subset_size=1000).mean == pytest.approx(
        mmd2_unbiased(a[:7], b), rel=1e-12)
    # by default subsets are at most half the smaller set, so they differ and std is a spread
    from facelib.metrics.kid import resolve_subset_size

    assert resolve_subset_size(None, 50, 7) == 3 and resolve_subset_size(None, 5000, 4000) == 1000
    assert kid(a[:7], b, num_subsets=5).std > 0
    # 2 samples is the smallest set the unbiased estimator accepts
    assert np.isfinite(kid(a, b[:2], num_subsets=3).mean)


def test_float32_option_is_close_to_float64():
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(300, 64)), rng.normal(size=(300, 64)) + 0.3
    r64 = kid(a, b, num_subsets=5, subset_size=200)
    r32 = kid(a, b, num_subsets=5, subset_size=200, dtype=np.float32)
    assert r32.mean == pytest.approx(r64.mean, rel=1e-3)


def test_bad_inputs_raise_facelib_error():
    rng = np.random.default_rng(6)
    with pytest.raises(FacelibError, match="at least 2 samples"):
        kid(rng.normal(size=(1, 3)), rng.normal(size=(10, 3)))
    with pytest.raises(FacelibError, match="dimension"):
        kid(rng.normal(size=(10, 3)), rng.normal(size=(10, 4)))
    with pytest.raises(FacelibError, match="2-D"):
        mmd2_unbiased(rng.normal(size=(10,)), rng.normal(size=(10, 1)))
    with pytest.raises(FacelibError, match="num_subsets"):
        kid(rng.normal(size=(10, 3)), rng.normal(size=(10, 3)), num_subsets=0)
