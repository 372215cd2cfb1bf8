"""The real-vs-synthetic detector: augmentation, learning, save/load, evaluation, the CLI."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from facelib.errors import FacelibError


@pytest.fixture(scope="module")
def real32(cache32):
    from facelib.data.cache import FaceCache

    return np.asarray(FaceCache.open(cache32).images[:64])


def _cli(argv, capsys, monkeypatch):
    """Run the real CLI entry point (error handling included) with only this module's verbs, so
    the test does not depend on other verbs' modules."""
    from facelib import cli

    monkeypatch.setattr(cli, "COMMANDS", {"train-detector": "facelib.commands.train_detector",
                                          "detect": "facelib.commands.detect"})
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# -- augmentation ---------------------------------------------------------------------------

def test_blur_lowers_high_frequency_energy(real32):
    from facelib.detector import gaussian_blur, high_frequency_energy, perturb

    e0 = high_frequency_energy(real32)
    e1 = high_frequency_energy(perturb(real32, "blur1"))
    e2 = high_frequency_energy(perturb(real32, "blur2"))
    assert e2 < e1 < 0.5 * e0
    assert np.array_equal(gaussian_blur(real32[0], 0.0), real32[0])
    # A flat image has no detail to lose: blur leaves it as it is.
    flat = np.full((32, 32, 3), 77, np.uint8)
    assert np.array_equal(gaussian_blur(flat, 2.0), flat)


def test_jpeg_changes_pixels_and_lower_quality_changes_more(real32):
    from facelib.detector import jpeg_compress

    x = real32[:8]
    errs = []
    for q in (95, 75, 30):
        y = np.stack([jpeg_compress(img, q) for img in x])
        assert y.shape == x.shape and y.dtype == np.uint8
        errs.append(np.abs(y.astype(int) - x.astype(int)).mean())
    assert 0 < errs[0] < errs[1] < errs[2]


def test_augmentation_is_deterministic_given_the_seed_and_follows_the_probabilities(real32):
    from facelib.detector import augment_batch

    x = np.concatenate([real32] * 3)  # 192 faces
    a = augment_batch(x, np.random.default_rng(3))
    b = augment_batch(x, np.random.default_rng(3))
    c = augment_batch(x, np.random.default_rng(4))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.array_equal(x, np.concatenate([real32] * 3))  # the input is not modified
    none = augment_batch(x, np.random.default_rng(0), blur_prob=0, jpeg_prob=0, flip=False)
    assert np.array_equal(none, x)
    # Blur alone with p=0.5 (sigma >= 0.5 so every blurred face changes): about half change.
    blurred = augment_batch(x, np.random.default_rng(5), blur_prob=0.5, blur_sigma=(0.5, 3.0),
                            jpeg_prob=0, flip=False)
    changed = np.any(blurred != x, axis=(1, 2, 3)).mean()
    assert 0.35 < changed < 0.65
    # JPEG alone with p=1 changes every face.
    jpg = augment_batch(x[:16], np.random.default_rng(6), blur_prob=0, jpeg_prob=1, flip=False)
    assert np.all(np.any(jpg != x[:16], axis=(1, 2, 3)))


def test_training_batches_are_reproducible_and_augmented(real32):
    from facelib.detector import make_training_dataset

    labels = np.arange(len(real32)) % 2
    ds1 = list(make_training_dataset(real32, labels, 16, seed=1, augment=True, epochs=1))
    ds2 = list(make_training_dataset(real32, labels, 16, seed=1, augment=True, epochs=1))
    plain = list(make_training_dataset(real32, labels, 16, seed=1, augment=False, epochs=1))
    assert len(ds1) == 4
    for (x1, y1), (x2, y2), (xp, yp) in zip(ds1, ds2, plain):
        assert x1.shape == (16, 32, 32, 3) and y1.shape == (16, 1)
        assert np.array_equal(x1.numpy(), x2.numpy()) and np.array_equal(y1.numpy(), yp.numpy())
        assert -1.0 <= float(x1.numpy().min()) and float(x1.numpy().max()) <= 1.0
    assert not all(np.array_equal(a[0].numpy(), b[0].numpy()) for a, b in zip(ds1, plain))
    with pytest.raises(FacelibError, match="fewer than one batch"):
        make_training_dataset(real32[:4], labels[:4], 16)


# -- alignment ------------------------------------------------------------------------------

def test_align_face_resizes_squares_crops_celeba_portraits_and_refuses_others(tmp_path):
    from facelib.detector import read_face
    from facelib.images import align_face, process_image, write_image

    rng = np.random.default_rng(0)
    square = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert align_face(square, 32).shape == (32, 32, 3)
    portrait = rng.integers(0, 256, (109, 89, 3), dtype=np.uint8)  # celeba-8k's size
    assert np.array_equal(align_face(portrait, 32), process_image(portrait, 32, "celeba"))
    with pytest.raises(FacelibError, match="neither square"):
        align_face(rng.integers(0, 256, (40, 120, 3), dtype=np.uint8), 32)
    with pytest.raises(FacelibError, match="too small for 32 px"):
        align_face(square[:20, :20], 32)
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(FacelibError, match="not a readable image"):
        read_face(tmp_path / "notes.txt", 32)
    with pytest.raises(FacelibError, match="no such file"):
        read_face(tmp_path / "missing.png", 32)
    write_image(tmp_path / "face.png", square)
    assert read_face(tmp_path / "face.png", 32).shape == (32, 32, 3)


