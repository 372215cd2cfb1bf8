"""A trained run folder behind one narrow generator interface (as InterFaceGAN's generators).

Metrics, latent tools, the detector, widgets and notebooks only use :class:`Run`, so they never
need to know how the run was trained::

    run = facelib.load_run("runs/x")
    z = run.sample_latents(8, seed=0)       # float32 (8, latent_dim), standard normal
    x = run.synthesize(z)                    # float32 NHWC in [-1, 1]
    u = run.generate(8, seed=0)              # uint8 NHWC
"""

from __future__ import annotations

import copy
import os
import sys
import warnings
from pathlib import Path
from typing import Mapping

import keras
import numpy as np

from facelib.config import Config
from facelib.data.celeba import ATTRIBUTE_NAMES
from facelib.errors import FacelibError
from facelib.images import to_uint8
from facelib.models import build_discriminator, build_generator
from facelib.run import feature_network
from facelib.run.checkpoints import DamagedCheckpoint
from facelib.run.folder import RunFolder, parse_run_spec
from facelib.run.pretrained import PREFIX, name_of


def build_float32(builder, config: Config, **kwargs):
    """Build a network in float32 whatever the global dtype policy (a mixed-precision run's
    weights are float32 variables; inference and analysis run in float32)."""
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        return builder(config, **kwargs)
    finally:
        keras.config.set_dtype_policy(policy)


