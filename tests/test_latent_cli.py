"""python -m facelib edit: saved directions, directions computed with a classifier, clear errors,
and the input | reconstruction | edited strip."""

import shutil
import sys
import types

import numpy as np
import pytest

import facelib
from facelib.cli import main
from facelib.images import read_image, write_image
from facelib.latent.directions import DirectionSet, available_directions, save_directions


def _copy(run_dir, tmp_path, name="run"):
    return shutil.copytree(run_dir, tmp_path / name,
                           ignore=shutil.ignore_patterns("tensorboard", "samples"))


@pytest.fixture
def face(cache32, tmp_path):
    from facelib.data.cache import FaceCache

    cache = FaceCache.open(cache32)
    return write_image(tmp_path / "face.png", np.asarray(cache.images[cache.indices("test")[0]]))


class FakeClassifier:
    """Test double for facelib.classifier.AttributeClassifier: 40 pseudo attributes read off
    pixels (column j: the mean of the j-th of 40 chunks of the flattened image, strongly
    amplified), deterministic."""

    from facelib.data.celeba import ATTRIBUTE_NAMES as attribute_names

    def predict_proba(self, images):
        x = np.asarray(images, np.float32).reshape(len(images), -1)
        s = np.stack([c.mean(axis=1) for c in np.array_split(x, 40, axis=1)], axis=1)
        return 1 / (1 + np.exp(-1e4 * (s - s.mean(axis=0))))


def test_edit_with_a_saved_direction_writes_the_strip(tiny_run, face, tmp_path, capsys):
    folder = _copy(tiny_run, tmp_path)
    run = facelib.load_run(folder)
    save_directions(run, DirectionSet(["PC0"], np.ones((1, run.latent_dim)), "principal"),
                    "principal")
    out = tmp_path / "edited.png"
    rc = main(["edit", "--run", str(folder), "--image", str(face), "--direction", "PC0",
               "--strength", "2", "--out", str(out), "--steps", "2", "--scale", "2"])
    assert rc == 0
    strip = read_image(out)
    r, pad = run.resolution, 2
    assert strip.shape == (2 * (r + 2 * pad), 2 * (3 * (r + pad) + pad), 3)
    np.testing.assert_array_equal(strip[2 * pad:2 * (pad + r):2, 2 * pad:2 * (pad + r):2],
                                  read_image(face))  # the input tile is the face itself
    printed = capsys.readouterr().out
    assert "reconstruction PSNR" in printed and "after 150 steps of pivotal tuning" in printed


def test_edit_tunes_the_generator_to_the_photo(tiny_run, face, tmp_path, capsys):
    """--tune-steps: the strip's reconstruction comes from a generator tuned to the photo, so it
    is closer to it than the inverted z alone draws; 0 skips the tuning."""
    folder = _copy(tiny_run, tmp_path)
    run = facelib.load_run(folder)
    save_directions(run, DirectionSet(["PC0"], np.ones((1, run.latent_dim)), "principal"),
                    "principal")
    r, pad = run.resolution, 2
    errors = {}
    for steps in (0, 60):
        out = tmp_path / f"tuned{steps}.png"
        assert main(["edit", "--run", str(folder), "--image", str(face), "--direction", "PC0",
                     "--out", str(out), "--steps", "2", "--scale", "1",
                     "--tune-steps", str(steps)]) == 0
        printed = capsys.readouterr().out
        assert ("pivotal tuning" in printed) == (steps > 0)
        recon = read_image(out)[pad:pad + r, 2 * pad + r:2 * pad + 2 * r].astype(float)
        errors[steps] = np.mean((recon - read_image(face).astype(float)) ** 2)
    assert errors[60] < 0.8 * errors[0]
    assert main(["edit", "--run", str(folder), "--image", str(face), "--direction", "PC0",
                 "--tune-steps", "-1", "--out", str(tmp_path / "x.png")]) == 2
    assert "--tune-steps -1: use 0 (no tuning) or more" in capsys.readouterr().err


