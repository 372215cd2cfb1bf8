"""The run folder as one typed object: it owns the layout every writer and reader uses.

A run folder is the one artifact every step after training reads (as StyleGAN2-ADA's run
directories)::

    RUN/
      config.json           the validated config that made it (rebuilds the models)
      data.json             which prepared cache it trained on
      attribute_prior.npz   the training faces' attribute rows (conditional sampling draws them)
      checkpoints/          step-NNNNNNNN/, latest, best/   (facelib.run.checkpoints)
      samples/              fixed-latent grids, one per epoch, and latest.png
      metrics.jsonl         one JSON object per logged step or evaluation
      tensorboard/
      generator.keras       the EMA generator as a standalone Keras model

Only this module spells those names. Training writes through a :class:`RunFolder` (its
callbacks receive the folder's writers, so the training layer never imports this one) and every
reader reads through it. ``RUN@CKPT`` specs ("runs/x@best", "runs/x@step-00000500") are parsed
here too, so the detector, synthetic data and commands agree on what they mean.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np

from facelib.config import Config
from facelib.errors import FacelibError
from facelib.run.pretrained import is_pretrained, pretrained_path
from facelib.run.checkpoints import CheckpointManager, sha256_of

CHECKPOINT_NAMES = ("latest", "best")


class RunFolder:
    """Paths and readers/writers of one run folder (nothing is created until written)."""

    CONFIG = "config.json"
    DATA = "data.json"
    PRIOR = "attribute_prior.npz"
    METRICS = "metrics.jsonl"
    SAMPLES = "samples"
    CHECKPOINTS = "checkpoints"
    TENSORBOARD = "tensorboard"
    GENERATOR = "generator.keras"

    def __init__(self, path: str | Path, keep_checkpoints: int = 2):
        self.path = Path(path)
        self.checkpoints = CheckpointManager(self.path / self.CHECKPOINTS, keep=keep_checkpoints)

    # -- layout ----------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.path / self.CONFIG

    @property
    def data_path(self) -> Path:
        return self.path / self.DATA

    @property
    def prior_path(self) -> Path:
        return self.path / self.PRIOR

    @property
    def metrics_path(self) -> Path:
        return self.path / self.METRICS

    @property
    def samples_dir(self) -> Path:
        return self.path / self.SAMPLES

    @property
    def latest_sample(self) -> Path:
        return self.samples_dir / "latest.png"

    @property
    def tensorboard_dir(self) -> Path:
        return self.path / self.TENSORBOARD

    @property
    def generator_path(self) -> Path:
        return self.path / self.GENERATOR

    def exists(self) -> bool:
        """True when the folder holds a run (its config.json)."""
        return self.config_path.is_file()

    def require(self) -> "RunFolder":
        if not self.exists():
            raise FacelibError(f"{self.path} is not a facelib run folder (no {self.CONFIG}): "
                               f"train one with python -m facelib train --run {self.path}")
        return self

    # -- config and data -------------------------------------------------------------------
    def read_config(self) -> Config:
        return Config.load(self.require().config_path)

    def write_config(self, config: Config) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        config.save(self.config_path)

    def read_data_info(self) -> dict | None:
        """data.json as a dict (None when the run does not record its data)."""
        if not self.data_path.is_file():
            return None
        try:
            info = json.loads(self.data_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise FacelibError(f"{self.data_path} is not valid JSON ({e}): delete it and pass "
                               "--data again") from None
        if not isinstance(info, dict) or not isinstance(info.get("path"), str):
            raise FacelibError(f"{self.data_path} has no 'path' entry: delete it and pass --data "
                               "again")
        return info

    def write_data_info(self, cache_path: str | Path, images: int, train_images: int,
                        resolution: int) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        self.data_path.write_text(json.dumps(
            {"path": str(Path(cache_path).resolve()), "images": int(images),
             "train_images": int(train_images), "resolution": int(resolution)}, indent=2))

    def training_data(self) -> Path | None:
        """The prepared cache this run was trained on, when it still exists."""
        info = self.read_data_info()
        if info is None:
            return None
        path = Path(info["path"])
        return path if path.exists() else None

    # -- the attribute prior ---------------------------------------------------------------
    def write_attribute_prior(self, attributes: np.ndarray, names) -> None:
        """The training faces' attribute rows as unique rows + counts: the joint distribution
        conditional sampling draws from (no impossible combination asked for by accident)."""
        rows, counts = np.unique(np.asarray(attributes, np.int8), axis=0, return_counts=True)
        self.path.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(self.prior_path, rows=rows, counts=counts, names=np.array(list(names)))

    def read_attribute_prior(self) -> tuple[list[str], tuple[np.ndarray, np.ndarray]] | None:
        """(names, (unique rows float32 (k, 40), counts)), or None for runs without one."""
        if not self.prior_path.is_file():
            return None
        # allow_pickle=False: a prior is plain arrays, so no file can run code when loaded.
        try:
            with np.load(self.prior_path, allow_pickle=False) as f:
                return [str(n) for n in f["names"]], (f["rows"].astype(np.float32), f["counts"])
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
            raise FacelibError(f"{self.prior_path} is damaged ({type(e).__name__}: "
                               f"{str(e).splitlines()[0][:100] if str(e) else ''}): restore it, "
                               "or delete it (conditional sampling then needs attributes given "
                               "explicitly)") from None

    # -- the metrics log (its one writer) ----------------------------------------------------
    def append_metrics(self, row: dict) -> None:
        """Append one JSON line to metrics.jsonl (training losses, KID, anything logged).

        After a crash mid-write the file ends in a torn line; the new row starts on a line of its
        own, so the torn line is the only one lost."""
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.metrics_path, "ab+") as f:
            torn = False
            if f.seek(0, os.SEEK_END) > 0:
                f.seek(-1, os.SEEK_END)
                torn = f.read(1) != b"\n"
            f.write((b"\n" if torn else b"") + json.dumps(row).encode() + b"\n")
            f.flush()

    def read_metrics(self) -> list[dict]:
        """metrics.jsonl as a list of dicts; a torn line (a crash mid-write) is skipped, and so is
        any line that is not a JSON object (bytes that are not UTF-8, nesting too deep to parse):
        the log is read line by line and every good row is kept."""
        rows = []
        if self.metrics_path.is_file():
            with open(self.metrics_path, encoding="utf-8", errors="replace") as f:
                for line in f:
                    try:
                        row = json.loads(line)
                    except (ValueError, RecursionError):  # JSONDecodeError is a ValueError
                        continue
                    if isinstance(row, dict):
                        rows.append(row)
        return rows

    # -- checkpoints -----------------------------------------------------------------------
    def checkpoint(self, which: str | Path = "latest") -> Path:
        """'latest', 'best', a 'step-NNNNNNNN' name or a checkpoint folder -> its path (a
        FacelibError that says how to get one when it is missing or incomplete)."""
        which = str(which)
        if which not in CHECKPOINT_NAMES and not Path(which).exists():
            which = str(self.checkpoints.directory / which)
        return self.checkpoints.resolve(which)

    def step_checkpoints(self) -> list[Path]:
        """The complete step-NNNNNNNN checkpoints, oldest first."""
        return self.checkpoints.complete()

    def export(self, dest: str | Path, checkpoint: str = "latest", description: str = "",
               weights: str = "float32", samples: bool = True) -> Path:
        """Write a shippable copy of this run (what ``pretrained:`` networks are): its config,
        data record, attribute prior, the chosen checkpoint's EMA generator and discriminator
        (no optimizer state: the copy does not resume), the KID rows of its metrics log and its
        latest sample grid (``samples=False`` leaves that preview out: 170 KB of a 32 px run,
        which the reference networks spend on weights instead). The checkpoint manifest keeps
        the entries of the files kept.

        ``weights="float16"`` stores the two networks' weights at half the size, deflated
        (they load back into float32 variables; see :func:`_store_float16`): what lets a wider
        reference network fit facelib's 10 MB for all of them. Measure the copy, not the run:
        its faces differ from the run's by the rounding."""
        if weights not in ("float32", "float16"):
            raise FacelibError(f"export weights={weights!r}: choose 'float32' or 'float16'")
        self.require()
        ckpt = self.checkpoint(checkpoint)
        self.checkpoints.verify(ckpt, generator_only=True)
        has_prior = self.read_attribute_prior() is not None  # checks it (no pickles) first
        dest = Path(dest)
        if dest.exists():
            shutil.rmtree(dest)
        copy = RunFolder(dest)
        (copy.checkpoints.directory / ckpt.name).mkdir(parents=True)
        shutil.copy2(self.config_path, copy.config_path)
        if has_prior:
            # Written compressed (runs from before write_attribute_prior compressed it were not).
            with np.load(self.prior_path, allow_pickle=False) as prior:
                np.savez_compressed(copy.prior_path, **{k: prior[k] for k in prior.files})
        info = self.read_data_info() or {}
        info = {**info, "path": "(not shipped) the cache it was trained on",
                **({"description": description} if description else {})}
        copy.data_path.write_text(json.dumps(info, indent=2) + "\n")
        if samples and self.latest_sample.is_file():
            copy.samples_dir.mkdir(parents=True)
            shutil.copy2(self.latest_sample, copy.latest_sample)
        keep = ("ema_generator.weights.h5", "discriminator.weights.h5", "state.json")
        manifest = json.loads((ckpt / "COMPLETE").read_text())
        for name in keep:
            target = copy.checkpoints.directory / ckpt.name / name
            if weights == "float16" and name.endswith(".weights.h5"):
                _store_float16(ckpt / name, target)
                manifest["files"][name] = {"bytes": target.stat().st_size,
                                           "sha256": sha256_of(target)}
            else:
                shutil.copy2(ckpt / name, target)
        manifest["files"] = {k: v for k, v in manifest["files"].items() if k in keep}
        (copy.checkpoints.directory / ckpt.name / "COMPLETE").write_text(
            json.dumps(manifest, indent=1) + "\n")
        for row in self.read_metrics():
            if "kid" in row:
                copy.append_metrics(row)
        return dest

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"


