"""Detectors for unseen generators: frequency spectra (known answers), the linear probe (learning,
calibration, save/load, refusals), leave-one-generator-out (nothing of the held-out generator
reaches training), generator files as runs, and the shipped detector behind `detect`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from facelib.errors import FacelibError


@pytest.fixture(scope="module")
def faces32(cache32):
    from facelib.data.cache import FaceCache

    return np.asarray(FaceCache.open(cache32).images)


def _smoothed(faces, side=16):
    """Real faces with a lower-resolution history: what a generator that upsamples looks like."""
    from facelib.detector import resize_history

    return np.stack([resize_history(f, side) for f in faces])


class FakeGenerator:
    """A run-like generator: real faces through a fixed corruption, drawn by seed."""

    def __init__(self, faces, corrupt, name):
        self.faces, self.corrupt, self.path = faces, corrupt, name
        self.resolution = faces.shape[1]

    def generate(self, n, seed=0, attrs=None, batch_size=256):
        rows = np.random.default_rng(seed).choice(len(self.faces), n, replace=True)
        return self.corrupt(self.faces[rows])


# -- spectra ------------------------------------------------------------------------------------

@pytest.mark.parametrize("k", [1, 5, 11, 16])
def test_a_cosine_puts_its_power_in_its_own_frequency_bin(k):
    from facelib.detector.spectrum import azimuthal_spectrum

    size = 32
    x = np.arange(size)
    wave = 127.5 + 100 * np.cos(2 * np.pi * k * x / size)
    img = np.repeat(np.repeat(wave[None, :, None], size, 0), 3, 2).round().astype(np.uint8)
    spec = azimuthal_spectrum(img[None])
    assert spec.shape == (1, 3, size // 2 + 1)
    assert int(np.argmax(spec[0, 0])) == k
    assert np.allclose(spec[0, 0], spec[0, 2])  # grey: every channel alike


def test_spectra_ignore_brightness_and_contrast_and_see_smoothing(faces32):
    from facelib.detector.spectrum import azimuthal_spectrum, mean_spectra

    x = faces32[:20]
    dim = np.clip(x.astype(np.float64) * 0.5 + 20, 0, 255).astype(np.uint8)
    a, b = azimuthal_spectrum(x), azimuthal_spectrum(dim)
    assert np.max(np.abs(a[:, :, 1:] - b[:, :, 1:])) < 0.15  # only quantisation differs
    # enlarging from 16 px empties the top octave: under half the power above frequency 9
    smooth = mean_spectra(_smoothed(x))
    assert np.all(smooth[10:] < mean_spectra(x)[10:] - 0.3)
    assert np.all(np.abs(smooth[:4] - mean_spectra(x)[:4]) < 0.1)  # and keeps the low ones
    with pytest.raises(FacelibError, match="square"):
        azimuthal_spectrum(np.zeros((1, 32, 40, 3), np.uint8))


def test_spectrum_network_refuses_other_sizes():
    from facelib.detector.spectrum import SpectrumNetwork

    net = SpectrumNetwork(32)
    assert net.dim == 3 * 17 and "32px" in net.id
    assert net(np.zeros((2, 32, 32, 3), np.uint8)).shape == (2, 51)
    with pytest.raises(FacelibError, match="resize them first"):
        net(np.zeros((2, 64, 64, 3), np.uint8))


# -- augmentation -------------------------------------------------------------------------------

def test_resize_history_augmentation_smooths_and_keeps_the_old_draws(faces32):
    from facelib.detector import augment_batch, high_frequency_energy

    x = faces32[:32]
    plain = augment_batch(x, np.random.default_rng(3), blur_prob=0, jpeg_prob=0)
    same = augment_batch(x, np.random.default_rng(3), blur_prob=0, jpeg_prob=0, resize_prob=0.0)
    assert np.array_equal(plain, same)  # off by default: the original recipe's draws
    resized = augment_batch(x, np.random.default_rng(3), blur_prob=0, jpeg_prob=0,
                            resize_prob=1.0, resize_scale=(0.5, 0.6))
    assert high_frequency_energy(resized) < 0.6 * high_frequency_energy(plain)


# -- the probe ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def probe(faces32):
    from facelib.detector import fit_probe

    real, valid = faces32[:300], faces32[400:450]
    fakes = [_smoothed(faces32[300:350], 16), _smoothed(faces32[350:400], 20)]
    return fit_probe(real, fakes, features=["spectrum"], resolution=32, valid_real=valid,
                     real_accuracy=0.9, cache_dir=False)


def test_probe_learns_a_lower_resolution_history_and_is_calibrated(probe, faces32):
    from facelib.detector import evaluate

    test_real = faces32[450:]
    scores = evaluate(probe, test_real, _smoothed(test_real, 18))  # a third, unseen history
    assert scores["ap"] > 0.9
    assert scores["fake_accuracy"] > 0.8
    # the threshold puts 90 % of the valid real faces below 0.5: about that on other real faces
    assert scores["real_accuracy"] >= 0.75
    valid_p = probe.predict_proba(faces32[400:450])
    assert np.isclose(np.mean(valid_p < 0.5), 0.9, atol=0.03)
    assert probe.meta["calibration"]["n_valid_real"] == 50


def test_probe_save_load_and_any_input_size(probe, faces32, tmp_path):
    from facelib.detector import ProbeDetector, load_detector

    p1 = probe.predict_proba(faces32[:16])
    probe.save(tmp_path / "det")
    assert json.loads((tmp_path / "det" / "meta.json").read_text())["kind"] == "probe"
    again = load_detector(tmp_path / "det")
    assert isinstance(again, ProbeDetector)
    assert np.allclose(again.predict_proba(faces32[:16]), p1, atol=1e-6)
    big = np.stack([np.kron(f, np.ones((4, 4, 1), np.uint8)) for f in faces32[:4]])  # 128 px
    assert again.predict_proba(big).shape == (4,)


def test_damaged_probe_files_are_refused_in_one_line(probe, tmp_path):
    from facelib.detector import load_detector

    probe.save(tmp_path / "det")
    (tmp_path / "det" / "probe.npz").write_bytes(b"not a zip")
    with pytest.raises(FacelibError, match="train one again") as e:
        load_detector(tmp_path / "det")
    assert "\n" not in str(e.value)
    probe.save(tmp_path / "det2")
    meta = json.loads((tmp_path / "det2" / "meta.json").read_text())
    (tmp_path / "det2" / "meta.json").write_text(json.dumps({**meta, "features": ["pixels"]}))
    with pytest.raises(FacelibError, match="not a probe detector"):
        load_detector(tmp_path / "det2")
    with pytest.raises(FacelibError, match="not a detector folder"):
        load_detector(tmp_path)


def test_distance_from_real_faces_catches_what_the_probe_never_saw(faces32, tmp_path):
    """Trained on smoothed faces only, the plain probe calls noise real (noise is sharper than any
    face: the far "real" side of its line); with the distance test it is caught, and smoothed
    faces still are."""
    from facelib.detector import evaluate, fit_probe, load_detector

    real, valid, test = faces32[:300], faces32[400:450], faces32[450:]
    fakes = [_smoothed(faces32[300:400], 16)]
    noise = np.random.default_rng(0).integers(0, 256, (50, 32, 32, 3), dtype=np.uint8)
    kw = dict(features=["spectrum"], resolution=32, valid_real=valid, cache_dir=False)
    plain = fit_probe(real, fakes, **kw)
    assert evaluate(plain, test, noise)["ap"] < 0.6
    det = fit_probe(real, fakes, distance=True, **kw)
    assert evaluate(det, test, noise)["ap"] > 0.95
    assert evaluate(det, test, _smoothed(test, 16))["ap"] > 0.9
    assert np.isclose(np.mean(det.predict_proba(valid) < 0.5), 0.97, atol=0.03)
    det.save(tmp_path / "d")
    again = load_detector(tmp_path / "d")
    assert again.real_model is not None
    np.testing.assert_allclose(again.predict_proba(noise), det.predict_proba(noise), atol=1e-6)
    with pytest.raises(FacelibError, match="needs valid_real"):
        fit_probe(real, fakes, features=["spectrum"], resolution=32, distance=True,
                  cache_dir=False)


def test_probe_refuses_unknown_features_and_bad_calibration(faces32):
    from facelib.detector import fit_probe

    with pytest.raises(FacelibError, match="use one or more of spectrum, inception"):
        fit_probe(faces32[:20], faces32[20:40], features=["pixels"], resolution=32)
    with pytest.raises(FacelibError, match="real_accuracy"):
        fit_probe(faces32[:20], faces32[20:40], features=["spectrum"], resolution=32,
                  real_accuracy=1.0)


def test_augmentation_is_keyed_by_content_not_by_position(faces32):
    """A generator's faces draw the same augmentation wherever they come in the list: refits on
    other generator subsets (leave-one-generator-out) reuse cached features."""
    from facelib.detector import face_features

    a, b = faces32[:40], faces32[40:80]
    ab = face_features([a, b], ["spectrum"], 32, augment=True, seed=[0, 1], cache_dir=False)
    ba = face_features([b, a], ["spectrum"], 32, augment=True, seed=[0, 1], cache_dir=False)
    assert np.array_equal(ab[:40], ba[40:]) and np.array_equal(ab[40:], ba[:40])
    plain = face_features([a], ["spectrum"], 32, augment=False, cache_dir=False)
    assert not np.allclose(plain, ab[:40])  # the augmentation did change the faces


# -- leave one generator out --------------------------------------------------------------------

def test_leave_one_generator_out_never_trains_on_the_held_out_generator(cache32, faces32):
    from facelib.detector import leave_one_generator_out, summarize
    from facelib.detector.validation import probe_recipe

    gens = {"smooth16": [FakeGenerator(faces32[:400], lambda x: _smoothed(x, 16), "s16")],
            "smooth20": [FakeGenerator(faces32[:400], lambda x: _smoothed(x, 20), "s20")],
            "noisy": [FakeGenerator(faces32[:400], lambda x: np.clip(
                x.astype(int) + np.random.default_rng(0).integers(-40, 41, x.shape), 0, 255
            ).astype(np.uint8), "noise")]}
    seen = []
    fit = probe_recipe(["spectrum"], 32, cache_dir=False)

    def spy(real, fakes, valid_real, valid_fakes, seed=0):
        seen.append({gens_name(f) for f in fakes} | {gens_name(f) for f in valid_fakes})
        return fit(real, fakes, valid_real, valid_fakes, seed=seed)

    def gens_name(x):  # which corruption made these faces (their spectra tell)
        hf = np.mean(np.abs(np.diff(x.astype(float), axis=2)))
        return "noisy" if hf > 30 else "smooth"

    rows = leave_one_generator_out(cache32, gens, {"spectrum": spy}, n_real=200, n_fake=60,
                                   n_valid=40, n_test=40, log=None)
    assert [r["held_out"] for r in rows] == ["smooth16", "smooth20", "noisy"]
    assert seen[2] == {"smooth"}  # noisy held out: only smoothed faces in training
    assert "noisy" in seen[0] and "noisy" in seen[1]
    assert all(0 <= r["ap"] <= 1 and r["n_real"] == 40 and r["n_fake"] == 40 for r in rows)
    summary = summarize(rows)["spectrum"]
    assert summary["min_ap"] == min(r["ap"] for r in rows) and summary["splits"] == 3
    with pytest.raises(FacelibError, match="at least two generator families"):
        leave_one_generator_out(cache32, {"one": gens["noisy"]}, {"spectrum": spy}, log=None)


# -- generators saved alone ---------------------------------------------------------------------

def test_a_generator_keras_file_opens_as_a_run(tmp_path):
    import keras

    from facelib.run.interface import GeneratorFile, open_run

    z = keras.Input((8,))
    x = keras.layers.Dense(4 * 4 * 3, activation="tanh")(z)
    gen = keras.Model(z, keras.layers.Reshape((4, 4, 3))(x))
    gen.save(tmp_path / "g.keras")
    run = open_run(str(tmp_path / "g.keras"))
    assert isinstance(run, GeneratorFile) and run.resolution == 4 and run.latent_dim == 8
    a, b = run.generate(5, seed=1), run.generate(5, seed=1)
    assert a.dtype == np.uint8 and a.shape == (5, 4, 4, 3) and np.array_equal(a, b)
    assert not np.array_equal(a, run.generate(5, seed=2))
    y = keras.Input((2,))
    cond = keras.Model([z, y], keras.layers.Concatenate()([z, y]))
    cond.save(tmp_path / "c.keras")
    with pytest.raises(FacelibError, match="conditional"):
        open_run(str(tmp_path / "c.keras"))
    (tmp_path / "bad.keras").write_bytes(b"nope")
    with pytest.raises(FacelibError, match="could not be loaded as a generator"):
        open_run(str(tmp_path / "bad.keras"))
