"""Conditional sampling end to end (issue 4) and attribute control accuracy.

Real runs come from conftest (``tiny_conditional_run``, ``tiny_run``: a few smoke steps on the
bundled real faces). Known answers use a test double: a Run whose "generator" writes its
attribute inputs into pixels, with a scorer that reads them back.
"""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from facelib.errors import FacelibError

R = 8  # test-double image size: 64 pixels >= 40 attribute slots


# -- a test double: attributes written into pixels ------------------------------------------
def _pixel_run(tmp_path, rows, counts, respond=True):
    """A real ``facelib.run.Run`` around a stand-in generator: pixel k of channel 0 is +1 when
    attribute k is asked for and -1 otherwise (``respond=False``: ignores the attributes);
    channel 1 carries z[:, 0] so same-latent faces can be recognised."""
    from facelib.config import preset
    from facelib.data.celeba import ATTRIBUTE_NAMES
    from facelib.run.interface import Run

    names = list(ATTRIBUTE_NAMES)
    np.savez(tmp_path / "attribute_prior.npz", rows=np.asarray(rows, np.int8),
             counts=np.asarray(counts), names=np.array(names))

    def generator(inputs, training=False):
        z, y = (np.asarray(t, np.float32) for t in inputs)
        x = np.zeros((len(z), R, R, 3), np.float32)
        flat = x[..., 0].reshape(len(z), R * R)
        flat[:, :40] = (2 * y - 1) if respond else -1
        x[..., 0] = flat.reshape(len(z), R, R)
        x[..., 1] = np.tanh(z[:, :1, None])
        return x

    config = preset("smoke", conditional=True)
    return Run(tmp_path, config, generator, 7, tmp_path, names,
               (np.asarray(rows, np.float32), np.asarray(counts)))


def _pixel_scorer(images):
    """Reads the attribute pixels back: probability = brightness of pixel k, channel 0."""
    images = np.asarray(images)
    return images[..., 0].reshape(len(images), -1)[:, :40].astype(np.float32) / 255.0


def _all_rows(seed=0, k=64):
    """k random attribute rows in which every attribute takes both values."""
    rows = np.random.default_rng(seed).integers(0, 2, (k, 40))
    rows[0], rows[1] = 0, 1
    return rows, np.arange(1, k + 1)


# -- sampling with fixed attributes on a trained conditional run ------------------------------
@pytest.mark.slow
def test_generate_with_fixed_subset(tiny_conditional_run):
    import facelib

    run = facelib.load_run(tiny_conditional_run)
    assert run.conditional and run.attribute_names[20] == "Male"
    fixed = {"Smiling": 1, "Eyeglasses": 1, "Male": 0}
    faces = run.generate(6, seed=3, attrs=fixed)
    assert run.generate(2, seed=3, attrs={}).shape == (2, 32, 32, 3)  # nothing fixed: all drawn
    assert faces.shape == (6, 32, 32, 3) and faces.dtype == np.uint8
    np.testing.assert_array_equal(faces, run.generate(6, seed=3, attrs=fixed))
    rows = run.sample_attributes(50, fixed, seed=3)
    for name, value in fixed.items():
        assert (rows[:, run.attribute_names.index(name)] == value).all()
    # the attribute input reaches the picture: the same latents and rows with Smiling off differ
    z, off = run.sample_latents(6, seed=3), rows[:6].copy()
    off[:, run.attribute_names.index("Smiling")] = 0
    assert np.abs(run.synthesize(z, rows[:6]) - run.synthesize(z, off)).max() > 1e-5
    np.testing.assert_array_equal(run.synthesize(z, rows[:6]), run.synthesize(z, rows[:6]))


