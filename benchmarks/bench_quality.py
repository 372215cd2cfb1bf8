"""Quality against CPU time: candidate recipes trained for the same budgets, measured on faces
none of them saw.

Each candidate trains in its own process on the cache's train split; at every budget mark
(minutes on `--cores` fully used cores, counted as the process's own CPU time so that
candidates sharing the machine are charged only for what they use) its EMA generator is
exported. Then every snapshot draws `--n` faces, measured against `--n` held-out faces (the
cache's valid+test split) with the FID Inception: KID, FID (beside the real-vs-real floor: n
training faces against the same held-out faces), precision, recall (k=3), density and coverage
(k=5). Writes OUT/quality.json, OUT/quality.md (the table) and OUT/quality.png (the plot);
`--report` renames them.

    python -m facelib prepare ../shared/data/celeba-8k caches/celeba8k-64 --resolution 64
    python benchmarks/bench_quality.py --data caches/celeba8k-64 --out bench-quality \
        --budgets 5,10,20,40 --resolution 32 --parallel 2 --worker-threads 1

Candidates (`--candidates`, comma-separated; default all): see CANDIDATES. A finished
candidate (its snapshots present) is not retrained; delete OUT/NAME to redo it. One given a
longer budget than it reached (e.g. `--budgets 10,20,40` after `10,20`) continues from its run's
last checkpoint, which its last snapshot wrote (an exact resume: the same training as one
uninterrupted run); an unfinished one starts again. `--runs` adds
finished runs (e.g. `pretrained:celeba32`) to the table, measured on the same held-out faces;
`--evaluate-only --candidates ''` measures only those. `--seed K` trains every candidate with
seed K (initialisation, data order, noise): one run per recipe and budget is not a measure of
the recipe (two seeds of one recipe differed by 0.008 in KID at 20 minutes, README), so give a
second seed its own `--out`; a folder holding another seed's snapshots is refused.

`--pool A.json,B.json,...` trains and measures nothing: it pools the rows of earlier reports
(one per seed, say) into one table per candidate and budget, with the seeds' mean, standard
deviation and values, and each candidate's mean KID against `--baseline`'s at the same budget
(the ratio, and Welch's t-test over the seeds: two runs of one recipe can differ more than two
recipes do, so a ranking needs its p-value). A run measured in two reports is refused (pass it
once), and so is a report measured at another resolution, n or --cores; `--candidates` and
`--budgets` choose the rows.

    python benchmarks/bench_quality.py --out pooled --pool seed0/quality.json,seed1/quality.json \
        --candidates cpu,cpu-wide --budgets 10,20 --report seeds
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve()


def _bf16() -> str:
    """mixed_bfloat16 where the CPU has bfloat16 units (else bf16 is emulated and slower)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "float32"
    return "mixed_bfloat16" if ("amx_bf16" in flags or "avx512_bf16" in flags) else "float32"


# ADA's adaptive probability (target 0.6, p moves at most 1 per 100,000 faces) over
# DiffAugment's ops: the cpu preset of the ADA round ("cpu" in its table).
ADA = {"ada_target": 0.6}
# ADA's geometric op (scale, rotation, fractional translation; facelib.training.augment) beside
# DiffAugment's, all under ADA's p: more for D to see through once p would otherwise reach 1.
GEOMETRIC = {"diffaugment_policy": ("color", "translation", "geometric", "cutout")}
# A slower EMA of G (StyleGAN's is ~10,000 faces, 300 steps of 32; 0.99 is 100), ramped up so
# the early average is not stuck at the initial weights.
SLOW_EMA = {"ema_decay": 0.999, "ema_rampup": True}


def at_lr(lr: float) -> dict:
    """bfloat16 where the CPU has it, and one Adam learning rate for G and D: the candidates'
    learning rates are pinned, so a preset that changes its own leaves their tables valid."""
    return {"precision": "auto", "g_lr": lr, "d_lr": lr}


# The cpu-wide preset as every table before the learning-rate round measured it: DCGAN's
# learning rates (2e-4), which the preset doubled after that round (candidate cpu-wide-lr2x).
WIDE_AT_2E4 = at_lr(2e-4)
# The cpu-wide-conditional preset as every table before cond-wide-acgan-al3-wbce measured it: a
# projection D and AC-GAN's plain loss at weight 1, which the preset then left for that
# candidate's recipe. Every candidate built on the preset starts from it, so its table holds.
COND_WIDE_BEFORE = {"projection": "random", "attribute_loss": 1.0,
                    "balanced_attribute_loss": False}


