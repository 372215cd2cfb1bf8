"""The run folder as one typed object: its layout, readers and writers, and RUN@CKPT specs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import facelib
from facelib.config import preset
from facelib.errors import FacelibError
from facelib.run.folder import RunFolder, parse_run_spec


@pytest.mark.parametrize("spec, expected", [
    ("runs/x", (Path("runs/x"), "latest")),
    ("runs/x@best", (Path("runs/x"), "best")),
    ("runs/x@latest", (Path("runs/x"), "latest")),
    ("runs/x@step-00000500", (Path("runs/x"), "step-00000500")),
    ("runs/a@b/x@best", (Path("runs/a@b/x"), "best")),  # the last '@' separates
    (Path("runs/x"), (Path("runs/x"), "latest")),
])
def test_run_specs_parse(spec, expected):
    assert parse_run_spec(spec) == expected


@pytest.mark.parametrize("spec, message", [
    ("", "empty run spec"),
    ("runs/x@", "ends with '@'"),
    ("@best", "no run folder before '@'"),
])
def test_bad_run_specs_say_what_to_write(spec, message):
    with pytest.raises(FacelibError, match=message):
        parse_run_spec(spec)


def test_layout_round_trips(tmp_path):
    folder = RunFolder(tmp_path / "r")
    assert not folder.exists()
    with pytest.raises(FacelibError, match="not a facelib run folder.*python -m facelib train"):
        folder.read_config()
    config = preset("smoke", steps=7)
    folder.write_config(config)
    assert folder.exists() and folder.read_config() == config
    assert folder.config_path == tmp_path / "r" / "config.json"

    assert folder.read_data_info() is None and folder.training_data() is None
    folder.write_data_info(tmp_path, images=10, train_images=8, resolution=32)
    assert folder.read_data_info() == {"path": str(tmp_path.resolve()), "images": 10,
                                       "train_images": 8, "resolution": 32}
    assert folder.training_data() == tmp_path.resolve()
    folder.write_data_info(tmp_path / "gone", 1, 1, 32)
    assert folder.training_data() is None  # recorded, but no longer there

    assert folder.read_attribute_prior() is None
    attrs = np.array([[1, 0], [1, 0], [0, 1]], np.int8)
    folder.write_attribute_prior(attrs, ["A", "B"])
    names, (rows, counts) = folder.read_attribute_prior()
    assert names == ["A", "B"] and rows.dtype == np.float32
    assert {tuple(r): c for r, c in zip(rows.astype(int).tolist(), counts)} == {(0, 1): 1, (1, 0): 2}


def test_metrics_log_has_one_writer_and_skips_a_torn_line(tmp_path):
    folder = RunFolder(tmp_path / "r")
    assert folder.read_metrics() == []
    folder.append_metrics({"step": 1, "d_loss": 0.5})
    folder.append_metrics({"step": 2, "kid_mean": 0.1})
    with open(folder.metrics_path, "a") as f:
        f.write('{"step": 3, "d_lo')  # a crash mid-write
    assert folder.read_metrics() == [{"step": 1, "d_loss": 0.5}, {"step": 2, "kid_mean": 0.1}]
    folder.append_metrics({"step": 4})
    # The torn line stays torn; the rows after it are read.
    assert [r["step"] for r in folder.read_metrics()] == [1, 2, 4]


def test_a_trained_run_reads_back_through_its_folder(tiny_run):
    folder = RunFolder(tiny_run)
    assert folder.read_config().steps == 6
    assert [p.name for p in folder.step_checkpoints()] == ["step-00000003", "step-00000006"]
    assert folder.checkpoint("latest").name == "step-00000006"
    assert folder.checkpoint("step-00000003") == folder.step_checkpoints()[0]
    with pytest.raises(FacelibError, match="no complete 'best' checkpoint"):
        folder.checkpoint("best")
    losses = [r for r in folder.read_metrics() if "d_loss" in r]
    assert [r["step"] for r in losses] == [2, 4, 6]
    assert folder.latest_sample.is_file() and folder.generator_path.is_file()
    info = json.loads(folder.data_path.read_text())
    assert info["resolution"] == 32 and Path(info["path"]).is_dir()


def test_specs_open_the_named_checkpoint(tiny_run):
    early = facelib.load_run(f"{tiny_run}@step-00000003")
    assert early.step == 3
    assert facelib.load_run(tiny_run).step == 6
    # An explicit checkpoint wins over the spec's.
    assert facelib.load_run(f"{tiny_run}@step-00000003", checkpoint="latest").step == 6
    assert not np.array_equal(early.generate(2, seed=0), facelib.load_run(tiny_run).generate(2, seed=0))


def test_open_run_passes_generator_like_objects_and_refuses_others():
    from facelib.run.interface import open_run

    class Generator:
        resolution = 32

        def generate(self, n, seed=0):
            return np.zeros((n, 32, 32, 3), np.uint8)

    g = Generator()
    assert open_run(g) is g
    with pytest.raises(FacelibError, match="is not a run"):
        open_run(42)


def test_write_json_replaces_whole_or_not_at_all(tmp_path):
    """facelib.atomic.write_json: the text json.dumps gives plus a newline, in a file with the
    umask's permissions; a value JSON cannot hold raises and leaves the old file and no temp."""
    import os

    from facelib.atomic import write_json

    path = tmp_path / "sub" / "meta.json"
    write_json(path, {"a": [1, 2]}, indent=2)
    assert path.read_text() == json.dumps({"a": [1, 2]}, indent=2) + "\n"
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    with pytest.raises(TypeError):
        write_json(path, {"b": object()})
    assert json.loads(path.read_text()) == {"a": [1, 2]}
    assert sorted(p.name for p in path.parent.iterdir()) == ["meta.json"]
    write_json(path, {"b": Path("x")}, default=str)
    assert json.loads(path.read_text()) == {"b": "x"}
