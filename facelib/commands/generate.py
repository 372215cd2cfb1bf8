"""python -m facelib generate: faces from a run folder, as a grid and/or individual files."""

from __future__ import annotations

HELP = "generate faces from a run folder into a grid PNG (--attrs for conditional runs)"


def add_arguments(p) -> None:
    p.add_argument("--run", required=True, help="run folder written by `train`")
    p.add_argument("--n", type=int, default=16, help="number of faces")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="grid.png", help="grid image path (PNG or JPEG)")
    p.add_argument("--attrs", default=None,
                   help="conditional runs: attributes to fix, e.g. Smiling=1,Eyeglasses=1,Male=0")
    p.add_argument("--checkpoint", help="latest (default), best, step-NNNNNNNN or a checkpoint "
                   "folder; --run RUN@CKPT says the same")
    p.add_argument("--save-individual", metavar="DIR", help="also write each face as DIR/NNNNNN.png")


def parse_attrs(text: str | None) -> dict | None:
    from facelib.errors import FacelibError

    if not text:
        return None
    out = {}
    for item in text.split(","):
        name, sep, value = item.strip().partition("=")
        if not sep or value not in ("0", "1"):
            raise FacelibError(f"--attrs item {item!r}: expected NAME=0 or NAME=1")
        out[name] = int(value)
    return out


def run(args) -> int:
    from pathlib import Path

    from facelib.run.interface import open_run
    from facelib.errors import FacelibError
    from facelib.images import save_grid, write_image

    if args.n < 1:
        raise FacelibError(f"--n {args.n}: ask for at least one face")
    run = open_run(args.run, checkpoint=args.checkpoint)
    faces = run.generate(args.n, seed=args.seed, attrs=parse_attrs(args.attrs))
    path = save_grid(faces, args.out)
    print(f"wrote {args.n} faces from {run} to {path}")
    if args.save_individual:
        folder = Path(args.save_individual)
        for i, face in enumerate(faces):
            write_image(folder / f"{i:06d}.png", face)
        print(f"wrote {args.n} files to {folder}")
    return 0
