"""The notebooks' helpers (facelib.notebook): a trained run when there is one, else the shipped
pretrained network, and the attribute classifier that judges it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest


def _mark(folder: Path, marker: str) -> Path:
    """Tag a saved classifier's meta.json, to tell which copy was loaded."""
    meta = json.loads((folder / "meta.json").read_text())
    (folder / "meta.json").write_text(json.dumps({**meta, "test_marker": marker}))
    return folder


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory, cache32) -> Path:
    from facelib.classifier import train_attribute_classifier

    out = tmp_path_factory.mktemp("notebook-env") / "clf"
    train_attribute_classifier(cache32, out, epochs=1, width=4, limit=64, verbose=0)
    return out


@pytest.fixture(scope="module")
def shipped_root(tmp_path_factory, tiny_run, tiny_classifier) -> Path:
    """A stand-in for assets/pretrained: celeba32 (the tiny run, exported) and
    celeba32-attributes (the tiny classifier)."""
    from facelib.run.folder import RunFolder

    root = tmp_path_factory.mktemp("shipped")
    (root / "NOTICE.md").write_text("test networks\n")
    RunFolder(tiny_run).export(root / "celeba32")
    _mark(Path(shutil.copytree(tiny_classifier, root / "celeba32-attributes")), "shipped")
    return root


@pytest.fixture
def shipped(shipped_root, monkeypatch) -> Path:
    import facelib.run.pretrained as pretrained

    monkeypatch.setattr(pretrained, "bundled_root", lambda: shipped_root)
    return shipped_root


@pytest.fixture
def env(tmp_path):
    from facelib.notebook import NotebookEnv

    return NotebookEnv("smoke", False, tmp_path / "work", [])


def _lines(capsys) -> list[str]:
    return capsys.readouterr().out.strip().splitlines()


@pytest.mark.slow
def test_a_run_folder_with_a_checkpoint_is_used(env, shipped, tiny_run, capsys):
    from facelib.run.pretrained import name_of

    for spec in (tiny_run, str(tiny_run), f"{tiny_run}@latest"):
        run = env.run_or_pretrained(spec, "celeba32")
        assert run.path == Path(tiny_run) and name_of(run.path) is None
        assert run.label == Path(tiny_run).name  # titles and report keys name the folder
        lines = _lines(capsys)
        assert len(lines) == 1 and str(tiny_run) in lines[0] and "pretrained" not in lines[0]


@pytest.mark.slow
def test_no_trained_run_falls_back_to_the_pretrained_network(env, shipped, tmp_path, capsys):
    from facelib.run.folder import RunFolder
    from facelib.run.interface import describe_run
    from facelib.run.pretrained import name_of

    unfinished = tmp_path / "runs" / "unfinished"  # a config but no checkpoint yet
    unfinished.mkdir(parents=True)
    shutil.copy2(RunFolder(shipped / "celeba32").config_path, unfinished / "config.json")
    for spec in ("", None, tmp_path / "runs" / "missing", unfinished):
        for name in ("celeba32", "pretrained:celeba32"):
            run = env.run_or_pretrained(spec, name)
            assert name_of(run.path) == "celeba32"
            # Its folder is a cache copy named celeba32-<hash>; titles and reports say this:
            assert run.label == "pretrained:celeba32" and run.path.name != run.label
            assert describe_run(run)["name"] == "pretrained:celeba32"
            assert run.training_data() is None  # its training cache is not shipped
            lines = _lines(capsys)
            assert len(lines) == 1 and "pretrained:celeba32" in lines[0]
            assert (str(spec) in lines[0]) if spec else "no run given" in lines[0]


@pytest.mark.slow
def test_an_explicit_pretrained_spec_is_taken_as_is(env, shipped, capsys):
    from facelib.run.pretrained import name_of

    run = env.run_or_pretrained("pretrained:celeba32", "celeba32-cond")
    assert name_of(run.path) == "celeba32"
    assert len(_lines(capsys)) == 1


def test_an_unknown_pretrained_name_is_an_error(env):
    from facelib.errors import FacelibError

    with pytest.raises(FacelibError, match="no pretrained network"):
        env.run_or_pretrained("", "celeba1024")


@pytest.mark.slow
def test_classifier_for_a_pretrained_run_is_the_shipped_one(env, shipped, cache32,
                                                             tiny_classifier, capsys):
    run = env.run_or_pretrained("", "celeba32")
    capsys.readouterr()
    clf = env.classifier_for(run, cache32, epochs=1)
    assert clf.meta["test_marker"] == "shipped"
    assert "pretrained:celeba32-attributes" in capsys.readouterr().out


@pytest.mark.slow
def test_classifier_for_a_trained_run_is_the_work_folders(env, shipped, cache32, tiny_run,
                                                          tiny_classifier, capsys):
    _mark(Path(shutil.copytree(tiny_classifier, env.path("classifiers", "celeba-32"))), "workdir")
    run = env.run_or_pretrained(tiny_run, "celeba32")
    assert env.classifier_for(run, cache32, epochs=1).meta["test_marker"] == "workdir"
    # No prepared cache to train on (none given, or a folder of images): no classifier, said so.
    fresh = type(env)("smoke", False, env.workdir / "fresh", [])
    for cache in (None, "", tiny_run):
        capsys.readouterr()
        assert fresh.classifier_for(run, cache, epochs=1) is None
        assert "no classifier" in capsys.readouterr().out


@pytest.mark.parametrize("name, conditional", [("celeba32", False), ("celeba32-cond", True)])
def test_the_shipped_networks_load_as_fallbacks(env, name, conditional, capsys):
    """The real networks in assets/pretrained."""
    from facelib.run.pretrained import name_of

    run = env.run_or_pretrained(env.path("runs", "never-trained"), name)
    assert name_of(run.path) == name and run.training_data() is None
    assert run.resolution == 32 and run.conditional == conditional
    assert run.generate(2, seed=0).shape == (2, 32, 32, 3)
