"""facelib.human.study: the shuffled real/fake item list, its ids, manifest, PNGs and orders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from facelib.data.cache import FaceCache
from facelib.errors import FacelibError
from facelib.human.study import Study, build_study, check_judge, regenerate
from facelib.images import read_image


class TinyRun:
    """Test double for facelib.run.Run: .resolution, .path, .step and generate(n, seed) -> uint8.

    Face i depends only on (seed, i, tag), like rows of a seeded latent matrix."""

    def __init__(self, path="runs/tiny", resolution=32, step=5, tag=0):
        self.path, self.resolution, self.step, self.tag = Path(path), resolution, step, tag

    def generate(self, n, seed=0, attrs=None):
        r = self.resolution
        return np.stack([np.random.default_rng([seed, i, self.tag]).integers(
            0, 256, (r, r, 3), dtype=np.uint8) for i in range(n)]).reshape(n, r, r, 3)


@pytest.fixture()
def two_run_study(tmp_path, cache32):
    runs = [TinyRun("runs/a", tag=1), TinyRun("runs/b", tag=2)]
    return build_study(tmp_path / "study", runs, cache32, n_fake=6, n_pairs=10, seed=3)


def test_items_ids_and_pngs_say_where_each_face_came_from(two_run_study, cache32):
    study = two_run_study
    cache = FaceCache.open(cache32)
    assert len(study) == 24  # 2 runs x 6 fakes + 12 held-out reals (balanced by default)
    kinds = [it.kind for it in study.items]
    assert kinds.count("real") == 12 and kinds.count("fake") == 12
    test_rows = set(cache.indices("test").tolist())
    for it in study.items:
        png = read_image(study.folder / it.png)
        assert png.shape == (32, 32, 3) and png.dtype == np.uint8
        if it.kind == "real":
            assert it.id == f"real:{cache32}#{it.origin['filename']}"
            assert cache.filenames[it.origin["index"]] == it.origin["filename"]
            assert it.origin["index"] in test_rows  # held out from training
            np.testing.assert_array_equal(png, cache.images[it.origin["index"]])
        else:
            o = it.origin
            assert it.id == f"fake:{it.source}@step5#seed1/{o['index']}"
            run = TinyRun(it.source, tag=1 if it.source == "runs/a" else 2)
            np.testing.assert_array_equal(png, run.generate(o["n"], o["seed"])[o["index"]])
            np.testing.assert_array_equal(png, regenerate(study, it.id, run))
    real = next(it for it in study.items if it.kind == "real")
    np.testing.assert_array_equal(regenerate(study, real.id), read_image(study.folder / real.png))


def test_png_names_and_order_reveal_nothing(two_run_study):
    study = two_run_study
    assert [it.png for it in study.items] == [f"images/{i:04d}.png" for i in range(24)]
    kinds = [it.kind for it in study.items]
    assert kinds != sorted(kinds) and kinds != sorted(kinds, reverse=True)


def test_manifest_round_trips(two_run_study):
    again = Study.open(two_run_study.folder)
    assert [it.id for it in again.items] == [it.id for it in two_run_study.items]
    assert again.pairs == two_run_study.pairs and again.resolution == 32
    manifest = json.loads((two_run_study.folder / "manifest.json").read_text())
    assert manifest["runs"]["runs/a"] == {"path": "runs/a", "step": 5, "checkpoint": None,
                                          "resolved": str(Path("runs/a").resolve())}
    assert manifest["real"]["split"] == "test"


def test_trials_are_a_per_judge_permutation(two_run_study):
    study = two_run_study
    ids = sorted(it.id for it in study.items)
    ann, bob = study.trials("ann", "untimed"), study.trials("bob", "untimed")
    assert sorted(t.key for t in ann) == ids == sorted(t.key for t in bob)
    assert [t.key for t in ann] != [t.key for t in bob]
    assert [t.key for t in ann] == [t.key for t in study.trials("ann", "untimed")]
    for t in ann:
        assert t.truth == study.item(t.key).kind and t.items == (t.key,)


def test_pairs_cross_runs_and_sides_are_randomised(two_run_study):
    study = two_run_study
    assert len(study.pairs) == len(set(study.pairs)) == 10
    trials = study.trials("ann", "pairwise")
    assert all(t.truth is None and t.sources[0] != t.sources[1] for t in trials)
    swapped = [t.items != tuple(t.key.split("|")) for t in trials]
    assert any(swapped) and not all(swapped)


def test_single_run_pairs_rank_images(tmp_path, cache32):
    study = build_study(tmp_path / "s", TinyRun(), cache32, n_fake=5, n_real=3, n_pairs=10)
    assert len(study.pairs) == 10  # all C(5, 2) pairs
    assert all(a.startswith("fake:runs/tiny") and b.startswith("fake:runs/tiny") and a != b
               for a, b in study.pairs)
    with pytest.raises(FacelibError, match="raise n_fake"):
        build_study(tmp_path / "s2", TinyRun(), cache32, n_fake=5, n_pairs=11)


def test_bad_inputs_name_the_problem_and_fix(tmp_path, cache32):
    with pytest.raises(FacelibError, match="--resolution 64"):
        build_study(tmp_path / "a", TinyRun(resolution=64), cache32, n_fake=2)
    with pytest.raises(FacelibError, match="split 'test'"):
        build_study(tmp_path / "b", TinyRun(), cache32, n_fake=2, n_real=10_000)
    with pytest.raises(FacelibError, match="unique"):
        build_study(tmp_path / "c", {"real": TinyRun()}, cache32, n_fake=2)
    with pytest.raises(FacelibError, match="not a run"):
        build_study(tmp_path / "d", [object()], cache32, n_fake=2)
    build_study(tmp_path / "e", TinyRun(), cache32, n_fake=2)
    with pytest.raises(FacelibError, match="overwrite=True"):
        build_study(tmp_path / "e", TinyRun(), cache32, n_fake=2)
    with pytest.raises(FacelibError, match="not a study folder"):
        Study.open(tmp_path / "nothing")
    with pytest.raises(FacelibError, match="judge id"):
        check_judge("../etc/passwd")
    with pytest.raises(FacelibError, match="n_pairs > 0"):
        Study.open(tmp_path / "e").trials("ann", "pairwise")


def test_study_from_a_trained_run_folder(tmp_path, tiny_run, cache32):
    """The real generator interface: ids carry the run folder and its checkpoint step."""
    import facelib

    run = facelib.load_run(tiny_run)
    study = build_study(tmp_path / "s", [str(tiny_run)], cache32, n_fake=3)
    fakes = [it for it in study.items if it.kind == "fake"]
    assert {it.id for it in fakes} == {f"fake:{tiny_run}@step{run.step}#seed1/{i}"
                                       for i in range(3)}
    for it in fakes:
        np.testing.assert_array_equal(regenerate(study, it.id),
                                      read_image(study.folder / it.png))


def test_regenerate_refuses_a_run_that_moved_past_the_studied_step(tmp_path, cache32,
                                                                   monkeypatch):
    import facelib.human.study

    study = build_study(tmp_path / "s", TinyRun(), cache32, n_fake=2)
    fake = next(it for it in study.items if it.kind == "fake")
    monkeypatch.setattr(facelib.human.study, "open_run",
                        lambda path, checkpoint=None: TinyRun(step=9))
    with pytest.raises(FacelibError, match="came from step 5 .* now loads step 9"):
        regenerate(study, fake.id)
    monkeypatch.setattr(facelib.human.study, "open_run",
                        lambda path, checkpoint=None: TinyRun(step=5))
    np.testing.assert_array_equal(regenerate(study, fake.id), read_image(study.folder / fake.png))
