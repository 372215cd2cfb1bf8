"""The command line: help, prepare -> train -> generate, resume after a kill, one-line errors."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from facelib.cli import main


def _cli(*args, timeout=600, **kw):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, "-m", "facelib", *args], capture_output=True,
                          text=True, timeout=timeout, env=env, **kw)


def test_help_lists_the_commands():
    proc = _cli("--help", timeout=120)
    assert proc.returncode == 0
    for verb in ("prepare", "train", "generate"):
        assert verb in proc.stdout


@pytest.mark.slow
def test_prepare_train_generate(sample_dir, tmp_path, capsys):
    cache, run = tmp_path / "cache", tmp_path / "run"
    assert main(["prepare", str(sample_dir), str(cache), "--resolution", "32", "--no-progress"]) == 0
    assert "500" in capsys.readouterr().out
    assert main(["train", "--data", str(cache), "--run", str(run), "--preset", "smoke",
                 "--steps", "4", "--set", "checkpoint_every=2", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert f"run folder: {run}" in out and "trained to step 4" in out
    assert main(["generate", "--run", str(run), "--n", "9", "--seed", "0",
                 "--out", str(tmp_path / "grid.png"), "--save-individual", str(tmp_path / "faces")]) == 0
    from facelib.images import read_image

    grid = read_image(tmp_path / "grid.png")
    assert grid.shape == (3 * 34 + 2, 3 * 34 + 2, 3)  # 3x3 faces of 32 px, 2 px padding
    assert len(list((tmp_path / "faces").glob("*.png"))) == 9
    assert json.loads((run / "config.json").read_text())["steps"] == 4


def test_errors_are_one_clear_line(tmp_path, capsys):
    assert main(["generate", "--run", str(tmp_path / "nope"), "--out", str(tmp_path / "g.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "not a facelib run folder" in err and "\n" not in err
    assert main(["train", "--run", str(tmp_path / "r"), "--set", "warp=9"]) == 2
    assert "FIELD one of" in capsys.readouterr().err


def test_generate_attrs_on_unconditional_run_is_refused(tiny_run, tmp_path, capsys):
    assert main(["generate", "--run", str(tiny_run), "--attrs", "Smiling=1",
                 "--out", str(tmp_path / "g.png")]) == 2
    assert "unconditional" in capsys.readouterr().err


def test_generate_with_attributes_on_conditional_run(tiny_conditional_run, tmp_path, capsys):
    assert main(["generate", "--run", str(tiny_conditional_run), "--attrs", "Smiling=1,Male=0",
                 "--n", "4", "--out", str(tmp_path / "g.png")]) == 0
    assert main(["generate", "--run", str(tiny_conditional_run), "--attrs", "Smilling=1",
                 "--out", str(tmp_path / "g.png")]) == 2
    assert "valid names" in capsys.readouterr().err


@pytest.mark.slow
def test_resume_after_the_process_was_killed(cache32, tmp_path):
    """SIGKILL mid-training (no chance to clean up), then --resume finishes the run."""
    from facelib.run.checkpoints import CheckpointManager

    run = tmp_path / "run"
    args = ["train", "--data", str(cache32), "--run", str(run), "--preset", "smoke",
            "--steps", "100000", "--set", "checkpoint_every=3", "--set", "log_every=3", "--quiet"]
    proc = subprocess.Popen([sys.executable, "-m", "facelib", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    manager = CheckpointManager(run / "checkpoints")
    deadline = time.time() + 300
    try:
        while time.time() < deadline:
            latest = manager.latest()
            if latest is not None and CheckpointManager.state(latest)["step"] >= 9:
                break
            time.sleep(0.2)
        else:
            pytest.fail("no checkpoint at step >= 9 within 300 s")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    killed_at = CheckpointManager.state(manager.latest())["step"]
    target = killed_at + 6
    done = _cli("train", "--run", str(run), "--resume", "--steps", str(target), "--quiet")
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"trained to step {target}" in done.stdout
    assert CheckpointManager.state(manager.latest())["step"] == target
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()
             if line.strip().startswith("{")]
    assert steps[-1] == target
