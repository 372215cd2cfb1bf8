"""Fuzzed parsers (issue 14): any input gives a parsed result or one clear FacelibError line,
never another traceback. Property-based with hypothesis; kept to 60-150 examples each so the
fast lane stays fast (a few seconds per parser)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from facelib.data.celeba import ATTRIBUTE_NAMES, AttributeTable, format_attributes
from facelib.errors import FacelibError

FAST = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module")
def human():
    """Imported outside hypothesis' examples (importing facelib.human loads TensorFlow, which
    changes the recursion limit hypothesis watches)."""
    from facelib.human.scores import summarize
    from facelib.human.session import load_answers, read_jsonl

    return load_answers, read_jsonl, summarize


def parsed_or_clear_error(fn, *args):
    """fn(*args), or None when it raised one clear FacelibError line."""
    try:
        return fn(*args)
    except FacelibError as e:
        assert str(e) and "\n" not in str(e), repr(str(e))
        return None


# Text shaped like the annotation files: tokens that are right, nearly right and wrong, joined
# by the whitespace variants real copies have (and some they should not).
TOKENS = st.sampled_from(["1", "-1", " 1", "0", "2", "-", "--1", "1.0", "x", "", "\t", "000001.jpg",
                          "000002.jpg", "a b", "é", "\x00", "\x85", "\u2028", "\r"])
VALUES = st.integers(0, 2**40 - 1).map(lambda b: ["1" if (b >> i) & 1 else "-1" for i in range(40)])
NAME_LINES = st.one_of(
    st.just(" ".join(ATTRIBUTE_NAMES)),
    st.permutations(ATTRIBUTE_NAMES).map(" ".join),
    st.lists(st.sampled_from(ATTRIBUTE_NAMES + ("Smiley",)), max_size=45).map(" ".join),
    st.text(max_size=60),
)
ROWS = st.one_of(
    st.tuples(st.sampled_from(["000001.jpg", "000002.jpg", "a.png", "x"]), VALUES)
      .map(lambda r: r[0] + " " + " ".join(r[1])),
    st.lists(TOKENS, max_size=45).map(" ".join),
    st.text(max_size=40),
)
ATTRIBUTE_FILES = st.one_of(
    st.tuples(st.one_of(st.integers(-3, 6).map(str), st.text(max_size=8)), NAME_LINES,
              st.lists(ROWS, max_size=6), st.sampled_from(["\n", "\r\n", "\r"]))
      .map(lambda t: t[3].join([t[0], t[1], *t[2]]) + t[3]),
    st.text(max_size=300),
)


@FAST
@given(text=ATTRIBUTE_FILES)
def test_attribute_parser_never_crashes(scratch, text):
    from facelib.data.celeba import parse_attributes

    path = scratch / "list_attr_celeba.txt"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    table = parsed_or_clear_error(parse_attributes, path)
    if table is not None:
        assert table.values.shape == (len(table.filenames), 40)
        assert table.values.dtype == np.int8 and set(np.unique(table.values)) <= {0, 1}
        assert len(set(table.filenames)) == len(table.filenames)
        assert table.names == list(ATTRIBUTE_NAMES)


@settings(FAST, max_examples=60)
@given(rows=st.lists(st.tuples(st.text("0123456789abc_", min_size=1, max_size=8).map(
                                   lambda s: s + ".jpg"),
                               st.integers(0, 2**40 - 1).map(
                                   lambda b: [(b >> i) & 1 for i in range(40)])),
                     max_size=8, unique_by=lambda r: r[0]))
def test_attribute_format_round_trips(scratch, rows):
    from facelib.data.celeba import parse_attributes

    table = AttributeTable([r[0] for r in rows], np.array([r[1] for r in rows], np.int8)
                           .reshape(len(rows), 40), list(ATTRIBUTE_NAMES))
    path = scratch / "round_trip.txt"
    path.write_text(format_attributes(table))
    back = parse_attributes(path)
    assert back.filenames == table.filenames and np.array_equal(back.values, table.values)


PARTITION_LINES = st.one_of(
    st.tuples(st.sampled_from(["000001.jpg", "000002.jpg", "x", "é.jpg"]),
              st.sampled_from(["0", "1", "2", "3", "-1", "", "0 0"]))
      .map(" ".join),
    st.lists(TOKENS, max_size=4).map(" ".join),
    st.text(max_size=30),
)


@FAST
@given(lines=st.lists(PARTITION_LINES, max_size=8), end=st.sampled_from(["\n", "\r\n", ""]))
def test_partition_parser_never_crashes(scratch, lines, end):
    from facelib.data.celeba import parse_partition

    path = scratch / "list_eval_partition.txt"
    path.write_text("\n".join(lines) + end, encoding="utf-8", errors="surrogatepass")
    result = parsed_or_clear_error(parse_partition, path)
    if result is not None:
        assert all(isinstance(k, str) and v in (0, 1, 2) for k, v in result.items())


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12)


def _config_documents():
    from dataclasses import fields

    from facelib.config import Config

    names = [f.name for f in fields(Config)]
    good = Config().to_dict()
    edited = st.builds(lambda changes: {**good, **changes},
                       st.dictionaries(st.sampled_from(names + ["colour"]), JSON_VALUES,
                                       max_size=3))
    return st.one_of(edited.map(json.dumps), JSON_VALUES.map(json.dumps), st.text(max_size=60))


@FAST
@given(text=_config_documents())
def test_config_load_never_crashes(scratch, text):
    from facelib.config import Config

    path = scratch / "config.json"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    config = parsed_or_clear_error(Config.load, path)
    if config is not None:
        config.validate()
        assert Config.from_dict(json.loads(json.dumps(config.to_dict()))) == config


JSONL_LINES = st.one_of(
    st.dictionaries(st.text(max_size=6), JSON_VALUES, max_size=3).map(json.dumps),
    JSON_VALUES.map(json.dumps),
    st.text(max_size=30),
    st.binary(max_size=20).map(lambda b: b.decode("latin-1")),
)


@FAST
@given(lines=st.lists(st.one_of(JSONL_LINES.map(str.encode), st.binary(max_size=30)), max_size=8),
       torn=st.binary(max_size=12))
def test_metrics_log_reading_never_raises(scratch, lines, torn):
    from facelib.run.folder import RunFolder

    folder = RunFolder(scratch / "run")
    folder.path.mkdir(exist_ok=True)
    folder.metrics_path.write_bytes(b"\n".join(lines) + b"\n" + torn)
    rows = folder.read_metrics()
    assert all(isinstance(r, dict) for r in rows)
    folder.append_metrics({"step": -1})  # after any garbage, the next row is read back
    assert folder.read_metrics()[-1] == {"step": -1}


def _answer(**changes):
    record = {"study": "s", "session": "x", "judge": "ann", "mode": "untimed", "trial": 0,
              "key": "k0", "items": ["a"], "sources": ["real"], "truth": "real",
              "answer": "real", "exposure_ms": None, "shown_ms": 1.0, "response_ms": 812.5,
              "timestamp": "2024-01-01T00:00:00.000+00:00", "correct": True}
    record.update(changes)
    return record


ANSWER_RECORDS = st.builds(
    _answer, **{k: st.one_of(JSON_VALUES, st.sampled_from(["real", "fake", "rapid", "pairwise",
                                                            "left"]))
                for k in ("mode", "answer", "truth", "key")},
    sources=st.one_of(st.just(["real"]), st.lists(st.text(max_size=4), max_size=3), JSON_VALUES),
    response_ms=st.one_of(st.floats(0, 1e4), JSON_VALUES))


@settings(FAST, max_examples=100)
@given(lines=st.lists(st.one_of(ANSWER_RECORDS.map(json.dumps), JSONL_LINES), max_size=6),
       torn=st.sampled_from(["", '{"study": "s", "jud', "[1,"]))
def test_answer_log_readers_never_crash(scratch, human, lines, torn):
    load_answers, read_jsonl, summarize = human

    path = scratch / "judge.jsonl"
    path.write_bytes(("\n".join(lines) + ("\n" if lines else "") + torn)
                     .encode("utf-8", "surrogatepass"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "skipped an incomplete last line"
        records = parsed_or_clear_error(read_jsonl, path)
        answers = parsed_or_clear_error(load_answers, [path])
    if records is not None:
        assert all(isinstance(r, dict) for r in records)
    if answers:
        summarize(answers, n_boot=10)  # whatever load_answers accepts, the scores can use


@FAST
@given(spec=st.one_of(st.text(max_size=40),
                      st.tuples(st.text(max_size=12), st.sampled_from(["@", "@@", ""]),
                                st.sampled_from(["latest", "best", "step-00000010", "", "@"]))
                        .map("".join)))
def test_run_spec_parser_never_crashes(spec):
    from facelib.run.folder import RunFolder, parse_run_spec

    parsed = parsed_or_clear_error(parse_run_spec, spec)
    if parsed is not None:
        path, checkpoint = parsed
        assert isinstance(path, Path) and checkpoint
        if "@" in spec:
            assert spec.endswith("@" + checkpoint)
        RunFolder(path).exists()  # a parsed path is usable as a path