# float16's largest finite value is 65,504; below 2**-14 it loses precision (subnormals) but
# keeps an absolute error under 3e-8, far below what moves a face.
_FLOAT16_MAX = 65504.0


def _store_float16(source: Path, dest: Path) -> None:
    """Copy a Keras ``.weights.h5`` file with its float32 arrays stored as float16.

    Keras assigns each stored array to its variable, which casts it back to the variable's
    dtype, so the model that loads it is unchanged but for the rounding (relative 2**-11). An
    array with a value beyond float16's range stays float32: a variable is never clipped."""
    import h5py  # Keras' own HDF5 library: a weights file is plain datasets in groups

    shutil.copy2(source, dest)
    with h5py.File(dest, "r+") as f:
        names: list[str] = []
        f.visititems(lambda name, obj: names.append(name)
                     if isinstance(obj, h5py.Dataset) and obj.dtype == np.float32 else None)
        for name in names:
            values = f[name][()]
            if values.size and np.abs(values).max() > _FLOAT16_MAX:
                continue
            del f[name]
            # Deflate with byte shuffling takes about 6% more off float16 weights (their exponent
            # bytes repeat); h5py reads it back transparently. Below a few KB (scalars among
            # them) a chunked dataset's index costs more than it saves.
            deflate = (dict(compression="gzip", compression_opts=9, shuffle=True)
                       if values.nbytes >= 8192 else {})
            f.create_dataset(name, data=values.astype(np.float16), **deflate)
    # h5py leaves the deleted datasets' space in the file; copying the tree drops it.
    packed = dest.with_name(dest.name + ".packed")
    with h5py.File(dest, "r") as f, h5py.File(packed, "w") as g:
        for key, value in f.attrs.items():
            g.attrs[key] = value
        for key in f:
            f.copy(f[key], g)
    os.replace(packed, dest)