def cond_wide(**fields) -> tuple[str, dict]:
    """A candidate on the cpu-wide-conditional preset's earlier recipe with ``fields`` on top."""
    return "cpu-wide-conditional", {**COND_WIDE_BEFORE, **fields}


# Every candidate was measured before standing statistics joined the presets, and keeps G's
# BatchNorm statistics in its EMA generator, so its table reproduces; a candidate that names
# standing_statistics overrides this (training is the same either way: only what is saved
# differs, which benchmarks/bench_standing_statistics.py measures on the saved generators).
BEFORE_STANDING = {"standing_statistics": 0}
# Likewise the cpu-wide preset's EMA as every candidate on it was measured: the ramp capped at
# 0.999, which the preset then replaced with a longer power EMA (candidate cpu-wide-ema); the
# EMA too changes only what is saved.
EMA_BEFORE = {"cpu-wide": {**SLOW_EMA, "ema_power": 0.0}}

# Today's cpu-wide preset whole, pinned (cpu-wide-ema): at_lr(4e-4), standing statistics, the
# power EMA. Candidates that change its training build on it.
WIDE_NOW = {**at_lr(4e-4), "standing_statistics": 1024, "ema_decay": 0.9999,
            "ema_rampup": False, "ema_power": 4.0}

SN_HINGE = {**SLOW_EMA, "spectral_norm": True, "loss": "hinge", "g_lr": 1e-4, "d_lr": 4e-4,
            "beta1": 0.0, "beta2": 0.9, "precision": "auto"}

