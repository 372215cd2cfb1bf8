"""python -m facelib synthesize: write a labelled synthetic dataset in CelebA's layout."""

from __future__ import annotations

HELP = ("write N generated faces + list_attr_celeba.txt in CelebA layout (labels: the conditional "
        "run's requested attributes, or --classifier predictions)")


def add_arguments(p) -> None:
    p.add_argument("--run", required=True, help="run folder (RUN@step-00000500 for a checkpoint)")
    p.add_argument("--n", type=int, required=True, help="number of faces")
    p.add_argument("--out", required=True, help="output folder (CelebA layout)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--attrs", help="conditional runs: attributes to fix, e.g. Eyeglasses=1")
    p.add_argument("--classifier", help="attribute classifier folder: labels for unconditional runs")
    p.add_argument("--format", choices=("jpg", "png"), default="jpg")
    p.add_argument("--quality", type=int, default=95, help="JPEG quality")
    p.add_argument("--force", action="store_true", help="replace an existing synthetic dataset")


def run(args) -> int:
    from facelib.commands.generate import parse_attrs
    from facelib.synthetic import write_synthetic_dataset

    out = write_synthetic_dataset(args.run, args.out, args.n, seed=args.seed,
                                  attrs=parse_attrs(args.attrs), classifier=args.classifier,
                                  image_format=args.format, jpeg_quality=args.quality,
                                  overwrite=args.force)
    print(f"wrote {args.n} faces and list_attr_celeba.txt to {out} (see {out / 'README.md'})")
    return 0
