"""Getting CelebA (folder, Drive layout, zip, download) and parsing its annotation files."""

from __future__ import annotations

import hashlib
import io
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from facelib.data.celeba import (
    ATTR_FILE, ATTRIBUTE_NAMES, IMAGES_DIR, IMAGES_ZIP, PARTITION_FILE, DriveFile, extract_zip,
    format_attributes, get_celeba, parse_attributes, parse_partition, seeded_partition,
)
from facelib.errors import FacelibError

FIXTURE = Path(__file__).parent / "fixtures" / "celeba-tiny"
FIXTURE_ATTR = FIXTURE / ATTR_FILE


def fixture_lines() -> list[str]:
    return FIXTURE_ATTR.read_text().splitlines()


def write(tmp_path: Path, lines: list[str]) -> Path:
    p = tmp_path / ATTR_FILE
    p.write_text("\n".join(lines) + "\n")
    return p


# ------------------------------------------------------------------------------- parsing


def test_parse_fixture_known_rows():
    t = parse_attributes(FIXTURE_ATTR)
    assert len(t) == 24 and t.filenames[0] == "000001.jpg" and t.filenames[-1] == "000024.jpg"
    assert t.names == list(ATTRIBUTE_NAMES) and len(t.names) == 40
    assert t.values.dtype == np.int8 and t.values.shape == (24, 40)
    assert set(np.unique(t.values)) <= {0, 1}
    # 000001.jpg: -1 1 1 -1 ... in the file; she is not Male and is Smiling and Young.
    assert t.values[0, :4].tolist() == [0, 1, 1, 0]
    assert t.column("Male")[0] == 0 and t.column("Smiling")[0] == 1 and t.column("Young")[0] == 1
    # Every value agrees with the text, token by token.
    for line, row in zip(fixture_lines()[2:], t.values):
        assert [int(v) for v in line.split()[1:]] == (row * 2 - 1).tolist()


def test_format_round_trip(tmp_path):
    t = parse_attributes(FIXTURE_ATTR)
    p = tmp_path / ATTR_FILE
    p.write_text(format_attributes(t))
    u = parse_attributes(p)
    assert u.filenames == t.filenames and np.array_equal(u.values, t.values)


def test_header_in_another_order_is_reordered(tmp_path):
    lines = fixture_lines()
    names = lines[1].split()
    perm = list(reversed(range(40)))
    rows = [" ".join([ln.split()[0]] + [ln.split()[1:][j] for j in perm]) for ln in lines[2:]]
    p = write(tmp_path, [lines[0], " ".join(names[j] for j in perm)] + rows)
    assert np.array_equal(parse_attributes(p).values, parse_attributes(FIXTURE_ATTR).values)


def _replace(lines, i, new):
    out = list(lines)
    out[i] = new
    return out


