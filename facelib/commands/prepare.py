"""``python -m facelib prepare SRC OUT``: preprocess CelebA once into a uint8 cache folder."""

from __future__ import annotations

import argparse

HELP = "crop and resize CelebA (folder, zip, or 'celeba' to download) into a training cache"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("src", metavar="SRC",
                        help="a CelebA folder (img_align_celeba/ + list_attr_celeba.txt; also a Colab "
                             "Drive path), img_align_celeba.zip, or 'celeba' to download with gdown")
    parser.add_argument("out", metavar="OUT", help="the cache folder to write")
    parser.add_argument("--resolution", type=int, default=64, choices=(32, 64, 128),
                        help="output size in pixels (default 64)")
    parser.add_argument("--crop", default="auto", choices=("auto", "celeba", "none"),
                        help="auto: CelebA face box for non-square images, none for square ones "
                             "(default); celeba: always the face box; none: no face crop "
                             "(non-square images are centre-cropped to a square)")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="processes that decode, crop and resize in parallel (default: one per "
                             "CPU, at most 16); 1: all in this process. The cache is the same "
                             "whatever N")
    parser.add_argument("--limit", type=int, default=None, help="only the first N attribute rows (quick runs)")
    parser.add_argument("--workdir", default=None,
                        help="where downloads and extracted zips go (default: $FACELIB_CACHE/celeba "
                             "or ~/.cache/facelib/celeba)")
    parser.add_argument("--force", action="store_true", help="replace OUT if it is an existing cache")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from facelib.data.prepare import prepare
    from facelib.errors import FacelibError

    if args.workers is not None and args.workers < 1:
        raise FacelibError(f"--workers must be at least 1, got {args.workers}")
    if args.limit is not None and args.limit < 1:
        raise FacelibError(f"--limit must be at least 1, got {args.limit}")
    report = prepare(args.src, args.out, args.resolution, args.crop, workers=args.workers,
                     progress=not args.no_progress, limit=args.limit, overwrite=args.force,
                     workdir=args.workdir)
    print(report.summary())
    return 0