def _load_generator(config: Config, ckpt: Path, folder: RunFolder):
    """The float32 generator with the checkpoint's EMA weights (else its generator weights)."""
    generator = build_float32(build_generator, config)
    weights = ckpt / "ema_generator.weights.h5"
    weights = weights if weights.exists() else ckpt / "generator.weights.h5"
    try:
        # Keras warns, rather than fails, when some saved layers find no match: a run made
        # by another architecture must not load half-initialised.
        with warnings.catch_warnings():
            warnings.filterwarnings("error", message=".*(Skipping|could not be loaded).*")
            generator.load_weights(weights)
    except OSError as e:  # HDF5 could not read the file: damage `verify` could not see
        raise DamagedCheckpoint(
            f"{weights} cannot be read ({str(e).splitlines()[0][:120]}); checkpoint "
            f"{ckpt.name} is damaged: load another checkpoint or restore it from a copy") from None
    except (ValueError, UserWarning) as e:
        raise FacelibError(
            f"{ckpt}: its weights do not fit the generator this facelib builds from "
            f"{folder.config_path} (the run was made by an older architecture): retrain "
            f"it, or load it with the facelib version that trained it ({e.__class__.__name__}: "
            f"{str(e).splitlines()[0][:120]})") from e
    return generator


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
        self.folder = RunFolder(self.path)
        self.tuning = None  # set on copies whose generator was tuned (latent.tune_generator)

    def with_generator(self, generator) -> "Run":
        """A copy of this run that draws with ``generator`` (the same architecture, other
        weights: ``facelib.latent.tune_generator``'s tuned copy); this run is not changed. The
        copy still names this run's folder and checkpoint, whose files hold the untuned
        weights."""
        other = copy.copy(self)
        other.generator = generator
        return other

    @classmethod
    def load(cls, path: str | Path | RunFolder, checkpoint: str = "latest") -> "Run":
        """checkpoint: 'latest', 'best', a 'step-NNNNNNNN' name or a checkpoint folder.

        Every checkpoint is verified before it is loaded (`CheckpointManager.verify`). With
        'latest', a damaged checkpoint is passed over for the next older complete one, with a
        warning on stderr; a damaged checkpoint named explicitly is a FacelibError that names
        the file and the checkpoints left to load."""
        folder = path if isinstance(path, RunFolder) else RunFolder(path)
        config = folder.read_config()
        ckpt = folder.checkpoint(checkpoint)  # FacelibError with the fix when there is none
        manager = folder.checkpoints
        candidates = manager.candidates() if str(checkpoint) == "latest" else [ckpt]
        if str(checkpoint) == "latest":
            for path in manager.unfinished(candidates[0]):
                print(f"facelib: warning: {path} has no COMPLETE marker (never finished, or "
                      f"damaged); loading {candidates[0].name}", file=sys.stderr, flush=True)
        for i, ckpt in enumerate(candidates):
            try:
                state = manager.verify(ckpt, generator_only=True)
                generator = _load_generator(config, ckpt, folder)
                break
            except DamagedCheckpoint as e:
                if i + 1 == len(candidates):
                    raise
                print(f"facelib: warning: {str(e).split(';')[0]}; falling back to the older "
                      f"checkpoint {candidates[i + 1].name}", file=sys.stderr, flush=True)
        prior = folder.read_attribute_prior()
        names, prior = (list(ATTRIBUTE_NAMES), None) if prior is None else prior
        run = cls(folder.path, config, generator, state["step"], ckpt, names, prior)
        run.folder = folder
        return run

    def discriminator(self):
        """The discriminator of the same checkpoint (float32), or None when the checkpoint holds
        none. Analyses use its features (inversion loss, activation maps)."""
        weights = Path(self.checkpoint) / "discriminator.weights.h5"
        if not weights.is_file():
            return None
        model = build_float32(build_discriminator, self.config,
                              feature_network=feature_network.load(self.config))
        try:
            model.load_weights(weights)
        except OSError as e:
            raise DamagedCheckpoint(f"{weights} cannot be read ({str(e).splitlines()[0][:120]}); "
                                    f"checkpoint {Path(self.checkpoint).name} is damaged: load "
                                    "another checkpoint or restore it from a copy") from None
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

    def _attributes_for(self, n: int, attrs, seed: int, extrapolate: bool = False
                        ) -> np.ndarray | None:
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
        if arr.shape != (n, self.config.num_attributes):
            raise FacelibError(f"attrs must be a dict name->0/1 or an ({n}, "
                               f"{self.config.num_attributes}) array of 0/1, got {arr.shape}")
        if extrapolate:
            if not np.isfinite(arr).all():
                raise FacelibError("attrs has NaN or infinite values; give finite numbers")
        elif not np.isin(arr, (0, 1)).all():
            bad = sorted(set(np.unique(arr[~np.isin(arr, (0, 1))]).tolist()))[:4]
            raise FacelibError(f"attrs must be 0/1, got values such as {bad} (CelebA's raw -1/1 "
                               "labels? map -1 to 0); values beyond 0/1 are for edits: "
                               "extrapolate=True")
        return arr

    def synthesize(self, z, attrs=None, batch_size: int = 256, seed: int = 0,
                   extrapolate: bool = False) -> np.ndarray:
        """Latents (n, latent_dim) [+ attributes] -> float32 NHWC images in [-1, 1].

        attrs: None (conditional runs draw from the data's joint distribution with ``seed``),
        a dict of attributes to fix, or an (n, 40) 0/1 array. ``extrapolate=True`` admits any
        finite values in the array: the generator is linear in its attribute input up to the
        first nonlinearity, so 2 asks for an attribute about twice as strongly as 1 (what
        ``edit_attributes(..., strength=2)`` uses); training only ever showed it 0 and 1.
        """
        z = np.asarray(z, np.float32)
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise FacelibError(f"latents must have shape (n, {self.latent_dim}), got {z.shape}")
        y = self._attributes_for(len(z), attrs, seed, extrapolate)
        out = []
        for i in range(0, len(z), batch_size):
            inputs = z[i:i + batch_size] if y is None else [z[i:i + batch_size], y[i:i + batch_size]]
            out.append(np.asarray(self.generator(inputs, training=False)))
        return np.concatenate(out) if out else np.zeros((0, self.resolution, self.resolution, 3),
                                                         np.float32)

    def generate(self, n: int, seed: int = 0, attrs=None, batch_size: int = 256) -> np.ndarray:
        """n faces as uint8 NHWC; the same seed gives the same faces."""
        return to_uint8(self.synthesize(self.sample_latents(n, seed), attrs, batch_size, seed))

    @property
    def label(self) -> str:
        """``pretrained:NAME`` or the folder's name: what titles and report keys call it."""
        return run_label(self)

    def training_data(self) -> Path | None:
        """The prepared cache this run was trained on, when it still exists."""
        return self.folder.training_data()

    def __repr__(self) -> str:
        kind = "conditional" if self.conditional else "unconditional"
        return (f"Run({str(self.path)!r}, {kind}, {self.resolution}px, latent {self.latent_dim}, "
                f"step {self.step})")


