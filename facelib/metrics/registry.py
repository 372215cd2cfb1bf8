"""Metrics by name, in the spirit of StyleGAN2-ADA's metric registry.

Each metric is a function (real_features, gen_features, **options) -> dict of floats, so an
evaluation can ask for ["fid", "kid", "pr"] and log one flat dict. Add one with @register.
"""

from __future__ import annotations

import inspect
from typing import Callable

from facelib.errors import FacelibError
from facelib.metrics import fid as _fid
from facelib.metrics import kid as _kid
from facelib.metrics import modes as _modes
from facelib.metrics import prdc as _prdc

MetricFn = Callable[..., dict]
METRICS: dict[str, MetricFn] = {}


def register(name: str) -> Callable[[MetricFn], MetricFn]:
    """Decorator: make `fn(real, gen, **options) -> dict` available as `name`."""

    def wrap(fn: MetricFn) -> MetricFn:
        if name in METRICS:
            raise ValueError(f"metric {name!r} is already registered")
        METRICS[name] = fn
        return fn

    return wrap


@register("fid")
def _metric_fid(real, gen) -> dict:
    return {"fid": _fid.fid_from_features(real, gen)}


@register("kid")
def _metric_kid(real, gen, num_subsets: int = 100, subset_size: int | None = None, seed: int = 0) -> dict:
    res = _kid.kid(real, gen, num_subsets=num_subsets, subset_size=subset_size, seed=seed)
    return {"kid": res.mean, "kid_std": res.std}


@register("pr")
def _metric_pr(real, gen, k: int = 3) -> dict:
    return _prdc.precision_recall(real, gen, k=k)


@register("dc")
def _metric_dc(real, gen, k: int = 5) -> dict:
    return _prdc.density_coverage(real, gen, k=k)


@register("prdc")
def _metric_prdc(real, gen, k_pr: int = 3, k_dc: int = 5) -> dict:
    """All four of pr and dc with one shared distance pass (cheaper than "pr" + "dc")."""
    return _prdc.prdc(real, gen, k_pr=k_pr, k_dc=k_dc)


@register("ndb")
def _metric_ndb(real, gen, k: int | None = None, alpha: float = 0.05, seed: int = 0) -> dict:
    return _modes.ndb(real, gen, k=k, alpha=alpha, seed=seed).as_dict()


def available() -> list[str]:
    return sorted(METRICS)


def compute(names, real, gen, options: dict[str, dict] | None = None) -> dict[str, float]:
    """Run the named metrics on (real, gen) feature arrays; returns one flat dict.

    `options` maps a metric name to keyword arguments for it, e.g. {"kid": {"num_subsets": 10}}.
    """
    if isinstance(names, str):
        names = [names]
    names = list(names)
    options = dict(options or {})
    unknown = [n for n in list(names) + list(options) if n not in METRICS]
    if unknown:
        raise FacelibError(f"unknown metric(s) {unknown}; available: {', '.join(available())}")
    for name, kw in options.items():
        accepted = list(inspect.signature(METRICS[name]).parameters)[2:]
        bad = sorted(set(kw) - set(accepted))
        if bad:
            raise FacelibError(f"metric {name!r} has no option(s) {bad}; it accepts {accepted}")
    out: dict[str, float] = {}
    for name in names:
        out.update(METRICS[name](real, gen, **options.get(name, {})))
    return out