def test_unfixed_attributes_follow_the_data_joint_distribution(tiny_conditional_run, cache32):
    import facelib
    from facelib.data.cache import FaceCache

    run = facelib.load_run(tiny_conditional_run)
    cache = FaceCache.open(cache32)
    data = np.asarray(cache.attributes[cache.indices("train")], np.int8)
    male, beard = run.attribute_names.index("Male"), run.attribute_names.index("No_Beard")
    rows = run.sample_attributes(4000, {"Male": 1}, seed=0).astype(np.int8)
    # every drawn row is a row some male training face has (no invented combination) ...
    seen = {r.tobytes() for r in data[data[:, male] == 1]}
    assert all(r.tobytes() in seen for r in rows)
    # ... in the data's proportions: P(No_Beard | Male) matches the training faces
    expected = data[data[:, male] == 1, beard].mean()
    assert abs(rows[:, beard].mean() - expected) < 0.03
    assert expected < 0.8 < data[data[:, male] == 0, beard].mean()


def test_attribute_shares_match_the_training_faces(tiny_conditional_run, cache32):
    import facelib
    from facelib.attribute_control import attribute_shares, conditional_shares
    from facelib.data.cache import FaceCache

    run = facelib.load_run(tiny_conditional_run)
    cache = FaceCache.open(cache32)
    data = np.asarray(cache.attributes[cache.indices("train")], np.float64)
    shares = attribute_shares(run)
    assert list(shares) == run.attribute_names
    np.testing.assert_allclose(list(shares.values()), data.mean(0), atol=1e-12)
    top = conditional_shares(run, "Male", top=3)
    assert len(top) == 3 and all(r["attribute"] != "Male" for r in top)
    heavy = next(r for r in conditional_shares(run, "Male") if r["attribute"] == "Heavy_Makeup")
    m = data[:, run.attribute_names.index("Male")] == 1
    k = run.attribute_names.index("Heavy_Makeup")
    assert heavy["share_if_Male=1"] == pytest.approx(data[m, k].mean())
    assert heavy["difference"] == pytest.approx(data[m, k].mean() - data[~m, k].mean())


def test_unknown_attribute_lists_the_valid_names(tiny_conditional_run):
    import facelib

    run = facelib.load_run(tiny_conditional_run)
    with pytest.raises(FacelibError) as e:
        run.generate(2, attrs={"Smiling": 1, "Smile": 1})
    assert "Smile" in str(e.value) and "Smiling" in str(e.value) and "Wearing_Hat" in str(e.value)
    with pytest.raises(FacelibError, match="0 .*or 1"):
        run.generate(2, attrs={"Smiling": 2})


def test_impossible_combination_is_a_clear_error(tiny_conditional_run):
    import facelib

    run = facelib.load_run(tiny_conditional_run)
    # no woman in the training faces has a goatee
    with pytest.raises(FacelibError, match="no training face has the combination.*Goatee"):
        run.generate(2, attrs={"Male": 0, "Goatee": 1})


@pytest.mark.slow
def test_unconditional_run_refuses_attributes(tiny_run):
    import facelib
    from facelib.attribute_control import control_accuracy

    run = facelib.load_run(tiny_run)
    assert not run.conditional
    with pytest.raises(FacelibError, match="unconditional.*--conditional"):
        run.generate(2, attrs={"Smiling": 1})
    with pytest.raises(FacelibError, match="unconditional"):
        control_accuracy(run, _pixel_scorer, n=2)


