"""Reference networks shipped with facelib, loaded by name and offline.

``pretrained:NAME`` works wherever a run folder (or an attribute classifier folder) is taken:
``facelib.load_run("pretrained:celeba32")``, ``--run pretrained:celeba32-cond`` on every
command, ``--classifier pretrained:celeba32-attributes``. The files ship inside the package
(``facelib/_pretrained``, from ``assets/pretrained`` in a checkout). On first use a network is
copied to ``$FACELIB_CACHE/pretrained/NAME-<content hash>``, so analyses that write beside a run
(saved directions, reports) never write into the installed package, and a new facelib release
with retrained weights gets a fresh copy.

They were trained on celeba-8k (8,000 CelebA images), so they carry CelebA's terms:
non-commercial research and educational use only (see NOTICE beside them).
"""

from __future__ import annotations

import hashlib
import importlib.resources
import os
import shutil
from pathlib import Path

from facelib.data.celeba import default_cache_root
from facelib.errors import FacelibError

PREFIX = "pretrained:"
# name -> kind ("run": a run folder; "classifier": an attribute classifier folder; "detector":
# a real-or-synthetic detector folder)
KINDS = {"celeba32": "run", "celeba32-cond": "run", "celeba32-attributes": "classifier",
         "detector": "detector"}
NOTICE = "NOTICE.md"


def is_pretrained(spec) -> bool:
    return isinstance(spec, str) and spec.startswith(PREFIX)


def bundled_root() -> Path:
    """Where the shipped networks are: package data ``facelib/_pretrained`` or
    ``<repo>/assets/pretrained``."""
    try:
        pkg = importlib.resources.files("facelib") / "_pretrained"
        if pkg.is_dir() and (Path(str(pkg)) / NOTICE).is_file():
            return Path(str(pkg))
    except (ModuleNotFoundError, TypeError, NotADirectoryError):
        pass
    repo = Path(__file__).resolve().parents[2] / "assets" / "pretrained"
    if (repo / NOTICE).is_file():
        return repo
    raise FacelibError("facelib's pretrained networks are missing (neither facelib/_pretrained nor "
                       "assets/pretrained was found); reinstall facelib from its repository "
                       "(pip install -e . in a checkout)")


def available(kind: str | None = None) -> list[str]:
    """Names of the shipped networks (of one kind: 'run' or 'classifier')."""
    return sorted(n for n, k in KINDS.items() if kind in (None, k))


def name_of(path) -> str | None:
    """The name of the pretrained network whose private copy ``path`` is, else None."""
    path = Path(str(path))
    root = default_cache_root() / "pretrained"
    if not path.name or path.parent.resolve() != root.resolve():
        return None
    name = path.name.rsplit("-", 1)[0]
    return name if name in KINDS else None


def _content_hash(folder: Path) -> str:
    digest = hashlib.sha256()
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(folder)).encode())
        digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()[:12]


def pretrained_path(spec: str, kind: str | None = None) -> Path:
    """``pretrained:NAME`` (or NAME) -> a private, writable copy of that network's folder."""
    name = spec[len(PREFIX):] if is_pretrained(spec) else spec
    if name not in KINDS or (kind is not None and KINDS[name] != kind):
        choices = ", ".join(PREFIX + n for n in available(kind))
        raise FacelibError(f"there is no pretrained network {name!r}"
                           f"{'' if kind is None else f' of kind {kind}'}: choose one of {choices}")
    source = bundled_root() / name
    if not source.is_dir():
        raise FacelibError(f"pretrained network {name!r} is missing from {source.parent}; "
                           "reinstall facelib from its repository")
    dest = default_cache_root() / "pretrained" / f"{name}-{_content_hash(source)}"
    if not dest.is_dir():
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(source, tmp)
        shutil.copy2(bundled_root() / NOTICE, tmp / NOTICE)
        try:
            os.replace(tmp, dest)
        except OSError:  # another process put it there first: theirs is the same content
            shutil.rmtree(tmp, ignore_errors=True)
    return dest
