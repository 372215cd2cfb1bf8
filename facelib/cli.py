"""``python -m facelib VERB ...``: one verb per job, as in StyleGAN2-ADA's scripts.

Each verb lives in ``facelib/commands/<verb>.py`` and exposes ``HELP``, ``add_arguments(parser)``
and ``run(args)``. The verb modules import the library inside ``run`` (the one place in facelib
where imports are deliberately lazy): measured on 2 busy cores, ``python -m facelib --help`` takes
0.4-0.6 s, importing the training stack (TensorFlow) 25 s, so a typo or ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from facelib.errors import FacelibError

# verb -> module; the order is the order of `--help`.
COMMANDS = {
    "prepare": "facelib.commands.prepare",
    "train": "facelib.commands.train",
    "generate": "facelib.commands.generate",
    "export": "facelib.commands.export",
    "edit": "facelib.commands.edit",
    "train-classifier": "facelib.commands.train_classifier",
    "evaluate": "facelib.commands.evaluate",
    "fid": "facelib.commands.fid",
    "control": "facelib.commands.control",
    "train-detector": "facelib.commands.train_detector",
    "detect": "facelib.commands.detect",
    "synthesize": "facelib.commands.synthesize",
    "human-report": "facelib.commands.human_report",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m facelib",
        description="facelib: synthetic faces on CelebA with TensorFlow/Keras.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for verb, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(verb, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args._run(args)
    except FacelibError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(code or 0)
