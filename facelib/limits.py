"""How much facelib reads from a file it did not write itself, before it refuses the file.

Every reader of a user-supplied file checks sizes *before* it allocates: an image's header
dimensions before decoding, a zip member's declared size and compression ratio before extracting
(and a byte cap while streaming it), an annotation file's row count while streaming it, a weight
file's size before reading it. Each limit is a default here and can be raised (or lowered) with
the environment variable of the same name, read at the moment of use, e.g.::

    FACELIB_MAX_IMAGE_PIXELS=400000000 python -m facelib detect big_scan.png

A file over a limit is refused with one FacelibError line that names the file, the limit and
the variable to set.
"""

from __future__ import annotations

import os

from facelib.errors import FacelibError

# name -> (default, what it bounds). Defaults admit everything facelib is meant to read (CelebA's
# 202,599-row annotation files and 1.4 GB zip, phone photos, pytorch-fid's 95 MB weights) with
# room to spare, and bound the memory a hostile file can make facelib allocate.
LIMITS: dict[str, tuple[int, str]] = {
    "FACELIB_MAX_IMAGE_PIXELS": (
        100_000_000, "pixels (width x height) of one image file; decoded RGB is 3 bytes a pixel"),
    "FACELIB_MAX_ZIP_BYTES": (
        32 << 30, "uncompressed bytes of all members of a zip that is extracted"),
    "FACELIB_MAX_ZIP_RATIO": (
        200, "uncompressed/compressed size of one zip member larger than 1 MiB"),
    "FACELIB_MAX_ZIP_MEMBERS": (
        2_000_000, "members of a zip that is extracted"),
    "FACELIB_MAX_ANNOTATION_ROWS": (
        1_000_000, "rows of an attribute or partition list (CelebA has 202,599)"),
    "FACELIB_MAX_WEIGHTS_BYTES": (
        2 << 30, "bytes of a torch weight file, and of the tensors it declares"),
    "FACELIB_MAX_JSON_BYTES": (
        16 << 20, "bytes of one JSON document (config.json, state.json, meta.json)"),
}

ZIP_RATIO_MIN_BYTES = 1 << 20  # smaller members are exempt from the ratio test (text compresses)


def limit(name: str) -> int:
    """The limit ``name`` (a key of LIMITS): ``$name`` when set, else the default."""
    default, _ = LIMITS[name]
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        value = 0
    if value < 1:
        raise FacelibError(f"{name}={text!r} is not a positive integer; unset it to use the "
                           f"default {default}")
    return value


def over_limit(name: str, what: str, value: int) -> FacelibError:
    """The one-line error for ``what`` exceeding the limit ``name`` by having ``value``."""
    return FacelibError(
        f"{what} is {value:,} but facelib reads at most {limit(name):,} "
        f"({LIMITS[name][1]}); refusing the file. If you trust it, raise the limit: "
        f"export {name}={max(value, limit(name) + 1)}")


__all__ = ["LIMITS", "ZIP_RATIO_MIN_BYTES", "limit", "over_limit"]
