"""Human evaluation: can people tell a run's faces from real ones?

    study = build_study("studies/s1", "runs/x", cache_path, n_fake=50)   # faces, PNGs, manifest
    facelib.human.widgets.Launcher(study).widget                          # judges answer (logged)
    report = combine(["studies/s1"]); write_report(report, "studies/s1")  # scores with CIs

The widgets live in ``facelib.human.widgets`` (imported on demand, it needs ipywidgets).
"""

from facelib.human.scores import (bootstrap_rates, bradley_terry, combine, compare_runs,
                                  error_rates, hype_score, preference_ranking, summarize,
                                  to_markdown, two_proportion_p, write_report)
from facelib.human.session import (AnswerLog, JudgeSession, SimulatedClock, answers_table,
                                   load_answers, read_jsonl, simulate_judge)
from facelib.human.study import MODES, Item, Study, Trial, build_study, regenerate

__all__ = ["AnswerLog", "Item", "JudgeSession", "MODES", "Study", "Trial", "answers_table",
           "bootstrap_rates", "bradley_terry", "build_study", "combine", "compare_runs",
           "error_rates", "hype_score", "load_answers", "preference_ranking", "read_jsonl",
           "regenerate", "simulate_judge", "SimulatedClock", "summarize", "to_markdown",
           "two_proportion_p", "write_report"]
