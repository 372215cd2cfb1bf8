"""python -m facelib train-detector: train a real-vs-synthetic detector against run folders."""

from __future__ import annotations

HELP = ("train a detector that tells real faces (a prepared cache) from generated ones (run "
        "folders): a CNN on pixels, or a linear probe on Inception features and spectra")


def add_arguments(p) -> None:
    p.add_argument("--data", required=True, help="prepared cache of real faces (train split)")
    p.add_argument("--runs", nargs="+", required=True, metavar="RUN",
                   help="run folders whose faces count as synthetic; RUN@step-00000500 picks a "
                        "checkpoint")
    p.add_argument("--out", required=True, help="folder for detector.keras, meta.json, report.json")
    p.add_argument("--kind", choices=["cnn", "probe"], default="cnn",
                   help="cnn: a small CNN on pixels (CNNDetection's recipe; fits the generators it "
                        "saw); probe: a linear probe on --features, calibrated to call 97%% of "
                        "held-out real faces real (the recipe of the shipped detector)")
    p.add_argument("--features", default="inception,spectrum",
                   help="probe features, comma-separated: inception (FID Inception pool3), "
                        "spectrum (azimuthal power spectrum)")
    p.add_argument("--distance", action="store_true",
                   help="probe: add two features, the distance from real faces in feature space "
                        "(catches generators unlike any it saw)")
    p.add_argument("--resolution", type=int,
                   help="detector input size (default: the cache's); every face, real or "
                        "generated, is resized to it the same way")
    p.add_argument("--resize-prob", type=float, default=0.0,
                   help="share of training faces, real and generated alike, given a resolution "
                        "history (shrunk to 50-100%% and enlarged back)")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--width", type=int, default=32, help="channels of the first conv layers")
    p.add_argument("--n-real", type=int, help="real training faces (default: the whole split)")
    p.add_argument("--n-fake", type=int, help="synthetic training faces (default: as many as real)")
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--no-augment", action="store_true", help="train without blur/JPEG/flip")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--test-runs", nargs="*", default=[], metavar="RUN",
                   help="unseen generators to report on (held-out real faces vs their fakes)")
    p.add_argument("--n-test", type=int, default=500, help="held-out real faces in the report")


def run(args) -> int:
    import json
    from pathlib import Path

    from facelib.detector import detection_report, format_table, train_detector
    from facelib.errors import FacelibError

    for name in ("epochs", "batch_size", "width"):
        if getattr(args, name) < 1:
            raise FacelibError(f"--{name.replace('_', '-')} {getattr(args, name)}: use a positive "
                               f"integer")
    if not 0.0 <= args.resize_prob <= 1.0:
        raise FacelibError(f"--resize-prob {args.resize_prob}: use a probability between 0 and 1")
    augment_options = {"resize_prob": args.resize_prob} if args.resize_prob else None
    if args.kind == "probe":
        from facelib.data.cache import FaceCache
        from facelib.detector.probe import train_probe

        features = [f.strip() for f in args.features.split(",") if f.strip()]
        resolution = args.resolution or FaceCache.open(args.data).resolution
        det = train_probe(args.data, args.runs, args.out, features=features,
                          resolution=resolution, n_real=args.n_real, n_fake=args.n_fake,
                          augment=not args.no_augment, augment_options=augment_options,
                          distance=args.distance, seed=args.seed)
        print(f"detector: {Path(args.out) / 'probe.npz'} (features {','.join(det.features)}, "
              f"{det.resolution} px, training accuracy {det.meta['train_accuracy']:.4f})")
    else:
        det = train_detector(args.data, args.runs, args.out, n_real=args.n_real,
                             n_fake=args.n_fake, epochs=args.epochs, batch_size=args.batch_size,
                             width=args.width, learning_rate=args.lr, augment=not args.no_augment,
                             augment_options=augment_options, resolution=args.resolution,
                             seed=args.seed, verbose=2)
        print(f"detector: {Path(args.out) / 'detector.keras'} (best epoch "
              f"{det.meta['best_epoch']}, validation AP "
              f"{max(h['val_ap'] for h in det.meta['history']):.4f})")
    report = detection_report(det, args.data, args.runs, args.test_runs, n=args.n_test)
    (Path(args.out) / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    cols = ["accuracy", "real_accuracy", "fake_accuracy", "ap"]
    print(f"held-out real faces ({report['split']} split, n={report['n_real']}) against:")
    print(format_table(report["generators"], cols, key="generator"))
    for group, table in report.get("robustness", {}).items():
        print(f"robustness ({group} generators' fakes):")
        print(format_table(table, cols, key="perturbation"))
    print(f"report: {Path(args.out) / 'report.json'}")
    return 0
