"""A trained run folder behind one narrow generator interface (as InterFaceGAN's generators).

Metrics, latent tools, the detector, widgets and notebooks only use :class:`Run`, so they never
need to know how the run was trained::

    run = facelib.load_run("runs/x")
    z = run.sample_latents(8, seed=0)       # float32 (8, latent_dim), standard normal
    x = run.synthesize(z)                    # float32 NHWC in [-1, 1]
    u = run.generate(8, seed=0)              # uint8 NHWC
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

import numpy as np

from facelib.config import Config
from facelib.errors import FacelibError
from facelib.images import to_uint8


def build_float32(builder, config: Config):
    """Build a network in float32 whatever the global dtype policy (a mixed-precision run's
    weights are float32 variables; inference and analysis run in float32)."""
    import keras

    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        return builder(config)
    finally:
        keras.config.set_dtype_policy(policy)


class Run:
    """A run folder's generator (EMA weights of the chosen checkpoint) and its metadata."""

    def __init__(self, path: Path, config: Config, generator, step: int, checkpoint: Path,
                 attribute_names: list[str], attribute_prior: tuple[np.ndarray, np.ndarray] | None):
        self.path = Path(path)
        self.config = config
        self.generator = generator
        self.step = step
        self.checkpoint = checkpoint
        self.attribute_names = attribute_names
        self._prior = attribute_prior

    @classmethod
    def load(cls, path: str | Path, checkpoint: str = "latest") -> "Run":
        """checkpoint: 'latest', 'best', or a checkpoint folder."""
        from facelib.models.dcgan import build_generator
        from facelib.training.checkpoint import CheckpointManager

        path = Path(path)
        if not (path / "config.json").exists():
            raise FacelibError(f"{path} is not a facelib run folder (no config.json): train one "
                               f"with python -m facelib train --run {path}")
        config = Config.load(path / "config.json")
        manager = CheckpointManager(path / "checkpoints")
        ckpt = manager.resolve(checkpoint)
        generator = build_float32(build_generator, config)
        weights = ckpt / "ema_generator.weights.h5"
        import warnings

        try:
            # Keras warns, rather than fails, when some saved layers find no match: a run made
            # by another architecture must not load half-initialised.
            with warnings.catch_warnings():
                warnings.filterwarnings("error", message=".*(Skipping|could not be loaded).*")
                generator.load_weights(weights if weights.exists() else ckpt / "generator.weights.h5")
        except (ValueError, UserWarning) as e:
            raise FacelibError(
                f"{ckpt}: its weights do not fit the generator this facelib builds from "
                f"{path / 'config.json'} (the run was made by an older architecture): retrain "
                f"it, or load it with the facelib version that trained it ({e.__class__.__name__}: "
                f"{str(e).splitlines()[0][:120]})") from e
        names, prior = cls._load_prior(path)
        return cls(path, config, generator, CheckpointManager.state(ckpt)["step"], ckpt, names, prior)

    @staticmethod
    def _load_prior(path: Path):
        from facelib.data.celeba import ATTRIBUTE_NAMES

        prior_path = path / "attribute_prior.npz"
        if not prior_path.exists():
            return list(ATTRIBUTE_NAMES), None
        with np.load(prior_path) as f:
            return [str(n) for n in f["names"]], (f["rows"].astype(np.float32), f["counts"])

    def discriminator(self):
        """The discriminator of the same checkpoint (float32), or None when the checkpoint holds
        none. Analyses use its features (inversion loss, activation maps)."""
        from facelib.models.dcgan import build_discriminator

        weights = Path(self.checkpoint) / "discriminator.weights.h5"
        if not weights.is_file():
            return None
        model = build_float32(build_discriminator, self.config)
        model.load_weights(weights)
        return model

    @property
    def attribute_prior(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(unique attribute rows (k, 40) float32 0/1, their counts) of the training faces."""
        return self._prior

    # -- the interface -------------------------------------------------------------------
    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    @property
    def resolution(self) -> int:
        return self.config.resolution

    @property
    def conditional(self) -> bool:
        return self.config.conditional

    def sample_latents(self, n: int, seed: int = 0) -> np.ndarray:
        return np.random.default_rng(seed).standard_normal((n, self.latent_dim)).astype(np.float32)

    def sample_attributes(self, n: int, fixed: Mapping[str, int] | None = None,
                          seed: int = 0) -> np.ndarray:
        """(n, 40) float32 rows from the training faces' joint attribute distribution, with the
        attributes in ``fixed`` held at 0 or 1 (rows that disagree are excluded)."""
        if self._prior is None:
            raise FacelibError(f"{self.path} has no attribute_prior.npz: retrain it with this "
                               "version of facelib")
        rows, counts = self._prior
        mask = np.ones(len(rows), bool)
        for name, value in (fixed or {}).items():
            if name not in self.attribute_names:
                raise FacelibError(f"unknown attribute '{name}'; valid names: "
                                   f"{', '.join(self.attribute_names)}")
            if value not in (0, 1, True, False):
                raise FacelibError(f"attribute {name}={value!r}: use 0 (absent) or 1 (present)")
            mask &= rows[:, self.attribute_names.index(name)] == int(value)
        if not mask.any():
            alone = ", ".join(
                f"{k}={int(v)}: {int(counts[rows[:, self.attribute_names.index(k)] == int(v)].sum())} faces"
                for k, v in fixed.items())
            raise FacelibError(f"no training face has the combination {dict(fixed)} (each alone: "
                               f"{alone}): relax it, e.g. drop one of these attributes")
        p = counts[mask] / counts[mask].sum()
        pick = np.random.default_rng(seed).choice(np.flatnonzero(mask), size=n, p=p)
        return rows[pick].astype(np.float32)

    def _attributes_for(self, n: int, attrs, seed: int) -> np.ndarray | None:
        if attrs is None:
            return self.sample_attributes(n, None, seed) if self.conditional else None
        if not self.conditional:
            raise FacelibError(f"{self.path} is an unconditional run: attributes cannot be chosen. "
                               "Train with --conditional, or move along attribute directions "
                               "(facelib.latent).")
        if isinstance(attrs, Mapping):
            return self.sample_attributes(n, attrs, seed)
        arr = np.asarray(attrs, np.float32)
        if arr.ndim == 1:
            arr = np.broadcast_to(arr, (n, arr.shape[0]))
        if arr.shape != (n, self.config.num_attributes) or not np.isin(arr, (0, 1)).all():
            raise FacelibError(f"attrs must be a dict name->0/1 or an ({n}, "
                               f"{self.config.num_attributes}) array of 0/1, got {arr.shape}")
        return arr

    def synthesize(self, z, attrs=None, batch_size: int = 256, seed: int = 0) -> np.ndarray:
        """Latents (n, latent_dim) [+ attributes] -> float32 NHWC images in [-1, 1].

        attrs: None (conditional runs draw from the data's joint distribution with ``seed``),
        a dict of attributes to fix, or an (n, 40) 0/1 array.
        """
        z = np.asarray(z, np.float32)
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise FacelibError(f"latents must have shape (n, {self.latent_dim}), got {z.shape}")
        y = self._attributes_for(len(z), attrs, seed)
        out = []
        for i in range(0, len(z), batch_size):
            inputs = z[i:i + batch_size] if y is None else [z[i:i + batch_size], y[i:i + batch_size]]
            out.append(np.asarray(self.generator(inputs, training=False)))
        return np.concatenate(out) if out else np.zeros((0, self.resolution, self.resolution, 3),
                                                         np.float32)

    def generate(self, n: int, seed: int = 0, attrs=None, batch_size: int = 256) -> np.ndarray:
        """n faces as uint8 NHWC; the same seed gives the same faces."""
        return to_uint8(self.synthesize(self.sample_latents(n, seed), attrs, batch_size, seed))

    def training_data(self) -> Path | None:
        """The prepared cache this run was trained on, when it still exists."""
        info = self.path / "data.json"
        if info.exists():
            path = Path(json.loads(info.read_text())["path"])
            return path if path.exists() else None
        return None

    def __repr__(self) -> str:
        kind = "conditional" if self.conditional else "unconditional"
        return (f"Run({str(self.path)!r}, {kind}, {self.resolution}px, latent {self.latent_dim}, "
                f"step {self.step})")
