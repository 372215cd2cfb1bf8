"""The EDA numbers behind notebook 01: known answers on hand-made tables and images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facelib.data import eda
from facelib.data.celeba import AttributeTable, get_celeba, parse_attributes
from facelib.errors import FacelibError

FIXTURE = Path(__file__).parent / "fixtures" / "celeba-tiny"


def table(columns: dict[str, list[int]]) -> AttributeTable:
    names = list(columns)
    values = np.array([columns[n] for n in names], np.int8).T
    return AttributeTable([f"{i:06d}.jpg" for i in range(len(values))], values, names)


def test_frequencies_imbalance_and_correlation_known_answers():
    t = table({"a": [1, 1, 1, 0], "b": [1, 1, 1, 0], "c": [0, 0, 0, 1], "d": [1, 1, 1, 1],
               "e": [1, 0, 1, 0]})
    assert eda.attribute_frequencies(t.values, t.names) == [
        ("d", 1.0), ("a", 0.75), ("b", 0.75), ("e", 0.5), ("c", 0.25)]
    np.testing.assert_allclose(eda.imbalance(t.values), [3, 3, 3, np.inf, 1])
    corr = eda.attribute_correlation(t.values)
    assert corr[0, 1] == pytest.approx(1) and corr[0, 2] == pytest.approx(-1)
    assert corr[0, 3] == 0 and corr[3, 3] == 1  # a constant attribute correlates with nothing
    assert corr[0, 4] == pytest.approx(np.corrcoef(t.values[:, 0], t.values[:, 4])[0, 1])
    top = eda.strongest_correlations(t, 3)  # a, b and c are the same split of the faces
    assert {(x, y) for x, y, _ in top} == {("a", "b"), ("a", "c"), ("b", "c")}
    assert [round(abs(r), 6) for _, _, r in top] == [1, 1, 1]


def test_jpeg_size_reads_the_frame_header():
    assert eda.jpeg_size((FIXTURE / "img_align_celeba" / "000001.jpg").read_bytes()) == (109, 89)
    assert eda.jpeg_size(b"not a jpeg") is None and eda.jpeg_size(b"") is None
    assert eda.jpeg_size(b"\xff\xd8\xff\xd9") is None


def test_image_statistics_match_numpy():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (50, 8, 8, 3), dtype=np.uint8)
    s = eda.image_statistics(x, batch=7)
    np.testing.assert_allclose(s["mean_rgb"], x.reshape(-1, 3).mean(0))
    np.testing.assert_allclose(s["std_rgb"], x.reshape(-1, 3).std(0), rtol=1e-9)
    luma = (x.astype(float) @ [0.299, 0.587, 0.114]).mean(axis=(1, 2))
    np.testing.assert_allclose(s["brightness"], luma)
    with pytest.raises(FacelibError, match="no images"):
        eda.image_statistics(x[:0])


def test_examples_sizes_and_figures_on_the_fixture():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = get_celeba(FIXTURE)
    t = parse_attributes(files.attributes)
    yes, no = eda.attribute_examples(files, t, "Smiling", n=3, resolution=32)
    assert yes.shape == no.shape == (3, 32, 32, 3)
    assert eda.image_size_survey(files, t.filenames) == {(109, 89): 24}
    with pytest.raises(FacelibError, match="no face has Bald=1"):
        eda.attribute_examples(files, t, "Bald", n=2)
    eda.plot_attribute_frequencies(t)
    eda.plot_attribute_correlation(t)
    eda.plot_crop_box(files.images / "000001.jpg")
    eda.plot_resize_comparison(files.images / "000001.jpg", 32)
    plt.close("all")
