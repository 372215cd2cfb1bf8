"""python -m facelib train: train (or resume) a GAN into a run folder."""

from __future__ import annotations

import dataclasses
import time
import typing

HELP = ("train a GAN (DCGAN or residual; --conditional for attributes) into a run folder; "
        "--resume continues it")


def add_arguments(p) -> None:
    p.add_argument("--data", help="prepared cache folder (python -m facelib prepare); "
                   "default: the bundled 500-face sample")
    p.add_argument("--run", help="run folder (default: runs/<preset>-<time>)")
    from facelib.config import PRESETS

    p.add_argument("--preset", default="cpu",
                   help=f"one of {', '.join(PRESETS)} (README's presets table says what each is "
                   "for); default cpu")
    p.add_argument("--steps", type=int, help="total training steps")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--resolution", type=int, choices=(32, 64, 128))
    p.add_argument("--loss", choices=("ns", "hinge", "wgan-gp"))
    p.add_argument("--augment", choices=("none", "diffaugment"))
    p.add_argument("--conditional", action="store_true", default=None,
                   help="condition on the 40 CelebA attributes the measured way: conditional "
                   "BatchNorm in G, AC-GAN's attribute head in D at weight 3 with a balanced "
                   "loss, no projection term (--set projection=random adds one); a conditional "
                   "preset keeps its own recipe")
    p.add_argument("--spectral-norm", action="store_true", default=None)
    p.add_argument("--precision", choices=("float32", "mixed_float16", "mixed_bfloat16"),
                   help="mixed_float16 on GPUs; mixed_bfloat16 on TPUs and CPUs with bfloat16 "
                   "units (AMX, AVX512-BF16)")
    p.add_argument("--mixed-precision", action="store_const", const="mixed_float16",
                   dest="precision", help="the same as --precision mixed_float16")
    p.add_argument("--architecture", choices=("dcgan", "resnet"))
    p.add_argument("--xla", action="store_true", default=None, help="jit_compile the train step")
    p.add_argument("--seed", type=int)
    p.add_argument("--minutes", type=float,
                   help="stop after this many minutes of training (wall clock), checkpointed as "
                   "at the end; --resume continues (e.g. to fit a Colab session)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override any config field, e.g. --set g_lr=1e-4 (repeatable)")
    p.add_argument("--resume", action="store_true", help="continue the run from its latest checkpoint")
    p.add_argument("--quiet", action="store_true", help="one line per epoch instead of a progress bar")


def _parse_sets(items: list[str]) -> dict:
    from facelib.config import TUPLE_FIELDS, Config
    from facelib.errors import FacelibError

    types = {f.name: f.type for f in dataclasses.fields(Config)}
    hints = typing.get_type_hints(Config)
    out = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep or name not in types:
            raise FacelibError(f"--set {item!r}: expected FIELD=VALUE with FIELD one of "
                               f"{sorted(types)}")
        hint = hints[name]
        if hint is bool:
            if raw.lower() not in ("1", "0", "true", "false", "yes", "no"):
                raise FacelibError(f"--set {name}={raw}: expected true or false")
            out[name] = raw.lower() in ("1", "true", "yes")
        elif hint is int:
            out[name] = int(raw)
        elif hint is float:
            out[name] = float(raw)
        elif name in TUPLE_FIELDS:
            out[name] = tuple(x.strip() for x in raw.split(",") if x.strip())
        else:
            out[name] = raw
    return out


def overrides(args) -> dict:
    """Config fields set on the command line (named flags and --set)."""
    flags = {"steps": args.steps, "batch_size": args.batch_size, "resolution": args.resolution,
             "loss": args.loss, "augment": args.augment, "conditional": args.conditional,
             "spectral_norm": args.spectral_norm, "precision": args.precision,
             "architecture": args.architecture,
             "jit_compile": args.xla, "seed": args.seed}
    out = {k: v for k, v in flags.items() if v is not None}
    out.update(_parse_sets(args.set))
    return out


def run(args) -> int:
    from facelib.config import conditional_preset, preset
    from facelib.run.folder import RunFolder
    from facelib.run.train import train

    from facelib.errors import FacelibError
    from facelib.run.pretrained import is_pretrained

    if is_pretrained(args.run):
        raise FacelibError(f"--run {args.run}: a pretrained network is read-only (it ships "
                           "without optimizer state); train into a new --run folder")
    folder = RunFolder(args.run or f"runs/{args.preset}-{time.strftime('%Y%m%d-%H%M%S')}")
    run_dir = folder.path
    if args.resume and folder.exists():
        # The trainer refuses changes other than steps and logging frequencies.
        config = folder.read_config().replace(**overrides(args))
    elif args.conditional:
        config = conditional_preset(args.preset, **overrides(args))
    else:
        config = preset(args.preset, **overrides(args))
    print(f"run folder: {run_dir}", flush=True)
    result = train(config, run_dir, data=args.data, resume=args.resume,
                   verbose=2 if args.quiet else "auto", minutes=args.minutes)
    print(f"trained to step {result.step}")
    print(f"samples:    {folder.latest_sample}")
    print(f"checkpoint: {result.checkpoint}")
    print(f"metrics:    {folder.metrics_path}")
    print(f"generator:  {folder.generator_path}")
    return 0
