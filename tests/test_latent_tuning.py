"""Pivotal tuning (facelib.latent.tune_generator, PivotalTuner): the tuned copy draws the photo,
the run is left alone, a reused tuner is a fresh one, the locality term holds the rest of the
generator, edits work with the copy, bad input is refused in one line."""

import numpy as np
import pytest

from facelib.errors import FacelibError
from facelib.images import to_uint8
from facelib.latent import (PivotalTuner, edit_attributes, invert, reconstruction_errors,
                            tune_generator)
from facelib.latent.inversion import heldout_faces


@pytest.fixture(scope="module")
def inverted(run, cache32):
    faces, _ = heldout_faces(cache32, 2, seed=1)  # real faces the run never trained on
    return invert(run, faces, steps=5, init="search", features="none", seed=0)


def _drift(tuned, run, n=64):
    """Mean squared pixel difference between the tuned and the untuned generator on fresh
    latents (far from the pivots)."""
    z = run.sample_latents(n, seed=123)
    return float(np.mean((tuned.synthesize(z) - run.synthesize(z)) ** 2))


@pytest.mark.slow
def test_tuning_draws_the_real_photo_and_leaves_the_run_alone(run, inverted):
    weights = [w.copy() for w in run.generator.get_weights()]
    z = run.sample_latents(4, seed=5)
    before = run.synthesize(z)
    tuned = tune_generator(run, inverted, steps=40, lr=1e-3, features="none")
    info = tuned.tuning
    assert info["steps"] == 40 and info["faces"] == 2 and len(info["history"]) == 40
    assert info["history"][-1] < 0.5 * info["history"][0]
    assert info["psnr_db"] > info["psnr_db_before"] + 3  # the photo, not the closest face
    recon = to_uint8(tuned.synthesize(inverted.z))
    np.testing.assert_allclose(reconstruction_errors(inverted.targets, recon)[1].mean(),
                               info["psnr_db"])
    for w, w0 in zip(run.generator.get_weights(), weights):
        np.testing.assert_array_equal(w, w0)  # the run's own generator is not touched
    np.testing.assert_array_equal(run.synthesize(z), before)
    assert tuned.generator is not run.generator and run.tuning is None
    assert tuned.path == run.path and tuned.step == run.step


def test_zero_steps_is_the_untuned_generator(run, inverted):
    tuned = tune_generator(run, inverted, steps=0)
    z = run.sample_latents(3, seed=2)
    np.testing.assert_array_equal(tuned.synthesize(z), run.synthesize(z))
    assert tuned.tuning["psnr_db"] == tuned.tuning["psnr_db_before"]
    np.testing.assert_allclose(tuned.tuning["psnr_db"], inverted.psnr.mean())


@pytest.mark.slow
def test_locality_term_holds_the_generator_away_from_the_pivot(run, inverted):
    loose = tune_generator(run, inverted, steps=30, lr=1e-3, features="none",
                           locality_weight=0)
    held = tune_generator(run, inverted, steps=30, lr=1e-3, features="none",
                          locality_weight=10, locality_mix=1.0, locality_samples=8)
    assert _drift(held, run) < 0.5 * _drift(loose, run)
    assert held.tuning["psnr_db"] > held.tuning["psnr_db_before"]  # it still fits the photo
    again = tune_generator(run, inverted, steps=30, lr=1e-3, features="none",
                           locality_weight=10, locality_mix=1.0, locality_samples=8)
    for a, b in zip(again.generator.get_weights(), held.generator.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-6)  # seeded: the same weights


@pytest.mark.slow
def test_a_reused_tuner_is_a_fresh_one_traced_once(run, inverted):
    """PivotalTuner resets its copy, Adam and the best-weights record before each photo: the
    second photo's weights are those a fresh tune_generator gives, the step is traced once, and
    the first result keeps its own weights."""
    settings = dict(lr=1e-3, features="none", locality_weight=1.0)
    tuner = PivotalTuner(run, **settings)
    first = tuner(inverted.select([1]), steps=15, seed=1)
    kept = [w.copy() for w in first.generator.get_weights()]
    second = tuner(inverted.select([0]), steps=15, seed=0)
    fresh = tune_generator(run, inverted.select([0]), steps=15, seed=0, **settings)
    assert tuner.traces == 1
    for a, b in zip(second.generator.get_weights(), fresh.generator.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-6)
    assert second.tuning == fresh.tuning
    for a, b in zip(first.generator.get_weights(), kept):
        np.testing.assert_array_equal(a, b)  # not the working copy the second call trained
    assert any(np.abs(a - b).max() > 1e-4 for a, b in
               zip(first.generator.get_weights(), second.generator.get_weights()))
    with pytest.raises(FacelibError, match="positive learning rate"):
        PivotalTuner(run, lr=-1.0)