def test_generate_cli_with_attrs(tiny_conditional_run, tiny_run, tmp_path, capsys):
    from facelib.cli import main
    from facelib.images import read_image

    out = tmp_path / "grid.png"
    assert main(["generate", "--run", str(tiny_conditional_run), "--n", "4",
                 "--attrs", "Smiling=1,Eyeglasses=1,Male=0", "--out", str(out)]) == 0
    assert read_image(out).shape[2] == 3
    assert main(["generate", "--run", str(tiny_conditional_run), "--n", "2",
                 "--attrs", "Glasses=1", "--out", str(out)]) == 2
    assert main(["generate", "--run", str(tiny_run), "--n", "2",
                 "--attrs", "Smiling=1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "unknown attribute 'Glasses'" in err and "Eyeglasses" in err
    assert "unconditional run" in err


# -- control accuracy: known answers on the test double ------------------------------------
def test_separation_auc_known_answers():
    from facelib.attribute_control import separation_auc

    assert separation_auc([0.9, 0.8], [0.1, 0.85]) == 0.75
    assert separation_auc([0.3, 0.3], [0.3]) == 0.5
    assert separation_auc([0.1], [0.2, 0.3]) == 0.0
    assert separation_auc([], [0.2]) is None


@pytest.mark.parametrize("others", ["joint", "flip"])
def test_perfect_control_scores_one(tmp_path, others):
    from facelib.attribute_control import control_accuracy

    run = _pixel_run(tmp_path, *_all_rows())
    report = control_accuracy(run, _pixel_scorer, n=16, seed=1, others=others)
    assert len(report.rows) == 40 and not report.skipped
    assert all(r["on_accuracy"] == 1 and r["off_accuracy"] == 1 for r in report.rows)
    assert report.mean_balanced == 1.0 and report.mean_auc == 1.0
    assert report.mean_real_balanced is None


def test_ignored_attributes_score_one_half_whatever_the_classifier(tmp_path):
    from facelib.attribute_control import control_accuracy

    run = _pixel_run(tmp_path, *_all_rows(), respond=False)

    def biased(images):  # says "present" for everything
        return np.full((len(images), 40), 0.9, np.float32)

    for scorer in (_pixel_scorer, biased):
        report = control_accuracy(run, scorer, n=8, attributes=["Smiling", "Bald"])
        assert [r["balanced"] for r in report.rows] == [0.5, 0.5]
        assert [r["auc"] for r in report.rows] == [0.5, 0.5]
    assert report.mean_on == 1.0 and report.mean_off == 0.0


def test_classifier_columns_are_matched_by_name(tmp_path):
    from facelib.attribute_control import control_accuracy

    run = _pixel_run(tmp_path, *_all_rows())
    order = list(reversed(run.attribute_names))[:39]  # reversed, and without "5_o_Clock_Shadow"

    class Reversed:
        attribute_names = order

        def predict_proba(self, images):
            return _pixel_scorer(images)[:, ::-1][:, :39]

    labels = _all_rows()[0][:8]
    report = control_accuracy(run, Reversed(), n=4, real=(run.generate(8, attrs=labels), labels))
    assert report.row("Smiling")["balanced"] == 1.0 and report.mean_balanced == 1.0
    assert report.row("Smiling")["real_balanced"] == 1.0
    row = report.row("5_o_Clock_Shadow")
    assert row["balanced"] is None and "does not score" in row["note"]
    assert row["real_on"] is None and row["real_off"] is None and row["real_auc"] is None
    assert report.skipped == ["5_o_Clock_Shadow (not scored by the classifier)"]


def test_values_without_training_support_are_skipped(tmp_path):
    from facelib.attribute_control import control_accuracy

    rows, counts = _all_rows()
    bald = 4
    rows[:, bald] = 0  # no bald training face
    report = control_accuracy(_pixel_run(tmp_path, rows, counts), _pixel_scorer, n=4)
    row = report.row("Bald")
    assert row["on_accuracy"] is None and row["off_accuracy"] == 1.0 and row["balanced"] is None
    assert "Bald=1 skipped" in row["note"] and report.skipped == ["Bald=1 (no training face has it)"]
    assert row["share"] == 0.0
    assert report.mean_balanced == 1.0  # over the 39 attributes with both values


def test_real_face_reference_and_writers(tmp_path):
    from facelib.attribute_control import control_accuracy

    run = _pixel_run(tmp_path, *_all_rows())
    labels = np.random.default_rng(2).integers(0, 2, (30, 40))
    labels[:, 0] = 1  # 5_o_Clock_Shadow present on every real face: no "off" reference
    images = np.zeros((30, R, R, 3), np.uint8)
    flat = images[..., 0].reshape(30, -1)
    flat[:, :40] = labels * 255
    flat[:10, 1] = 255 - flat[:10, 1]  # the classifier is wrong on 10 faces for Arched_Eyebrows
    images[..., 0] = flat.reshape(30, R, R)
    report = control_accuracy(run, _pixel_scorer, n=4, real=(images, labels))
    r = report.row("Arched_Eyebrows")
    on, wrong = labels[:, 1] == 1, np.arange(30) < 10
    assert r["real_on"] == pytest.approx(1 - (on & wrong).sum() / on.sum())
    assert r["real_off"] == pytest.approx(1 - (~on & wrong).sum() / (~on).sum())
    assert report.row("5_o_Clock_Shadow")["real_off"] is None
    assert report.row("Smiling")["real_balanced"] == 1.0
    assert report.describe("Smiling").startswith("Smiling: ") and "real faces: balanced 1.00" in \
        report.describe("Smiling")

    md = report.to_markdown(sort="balanced")
    lines = md.strip().splitlines()
    assert len(lines) == 2 + 40 + 1 and "| Arched_Eyebrows |" in md and "**1.00**" in lines[-1]
    parsed = list(csv.DictReader(io.StringIO(report.to_csv())))
    assert len(parsed) == 40 and float(parsed[1]["real_on"]) == pytest.approx(r["real_on"])
    folder = report.save(tmp_path / "out")
    saved = json.loads((folder / "control.json").read_text())
    assert saved["mean_balanced"] == 1.0 and len(saved["rows"]) == 40
    assert (folder / "control.md").read_text().startswith("balanced control accuracy 1.000")


def test_bad_arguments(tmp_path):
    from facelib.attribute_control import control_accuracy

    run = _pixel_run(tmp_path, *_all_rows())
    with pytest.raises(FacelibError, match="unknown attribute 'Smile'.*Smiling"):
        control_accuracy(run, _pixel_scorer, n=2, attributes=["Smile"])
    with pytest.raises(FacelibError, match="joint.*flip"):
        control_accuracy(run, _pixel_scorer, n=2, others="random")
    with pytest.raises(FacelibError, match="at least one"):
        control_accuracy(run, _pixel_scorer, n=0)
    with pytest.raises(FacelibError, match=r"shape \(2, 3\)"):
        control_accuracy(run, lambda x: np.zeros((len(x), 3)), n=2)
    with pytest.raises(FacelibError, match="outside \\[0, 1\\].*sigmoid"):
        control_accuracy(run, lambda x: np.full((len(x), 40), 3.0), n=2)


def test_on_off_rows_share_latents(tmp_path):
    from facelib.attribute_control import attribute_rows

    run = _pixel_run(tmp_path, *_all_rows())
    faces, labels = attribute_rows(run, ["Smiling", "Eyeglasses"], n=5, seed=4)
    assert faces.shape == (4, 5, R, R, 3) and labels == ["Smiling=1", "Smiling=0",
                                                         "Eyeglasses=1", "Eyeglasses=0"]
    np.testing.assert_array_equal(faces[:, :, :, :, 1], np.broadcast_to(faces[0, :, :, :, 1],
                                                                         faces.shape[:-1]))
    attr = faces[..., 0].reshape(4, 5, -1)[..., :40] > 127
    smiling, glasses = 31, 15
    assert attr[0, :, smiling].all() and not attr[1, :, smiling].any()
    assert attr[2, :, glasses].all() and not attr[3, :, glasses].any()
    # flip: the on and off rows differ in that one attribute only
    diff = attr[0] != attr[1]
    assert diff[:, smiling].all() and diff.sum() == 5


# -- on a trained run: the whole path with a stand-in scorer ------------------------------
@pytest.mark.slow
def test_control_accuracy_and_figure_on_a_trained_run(tiny_conditional_run, cache32, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import facelib
    from facelib.attribute_control import attribute_figure, control_accuracy
    from facelib.images import read_image

    def brightness(images):  # a clearly-labelled stand-in: mean brightness for every attribute
        p = np.asarray(images, np.float32).mean(axis=(1, 2, 3)) / 255.0
        return np.repeat(p[:, None], 40, axis=1)

    run = facelib.load_run(tiny_conditional_run)
    report = control_accuracy(run, brightness, n=6, seed=0, real=cache32, real_split="all",
                              real_limit=450)
    assert len(report.rows) == 40 and report.step == run.step and report.n_real == 450
    for r in report.rows:
        assert 0 <= r["on_accuracy"] <= 1 and 0 <= r["off_accuracy"] <= 1
        assert r["balanced"] == pytest.approx((r["on_accuracy"] + r["off_accuracy"]) / 2)
        assert r["n_on"] == r["n_off"] == 6 and r["real_balanced"] is not None
        assert r["n_on"] == 6 and 0 < r["share"] < 1
    assert report.row("Pale_Skin")["share"] == pytest.approx(22 / 400)
    path = tmp_path / "grid.png"
    fig = attribute_figure(run, ["Smiling", "Pale_Skin"], n=4, report=report, path=path)
    ticks = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert len(fig.axes) == 2 and ticks[0].startswith("Smiling=1\n(acc ") and \
        ticks[1].startswith("Smiling=0") and ticks[0].endswith(")") and "joint" not in ticks[0]
    assert f"({run.label}, step {run.step})" in fig._suptitle.get_text()
    matplotlib.pyplot.close(fig)
    fig = attribute_figure(run, ["Smiling"], n=2, others="flip", report=report)
    assert fig.axes[0].get_yticklabels()[0].get_text().endswith(" joint)")
    assert read_image(path).ndim == 3
    matplotlib.pyplot.close(fig)


@pytest.mark.slow
def test_control_cli(tiny_conditional_run, tmp_path, capsys):
    classifier = pytest.importorskip("facelib.classifier",
                                     reason="facelib/classifier.py (the attribute classifier) "
                                            "is not in this checkout yet")
    from facelib.cli import main
    from facelib.data.celeba import ATTRIBUTE_NAMES

    # an untrained classifier is enough to exercise the verb (its values are not the point)
    model = classifier.build_classifier_model(32, width=4)
    classifier.AttributeClassifier(model, ATTRIBUTE_NAMES, 32).save(tmp_path / "clf")
    out = tmp_path / "control"
    assert main(["control", "--run", str(tiny_conditional_run), "--classifier",
                 str(tmp_path / "clf"), "--n", "4", "--out", str(out), "--grid", "Smiling",
                 "--real-split", "all"]) == 0
    saved = json.loads((out / "control.json").read_text())
    assert len(saved["rows"]) == 40 and saved["mean_real_balanced"] is not None
    assert saved["n"] == 4 and saved["others"] == "joint"
    assert (out / "grid.png").exists() and "balanced control accuracy" in capsys.readouterr().out
    # a subset without the default figure's attributes draws its own first four
    (out / "grid.png").unlink()
    assert main(["control", "--run", str(tiny_conditional_run), "--classifier",
                 str(tmp_path / "clf"), "--n", "2", "--out", str(out), "--no-real",
                 "--attributes", "Bald,Young"]) == 0
    assert (out / "grid.png").exists()
    assert [r["attribute"] for r in json.loads((out / "control.json").read_text())["rows"]] \
        == ["Bald", "Young"]
    capsys.readouterr()
    # a figure attribute outside --attributes is refused before anything is measured or written
    (out / "control.json").unlink()
    assert main(["control", "--run", str(tiny_conditional_run), "--classifier",
                 str(tmp_path / "clf"), "--n", "2", "--out", str(out), "--no-real",
                 "--attributes", "Bald,Young", "--grid", "Smiling"]) == 2
    assert "--grid Smiling: not among --attributes" in capsys.readouterr().err
    assert not (out / "control.json").exists()
    # a misspelt figure attribute is refused too, not dropped from the figure after measuring
    assert main(["control", "--run", str(tiny_conditional_run), "--classifier",
                 str(tmp_path / "clf"), "--n", "2", "--out", str(out), "--no-real",
                 "--grid", "Smilng"]) == 2
    assert "--grid Smilng: not an attribute of this run" in capsys.readouterr().err
    assert not (out / "control.json").exists()
    assert main(["control", "--run", str(tiny_conditional_run), "--classifier",
                 str(tmp_path / "nope"), "--n", "4", "--out", str(out)]) == 2
    assert "attribute classifier" in (err := capsys.readouterr().err) and "nope" in err
