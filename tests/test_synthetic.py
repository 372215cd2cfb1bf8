"""Synthetic datasets in CelebA layout, train-on-synthetic-test-on-real, rebalancing."""

from __future__ import annotations

import json

import numpy as np
import pytest

from facelib.errors import FacelibError


class MeanColourClassifier:
    """Test double for an attribute classifier: P(attribute) from the mean brightness, with a
    fixed per-attribute slope, so labels depend on the face and are reproducible."""

    def __init__(self):
        from facelib.data.celeba import ATTRIBUTE_NAMES

        self.attribute_names = list(ATTRIBUTE_NAMES)
        self.slopes = np.linspace(-6, 6, 40)

    def predict_proba(self, images):
        m = np.asarray(images, np.float32).mean(axis=(1, 2, 3)) / 255.0 - 0.5
        return (1 / (1 + np.exp(-m[:, None] * self.slopes[None, :] * 10))).astype(np.float32)


class RecordingFit:
    """Test double for fit_attribute_classifier: records what each call was trained on and
    returns a classifier that predicts the training label rates (a valid, if dull, model)."""

    def __init__(self):
        self.calls = []

    def __call__(self, train_images, train_attrs, val_images, val_attrs, **kw):
        self.calls.append({"n_train": len(train_images), "n_val": len(val_images),
                           "rates": np.asarray(train_attrs).mean(0), **kw})
        rates = np.asarray(train_attrs, np.float32).mean(0)

        class Rates:
            def predict_proba(self, images):
                n = len(images)
                jitter = np.asarray(images, np.float32).mean(axis=(1, 2, 3))[:, None] * 1e-6
                return np.clip(np.broadcast_to(rates, (n, len(rates))) + jitter, 0, 1)

        return Rates()


def test_conditional_dataset_round_trips_through_parse_attributes_and_prepare(
        tiny_conditional_run, tmp_path):
    from facelib.data.cache import FaceCache
    from facelib.data.celeba import ATTRIBUTE_NAMES, parse_attributes
    from facelib.data.prepare import prepare
    from facelib.synthetic import synthesize_labelled, write_dataset

    data = synthesize_labelled(tiny_conditional_run, 12, seed=3, attrs={"Eyeglasses": 1})
    assert data.label_source == "requested" and data.images.shape == (12, 32, 32, 3)
    eyeglasses = ATTRIBUTE_NAMES.index("Eyeglasses")
    assert data.attributes[:, eyeglasses].tolist() == [1] * 12
    out = write_dataset(tmp_path / "syn", data, image_format="png")
    assert sorted(p.name for p in (out / "img_align_celeba").iterdir())[:2] == ["000001.png",
                                                                               "000002.png"]
    lines = (out / "list_attr_celeba.txt").read_text().splitlines()
    assert lines[0] == "12" and lines[1].split() == list(ATTRIBUTE_NAMES)
    assert set(lines[2].split()[1:]) <= {"1", "-1"}
    table = parse_attributes(out / "list_attr_celeba.txt")
    assert np.array_equal(table.values, data.attributes)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["label_source"] == "requested" and meta["run"]["step"] == 6
    assert meta["fixed_attributes"] == {"Eyeglasses": 1}
    assert "asked for" in (out / "README.md").read_text()
    # facelib's own prepare reads it: square faces are kept whole, PNG is lossless.
    prepare(out, tmp_path / "cache", resolution=32, progress=False)
    cache = FaceCache.open(tmp_path / "cache")
    assert np.array_equal(np.asarray(cache.images), data.images)
    assert np.array_equal(cache.attributes, data.attributes)


def test_jpeg_dataset_and_overwrite_rules(tiny_conditional_run, tmp_path):
    from facelib.synthetic import read_dataset, write_synthetic_dataset

    out = write_synthetic_dataset(tiny_conditional_run, tmp_path / "syn", 6, seed=1)
    assert len(list((out / "img_align_celeba").glob("*.jpg"))) == 6
    back = read_dataset(out)
    assert back.images.shape == (6, 32, 32, 3) and back.attributes.shape == (6, 40)
    with pytest.raises(FacelibError, match="already exists"):
        write_synthetic_dataset(tiny_conditional_run, out, 6)
    write_synthetic_dataset(tiny_conditional_run, out, 4, overwrite=True)
    assert len(list((out / "img_align_celeba").iterdir())) == 4
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_bytes(b"x")
    with pytest.raises(FacelibError, match="not a facelib synthetic dataset"):
        write_synthetic_dataset(tiny_conditional_run, foreign, 4, overwrite=True)
    assert (foreign / "holiday.jpg").exists()
    with pytest.raises(FacelibError, match="image format"):
        write_synthetic_dataset(tiny_conditional_run, tmp_path / "x", 2, image_format="gif")


def test_unconditional_runs_are_labelled_by_a_classifier(tiny_run, tmp_path):
    from facelib.data.celeba import parse_attributes
    from facelib.synthetic import synthesize_labelled, write_dataset

    with pytest.raises(FacelibError, match="pass an attribute classifier"):
        synthesize_labelled(tiny_run, 4)
    with pytest.raises(FacelibError, match="unconditional run"):
        synthesize_labelled(tiny_run, 4, attrs={"Smiling": 1}, classifier=MeanColourClassifier())
    clf = MeanColourClassifier()
    data = synthesize_labelled(tiny_run, 10, seed=2, classifier=clf)
    expected = (clf.predict_proba(data.images) >= 0.5).astype(np.int8)
    assert data.label_source == "predicted" and np.array_equal(data.attributes, expected)
    out = write_dataset(tmp_path / "syn", data)
    assert np.array_equal(parse_attributes(out / "list_attr_celeba.txt").values, expected)
    assert "predictions" in (out / "README.md").read_text()
    assert json.loads((out / "meta.json").read_text())["label_source"] == "predicted"


