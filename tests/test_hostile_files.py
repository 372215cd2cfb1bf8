"""Hostile files (issue 14): nothing facelib reads can run code, exhaust memory, or corrupt a run.

Each pickle-capable reader gets a file whose ``__reduce__`` would create a marker file: the
marker must not exist afterwards and the user must get one FacelibError line. Size bombs are
refused before allocation (limits in facelib.limits). Damaged checkpoints are passed over for
the last good one; a resume moves them aside and never deletes the good one.
"""

from __future__ import annotations

import json
import os
import pickle
import shlex
import shutil
import struct
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from facelib.errors import FacelibError


class Evil:
    """Unpickling this would run ``touch MARKER``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


def one_line(err: BaseException) -> str:
    text = str(err)
    assert text and "\n" not in text, repr(text)
    return text


# --------------------------------------------------------------------------------------------
# No code execution


LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


@pytest.mark.parametrize("position", ["magic", "protocol", "sys_info", "tensors", "keys"])
def test_legacy_torch_file_never_runs_a_pickled_call(tmp_path, position):
    """The legacy .pth reader used plain pickle.load for its header: a pickle whose __reduce__
    calls os.system ran before the magic-number check. Every pickle in it is now allowlisted."""
    from facelib.metrics.inception import load_weight_file

    marker = tmp_path / "MARKER"
    evil = pickle.dumps(Evil(marker), protocol=2)
    parts = {"magic": pickle.dumps(LEGACY_MAGIC, protocol=2),
             "protocol": pickle.dumps(1001, protocol=2),
             "sys_info": pickle.dumps({"little_endian": True}, protocol=2),
             "tensors": pickle.dumps({"w": 1}, protocol=2),
             "keys": pickle.dumps([], protocol=2)}
    parts[position] = evil
    path = tmp_path / "evil.pth"
    path.write_bytes(b"".join(parts.values()))
    with pytest.raises(FacelibError) as e:
        load_weight_file(path)
    assert not marker.exists()
    assert "posix.system" in one_line(e.value) or "os.system" in str(e.value)


def test_torch_zip_never_runs_a_pickled_call(tmp_path):
    from facelib.metrics.inception import load_weight_file

    marker = tmp_path / "MARKER"
    path = tmp_path / "evil.pth"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps({"x": Evil(marker)}, protocol=2))
    with pytest.raises(FacelibError) as e:
        load_weight_file(path)
    assert not marker.exists()
    assert "refusing to load" in one_line(e.value)


@pytest.mark.parametrize("payload, reason", [
    (b"\x80\x02K\x01r\xff\xff\xff\xf0.", "memo index"),  # LONG_BINPUT 4e9: a 64 GB memo table
    (b"\x80\x04\x8e" + (1 << 44).to_bytes(8, "little") + b"xx.", "bytes8"),  # 16 TB of bytes
], ids=["memo", "bytes8"])
def test_pickle_size_bombs_are_refused_before_unpickling(tmp_path, payload, reason):
    from facelib.metrics.inception import load_weight_file

    path = tmp_path / "bomb.pth"
    path.write_bytes(payload)
    with pytest.raises(FacelibError, match=reason) as e:
        load_weight_file(path)
    one_line(e.value)


def test_pickled_calls_with_wrong_arguments_are_one_line(tmp_path):
    """Allowlisted callables fed junk (a storage type called, a tensor rebuilt from a string)
    raise TypeError/ValueError inside the unpickler: still one FacelibError line."""
    from facelib.metrics.inception import load_weight_file

    path = tmp_path / "junk.pth"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl",
                    b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\nX\x03\x00\x00\x00abc\x85R.")
    with pytest.raises(FacelibError) as e:
        load_weight_file(path)
    one_line(e.value)


def test_weights_npz_with_pickled_objects_is_refused(tmp_path):
    from facelib.metrics.inception import load_weight_file

    marker = tmp_path / "MARKER"
    path = tmp_path / "evil.npz"
    np.savez(path, x=np.array([Evil(marker)], dtype=object))
    with pytest.raises(FacelibError, match="not a readable .npz") as e:
        load_weight_file(path)
    one_line(e.value)
    assert not marker.exists()


def test_attribute_prior_with_pickled_objects_is_refused(tmp_path):
    from facelib.run.folder import RunFolder

    marker = tmp_path / "MARKER"
    folder = RunFolder(tmp_path / "run")
    folder.path.mkdir()
    np.savez(folder.prior_path, names=np.array([Evil(marker)], dtype=object),
             rows=np.zeros((1, 40)), counts=np.ones(1))
    with pytest.raises(FacelibError, match="attribute_prior.npz is damaged") as e:
        folder.read_attribute_prior()
    one_line(e.value)
    assert not marker.exists()


def test_export_of_a_run_with_a_pickled_prior_is_refused_before_writing(tiny_run, tmp_path):
    from facelib.run.folder import RunFolder

    marker = tmp_path / "MARKER"
    run = Path(shutil.copytree(tiny_run, tmp_path / "run"))
    np.savez(RunFolder(run).prior_path, names=np.array([Evil(marker)], dtype=object),
             rows=np.zeros((1, 40)), counts=np.ones(1))
    with pytest.raises(FacelibError, match="attribute_prior.npz is damaged") as e:
        RunFolder(run).export(tmp_path / "copy")
    one_line(e.value)
    assert not marker.exists() and not (tmp_path / "copy").exists()


def test_checkpoint_optimizer_npz_with_pickled_objects_is_refused(tiny_run, tmp_path):
    """A checkpoint written before the manifest (marker 'ok') gets structural checks: an .npz
    whose arrays are pickled objects is refused by `verify`, nothing unpickled."""
    from facelib.run.checkpoints import CheckpointManager, DamagedCheckpoint

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("tensorboard"))
    manager = CheckpointManager(run / "checkpoints")
    ckpt = manager.latest()
    (ckpt / "COMPLETE").write_text("ok\n")
    marker = tmp_path / "MARKER"
    np.savez(ckpt / "d_optimizer.npz", v0000=np.array([Evil(marker)], dtype=object))
    with pytest.raises(DamagedCheckpoint, match="d_optimizer.npz cannot be read") as e:
        manager.verify(ckpt)
    one_line(e.value)
    assert not marker.exists()


def _lambda_model(marker: Path):
    import keras

    path = str(marker)
    inp = keras.Input((4,))
    out = keras.layers.Lambda(lambda x: x * 2 + len(open(path, "w").name))(inp)
    return keras.Model(inp, out)


def test_keras_files_load_with_safe_mode_and_refuse_code(tmp_path, monkeypatch):
    """Detector and classifier load .keras with safe_mode=True (Keras' default, made explicit):
    a Lambda layer's Python bytecode is refused, not run."""
    import keras

    from facelib.classifier import FORMAT, AttributeClassifier
    from facelib.detector import Detector

    marker = tmp_path / "MARKER"
    model = _lambda_model(marker)
    det = tmp_path / "det"
    det.mkdir()
    model.save(det / "detector.keras")
    (det / "meta.json").write_text(json.dumps({"resolution": 32}))
    clf = tmp_path / "clf"
    clf.mkdir()
    model.save(clf / "classifier.keras")
    (clf / "meta.json").write_text(json.dumps({"format": FORMAT, "resolution": 32,
                                               "attribute_names": ["Smiling"]}))
    marker.unlink(missing_ok=True)  # building the model ran the lambda once; loading must not
    for load, folder in ((Detector.load, det), (AttributeClassifier.load, clf)):
        with pytest.raises(FacelibError, match="could not be loaded") as e:
            load(folder)
        assert "Lambda" in one_line(e.value)
    assert not marker.exists()

    seen = []
    real = keras.models.load_model

    def spy(*args, **kwargs):
        seen.append(kwargs.get("safe_mode"))
        return real(*args, **kwargs)

    monkeypatch.setattr(keras.models, "load_model", spy)
    for load, folder in ((Detector.load, det), (AttributeClassifier.load, clf)):
        with pytest.raises(FacelibError):
            load(folder)
    assert seen == [True, True]


def test_np_load_never_allows_pickle():
    """Every np.load in facelib says allow_pickle=False."""
    root = Path(__file__).resolve().parents[1] / "facelib"
    calls = []
    for path in root.rglob("*.py"):
        text = path.read_text()
        start = 0
        while (i := text.find("np.load(", start)) != -1:
            end = text.find(")", i)
            calls.append((path.name, text[i:end + 1]))
            start = i + 1
    assert calls
    assert [c for c in calls if "allow_pickle=False" not in c[1]] == []


# --------------------------------------------------------------------------------------------
# Bounded memory


def _png(width: int, height: int, rows: bool = False) -> bytes:
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    raw = zlib.compress(b"".join(b"\x00" + b"\x80" * (3 * width) for _ in range(height))
                        if rows else b"\x00" * 64)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0,
                                                             0, 0))
            + chunk(b"IDAT", raw) + chunk(b"IEND", b""))