# name -> (preset, overrides). Every candidate is a facelib preset plus fields, so a winner is
# reproduced with `python -m facelib train --preset P --set FIELD=VALUE ...`. The candidates
# measured before ADA won build on the preset of then, cpu-diffaugment, so their tables reproduce.
CANDIDATES = {
    # today's CPU preset: cpu-diffaugment + ADA + GEOMETRIC + SLOW_EMA
    "cpu": ("cpu", {}),
    # ... with twice the widths (256 channels at G's and D's 4x4), in bfloat16 where the CPU has
    # it: about 1.9x the CPU per step on AMX (2.5x in float32); the cpu-wide preset before its
    # learning rates doubled
    "cpu-wide": ("cpu-wide", WIDE_AT_2E4),
    # ... with the extra width on one side only: which net's capacity buys the quality?
    "cpu-wide-g": ("cpu-wide", {**WIDE_AT_2E4, "d_width": 128}),
    "cpu-wide-d": ("cpu-wide", {**WIDE_AT_2E4, "g_width": 128}),
    # ... with StyleGAN's minibatch standard deviation in D (groups of 4): D sees how varied a
    # batch is, so a G that covers little of the faces (recall 0.25 at 20 minutes) is caught
    "cpu-wide-mbstd": ("cpu-wide", {**WIDE_AT_2E4, "minibatch_std": 4}),
    # ... with LeCam's regularisation on D (Tseng et al. 2021, made for small data beside
    # augmentation): at the paper's weight for BigGAN on CIFAR (0.3), and at a tenth of it
    "cpu-wide-lecam": ("cpu-wide", {**WIDE_AT_2E4, "lecam_weight": 0.3}),
    "cpu-wide-lecam-0.03": ("cpu-wide", {**WIDE_AT_2E4, "lecam_weight": 0.03}),
    # ... with twice DCGAN's learning rates (4e-4 for G and D; today's cpu-wide preset's
    # training, less its standing statistics and longer EMA, which BEFORE_STANDING and EMA_BEFORE
    # leave out; pass --candidates cpu-wide-ema for the whole preset): at these
    # budgets the run is short of steps, not of stability (EMA and ADA hold it), so a faster
    # step size may pay; and with four times them
    "cpu-wide-lr2x": ("cpu-wide", at_lr(4e-4)),
    "cpu-wide-lr4x": ("cpu-wide", at_lr(8e-4)),
    # cpu-wide-lr2x with the EMA generator saved with standing BatchNorm statistics (its
    # training is cpu-wide-lr2x's; bench_standing_statistics.py measures the difference paired,
    # on the same snapshots)
    "cpu-wide-standing": ("cpu-wide", {**at_lr(4e-4), "standing_statistics": 1024}),
    # today's cpu-wide preset whole: cpu-wide-standing with the power-function EMA (gamma 4,
    # Karras et al. 2024) for the ramp capped at 0.999: an average over a fixed share of the run
    # however long it lasts; training is cpu-wide-lr2x's again
    "cpu-wide-ema": ("cpu-wide", WIDE_NOW),
    # ... with Adam's second-moment average over ~100 steps (beta2 0.99, StyleGAN2's) for ~1,000:
    # the step size follows the gradients' scale as G and D move each other
    "cpu-wide-beta2": ("cpu-wide", {**WIDE_NOW, "beta2": 0.99}),
    # ... with D's learning rate alone doubled (8e-4; G keeps 4e-4): the two time-scale rule
    # (Heusel et al. 2017) on the recipe whose both rates at 8e-4 lost (cpu-wide-lr4x)
    "cpu-wide-dlr2x": ("cpu-wide", {**WIDE_NOW, "d_lr": 8e-4}),
    # ... with self-modulation (Chen et al. 2019: each of G's BatchNorms scaled and shifted by a
    # function of z, through one hidden layer of 32 ReLUs): the conditional recipe, whose
    # BatchNorms read the attributes, beat this one at equal CPU time; do BatchNorms that read
    # z carry part of that without labels? (seeds 4, 5: 0.70x the preset's KID at 10 minutes,
    # 0.96x at 20 with FID higher and recall up: README, Benchmarks)
    "cpu-wide-selfmod": ("cpu-wide", {**WIDE_NOW, "self_modulation": 32}),
    # ... with AC-GAN's attribute head on D alone (G unconditional, given no labels): the
    # conditional recipe beat the unconditional one at equal CPU time (KID 0.0064 against
    # 0.0091 at 40 minutes); does a D made to read the labels of real faces carry part of that
    # to a G that never sees them?
    "cpu-wide-lr2x-dattr": ("cpu-wide", {**at_lr(4e-4), "attribute_loss": 1.0}),
    # ... with the head as the conditional recipe has it: three times the weight, each
    # attribute's loss balanced between its present and absent rows (hats weigh as much as
    # smiles), the two levers that lifted that recipe's control without costing KID
    "cpu-wide-lr2x-dattr3": ("cpu-wide", {**at_lr(4e-4), "attribute_loss": 3.0,
                                          "balanced_attribute_loss": True}),
    # ... with D also reading the shipped attribute classifier's frozen features through heads
    # of its own (Projected GANs' lever, facelib.models.projected): D's features need not be
    # learnt from 6,400 faces while G moves; 0.80x the preset's steps per CPU-second
    "cpu-wide-lr2x-feat": ("cpu-wide", {**at_lr(4e-4),
                                        "d_features": "pretrained:celeba32-attributes"}),
    # ... with half the batch (16): more, cheaper steps that see fewer faces each, the other
    # side of cpu-b64
    "cpu-wide-b16": ("cpu-wide", {**WIDE_AT_2E4, "batch_size": 16}),
    # the preset before: ADA over DiffAugment's ops only, EMA 0.99; and it with either change
    "cpu-ada": ("cpu-diffaugment", ADA),
    "cpu-ada-geo": ("cpu-diffaugment", {**ADA, **GEOMETRIC}),
    "cpu-ada-ema": ("cpu-diffaugment", {**ADA, **SLOW_EMA}),
    # the preset before ADA: DiffAugment on every face ("cpu" in the tables before ADA won)
    "cpu-diffaugment": ("cpu-diffaugment", {}),
    # ... in bfloat16 where the CPU has bfloat16 units (a faster step; same recipe)
    "cpu-bf16": ("cpu-diffaugment", {"precision": "auto"}),
    # ... with twice the batch (64): fewer, costlier steps that see more faces each
    "cpu-b64": ("cpu-diffaugment", {"precision": "auto", "batch_size": 64}),
    # ... with R1 on real faces (gamma 0.01, StyleGAN2-ADA's CIFAR-10 value; lazy, every 16
    # steps), beside DiffAugment
    "cpu-r1": ("cpu-diffaugment", {"r1_gamma": 0.01}),
    # Radford et al.'s DCGAN at the same resolution: widths 512-256-128, batch 128, no augmentation
    "radford": ("colab", {"precision": "float32", "jit_compile": False}),
    # spectral norm, hinge, two time-scale learning rates, EMA with ramp-up, bfloat16 where the
    # CPU has it: cpu-conditional's recipe without the attributes
    "sn-hinge": ("cpu-diffaugment", SN_HINGE),
    # the same on SNGAN's residual nets (widths 64: a step costs 3x the DCGAN's)
    "resnet": ("cpu-diffaugment", {**SN_HINGE, "architecture": "resnet", "g_width": 64, "d_width": 64}),
    # the 64 px preset for a few thousand faces (widths 256, spectral norm, hinge, DiffAugment on
    # every face, EMA 0.995), beside cpu and cpu-wide at --resolution 64
    "small-data": ("small-data", {"precision": "auto"}),
    # the conditional recipe of an earlier pretrained:celeba32-cond (cpu-conditional), drawing
    # its faces for the training faces' attribute rows; and the same with ADA's adaptive
    # DiffAugment
    "cond": ("cpu-conditional", {"precision": "auto"}),
    "cond-ada": ("cpu-conditional", {"precision": "auto", "ada_target": 0.6}),
    # the unconditional winner made conditional: cpu-wide's recipe (non-saturating loss, ADA over
    # DiffAugment's ops and the geometric op, slow EMA, widths 256) with conditional BatchNorm in
    # G, a projection discriminator and AC-GAN's attribute head, as cpu-conditional has
    "cond-wide": cond_wide(precision="auto"),
    # ... with D at widths 128, as cpu-wide-g against cpu-wide
    "cond-wide-g": cond_wide(precision="auto", d_width=128),
    # ... at twice DCGAN's learning rates (4e-4 for G and D), as cpu-wide-lr2x against cpu-wide
    "cond-wide-lr2x": cond_wide(**at_lr(4e-4)),
    # ... with D's projection embedding starting at zero (projection=zeros): D starts as the
    # unconditional D, where a random 40-attribute embedding makes the logit several times
    # larger at the first step (G's loss 22 at step 50 against cpu-wide's 8); at 2e-4 and 4e-4
    "cond-wide-proj0": cond_wide(**at_lr(2e-4), projection="zeros"),
    "cond-wide-proj0-lr2x": cond_wide(**at_lr(4e-4), projection="zeros"),
    # ... without the projection (AC-GAN's attribute head alone conditions D): D's game is then
    # cpu-wide's, which takes 4e-4; at 2e-4 and 4e-4
    "cond-wide-acgan": cond_wide(**at_lr(2e-4), projection="off"),
    "cond-wide-acgan-lr2x": cond_wide(**at_lr(4e-4), projection="off"),
    # ... without the projection, where hats came out asked for in only 13-21% of faces: with the
    # rare attributes drawn more often (each in about 15% of the rows instead of 2-7%), and with
    # three times AC-GAN's weight (G's only push towards the attributes once the projection is off)
    "cond-wide-acgan-bal": cond_wide(**at_lr(2e-4), projection="off",
                                     balance_attributes=("Wearing_Hat", "Bald", "Eyeglasses")),
    "cond-wide-acgan-al3": cond_wide(**at_lr(2e-4), projection="off", attribute_loss=3.0),
    # ... and with AC-GAN's loss as balanced cross-entropy (balanced_attribute_loss): each
    # attribute's present and absent rows weighted by 0.5/p and 0.5/(1-p), at most 10, so a hat
    # asked for and missed costs G what a missed common attribute does, without changing the mix
    # of faces drawn
    "cond-wide-acgan-wbce": cond_wide(**at_lr(2e-4), projection="off",
                                      balanced_attribute_loss=True),
    # ... and both: three times AC-GAN's weight with its loss balanced (the two that lifted hats
    # from 21% to about 60% each, at no KID cost, on one seed each). The cpu-wide-conditional
    # preset's recipe since it met #10's conditional goal on seeds 0, 1 and 2
    "cond-wide-acgan-al3-wbce": cond_wide(**at_lr(2e-4), projection="off", attribute_loss=3.0,
                                          balanced_attribute_loss=True),
}


