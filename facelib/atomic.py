"""Replacing a finished folder or file in one step, so readers see the old one or the new one,
never half.

Caches, checkpoints and synthetic datasets are written under a temporary name beside their
destination and moved into place with :func:`replace_dir`; single files with :func:`replace_file`
(JSON with :func:`write_json`).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path


def fsync_dir(path: str | Path) -> None:
    """Make a rename inside ``path`` durable (best effort: not every filesystem allows it)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def replace_dir(tmp: str | Path, final: str | Path) -> Path:
    """Move the finished folder ``tmp`` to ``final``, replacing what is there.

    An existing ``final`` is first renamed aside, so a crash between the two renames leaves one
    complete copy (the old one, aside) rather than a mix; it is deleted once the new one is in.
    """
    tmp, final = Path(tmp), Path(final)
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
    os.replace(tmp, final)
    fsync_dir(final.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return final


def write_json(path: str | Path, obj, *, indent: int = 1, default=None) -> Path:
    """``obj`` as JSON text (and a final newline) at ``path``, through :func:`replace_file`.
    ``default`` is json.dumps's hook for values JSON has no type for (None: they raise)."""
    text = json.dumps(obj, indent=indent, default=default) + "\n"
    return replace_file(path, lambda tmp: Path(tmp).write_text(text))


def replace_file(path: str | Path, write) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it over ``path``; on
    an error the temporary file is removed and ``path`` keeps its old content."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would make a shared copy unreadable
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path

