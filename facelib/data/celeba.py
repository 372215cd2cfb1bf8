"""Getting CelebA and reading its annotation files, strictly.

CelebA comes as ``img_align_celeba.zip`` (202,599 aligned 178x218 JPEGs under ``img_align_celeba/``),
``list_attr_celeba.txt`` (a count line, 40 names, then ``000001.jpg -1  1 ...`` rows) and
``list_eval_partition.txt`` (``000001.jpg 0`` rows; 0 train, 1 valid, 2 test).

Policy for bad input (documented here because callers rely on it):
- a malformed annotation file (count line not matching the rows, unknown/missing/duplicate attribute
  names, a row with the wrong number of values, a value other than -1/1, a repeated file name) is an
  error: a silently misaligned label table would poison every later step;
- rows whose image is missing and images without a row are *not* errors here; ``prepare`` skips
  and reports them (counts and names in its report and in the cache's meta.json).
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
import re
import shutil
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, NamedTuple

import numpy as np

from facelib.errors import FacelibError
from facelib.limits import ZIP_RATIO_MIN_BYTES, limit, over_limit

# The 40 official attribute names, in the official column order of list_attr_celeba.txt.
ATTRIBUTE_NAMES: tuple[str, ...] = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs",
    "Big_Lips", "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows",
    "Chubby", "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones",
    "Male", "Mouth_Slightly_Open", "Mustache", "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin",
    "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair",
    "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat", "Wearing_Lipstick", "Wearing_Necklace",
    "Wearing_Necktie", "Young",
)

IMAGES_DIR = "img_align_celeba"
ATTR_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
IMAGES_ZIP = "img_align_celeba.zip"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
SPLITS = {"train": 0, "valid": 1, "test": 2}
CELEBA_PAGE = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"


def default_cache_root() -> Path:
    """Where facelib keeps downloads and prepared data: ``$FACELIB_CACHE`` or ``~/.cache/facelib``."""
    env = os.environ.get("FACELIB_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "facelib"


class DriveFile(NamedTuple):
    """One official CelebA file on Google Drive: its file id and the MD5 of its bytes."""

    drive_id: str
    md5: str


# The official Google Drive copies published by the CelebA authors (ids and MD5s are public facts,
# the same ones torchvision verifies).
CELEBA_FILES: dict[str, DriveFile] = {
    IMAGES_ZIP: DriveFile("0B7EVK8r0v71pZjFTYXZWM3FlRnM", "00d2c5bc6d35e252742224ab0c1e8fcb"),
    ATTR_FILE: DriveFile("0B7EVK8r0v71pblRyaVFSWGxPY0U", "75e246fa4810816ffd6ee81facbd244c"),
    PARTITION_FILE: DriveFile("0B7EVK8r0v71pY0NSMzRuSXJEVkk", "d32c9cbf5e040fd4025c592c306e6668"),
}

# downloader(drive_id, destination_path) writes the file or raises.
Downloader = Callable[[str, Path], object]


# ---------------------------------------------------------------------------------------------
# Annotation files


@dataclass
class AttributeTable:
    """The attribute table: row i describes ``filenames[i]``; ``values`` int8 (N, 40) in {0, 1}."""

    filenames: list[str]
    values: np.ndarray
    names: list[str]

    def __len__(self) -> int:
        return len(self.filenames)

    def select(self, rows) -> "AttributeTable":
        """The table restricted to ``rows`` (indices or a boolean mask), in that order."""
        rows = np.asarray(rows)
        if rows.dtype == bool:
            rows = np.flatnonzero(rows)
        return AttributeTable([self.filenames[i] for i in rows], self.values[rows], list(self.names))

    def column(self, name: str) -> np.ndarray:
        """The 0/1 column of one attribute by name."""
        if name not in self.names:
            raise FacelibError(f"unknown attribute {name!r}: use one of {', '.join(self.names)}")
        return self.values[:, self.names.index(name)]


def _bad_file(path: Path, line: int | None, problem: str) -> FacelibError:
    where = f"{path}" if line is None else f"{path}, line {line}"
    return FacelibError(
        f"{where}: {problem}. The file must be in the official CelebA format (a count line, the "
        f"40 attribute names, then rows like '000001.jpg -1  1 ...'); re-download it "
        f"({CELEBA_PAGE}) or fix the line"
    )


def parse_attributes(path: str | Path) -> AttributeTable:
    """Parse ``list_attr_celeba.txt`` strictly into an AttributeTable (columns in official order).

    The header may list the 40 names in any order (columns are reordered to the official order);
    anything else that does not match the format raises FacelibError naming the line.
    """
    path = Path(path)
    if not path.is_file():
        raise FacelibError(f"attribute file {path} not found: pass the folder that holds {ATTR_FILE}")
    with open(path, encoding="utf-8", errors="replace") as f:
        # Streamed: lines are read one at a time (each at most MAX_LINE characters) and rows
        # are parsed in blocks, so memory follows the row count, which is capped.
        lines = _annotation_lines(f, path)
        count_no, count_text = next(lines, (None, ""))
        names_no, names_text = next(lines, (None, ""))
        if names_no is None:
            raise _bad_file(path, None, "the file is empty or has no attribute-name line")
        try:
            count = int(count_text.strip())
        except ValueError:
            got = count_text.strip()[:40]
            raise _bad_file(path, count_no, f"the first line should be the row count, got {got!r}") from None
        cap = limit("FACELIB_MAX_ANNOTATION_ROWS")
        if count > cap:
            raise over_limit("FACELIB_MAX_ANNOTATION_ROWS",
                             f"{path}, line {count_no}: the row count", count)
        names = names_text.split()
        seen_names = Counter(names)
        dupes = sorted(n for n, k in seen_names.items() if k > 1)
        unknown = [n for n in names if n not in ATTRIBUTE_NAMES]
        missing = [n for n in ATTRIBUTE_NAMES if n not in seen_names]
        if dupes or unknown or missing:
            parts = []
            if unknown:
                parts.append(f"unknown attribute names {_few(unknown)}")
            if missing:
                parts.append(f"missing attribute names {_few(missing)}")
            if dupes:
                parts.append(f"repeated attribute names {_few(dupes)}")
            raise _bad_file(path, names_no, "; ".join(parts))

        filenames: list[str] = []
        blocks = []
        block: list[tuple[int, str]] = []
        n_rows, row_error = 0, None
        for item in lines:
            n_rows += 1
            if n_rows > max(count, 0):  # more rows than announced: count the rest, keep nothing
                if n_rows > cap:
                    break
                continue
            if row_error is None:
                block.append(item)
                if len(block) == _BLOCK:
                    row_error = _parse_block(path, block, names, filenames, blocks)
                    block = []
        if row_error is None and block:
            row_error = _parse_block(path, block, names, filenames, blocks)
    if n_rows != count:  # the count line is checked first: a cut-off file is named as such
        has = f"more than {cap:,}" if n_rows > cap else f"{n_rows}"
        raise _bad_file(path, count_no, f"the count line says {count} rows but the file has {has}")
    if row_error is not None:
        raise row_error
    values = np.concatenate(blocks) if blocks else np.zeros((0, len(names)), np.int8)
    if len(set(filenames)) != len(filenames):
        seen: set[str] = set()
        for line_no, name in _row_numbers(path, filenames):
            if name in seen:
                raise _bad_file(path, line_no, f"file name {name} appears twice")
            seen.add(name)
    order = [names.index(n) for n in ATTRIBUTE_NAMES]
    return AttributeTable(filenames, np.ascontiguousarray(values[:, order]), list(ATTRIBUTE_NAMES))


_BLOCK = 16384  # rows parsed at once: bounds the temporary byte masks to a few MB
MAX_LINE = 4096  # characters in one annotation line (a CelebA row has ~130, the header ~500)


def _few(items: list[str], k: int = 8) -> str:
    return str(items[:k]) if len(items) <= k else f"{items[:k]} and {len(items) - k} more"


def _annotation_lines(f, path: Path, too_long=None):
    """(line number, text) of the non-blank lines of an open text file, read one at a time; a
    line longer than MAX_LINE characters is an error (it is never read whole). ``too_long(no)``
    builds that error for files with their own format message."""
    no = 0
    while True:
        line = f.readline(MAX_LINE + 1)
        if not line:
            return
        no += 1
        if len(line) > MAX_LINE:
            if too_long is not None:
                raise too_long(no)
            raise _bad_file(path, no, f"the line is longer than {MAX_LINE} characters")
        if line.strip():
            yield no, line.rstrip("\n")


def _parse_block(path: Path, block: list[tuple[int, str]], names: list[str],
                 filenames: list[str], blocks: list) -> FacelibError | None:
    """Parse rows into ``filenames``/``blocks``; the first malformed row's error is returned."""
    try:
        names_part, values_part = _parse_rows(path, block, names)
    except FacelibError as e:
        return e
    filenames.extend(names_part)
    blocks.append(values_part)
    return None


