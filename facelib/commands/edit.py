"""python -m facelib edit: invert a face photo into a run, tune a copy of the generator to it, and
move it along a direction (or set a conditional run's attributes)."""

from __future__ import annotations

HELP = ("invert an aligned face photo into a run, tune a copy of the generator to it (pivotal "
        "tuning, --tune-steps) and edit it along a latent direction (or, in a conditional run, "
        "set attributes with --set Smiling=1); writes a strip: input, reconstruction, edited")


def add_arguments(p) -> None:
    p.add_argument("--run", required=True, help="run folder written by `train`")
    p.add_argument("--image", required=True,
                   help="an aligned CelebA-style face crop (178x218-like or square), JPEG/PNG")
    p.add_argument("--direction",
                   help="a direction saved in RUN/directions (e.g. PC0, Smiling), or a CelebA "
                        "attribute name to compute with --classifier")
    p.add_argument("--set", dest="set_attrs", metavar="ATTR=0|1,...",
                   help="conditional runs, instead of --direction: re-synthesise the inverted "
                        "face with these attributes changed, e.g. Smiling=1 (same z)")
    p.add_argument("--strength", type=float, default=None,
                   help="--direction: how far to move, in standard deviations of z (negative: "
                        "the opposite; default 2). --set: how far to push the attributes "
                        "(1 sets them, the default; 2.5 pushes twice and a half as far)")
    p.add_argument("--out", default="edited.png", help="output strip (PNG or JPEG)")
    p.add_argument("--steps", type=int, default=300, help="inversion optimisation steps")
    p.add_argument("--tune-steps", type=int, default=150,
                   help="pivotal tuning: steps that fine-tune a copy of the generator so the "
                        "inverted z draws the photo itself, and the edit keeps its face "
                        "(facelib.latent.tune_generator); 0: edit with the generator as trained")
    p.add_argument("--classifier", default=None,
                   help="attribute classifier folder (python -m facelib train-classifier): "
                        "needed to compute a missing attribute direction")
    p.add_argument("--keep", default=None,
                   help="comma-separated directions to keep unchanged (conditional editing), "
                        "e.g. Male,Young")
    p.add_argument("--attrs", default=None,
                   help="conditional runs: the photo's attributes to hold, e.g. Male=1,Smiling=0 "
                        "(the rest: the classifier's predictions if given, else drawn)")
    p.add_argument("--samples", type=int, default=2000,
                   help="latents sampled to fit a missing attribute direction")
    p.add_argument("--scale", type=int, default=4, help="enlarge the strip by this factor")
    p.add_argument("--checkpoint", help="latest (default), best, step-NNNNNNNN or a checkpoint "
                   "folder; --run RUN@CKPT says the same")
    p.add_argument("--seed", type=int, default=0)


def _load_classifier(path):
    from facelib.errors import FacelibError

    try:
        from facelib.classifier import AttributeClassifier
    except ImportError as e:
        raise FacelibError(f"the attribute classifier module is unavailable ({e}); update "
                           "facelib") from None
    return AttributeClassifier.load(path)


def resolve_direction(run, name: str, classifier_path, samples: int, seed: int):
    """The unit vector of ``name``: saved in the run, or computed with the classifier (then
    saved in RUN/directions/attributes.npz)."""
    from facelib.data.celeba import ATTRIBUTE_NAMES
    from facelib.errors import FacelibError
    from facelib.latent.directions import (
        available_directions, compute_attribute_directions, find_saved_direction,
        save_directions)

    vector = find_saved_direction(run, name)
    if vector is not None:
        return vector
    saved = sorted(available_directions(run))
    if name in ATTRIBUTE_NAMES:
        if classifier_path is None:
            raise FacelibError(
                f"direction {name!r} is not saved in {run.path}/directions (saved: "
                f"{', '.join(saved) or 'none'}); pass --classifier PATH to compute it from the "
                "attribute classifier (python -m facelib train-classifier)")
        clf = _load_classifier(classifier_path)
        dset = compute_attribute_directions(run, clf, [name], n=samples, seed=seed)
        path = save_directions(run, dset, "attributes")
        acc = dset.info(name).get("accuracy")
        print(f"computed direction {name} from {samples} samples (SVM held-out accuracy "
              f"{acc:.2f}); saved to {path}")
        return dset[name]
    raise FacelibError(
        f"unknown direction {name!r}. Saved in {run.path}/directions: {', '.join(saved) or 'none'}"
        f". Or give a CelebA attribute name ({', '.join(ATTRIBUTE_NAMES[:4])}, ...) with "
        "--classifier to compute it")