def _config(name: str, resolution: int, seed: int):
    from facelib.config import preset

    base, overrides = CANDIDATES[name]
    fields = {"resolution": resolution, "steps": 10 ** 8, "checkpoint_every": 10 ** 8,
              "epoch_steps": 500, "kid_every": 0, "seed": seed, **BEFORE_STANDING,
              **EMA_BEFORE.get(base, {}), **overrides}
    if fields.get("precision") == "auto":
        fields["precision"] = _bf16()
    return preset(base, **fields)


def _budgets(args) -> list[float]:
    """--budgets as minutes; a typo is one line, not a traceback."""
    try:
        budgets = [float(b) for b in args.budgets.split(",")]
    except ValueError:
        raise SystemExit(f"--budgets {args.budgets!r}: give minutes, comma-separated, "
                         "e.g. 10,20") from None
    if any(not 0 < b < float("inf") for b in budgets):
        raise SystemExit(f"--budgets {args.budgets!r}: every budget must be a positive number "
                         "of minutes")
    return budgets


def _snapshot_path(out: Path, name: str, minutes: float) -> Path:
    return out / name / f"generator-{minutes:g}min.keras"


def _snapshot_log(out: Path, name: str) -> Path:
    return out / name / "snapshots.jsonl"


def _snapshots(out: Path, name: str) -> list[dict]:
    log = _snapshot_log(out, name)
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def _continues(out: Path, name: str, budgets: list[float]) -> bool:
    """Whether a candidate can go on from its last snapshot: that snapshot is below the longest
    budget and the run's latest checkpoint is the one it stopped at (the budget's end writes it;
    the config's checkpoint_every of 10**8 writes no other)."""
    from facelib.errors import FacelibError
    from facelib.run.folder import RunFolder

    snaps = _snapshots(out, name)
    if not snaps or snaps[-1]["minutes"] >= max(budgets):
        return False
    folder = RunFolder(out / name / "run")
    try:
        latest = folder.checkpoint("latest")
    except FacelibError:  # no run or no complete checkpoint: start again
        return False
    return latest.name == f"step-{snaps[-1]['step']:08d}"


