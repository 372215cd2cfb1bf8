"""The latent explorer of notebook 06 in a real browser: a person drags a direction slider, types
it back to 0, flips attribute toggles of the conditional run and uploads a photo; the face on
screen (a screenshot of the image element) changes and comes back."""

from __future__ import annotations

import re

import pytest

import browser_kit as kit

pytestmark = pytest.mark.slow

# The explorer cells of notebooks/06_latent_exploration.ipynb on 4-step smoke runs. Such runs
# draw nearly flat faces, so their output layer is scaled in memory (tests/helpers.boosted_run)
# to make a slider's move visible; the directions are GANSpace's, as in the notebook.
SETUP = """\
import sys
sys.path.insert(0, {tests!r})
from helpers import boosted_run
from facelib.latent import principal_directions
from facelib.latent.widgets import explore

run, crun = boosted_run({run!r}), boosted_run({crun!r})
pcs = principal_directions(run, k=3, n=200)
c_pcs = principal_directions(crun, k=2, n=200)
print("ready:", pcs.names, c_pcs.names)"""
EXPLORER = """\
view = explore(run, [pcs], seed=0, invert_steps=10)
view.widget"""
CONDITIONAL = """\
cview = explore(crun, [c_pcs], seed=0, attrs={"Smiling": 1}, invert_steps=10)
cview.widget"""


@pytest.fixture(scope="module")
def latent_nb(open_notebook, smoke_runs):
    nb = open_notebook("latent_explorer.ipynb", [
        SETUP.format(tests=str(kit.REPO / "tests"), run=str(smoke_runs["dcgan"]),
                     crun=str(smoke_runs["cgan"])),
        EXPLORER, CONDITIONAL])
    out = nb.run(0)
    assert "ready:" in out.inner_text()
    yield nb
    nb.close()


def _slider(out, label: str):
    """The slider whose description starts with ``label`` (e.g. "PC0 (12.3%)")."""
    return out.locator(".widget-slider").filter(
        has=out.page.locator(".widget-label", has_text=re.compile("^" + re.escape(label))))


def _drag(page, slider, dx: int) -> None:
    """Drag the slider's handle ``dx`` pixels, as with a mouse (one value on release)."""
    handle = slider.locator(".noUi-handle, .ui-slider-handle").first
    box = handle.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + dx / 2, y, steps=4)
    page.mouse.move(x + dx, y, steps=4)
    page.mouse.up()


def _type_value(page, slider, value: str) -> None:
    """Type a value into the slider's readout and press Enter."""
    readout = slider.locator(".widget-readout").first
    readout.click()
    page.keyboard.press("Control+A")
    page.keyboard.type(value)
    page.keyboard.press("Enter")


def _face(latent_nb, cell: int):
    """Run the widget cell and return (page, its output, the face image, its src, a screenshot)."""
    out = latent_nb.run(cell, expect="img.widget-image")
    img = out.locator("img.widget-image").first
    return latent_nb.page, out, img, img.get_attribute("src"), kit.shot(img)


def test_direction_slider_changes_the_face_and_back(latent_nb):
    page, out, img, src, original = _face(latent_nb, 1)
    assert original.shape[:2] == (256, 256)
    slider = _slider(out, "PC0")
    expect_readout = slider.locator(".widget-readout").first
    assert float(expect_readout.inner_text()) == 0.0

    _drag(page, slider, 60)  # to the right: + some standard deviations
    src = kit.wait_src_change(page, img, src)
    moved = kit.shot(img)
    assert float(expect_readout.inner_text()) > 0.0
    assert kit.mean_diff(moved, original) > 2.0, "the face did not change on screen"
    kit.save_figure(out, "widgets_latent_explorer.png")

    _type_value(page, slider, "0")  # back to 0: exactly the first face again
    kit.wait_src_change(page, img, src)
    assert float(expect_readout.inner_text()) == 0.0
    back = kit.shot(img)
    assert kit.mean_diff(back, original) < 0.5, "moving the slider back did not restore the face"
    status = out.get_by_text(re.compile(r"^seed 0$"))
    assert status.count() == 1


def test_upload_inverts_the_photo(latent_nb):
    page, out, img, src, before = _face(latent_nb, 1)
    photo = kit.REPO / "assets" / "celeba-sample" / "img_align_celeba" / "000007.jpg"
    # as a person: press the upload button, pick the file in the browser's file chooser
    with page.expect_file_chooser() as chooser:
        out.locator(".widget-upload").first.click()
    chooser.value.set_files(str(photo))
    status = out.get_by_text(re.compile(r"000007\.jpg: inverted, PSNR"))
    status.wait_for(timeout=120_000)
    kit.wait_src_change(page, img, src)
    after = kit.shot(img)
    assert kit.mean_diff(after, before) > 2.0, "the inverted photo did not replace the face"


def test_conditional_toggles_change_the_face(latent_nb):
    page, out, img, src, original = _face(latent_nb, 2)
    male = out.locator(".widget-toggle-buttons").filter(
        has=page.locator(".widget-label", has_text=re.compile(r"^Male$")))
    assert male.count() == 1
    smiling = out.locator(".widget-toggle-buttons").filter(
        has=page.locator(".widget-label", has_text=re.compile(r"^Smiling$")))
    assert "mod-active" in (smiling.get_by_role("button", name="yes", exact=True)
                            .get_attribute("class") or "")

    faces = {}
    for choice in ("no", "yes"):
        male.get_by_role("button", name=choice, exact=True).click()
        src = kit.wait_src_change(page, img, src)
        faces[choice] = kit.shot(img)
    assert kit.mean_diff(faces["no"], faces["yes"]) > 1.0, "Male yes/no gave the same face"
    kit.save_figure(out, "widgets_conditional_explorer.png")
    male.get_by_role("button", name="any", exact=True).click()  # back: drawn from the data
    kit.wait_src_change(page, img, src)
    assert kit.mean_diff(kit.shot(img), original) < 0.5
