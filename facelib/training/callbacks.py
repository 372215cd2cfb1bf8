"""Callbacks that turn ``fit`` into a run folder: sample grids, a metrics log, checkpoints.

They receive where to write (a samples folder, a row writer, a checkpoint manager) from the run
layer (``facelib.run.train``), which owns the folder's layout, so this layer never spells it.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable

import keras
import numpy as np

from facelib.images import save_grid


def _finite(logs: dict | None) -> bool:
    return all(math.isfinite(float(v)) for v in (logs or {}).values()
               if np.ndim(v) == 0)


class SampleGrid(keras.callbacks.Callback):
    """At each epoch end, the EMA generator on fixed latents -> ``DIRECTORY/step-N.png`` and
    ``DIRECTORY/latest.png``.

    The same latents every time, so the grids show how the same faces evolve.
    """

    def __init__(self, directory: str | Path, latents: np.ndarray,
                 attributes: np.ndarray | None = None):
        super().__init__()
        self.directory = Path(directory)
        self.latents = latents
        self.attributes = attributes

    def write(self) -> Path:
        inputs = self.latents if self.attributes is None else [self.latents, self.attributes]
        images = keras.ops.convert_to_numpy(
            self.model.sampling_generator()(inputs, training=False))
        step = int(self.model.step.numpy())
        path = save_grid(images, self.directory / f"step-{step:08d}.png")
        save_grid(images, self.directory / "latest.png")
        return path

    def on_epoch_end(self, epoch, logs=None):
        if _finite(logs):
            self.write()


class MetricsLog(keras.callbacks.Callback):
    """Every ``every`` steps, one row to ``log_row`` (the run folder's metrics.jsonl writer):
    step, losses averaged over the steps since the last row, and images/s.

    Keras reports running means since the epoch began; a window's mean is recovered from two of
    them (mean_t * n_t - mean_s * n_s) / (n_t - n_s), so the trackers are left untouched.
    """

    def __init__(self, log_row: Callable[[dict], None], every: int, global_batch: int):
        super().__init__()
        self.log_row = log_row
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
        self.log_row(row)
        self._t0, self._n0, self._sums0 = now, self._n, sums


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


class TimeBudget(keras.callbacks.Callback):
    """Stops training once a time budget is spent, calling ``on_mark(seconds, model)`` at each
    of the budget marks on the way (a quality-per-minute benchmark snapshots the generator there).

    clock: "wall" (seconds since training began: a Colab session's limit) or "cpu" (this
    process's CPU seconds, all threads: a fair budget when other jobs share the cores; 5 minutes
    on 2 fully used cores is 600 CPU seconds). The clock starts at the first ``fit`` and runs
    across the several ``fit`` calls one training makes.
    """

    def __init__(self, marks, on_mark: Callable[[float, keras.Model], None] | None = None,
                 clock: str = "wall"):
        super().__init__()
        if clock not in ("wall", "cpu"):
            raise ValueError(f"clock={clock!r}: use 'wall' or 'cpu'")
        marks = sorted(float(m) for m in (marks if np.ndim(marks) else [marks]))
        if not marks or marks[0] <= 0:
            raise ValueError(f"time budget marks {marks}: give positive seconds")
        self.marks, self.on_mark, self.clock = marks, on_mark, clock
        self._read = time.process_time if clock == "cpu" else time.perf_counter
        self._start: float | None = None
        self.reached: list[tuple[float, int]] = []  # (mark seconds, step) in order

    def elapsed(self) -> float:
        return 0.0 if self._start is None else self._read() - self._start

    def on_train_begin(self, logs=None):
        if self._start is None:
            self._start = self._read()

    def on_train_batch_end(self, batch, logs=None):
        spent = self.elapsed()
        while len(self.reached) < len(self.marks) and spent >= self.marks[len(self.reached)]:
            mark = self.marks[len(self.reached)]
            self.reached.append((mark, int(self.model.step.numpy())))
            if self.on_mark is not None:
                self.on_mark(mark, self.model)
        if len(self.reached) == len(self.marks):
            self.model.stop_training = True