def worker(args) -> None:
    """Train one candidate, exporting its EMA generator at each budget mark; with
    --resume-candidate, resume its run from the last snapshot and go on to the budgets beyond."""
    from facelib.run.train import export_generator, train
    from facelib.training.callbacks import TimeBudget

    out = Path(args.out)
    budgets = _budgets(args)
    config = _config(args.worker, args.resolution, args.seed)
    log = _snapshot_log(out, args.worker)
    log.parent.mkdir(parents=True, exist_ok=True)
    done = _snapshots(out, args.worker)[-1] if args.resume_candidate else None
    spent = done["cpu_seconds"] if done else 0.0  # CPU seconds of the earlier processes

    def on_mark(seconds, gan):
        seconds += spent
        minutes = seconds / 60.0 / args.cores
        path = export_generator(gan, _snapshot_path(out, args.worker, minutes))
        step = int(gan.step.numpy())
        row = {"candidate": args.worker, "minutes": minutes, "cpu_seconds": seconds,
               "step": step, "images_seen": step * config.batch_size, "seed": config.seed,
               "wall_seconds": time.perf_counter() - t0, "generator": str(path)}
        if done is not None:
            row["continued_from_step"] = done["step"]
        with open(log, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)

    marks = [m - spent for m in (60.0 * b * args.cores for b in budgets) if m > spent]
    budget = TimeBudget(marks, on_mark, clock="cpu")
    t0 = time.perf_counter()
    # A continued run checks that the candidate's config still matches the run's config.json.
    train(config, out / args.worker / "run", data=args.data, resume=done is not None,
          callbacks=[budget], verbose=0)


def _train_all(args, names) -> None:
    out = Path(args.out)
    budgets = _budgets(args)
    other_seed = [n for n in names
                  if any(row.get("seed", 0) != args.seed for row in _snapshots(out, n))]
    if other_seed:
        raise SystemExit(f"{out} holds {other_seed} trained with another seed than --seed "
                         f"{args.seed}: give this seed its own --out")
    todo = [n for n in names
            if not all(_snapshot_path(out, n, b).exists() for b in budgets)]
    running: list[tuple[str, subprocess.Popen]] = []
    while todo or running:
        while todo and len(running) < args.parallel:
            name = todo.pop(0)
            run_dir = out / name
            go_on = _continues(out, name, budgets)
            if run_dir.exists() and not go_on:  # an unfinished candidate starts again
                import shutil
                shutil.rmtree(run_dir)
            run_dir.mkdir(parents=True, exist_ok=True)
            cmd = [sys.executable, str(HERE), "--worker", name, "--data", args.data, "--out",
                   args.out, "--budgets", args.budgets, "--resolution", str(args.resolution),
                   "--cores", str(args.cores), "--seed", str(args.seed)]
            cmd += ["--resume-candidate"] if go_on else []
            print(f"{'continuing' if go_on else 'training'} {name}: {' '.join(cmd)}", flush=True)
            logf = open(run_dir / "train.log", "a" if go_on else "w")
            running.append((name, subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT,
                                                   env=_worker_env(args.worker_threads))))
        time.sleep(5)
        for item in list(running):
            name, proc = item
            if proc.poll() is not None:
                running.remove(item)
                if proc.returncode:
                    raise SystemExit(f"{name} failed (exit {proc.returncode}): see "
                                     f"{out / name / 'train.log'}")
                print(f"{name} done", flush=True)


def _worker_env(threads: int) -> dict[str, str]:
    """The environment of a training process: this one's, with its thread pools capped when
    --worker-threads asks (K processes of one thread each on K cores do not fight for them)."""
    env = dict(os.environ)
    if threads > 0:
        for var in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS"):
            env[var] = str(threads)
    return env


