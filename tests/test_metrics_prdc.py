"""Precision/recall and density/coverage: hand-computed cases and a brute-force reference."""

import numpy as np
import pytest

from facelib.errors import FacelibError
from facelib.metrics.prdc import density_coverage, prdc, precision_recall


def _brute_prdc(real, gen, k_pr, k_dc):
    """The paper definitions with full distance matrices (np.linalg.norm, no blocking)."""
    drr = np.linalg.norm(real[:, None] - real[None], axis=-1)
    dgg = np.linalg.norm(gen[:, None] - gen[None], axis=-1)
    drg = np.linalg.norm(real[:, None] - gen[None], axis=-1)
    rr_pr = np.sort(drr, axis=1)[:, k_pr]  # column 0 is the point itself
    rr_dc = np.sort(drr, axis=1)[:, k_dc]
    rg = np.sort(dgg, axis=1)[:, k_pr]
    return {
        "precision": np.mean((drg <= rr_pr[:, None]).any(axis=0)),
        "recall": np.mean((drg <= rg[None, :]).any(axis=1)),
        "density": (drg < rr_dc[:, None]).sum() / (k_dc * len(gen)),
        "coverage": np.mean(drg.min(axis=1) < rr_dc),
    }


def test_hand_computed_one_dimensional_case():
    # k = 1. Real {0, 1, 3, 4}: radii 1, 1, 1, 1. Generated {0.4, 0.6, 4, 7}: radii .2, .2, 3, 3.
    # precision (<=): 0.4, 0.6, 4 lie in a real ball, 7 does not                -> 3/4
    # recall (<=): 0 is in no generated ball; 1 sits on the edge of [1, 7]; 3, 4 inside -> 3/4
    # density (<): 0.4 and 0.6 are in the balls of 0 and 1; 4 only in its own twin's
    #              (|4 - 3| = 1 is not < 1); 7 in none                         -> 5 / 4
    # coverage (<): nearest fakes of 0, 1, 3, 4 are .4, .4, 1, 0 vs radius 1    -> 3/4
    real = np.array([[0.0], [1.0], [3.0], [4.0]])
    gen = np.array([[0.4], [0.6], [4.0], [7.0]])
    assert prdc(real, gen, k_pr=1, k_dc=1) == pytest.approx(
        {"precision": 0.75, "recall": 0.75, "density": 1.25, "coverage": 0.75}, abs=1e-12
    )


def test_identical_sets_score_one():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 10))
    res = prdc(x, x.copy())
    assert res["precision"] == 1.0 and res["recall"] == 1.0 and res["coverage"] == 1.0
    assert res["density"] == pytest.approx(1.0, abs=0.02)


def test_far_apart_sets_score_zero():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 6))
    y = rng.normal(size=(150, 6)) + 100.0
    assert prdc(x, y) == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_blocked_computation_matches_brute_force():
    rng = np.random.default_rng(2)
    real = rng.normal(size=(120, 3))
    gen = rng.normal(size=(90, 3)) * 1.3 + 0.4
    expected = _brute_prdc(real, gen, 3, 5)
    # 2 KB tiles force dozens of row and column blocks
    for block_bytes in (2048, 64 * 2**20):
        got = prdc(real, gen, k_pr=3, k_dc=5, block_bytes=block_bytes)
        for key in expected:
            assert got[key] == pytest.approx(expected[key], abs=1e-12), (key, block_bytes)
    assert 0 < expected["precision"] < 1 and 0 < expected["coverage"] < 1  # a non-trivial case


def test_collapsed_generator_keeps_precision_but_loses_recall_and_coverage():
    rng = np.random.default_rng(3)
    real = rng.normal(size=(500, 4))
    collapsed = rng.normal(size=(500, 4)) * 0.2  # all fakes near the real mode: realistic, not diverse
    res = prdc(real, collapsed)
    assert res["precision"] > 0.9
    assert res["recall"] < 0.3 and res["coverage"] < 0.5


def test_wrappers_return_their_quantities():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(50, 2)).astype(np.float32)
    y = rng.normal(size=(40, 2)).astype(np.float32)
    assert set(precision_recall(x, y)) == {"precision", "recall"}
    assert set(density_coverage(x, y)) == {"density", "coverage"}


def test_bad_inputs_raise_facelib_error():
    rng = np.random.default_rng(5)
    with pytest.raises(FacelibError, match="more than 3"):
        prdc(rng.normal(size=(3, 2)), rng.normal(size=(10, 2)), k_pr=3, k_dc=3)
    with pytest.raises(FacelibError, match="recall needs more than"):
        precision_recall(rng.normal(size=(10, 2)), rng.normal(size=(3, 2)))
    with pytest.raises(FacelibError, match="dimension"):
        prdc(rng.normal(size=(10, 2)), rng.normal(size=(10, 3)))
    with pytest.raises(FacelibError, match="unknown prdc"):
        prdc(rng.normal(size=(10, 2)), rng.normal(size=(10, 2)), want=("fidelity",))
