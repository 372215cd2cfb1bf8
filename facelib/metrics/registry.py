"""The one door to the metrics, in the spirit of StyleGAN2-ADA's ``metric_main.py``.

Everything that measures generated faces against real ones goes through here: ``evaluate``
(``facelib.evaluation``), KID inside training (``facelib.training.kid_callback``) and
``python -m facelib fid``. Two things are chosen by name:

- the feature network (:func:`feature_network`): "standard", the FID Inception whose numbers
  compare with published ones, or "test", a small random network for quick checks; each
  result records which (:func:`network_info`), so a test-network number is never mistaken for
  a published-comparable one;
- the metrics (:func:`compute`): each is a function (real_features, gen_features, **options)
  -> dict of floats, so a caller asks for ["fid", "kid", "prdc"] and logs one flat dict. Add
  one with ``@register``.
"""

from __future__ import annotations

import inspect
from typing import Callable

from facelib.errors import FacelibError
from facelib.metrics import fid as _fid
from facelib.metrics import kid as _kid
from facelib.metrics import modes as _modes
from facelib.metrics import prdc as _prdc
from facelib.metrics.features import FeatureNetwork, random_feature_network
from facelib.metrics.inception import (DEFAULT_CONVENTION, FIDInception,
                                       check_convention, fid_inception)

NETWORK_CHOICES = ("standard", "test")


def feature_network(network="standard", *, weights=None, convention: str | None = None,
                    fallback_to_test: bool = False,
                    if_missing: str = "pass --feature-network test for a quick check whose "
                                      "numbers are not comparable with published ones",
                    log=print) -> FeatureNetwork:
    """The FeatureNetwork to measure with.

    "standard": the FID Inception (`weights`: a weights file, default the installed copies); a
    FacelibError with instructions (and `if_missing`, the caller's way out) when its weights are
    missing, unless `fallback_to_test`, which uses the test network and says so loudly;
    `convention`: how images reach 299x299 ('pytorch-fid', the default; 'tensorflow', the TF-2015
    graph and StyleGAN2-ADA; 'clean', clean-fid), see ``inception.CONVENTIONS``. "test":
    the small random test network (numbers NOT comparable with anything published). A
    FeatureNetwork object is used as given.
    """
    if convention is not None:
        check_convention(convention)
    if isinstance(network, FeatureNetwork):
        return network if convention is None else network.with_convention(convention)
    if network not in NETWORK_CHOICES:
        raise FacelibError(f"feature network {network!r}: choose one of {NETWORK_CHOICES}")
    if network == "test" and convention not in (None, DEFAULT_CONVENTION):
        raise FacelibError(f"FID convention {convention!r} applies to the standard FID Inception "
                           "only: drop --convention, or use --feature-network standard")
    if network == "standard":
        try:
            return fid_inception(weights=weights, convention=convention or DEFAULT_CONVENTION)
        except FacelibError as e:
            if not fallback_to_test:
                raise FacelibError(f"{e}. Or {if_missing}") from None
            if log:
                log(f"standard FID Inception unavailable ({e}); falling back to the TEST feature "
                    "network: these numbers are NOT comparable with any published FID/KID")
    elif log:
        log("measuring with the TEST feature network (random weights): its numbers only rank "
            "generators measured the same way and are NOT comparable with published FID/KID")
    return random_feature_network()


def is_comparable(net: FeatureNetwork) -> bool:
    """Whether numbers measured with `net` compare with published FID/KID."""
    return isinstance(net, FIDInception)


def network_info(net: FeatureNetwork) -> dict:
    """Name, id and whether numbers measured with `net` compare with published FID/KID."""
    comparable = is_comparable(net)
    return {
        "name": net.name,
        "id": net.id,
        "dim": int(net.dim),
        "preprocessing": net.preprocessing,
        "convention": getattr(net, "convention", None),
        "comparable": comparable,
        "note": ("standard FID Inception (pool3, 2048-d): comparable with pytorch-fid / TF FID "
                 "at the same sample sizes and preprocessing" if comparable else
                 "TEST network with random weights: numbers only compare with other runs "
                 "measured by this same network, never with published FID/KID"),
    }

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
    """KID over `num_subsets` random subsets (size: see ``kid.resolve_subset_size``)."""
    subset = _kid.resolve_subset_size(subset_size, len(real), len(gen))
    res = _kid.kid(real, gen, num_subsets=num_subsets, subset_size=subset, seed=seed)
    return {"kid": res.mean, "kid_std": res.std, "kid_subset_size": subset}


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