@pytest.mark.slow
def test_cas_table_end_to_end(cache32, tiny_conditional_run):
    """All three settings with a stand-in fit, then train-on-synthetic-test-on-real with the
    real attribute classifier (one setting keeps the test fast)."""
    from facelib.synthetic import CAS_SETTINGS, cas_table, synthesize_labelled

    synthetic = synthesize_labelled(tiny_conditional_run, 80, seed=5)
    table = cas_table(cache32, synthetic, n_real=80, fit=RecordingFit(), epochs=1)
    assert set(table) == set(CAS_SETTINGS) | {"_info"}
    assert (table["real"]["n_real"], table["real"]["n_synthetic"]) == (80, 0)
    assert (table["synthetic"]["n_real"], table["synthetic"]["n_synthetic"]) == (0, 72)
    assert table["real+synthetic"]["n_train"] == 152
    for setting in CAS_SETTINGS:
        row = table[setting]
        assert row["n_test"] == 50 and len(row["per_attribute_auc"]) == 40
        assert 0 <= row["mean_accuracy"] <= 1
        # A rate-only model ranks faces by brightness noise: AUCs near chance, not perfect.
        assert 0 <= row["mean_auc"] <= 1
    assert table["_info"]["label_source"] == "requested"
    real = cas_table(cache32, synthetic, settings=["synthetic"], epochs=1, width=8, batch_size=32)
    row = real["synthetic"]
    assert row["n_synthetic"] == 72 and row["n_test"] == 50
    assert 0 <= row["mean_accuracy"] <= 1 and 0 <= row["mean_auc"] <= 1
    # Accuracy is compared with the majority baseline of the synthetic training labels.
    assert 0.5 <= row["mean_majority_accuracy"] <= 1


def test_cas_keeps_synthetic_only_away_from_real_faces(cache32, tiny_conditional_run):
    from facelib.data.cache import FaceCache
    from facelib.synthetic import cas_table, synthesize_labelled

    fit = RecordingFit()
    synthetic = synthesize_labelled(tiny_conditional_run, 40, seed=5)
    cas_table(cache32, synthetic, n_real=60, fit=fit, epochs=1, val_fraction=0.25)
    n_valid = len(FaceCache.open(cache32).indices("valid"))
    assert [(c["n_train"], c["n_val"]) for c in fit.calls] == [
        (60, n_valid), (30, 10), (90, n_valid + 10)]
    with pytest.raises(FacelibError, match="unknown CAS setting"):
        cas_table(cache32, synthetic, settings=["fake"], fit=fit)


def test_rebalancing_tops_up_the_rare_attribute(cache32, tiny_conditional_run, tiny_run):
    from facelib.synthetic import rebalance_experiment

    fit = RecordingFit()
    res = rebalance_experiment(cache32, tiny_conditional_run, "Eyeglasses", n_real=100,
                               target_rate=0.5, fit=fit, epochs=1)
    info = res["_info"]
    m = res["real+synthetic (Eyeglasses=1)"]["n_synthetic"]
    assert m == int(np.ceil((50 - info["real_positives"]) / 0.5))
    assert res["real+synthetic (Eyeglasses=1)"]["train_rate"] == pytest.approx(0.5, abs=0.01)
    assert res["real"]["train_rate"] == pytest.approx(info["real_positives"] / 100)
    assert res["real+synthetic (random)"]["n_train"] == 100 + m
    # The rate-predicting stand-in calls every face positive once the rate reaches 0.5.
    assert res["real+synthetic (Eyeglasses=1)"]["recall"] == 1.0
    assert res["real"]["recall"] == 0.0
    for row in (res[k] for k in res if k != "_info"):
        assert 0 <= row["others_mean_accuracy"] <= 1
    with pytest.raises(FacelibError, match="needs a run trained with --conditional"):
        rebalance_experiment(cache32, tiny_run, fit=fit)
    with pytest.raises(FacelibError, match="unknown attribute"):
        rebalance_experiment(cache32, tiny_conditional_run, "Monocle", fit=fit)


def test_synthesize_cli_writes_a_dataset_and_explains_bad_requests(tiny_conditional_run, tiny_run,
                                                                   tmp_path, capsys, monkeypatch):
    from facelib import cli
    from facelib.data.celeba import parse_attributes

    monkeypatch.setattr(cli, "COMMANDS", {"synthesize": "facelib.commands.synthesize"})
    out = tmp_path / "syn"
    code = cli.main(["synthesize", "--run", str(tiny_conditional_run), "--n", "5", "--out",
                     str(out), "--attrs", "Smiling=1", "--format", "png"])
    assert code == 0 and "wrote 5 faces" in capsys.readouterr().out
    table = parse_attributes(out / "list_attr_celeba.txt")
    assert table.column("Smiling").tolist() == [1] * 5
    assert len(list((out / "img_align_celeba").glob("*.png"))) == 5
    code = cli.main(["synthesize", "--run", str(tiny_run), "--n", "5", "--out",
                     str(tmp_path / "u")])
    assert code == 2 and "pass an attribute classifier" in capsys.readouterr().err
