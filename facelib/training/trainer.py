"""The training driver: config + data + run folder -> a trained, resumable run.

``train()`` is what ``python -m facelib train`` and the notebooks call. It owns the run folder
layout (``facelib.run`` reads it back) and the resume logic: a run continues from its latest
checkpoint with the same batches and the same random draws it would have seen uninterrupted.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from facelib.config import Config
from facelib.errors import FacelibError
from facelib.training.callbacks import Checkpointer, MetricsLog, SampleGrid
from facelib.training.checkpoint import CheckpointManager
from facelib.training.gan import GAN

# Fields a resumed run may change; everything else must match the saved config.json.
RESUMABLE_FIELDS = {"steps", "log_every", "checkpoint_every", "keep_checkpoints", "jit_compile",
                    "kid_every", "kid_samples", "kid_network"}
GRID_SEED_OFFSET = 7919  # grid latents come from seed + this, apart from training draws


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    checkpoint: Path | None
    logs: dict


def default_strategy() -> tf.distribute.Strategy:
    """TPUStrategy on a Colab TPU, MirroredStrategy on several GPUs, else the default."""
    if os.environ.get("COLAB_TPU_ADDR") or os.environ.get("TPU_NAME"):
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def _segments(step: int, total: int, epoch_steps: int):
    """fit() calls that take the run from ``step`` to ``total`` with epochs on boundaries of
    ``epoch_steps``: (start_step, steps_per_epoch, initial_epoch, epochs)."""
    out = []
    if step % epoch_steps and step < total:
        n = min(epoch_steps - step % epoch_steps, total - step)
        out.append((step, n, step // epoch_steps, step // epoch_steps + 1))
        step += n
    full = (total - step) // epoch_steps
    if full:
        out.append((step, epoch_steps, step // epoch_steps, step // epoch_steps + full))
        step += full * epoch_steps
    if step < total:
        out.append((step, total - step, step // epoch_steps, step // epoch_steps + 1))
    return out


def _check_resume_config(saved: Config, given: Config | None) -> Config:
    if given is None:
        return saved
    diff = sorted(k for k, v in given.to_dict().items()
                  if k not in RESUMABLE_FIELDS and saved.to_dict()[k] != v)
    if diff:
        raise FacelibError(
            f"--resume with settings that differ from the run's config.json: {diff}. A resumed "
            f"run keeps its architecture and training settings; only {sorted(RESUMABLE_FIELDS)} "
            f"may change. Start a new --run folder to train with other settings.")
    return saved.replace(**{k: getattr(given, k) for k in RESUMABLE_FIELDS})


def export_generator(gan: GAN, path: Path) -> Path:
    """Save the sampling generator as a standalone float32 ``.keras`` file, atomically."""
    from facelib.models.dcgan import build_generator

    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        model = build_generator(gan.config)
        model.set_weights([np.asarray(w) for w in gan.sampler.get_weights()])
    finally:
        keras.config.set_dtype_policy(policy)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}.keras")
    model.save(tmp)
    os.replace(tmp, path)
    return path


def _save_attribute_prior(cache, run_dir: Path) -> None:
    """The training faces' attribute rows as unique rows + counts: the joint distribution
    conditional sampling draws from (no impossible combination asked for by accident)."""
    rows, counts = np.unique(np.asarray(cache.attributes[cache.indices("train")], np.int8),
                             axis=0, return_counts=True)
    np.savez(run_dir / "attribute_prior.npz", rows=rows, counts=counts,
             names=np.array(cache.attribute_names))


def train(config: Config | None, run_dir: str | Path, data: str | Path | None = None,
          resume: bool = False, strategy: tf.distribute.Strategy | None = None,
          callbacks: list | None = None, verbose: int | str = "auto") -> TrainResult:
    """Train (or resume) a GAN into ``run_dir``.

    data: a prepared cache folder (``python -m facelib prepare``); None uses the bundled
    500-face sample, prepared at the config's resolution on first use.
    """
    from facelib.data.cache import FaceCache
    from facelib.data.pipeline import make_dataset, steps_per_epoch

    run_dir = Path(run_dir)
    manager = CheckpointManager(run_dir / "checkpoints")
    latest = manager.latest()
    config_path = run_dir / "config.json"
    if resume and config_path.exists():
        config = _check_resume_config(Config.load(config_path), config)
    elif resume and config is None:
        raise FacelibError(f"cannot resume {run_dir}: it has no config.json. Start it without "
                           "--resume (and with a --preset).")
    elif latest is not None:
        step = CheckpointManager.state(latest)["step"]
        raise FacelibError(f"{run_dir} already holds a run (checkpoint at step {step}): pass "
                           "--resume to continue it, or choose another --run folder")
    if config is None:
        raise FacelibError("train() needs a config (e.g. facelib.preset('smoke'))")
    manager.keep = config.keep_checkpoints

    if data is None:
        data_info = json.loads((run_dir / "data.json").read_text()) if (
            resume and (run_dir / "data.json").exists()) else None
        if data_info is not None:
            data = data_info["path"]
        else:
            from facelib.data.sample import sample_cache
            data = sample_cache(config.resolution)
    cache = FaceCache.open(data)
    if cache.resolution != config.resolution:
        raise FacelibError(
            f"the data at {data} is prepared at {cache.resolution}px but the config asks for "
            f"{config.resolution}px: prepare it with --resolution {config.resolution}, or "
            f"train with --resolution {cache.resolution}")
    n_train = len(cache.indices("train"))
    if n_train < config.batch_size:
        raise FacelibError(f"{data} has {n_train} training images, fewer than batch_size "
                           f"{config.batch_size}: lower --batch-size or use more data")

    run_dir.mkdir(parents=True, exist_ok=True)
    config.save(config_path)
    (run_dir / "data.json").write_text(json.dumps(
        {"path": str(Path(data).resolve()), "images": len(cache), "train_images": n_train,
         "resolution": cache.resolution}, indent=2))
    _save_attribute_prior(cache, run_dir)

    strategy = strategy or default_strategy()
    previous_policy = keras.config.dtype_policy()
    if config.mixed_precision:
        keras.config.set_dtype_policy("mixed_float16")
    try:
        with strategy.scope():
            gan = GAN(config)
            gan.compile()
        if resume and latest is not None:
            manager.restore(gan, latest)
        step = int(gan.step.numpy())

        grid_rng = np.random.default_rng(config.seed + GRID_SEED_OFFSET)
        grid_z = grid_rng.standard_normal((config.sample_grid, config.latent_dim)).astype("float32")
        grid_attrs = None
        if config.conditional:
            idx = cache.indices("train")[:config.sample_grid]
            grid_attrs = np.asarray(cache.attributes[idx], np.float32)
            grid_z = grid_z[:len(idx)]
        checkpointer = Checkpointer(manager, config.checkpoint_every)
        sampler = SampleGrid(run_dir, grid_z, grid_attrs)
        all_callbacks = [
            checkpointer,
            MetricsLog(run_dir, config.log_every, config.batch_size),
            sampler,
            keras.callbacks.TensorBoard(str(run_dir / "tensorboard"), update_freq=config.log_every,
                                        write_graph=False, profile_batch=0),
            *(callbacks or []),
        ]
        if config.kid_every:
            # Built before fit, so missing Inception weights fail before any training; placed
            # before TensorBoard so that logs["kid"] reaches it.
            from facelib.training.kid_callback import kid_callback_for_cache

            all_callbacks.insert(1, kid_callback_for_cache(
                cache, run_dir, manager, every=config.kid_every, n=config.kid_samples,
                network=config.kid_network, seed=config.seed))
        epoch_steps = config.epoch_steps or steps_per_epoch(cache, config.batch_size, "train")
        logs: dict = {}
        try:
            for start, spe, initial_epoch, epochs in _segments(step, config.steps, epoch_steps):
                dataset = make_dataset(cache, config.batch_size, seed=config.seed,
                                       start_step=start, flip=config.flip, split="train")
                history = gan.fit(dataset, steps_per_epoch=spe, initial_epoch=initial_epoch,
                                  epochs=epochs, callbacks=all_callbacks, verbose=verbose,
                                  shuffle=False)
                logs = {k: v[-1] for k, v in history.history.items() if v}
                if checkpointer.diverged or gan.stop_training:
                    break
        except KeyboardInterrupt:
            saved = checkpointer.save()
            print(f"\ninterrupted at step {int(gan.step.numpy())}; "
                  f"{'checkpoint saved' if saved else 'latest checkpoint kept'} in "
                  f"{manager.directory}. Continue with --resume.")
            raise
        if checkpointer.diverged:
            bad_step, bad_logs = checkpointer.diverged
            good = manager.latest()
            kept = (f"the last good checkpoint (step {CheckpointManager.state(good)['step']}) is "
                    f"kept in {good}" if good else "no checkpoint had been written yet")
            raise FacelibError(
                f"training diverged: a non-finite loss at step {bad_step} ({bad_logs}); {kept}. "
                "Lower the learning rates (--set g_lr=1e-4 --set d_lr=1e-4), or try --loss hinge "
                "with --spectral-norm, then --resume.")
        if step == config.steps and latest is not None:
            print(f"{run_dir} is already at step {step} of {config.steps}: raise --steps to "
                  "train further")
        sampler.set_model(gan)
        if not (run_dir / "samples" / "latest.png").exists():
            sampler.write()
        export_generator(gan, run_dir / "generator.keras")
    finally:
        keras.config.set_dtype_policy(previous_policy)
    return TrainResult(run_dir, int(gan.step.numpy()), manager.latest(), logs)