def _row_numbers(path: Path, filenames: list[str]):
    """(line number, file name) of each row, re-read from the file (only to name a duplicate)."""
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = _annotation_lines(f, path)
        next(lines, None), next(lines, None)
        for (line_no, _), name in zip(lines, filenames):
            yield line_no, name
_WHITESPACE = np.zeros(256, bool)
_WHITESPACE[[9, 10, 11, 12, 13, 32]] = True


def _parse_rows(path: Path, rows: list[tuple[int, str]],
                names: list[str]) -> tuple[list[str], np.ndarray]:
    """File names and 0/1 values of some attribute rows, validated token by token with numpy
    (a Python loop over 8 million tokens would take seconds)."""
    width = len(names)
    heads, rests = [], []
    for _, line in rows:
        parts = line.split(None, 1)  # the file name, then the values (any whitespace between)
        heads.append(parts[0])
        rests.append(parts[1] if len(parts) > 1 else "")
    buf = np.frombuffer(("\n".join(rests) + "\n").encode("latin-1", "replace"), np.uint8)
    space = _WHITESPACE[buf]
    starts = np.flatnonzero(~space & np.concatenate(([True], space[:-1])))
    ends = np.flatnonzero(~space & np.concatenate((space[1:], [True]))) + 1
    line_of = np.searchsorted(np.flatnonzero(buf == 10), starts)
    counts = np.bincount(line_of, minlength=len(rows))
    bad = np.flatnonzero(counts != width)
    if bad.size:
        r = int(bad[0])
        raise _bad_file(path, rows[r][0], f"expected a file name and {width} values, got {counts[r]} values")
    length = ends - starts
    first = buf[starts]
    second = buf[np.minimum(starts + 1, len(buf) - 1)]
    is_one = (length == 1) & (first == ord("1"))
    ok = is_one | ((length == 2) & (first == ord("-")) & (second == ord("1")))
    if not ok.all():
        k = int(np.flatnonzero(~ok)[0])
        token = bytes(buf[starts[k]:ends[k]]).decode("latin-1")
        raise _bad_file(path, rows[k // width][0], f"value {token!r} for {names[k % width]} is not -1 or 1")
    return heads, is_one.reshape(len(rows), width).astype(np.int8)


def format_attributes(table: AttributeTable) -> str:
    """The table in the official text format (count line, names, ``name -1  1 ...`` rows)."""
    out = [str(len(table)), " ".join(table.names) + " "]
    signs = np.where(table.values > 0, " 1", "-1")
    for name, row in zip(table.filenames, signs):
        out.append(name + " " + " ".join(row))
    return "\n".join(out) + "\n"


def parse_partition(path: str | Path) -> dict[str, int]:
    """Parse ``list_eval_partition.txt`` (``000001.jpg 0`` rows) into {file name: 0|1|2}."""
    path = Path(path)
    if not path.is_file():
        raise FacelibError(f"partition file {path} not found: pass the folder that holds "
                           f"{PARTITION_FILE}, or delete the name to use a seeded 80/10/10 split")
    result: dict[str, int] = {}
    cap = limit("FACELIB_MAX_ANNOTATION_ROWS")
    with open(path, encoding="utf-8", errors="replace") as f:
        too_long = lambda no: FacelibError(  # noqa: E731
            f"{path}, line {no}: longer than {MAX_LINE} characters; expected '<file> 0|1|2' "
            "rows: fix the file or delete it to use a seeded 80/10/10 split")
        for line_no, line in _annotation_lines(f, path, too_long):
            toks = line.split()
            if len(result) >= cap:
                raise over_limit("FACELIB_MAX_ANNOTATION_ROWS", f"{path}: the number of rows",
                                 cap + 1)
            if len(toks) != 2 or toks[1] not in ("0", "1", "2"):
                raise FacelibError(
                    f"{path}, line {line_no}: expected '<file> 0|1|2', got {line.strip()[:60]!r}; "
                    f"fix the file or delete it to use a seeded 80/10/10 split"
                )
            if toks[0] in result:
                raise FacelibError(f"{path}, line {line_no}: file name {toks[0]} appears twice; fix the file")
            result[toks[0]] = int(toks[1])
    return result


def seeded_partition(filenames, seed: int = 0, fractions=(0.8, 0.1, 0.1)) -> np.ndarray:
    """A deterministic train/valid/test split (int8 0/1/2) for data without an official one.

    Files are ranked by a seeded hash of their *name*, so the split does not depend on the order
    the names come in; the first ``fractions[0]`` of the ranking is train, the next valid, the rest
    test (exact counts, rounded).
    """
    names = list(filenames)
    n = len(names)
    if n == 0:
        return np.zeros(0, np.int8)
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-6:
        raise FacelibError(f"split fractions {fractions} must be three non-negative numbers summing to 1")
    keys = np.array(
        [int.from_bytes(hashlib.blake2b(f"{seed}/{name}".encode(), digest_size=8).digest(), "little")
         for name in names],
        dtype=np.uint64,
    )
    order = np.lexsort((np.array(names), keys))
    n_train = int(round(fractions[0] * n))
    n_valid = min(n - n_train, int(round(fractions[1] * n)))
    part = np.empty(n, np.int8)
    part[order[:n_train]] = 0
    part[order[n_train:n_train + n_valid]] = 1
    part[order[n_train + n_valid:]] = 2
    return part


# ---------------------------------------------------------------------------------------------
# Locating, extracting and downloading


@dataclass
class CelebaFiles:
    """Where a usable CelebA copy lives: the image folder and the annotation files."""

    images: Path
    attributes: Path
    partition: Path | None = None

    @property
    def root(self) -> Path:
        return self.images.parent


def _first_existing(*candidates: Path) -> Path | None:
    return next((c for c in candidates if c.exists()), None)


def _image_dir(folder: Path) -> Path | None:
    """``folder/img_align_celeba`` (or ``Img/...``), descending once more for Kaggle's nesting."""
    d = _first_existing(folder / IMAGES_DIR, folder / "Img" / IMAGES_DIR)
    if d is None or not d.is_dir():
        return None
    nested = d / IMAGES_DIR
    if nested.is_dir() and not any(p.suffix.lower() in IMAGE_EXTENSIONS for p in d.iterdir()):
        return nested
    return d


def _annotation(folder: Path, name: str, sub: str) -> Path | None:
    return _first_existing(folder / name, folder / sub / name)


def _missing_attr_error(where: Path) -> FacelibError:
    return FacelibError(
        f"no {ATTR_FILE} found in or next to {where}: put the official {ATTR_FILE} beside "
        f"{IMAGES_DIR}/ (or in Anno/), or use SRC=celeba to download everything"
    )


def locate(folder: str | Path) -> CelebaFiles:
    """Find images and annotations in a CelebA folder (official, Drive ``Img/ Anno/ Eval/`` or
    Kaggle layout); raises FacelibError naming what is missing."""
    folder = Path(folder)
    images = _image_dir(folder)
    if images is None:
        raise FacelibError(
            f"{folder} has no {IMAGES_DIR}/ folder: pass a CelebA folder, the {IMAGES_ZIP} file, "
            f"or 'celeba' to download it"
        )
    attrs = _annotation(folder, ATTR_FILE, "Anno")
    if attrs is None:
        raise _missing_attr_error(folder)
    return CelebaFiles(images, attrs, _annotation(folder, PARTITION_FILE, "Eval"))


def _unsafe_member(name: str, dest: Path) -> bool:
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return True
    target = (dest / name).resolve()
    return target != dest and dest not in target.parents


def extract_zip(zip_path: str | Path, dest: str | Path, progress: bool = True) -> Path:
    """Extract a zip into ``dest`` (created atomically: temp folder + rename; reused if present).

    Every member is checked first: absolute paths and paths that escape ``dest`` (zip-slip,
    ``../x``) make the whole archive rejected with FacelibError before anything is written, and
    so do sizes over the limits (``facelib.limits``): more than FACELIB_MAX_ZIP_MEMBERS members,
    more than FACELIB_MAX_ZIP_BYTES declared in all, or a member over 1 MiB that expands more
    than FACELIB_MAX_ZIP_RATIO times (a zip bomb; JPEGs barely compress). Members are then
    streamed to disk in 1 MiB chunks, never past their declared size.
    """
    zip_path, dest = Path(zip_path), Path(dest)
    if dest.is_dir():
        return dest
    try:
        zf = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as e:
        raise FacelibError(f"{zip_path} is not a readable zip ({e}); re-download it or pass the "
                           f"extracted folder") from None
    tmp = dest.with_name(dest.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        with zf:
            members = zf.infolist()
            root = tmp.resolve()
            bad = [m.filename for m in members if _unsafe_member(m.filename, root)]
            if bad:
                raise FacelibError(
                    f"{zip_path} has {len(bad)} member(s) with absolute paths or paths outside the "
                    f"target folder (e.g. {bad[0]!r}); refusing to extract it. Use the official "
                    f"{IMAGES_ZIP} or extract it yourself and pass the folder"
                )
            _check_zip_sizes(zip_path, members)
            from tqdm.auto import tqdm  # loads ipywidgets (~0.4 s): only when extracting

            for m in tqdm(members, desc=f"extract {zip_path.name}", unit="file", disable=not progress,
                          mininterval=1.0):
                _extract_member(zip_path, zf, m, tmp)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _check_zip_sizes(zip_path: Path, members: list[zipfile.ZipInfo]) -> None:
    """Refuse a zip whose declared sizes exceed the limits, before anything is written."""
    if len(members) > limit("FACELIB_MAX_ZIP_MEMBERS"):
        raise over_limit("FACELIB_MAX_ZIP_MEMBERS", f"{zip_path}: the number of members",
                         len(members))
    declared = sum(m.file_size for m in members)
    if declared > limit("FACELIB_MAX_ZIP_BYTES"):
        raise over_limit("FACELIB_MAX_ZIP_BYTES", f"{zip_path}: the uncompressed size of its "
                         "members", declared)
    ratio = limit("FACELIB_MAX_ZIP_RATIO")
    for m in members:
        if m.file_size > ZIP_RATIO_MIN_BYTES and m.file_size > ratio * max(m.compress_size, 1):
            raise FacelibError(
                f"{zip_path}: member {m.filename!r} expands from {m.compress_size:,} to "
                f"{m.file_size:,} bytes, more than FACELIB_MAX_ZIP_RATIO={ratio} times (a zip "
                f"bomb, not images); refusing to extract it. Use the official {IMAGES_ZIP}, or "
                "raise FACELIB_MAX_ZIP_RATIO if you trust this file")


def _extract_member(zip_path: Path, zf: zipfile.ZipFile, member: zipfile.ZipInfo,
                    root: Path) -> None:
    """Stream one (already checked) member under ``root``, at most its declared size."""
    target = root / member.filename
    try:
        if member.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        written = 0
        with zf.open(member) as src, open(target, "wb") as dst:
            while chunk := src.read(1 << 20):
                written += len(chunk)
                if written > member.file_size:  # zipfile stops there too; never trust one check
                    raise zipfile.BadZipFile("more data than its declared size")
                dst.write(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as e:
        raise FacelibError(f"{zip_path}: member {member.filename!r} cannot be extracted "
                           f"({str(e).splitlines()[0][:120] if str(e) else type(e).__name__}); "
                           "the zip is damaged: re-download it or pass the extracted folder"
                           ) from None


def md5sum(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex MD5 of a file, read in chunks."""
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def gdown_downloader(drive_id: str, dest: Path) -> None:
    """Download one Google Drive file with gdown (raises when Drive refuses)."""
    import gdown  # heavy (requests, BeautifulSoup: ~0.9 s): only when downloading

    result = gdown.download(id=drive_id, output=str(dest), quiet=False)
    if result is None:  # older gdown versions return None instead of raising
        raise RuntimeError("gdown could not retrieve the file (permission denied or quota exceeded)")


def _refused(name: str, error: object) -> FacelibError:
    text = str(error).strip()
    reason = text.splitlines()[0] if text else repr(error)
    return FacelibError(
        f"Google Drive refused to send {name} ({reason}). "
        f"Drive caps downloads of popular files (quota exceeded); retrying later may work. Fix: "
        f"get {IMAGES_ZIP} and {ATTR_FILE} yourself (from {CELEBA_PAGE} or by adding the "
        f"shared CelebA folder to your own Google Drive), then pass the local path, e.g. "
        f"`python -m facelib prepare /content/drive/MyDrive/CelebA OUT` (a folder or the zip)"
    )


def download_file(name: str, info: DriveFile, workdir: Path, downloader: Downloader) -> Path:
    """Download one file unless a copy with the right MD5 is present; verify the MD5."""
    dest = workdir / name
    if dest.is_file() and md5sum(dest) == info.md5:
        return dest
    part = workdir / (name + ".part")
    part.unlink(missing_ok=True)
    try:
        downloader(info.drive_id, part)
    except FacelibError:
        raise
    except Exception as e:  # gdown raises several types (FileURLRetrievalError, HTTP errors)
        part.unlink(missing_ok=True)
        raise _refused(name, e) from e
    if not part.is_file() or part.stat().st_size == 0:
        part.unlink(missing_ok=True)
        raise _refused(name, "nothing was written")
    got = md5sum(part)
    if got != info.md5:
        part.unlink(missing_ok=True)
        raise FacelibError(
            f"MD5 mismatch for {name}: got {got}, expected {info.md5}; the download is incomplete "
            f"or not the official file. Run again to retry, or pass a verified local copy"
        )
    os.replace(part, dest)
    return dest


def _from_zip(zip_path: Path, workdir: Path, progress: bool) -> CelebaFiles:
    extracted = extract_zip(zip_path, workdir / f"{zip_path.stem}-extracted", progress=progress)
    # The official zip holds only img_align_celeba/; a home-made one may hold everything,
    # possibly one folder down.
    candidates = [extracted] + sorted(p for p in extracted.iterdir() if p.is_dir())
    folder = next((c for c in candidates if _image_dir(c) is not None), None)
    if folder is None:
        raise FacelibError(f"{zip_path} has no {IMAGES_DIR}/ folder inside; pass the official {IMAGES_ZIP}")
    images = _image_dir(folder)
    near = [folder, zip_path.parent, zip_path.parent.parent]
    attrs = next((a for d in near if (a := _annotation(d, ATTR_FILE, "Anno")) is not None), None)
    if attrs is None:
        raise _missing_attr_error(zip_path)
    part = next((p for d in near if (p := _annotation(d, PARTITION_FILE, "Eval")) is not None), None)
    return CelebaFiles(images, attrs, part)


def get_celeba(source: str | Path, workdir: str | Path | None = None,
               downloader: Downloader | None = None, *, files: Mapping[str, DriveFile] | None = None,
               progress: bool = True) -> CelebaFiles:
    """Make CelebA usable and say where it is.

    ``source``: ``"celeba"`` (download the official files with gdown, MD5-verified), a zip
    (extracted once under ``workdir``, zip-slip safe), or a folder (official, Drive or Kaggle layout,
    used in place; e.g. a Colab ``/content/drive/MyDrive/...`` path). A folder holding only the zip
    and the annotation files works too. ``downloader`` and ``files`` are injectable for tests.
    """
    workdir = Path(workdir) if workdir is not None else default_cache_root() / "celeba"
    if str(source).lower() in ("celeba", "download"):
        workdir.mkdir(parents=True, exist_ok=True)
        table = dict(files if files is not None else CELEBA_FILES)
        fetch = downloader or gdown_downloader
        for name, info in table.items():
            download_file(name, info, workdir, fetch)
        return _from_zip(workdir / IMAGES_ZIP, workdir, progress)
    path = Path(source).expanduser()
    if not path.exists():
        raise FacelibError(
            f"{path} does not exist: pass a CelebA folder, the {IMAGES_ZIP} file, or 'celeba' to download"
        )
    if path.is_file():
        if not zipfile.is_zipfile(path):
            raise FacelibError(f"{path} is a file but not a zip: pass a CelebA folder or {IMAGES_ZIP}")
        return _from_zip(path, workdir, progress)
    if _image_dir(path) is None:
        zip_in = _annotation(path, IMAGES_ZIP, "Img")
        if zip_in is not None:
            return _from_zip(zip_in, workdir, progress)
    return locate(path)
