"""The real-or-fake study of notebook 08 in a real browser: a person clicks through a study,
reloads the page halfway and goes on, then looks at the scores; and the rapid mode's exposure is
measured on screen (a MutationObserver on the face element, times from performance.now() and
animation frames), timed by the kernel and by the browser."""

from __future__ import annotations


import numpy as np
import pytest

import browser_kit as kit

pytestmark = pytest.mark.slow

DISPLAY = 128
EXPOSURE_MS = 250

# The judging and scores cells of notebooks/08_human_evaluation.ipynb, on studies built from a
# 4-step smoke run (see the `studies` fixture).
SETUP = """\
from pathlib import Path
from facelib.human.widgets import judge
UNTIMED, RAPID = Path({untimed!r}), Path({rapid!r})
print("ready")"""
UNTIMED_VIEW = f"""\
view = judge(UNTIMED, "ann", "untimed", display_size={DISPLAY})
view.widget"""
SCORES = """\
from IPython.display import Markdown, display
from facelib.human import answers_table, load_answers, summarize, write_report

answers = load_answers([UNTIMED])
report = summarize(answers, n_boot=200, seed=0)
json_path, md_path = write_report(report, UNTIMED / "report")
display(Markdown(md_path.read_text()))
answers_table(answers)[["trial", "key", "truth", "answer", "correct", "response_ms"]]"""
RAPID_VIEW = f"""\
rview = judge(RAPID, "{{judge}}", "rapid", exposure_ms={EXPOSURE_MS}, display_size={DISPLAY},
              timing="{{timing}}")
rview.widget"""


@pytest.fixture(scope="module")
def studies(jupyter_server, smoke_runs, cache32):
    """Two studies of one boosted smoke run's faces and held-out real ones: 8 faces to click
    through, 24 for the exposure measurements."""
    from facelib.human import build_study
    from helpers import boosted_run

    run = boosted_run(smoke_runs["dcgan"])  # 4-step faces are near flat: make them differ
    root = jupyter_server.root
    return {"untimed": build_study(root / "study-untimed", {"smoke": run}, cache32, n_fake=4),
            "rapid": build_study(root / "study-rapid", {"smoke": run}, cache32, n_fake=12)}


@pytest.fixture(scope="module")
def human_nb(open_notebook, studies):
    cells = [SETUP.format(untimed=str(studies["untimed"].folder),
                          rapid=str(studies["rapid"].folder)), UNTIMED_VIEW, SCORES,
             RAPID_VIEW.format(judge="kernel-timed", timing="kernel"),
             RAPID_VIEW.format(judge="browser-timed", timing="browser")]
    nb = open_notebook("human_study.ipynb", cells)
    assert "ready" in nb.run(0).inner_text()
    yield nb
    nb.close()


def _button(out, name: str):
    return out.get_by_role("button", name=name, exact=True)


def test_untimed_study_by_clicking_with_a_reload(human_nb, studies):
    from playwright.sync_api import expect

    from facelib.human import read_jsonl
    from facelib.human.widgets import upscale

    page, study = human_nb.page, studies["untimed"]
    n = len(study)
    trials = study.trials("ann", "untimed")
    expected = {it.id: upscale(study.image(it.id), DISPLAY).astype(np.int16)
                for it in study.items}
    log = study.session_path("ann", "untimed")
    clicks: list[tuple[str, str]] = []
    figure: list = []  # the README's screenshot: the first real face on screen

    def answer_next(out, k: int) -> None:
        """Look at the face, identify it, click an answer, wait for the next one."""
        img = out.locator("img.widget-image").first
        expect(_button(out, "Real")).to_be_enabled()
        face = kit.shot(img)
        diffs = {i: kit.mean_diff(face, e) for i, e in expected.items()}
        seen = min(diffs, key=diffs.get)
        assert diffs[seen] < 1.0, f"the face on screen is none of the study's ({diffs[seen]:.1f})"
        if study.item(seen).kind == "real" and not figure:
            figure.append(kit.save_figure(out, "widgets_human_study.png"))
        choice = "fake" if k % 3 == 0 else "real"
        src = img.get_attribute("src")
        _button(out, choice.capitalize()).click()
        clicks.append((seen, choice))
        done = k + 1 == n
        status = rf"^Done: {n} of {n} answered" if done else rf"^{k + 1} of {n} answered"
        kit.text_matching(out, status).wait_for()
        if not done:
            kit.wait_src_change(page, img, src)

    out = human_nb.run(1, expect="img.widget-image")
    kit.text_matching(out, rf"^0 of {n} answered").wait_for()
    half = 3
    for k in range(half):
        answer_next(out, k)
    assert len(read_jsonl(log)) == half

    # The tab is reloaded mid-study; running the cell again resumes after the answered faces.
    human_nb.open(reload=True)
    out = human_nb.run(1, expect="img.widget-image")
    kit.text_matching(out, rf"^{half} of {n} answered").wait_for()
    for k in range(half, n):
        answer_next(out, k)
    expect(_button(out, "Real")).to_be_disabled()

    records = read_jsonl(log)
    assert len(records) == n  # one line per click
    assert [(r["key"], r["answer"]) for r in records] == clicks  # the face seen, the button hit
    assert [r["key"] for r in records] == [t.key for t in trials]  # in the judge's own order
    assert all(r["items"] == [r["key"]] and r["truth"] == study.item(r["key"]).kind
               for r in records)
    assert len({r["session"] for r in records[:half]} | {r["session"] for r in records[half:]}) == 2

    scores = human_nb.run(2, expect="table")
    tables = scores.locator("table")
    assert tables.count() >= 2  # the report's markdown table(s) and the answers
    answers_table = tables.nth(tables.count() - 1)
    assert answers_table.locator("tbody tr").count() == n
    assert "error" in scores.inner_text().lower()