def test_image_header_claiming_a_huge_size_is_refused_before_decoding(tmp_path):
    from facelib.data.prepare import load_processed
    from facelib.images import ImageTooLarge, read_image
    from facelib.latent.align import load_face

    path = tmp_path / "bomb.png"
    path.write_bytes(_png(100_000, 100_000))
    tracemalloc.start()
    try:
        with pytest.raises(ImageTooLarge, match="100000x100000.*FACELIB_MAX_IMAGE_PIXELS") as e:
            read_image(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5 << 20
    assert isinstance(e.value, FacelibError) and isinstance(e.value, ValueError)
    one_line(e.value)
    with pytest.raises(ValueError, match="claims"):  # prepare skips it like any unreadable image
        load_processed(path, 32)
    with pytest.raises(FacelibError, match="claims"):
        load_face(path, 32)


def test_image_pixel_limit_is_configurable(tmp_path, monkeypatch):
    from facelib.images import ImageTooLarge, read_image

    path = tmp_path / "real.png"
    path.write_bytes(_png(200, 150, rows=True))
    assert read_image(path).shape == (150, 200, 3)
    monkeypatch.setenv("FACELIB_MAX_IMAGE_PIXELS", "29999")
    with pytest.raises(ImageTooLarge, match="200x150 = 30,000 pixels"):
        read_image(path)
    monkeypatch.setenv("FACELIB_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(FacelibError, match="FACELIB_MAX_IMAGE_PIXELS='lots'"):
        read_image(path)


def _zip_with(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / "in.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(name, data)
    return path


def test_zip_bomb_is_refused_before_anything_is_written(tmp_path):
    from facelib.data.celeba import extract_zip

    path = _zip_with(tmp_path, "img_align_celeba/zeros.jpg", bytes(4 << 20))  # 4 MiB -> ~4 KB
    with pytest.raises(FacelibError, match="FACELIB_MAX_ZIP_RATIO=200.*zip bomb") as e:
        extract_zip(path, tmp_path / "out", progress=False)
    one_line(e.value)
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()


def test_zip_total_size_and_member_limits_are_configurable(tmp_path, monkeypatch):
    from facelib.data.celeba import extract_zip

    path = _zip_with(tmp_path, "img_align_celeba/a.jpg", os.urandom(5000))
    monkeypatch.setenv("FACELIB_MAX_ZIP_BYTES", "4000")
    with pytest.raises(FacelibError, match="5,000 but facelib reads at most 4,000.*"
                                           "FACELIB_MAX_ZIP_BYTES"):
        extract_zip(path, tmp_path / "out", progress=False)
    monkeypatch.delenv("FACELIB_MAX_ZIP_BYTES")
    monkeypatch.setenv("FACELIB_MAX_ZIP_MEMBERS", "0")
    with pytest.raises(FacelibError, match="FACELIB_MAX_ZIP_MEMBERS='0' is not a positive"):
        extract_zip(path, tmp_path / "out", progress=False)
    monkeypatch.delenv("FACELIB_MAX_ZIP_MEMBERS")
    assert (extract_zip(path, tmp_path / "out", progress=False) / "img_align_celeba" / "a.jpg"
            ).stat().st_size == 5000


def test_zip_member_larger_than_its_header_says_is_not_extracted(tmp_path):
    """Sizes in the headers patched to 10 bytes over a 3 MB deflate stream: extraction stops at
    the declared size, the CRC fails, nothing is left."""
    from facelib.data.celeba import extract_zip

    path = _zip_with(tmp_path, "img_align_celeba/a.jpg", bytes(3 << 20))
    data = bytearray(path.read_bytes())
    info = zipfile.ZipFile(path).infolist()[0]
    struct.pack_into("<I", data, info.header_offset + 22, 10)
    struct.pack_into("<I", data, data.rfind(b"PK\x01\x02") + 24, 10)
    path.write_bytes(bytes(data))
    with pytest.raises(FacelibError, match="cannot be extracted.*damaged") as e:
        extract_zip(path, tmp_path / "out", progress=False)
    one_line(e.value)
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()


def _attr_text(n_rows: int, count: int | None = None) -> str:
    from facelib.data.celeba import ATTRIBUTE_NAMES

    row = " " + " ".join(["-1"] * 40)
    return (f"{n_rows if count is None else count}\n" + " ".join(ATTRIBUTE_NAMES) + "\n"
            + "".join(f"{i:06d}.jpg{row}\n" for i in range(n_rows)))


def test_attribute_row_limit_admits_celeba_and_is_configurable(tmp_path, monkeypatch):
    from facelib.data.celeba import parse_attributes
    from facelib.limits import limit

    assert limit("FACELIB_MAX_ANNOTATION_ROWS") >= 202_599
    path = tmp_path / "list_attr_celeba.txt"
    path.write_text(_attr_text(30))
    assert len(parse_attributes(path)) == 30
    monkeypatch.setenv("FACELIB_MAX_ANNOTATION_ROWS", "20")
    with pytest.raises(FacelibError, match="row count is 30 but facelib reads at most 20") as e:
        parse_attributes(path)
    one_line(e.value)
    # A count line that lies low: the rows past it are counted (up to the limit), never kept.
    path.write_text(_attr_text(30, count=5))
    with pytest.raises(FacelibError, match="says 5 rows but the file has more than 20"):
        parse_attributes(path)
    monkeypatch.delenv("FACELIB_MAX_ANNOTATION_ROWS")
    with pytest.raises(FacelibError, match="says 5 rows but the file has 30"):
        parse_attributes(path)


def test_attribute_file_is_streamed_not_read_whole(tmp_path):
    """A 40 MB attribute file made of one line: refused after reading 4 KB of it."""
    from facelib.data.celeba import parse_attributes, parse_partition

    path = tmp_path / "list_attr_celeba.txt"
    with open(path, "w") as f:
        f.write("1\n")
        for _ in range(40):
            f.write("x" * (1 << 20))
    part = tmp_path / "list_eval_partition.txt"
    shutil.copy(path, part)
    with open(part, "r+") as f:
        f.write("xx")  # "1\n" overwritten: the first line is now the giant one
    tracemalloc.start()
    try:
        with pytest.raises(FacelibError, match="line 2: the line is longer than 4096") as e:
            parse_attributes(path)
        with pytest.raises(FacelibError, match="line 1: longer than 4096"):
            parse_partition(part)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    one_line(e.value)
    assert peak < 4 << 20


def test_partition_limits_and_missing_file(tmp_path, monkeypatch):
    from facelib.data.celeba import parse_partition

    with pytest.raises(FacelibError, match="partition file .* not found"):
        parse_partition(tmp_path / "nope.txt")
    path = tmp_path / "list_eval_partition.txt"
    path.write_text("".join(f"{i:06d}.jpg {i % 3}\n" for i in range(10)))
    assert len(parse_partition(path)) == 10
    monkeypatch.setenv("FACELIB_MAX_ANNOTATION_ROWS", "9")
    with pytest.raises(FacelibError, match="FACELIB_MAX_ANNOTATION_ROWS"):
        parse_partition(path)


# --------------------------------------------------------------------------------------------
# Side files of a run: config.json, metrics.jsonl, answer logs


@pytest.mark.parametrize("text, message", [
    ("{not json", "is not a readable JSON config"),
    ("[1, 2]", "must be a JSON object"),
    ('{"g_lr": "fast"}', "'g_lr' = 'fast' is invalid"),
    ('{"resolution": 64.0}', "'resolution' = 64.0 is invalid: allowed an integer"),
    ('{"flip": "yes"}', "'flip' = 'yes' is invalid: allowed true or false"),
    ('{"gp_weight": 1e999}', "'gp_weight' = inf is invalid: allowed a finite number"),
    ('{"diffaugment_policy": 3}', "'diffaugment_policy' = 3 is invalid"),
    ('{"colour": 1}', "unknown config field(s) ['colour']"),
    ("[" * 100000, "is not a readable JSON config"),
])
def test_bad_config_json_names_the_file_and_the_fix(tmp_path, text, message):
    from facelib.config import Config

    path = tmp_path / "config.json"
    path.write_text(text)
    with pytest.raises(FacelibError) as e:
        Config.load(path)
    msg = one_line(e.value)
    assert message in msg and str(path) in msg and ("Fix" in msg or "restore" in msg)


def test_metrics_log_keeps_every_good_row(tmp_path):
    from facelib.run.folder import RunFolder

    folder = RunFolder(tmp_path / "r")
    folder.path.mkdir()
    folder.metrics_path.write_bytes(b'{"step": 1}\n\xff\xfe garbage\n' + b"[" * 50000 + b"\n"
                                    b'[1, 2]\n{"step": 2}\n{"step": 3, "d_lo')
    folder.append_metrics({"step": 4})
    assert [r["step"] for r in folder.read_metrics()] == [1, 2, 4]


@pytest.mark.parametrize("content, message", [
    (b'{"a": 1}\n[1, 2]\n', ":2 is a JSON list, not an answer record"),
    (b'\xff\xfe\n{"a": 1}\n', ":1 is not valid JSON"),
    (b"[" * 50000 + b"\n", ":1 is not valid JSON"),
    (b'{"study": "s"}\n', "record 1: field 'judge' is missing"),
])
def test_answer_logs_that_are_not_answers_are_one_clear_error(tmp_path, content, message):
    from facelib.human.session import load_answers

    path = tmp_path / "judge.jsonl"
    path.write_bytes(content)
    with pytest.raises(FacelibError, match=message) as e:
        load_answers([path])
    one_line(e.value)


def test_limits_are_documented():
    from facelib.limits import LIMITS

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for name in LIMITS:
        assert f"`{name}`" in readme


# --------------------------------------------------------------------------------------------
# A damaged run never loses its good part


@pytest.fixture
def run_copy(tiny_run, tmp_path) -> Path:
    """A copy of the tiny run: checkpoints step-3 and step-6 (latest), with manifests."""
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("tensorboard"))
    return run


def _cut(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid:mid + 256] = bytes(b ^ 0x5A for b in data[mid:mid + 256])
    path.write_bytes(bytes(data))


def _garbage(path: Path) -> None:
    path.write_text("{garbage")


@pytest.mark.parametrize("damage, file, says", [
    (_cut, "ema_generator.weights.h5", "were written (truncated?)"),
    (_flip, "ema_generator.weights.h5", "does not match the SHA-256"),
    (_garbage, "state.json", "were written (truncated?)"),
    (lambda p: p.unlink(), "ema_generator.weights.h5", "is missing"),
], ids=["truncated", "tampered", "state-garbage", "missing-file"])
def test_load_falls_back_to_the_last_good_checkpoint(run_copy, capsys, damage, file, says):
    from facelib import load_run

    newest = run_copy / "checkpoints" / "step-00000006"
    damage(newest / file)
    run = load_run(run_copy)
    assert run.step == 3 and run.checkpoint.name == "step-00000003"
    err = capsys.readouterr().err
    assert f"{newest / file}" in err and says in err and "falling back to" in err
    assert sorted(p.name for p in (run_copy / "checkpoints").iterdir()) == [
        "latest", "step-00000003", "step-00000006"]  # a reader moves nothing
    with pytest.raises(FacelibError, match="step-00000006 is damaged.*RUN@step-00000003") as e:
        load_run(f"{run_copy}@step-00000006")
    one_line(e.value)


def test_missing_complete_marker_and_garbage_pointer(run_copy, capsys):
    from facelib import load_run

    (run_copy / "checkpoints" / "step-00000006" / "COMPLETE").unlink()
    (run_copy / "checkpoints" / "latest").write_bytes(b"\xff\xfe../../elsewhere")
    assert load_run(run_copy).step == 3
    assert "step-00000006 has no COMPLETE marker" in capsys.readouterr().err


def test_checkpoints_without_a_manifest_get_structural_checks(run_copy, capsys):
    from facelib import load_run

    for ckpt in ("step-00000003", "step-00000006"):
        (run_copy / "checkpoints" / ckpt / "COMPLETE").write_text("ok\n")
    assert load_run(run_copy).step == 6
    _cut(run_copy / "checkpoints" / "step-00000006" / "ema_generator.weights.h5")
    assert load_run(run_copy).step == 3
    assert "ema_generator.weights.h5 cannot be read" in capsys.readouterr().err


def test_state_json_must_agree_with_its_folder(run_copy):
    from facelib.run.checkpoints import CheckpointManager, DamagedCheckpoint

    ckpt = run_copy / "checkpoints" / "step-00000006"
    (ckpt / "COMPLETE").write_text("ok\n")
    (ckpt / "state.json").write_text(json.dumps({"step": 3}))
    with pytest.raises(DamagedCheckpoint, match="says step 3, the folder step 6"):
        CheckpointManager(run_copy / "checkpoints").verify(ckpt)


def test_rotation_never_deletes_the_checkpoint_a_run_fell_back_to(tmp_path, monkeypatch):
    """A newer checkpoint that could not be moved aside (say a read-only copy) is not counted:
    resuming from step 3 and saving step 4 with keep=2 keeps step 3 (the old rotation deleted
    it, leaving the new one and the damaged one)."""
    from facelib.run.checkpoints import COMPLETE, CheckpointManager

    manager = CheckpointManager(tmp_path / "checkpoints", keep=2)
    for step in (3, 6):
        d = manager.directory / f"step-{step:08d}"
        d.mkdir(parents=True)
        (d / COMPLETE).write_text("ok\n")

    def fake_write(gan, final, extra):
        final.mkdir()
        (final / COMPLETE).write_text("ok\n")
        return final

    class Step:
        def numpy(self):
            return 4

    gan = type("G", (), {"step": Step()})()
    monkeypatch.setattr(manager, "_write", fake_write)
    manager.save(gan)
    names = sorted(p.name for p in manager.directory.iterdir())
    assert names == ["latest", "step-00000003", "step-00000004", "step-00000006"]
    assert manager.latest().name == "step-00000004"


def test_damaged_dirs_are_ignored_by_the_scan(tmp_path):
    from facelib.run.checkpoints import COMPLETE, CheckpointManager

    manager = CheckpointManager(tmp_path / "c")
    for name in ("step-00000003", "step-00000009.damaged", ".step-00000010.tmp-1"):
        (manager.directory / name).mkdir(parents=True)
        (manager.directory / name / COMPLETE).write_text("ok\n")
    assert [p.name for p in manager.complete()] == ["step-00000003"]
    assert manager.latest().name == "step-00000003"


@pytest.mark.slow
def test_resume_moves_a_damaged_checkpoint_aside_and_keeps_the_good_one(run_copy, cache32,
                                                                        capsys):
    from facelib.config import preset
    from facelib.run.checkpoints import CheckpointManager
    from facelib.run.train import train

    ckpts = run_copy / "checkpoints"
    _flip(ckpts / "step-00000006" / "discriminator.weights.h5")  # trained on, it gives NaNs
    (ckpts / "step-00000007").mkdir()  # an unfinished one: no COMPLETE
    cfg = preset("smoke", steps=9, checkpoint_every=3, log_every=2, keep_checkpoints=1)
    result = train(cfg, run_copy, data=cache32, resume=True, verbose=0)
    out = capsys.readouterr()
    assert "resumed from step 3" in out.out
    assert "discriminator.weights.h5 does not match" in out.err
    assert "moved it aside to step-00000006.damaged" in out.err
    assert result.step == 9
    names = sorted(p.name for p in ckpts.iterdir())
    # step 3 lived until a newer good checkpoint (step 6, rewritten) existed; keep=1 then
    # rotated it; the damaged ones are kept aside for inspection.
    assert names == ["latest", "step-00000006.damaged", "step-00000007.damaged", "step-00000009"]
    manager = CheckpointManager(ckpts)
    assert manager.verify(manager.latest())["step"] == 9


@pytest.mark.slow
def test_resume_with_every_checkpoint_damaged_stops_and_deletes_nothing(run_copy, cache32):
    from facelib.config import preset
    from facelib.run.train import train

    ckpts = run_copy / "checkpoints"
    for step in (3, 6):
        _garbage(ckpts / f"step-{step:08d}" / "state.json")
    cfg = preset("smoke", steps=9, checkpoint_every=3, log_every=2)
    with pytest.raises(FacelibError, match="no readable checkpoint.*renamed \\*.damaged") as e:
        train(cfg, run_copy, data=cache32, resume=True, verbose=0)
    one_line(e.value)
    assert sorted(p.name for p in ckpts.iterdir()) == [
        "latest", "step-00000003.damaged", "step-00000006.damaged"]
