"""The reference networks shipped with facelib: loaded by name, offline, into a private copy;
what they carry (terms, size); and RunFolder.export, which makes them from a trained run."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import facelib
from facelib.errors import FacelibError
from facelib.run import pretrained
from facelib.run.folder import RunFolder, parse_run_spec

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_networks_are_complete_small_and_carry_celeba_terms():
    root = pretrained.bundled_root()
    notice = (root / "NOTICE.md").read_text()
    assert "non-commercial research" in notice and "CelebA" in notice
    for name in pretrained.available("run"):
        folder = RunFolder(root / name)
        state = folder.checkpoints.verify(folder.checkpoint("latest"), generator_only=True)
        assert state["step"] > 0 and folder.read_config().resolution == 32
    assert (root / "celeba32-attributes" / "classifier.keras").is_file()
    assert pretrained.available("detector") == ["detector"]
    assert {p.name for p in (root / "detector").iterdir()} == {"probe.npz", "meta.json"}
    total = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    # #10: "at most 10 MB together" (decimal megabytes)
    assert total <= 10 ** 7, f"shipped networks take {total / 1e6:.2f} MB, over 10 MB"


# Colab's Keras (README, "Colab today"): a .keras file records the Keras that wrote it, and one
# written by a newer Keras may not load in an older one (a 3.15 file failed on Colab's 3.13).
OLDEST_KERAS = (3, 13, 2)


def test_shipped_keras_files_were_written_by_the_oldest_keras_facelib_supports():
    import zipfile

    files = sorted(pretrained.bundled_root().rglob("*.keras"))
    assert files
    for path in files:
        meta = json.loads(zipfile.ZipFile(path).read("metadata.json"))
        version = tuple(int(p) for p in meta["keras_version"].split(".")[:3])
        assert version <= OLDEST_KERAS, (
            f"{path} was saved by Keras {meta['keras_version']}; save it again with Keras "
            f"{'.'.join(map(str, OLDEST_KERAS))} (the colab CI leg's venv)")


def test_load_run_by_name_gives_a_private_writable_copy(tmp_path, monkeypatch):
    monkeypatch.setenv("FACELIB_CACHE", str(tmp_path))
    run = facelib.load_run("pretrained:celeba32")
    assert not run.conditional and run.resolution == 32
    assert tmp_path in run.path.parents  # a copy under $FACELIB_CACHE, not the package
    assert (run.path / "NOTICE.md").is_file()
    faces = run.generate(4, seed=0)
    assert faces.shape == (4, 32, 32, 3) and faces.dtype == np.uint8
    assert faces.std() > 10  # faces, not a flat image
    np.testing.assert_array_equal(faces, run.generate(4, seed=0))
    again = facelib.load_run("pretrained:celeba32@latest")
    assert again.path == run.path  # the same content-keyed copy is reused
    (run.path / "scratch.txt").write_text("an analysis writing beside the run")
    assert not (pretrained.bundled_root() / "celeba32" / "scratch.txt").exists()
    assert run.training_data() is None  # the training cache is not shipped


def test_conditional_reference_takes_attributes(tmp_path, monkeypatch):
    monkeypatch.setenv("FACELIB_CACHE", str(tmp_path))
    run = facelib.load_run("pretrained:celeba32-cond")
    assert run.conditional and run.attribute_prior is not None
    z = run.sample_latents(4, seed=0)
    smiling = run.synthesize(z, {"Smiling": 1})
    neutral = run.synthesize(z, {"Smiling": 0})
    assert smiling.shape == (4, 32, 32, 3) and not np.allclose(smiling, neutral)


def test_unknown_names_and_training_into_a_pretrained_run_are_clear_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("FACELIB_CACHE", str(tmp_path))
    with pytest.raises(FacelibError, match="no pretrained network 'celeba99'.*pretrained:celeba32"):
        parse_run_spec("pretrained:celeba99")
    with pytest.raises(FacelibError, match="of kind run.*celeba32-cond"):
        facelib.load_run("pretrained:celeba32-attributes")  # a classifier, not a run
    from facelib.commands import train as train_command

    args = type("A", (), {"run": "pretrained:celeba32"})()
    with pytest.raises(FacelibError, match="read-only.*new --run"):
        train_command.run(args)


def test_pretrained_classifier_loads_by_name(tmp_path, monkeypatch):
    monkeypatch.setenv("FACELIB_CACHE", str(tmp_path))
    from facelib.classifier import AttributeClassifier

    clf = AttributeClassifier.load("pretrained:celeba32-attributes")
    assert clf.resolution == 32 and len(clf.attribute_names) == 40
    with pytest.raises(FacelibError, match="of kind classifier"):
        AttributeClassifier.load("pretrained:celeba32")


@pytest.mark.slow
def test_cli_takes_pretrained_runs(tmp_path):
    env = {"FACELIB_CACHE": str(tmp_path / "cache"), "TF_CPP_MIN_LOG_LEVEL": "3",
           "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    out = tmp_path / "faces.png"
    proc = subprocess.run([sys.executable, "-m", "facelib", "generate", "--run",
                           "pretrained:celeba32-cond", "--n", "4", "--out", str(out)],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert out.is_file() and out.stat().st_size > 0


@pytest.mark.parametrize("architecture, nonlinearities", [("dcgan", 3), ("resnet", 8)])
def test_inversion_features_of_either_discriminator(architecture, nonlinearities):
    """Inversion's feature loss reads D's nonlinearities: LeakyReLU (DCGAN) or ReLU (residual)."""
    from facelib.config import preset
    from facelib.latent.inversion import discriminator_features
    from facelib.models import build_discriminator

    cfg = preset("smoke", architecture=architecture, spectral_norm=True, loss="hinge")
    run = type("R", (), {"discriminator": lambda self: build_discriminator(cfg)})()
    outs = discriminator_features(run)(np.zeros((1, 32, 32, 3), "float32"))
    assert len(outs) == nonlinearities


def test_export_keeps_the_generator_and_drops_the_optimizer(tiny_run, tmp_path):
    dest = RunFolder(tiny_run).export(tmp_path / "shipped", description="a test")
    ckpt = RunFolder(dest).checkpoint("latest")
    names = sorted(p.name for p in ckpt.iterdir())
    assert names == ["COMPLETE", "discriminator.weights.h5", "ema_generator.weights.h5",
                     "state.json"]
    info = json.loads((dest / "data.json").read_text())
    assert "not shipped" in info["path"] and info["description"] == "a test"
    a, b = facelib.load_run(tiny_run), facelib.load_run(dest)
    np.testing.assert_array_equal(a.generate(3, seed=2), b.generate(3, seed=2))
    # the manifest still guards what was kept
    weights = ckpt / "ema_generator.weights.h5"
    data = bytearray(weights.read_bytes())
    data[-100] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(FacelibError, match="SHA-256"):
        facelib.load_run(dest)


def test_export_in_float16_halves_the_weights_and_keeps_the_faces(tiny_run, tmp_path):
    import h5py

    full = RunFolder(tiny_run).export(tmp_path / "f32")
    half = RunFolder(tiny_run).export(tmp_path / "f16", weights="float16")
    ckpt32, ckpt16 = RunFolder(full).checkpoint("latest"), RunFolder(half).checkpoint("latest")
    for name in ("ema_generator.weights.h5", "discriminator.weights.h5"):
        with h5py.File(ckpt16 / name) as f:
            dtypes = set()
            f.visititems(lambda _n, o: dtypes.add(o.dtype) if isinstance(o, h5py.Dataset) else None)
        assert np.dtype("float16") in dtypes and np.dtype("float32") not in dtypes
        assert (ckpt16 / name).stat().st_size < 0.6 * (ckpt32 / name).stat().st_size
    a, b = facelib.load_run(full), facelib.load_run(half)  # verifies the rewritten manifest
    assert b.generator.weights[0].dtype == "float32"
    faces32, faces16 = a.generate(8, seed=1).astype(int), b.generate(8, seed=1).astype(int)
    assert np.abs(faces32 - faces16).mean() < 1.0 and np.abs(faces32 - faces16).max() <= 8
    assert not np.array_equal(faces32, faces16)  # the rounding is there, and small
    np.testing.assert_allclose(b.discriminator().weights[0].numpy(),
                               a.discriminator().weights[0].numpy(), rtol=2 ** -10, atol=1e-7)
    with pytest.raises(FacelibError, match="weights='bfloat16'.*float16"):
        RunFolder(tiny_run).export(tmp_path / "x", weights="bfloat16")
    assert not (tmp_path / "x").exists()


def test_export_command_writes_a_loadable_copy_and_never_replaces_a_folder(tiny_run, tmp_path,
                                                                          capsys):
    from facelib.cli import main

    out = tmp_path / "shipped"
    assert main(["export", "--run", f"{tiny_run}@latest", "--out", str(out),
                 "--weights", "float16", "--description", "from the CLI"]) == 0
    assert "weights in float16" in capsys.readouterr().out
    assert json.loads((out / "data.json").read_text())["description"] == "from the CLI"
    assert facelib.load_run(out).generate(2, seed=0).shape == (2, 32, 32, 3)
    assert (out / "samples" / "latest.png").is_file()  # the preview comes along by default...
    lean = tmp_path / "lean"
    assert main(["export", "--run", str(tiny_run), "--out", str(lean), "--no-samples"]) == 0
    assert not (lean / "samples").exists()  # ... unless left out
    assert facelib.load_run(lean).generate(2, seed=0).shape == (2, 32, 32, 3)
    keep = tmp_path / "notes"
    keep.mkdir()
    (keep / "thesis.txt").write_text("not a run")
    assert main(["export", "--run", str(tiny_run), "--out", str(keep)]) == 2
    err = capsys.readouterr().err.strip()
    assert "already exists" in err and "\n" not in err
    assert (keep / "thesis.txt").read_text() == "not a run"  # nothing was deleted
    assert main(["export", "--run", str(tmp_path / "nope"), "--out", str(tmp_path / "x")]) == 2
    assert "not a facelib run folder" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_float16_storage_keeps_arrays_beyond_its_range_in_float32(tmp_path):
    import h5py

    from facelib.run.folder import _store_float16

    with h5py.File(tmp_path / "a.weights.h5", "w") as f:
        f.create_dataset("layers/bn/vars/3", data=np.array([1e-3, 7e4], np.float32))
        f.create_dataset("layers/dense/vars/0", data=np.full((3,), 0.1, np.float32))
        kernel = np.random.default_rng(0).normal(0, 0.02, (3, 3, 64, 64)).astype(np.float32)
        f.create_dataset("layers/conv/vars/0", data=kernel)
        f.attrs["note"] = "kept"
    _store_float16(tmp_path / "a.weights.h5", tmp_path / "b.weights.h5")
    with h5py.File(tmp_path / "b.weights.h5") as f:
        assert f["layers/bn/vars/3"].dtype == np.float32  # 70,000 is beyond float16
        assert f["layers/bn/vars/3"][1] == 7e4
        assert f["layers/dense/vars/0"].dtype == np.float16 and f.attrs["note"] == "kept"
        assert f["layers/dense/vars/0"].compression is None  # too small to pay for a chunk
        conv = f["layers/conv/vars/0"]
        assert conv.compression == "gzip" and conv.shuffle  # stored deflated...
        np.testing.assert_array_equal(conv[()], kernel.astype(np.float16))  # ...read back whole
        assert conv.id.get_storage_size() < 0.97 * kernel.astype(np.float16).nbytes


@pytest.mark.slow
def test_reference_generator_makes_faces_an_untrained_one_does_not(tmp_path, monkeypatch, cache32):
    """KID (standard FID Inception) against the 500 bundled real faces: the shipped generator
    against the same architecture untrained. The bundled faces are CelebA ids 1-500, inside
    the reference's training set; this checks the weights are the trained ones, not quality."""
    from facelib.data.cache import FaceCache
    from facelib.metrics import registry
    from facelib.metrics.inception import locate_weights
    from facelib.run.interface import build_float32
    from facelib.models import build_generator

    try:
        locate_weights(allow_download=False)
    except FacelibError as e:
        pytest.skip(f"standard FID Inception weights not installed ({e})")
    monkeypatch.setenv("FACELIB_CACHE", str(tmp_path))
    run = facelib.load_run("pretrained:celeba32")
    untrained = build_float32(build_generator, run.config)
    z = run.sample_latents(300, seed=0)
    net = registry.feature_network("standard", log=None)
    real = net.extract(np.asarray(FaceCache.open(cache32).images[:300]))
    kid = {name: registry.compute(["kid"], real, net.extract(images))["kid"]
           for name, images in (("trained", run.synthesize(z)),
                                ("untrained", np.asarray(untrained(z))))}
    assert kid["trained"] < 0.1 and kid["trained"] < kid["untrained"] / 3, kid


@pytest.mark.slow
def test_conditional_reference_obeys_its_attributes(tmp_path, monkeypatch):
    """The shipped classifier reads the attribute asked for far more often when it is set."""
    monkeypatch.setenv("FACELIB_CACHE", str(tmp_path))
    from facelib.classifier import AttributeClassifier

    run = facelib.load_run("pretrained:celeba32-cond")
    clf = AttributeClassifier.load("pretrained:celeba32-attributes")
    z = run.sample_latents(200, seed=3)
    for name in ("Male", "Smiling", "Eyeglasses"):
        k = clf.attribute_names.index(name)
        on = clf.predict_proba(run.synthesize(z, {name: 1}, seed=1))[:, k]
        off = clf.predict_proba(run.synthesize(z, {name: 0}, seed=1))[:, k]
        # no control would give equal shares; the shipped network: 0.78 (Smiling) to 0.85 apart,
        # the one shipped before it 0.67 (Eyeglasses) to 0.89
        assert (on > 0.5).mean() - (off > 0.5).mean() > 0.5, (name, on.mean(), off.mean())