@pytest.mark.parametrize("timing", ["kernel", "browser"])
def test_rapid_exposure_measured_on_screen(human_nb, studies, timing):
    """Each face's time on screen, from the frame it appears in to the frame the mask does,
    n = 24 trials. The goal (250 +/- 30 ms in 95% of trials) is reported, not asserted: the
    browser timing must hold the median within 250 +/- 50 ms and log its own measurement of
    every trial; the kernel timing is the baseline it replaced."""
    from playwright.sync_api import expect

    from facelib.human import read_jsonl

    page, study = human_nb.page, studies["rapid"]
    n = len(study)
    judge_id = f"{timing}-timed"
    cell = 3 if timing == "kernel" else 4
    face = "img.widget-image" if timing == "kernel" else "canvas.facelib-exposure[data-shown]"
    out = human_nb.run(cell, expect=face)
    kit.observe_exposures(page, out.locator(face).first,
                          "src" if timing == "kernel" else "data-shown")
    show, real, fake = (_button(out, "Show face"), _button(out, "Real"), _button(out, "Fake"))
    expect(show).to_be_enabled()
    for k in range(n):
        show.click()
        kit.wait_events(page, 3 * k + 2)  # the face, then the mask, reached the screen
        expect(real).to_be_enabled()  # browser timing: only once the face is masked
        if k == 0 and timing == "browser":
            kit.save_figure(out, "widgets_rapid_mode.png")
        (fake if k % 2 else real).click()
        kit.wait_events(page, 3 * k + 3)  # the fixation cross again
        if k + 1 < n:
            expect(show).to_be_enabled()
    events = kit.exposure_events(page)
    assert len(events) == 3 * n
    if timing == "browser":
        assert [e["what"] for e in events] == ["face", "mask", "blank"] * n
    on_screen = [events[3 * k + 1]["t_frame"] - events[3 * k]["t_frame"] for k in range(n)]
    stats = kit.summarize_exposures(on_screen, EXPOSURE_MS)

    records = kit.wait_until(
        lambda: (r := read_jsonl(study.session_path(judge_id, "rapid"))) and len(r) == n and r,
        10, f"{n} answers in the {timing}-timed log")
    assert all(r["exposure_ms"] == EXPOSURE_MS for r in records)
    label = f"{kit.pick_front_end().name}, ipywidgets {kit.ipywidgets_major()}, {timing} timing"
    print(kit.report_exposures(f"{label}: on screen", stats))
    if timing == "kernel":
        logged = [r["shown_ms"] for r in records]
        print(kit.report_exposures(f"{label}: kernel's shown_ms",
                                   kit.summarize_exposures(logged, EXPOSURE_MS)))
        assert abs(stats["median"] - EXPOSURE_MS) <= 100  # the baseline: only a sanity bound
    else:
        assert all(r["timing"] == "browser" for r in records)  # none fell back to the kernel
        logged = [r["screen_ms"] for r in records]  # one measured exposure per trial
        assert all(isinstance(x, (int, float)) and x > 0 for x in logged)
        assert all(isinstance(r["screen_frames"], int) for r in records)
        print(kit.report_exposures(f"{label}: logged screen_ms",
                                   kit.summarize_exposures(logged, EXPOSURE_MS)))
        assert abs(stats["median"] - EXPOSURE_MS) <= 50
        # the widget's own measurement agrees with the observer's, within about a frame
        assert float(np.median(np.abs(np.asarray(logged) - on_screen))) <= 20
