"""python -m facelib export: a shippable copy of a run (what the ``pretrained:`` networks are)."""

from __future__ import annotations

HELP = "write a shippable copy of a run: config, one checkpoint's EMA generator and D, no optimizer"


def add_arguments(p) -> None:
    p.add_argument("--run", required=True, help="run folder, or RUN@CKPT (latest, best, "
                   "step-NNNNNNNN)")
    p.add_argument("--out", required=True, help="new folder for the copy (must not exist)")
    p.add_argument("--weights", choices=("float32", "float16"), default="float32",
                   help="float16 halves the weight files (loaded back as float32; measure the "
                   "copy: its faces differ from the run's by the rounding)")
    p.add_argument("--description", default="", help="a line for the copy's data.json")
    p.add_argument("--no-samples", action="store_true",
                   help="leave out the run's last sample grid (a preview PNG; generate draws faces)")


def run(args) -> int:
    from pathlib import Path

    from facelib.errors import FacelibError
    from facelib.run.folder import RunFolder, parse_run_spec

    out = Path(args.out)
    # RunFolder.export replaces what is at its destination; a command line must not delete a
    # folder someone named by mistake.
    if out.exists():
        raise FacelibError(f"--out {out} already exists: name a new folder, or delete it first")
    folder, checkpoint = parse_run_spec(args.run)
    dest = RunFolder(folder).export(out, checkpoint=checkpoint, description=args.description,
                                    weights=args.weights, samples=not args.no_samples)
    size = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
    print(f"exported {folder} ({checkpoint}) to {dest}: {size / 2 ** 20:.1f} MiB, weights in "
          f"{args.weights}; load it with facelib.load_run({str(dest)!r})")
    return 0