def test_edit_errors_name_the_problem_and_the_fix(tiny_run, face, tmp_path, capsys):
    folder = _copy(tiny_run, tmp_path)
    run = facelib.load_run(folder)
    save_directions(run, DirectionSet(["PC0", "PC1"], np.eye(2, run.latent_dim), "principal"),
                    "principal")
    base = ["edit", "--run", str(folder), "--image", str(face), "--steps", "1",
            "--out", str(tmp_path / "x.png")]
    assert main(base + ["--direction", "Sparkle"]) == 2
    err = capsys.readouterr().err
    assert "unknown direction 'Sparkle'" in err and "PC0, PC1" in err
    assert main(base + ["--direction", "Smiling"]) == 2
    assert "--classifier" in capsys.readouterr().err
    (tmp_path / "bad.jpg").write_bytes(b"nope")
    assert main(base[:4] + [str(tmp_path / "bad.jpg"), "--direction", "PC0"]) == 2
    assert "not a readable image" in capsys.readouterr().err
    assert main(base + ["--direction", "PC0", "--attrs", "Male=1"]) == 2
    assert "conditional" in capsys.readouterr().err


@pytest.mark.slow
def test_edit_computes_and_saves_attribute_directions(tiny_conditional_run, face, tmp_path,
                                                      monkeypatch, capsys):
    fake = types.ModuleType("facelib.classifier")
    fake.AttributeClassifier = types.SimpleNamespace(load=lambda path: FakeClassifier())
    monkeypatch.setitem(sys.modules, "facelib.classifier", fake)
    folder = _copy(tiny_conditional_run, tmp_path)
    out = tmp_path / "smile.png"
    rc = main(["edit", "--run", str(folder), "--image", str(face), "--direction", "Smiling",
               "--keep", "Male", "--classifier", "clf", "--samples", "200", "--steps", "2",
               "--attrs", "Eyeglasses=0", "--out", str(out)])
    assert rc == 0 and out.exists()
    assert "computed direction Smiling" in capsys.readouterr().out
    run = facelib.load_run(folder)
    assert available_directions(run) == {"Smiling": "attributes", "Male": "attributes"}
    # a second edit reuses the saved direction: no classifier needed
    assert main(["edit", "--run", str(folder), "--image", str(face), "--direction", "Smiling",
                 "--steps", "1", "--out", str(out)]) == 0


def test_edit_set_changes_a_conditional_runs_attributes_of_the_inverted_face(
        tiny_conditional_run, tiny_run, face, tmp_path, capsys):
    """`edit --set Smiling=1`: the edited tile is the inverted z re-synthesised with Smiling set,
    so it differs from the reconstruction only through the attribute input."""
    out = tmp_path / "set.png"
    base = ["edit", "--run", str(tiny_conditional_run), "--image", str(face), "--steps", "2",
            "--attrs", "Smiling=0", "--out", str(out), "--scale", "1"]
    assert main(base + ["--set", "Smiling=1"]) == 0
    printed = capsys.readouterr().out
    assert "reconstruction | Smiling=1 to" in printed
    strip = read_image(out)
    r, pad = 32, 2
    recon = strip[pad:pad + r, 2 * pad + r:2 * pad + 2 * r]
    edited = strip[pad:pad + r, 3 * pad + 2 * r:3 * pad + 3 * r]
    assert np.abs(recon.astype(int) - edited.astype(int)).max() > 0  # the attribute moved pixels
    assert main(base + ["--set", "Smiling=1", "--strength", "2.5"]) == 0
    assert "Smiling=1 at strength 2.5 to" in capsys.readouterr().out
    pushed = read_image(out)[pad:pad + r, 3 * pad + 2 * r:3 * pad + 3 * r]
    assert np.abs(pushed.astype(int) - edited.astype(int)).max() > 0  # strength matters
    assert main(base + ["--set", "Smiling=1", "--strength", "nan"]) == 2
    assert "--strength nan: give a finite number" in capsys.readouterr().err
    assert main(base + ["--set", "Smiling=1", "--direction", "PC0"]) == 2
    assert "give one edit" in capsys.readouterr().err
    assert main(base[:-6] + ["--out", str(out)]) == 2  # neither
    assert "give one edit" in capsys.readouterr().err
    assert main(base + ["--set", "Sparkle=1"]) == 2
    assert "unknown attribute 'Sparkle'" in capsys.readouterr().err
    assert main(["edit", "--run", str(tiny_run), "--image", str(face), "--set", "Smiling=1"]) == 2
    assert "--set needs a conditional run" in capsys.readouterr().err
