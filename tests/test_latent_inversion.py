"""Inversion: photo checks and cropping, error measures, optimisation, the encoder initialiser,
conditional runs and held-out evaluation."""

import copy
import shutil

import numpy as np
import pytest

from facelib.errors import FacelibError
from facelib.latent.align import load_face
from facelib.latent.inversion import (
    evaluate_inversion, invert, invert_file, load_encoder, reconstruction_errors, train_encoder,
)
from helpers import boosted_run




@pytest.fixture(scope="module")
def run(tiny_run, tmp_path_factory):
    # a private copy: the encoder test writes RUN/encoder, which init="auto" would pick up
    folder = shutil.copytree(tiny_run, tmp_path_factory.mktemp("inv") / "run",
                             ignore=shutil.ignore_patterns("tensorboard", "samples"))
    return boosted_run(folder)


def _encode(img, ext=".png"):
    import cv2

    ok, buf = cv2.imencode(ext, np.ascontiguousarray(img[..., ::-1]))
    assert ok
    return buf.tobytes()


# -- input photos ------------------------------------------------------------------------------

def test_load_face_crops_celeba_shapes_like_the_training_data(tmp_path):
    from facelib.images import process_image

    rng = np.random.default_rng(0)
    celeba = rng.integers(0, 256, (218, 178, 3), dtype=np.uint8)
    path = tmp_path / "face.png"
    path.write_bytes(_encode(celeba))
    np.testing.assert_array_equal(load_face(path, 32), process_image(celeba, 32, "celeba"))
    half = celeba[::2, ::2]  # the 89x109 copy: same frame, other scale
    assert load_face(_encode(half), 32).shape == (32, 32, 3)
    square = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    np.testing.assert_array_equal(load_face(square, 64), square)
    import cv2

    gray = rng.integers(0, 256, (64, 64), dtype=np.uint8)
    png = cv2.imencode(".png", gray)[1].tobytes()  # a 1-channel file decodes to RGB
    np.testing.assert_array_equal(load_face(png, 64), np.repeat(gray[..., None], 3, axis=2))


def test_load_face_rejects_what_cannot_be_an_aligned_face(tmp_path):
    with pytest.raises(FacelibError, match="not a readable image.*aligned"):
        load_face(b"definitely not a jpeg", 32)
    with pytest.raises(FacelibError, match="no such image file"):
        load_face(tmp_path / "missing.jpg", 32)
    wide = np.zeros((100, 300, 3), np.uint8)
    with pytest.raises(FacelibError, match="300x100.*neither square nor CelebA.*landmark"):
        load_face(_encode(wide), 32)
    with pytest.raises(FacelibError, match="too small"):
        load_face(np.zeros((20, 20, 3), np.uint8), 32)
    with pytest.raises(FacelibError, match="too small"):
        load_face(np.zeros((40, 40, 3), np.uint8), 128)


def test_reconstruction_errors_known_answers():
    a = np.full((2, 4, 4, 3), 100, np.uint8)
    b = a.copy()
    b[1] += 51  # 0.2 on the [0, 1] scale
    mse, psnr = reconstruction_errors(a, b)
    np.testing.assert_allclose(mse, [0.0, 0.04], atol=1e-12)
    assert psnr[0] == np.inf and psnr[1] == pytest.approx(10 * np.log10(25))


# -- optimisation ------------------------------------------------------------------------------

@pytest.mark.slow
def test_inversion_lowers_the_loss_and_reports_errors(run):
    targets = run.generate(3, seed=42)
    result = invert(run, targets, steps=25, init="random", features="discriminator")
    assert result.z.shape == (3, run.latent_dim) and result.init == "random"
    assert result.reconstructions.shape == targets.shape
    np.testing.assert_array_equal(result.targets, targets)
    assert np.all(result.final_loss < 0.7 * result.initial_loss)
    assert len(result.history) == 25 and result.history[-1] < result.history[0]
    mse, psnr = reconstruction_errors(targets, result.reconstructions)
    np.testing.assert_allclose(result.mse, mse)
    np.testing.assert_allclose(result.psnr, psnr)
    assert set(result.summary()) >= {"mse", "psnr_db", "initial_loss", "final_loss"}
    fixed = invert(run, targets[:1], steps=3, init="search", features="fixed", pixel="l1")
    assert fixed.init == "search" and fixed.final_loss[0] <= fixed.initial_loss[0]


def test_bad_inversion_arguments(run):
    faces = run.generate(1)
    with pytest.raises(FacelibError, match="init="):
        invert(run, faces, steps=1, init="magic")
    with pytest.raises(FacelibError, match="shape"):
        invert(run, faces, steps=1, init=np.zeros((2, run.latent_dim)))
    with pytest.raises(FacelibError, match="pixel"):
        invert(run, faces, steps=1, pixel="l3")
    elsewhere = copy.copy(run)  # same generator, a folder without an encoder
    elsewhere.path = run.path.parent / "nowhere"
    with pytest.raises(FacelibError, match="no encoder"):
        invert(elsewhere, faces, init="encoder")
    with pytest.raises(FacelibError, match="square RGB"):
        invert(run, np.zeros((2, 32, 20, 3), np.uint8))


@pytest.mark.slow
def test_encoder_init_lowers_the_starting_loss(run):
    encoder = train_encoder(run, steps=150, batch_size=32, seed=0)
    assert (run.path / "encoder" / "encoder.weights.h5").exists()
    loaded = load_encoder(run)
    targets = run.generate(6, seed=7)
    from facelib.latent.inversion import encode

    np.testing.assert_allclose(encode(loaded, targets), encode(encoder, targets), atol=1e-5)
    start = {init: invert(run, targets, steps=0, init=init).initial_loss.mean()
             for init in ("random", "zeros", "search", "encoder")}
    assert start["encoder"] < start["random"] and start["encoder"] < start["search"]
    assert invert(run, targets, steps=0).init == "encoder"  # "auto" uses the saved encoder


@pytest.mark.slow
def test_conditional_inversion_holds_the_attributes(tiny_conditional_run, tmp_path):
    crun = boosted_run(tiny_conditional_run)
    attrs = crun.sample_attributes(2, {"Smiling": 1}, seed=3)
    targets = (crun.synthesize(crun.sample_latents(2, seed=9), attrs) * 127.5 + 127.5).round()
    result = invert(crun, targets.astype(np.uint8), attrs=attrs, steps=10, init="search")
    np.testing.assert_array_equal(result.attrs, attrs)
    assert result.final_loss.mean() < result.initial_loss.mean()
    face = tmp_path / "f.png"
    face.write_bytes(_encode(result.targets[0]))
    one = invert_file(crun, face, attrs={"Male": 0}, steps=2)
    assert one.attrs.shape == (1, 40) and one.attrs[0, crun.attribute_names.index("Male")] == 0


def test_evaluate_on_held_out_real_faces(run, cache32):
    report = evaluate_inversion(run, cache32, n=4, steps=5, features="none")
    assert report["n"] == 4 and report["split"] == "heldout"
    assert 0 < report["mse"] < 1 and report["psnr_db"] > 0
    from facelib.data.cache import FaceCache

    cache = FaceCache.open(cache32)
    held = set(np.flatnonzero(cache.partition != 0).tolist())
    targets = report["result"].targets
    rows = [i for i in range(len(cache))
            if any(np.array_equal(cache.images[i], t) for t in targets)]
    assert rows and set(rows) <= held  # never a training face
    with pytest.raises(FacelibError, match="never the training split"):
        evaluate_inversion(run, cache32, n=2, steps=1, split="train")
