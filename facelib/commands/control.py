"""python -m facelib control: how often a conditional run's faces show the attributes asked for."""

from __future__ import annotations

HELP = ("attribute control accuracy of a conditional run, judged by an attribute classifier "
        "(table + on/off figure)")


# Three flips that are easy to see at 32 px and a rare one (Pale_Skin, 4% of faces).
DEFAULT_GRID = ("Smiling", "Eyeglasses", "Male", "Pale_Skin")


def add_arguments(p) -> None:
    p.add_argument("--run", required=True, help="conditional run folder (train --conditional)")
    p.add_argument("--classifier", required=True,
                   help="attribute classifier folder (facelib.classifier, AttributeClassifier.save)")
    p.add_argument("--n", type=int, default=64, help="faces per attribute and value")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="folder for control.md/.csv/.json and grid.png")
    p.add_argument("--others", choices=("joint", "flip"), default="joint",
                   help="joint: other attributes from the data given the forced one (default); "
                   "flip: the same rows with only the one attribute changed")
    p.add_argument("--real", help="prepared cache whose faces give the classifier's own accuracy "
                   "(default: the run's training data, its test split)")
    p.add_argument("--real-split", default="test", choices=("train", "valid", "test", "all"))
    p.add_argument("--real-limit", type=int, default=5000,
                   help="at most this many real faces (the first of the split)")
    p.add_argument("--no-real", action="store_true", help="skip the real-face reference")
    p.add_argument("--attributes", help="comma-separated subset (default: all 40)")
    p.add_argument("--grid", help="attributes for the on/off figure (default: "
                   f"{','.join(DEFAULT_GRID)}, or the first four of --attributes when given; "
                   "empty: no figure)")
    p.add_argument("--checkpoint", help="latest (default), best, step-NNNNNNNN or a checkpoint "
                   "folder; --run RUN@CKPT says the same")


def _names(text: str | None) -> list[str] | None:
    return [s.strip() for s in text.split(",") if s.strip()] if text else None


def _grid(text: str | None, attributes: list[str] | None, names) -> list[str]:
    """The figure's attributes: only ones the report measures (--attributes, else every one of
    the run's ``names``), checked before the measurement (minutes) so that a typo costs nothing."""
    from facelib.errors import FacelibError

    if text is None:
        return list(DEFAULT_GRID) if attributes is None else attributes[:4]
    grid = _names(text) or []
    missing = [a for a in grid if a not in (attributes or names)]
    if missing and attributes is not None:
        raise FacelibError(f"--grid {','.join(missing)}: not among --attributes; add them there "
                           "or leave --grid out (it then shows the first four of --attributes)")
    if missing:
        raise FacelibError(f"--grid {','.join(missing)}: not an attribute of this run; valid "
                           f"names: {', '.join(names)}")
    return grid


def run(args) -> int:
    from facelib.run.interface import open_run
    from facelib.classifier import AttributeClassifier
    from facelib.attribute_control import attribute_figure, control_accuracy
    from facelib.errors import FacelibError

    if args.n < 1:
        raise FacelibError(f"--n {args.n}: ask for at least one face per attribute value")
    attributes = _names(args.attributes)
    run = open_run(args.run, checkpoint=args.checkpoint)
    if not run.conditional:
        raise FacelibError(f"{args.run} is an unconditional run: `control` needs a run trained "
                           "with --conditional")
    grid = _grid(args.grid, attributes, list(run.attribute_names))
    classifier = AttributeClassifier.load(args.classifier)  # a clear error when there is none
    real = None
    if not args.no_real:
        real = args.real or run.training_data()
        if real is None:
            print("no real-face reference: the run's training data is gone (pass --real CACHE)")
    report = control_accuracy(run, classifier, n=args.n, seed=args.seed,
                              attributes=attributes, others=args.others,
                              real=real, real_split=args.real_split, real_limit=args.real_limit)
    out = report.save(args.out)
    print(report.to_markdown(sort="balanced"))
    print(report.summary())
    if report.skipped:
        print("skipped: " + ", ".join(report.skipped))
    measured = {r["attribute"] for r in report.rows}
    grid = [a for a in grid if a in measured]  # one the classifier does not score has no row
    if grid:
        import matplotlib

        matplotlib.use("Agg")
        attribute_figure(run, grid, n=8, seed=args.seed, others=args.others, report=report,
                         path=out / "grid.png")
    print(f"wrote {out}/control.md, control.csv, control.json" + (", grid.png" if grid else ""))
    return 0