def parse_run_spec(spec: str | Path) -> tuple[Path, str]:
    """``RUN`` or ``RUN@CKPT`` -> (run folder, checkpoint name). CKPT is latest, best, a
    step-NNNNNNNN folder name or a checkpoint path; the default is latest. RUN may be
    ``pretrained:NAME``, a reference generator shipped with facelib (``facelib.run.pretrained``)."""
    text = str(spec)
    if not text:
        raise FacelibError("empty run spec: give a run folder, optionally RUN@latest, RUN@best or "
                           "RUN@step-NNNNNNNN")
    if "\x00" in text:
        raise FacelibError(f"run spec {text!r:.120} holds a NUL character, which no path can: "
                           "give a run folder, optionally RUN@latest, RUN@best or "
                           "RUN@step-NNNNNNNN")
    path, sep, checkpoint = text.rpartition("@") if "@" in text else (text, "", "latest")
    if sep and not checkpoint:
        raise FacelibError(f"run spec {text!r} ends with '@': name a checkpoint after it "
                           "(latest, best or step-NNNNNNNN)")
    if sep and not path:
        raise FacelibError(f"run spec {text!r} has no run folder before '@'")
    if is_pretrained(path):
        return pretrained_path(path, kind="run"), checkpoint or "latest"
    return Path(path), checkpoint or "latest"


__all__ = ["CHECKPOINT_NAMES", "RunFolder", "parse_run_spec"]
