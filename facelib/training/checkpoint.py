"""Atomic checkpoints of a whole GAN: G, D, EMA G, both optimizers and the step counter.

A checkpoint is a folder ``checkpoints/step-00001234/`` written under a temporary name, fsynced
and renamed into place; the text file ``checkpoints/latest`` is then replaced atomically. A crash
at any moment leaves the previous checkpoint as ``latest``. Randomness is a function of
(seed, step) (see ``facelib.training.gan``), so the step counter is the RNG state.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np

from facelib.atomic import fsync_dir, replace_dir
from facelib.errors import FacelibError

COMPLETE = "COMPLETE"


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def _optimizer_arrays(optimizer) -> dict[str, np.ndarray]:
    return {f"v{i:04d}": np.asarray(v.numpy() if hasattr(v, "numpy") else v)
            for i, v in enumerate(optimizer.variables)}


def _restore_optimizer(optimizer, arrays, name: str) -> None:
    variables = optimizer.variables
    if len(arrays) != len(variables):
        raise FacelibError(
            f"checkpoint's {name} optimizer has {len(arrays)} variables, the model's has "
            f"{len(variables)}: was the run's config.json changed after training started?")
    for i, v in enumerate(variables):
        value = arrays[f"v{i:04d}"]
        if tuple(value.shape) != tuple(v.shape):
            raise FacelibError(f"{name} optimizer variable {v.path}: checkpoint shape "
                               f"{value.shape} != model shape {tuple(v.shape)}")
        v.assign(value)


class CheckpointManager:
    """Writes, finds and restores checkpoints under ``RUN/checkpoints``."""

    def __init__(self, directory: str | Path, keep: int = 2):
        self.directory = Path(directory)
        self.keep = keep

    # -- finding -------------------------------------------------------------------------
    def _complete(self) -> list[Path]:
        if not self.directory.exists():
            return []
        found = [p for p in self.directory.glob("step-*") if (p / COMPLETE).exists()]
        return sorted(found, key=lambda p: int(p.name.split("-")[1]))

    def latest(self) -> Path | None:
        """The newest complete checkpoint (the ``latest`` pointer, else a scan)."""
        pointer = self.directory / "latest"
        if pointer.exists():
            path = self.directory / pointer.read_text().strip()
            if (path / COMPLETE).exists():
                return path
        complete = self._complete()
        return complete[-1] if complete else None

    def best(self) -> Path | None:
        path = self.directory / "best"
        return path if (path / COMPLETE).exists() else None

    def resolve(self, which: str = "latest") -> Path:
        """'latest', 'best', or a checkpoint folder path."""
        path = {"latest": self.latest, "best": self.best}.get(which, lambda: Path(which))()
        if path is None or not (Path(path) / COMPLETE).exists():
            raise FacelibError(
                f"no complete '{which}' checkpoint in {self.directory}: train the run first "
                f"(python -m facelib train --run {self.directory.parent})")
        return Path(path)

    # -- writing -------------------------------------------------------------------------
    def _write(self, gan, final: Path, extra: dict | None) -> Path:
        tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        gan.generator.save_weights(tmp / "generator.weights.h5")
        gan.discriminator.save_weights(tmp / "discriminator.weights.h5")
        if gan.ema_generator is not None:
            gan.ema_generator.save_weights(tmp / "ema_generator.weights.h5")
        np.savez(tmp / "d_optimizer.npz", **_optimizer_arrays(gan.d_optimizer))
        np.savez(tmp / "g_optimizer.npz", **_optimizer_arrays(gan.g_optimizer))
        state = {"step": int(gan.step.numpy()), "seed": gan.config.seed, "time": time.time(),
                 **(extra or {})}
        (tmp / "state.json").write_text(json.dumps(state, indent=2))
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        (tmp / COMPLETE).write_text("ok\n")
        fsync_dir(tmp)
        return replace_dir(tmp, final)

    def save(self, gan, extra: dict | None = None) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        step = int(gan.step.numpy())
        path = self._write(gan, self.directory / f"step-{step:08d}", extra)
        _write_text_atomic(self.directory / "latest", path.name + "\n")
        for old in self._complete()[:-self.keep]:
            shutil.rmtree(old, ignore_errors=True)
        return path

    def save_best(self, gan, metric: str, value: float) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        return self._write(gan, self.directory / "best", {"metric": metric, "value": value})

    # -- reading -------------------------------------------------------------------------
    @staticmethod
    def state(path: Path) -> dict:
        return json.loads((Path(path) / "state.json").read_text())

    def restore(self, gan, path: Path) -> dict:
        """Load everything into a compiled GAN; returns the checkpoint's state dict."""
        path = Path(path)
        gan.generator.load_weights(path / "generator.weights.h5")
        gan.discriminator.load_weights(path / "discriminator.weights.h5")
        if gan.ema_generator is not None:
            ema = path / "ema_generator.weights.h5"
            gan.ema_generator.load_weights(ema if ema.exists() else path / "generator.weights.h5")
        with np.load(path / "d_optimizer.npz") as d, np.load(path / "g_optimizer.npz") as g:
            _restore_optimizer(gan.d_optimizer, d, "discriminator")
            _restore_optimizer(gan.g_optimizer, g, "generator")
        state = self.state(path)
        gan.step.assign(state["step"])
        return state
