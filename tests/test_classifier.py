"""The attribute classifier: learns on real faces, scores honestly, round-trips, fails clearly."""

from __future__ import annotations

import io
import json
import zipfile

import h5py
import numpy as np
import pytest

from facelib.errors import FacelibError


@pytest.fixture(scope="module")
def trained(cache32, tmp_path_factory):
    """A small classifier trained by the CLI on the bundled sample's 400 training faces."""
    from facelib.cli import main

    out = tmp_path_factory.mktemp("classifier") / "clf"
    code = main(["train-classifier", "--data", str(cache32), "--out", str(out), "--epochs", "4",
                 "--width", "16", "--batch-size", "32", "--quiet"])
    assert code == 0
    return out


@pytest.fixture(scope="module")
def heldout(cache32):
    from facelib.data.cache import FaceCache

    cache = FaceCache.open(cache32)
    idx = np.concatenate([cache.indices("valid"), cache.indices("test")])
    return np.asarray(cache.images[idx]), np.asarray(cache.attributes[idx])


@pytest.mark.slow
def test_cli_writes_model_meta_and_report(trained, capsys):
    assert {p.name for p in trained.iterdir()} >= {"classifier.keras", "meta.json", "report.json"}
    meta = json.loads((trained / "meta.json").read_text())
    report = json.loads((trained / "report.json").read_text())
    assert meta["resolution"] == 32 and len(meta["attribute_names"]) == 40
    assert meta["n_train"] == 400 and report["split"] == "valid" and report["n"] == 50
    male = report["per_attribute"]["Male"]
    assert set(male) >= {"accuracy", "auc", "majority_accuracy", "positive_rate"}
    # The baseline answers the training majority: its accuracy is the share of that class.
    rate = meta["train_positive_rate"][meta["attribute_names"].index("Male")]
    expect = male["positive_rate"] if rate >= 0.5 else 1 - male["positive_rate"]
    assert male["majority_accuracy"] == pytest.approx(expect)


def test_classifier_learns_real_attributes(trained, heldout):
    from facelib.classifier import AttributeClassifier

    clf = AttributeClassifier.load(trained)
    hist = clf.meta["history"]
    assert hist["loss"][-1] < hist["loss"][0] * 0.8
    assert hist["val_loss"][-1] < hist["val_loss"][0]
    images, attrs = heldout
    result = clf.evaluate(images, attrs)
    assert result["n"] == 100
    assert result["per_attribute"]["Male"]["auc"] > 0.62
    assert result["mean_auc"] > 0.55


@pytest.mark.slow
def test_save_load_gives_identical_predictions(cache32, tmp_path):
    from facelib.classifier import AttributeClassifier, fit_attribute_classifier
    from facelib.data.cache import FaceCache

    cache = FaceCache.open(cache32)
    x, a = np.asarray(cache.images[:96]), cache.attributes[:96]
    clf = fit_attribute_classifier(x[:64], a[:64], x[64:], a[64:], epochs=1, batch_size=32,
                                   width=8, seed=3)
    before = clf.predict_proba(x[64:])
    clf.save(tmp_path / "c")
    loaded = AttributeClassifier.load(tmp_path / "c")
    assert loaded.attribute_names == clf.attribute_names and loaded.resolution == 32
    np.testing.assert_array_equal(loaded.predict_proba(x[64:]), before)
    assert loaded.report["n"] == 32 and loaded.evaluate(x[64:], a[64:]) == clf.report
    assert before.shape == (32, 40) and before.dtype == np.float32
    assert ((before > 0) & (before < 1)).all()
    # saved without the optimizer (load never compiles): no Adam moments in the weights file
    with zipfile.ZipFile(tmp_path / "c" / "classifier.keras") as z, \
            h5py.File(io.BytesIO(z.read("model.weights.h5"))) as h5:
        groups = []
        h5.visit(groups.append)
    assert groups and not [g for g in groups if "optimizer" in g]
    assert clf.model.optimizer is not None  # the in-memory classifier keeps its own


def test_any_resolution_and_float_input(trained, heldout):
    from facelib.classifier import AttributeClassifier
    from facelib.images import to_float

    clf = AttributeClassifier.load(trained)
    x = heldout[0][:8]
    p = clf.predict_proba(x)
    # 2x nearest-neighbour upsampling is undone exactly by the area resize back to 32 px.
    big = np.repeat(np.repeat(x, 2, axis=1), 2, axis=2)
    np.testing.assert_allclose(clf.predict_proba(big), p, atol=1e-6)
    np.testing.assert_allclose(clf.predict_proba(to_float(x)), p, atol=1e-6)
    assert clf.predict(x).dtype == np.int8 and set(np.unique(clf.predict(x))) <= {0, 1}


def test_scores_known_answers_and_undefined_auc():
    from facelib.classifier import score_predictions

    attrs = np.array([[1, 0], [1, 0], [0, 0], [0, 0]], np.float32)
    probs = np.array([[0.9, 0.2], [0.4, 0.1], [0.6, 0.7], [0.1, 0.3]], np.float32)
    r = score_predictions(probs, attrs, ["a", "b"], train_positive_rate=[0.25, 0.6])
    a, b = r["per_attribute"]["a"], r["per_attribute"]["b"]
    assert a["accuracy"] == 0.5 and a["majority_accuracy"] == 0.5
    assert a["auc"] == pytest.approx(0.75)   # 3 of the 4 positive/negative pairs ranked right
    assert b["auc"] is None and "only one class" in b["auc_reason"]
    assert b["majority_class"] == 1 and b["majority_accuracy"] == 0.0  # training majority: 1
    assert b["accuracy"] == 0.75
    assert r["mean_auc"] == pytest.approx(0.75) and r["auc_defined"] == 1


def test_clear_errors(trained, tmp_path, cache32, capsys):
    from facelib.classifier import AttributeClassifier, fit_attribute_classifier
    from facelib.cli import main

    clf = AttributeClassifier.load(trained)
    x = np.zeros((4, 32, 32, 3), np.uint8)
    with pytest.raises(FacelibError, match="one image"):
        clf.predict_proba(x[0])
    with pytest.raises(FacelibError, match=r"RGB images \(N, H, W, 3\)"):
        clf.predict_proba(np.zeros((4, 32, 32), np.uint8))
    with pytest.raises(FacelibError, match=r"\[-1, 1\]"):
        clf.predict_proba(np.full((2, 32, 32, 3), 200.0, np.float32))
    with pytest.raises(FacelibError, match="40 attributes"):
        clf.evaluate(x, np.zeros((4, 39)))
    with pytest.raises(FacelibError, match=r"\(a \+ 1\) // 2"):
        clf.evaluate(x, -np.ones((4, 40)))
    with pytest.raises(FacelibError, match="one label row per image"):
        fit_attribute_classifier(x, np.zeros((3, 40)), x, np.zeros((4, 40)), epochs=1)
    with pytest.raises(FacelibError, match="train-classifier"):
        AttributeClassifier.load(tmp_path / "nothing")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "classifier.keras").write_bytes(b"")
    with pytest.raises(FacelibError, match="missing meta.json"):
        AttributeClassifier.load(tmp_path / "half")
    (tmp_path / "half" / "meta.json").write_text(json.dumps(clf.meta))
    with pytest.raises(FacelibError, match="could not be loaded"):
        AttributeClassifier.load(tmp_path / "half")
    assert main(["train-classifier", "--data", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "not a prepared facelib cache" in capsys.readouterr().err
