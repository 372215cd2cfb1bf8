"""The metric registry: names map to the metric functions and results merge into one dict."""

import numpy as np
import pytest

from facelib.errors import FacelibError
from facelib.metrics import registry
from facelib.metrics.fid import fid_from_features
from facelib.metrics.kid import kid
from facelib.metrics.prdc import prdc


@pytest.fixture(scope="module")
def features():
    rng = np.random.default_rng(0)
    return rng.normal(size=(400, 6)), rng.normal(size=(300, 6)) * 1.2 + 0.3


def test_compute_returns_one_flat_dict_matching_the_functions(features):
    real, gen = features
    out = registry.compute(["fid", "kid", "pr", "dc", "ndb"], real, gen, options={"kid": {"num_subsets": 7}})
    assert set(out) == {"fid", "kid", "kid_std", "kid_subset_size", "precision", "recall", "density", "coverage",
                        "ndb", "ndb_k", "ndb_js"}
    assert out["fid"] == pytest.approx(fid_from_features(real, gen))
    assert (out["kid"], out["kid_std"]) == pytest.approx(tuple(kid(real, gen, num_subsets=7)))
    both = prdc(real, gen)
    for key in both:
        assert out[key] == pytest.approx(both[key])
    assert registry.compute("prdc", real, gen) == pytest.approx(both)
    assert out["ndb_k"] == pytest.approx(out["ndb"] / 20)  # default K = 400 // 20 real samples
    assert all(isinstance(v, (int, float)) for v in out.values())


def test_unknown_names_and_options_are_user_errors(features):
    real, gen = features
    with pytest.raises(FacelibError, match="available: .*fid"):
        registry.compute(["fid", "inception_score"], real, gen)
    with pytest.raises(FacelibError, match="no option"):
        registry.compute(["kid"], real, gen, options={"kid": {"subsets": 3}})


def test_register_adds_a_metric():
    @registry.register("mean_gap")
    def _mean_gap(real, gen):
        return {"mean_gap": float(np.abs(real.mean() - gen.mean()))}

    try:
        assert "mean_gap" in registry.available()
        assert registry.compute(["mean_gap"], np.zeros((2, 1)), np.ones((3, 1))) == {"mean_gap": 1.0}
        with pytest.raises(ValueError, match="already registered"):
            registry.register("mean_gap")(_mean_gap)
    finally:
        del registry.METRICS["mean_gap"]
