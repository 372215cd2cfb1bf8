"""What every notebook's first cells need: the profile (smoke/colab/local), Drive, GPU check,
and a live view of training. Notebooks stay thin by calling these.

CI runs every notebook with ``FACELIB_PROFILE=smoke``: tiny models on the bundled sample, on CPU
(notebooks 05-08 analyse the pretrained networks shipped with facelib unless a run was trained).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import keras
import tensorflow as tf

from facelib.classifier import AttributeClassifier, train_attribute_classifier
from facelib.data.cache import is_cache
from facelib.data.prepare import prepare
from facelib.data.sample import bundled_sample_dir
from facelib.errors import FacelibError
from facelib.run import pretrained
from facelib.run.folder import RunFolder, parse_run_spec

PRETRAINED_CLASSIFIER = "celeba32-attributes"  # judges the pretrained runs' faces

PROFILES = ("auto", "smoke", "colab", "local")


@dataclass
class NotebookEnv:
    profile: str           # "smoke" | "colab" | "local"
    in_colab: bool
    workdir: Path          # where runs, caches and reports go (on Drive when mounted)
    gpus: list[str] = field(default_factory=list)

    @property
    def smoke(self) -> bool:
        return self.profile == "smoke"

    @property
    def preset(self) -> str:
        """The training preset that fits this profile."""
        return {"smoke": "smoke", "colab": "colab"}.get(self.profile, "colab" if self.gpus else "cpu")

    @property
    def real_data(self) -> str | Path:
        """The CelebA source for `prepare`: the bundled sample in smoke, else the download."""
        if self.smoke:
            return bundled_sample_dir()
        return "celeba"

    def path(self, *parts: str) -> Path:
        p = self.workdir.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def cache(self, resolution: int) -> Path:
        """The prepared CelebA cache at ``resolution`` in the work folder, prepared on first use
        (every notebook shares it, so CelebA is downloaded and resized once)."""
        cache = self.path("data", f"celeba-{resolution}")
        if not is_cache(cache):
            print(prepare(self.real_data, cache, resolution=resolution,
                          workdir=self.path("download")).summary())
        return cache

    def classifier(self, cache: str | Path, resolution: int, epochs: int, **kwargs):
        """The attribute classifier for ``resolution`` in the work folder: loaded when an earlier
        notebook trained it, else trained on ``cache`` (kwargs go to train_attribute_classifier)."""
        folder = self.path("classifiers", f"celeba-{resolution}")
        if (folder / "meta.json").exists():
            return AttributeClassifier.load(folder)
        return train_attribute_classifier(cache, folder, epochs=epochs, **kwargs)

    def run_or_pretrained(self, run: str | Path | None, pretrained_name: str):
        """The run a notebook analyses: ``run`` when it is a run folder with a complete
        checkpoint (or a ``RUN@CKPT`` / ``pretrained:NAME`` spec), else the reference network
        facelib ships as ``pretrained_name`` (``celeba32`` or ``pretrained:celeba32``), so the
        notebook works before (or without) training in notebooks 03/04. Prints one line saying
        which it loaded."""
        from facelib.run.interface import open_run  # TensorFlow: only when a run is loaded

        spec = str(run) if run else ""
        if spec and (pretrained.is_pretrained(spec) or _has_checkpoint(spec)):
            loaded = open_run(spec)
            print(f"run: {spec} (step {loaded.step})")
            return loaded
        name = (pretrained_name if pretrained.is_pretrained(pretrained_name)
                else pretrained.PREFIX + pretrained_name)
        loaded = open_run(name)
        why = f"no trained run at {spec}" if spec else "no run given"
        print(f"run: {name}, the reference network shipped with facelib ({why}; train one in "
              "notebook 03/04 to use yours)")
        return loaded

    def classifier_for(self, run, cache, epochs: int, **kwargs):
        """The attribute classifier that judges ``run``'s faces: for a pretrained run, the one
        facelib ships (``pretrained:celeba32-attributes``) when it is there; otherwise
        `classifier` on ``cache`` at the run's resolution (loaded, or trained with kwargs); None
        (said in one line) when ``cache`` is not a prepared cache to train on."""
        if pretrained.name_of(getattr(run, "path", "")) is not None:
            print(f"attribute classifier: {pretrained.PREFIX}{PRETRAINED_CLASSIFIER}, shipped "
                  "with facelib")
            return AttributeClassifier.load(pretrained.PREFIX + PRETRAINED_CLASSIFIER)
        if not cache or not is_cache(cache):
            print("no classifier: attribute entries of the report will be null")
            return None
        return self.classifier(cache, run.resolution, epochs, **kwargs)


def _has_checkpoint(spec: str) -> bool:
    """True when the run folder of ``spec`` (a folder or ``RUN@CKPT``) holds a complete
    checkpoint."""
    folder = RunFolder(parse_run_spec(spec)[0])
    return folder.exists() and folder.checkpoints.latest() is not None


def in_colab() -> bool:
    return "google.colab" in sys.modules


def setup(profile: str = "auto", mount_drive: bool = False, drive_folder: str = "facelib",
          workdir: str | Path | None = None) -> NotebookEnv:
    """Pick the profile, mount Drive if asked (so a Colab disconnect loses no checkpoint), and
    report the accelerator. ``FACELIB_PROFILE`` overrides ``profile`` (CI sets it to smoke)."""
    profile = os.environ.get("FACELIB_PROFILE", profile)
    if profile not in PROFILES:
        raise FacelibError(f"profile {profile!r}: choose one of {PROFILES}")
    colab = in_colab()
    if profile == "auto":
        profile = "colab" if colab else "local"
    if workdir is None:
        if colab and mount_drive and profile != "smoke":
            from google.colab import drive  # type: ignore[import-not-found]

            drive.mount("/content/drive")
            workdir = Path("/content/drive/MyDrive") / drive_folder
        else:
            workdir = Path(os.environ.get("FACELIB_WORKDIR", "facelib-work"))
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
    env = NotebookEnv(profile, colab, workdir, gpus)
    accel = ", ".join(gpus) if gpus else "none (CPU only)"
    print(f"facelib profile: {profile} | GPU: {accel} | work folder: {workdir.resolve()}")
    if profile == "colab" and not gpus:
        print("No GPU: in Colab choose Runtime > Change runtime type > T4 GPU, then rerun.")
    return env


def show_image(path: str | Path, width: int | None = None) -> None:
    """Display a PNG in the notebook (no-op outside IPython)."""
    try:
        from IPython.display import Image, display
    except ImportError:
        return
    display(Image(filename=str(path), width=width))


def live_grid_callback(run_dir: str | Path, width: int = 512):
    """A Keras callback that redraws the run's latest sample grid after each epoch."""
    from IPython.display import Image, clear_output, display

    latest = RunFolder(run_dir).latest_sample

    class LiveGrid(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if latest.exists():
                clear_output(wait=True)
                losses = ", ".join(f"{k}={float(v):.3f}" for k, v in (logs or {}).items())
                print(f"epoch {epoch + 1}: {losses}")
                display(Image(filename=str(latest), width=width))

    return LiveGrid()


def plot_losses(run_dir: str | Path, ax=None):
    """D and G losses (and mean logits) from the run's metrics.jsonl against the step."""
    import matplotlib.pyplot as plt

    rows = [r for r in RunFolder(run_dir).read_metrics() if "d_loss" in r]
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3.5))
    steps = [r["step"] for r in rows]
    for key in ("d_loss", "g_loss", "real_logit", "fake_logit"):
        if rows and key in rows[0]:
            ax.plot(steps, [r[key] for r in rows], label=key)
    ax.set_xlabel("step")
    ax.set_title(f"training curves: {run_dir}")
    ax.legend()
    return ax
