"""Editing an inverted photo in a conditional run by changing its attribute vector.

A conditional run's generator takes (z, attributes). Inverting a photo (``invert``) finds z
with the attributes held at the photo's own (its labels, or a classifier's reading of it); the
edit keeps that z and changes only some attributes: the same face (pose, background, lighting,
what z carries) with, say, Smiling switched on::

    from facelib.latent import edit_attributes, invert
    r = invert(run, photos, scorer=classifier)          # attrs: the classifier's reading
    smiling = edit_attributes(run, r, {"Smiling": 1})   # uint8, like r.reconstructions

Unconditional runs have no attribute input: move z along a direction there
(``compute_attribute_directions`` and ``move``), which works in conditional runs too.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from facelib.errors import FacelibError
from facelib.images import to_uint8


def set_attributes(run, attrs, changes: Mapping[str, int]) -> np.ndarray:
    """A copy of the 0/1 attribute rows ``attrs`` ((40,) or (N, 40), in ``run.attribute_names``
    order) with each attribute named in ``changes`` set to its value (0 or 1) in every row.
    The input is never modified."""
    names = list(run.attribute_names)
    out = np.array(attrs, dtype=np.float32, copy=True)
    if out.ndim not in (1, 2) or out.shape[-1] != len(names):
        raise FacelibError(f"attribute rows must have shape ({len(names)},) or (N, {len(names)}), "
                           f"got {out.shape}")
    for name, value in changes.items():
        if name not in names:
            raise FacelibError(f"unknown attribute {name!r}; valid names: {', '.join(names)}")
        if isinstance(value, bool) or value in (0, 1):
            out[..., names.index(name)] = float(value)
        else:
            raise FacelibError(f"attribute {name}={value!r}: use 0 (absent) or 1 (present)")
    return out


def edit_attributes(run, inverted, changes: Mapping[str, int], *, strength: float = 1.0,
                    batch_size: int = 256) -> np.ndarray:
    """The inverted faces re-synthesized from the same z with ``changes`` applied to their
    attribute rows (e.g. ``{"Smiling": 1}``): uint8 (N, R, R, 3), comparable pixel for pixel
    with ``inverted.reconstructions`` (an empty ``changes`` gives the reconstructions back).

    inverted: an ``InversionResult`` of a conditional run (or anything with ``.z`` (N, d) and
    ``.attrs`` (N, 40)). The new rows are ``set_attributes(run, inverted.attrs, changes)``.

    ``strength`` scales the change: the rows become ``attrs + strength * (new - attrs)``, so 1
    sets the attributes, 2 pushes them twice as far (Smiling 0 -> 2, or 1 -> -1 to remove it),
    like a strength along a latent direction. Why: the inverted z was fitted with the photo's
    attributes and carries much of the face, so at 1 the label often moves it too little
    (``benchmarks/bench_smile_edit.py`` measures how much, and what else moves with it).
    """
    strength = float(strength)
    if not np.isfinite(strength):
        raise FacelibError(f"strength {strength}: give a finite number (1 sets the attributes)")
    if not getattr(run, "conditional", False):
        raise FacelibError(f"{getattr(run, 'path', run)} is an unconditional run: it has no "
                           "attribute input to change. Move the inverted z along an attribute "
                           "direction instead (facelib.latent.compute_attribute_directions, move)")
    z = getattr(inverted, "z", None)
    attrs = getattr(inverted, "attrs", None)
    if z is None or attrs is None:
        raise FacelibError("edit_attributes needs an inversion result of a conditional run (with "
                           ".z and .attrs); invert the photos with facelib.latent.invert first")
    z = np.asarray(z, np.float32)
    attrs = np.asarray(attrs, np.float32)
    if attrs.ndim != 2 or len(attrs) != len(z):
        raise FacelibError(f"{len(z)} latents but attribute rows of shape {attrs.shape}")
    rows = attrs + strength * (set_attributes(run, attrs, changes) - attrs)
    return to_uint8(run.synthesize(z, rows, batch_size=batch_size, extrapolate=strength != 1.0))


__all__ = ["edit_attributes", "set_attributes"]