@pytest.mark.slow
def test_conditional_edits_work_with_the_tuned_copy(crun, cache32):
    faces, labels = heldout_faces(cache32, 2, seed=3)
    r = invert(crun, faces, attrs=labels, steps=3, init="search", features="none")
    one = r.select([1])
    assert one.z.shape == (1, crun.latent_dim) and one.targets.shape == (1, 32, 32, 3)
    np.testing.assert_array_equal(one.attrs, r.attrs[1:])
    tuned = tune_generator(crun, one, steps=20, lr=1e-3, features="none")
    assert tuned.tuning["psnr_db"] > tuned.tuning["psnr_db_before"]
    recon = edit_attributes(tuned, one, {})  # no change: the tuned reconstruction
    np.testing.assert_array_equal(recon, to_uint8(tuned.synthesize(one.z, one.attrs)))
    flipped = one.attrs.copy()
    flipped[:, :] = 1 - flipped  # every attribute flipped: the copy still reads its input
    assert np.abs(tuned.synthesize(one.z, flipped, extrapolate=True)
                  - tuned.synthesize(one.z, one.attrs)).max() > 0
    assert edit_attributes(tuned, one, {"Smiling": 1}, strength=2).shape == recon.shape
    with pytest.raises(FacelibError, match="needs the attribute rows"):
        tune_generator(crun, type("R", (), {"z": one.z, "targets": one.targets})(), steps=1)


def test_bad_tuning_requests_name_the_fix(run, inverted):
    cases = [({"steps": -1}, "steps=-1: give a whole number"),
             ({"steps": 2.5}, "steps=2.5"),
             ({"lr": 0.0}, "positive learning rate"),
             ({"locality_weight": -1.0}, "locality_weight=-1.0"),
             ({"locality_mix": 0.0}, r"share in \(0, 1\]"),
             ({"locality_samples": 0}, "locality_samples=0"),
             ({"pixel": "l3"}, "pixel='l3'"),
             ({"features": "lpips"}, "features='lpips'")]
    for kwargs, message in cases:
        with pytest.raises(FacelibError, match=message):
            tune_generator(run, inverted, **kwargs)
    with pytest.raises(FacelibError, match="invert the photos with facelib.latent.invert"):
        tune_generator(run, object())
    wrong = inverted.select([0])
    wrong.z = np.zeros((1, run.latent_dim + 1), np.float32)
    with pytest.raises(FacelibError, match="invert the photos into this run"):
        tune_generator(run, wrong)
    small = inverted.select([0])
    small.targets = np.zeros((1, 16, 16, 3), np.uint8)
    with pytest.raises(FacelibError, match="draws 32x32"):
        tune_generator(run, small)


@pytest.mark.parametrize("architecture", ["dcgan", "resnet"])
@pytest.mark.parametrize("conditional", [False, True])
def test_every_architecture_tunes(architecture, conditional, tmp_path):
    """The tuned copy is a clone of whatever generator the run has (custom layers included:
    conditional BatchNorm, residual blocks), and tuning moves it towards the target."""
    from facelib.config import Config
    from facelib.data.celeba import ATTRIBUTE_NAMES
    from facelib.latent.inversion import InversionResult
    from facelib.models import build_generator
    from facelib.run.interface import Run

    config = Config(architecture=architecture, resolution=32, conditional=conditional)
    prior = (np.eye(40, dtype=np.float32)[:4], np.ones(4)) if conditional else None
    run = Run(tmp_path, config, build_generator(config), 0, tmp_path, list(ATTRIBUTE_NAMES),
              prior)
    z = run.sample_latents(1, seed=0)
    attrs = run.sample_attributes(1, seed=0) if conditional else None
    target = to_uint8(np.clip(run.synthesize(z, attrs) + 0.2, -1, 1))  # a brighter face
    start = InversionResult(z, attrs, target, to_uint8(run.synthesize(z, attrs)), np.zeros(1),
                            np.zeros(1))
    tuned = tune_generator(run, start, steps=20, lr=1e-4, features="none")
    assert tuned.tuning["psnr_db"] > tuned.tuning["psnr_db_before"] + 3
    # a step size that throws the untrained network off (its loss jumps after one step) gives
    # back the best weights seen: the start
    wild = tune_generator(run, start, steps=5, lr=0.1, features="none")
    assert max(wild.tuning["history"][1:]) > wild.tuning["history"][0]
    assert wild.tuning["psnr_db"] == pytest.approx(wild.tuning["psnr_db_before"])