class GeneratorFile:
    """An unconditional generator saved alone as a ``.keras`` file (a benchmark's snapshot, a
    network exported from elsewhere): the generator interface of ``Run`` (``resolution``,
    ``latent_dim``, ``generate``) without a run folder. Latents are standard normal, as facelib
    trains them."""

    conditional = False

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            # safe_mode=True (Keras' default, stated): Python code in the file is refused.
            self.generator = keras.models.load_model(self.path, compile=False, safe_mode=True)
        except Exception as e:  # noqa: BLE001 - Keras raises ValueError, OSError, zip errors
            raise FacelibError(f"{self.path} could not be loaded as a generator "
                               f"({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}"
                               "); pass a run folder or a generator saved with model.save") from None
        if len(self.generator.inputs) != 1:
            raise FacelibError(f"{self.path} is a conditional generator (it takes "
                               f"{len(self.generator.inputs)} inputs); load its run folder, "
                               "which knows the attributes it was trained on")
        self.latent_dim = int(self.generator.inputs[0].shape[-1])
        self.resolution = int(self.generator.outputs[0].shape[1])
        self.step = -1
        self.checkpoint = self.path

    def sample_latents(self, n: int, seed: int = 0) -> np.ndarray:
        return np.random.default_rng(seed).standard_normal((n, self.latent_dim)).astype(np.float32)

    def generate(self, n: int, seed: int = 0, attrs=None, batch_size: int = 256) -> np.ndarray:
        """n faces as uint8 NHWC; the same seed gives the same faces."""
        if attrs is not None:
            raise FacelibError(f"{self.path} is unconditional: it takes no attributes")
        z = self.sample_latents(n, seed)
        out = [np.asarray(self.generator(z[i:i + batch_size], training=False))
               for i in range(0, n, batch_size)]
        return to_uint8(np.concatenate(out)) if out else np.zeros(
            (0, self.resolution, self.resolution, 3), np.uint8)

    def __repr__(self) -> str:
        return f"GeneratorFile({str(self.path)!r}, {self.resolution}px, latent {self.latent_dim})"


def open_run(spec, checkpoint: str | None = None) -> Run:
    """A Run from a run folder or a ``RUN@CKPT`` spec (a ``.keras`` file: a ``GeneratorFile``) (latest, best, step-NNNNNNNN or a
    checkpoint folder; ``checkpoint`` overrides the spec's). Anything else is returned as is:
    a Run, or any object that speaks the generator interface (``resolution``, ``generate``,
    ...), so that another architecture only has to provide that interface."""
    if not isinstance(spec, (str, os.PathLike)):
        if not callable(getattr(spec, "generate", None)):
            raise FacelibError(f"{spec!r} is not a run: pass a run folder, RUN@CKPT, "
                               "facelib.load_run(path), or an object with .resolution and "
                               ".generate(n, seed)")
        return spec
    if str(spec).endswith(".keras") and Path(spec).is_file() and checkpoint is None:
        return GeneratorFile(spec)
    path, named = parse_run_spec(spec)
    return Run.load(path, checkpoint=checkpoint or named)


def run_label(run) -> str:
    """A short name for figure titles and report keys: ``pretrained:NAME`` for a shipped
    network (whose folder is a private cache copy named ``NAME-<content hash>``, which tells a
    reader nothing), else the run folder's or generator file's name; any other generator
    object is named by its class."""
    path = getattr(run, "path", None)
    if path is None:
        return type(run).__name__
    name = name_of(path)
    return PREFIX + name if name is not None else Path(str(path)).name


def describe_run(run) -> dict:
    """What a report records about the generator it measured (any run-like object)."""
    return {"path": str(getattr(run, "path", "?")), "name": run_label(run),
            "step": int(getattr(run, "step", -1)),
            "checkpoint": str(getattr(run, "checkpoint", "")),
            "conditional": bool(getattr(run, "conditional", False))}


__all__ = ["GeneratorFile", "Run", "build_float32", "describe_run", "open_run", "run_label"]
