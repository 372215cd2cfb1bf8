"""The training driver: config + data + run folder -> a trained, resumable run.

``train()`` is what ``python -m facelib train`` and the notebooks call. It writes the run folder
through :class:`facelib.run.folder.RunFolder` (which ``facelib.run.interface`` reads back) and
owns the resume logic: a run continues from its latest checkpoint with the same batches and the
same random draws it would have seen uninterrupted.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from facelib.config import Config
from facelib.data.cache import FaceCache
from facelib.data.pipeline import (attribute_rows, attribute_share, balance_weights,
                                   downsample_factor, make_dataset, steps_per_epoch)
from facelib.data.sample import sample_cache
from facelib.errors import FacelibError
from facelib.images import resize_batch
from facelib.models import build_generator
from facelib.run import feature_network
from facelib.run.folder import RunFolder
from facelib.training.callbacks import Checkpointer, MetricsLog, SampleGrid, TimeBudget
from facelib.training.gan import GAN
from facelib.training.kid_callback import KIDCallback

# Fields a resumed run may change; everything else must match the saved config.json.
RESUMABLE_FIELDS = {"steps", "log_every", "checkpoint_every", "keep_checkpoints", "jit_compile",
                    "kid_every", "kid_samples", "kid_network", "standing_statistics"}
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
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        model = build_generator(gan.config)
        weights = gan.sampling_generator().get_weights()
        model.set_weights([np.asarray(w) for w in weights])
    finally:
        keras.config.set_dtype_policy(policy)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}.keras")
    model.save(tmp)
    os.replace(tmp, path)
    return path


def kid_callback_for_cache(cache: FaceCache, folder: RunFolder, every: int, n: int = 1000,
                           network="standard", seed: int = 0, resolution: int | None = None,
                           log=print) -> KIDCallback:
    """The KID callback for a run trained on a prepared cache: its valid+test faces (at most
    `n`, at the run's `resolution`) are the real set; rows go to the folder's metrics log, the
    best to its checkpoints."""
    idx = np.sort(np.concatenate([cache.indices("valid"), cache.indices("test")]))
    if len(idx) < 2:
        raise FacelibError(f"KID during training needs held-out faces, but {cache.path} has "
                           f"{len(idx)} valid/test faces; prepare it with the default partition "
                           "or set kid_every=0")
    if len(idx) > n:
        idx = np.sort(np.random.default_rng(seed).choice(idx, n, replace=False))
    real = resize_batch(np.asarray(cache.images[idx]), resolution or cache.resolution)
    return KIDCallback(real, every=every, n=n, network=network,
                       manager=folder.checkpoints, log_row=folder.append_metrics, seed=seed,
                       real_attributes=np.asarray(cache.attributes[idx]), log=log)


def train(config: Config | None, run_dir: str | Path, data: str | Path | None = None,
          resume: bool = False, strategy: tf.distribute.Strategy | None = None,
          callbacks: list | None = None, verbose: int | str = "auto",
          minutes: float | None = None) -> TrainResult:
    """Train (or resume) a GAN into ``run_dir``.

    data: a prepared cache folder (``python -m facelib prepare``); None uses the bundled
    500-face sample, prepared at the config's resolution on first use.
    minutes: stop after this many minutes of training (wall clock), at whatever step, with the
    checkpoint and generator written as at the end (``--resume`` continues from there).
    """
    folder = RunFolder(run_dir)
    run_dir = folder.path
    manager = folder.checkpoints
    latest = manager.latest()
    if resume and folder.exists():
        config = _check_resume_config(folder.read_config(), config)
    elif resume and config is None:
        raise FacelibError(f"cannot resume {run_dir}: it has no config.json. Start it without "
                           "--resume (and with a --preset).")
    elif latest is not None:
        step = manager.state(latest)["step"]
        raise FacelibError(f"{run_dir} already holds a run (checkpoint at step {step}): pass "
                           "--resume to continue it, or choose another --run folder")
    if config is None:
        raise FacelibError("train() needs a config (e.g. facelib.preset('smoke'))")
    manager.keep = config.keep_checkpoints
    if resume and latest is not None:
        # Resume from the newest checkpoint that verifies: each damaged newer one is reported
        # on stderr and renamed step-N.damaged, so it is neither reused nor counted (and so
        # never makes the rotation delete the good one). FacelibError when none verifies.
        latest = manager.latest_readable(quarantine=True)

    if data is None:
        data_info = folder.read_data_info() if resume else None
        data = data_info["path"] if data_info is not None else sample_cache(config.resolution)
    cache = FaceCache.open(data)
    try:
        downsample_factor(cache.resolution, config.resolution)
    except FacelibError as e:
        raise FacelibError(f"{data}: {e}, or train with --resolution {cache.resolution}") from None
    n_train = len(cache.indices("train"))
    if n_train < config.batch_size:
        raise FacelibError(f"{data} has {n_train} training images, fewer than batch_size "
                           f"{config.batch_size}: lower --batch-size or use more data")
    # checked before anything is written or built
    weights = balance_weights(cache, config.balance_attributes, config.balance_share)

    feature_net = feature_network.load(config)
    folder.write_config(config)
    folder.write_data_info(data, len(cache), n_train, cache.resolution)
    folder.write_attribute_prior(cache.attributes[cache.indices("train")], cache.attribute_names)

    strategy = strategy or default_strategy()
    previous_policy = keras.config.dtype_policy()
    if config.precision != "float32":
        keras.config.set_dtype_policy(config.precision)
    try:
        with strategy.scope():
            gan = GAN(config, attribute_share=attribute_share(cache, weights)
                      if config.balanced_attribute_loss else None,
                      feature_network=feature_net,
                      standing_attributes=attribute_rows(
                          cache, config.standing_statistics, config.seed, weights)
                      if config.conditional and config.standing_statistics else None)
            gan.compile()
        if resume and latest is not None:
            manager.restore(gan, latest)
            print(f"resumed from step {int(gan.step.numpy())} (checkpoint {latest})", flush=True)
        step = int(gan.step.numpy())

        grid_rng = np.random.default_rng(config.seed + GRID_SEED_OFFSET)
        grid_z = grid_rng.standard_normal((config.sample_grid, config.latent_dim)).astype("float32")
        grid_attrs = None
        if config.conditional:
            idx = cache.indices("train")[:config.sample_grid]
            grid_attrs = np.asarray(cache.attributes[idx], np.float32)
            grid_z = grid_z[:len(idx)]
        checkpointer = Checkpointer(manager, config.checkpoint_every)
        if resume and latest is not None:
            checkpointer.last_saved_step = step  # never rewrite the checkpoint resumed from
        sampler = SampleGrid(folder.samples_dir, grid_z, grid_attrs)
        all_callbacks = [
            checkpointer,
            MetricsLog(folder.append_metrics, config.log_every, config.batch_size),
            sampler,
            keras.callbacks.TensorBoard(str(folder.tensorboard_dir), update_freq=config.log_every,
                                        write_graph=False, profile_batch=0),
            *(callbacks or []),
        ]
        if minutes is not None:
            if not minutes > 0:
                raise FacelibError(f"minutes={minutes}: give a positive number of minutes")
            all_callbacks.append(TimeBudget(60.0 * minutes, clock="wall"))
        if config.kid_every:
            # Built before fit, so missing Inception weights fail before any training; placed
            # before TensorBoard so that logs["kid"] reaches it.
            all_callbacks.insert(1, kid_callback_for_cache(
                cache, folder, every=config.kid_every, n=config.kid_samples,
                resolution=config.resolution,
                network=config.kid_network, seed=config.seed))
        epoch_steps = config.epoch_steps or steps_per_epoch(cache, config.batch_size, "train")
        logs: dict = {}
        try:
            for start, spe, initial_epoch, epochs in _segments(step, config.steps, epoch_steps):
                dataset = make_dataset(cache, config.batch_size, seed=config.seed,
                                       start_step=start, flip=config.flip, split="train",
                                       resolution=config.resolution, uint8=True,
                                       weights=weights)
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
            kept = (f"the last good checkpoint (step {manager.state(good)['step']}) is "
                    f"kept in {good}" if good else "no checkpoint had been written yet")
            raise FacelibError(
                f"training diverged: a non-finite loss at step {bad_step} ({bad_logs}); {kept}. "
                "Lower the learning rates (--set g_lr=1e-4 --set d_lr=1e-4), or try --loss hinge "
                "with --spectral-norm, then --resume.")
        if step == config.steps and latest is not None:
            print(f"{run_dir} is already at step {step} of {config.steps}: raise --steps to "
                  "train further")
        sampler.set_model(gan)
        if not folder.latest_sample.exists():
            sampler.write()
        export_generator(gan, folder.generator_path)
    finally:
        keras.config.set_dtype_policy(previous_policy)
    return TrainResult(run_dir, int(gan.step.numpy()), manager.latest(), logs)