# -- training, saving, evaluating -----------------------------------------------------------

@pytest.fixture(scope="module")
def detector_dir(tmp_path_factory, cache32, tiny_run):
    """A detector trained through the CLI on the sample's real faces vs the tiny run's faces."""
    from facelib import cli

    out = tmp_path_factory.mktemp("detector") / "det"
    saved = dict(cli.COMMANDS)
    cli.COMMANDS.clear()
    cli.COMMANDS["train-detector"] = "facelib.commands.train_detector"
    try:
        code = cli.main(["train-detector", "--data", str(cache32), "--runs", str(tiny_run),
                         "--out", str(out), "--epochs", "2", "--width", "16", "--batch-size", "32",
                         "--n-test", "50", "--test-runs", f"{tiny_run}@step-00000003"])
    finally:
        cli.COMMANDS.clear()
        cli.COMMANDS.update(saved)
    assert code == 0
    return out


@pytest.mark.slow
def test_detector_separates_real_faces_from_a_tiny_generator(detector_dir, cache32, tiny_run):
    import facelib
    from facelib.detector import Detector, evaluate, real_faces

    det = Detector.load(detector_dir)
    real = real_faces(cache32, "test")
    fake = facelib.load_run(tiny_run).generate(len(real), seed=424242)
    res = evaluate(det, real, fake)
    assert res["ap"] > 0.9 and res["accuracy"] > 0.8
    assert res["n_real"] == len(real) == 50
    meta = json.loads((detector_dir / "meta.json").read_text())
    assert meta["resolution"] == 32
    assert [r["path"] for r in meta["runs"]] == [str(tiny_run)] and meta["runs"][0]["step"] == 6
    assert meta["augment"]["blur_prob"] == 0.5 and meta["augment"]["jpeg_quality"] == [30, 100]
    assert len(meta["history"]) == 2 and meta["best_epoch"] in (1, 2)
    report = json.loads((detector_dir / "report.json").read_text())
    assert set(report["generators"]) == {"seen: tiny@6", "unseen: tiny@3"}
    assert set(report["robustness"]) == {"seen", "unseen"}


def test_save_load_gives_identical_predictions(detector_dir, real32, tmp_path):
    from facelib.detector import Detector

    det = Detector.load(detector_dir)
    p1 = det.predict_proba(real32)
    det.save(tmp_path / "copy")
    p2 = Detector.load(tmp_path / "copy").predict_proba(real32)
    assert p1.shape == (64,) and p1.dtype == np.float32
    assert np.array_equal(p1, p2)
    assert np.all((p1 >= 0) & (p1 <= 1))
    # float [-1, 1] input and larger faces (resized) are accepted too.
    from facelib.images import to_float

    assert np.allclose(det.predict_proba(to_float(real32)), p1, atol=1e-6)
    big = np.repeat(np.repeat(real32[:4], 2, axis=1), 2, axis=2)
    assert det.predict_proba(big).shape == (4,)
    with pytest.raises(FacelibError, match="not a detector folder"):
        Detector.load(tmp_path)


@pytest.mark.slow
def test_robustness_and_ap_by_step_reports(detector_dir, cache32, tiny_run):
    import facelib
    from facelib.detector import PERTURBATIONS, Detector, ap_by_step, real_faces, robustness

    det = Detector.load(detector_dir)
    real = real_faces(cache32, "test", n=32)
    fake = facelib.load_run(tiny_run).generate(32, seed=7)
    table = robustness(det, real, fake)
    assert set(table) == set(PERTURBATIONS) == {"clean", "jpeg90", "jpeg75", "jpeg50", "blur1",
                                                 "blur2", "resize0.5"}
    for row in table.values():
        assert set(row) >= {"accuracy", "real_accuracy", "fake_accuracy", "ap", "n_real", "n_fake"}
        assert 0 <= row["accuracy"] <= 1 and 0 <= row["ap"] <= 1
    steps = ap_by_step(det, tiny_run, real, n_fake=32)
    assert [r["step"] for r in steps] == [3, 6]
    assert all(0 <= r["ap"] <= 1 for r in steps)


@pytest.mark.slow
def test_detectability_by_step_trains_one_detector_per_checkpoint(cache32, tiny_run):
    from facelib.detector import detectability_by_step

    rows = detectability_by_step(cache32, tiny_run, n_real=64, n_test=32, epochs=1, width=8,
                                 batch_size=32)
    assert [(r["step"], r["checkpoint"]) for r in rows] == [(3, "step-00000003"),
                                                             (6, "step-00000006")]
    assert all(r["n_real"] == r["n_fake"] == 32 and 0 <= r["ap"] <= 1 for r in rows)


