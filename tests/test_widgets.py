"""The latent explorer, headless: the controller (state -> image) and the ipywidgets view
driven by setting widget values, as a user's clicks would."""

import numpy as np
import pytest

from facelib.errors import FacelibError
from facelib.images import to_uint8
from facelib.latent.directions import DirectionSet
from facelib.latent.widgets import ExplorerView, LatentExplorer, explore, uploaded_files




def _directions(run):
    rng = np.random.default_rng(0)
    attrs = DirectionSet(["Smiling", "Male"], rng.standard_normal((2, run.latent_dim)), "attribute")
    pcs = DirectionSet(["PC0"], rng.standard_normal((1, run.latent_dim)), "principal",
                       {"per_direction": {"PC0": {"explained_variance_ratio": 0.125}}})
    return [attrs, pcs]


def _png(image):
    import cv2

    return cv2.imencode(".png", np.ascontiguousarray(image[..., ::-1]))[1].tobytes()


def _browser_upload(upload, name: str, data: bytes, mime: str = "image/png") -> None:
    """Deliver a file to a FileUpload as the browser does in the installed ipywidgets: the
    frontend's state message goes through ``set_state`` (which applies the traits' from_json).
    7.x: ``metadata`` and ``data`` (bytes buffers), then ``_counter`` + 1 makes ``value`` a dict
    {name: {"metadata", "content"}}; ``value`` itself is read-only. 8.x: ``value`` is a list of
    {"name", "type", "size", "last_modified" (ms), "content" (buffer)}, deserialized to a tuple."""
    import ipywidgets

    modified_ms = 1_700_000_000_000
    if int(ipywidgets.__version__.split(".")[0]) < 8:
        upload.set_state({"metadata": [{"name": name, "type": mime, "size": len(data),
                                        "lastModified": modified_ms}],
                          "data": [memoryview(data)], "_counter": upload._counter + 1})
        assert isinstance(upload.value, dict) and bytes(upload.value[name]["content"]) == data
    else:
        upload.set_state({"value": [{"name": name, "type": mime, "size": len(data),
                                     "last_modified": modified_ms,
                                     "content": memoryview(data)}]})
        assert isinstance(upload.value, tuple) and bytes(upload.value[0]["content"]) == data


def test_uploaded_files_reads_ipywidgets_7_and_8_values():
    v7 = {"a.png": {"metadata": {"name": "a.png", "type": "image/png", "size": 3},
                    "content": b"abc"}}
    v8 = ({"name": "b.png", "type": "image/png", "size": 3, "content": memoryview(b"xyz"),
           "last_modified": None},)
    assert uploaded_files(v7) == [("a.png", b"abc")]
    assert uploaded_files(v8) == [("b.png", b"xyz")]
    assert uploaded_files({}) == [] and uploaded_files(()) == []


def test_controller_sliders_reset_and_seed(run):
    ex = LatentExplorer(run, _directions(run), seed=3, display_size=64)
    assert ex.labels["PC0"] == "PC0 (12.5%)"
    original = ex.png()
    np.testing.assert_array_equal(ex.image(), run.generate(1, seed=3)[0])
    ex.set_strength("Smiling", 2.5)
    moved = ex.png()
    assert moved != original
    np.testing.assert_allclose(ex.latent(), run.sample_latents(1, 3)
                               + 2.5 * _directions(run)[0]["Smiling"], atol=1e-6)
    ex.reset()
    assert ex.png() == original  # exactly the original bytes
    ex.set_seed(4)
    assert ex.png() != original
    with pytest.raises(FacelibError, match="no direction"):
        ex.set_strength("Bald", 1.0)
    with pytest.raises(FacelibError, match="conditional run"):
        ex.set_attribute("Smiling", 1)


def test_view_drives_the_image(run):
    view = explore(run, _directions(run), seed=0, display_size=64, invert_steps=3)
    assert isinstance(view, ExplorerView) and not view.toggles
    original = view.image.value
    view.sliders["Male"].value = 2.0
    assert view.image.value != original
    view.sliders["PC0"].value = -1.5
    view.reset_button.click()
    assert view.image.value == original and view.sliders["Male"].value == 0.0
    view.seed.value = 5
    assert view.image.value != original and view.status.value == "seed 5"
    view.next_seed.click()
    assert view.seed.value == 6 and view.explorer.seed == 6


