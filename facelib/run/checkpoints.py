"""Atomic checkpoints of a whole GAN: G, D, EMA G, both optimizers and the step counter.

A checkpoint is a folder ``checkpoints/step-00001234/`` written under a temporary name, fsynced
and renamed into place; the text file ``checkpoints/latest`` is then replaced atomically. A crash
at any moment leaves the previous checkpoint as ``latest``. Randomness is a function of
(seed, step) (see ``facelib.training.gan``), so the step counter is the RNG state.

Why not ``tf.train.CheckpointManager``: it would do the rotation and the pointer, but (1) its
bundle is one TF-format object graph, so reading the EMA generator alone (what every analysis
does, through ``facelib.run.interface``) would need the whole GAN, both optimizers and the TF
backend rebuilt first, where the per-network ``.weights.h5`` files here load into a bare Keras
generator (and stay readable by any Keras 3 backend); (2) run folders already written by facelib
hold this layout and must keep loading. The hand-written part is therefore only the rotation
(``keep``) and the ``latest`` pointer, about 20 lines.

Damage: the ``COMPLETE`` marker is a manifest (size and SHA-256 of every file, written last), so
a truncated or altered file is found before it is loaded (`verify`; checkpoints written before
the manifest, whose marker reads ``ok``, get structural checks: HDF5 files open and read, .npz
files hold plain arrays). Readers fall back to the newest checkpoint that verifies and say so on
stderr (`latest_readable`); a resume also renames each damaged checkpoint ``step-N.damaged``, so
it is neither reused nor counted by the rotation, and the rotation only ever deletes checkpoints
older than the one just written: the last good checkpoint outlives every crash and every
damaged file.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

from facelib.atomic import fsync_dir, replace_dir
from facelib.errors import FacelibError
from facelib.limits import limit

COMPLETE = "COMPLETE"
STEP_DIR = re.compile(r"^step-(\d{1,12})$")  # step-00001234; not step-N.damaged, not .tmp
# What a resume needs; an analysis needs only the (EMA) generator and state.json.
REQUIRED_FILES = ("generator.weights.h5", "discriminator.weights.h5", "d_optimizer.npz",
                  "g_optimizer.npz", "state.json")


def _numbers_in(value, shape: tuple, low: float, high: float) -> bool:
    """Whether a JSON value is finite numbers (not booleans) of this shape, each in [low, high]."""
    try:
        if np.shape(value) != shape:
            return False
    except ValueError:  # ragged lists
        return False
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
               and low <= v <= high for v in np.ravel(np.asarray(value, dtype=object)))


class DamagedCheckpoint(FacelibError):
    """A checkpoint whose files do not check out: truncated, altered, unreadable or missing."""


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _check_structure(path: Path) -> None:
    """For checkpoints without a manifest: the file opens and every array in it reads."""
    if path.suffix == ".h5":
        import h5py  # Keras' own HDF5 reader: a checkpoint's weights are plain datasets

        with h5py.File(path, "r") as f:
            f.visititems(lambda _name, obj: obj[()] if isinstance(obj, h5py.Dataset) else None)
    elif path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            for key in z.files:
                z[key]


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def _step_of(path: Path) -> int:
    return int(STEP_DIR.match(path.name).group(1))


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
    def complete(self) -> list[Path]:
        """The complete step-NNNNNNNN checkpoints, oldest first (``.damaged`` ones excluded)."""
        if not self.directory.exists():
            return []
        found = [p for p in self.directory.iterdir()
                 if STEP_DIR.match(p.name) and (p / COMPLETE).is_file()]
        return sorted(found, key=_step_of)

    def latest(self) -> Path | None:
        """The newest complete checkpoint (the ``latest`` pointer, else a scan)."""
        pointer = self.directory / "latest"
        if pointer.is_file():
            try:
                name = pointer.read_text(encoding="utf-8").strip()
            except (OSError, ValueError):  # an unreadable or non-UTF-8 pointer: scan instead
                name = ""
            # The pointer only ever names a step folder beside it; anything else is ignored.
            if STEP_DIR.match(name) and (self.directory / name / COMPLETE).is_file():
                return self.directory / name
        complete = self.complete()
        return complete[-1] if complete else None

    def unfinished(self, than: Path | None = None) -> list[Path]:
        """step-N folders without a COMPLETE marker (newer than ``than``, if given). facelib's
        writer never leaves one (it renames a finished folder into place), so each is a
        damaged or tampered checkpoint, never a step to resume from."""
        if not self.directory.exists():
            return []
        floor = _step_of(than) if than is not None else -1
        return sorted((p for p in self.directory.iterdir()
                       if STEP_DIR.match(p.name) and p.is_dir()
                       and not (p / COMPLETE).is_file() and _step_of(p) > floor), key=_step_of)

    def candidates(self) -> list[Path]:
        """Complete step checkpoints in the order a fallback tries them: ``latest`` first, then
        the others newest first."""
        latest = self.latest()
        rest = [p for p in reversed(self.complete()) if p != latest]
        return ([latest] if latest is not None else []) + rest

    def verify(self, path: str | Path, generator_only: bool = False) -> dict:
        """Check a checkpoint's files without loading them into a model; returns its state.

        With the manifest in ``COMPLETE``, every listed file must have its recorded size and
        SHA-256; older checkpoints get structural checks. ``generator_only`` checks what
        `facelib.run.interface.Run` reads (the EMA generator, else the generator, and
        state.json), otherwise everything a resume reads. DamagedCheckpoint names the file.
        """
        path = Path(path)
        marker = path / COMPLETE
        if not marker.is_file():
            raise self._damaged(path, marker, "is missing (the checkpoint was never finished)")
        try:
            text = marker.read_text(encoding="utf-8")
            manifest = None if text.strip() == "ok" else json.loads(text)["files"]
            if manifest is not None and not isinstance(manifest, dict):
                raise ValueError("no file list")
        except (OSError, ValueError, KeyError, TypeError, RecursionError):
            raise self._damaged(path, marker, "is not a checkpoint manifest") from None
        if generator_only:
            ema = path / "ema_generator.weights.h5"
            needed = [ema.name if ema.exists() or "ema_generator.weights.h5" in (manifest or {})
                      else "generator.weights.h5", "state.json"]
        else:
            needed = sorted(set(REQUIRED_FILES) | set(manifest or ())
                            | ({"ema_generator.weights.h5"}
                               if (path / "ema_generator.weights.h5").exists() else set()))
        for name in needed:
            file = path / name
            if not file.is_file():
                raise self._damaged(path, file, "is missing")
            if manifest is not None:
                entry = manifest.get(name)
                if not isinstance(entry, dict):
                    raise self._damaged(path, file, "is not in the checkpoint's manifest")
                if file.stat().st_size != entry.get("bytes"):
                    raise self._damaged(path, file, f"has {file.stat().st_size:,} bytes, "
                                        f"{entry.get('bytes')!r:.20} were written (truncated?)")
                if sha256_of(file) != entry.get("sha256"):
                    raise self._damaged(path, file, "does not match the SHA-256 written with "
                                        "it (altered or corrupted)")
            elif name != "state.json":
                try:
                    _check_structure(file)
                except Exception as e:  # noqa: BLE001 - h5py/numpy/zipfile: any failure
                    reason = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
                    raise self._damaged(path, file, f"cannot be read ({reason})") from None
        state = self.state(path)
        match = STEP_DIR.match(path.name)
        if match and int(match.group(1)) != state["step"]:
            raise self._damaged(path, path / "state.json", f"says step {state['step']}, the "
                                f"folder step {int(match.group(1))}")
        return state

    def _damaged(self, path: Path, file: Path, problem: str) -> DamagedCheckpoint:
        others = [p.name for p in self.complete() if p != path]
        fix = (f"load another checkpoint (RUN@{others[-1]}; complete ones: {', '.join(others)})"
               if others else "no other complete checkpoint is left: retrain the run")
        return DamagedCheckpoint(f"{file} {problem}; checkpoint {path.name} is damaged: {fix}, "
                                 f"or restore {path} from a copy")

    def latest_readable(self, generator_only: bool = False, quarantine: bool = False,
                        log=None) -> Path | None:
        """The newest complete checkpoint that `verify` accepts (None when there is none at
        all). Each damaged one passed over is reported through ``log`` (default: stderr) and,
        with ``quarantine`` (a resume), renamed ``step-N.damaged``: kept for inspection, but
        never reused, overwritten or counted by the rotation. FacelibError when every
        checkpoint is damaged."""
        log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        candidates = self.candidates()
        problems = []
        for i, path in enumerate(candidates):
            try:
                self.verify(path, generator_only=generator_only)
            except DamagedCheckpoint as e:
                problems.append(str(e).split(";")[0])
                moved = self.quarantine(path) if quarantine else None
                older = candidates[i + 1].name if i + 1 < len(candidates) else None
                log(f"facelib: warning: {str(e).split(';')[0]}; "
                    + (f"moved it aside to {moved.name}; " if moved else "")
                    + (f"falling back to {older}" if older else "no older checkpoint to try"))
                continue
            self._pass_over_unfinished(path, quarantine, log)
            if problems and quarantine:
                _write_text_atomic(self.directory / "latest", path.name + "\n")
            return path
        if not candidates:
            self._pass_over_unfinished(None, quarantine, log)
            return None
        raise FacelibError(
            f"no readable checkpoint in {self.directory} ({'; '.join(problems)})"
            + ("; the damaged ones were renamed *.damaged" if quarantine else "")
            + ": restore the folder from a copy, or start a new run folder")

    def _pass_over_unfinished(self, chosen: Path | None, quarantine: bool, log) -> None:
        for path in self.unfinished(chosen):
            moved = self.quarantine(path) if quarantine else None
            log(f"facelib: warning: {path} has no {COMPLETE} marker (never finished, or "
                f"damaged); {'moved it aside to ' + moved.name + '; ' if moved else ''}using "
                f"{chosen.name if chosen else 'no checkpoint'} instead")

    def quarantine(self, path: Path) -> Path | None:
        """Rename a damaged checkpoint ``step-N.damaged`` (``.damaged-2``, ... if taken)."""
        target = path.with_name(path.name + ".damaged")
        k = 1
        while target.exists():
            k += 1
            target = path.with_name(f"{path.name}.damaged-{k}")
        try:
            os.replace(path, target)
        except OSError:  # a read-only copy (e.g. Drive): leave it, it is still passed over
            return None
        fsync_dir(self.directory)
        return target

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
        if gan.ema_generator is not None:  # with its standing statistics, where configured
            gan.sampling_generator().save_weights(tmp / "ema_generator.weights.h5")
        np.savez(tmp / "d_optimizer.npz", **_optimizer_arrays(gan.d_optimizer))
        np.savez(tmp / "g_optimizer.npz", **_optimizer_arrays(gan.g_optimizer))
        state = {"step": int(gan.step.numpy()), "seed": gan.config.seed, "time": time.time(),
                 **(extra or {})}
        for name, (var, _, _) in gan.training_state.items():  # ADA's p, LeCam's averages
            state[name] = np.asarray(var.numpy(), np.float64).tolist()
        (tmp / "state.json").write_text(json.dumps(state, indent=2))
        files = {}
        for f in sorted(tmp.iterdir()):
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
            files[f.name] = {"bytes": f.stat().st_size, "sha256": sha256_of(f)}
        # The marker is the manifest: `verify` finds a truncated or altered file by it.
        (tmp / COMPLETE).write_text(json.dumps({"format": 1, "files": files}, indent=1) + "\n")
        fsync_dir(tmp)
        return replace_dir(tmp, final)

    def save(self, gan, extra: dict | None = None) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        step = int(gan.step.numpy())
        path = self._write(gan, self.directory / f"step-{step:08d}", extra)
        _write_text_atomic(self.directory / "latest", path.name + "\n")
        # Rotation deletes only checkpoints older than the one just written (keeping keep - 1
        # of them): one at a later step (e.g. left by a run that fell back to an older
        # checkpoint and could not move it aside) is never counted against the good ones.
        older = [p for p in self.complete() if _step_of(p) < step]
        for old in older[:max(0, len(older) - (self.keep - 1))]:
            shutil.rmtree(old, ignore_errors=True)
        return path

    def save_best(self, gan, metric: str, value: float) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        return self._write(gan, self.directory / "best", {"metric": metric, "value": value})

    # -- reading -------------------------------------------------------------------------
    @staticmethod
    def state(path: Path) -> dict:
        """state.json of a checkpoint; DamagedCheckpoint when it is unreadable or has no step."""
        file = Path(path) / "state.json"
        try:
            if file.stat().st_size > limit("FACELIB_MAX_JSON_BYTES"):
                raise ValueError(f"{file.stat().st_size:,} bytes")
            state = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as e:  # JSON/UTF-8 errors are ValueErrors
            raise DamagedCheckpoint(
                f"{file} is unreadable ({str(e).splitlines()[0][:100]}); checkpoint "
                f"{Path(path).name} is damaged: load another checkpoint or restore it from a "
                "copy") from None
        step = state.get("step") if isinstance(state, dict) else None
        if not isinstance(step, int) or isinstance(step, bool) or step < 0:
            raise DamagedCheckpoint(f"{file} holds no step number; checkpoint {Path(path).name} "
                                    "is damaged: load another checkpoint or restore it from a "
                                    "copy")
        return state

    def restore(self, gan, path: Path) -> dict:
        """Load everything into a compiled GAN; returns the checkpoint's state dict."""
        path = Path(path)
        gan.generator.load_weights(path / "generator.weights.h5")
        gan.discriminator.load_weights(path / "discriminator.weights.h5")
        if gan.ema_generator is not None:
            ema = path / "ema_generator.weights.h5"
            gan.ema_generator.load_weights(ema if ema.exists() else path / "generator.weights.h5")
        # allow_pickle=False: optimizer slots are plain arrays; nothing in the file runs code.
        try:
            with np.load(path / "d_optimizer.npz", allow_pickle=False) as d, \
                    np.load(path / "g_optimizer.npz", allow_pickle=False) as g:
                _restore_optimizer(gan.d_optimizer, d, "discriminator")
                _restore_optimizer(gan.g_optimizer, g, "generator")
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
            raise DamagedCheckpoint(
                f"{path}: its optimizer state cannot be read ({type(e).__name__}: "
                f"{str(e).splitlines()[0][:100] if str(e) else ''}); checkpoint {path.name} is "
                "damaged: restore it from a copy, or move it aside to resume from an older one"
            ) from None
        state = self.state(path)
        gan.step.assign(state["step"])
        for name, (var, low, high) in gan.training_state.items():
            # A checkpoint from before the setting was switched on starts it as a new run does:
            # at zeros (ADA's p at 0, LeCam's averages empty).
            value = state.get(name, np.zeros(var.shape).tolist())
            if not _numbers_in(value, tuple(var.shape), low, high):
                bounds = "" if math.isinf(low) and math.isinf(high) else f" in [{low:g}, {high:g}]"
                raise self._damaged(path, path / "state.json", f"says {name} {value!r:.60}, not "
                                    f"{math.prod(var.shape)} finite number(s){bounds}")
            var.assign(np.asarray(value, np.float32))
        return state
