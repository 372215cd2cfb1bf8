"""Callbacks that turn ``fit`` into a run folder: sample grids, a JSONL log, checkpoints."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import keras
import numpy as np

from facelib.images import save_grid


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The run's ``metrics.jsonl`` as a list of dicts (a torn last line is ignored)."""
    path = Path(run_dir) / "metrics.jsonl"
    rows = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


def _finite(logs: dict | None) -> bool:
    return all(math.isfinite(float(v)) for v in (logs or {}).values()
               if np.ndim(v) == 0)


class SampleGrid(keras.callbacks.Callback):
    """At each epoch end, the EMA generator on fixed latents -> ``samples/step-N.png``.

    The same latents every time, so the grids show how the same faces evolve.
    """

    def __init__(self, run_dir: str | Path, latents: np.ndarray, attributes: np.ndarray | None = None):
        super().__init__()
        self.directory = Path(run_dir) / "samples"
        self.latents = latents
        self.attributes = attributes

    def write(self) -> Path:
        inputs = self.latents if self.attributes is None else [self.latents, self.attributes]
        images = keras.ops.convert_to_numpy(self.model.sampler(inputs, training=False))
        step = int(self.model.step.numpy())
        path = save_grid(images, self.directory / f"step-{step:08d}.png")
        save_grid(images, self.directory / "latest.png")
        return path

    def on_epoch_end(self, epoch, logs=None):
        if _finite(logs):
            self.write()


class MetricsLog(keras.callbacks.Callback):
    """Every ``every`` steps, one JSON line: step, losses averaged over the steps since the last
    line, and images/s.

    Keras reports running means since the epoch began; a window's mean is recovered from two of
    them (mean_t * n_t - mean_s * n_s) / (n_t - n_s), so the trackers are left untouched.
    """

    def __init__(self, run_dir: str | Path, every: int, global_batch: int):
        super().__init__()
        self.path = Path(run_dir) / "metrics.jsonl"
        self.every = every
        self.global_batch = global_batch

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.perf_counter()
        self._n = self._n0 = 0
        self._sums0: dict[str, float] = {}

    def on_train_batch_end(self, batch, logs=None):
        self._n += 1
        step = int(self.model.step.numpy())
        if step % self.every:
            return
        now = time.perf_counter()
        sums = {k: float(v) * self._n for k, v in (logs or {}).items() if np.ndim(v) == 0}
        window = self._n - self._n0
        row = {"step": step, "time": time.time(),
               "images_per_sec": window * self.global_batch / max(now - self._t0, 1e-9)}
        row.update({k: (v - self._sums0.get(k, 0.0)) / window for k, v in sums.items()})
        self.log(row)
        self._t0, self._n0, self._sums0 = now, self._n, sums

    def log(self, row: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()


class Checkpointer(keras.callbacks.Callback):
    """Saves every ``every`` steps and when training ends; refuses to save a diverged model.

    A non-finite loss stops training and is recorded in ``self.diverged`` as (step, logs); the
    last good checkpoint stays ``latest``.
    """

    def __init__(self, manager, every: int):
        super().__init__()
        self.manager = manager
        self.every = every
        self.diverged: tuple[int, dict] | None = None
        self.last_saved_step: int | None = None

    def save(self) -> Path | None:
        if self.diverged is not None:
            return None
        step = int(self.model.step.numpy())
        if step == self.last_saved_step:
            return None
        path = self.manager.save(self.model)
        self.last_saved_step = step
        return path

    def on_train_batch_end(self, batch, logs=None):
        if not _finite(logs):
            self.diverged = (int(self.model.step.numpy()), {k: float(v) for k, v in logs.items()})
            self.model.stop_training = True
            return
        if int(self.model.step.numpy()) % self.every == 0:
            self.save()

    def on_train_end(self, logs=None):
        self.save()
