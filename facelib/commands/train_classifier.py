"""python -m facelib train-classifier: the 40-attribute CNN that measures generated faces."""

from __future__ import annotations

HELP = ("train the CelebA attribute classifier on real faces (a prepared cache) and report "
        "per-attribute accuracy/AUC against the majority baseline")


def add_arguments(p) -> None:
    p.add_argument("--data", help="prepared cache folder (python -m facelib prepare); default: the "
                   "bundled 500-face sample (a toy: use CelebA for a real measuring stick)")
    p.add_argument("--out", required=True,
                   help="folder for classifier.keras, meta.json, report.json")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--resolution", type=int, choices=(32, 64, 128),
                   help="classifier input size (default: the cache's); other sizes are resized")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--width", type=int, default=32, help="channels of the first conv block")
    p.add_argument("--limit", type=int, help="use only the first N training faces")
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (cosine decay)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true",
                   help="one line per epoch instead of a progress bar")


def run(args) -> int:
    import time

    from facelib.classifier import format_report, train_attribute_classifier
    from facelib.errors import FacelibError

    if args.epochs < 1:
        raise FacelibError(f"--epochs {args.epochs}: train for at least one epoch")
    if args.batch_size < 1 or args.width < 1:
        raise FacelibError("--batch-size and --width must be positive integers")
    data = args.data
    if data is None:
        from facelib.data.sample import sample_cache

        data = sample_cache(args.resolution or 64)
        print(f"no --data: using the bundled 500-face sample ({data}); its 50 validation faces "
              "give only a rough report")
    t0 = time.perf_counter()
    clf = train_attribute_classifier(data, args.out, epochs=args.epochs,
                                     batch_size=args.batch_size, width=args.width, seed=args.seed,
                                     resolution=args.resolution, limit=args.limit,
                                     learning_rate=args.lr, verbose=2 if args.quiet else 1)
    print(f"trained on {clf.meta['n_train']} faces at {clf.resolution}px in "
          f"{time.perf_counter() - t0:.0f} s; held-out ({clf.report['split']} split):")
    print(format_report(clf.report))
    print(f"saved to {args.out} (classifier.keras, meta.json, report.json)")
    return 0