def held_out_faces(cache, n: int):
    """The evaluation's real faces: n of the cache's valid+test rows drawn with seed 0, sorted;
    and the generator that drew them (the evaluation goes on drawing from it)."""
    import numpy as np

    rng = np.random.default_rng(0)
    held = np.concatenate([cache.indices("valid"), cache.indices("test")])
    return rng, np.sort(rng.choice(held, min(n, len(held)), replace=False))


def generate_faces(generator, z, attrs=None, batch_size: int = 250):
    """uint8 faces from a generator file's network: latents ``z`` [and attribute rows]."""
    import numpy as np

    from facelib.images import to_uint8

    z = np.asarray(z, "float32")
    return to_uint8(np.concatenate([np.asarray(generator(
        z[i:i + batch_size] if attrs is None else [z[i:i + batch_size], attrs[i:i + batch_size]],
        training=False)) for i in range(0, len(z), batch_size)]))


def _evaluate(args, names, runs=()) -> list[dict]:
    import keras
    import numpy as np

    from facelib.data.cache import FaceCache
    from facelib.images import resize_batch
    from facelib.metrics import registry

    out = Path(args.out)
    cache = FaceCache.open(args.data)
    rng, held = held_out_faces(cache, args.n)
    n = len(held)
    train_idx = np.sort(rng.choice(cache.indices("train"), n, replace=False))
    net = registry.feature_network("standard", log=None)

    def feats(images):
        return net.extract(resize_batch(np.asarray(images), args.resolution))

    real = feats(cache.images[held])
    names_metrics = ["fid", "kid", "prdc"]

    def generated(generator, z):
        attrs = None
        if len(generator.inputs) > 1:  # conditional: the training faces' attribute rows
            attrs = np.asarray(cache.attributes[rng.choice(cache.indices("train"), n)], "float32")
        return generate_faces(generator, z, attrs)

    floor = registry.compute(names_metrics, real, feats(cache.images[train_idx]))
    rows = [{"candidate": "real (train split)", "minutes": None, "step": None, **floor}]
    for name in names:
        for snap in _snapshots(out, name):
            generator = keras.models.load_model(snap["generator"], compile=False)
            z = np.random.default_rng(1).standard_normal((n, generator.inputs[0].shape[-1]))
            row = {**{k: snap[k] for k in ("candidate", "minutes", "step", "images_seen")},
                   "seed": snap.get("seed", 0),
                   **registry.compute(names_metrics, real, feats(generated(generator, z)))}
            print(json.dumps(row), flush=True)
            rows.append(row)
    for spec in runs:
        import facelib

        run = facelib.load_run(spec)
        z = run.sample_latents(n, seed=1)
        row = {"candidate": spec, "minutes": None, "step": run.step,
               "images_seen": run.step * run.config.batch_size,
               **registry.compute(names_metrics, real, feats(generated(run.generator, z)))}
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def _report(args, rows: list[dict]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(args.out)
    (out / f"{args.report}.json").write_text(json.dumps({
        "resolution": args.resolution, "n": args.n, "cores": args.cores,
        "budgets_minutes": args.budgets, "data": str(args.data),
        "candidates": {k: {"preset": v[0], "overrides": v[1]} for k, v in CANDIDATES.items()},
        "rows": rows}, indent=1))
    head = "| candidate | minutes | steps | KID | FID | precision | recall | density | coverage |"
    lines = [f"Quality at {args.resolution} px against CPU time ({args.cores} cores), "
             f"n = {args.n} generated vs {args.n} held-out real faces", "", head,
             "|" + "---|" * 9]
    for r in rows:
        steps = "" if r["step"] is None else f"{r['step']:,}"
        minutes = ("floor" if r["step"] is None else "run") if r["minutes"] is None \
            else f"{r['minutes']:g}"
        lines.append(f"| {r['candidate']} | {minutes} | {steps} | {r['kid']:.4f} | "
                     f"{r['fid']:.1f} | {r['precision']:.2f} | {r['recall']:.2f} | "
                     f"{r['density']:.2f} | {r['coverage']:.2f} |")
    (out / f"{args.report}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    floor = rows[0]
    for ax, key in zip(axes, ("kid", "fid", "recall")):
        for name in dict.fromkeys(r["candidate"] for r in rows[1:] if r["minutes"] is not None):
            pts = [(r["minutes"], r[key]) for r in rows[1:]
                   if r["candidate"] == name and r["minutes"] is not None]
            ax.plot(*zip(*pts), marker="o", label=name)
        ax.axhline(floor[key], color="gray", ls="--", lw=1, label="real vs real")
        ax.set_xscale("log", base=2)
        ax.set_xlabel(f"minutes on {args.cores} cores")
        ax.set_title(key.upper() if key != "recall" else "recall")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / f"{args.report}.png", dpi=110)


def _row_seed(report: Path, row: dict) -> int:
    """A report row's seed: its own field, else its snapshot row's in the candidate's log beside
    the report (reports written before rows carried it), else 0 (runs from before --seed)."""
    if "seed" in row:
        return row["seed"]
    for snap in _snapshots(report.parent, row["candidate"]):
        if snap["minutes"] == row["minutes"] and snap["step"] == row["step"]:
            return snap.get("seed", 0)
    return 0


def _pool_rows(paths: list[str], names: list[str], budgets: set[float]) -> tuple[dict, list[dict]]:
    """The rows of several reports for these candidates and budgets, each tagged with its seed
    and source; refuses reports measured at another resolution, n or --cores, and a run
    (candidate, seed, budget) found twice."""
    if not paths:
        raise SystemExit("--pool: no report given: pass the .json files reports wrote, "
                         "comma-separated")
    first, rows, seen = None, [], {}
    for path in paths:
        try:
            report = json.loads(Path(path).read_text())
        except (OSError, ValueError) as e:
            raise SystemExit(f"--pool: cannot read {path} ({e}): pass the .json a report wrote")
        if not isinstance(report, dict) or "rows" not in report:
            raise SystemExit(f"--pool: {path} is not a bench_quality report (no 'rows'): "
                             f"pass the .json a report wrote")
        head = {k: report.get(k) for k in ("resolution", "n", "cores")}
        if first is not None and head != first[1]:
            raise SystemExit(f"--pool: {path} was measured as {head}, {first[0]} as "
                             f"{first[1]}: pool reports of one resolution, n and --cores")
        first = first or (path, head)
        for r in report["rows"]:  # the floor and --runs rows have no minutes
            if r["candidate"] not in names or r.get("minutes") not in budgets:
                continue
            key = (r["candidate"], _row_seed(Path(path), r), r["minutes"])
            if key in seen:
                raise SystemExit(f"--pool: {key[0]} seed {key[1]} at {key[2]:g} minutes is in "
                                 f"{seen[key]} and {path}: pass each run's report once")
            seen[key] = path
            rows.append({**r, "seed": key[1], "source": path})
    if not rows:
        raise SystemExit(f"--pool: no rows of {names} at {sorted(budgets)} minutes in those "
                         f"reports: check --candidates and --budgets")
    return first[1], rows


def _pooled(rows: list[dict], baseline: str) -> list[dict]:
    """Per candidate and budget: the seeds' mean and sample standard deviation of each metric,
    and the mean KID's ratio to the baseline's at the same budget with Welch's two-sided p
    (None where either side has one seed: one run says nothing about a recipe's spread)."""
    import numpy as np
    from scipy import stats

    keys = ("kid", "fid", "precision", "recall", "density", "coverage")
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["candidate"], r["minutes"]), []).append(r)
    out = []
    for (name, minutes), runs in groups.items():
        runs = sorted(runs, key=lambda r: r["seed"])
        row = {"candidate": name, "minutes": minutes, "seeds": [r["seed"] for r in runs],
               "steps": [r["step"] for r in runs], "sources": [r["source"] for r in runs],
               "values": {k: [r[k] for r in runs] for k in keys}}
        for k in keys:
            v = np.array(row["values"][k], float)
            row[k] = float(v.mean())
            row[f"{k}_sd"] = float(v.std(ddof=1)) if len(v) > 1 else None
        base = groups.get((baseline, minutes))
        row["kid_ratio"] = row["p_vs_baseline"] = None
        if base is not None and name != baseline:
            b = np.array([r["kid"] for r in base], float)
            row["kid_ratio"] = row["kid"] / float(b.mean())
            if len(b) > 1 and len(runs) > 1:
                row["p_vs_baseline"] = float(stats.ttest_ind(
                    row["values"]["kid"], b, equal_var=False).pvalue)
        out.append(row)
    return sorted(out, key=lambda r: (r["minutes"], r["candidate"] != baseline, r["kid"]))