BAD_FILES = {
    "count mismatch": (lambda ls: _replace(ls, 0, "25"), "says 25 rows but the file has 24"),
    "count not a number": (lambda ls: _replace(ls, 0, "many"), "first line should be the row count"),
    "unknown name": (lambda ls: _replace(ls, 1, ls[1].replace("Smiling", "Smiley")),
                     "unknown attribute names ['Smiley']"),
    "missing name": (lambda ls: [ls[0], " ".join(ls[1].split()[:-1])] +
                     [" ".join(r.split()[:-1]) for r in ls[2:]], "missing attribute names ['Young']"),
    "repeated name": (lambda ls: _replace(ls, 1, ls[1].replace("Young", "Male")), "repeated attribute names ['Male']"),
    "short row": (lambda ls: _replace(ls, 4, " ".join(ls[4].split()[:-1])), "line 5: expected a file name and 40 values, got 39"),
    "long row": (lambda ls: _replace(ls, 4, ls[4] + " 1"), "got 41 values"),
    "zero value": (lambda ls: _replace(ls, 6, ls[6].replace(" -1", " 0", 1)), "line 7: value '0'"),
    "value 2": (lambda ls: _replace(ls, 3, ls[3].rstrip()[:-1] + "2"), "'2' for Young is not -1 or 1"),
    "repeated file": (lambda ls: _replace(ls, 5, ls[4]), "line 6: file name 000003.jpg appears twice"),
    "empty": (lambda ls: [], "empty"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_malformed_attribute_file_is_a_clear_error(tmp_path, case):
    mutate, message = BAD_FILES[case]
    p = write(tmp_path, mutate(fixture_lines()))
    with pytest.raises(FacelibError) as e:
        parse_attributes(p)
    assert message in str(e.value)
    assert "official CelebA format" in str(e.value)  # the fix


def test_missing_attribute_file(tmp_path):
    with pytest.raises(FacelibError, match="not found"):
        parse_attributes(tmp_path / ATTR_FILE)


def test_partition_file(tmp_path):
    p = tmp_path / PARTITION_FILE
    p.write_text("000001.jpg 0\n000002.jpg 1\n\n000003.jpg 2\n")
    assert parse_partition(p) == {"000001.jpg": 0, "000002.jpg": 1, "000003.jpg": 2}
    p.write_text("000001.jpg 0\n000002.jpg 3\n")
    with pytest.raises(FacelibError, match="line 2.*seeded"):
        parse_partition(p)
    p.write_text("000001.jpg 0\n000001.jpg 1\n")
    with pytest.raises(FacelibError, match="appears twice"):
        parse_partition(p)


def test_seeded_partition_is_exact_deterministic_and_order_free():
    names = [f"{i:06d}.jpg" for i in range(1, 1001)]
    part = seeded_partition(names, seed=0)
    assert part.dtype == np.int8 and np.bincount(part).tolist() == [800, 100, 100]
    assert np.array_equal(part, seeded_partition(names, seed=0))
    shuffled = list(np.random.default_rng(5).permutation(names))
    again = dict(zip(shuffled, seeded_partition(shuffled, seed=0)))
    assert all(again[n] == p for n, p in zip(names, part))
    assert not np.array_equal(part, seeded_partition(names, seed=1))
    # Not just the first 800 names: the split is spread over the ids.
    assert 0 < part[:100].tolist().count(0) < 100
    assert np.bincount(seeded_partition(names[:24]), minlength=3).tolist() == [19, 2, 3]


# ------------------------------------------------------------------------------- locating


def test_folder_is_used_in_place(tmp_path):
    files = get_celeba(FIXTURE, tmp_path / "work")
    assert files.images == FIXTURE / IMAGES_DIR and files.attributes == FIXTURE_ATTR
    assert files.partition is None
    assert not (tmp_path / "work").exists()  # nothing copied


def test_drive_layout_with_anno_and_eval(tmp_path):
    root = tmp_path / "CelebA"
    shutil.copytree(FIXTURE / IMAGES_DIR, root / "Img" / IMAGES_DIR)
    (root / "Anno").mkdir()
    shutil.copy(FIXTURE_ATTR, root / "Anno" / ATTR_FILE)
    (root / "Eval").mkdir()
    (root / "Eval" / PARTITION_FILE).write_text("".join(f"{i:06d}.jpg {i % 3}\n" for i in range(1, 25)))
    files = get_celeba(root, tmp_path / "work")
    assert files.images == root / "Img" / IMAGES_DIR
    assert files.attributes == root / "Anno" / ATTR_FILE
    assert files.partition == root / "Eval" / PARTITION_FILE


def test_bad_sources_are_clear_errors(tmp_path):
    with pytest.raises(FacelibError, match="does not exist.*'celeba' to download"):
        get_celeba(tmp_path / "nope", tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FacelibError, match="no img_align_celeba/ folder"):
        get_celeba(tmp_path / "empty", tmp_path)
    shutil.copytree(FIXTURE / IMAGES_DIR, tmp_path / "noattr" / IMAGES_DIR)
    with pytest.raises(FacelibError, match="no list_attr_celeba.txt"):
        get_celeba(tmp_path / "noattr", tmp_path)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(FacelibError, match="not a zip"):
        get_celeba(tmp_path / "notes.txt", tmp_path)


def official_zip_bytes() -> bytes:
    """A zip in the official layout (img_align_celeba/ inside) from the fixture images."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(f"{IMAGES_DIR}/", "")
        for p in sorted((FIXTURE / IMAGES_DIR).iterdir()):
            zf.write(p, f"{IMAGES_DIR}/{p.name}")
    return buf.getvalue()


def test_zip_in_official_layout_is_extracted_once(tmp_path):
    src = tmp_path / "drive"
    src.mkdir()
    (src / IMAGES_ZIP).write_bytes(official_zip_bytes())
    shutil.copy(FIXTURE_ATTR, src / ATTR_FILE)
    work = tmp_path / "work"
    files = get_celeba(src / IMAGES_ZIP, work)
    assert files.images.is_relative_to(work) and files.images.name == IMAGES_DIR
    assert files.attributes == src / ATTR_FILE
    names = sorted(p.name for p in files.images.iterdir())
    assert names == [f"{i:06d}.jpg" for i in range(1, 25)]
    assert (files.images / "000007.jpg").read_bytes() == (FIXTURE / IMAGES_DIR / "000007.jpg").read_bytes()
    stamp = (files.images / "000001.jpg").stat().st_mtime_ns
    assert get_celeba(src / IMAGES_ZIP, work).images == files.images  # reused, not re-extracted
    assert (files.images / "000001.jpg").stat().st_mtime_ns == stamp
    # A folder holding only the zip and the annotations works as well.
    assert get_celeba(src, work).images == files.images


@pytest.mark.parametrize("evil", ["img_align_celeba/../../escaped.txt", "../escaped.txt",
                                  "/tmp/facelib-absolute-escape.txt", "C:/escaped.txt"])
def test_zip_slip_is_rejected_before_anything_is_written(tmp_path, evil):
    z = tmp_path / "evil.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr(f"{IMAGES_DIR}/000001.jpg", (FIXTURE / IMAGES_DIR / "000001.jpg").read_bytes())
        zf.writestr(zipfile.ZipInfo(evil), b"gotcha")
    dest = tmp_path / "work" / "out"
    with pytest.raises(FacelibError, match="outside the target folder.*refusing"):
        extract_zip(z, dest, progress=False)
    assert not dest.exists() and not (tmp_path / "work" / "out.partial").exists()
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "work" / "escaped.txt").exists()
    assert not Path("/tmp/facelib-absolute-escape.txt").exists()


def test_corrupt_zip_is_a_clear_error(tmp_path):
    z = tmp_path / IMAGES_ZIP
    z.write_bytes(official_zip_bytes()[:-200])  # cut off the central directory
    with pytest.raises(FacelibError, match="not a readable zip"):
        extract_zip(z, tmp_path / "out", progress=False)


# ------------------------------------------------------------------------------- downloading


def fake_drive(contents: dict[str, bytes]):
    """A table of fake Drive files whose MD5s are right, and a downloader that serves them."""
    files = {name: DriveFile(f"id-{name}", hashlib.md5(data).hexdigest()) for name, data in contents.items()}
    by_id = {f"id-{name}": data for name, data in contents.items()}
    calls: list[str] = []

    def downloader(drive_id: str, dest: Path) -> None:
        calls.append(drive_id)
        Path(dest).write_bytes(by_id[drive_id])

    return files, downloader, calls


def test_download_verifies_md5_and_is_not_repeated(tmp_path):
    files, downloader, calls = fake_drive({IMAGES_ZIP: official_zip_bytes(), ATTR_FILE: FIXTURE_ATTR.read_bytes()})
    got = get_celeba("celeba", tmp_path, downloader=downloader, files=files, progress=False)
    assert sorted(calls) == sorted([f"id-{ATTR_FILE}", f"id-{IMAGES_ZIP}"])
    assert len(list(got.images.iterdir())) == 24 and got.attributes == tmp_path / ATTR_FILE
    assert not list(tmp_path.glob("*.part"))
    get_celeba("celeba", tmp_path, downloader=downloader, files=files, progress=False)
    assert len(calls) == 2  # verified copies are reused


def test_download_with_wrong_md5_raises_and_keeps_nothing(tmp_path):
    files, downloader, _ = fake_drive({ATTR_FILE: FIXTURE_ATTR.read_bytes()})
    files = {ATTR_FILE: DriveFile(files[ATTR_FILE].drive_id, "0" * 32)}
    with pytest.raises(FacelibError, match=f"MD5 mismatch for {ATTR_FILE}.*expected 0000"):
        get_celeba("celeba", tmp_path, downloader=downloader, files=files, progress=False)
    assert not (tmp_path / ATTR_FILE).exists() and not list(tmp_path.glob("*.part"))


def test_drive_quota_gives_the_clear_message(tmp_path):
    def refused(drive_id, dest):
        raise RuntimeError("Too many users have viewed or downloaded this file recently. "
                           "Please try accessing the file again later.")

    with pytest.raises(FacelibError) as e:
        get_celeba("celeba", tmp_path, downloader=refused, progress=False)
    msg = str(e.value)
    assert "Google Drive refused to send img_align_celeba.zip" in msg and "Too many users" in msg
    assert "quota exceeded" in msg and "pass the local path" in msg and "/content/drive/MyDrive" in msg


def test_gdown_error_types_and_silent_failures_are_caught(tmp_path):
    gdown = pytest.importorskip("gdown")
    error = getattr(getattr(gdown, "exceptions", None), "FileURLRetrievalError", RuntimeError)

    def gdown_like(drive_id, dest):
        raise error("Cannot retrieve the public link of the file.")

    with pytest.raises(FacelibError, match="quota exceeded"):
        get_celeba("celeba", tmp_path, downloader=gdown_like, progress=False)
    with pytest.raises(FacelibError, match="nothing was written"):
        get_celeba("celeba", tmp_path, downloader=lambda i, d: None, progress=False)


def test_official_file_table_holds_the_published_ids():
    from facelib.data.celeba import CELEBA_FILES

    assert set(CELEBA_FILES) == {IMAGES_ZIP, ATTR_FILE, PARTITION_FILE}
    assert CELEBA_FILES[IMAGES_ZIP].md5 == "00d2c5bc6d35e252742224ab0c1e8fcb"
    assert all(len(f.md5) == 32 and len(f.drive_id) >= 28 for f in CELEBA_FILES.values())