@pytest.mark.slow
def test_upload_inverts_the_photo(run):
    view = explore(run, _directions(run), seed=0, display_size=64, invert_steps=3,
                   tune_steps=0)
    before = view.image.value
    face = run.generate(1, seed=11)[0]
    _browser_upload(view.upload, "me.png", _png(face))  # ipywidgets 7 or 8, whichever is installed
    assert view.explorer.inverted is not None and len(view.explorer.inverted.history) == 3
    assert view.status.value.startswith("me.png: inverted, PSNR")
    assert view.image.value != before and view.explorer.tuned is None
    np.testing.assert_array_equal(view.explorer.image(), view.explorer.inverted.reconstructions[0])
    photo = view.image.value
    view.sliders["Smiling"].value = 1.0  # sliders edit the photo
    assert view.image.value != photo
    np.testing.assert_allclose(view.explorer.latent(), view.explorer.inverted.z
                               + view.explorer.directions["Smiling"], atol=1e-6)
    _browser_upload(view.upload, "bad.png", b"not an image")
    assert view.status.value.startswith("error:") and "aligned" in view.status.value
    _browser_upload(view.upload, "again.png", _png(run.generate(1, seed=12)[0]))  # a second photo
    assert view.status.value.startswith("again.png: inverted, PSNR")


@pytest.mark.slow
def test_upload_tunes_a_copy_of_the_generator_to_the_photo(run):
    """With tune_steps, the uploaded face is drawn by a generator tuned to the photo (and the
    sliders move it there) until another seed is picked; the run's own generator is untouched."""
    view = explore(run, _directions(run), seed=0, display_size=64, invert_steps=3,
                   tune_steps=20)
    ex = view.explorer
    _browser_upload(view.upload, "me.png", _png(run.generate(1, seed=11)[0]))
    assert ex.tuned is not None and ex.tuned.tuning["steps"] == 20
    assert view.status.value.endswith("after 20 steps of pivotal tuning")
    np.testing.assert_array_equal(ex.image(), to_uint8(ex.tuned.synthesize(ex.inverted.z))[0])
    view.sliders["Smiling"].value = 1.0
    np.testing.assert_array_equal(
        ex.image(), to_uint8(ex.tuned.synthesize(ex.inverted.z + ex.directions["Smiling"]))[0])
    view.reset()
    view.seed.value = 3  # another seed: the untuned generator again
    assert ex.tuned is None
    np.testing.assert_array_equal(ex.image(), to_uint8(run.synthesize(run.sample_latents(1, 3)))[0])
    _browser_upload(view.upload, "you.png", _png(run.generate(1, seed=12)[0]))
    assert ex.tuned is not None and ex.tuner.traces == 1  # the second upload reuses the step
    with pytest.raises(FacelibError, match="tune_steps=-1: use 0"):
        explore(run, tune_steps=-1)


@pytest.mark.slow
def test_conditional_toggles_change_the_face(crun):
    view = explore(crun, _directions(crun), seed=0, display_size=64, invert_steps=2,
                   attrs={"Male": 1})
    assert len(view.toggles) == 40 and view.toggles["Male"].value == "yes"
    original = view.image.value
    assert view.explorer.attributes()[0, crun.attribute_names.index("Male")] == 1
    view.toggles["Male"].value = "no"
    assert view.explorer.attributes()[0, crun.attribute_names.index("Male")] == 0
    assert view.image.value != original
    view.toggles["Male"].value = "yes"
    assert view.image.value == original
    view.attr_seed.value = 1  # redraw the free attributes
    assert view.explorer.attributes()[0, crun.attribute_names.index("Male")] == 1
    view.sliders["Smiling"].value = 2.0  # sliders combine with toggles
    assert view.image.value != original
    ex = view.explorer
    ex.upload(_png(crun.generate(1, seed=2, attrs={"Male": 1})[0]))
    np.testing.assert_array_equal(ex.inverted.attrs, ex.attributes())  # held during inversion
    with pytest.raises(FacelibError, match="unknown attribute"):
        ex.set_attribute("Smiles", 1)