def test_train_detector_rejects_bad_input(cache32, tmp_path):
    from facelib.detector import train_detector

    with pytest.raises(FacelibError, match="no generator runs"):
        train_detector(cache32, [])
    with pytest.raises(FacelibError, match="not a facelib run folder"):
        train_detector(cache32, [tmp_path])


# -- the detect verb ------------------------------------------------------------------------

def test_detect_cli_prints_one_probability_per_image(detector_dir, real32, tmp_path, capsys,
                                                     monkeypatch):
    from facelib.images import write_image

    paths = [write_image(tmp_path / f"face{i}.png", real32[i]) for i in range(3)]
    code, out, err = _cli(["detect", *paths, "--detector", detector_dir], capsys, monkeypatch)
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 3
    for line, path in zip(lines, paths):
        prob, verdict, shown = line.split("\t")
        assert 0.0 <= float(prob) <= 1.0 and verdict in ("real", "synthetic")
        assert shown == str(path)
    # A folder expands to its images.
    code, out, _ = _cli(["detect", tmp_path, "--detector", detector_dir], capsys, monkeypatch)
    assert code == 0 and len(out.strip().splitlines()) == 3


def test_detect_cli_errors_clearly_on_non_images_and_tiny_images(detector_dir, real32, tmp_path,
                                                                 capsys, monkeypatch):
    from facelib.images import write_image

    good = write_image(tmp_path / "good.png", real32[0])
    tiny = write_image(tmp_path / "tiny.png", real32[0][:12, :12])
    text = tmp_path / "readme.txt"
    text.write_text("hello")
    code, out, err = _cli(["detect", good, tiny, text, "--detector", detector_dir], capsys,
                          monkeypatch)
    assert code == 2
    assert len(out.strip().splitlines()) == 1 and str(good) in out  # the good one is still scored
    assert "error: 2 of 3 image(s) could not be checked" in err
    assert re.search(r"tiny\.png is 12x12: its face region is 12 px, too small for 32 px", err)
    assert "readme.txt: not a readable image" in err
    code, _, err = _cli(["detect", good, "--detector", tmp_path / "nothing"], capsys, monkeypatch)
    assert code == 2 and "not a detector folder" in err


def test_train_detector_cli_trains_a_probe_that_detect_uses(cache32, tiny_run, real32, tmp_path,
                                                            capsys, monkeypatch):
    from facelib.images import write_image

    out_dir = tmp_path / "probe"
    code, out, err = _cli(["train-detector", "--data", cache32, "--runs", tiny_run, "--out",
                           out_dir, "--kind", "probe", "--features", "spectrum", "--n-real", 200,
                           "--n-test", 40, "--resize-prob", 0.5], capsys, monkeypatch)
    assert code == 0, err
    assert "features spectrum, 32 px" in out
    meta = json.loads((out_dir / "meta.json").read_text())
    assert meta["kind"] == "probe" and meta["augment"]["resize_prob"] == 0.5
    assert meta["calibration"]["n_valid_real"] == 50
    assert (out_dir / "report.json").is_file()
    path = write_image(tmp_path / "face.png", real32[0])
    code, out, err = _cli(["detect", path, "--detector", out_dir], capsys, monkeypatch)
    assert code == 0 and out.count("\t") == 2, err
    code, _, err = _cli(["train-detector", "--data", cache32, "--runs", tiny_run, "--out",
                         out_dir, "--kind", "probe", "--features", "pixels"], capsys, monkeypatch)
    assert code == 2 and "use one or more of spectrum, inception" in err


def test_detect_without_detector_uses_the_shipped_one(real32, tmp_path, capsys, monkeypatch):
    """`detect IMAGE` needs no --detector: the shipped detector judges any size and framing."""
    from facelib.detector import load_detector
    from facelib.images import write_image

    shipped = load_detector()
    assert shipped.meta["validation"]["method"] == "leave-one-generator-out"
    big = np.kron(real32[1], np.ones((8, 8, 1), np.uint8))  # a 256 px square crop
    wide = np.concatenate([real32[2], real32[2][:, :16]], axis=1)  # 48x32: its centre square
    paths = [write_image(tmp_path / "a.png", real32[0]), write_image(tmp_path / "b.png", big),
             write_image(tmp_path / "c.png", wide)]
    code, out, err = _cli(["detect", *paths], capsys, monkeypatch)
    assert code == 0, err
    probs = [float(line.split("\t")[0]) for line in out.strip().splitlines()]
    assert len(probs) == 3 and all(0.0 <= p <= 1.0 for p in probs)
    from facelib.detector import read_face

    expected = shipped.predict_proba(np.stack([read_face(p, shipped.resolution) for p in paths]))
    np.testing.assert_allclose(probs, expected, atol=1e-3)