def _pool_report(args, head: dict, pooled: list[dict]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(args.out)
    (out / f"{args.report}.json").write_text(json.dumps({
        **head, "pooled_from": [r for r in args.pool.split(",") if r], "baseline": args.baseline,
        "rows": pooled}, indent=1))

    def sd(r, k, fmt):
        return "" if r[f"{k}_sd"] is None else f" ± {r[f'{k}_sd']:{fmt}}"

    lines = [f"Quality at {head['resolution']} px against CPU time ({head['cores']} cores), "
             f"n = {head['n']} generated vs {head['n']} held-out real faces: mean ± standard "
             f"deviation over seeds; KID ratio and Welch's p against {args.baseline}", "",
             "| candidate | minutes | seeds | KID | KID per seed | KID / "
             f"{args.baseline} | Welch p | FID | recall | coverage |", "|" + "---|" * 10]
    for r in pooled:
        ratio = "" if r["kid_ratio"] is None else f"{r['kid_ratio']:.2f}"
        p = "" if r["p_vs_baseline"] is None else f"{r['p_vs_baseline']:.2f}"
        lines.append(
            f"| {r['candidate']} | {r['minutes']:g} | {','.join(map(str, r['seeds']))} | "
            f"{r['kid']:.4f}{sd(r, 'kid', '.4f')} | "
            f"{', '.join(f'{v:.4f}' for v in r['values']['kid'])} | {ratio} | {p} | "
            f"{r['fid']:.1f}{sd(r, 'fid', '.1f')} | {r['recall']:.2f}{sd(r, 'recall', '.2f')} | "
            f"{r['coverage']:.2f}{sd(r, 'coverage', '.2f')} |")
    (out / f"{args.report}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, key in zip(axes, ("kid", "recall")):
        for name in dict.fromkeys(r["candidate"] for r in pooled):
            mine = sorted((r for r in pooled if r["candidate"] == name),
                          key=lambda r: r["minutes"])
            x = [r["minutes"] for r in mine]
            line, = ax.plot(x, [r[key] for r in mine], marker="o", label=name)
            for r in mine:  # every seed's value, so the spread is seen, not summarised
                ax.scatter([r["minutes"]] * len(r["values"][key]), r["values"][key], s=12,
                           color=line.get_color(), alpha=0.5)
        ax.set_xscale("log", base=2)
        ticks = sorted({r["minutes"] for r in pooled})
        ax.set_xticks(ticks, [f"{m:g}" for m in ticks])
        ax.set_xlabel(f"minutes on {head['cores']} cores")
        ax.set_title(f"{'KID' if key == 'kid' else 'recall'} (line: mean over seeds)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / f"{args.report}.png", dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", help="a prepared cache (python -m facelib prepare); not with --pool")
    ap.add_argument("--out", required=True)
    ap.add_argument("--budgets", default="5,10,20,40", help="minutes on --cores cores")
    ap.add_argument("--cores", type=int, default=2, help="cores a budget minute stands for")
    ap.add_argument("--resolution", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0, help="every candidate's training seed (its "
                    "init, data order and noise); a second seed's table goes in another --out")
    ap.add_argument("--n", type=int, default=1000, help="generated and held-out faces")
    ap.add_argument("--candidates", default=",".join(CANDIDATES))
    ap.add_argument("--parallel", type=int, default=1, help="candidates training at once")
    ap.add_argument("--worker-threads", type=int, default=0,
                    help="threads each training process may use (TensorFlow's intra- and "
                         "inter-op pools, OpenMP); 0: TensorFlow's choice. Set here rather than "
                         "exported, so that the evaluation after training keeps every core")
    ap.add_argument("--runs", default="", help="finished runs to measure too, comma-separated "
                    "(run folders, RUN@CKPT or pretrained:NAME)")
    ap.add_argument("--evaluate-only", action="store_true")
    ap.add_argument("--report", default="quality", help="file stem of the table, JSON and plot")
    ap.add_argument("--pool", default="", help="reports (.json) to pool over seeds instead of "
                    "training or measuring, comma-separated")
    ap.add_argument("--baseline", default="cpu", help="the candidate --pool compares KID with")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--resume-candidate", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    names = [n for n in args.candidates.split(",") if n]
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown:
        raise SystemExit(f"unknown candidate(s) {unknown}: choose from {list(CANDIDATES)}")
    if args.pool:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        head, rows = _pool_rows([p for p in args.pool.split(",") if p], names,
                                set(_budgets(args)))
        return _pool_report(args, head, _pooled(rows, args.baseline))
    if not args.data:
        raise SystemExit("--data is required (a cache from python -m facelib prepare) unless "
                         "--pool pools earlier reports")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if not args.evaluate_only:
        _train_all(args, names)
    runs = [r for r in args.runs.split(",") if r]
    _report(args, _evaluate(args, names, runs))


if __name__ == "__main__":
    main()
