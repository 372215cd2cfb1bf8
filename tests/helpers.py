"""Test doubles shared by several test files (imported as ``helpers``; tests/ is on sys.path)."""

from pathlib import Path

import numpy as np

import facelib


def boosted_run(path, factor: float = 300.0):
    """A loaded run whose output layer is scaled in memory.

    The 6-step fixture runs draw nearly flat faces (pixel std ~1e-3 across z): slider moves would
    not change a uint8 pixel, GIF frames would be equal, and there would be nothing to invert.
    Scaling the to_rgb layer makes z's effect on the pixels measurable.
    """
    run = facelib.load_run(path)
    layer = run.generator.get_layer("to_rgb")
    layer.set_weights([w * factor for w in layer.get_weights()])
    return run


class TinyRun:
    """Test double for facelib.run.Run: .resolution, .path, .step and generate(n, seed) -> uint8."""

    def __init__(self, path="runs/tiny", resolution=32, step=5):
        self.path, self.resolution, self.step = Path(path), resolution, step

    def generate(self, n, seed=0, attrs=None):
        return np.random.default_rng(seed).integers(0, 256, (n, self.resolution,
                                                             self.resolution, 3), dtype=np.uint8)


class FakeScheduler:
    """Stands in for threading.Timer / loop.call_later: records calls, fires on demand."""

    def __init__(self):
        self.calls = []

    def __call__(self, delay_s, callback):
        handle = FakeHandle(delay_s, callback)
        self.calls.append(handle)
        return handle


class FakeHandle:
    def __init__(self, delay_s, callback):
        self.delay_s, self.callback, self.cancelled = delay_s, callback, False

    def cancel(self):
        self.cancelled = True

    def fire(self):  # what a timer does even when cancel() came too late
        self.callback()
