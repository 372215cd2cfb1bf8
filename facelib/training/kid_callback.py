"""KID during training: measure the EMA generator every few epochs and keep the best checkpoint.

GAN losses say little about sample quality, and the last checkpoint is often not the best one
(the keras-io gan_ada example tracks KID for this reason). KID rather than FID because it is
unbiased at the few hundred samples one can afford inside a training loop.

Each measurement appends one line to RUN/metrics.jsonl::

    {"step": 2500, "kid_mean": 0.031, "kid_std": 0.002, "feature_network": "...", ...}

and, when KID improved, writes RUN/checkpoints/best via `CheckpointManager.save_best` (so
``load_run(run, checkpoint="best")`` gives the best generator). A resumed run starts from the
best value recorded in that checkpoint, so "best" stays best across interruptions.
"""

from __future__ import annotations

import math
import time
from typing import Callable

import keras
import numpy as np

from facelib.errors import FacelibError
from facelib.images import to_uint8
from facelib.metrics import registry
from facelib.metrics.features import features_for

TEST_METRIC = "kid_test_network"


class KIDCallback(keras.callbacks.Callback):
    """Every `every` epochs: KID(real held-out faces, `n` EMA-generated faces) -> one logged row,
    and the best checkpoint (via `manager`) when it improves.

    real_images: uint8 (N, R, R, 3) held-out real faces (features computed once, cached).
    real_attributes: (N, 40) 0/1 rows; conditional models draw their attributes from them.
    network: "standard" (FID Inception; error when its weights are missing), "test" (only when
    asked; logged as not comparable) or a FeatureNetwork. The generated latents are fixed by
    `seed`, so successive values differ only because the generator changed.
    log_row: where each measurement goes (the run folder's ``append_metrics``; None keeps them
    only in ``history``). manager: the run's CheckpointManager (``save_best``, ``best``,
    ``state``), or None to measure without keeping a best checkpoint.
    """

    def __init__(self, real_images, every: int = 1, n: int = 1000, network="standard",
                 manager=None, log_row: Callable[[dict], None] | None = None, seed: int = 0,
                 real_attributes=None, num_subsets: int = 50, subset_size: int | None = None,
                 batch_size: int = 256, cache_dir=None, log=print):
        super().__init__()
        if not isinstance(every, int) or every < 1:
            raise FacelibError(f"KID every={every!r}: a positive number of epochs (0 turns the "
                               "callback off: do not add it)")
        if n < 2:
            raise FacelibError(f"KID needs at least 2 generated faces, got n={n}")
        real = np.asarray(real_images)
        if real.ndim != 4 or real.shape[-1] != 3 or real.dtype != np.uint8:
            raise FacelibError(f"real_images must be uint8 (N, R, R, 3), got {real.dtype} "
                               f"{real.shape}")
        if len(real) < 2:
            raise FacelibError(f"KID needs at least 2 held-out real faces, got {len(real)}")
        self.real_images = real
        self.real_attributes = None if real_attributes is None else np.asarray(real_attributes,
                                                                               np.float32)
        self.every = every
        self.n = int(n)
        self.network = registry.feature_network(
            network, log=log, if_missing="set kid_network='test' for a quick check (numbers NOT "
            "comparable), or kid_every=0 to turn KID off")
        self.comparable = registry.is_comparable(self.network)
        self.metric = "kid" if self.comparable else TEST_METRIC
        self.manager = manager
        self.log_row = log_row
        self.seed = seed
        self.num_subsets = num_subsets
        self.subset_size = subset_size
        self.batch_size = batch_size
        self.cache_dir = cache_dir
        self.log = log
        self.best = math.inf
        self.history: list[dict] = []
        self._real_features = None
        self._inputs = None
        if manager is not None and manager.best() is not None:
            state = manager.state(manager.best())
            if state.get("metric") == self.metric:
                self.best = float(state["value"])
    def _generator_inputs(self):
        if self._inputs is None:
            config = self.model.config
            rng = np.random.default_rng(self.seed)
            z = rng.standard_normal((self.n, config.latent_dim)).astype(np.float32)
            attrs = None
            if config.conditional:
                if self.real_attributes is None:
                    raise FacelibError("a conditional GAN needs attributes to generate from: "
                                       "pass real_attributes (the held-out faces' label rows)")
                attrs = self.real_attributes[rng.integers(0, len(self.real_attributes), self.n)]
            self._inputs = (z, attrs)
        return self._inputs

    def generate(self) -> np.ndarray:
        """The fixed-latent faces from the GAN's sampling generator (the EMA one), uint8."""
        z, attrs = self._generator_inputs()
        out, sampler = [], self.model.sampling_generator()
        for i in range(0, self.n, self.batch_size):
            batch = z[i:i + self.batch_size] if attrs is None else [
                z[i:i + self.batch_size], attrs[i:i + self.batch_size]]
            out.append(to_uint8(keras.ops.convert_to_numpy(
                sampler(batch, training=False))))
        return np.concatenate(out)

    def measure(self) -> dict:
        """KID now; logs the row and saves the best checkpoint if improved."""
        t0 = time.perf_counter()
        if self._real_features is None:
            self._real_features = features_for(self.real_images, self.network,
                                               cache_dir=self.cache_dir)
        fake = self.network.extract(self.generate())
        res = registry.compute(["kid"], self._real_features, fake, options={"kid": {
            "num_subsets": self.num_subsets, "subset_size": self.subset_size, "seed": self.seed}})
        step = int(self.model.step.numpy())
        row = {"step": step, "time": time.time(), "kid_mean": res["kid"], "kid_std": res["kid_std"],
               "feature_network": self.network.name, "comparable": self.comparable,
               "n_generated": self.n, "n_real": int(len(self.real_images)),
               "kid_subset_size": res["kid_subset_size"],
               "kid_seconds": round(time.perf_counter() - t0, 2)}
        improved = res["kid"] < self.best
        if improved:
            self.best = res["kid"]
            if self.manager is not None:
                self.manager.save_best(self.model, self.metric, res["kid"])
        row["best"] = improved
        if self.log_row is not None:
            self.log_row(row)
        self.history.append(row)
        return row

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        if any(np.ndim(v) == 0 and not math.isfinite(float(v)) for v in (logs or {}).values()):
            return  # diverged: nothing worth measuring (the Checkpointer stops training)
        row = self.measure()
        if logs is not None:
            logs["kid"] = row["kid_mean"]
        if self.log:
            mark = " (best so far: saved checkpoints/best)" if row["best"] else ""
            self.log(f"step {row['step']}: KID {row['kid_mean']:.4f} ± {row['kid_std']:.4f}{mark}")


__all__ = ["KIDCallback"]