def run(args) -> int:
    import numpy as np

    from facelib.run.interface import open_run
    from facelib.commands.generate import parse_attrs
    from facelib.errors import FacelibError
    from facelib.images import make_grid, to_uint8, write_image
    from facelib.latent.align import load_face
    from facelib.latent.directions import move, orthogonalize
    from facelib.latent.inversion import invert

    if args.steps < 0:
        raise FacelibError(f"--steps {args.steps}: use 0 or more")
    if args.tune_steps < 0:
        raise FacelibError(f"--tune-steps {args.tune_steps}: use 0 (no tuning) or more")
    if args.scale < 1:
        raise FacelibError(f"--scale {args.scale}: use 1 or more")
    if args.strength is not None and not np.isfinite(args.strength):
        raise FacelibError(f"--strength {args.strength}: give a finite number, e.g. 2")
    if (args.direction is None) == (args.set_attrs is None):
        raise FacelibError("give one edit: --direction NAME (move along a latent direction) or "
                           "--set ATTR=0|1 (a conditional run's attributes)")
    changes = parse_attrs(args.set_attrs) if args.set_attrs is not None else None
    if args.set_attrs is not None and not changes:
        raise FacelibError("--set is empty: name the attributes to set, e.g. --set Smiling=1")
    if args.set_attrs is not None and args.keep:
        raise FacelibError("--keep applies to --direction; --set changes only the attributes "
                           "it names")
    run = open_run(args.run, checkpoint=args.checkpoint)
    if changes is not None and not run.conditional:
        raise FacelibError(f"--set needs a conditional run ({args.run} is unconditional); move "
                           "along an attribute direction instead: --direction Smiling "
                           "--classifier CLASSIFIER")
    face = load_face(args.image, run.resolution)
    direction = (None if changes is not None else
                 resolve_direction(run, args.direction, args.classifier, args.samples, args.seed))
    if args.keep:
        keep = [k.strip() for k in args.keep.split(",") if k.strip()]
        others = [resolve_direction(run, k, args.classifier, args.samples, args.seed)
                  for k in keep]
        direction = orthogonalize(direction, np.stack(others))
    fixed = parse_attrs(args.attrs)
    attrs = None
    if run.conditional:
        if args.classifier:  # the photo's predicted attributes, with --attrs overriding them
            from facelib.latent.inversion import attributes_from_scorer

            attrs = attributes_from_scorer(_load_classifier(args.classifier), face[None])
            for name, value in (fixed or {}).items():
                if name not in run.attribute_names:
                    raise FacelibError(f"--attrs: unknown attribute {name!r}")
                attrs[:, run.attribute_names.index(name)] = value
        else:
            attrs = run.sample_attributes(1, fixed, seed=args.seed)
    elif fixed:
        raise FacelibError("--attrs needs a conditional run; this one is unconditional")
    result = invert(run, face[None], steps=args.steps, attrs=attrs, seed=args.seed)
    inverted_psnr = float(result.psnr[0])
    if args.tune_steps:
        from facelib.latent.tuning import tune_generator

        run = tune_generator(run, result, steps=args.tune_steps, seed=args.seed)
        result.reconstructions = to_uint8(run.synthesize(result.z, result.attrs))
    if changes is not None:
        from facelib.latent.editing import edit_attributes

        strength = 1.0 if args.strength is None else args.strength
        edited = edit_attributes(run, result, changes, strength=strength)
        what = args.set_attrs + ("" if strength == 1 else f" at strength {strength:g}")
    else:
        strength = 2.0 if args.strength is None else args.strength
        edited = to_uint8(run.synthesize(move(result.z, direction, strength), result.attrs))
        what = f"{args.direction} {strength:+g}"
    strip = make_grid(np.stack([result.targets[0], result.reconstructions[0], edited[0]]), ncols=3)
    if args.scale > 1:
        strip = strip.repeat(args.scale, axis=0).repeat(args.scale, axis=1)
    path = write_image(args.out, strip)
    tuned = ("" if not args.tune_steps else
             f"; {run.tuning['psnr_db']:.1f} dB after {args.tune_steps} steps of pivotal tuning")
    print(f"reconstruction PSNR {inverted_psnr:.1f} dB (MSE {float(result.mse[0]):.4f}, "
          f"{args.steps} steps, init {result.init}){tuned}; wrote input | reconstruction | "
          f"{what} to {path}")
    return 0
