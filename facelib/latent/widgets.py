"""Interactive latent exploration in a notebook: sliders along directions, a seed picker,
attribute toggles for conditional runs and an upload box that inverts a photo.

Two layers: ``LatentExplorer`` is plain Python (state -> image) and is what the tests drive;
``ExplorerView`` only maps widgets onto it. Compatible with ipywidgets 7.7 (Colab) and 8: it
uses FloatSlider, IntText, ToggleButtons, Button, FileUpload, Image (PNG bytes), Label, HTML,
HBox/VBox, ``observe(names="value")`` and ``on_click``, all present in both with the kwargs used
here. FileUpload's ``value`` differs: a dict {name: {"metadata": ..., "content": bytes}} in 7,
a tuple of {"name", "content" (memoryview), ...} dicts in 8; ``uploaded_files`` reads both.
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np

from facelib.errors import FacelibError
from facelib.images import to_uint8

ANY, NO, YES = "any", "no", "yes"
TOGGLE_VALUES = {ANY: None, NO: 0, YES: 1}


def png_bytes(image: np.ndarray, size: int | None = None) -> bytes:
    """uint8 RGB HWC -> PNG bytes, enlarged to size x size by pixel repetition if given."""
    import cv2

    img = np.ascontiguousarray(image)
    if size and img.shape[0] != size:
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_NEAREST)
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(img[..., ::-1]))
    if not ok:
        raise FacelibError("could not encode an image as PNG")
    return buf.tobytes()


def uploaded_files(value) -> list[tuple[str, bytes]]:
    """(name, bytes) for each file in a FileUpload ``value``: ipywidgets 7's dict or 8's tuple."""
    if not value:
        return []
    out = []
    if isinstance(value, Mapping):  # ipywidgets 7: {name: {"metadata": {...}, "content": b""}}
        for name, item in value.items():
            out.append((str(name), bytes(item["content"])))
    else:  # ipywidgets 8: ({"name": ..., "type": ..., "size": ..., "content": memoryview}, ...)
        for item in value:
            out.append((str(item.get("name", "upload")), bytes(item["content"])))
    return out


class LatentExplorer:
    """The state behind the explorer: a base latent (a seed's, or an inverted photo's), one
    strength per direction, and for conditional runs the attribute choices.

    image = G(z_base + sum_i s_i d_i, attributes). Attributes set to 0/1 are fixed; the rest
    are drawn from the training data's joint distribution given them (``attr_seed``).
    """

    def __init__(self, run, directions: Iterable = (), seed: int = 0,
                 attrs: Mapping[str, int] | None = None, attr_seed: int = 0,
                 display_size: int = 256, invert_steps: int = 200, invert_kwargs=None,
                 tune_steps: int = 150):
        from facelib.latent.directions import DirectionSet

        self.run = run
        if isinstance(directions, DirectionSet):
            directions = [directions]
        self.directions: dict[str, np.ndarray] = {}
        self.labels: dict[str, str] = {}
        for dset in directions:
            if dset.latent_dim != run.latent_dim:
                raise FacelibError(f"direction set of size {dset.latent_dim} does not fit this "
                                   f"run's latent_dim {run.latent_dim}")
            for name in dset.names:
                key = name if name not in self.directions else f"{dset.kind}:{name}"
                self.directions[key] = dset[name].astype(np.float32)
                ratio = dset.info(name).get("explained_variance_ratio")
                self.labels[key] = f"{key} ({100 * ratio:.1f}%)" if ratio is not None else key
        self.strengths = {name: 0.0 for name in self.directions}
        self.seed = int(seed)
        self.attr_seed = int(attr_seed)
        self.fixed: dict[str, int] = {}
        if attrs:
            for name, value in attrs.items():
                self.set_attribute(name, value)
        self.display_size = int(display_size)
        self.invert_steps = int(invert_steps)
        self.invert_kwargs = dict(invert_kwargs or {})
        if tune_steps < 0:
            raise FacelibError(f"tune_steps={tune_steps}: use 0 (no tuning) or more")
        self.tune_steps = int(tune_steps)
        self.inverted = None  # the InversionResult of the last upload
        self.tuned = None  # the run tuned to the uploaded photo (pivotal tuning), if any
        self.tuner = None  # built on the first upload, reused by the next (traced once)
        self._base = run.sample_latents(1, self.seed)
        self._attr_cache: tuple | None = None

    # -- state changes ------------------------------------------------------------------------
    def set_seed(self, seed: int) -> None:
        """Show the face of ``seed`` (leaves an uploaded photo)."""
        self.seed = int(seed)
        self.inverted = self.tuned = None
        self._base = self.run.sample_latents(1, self.seed)

    def set_strength(self, name: str, value: float) -> None:
        if name not in self.strengths:
            raise FacelibError(f"no direction {name!r}; have: "
                               f"{', '.join(self.strengths) or 'none'}")
        self.strengths[name] = float(value)

    def reset(self) -> None:
        """All strengths back to 0: the base face exactly."""
        self.strengths = {name: 0.0 for name in self.strengths}

    def set_attribute(self, name: str, value) -> None:
        """Fix an attribute to 0/1, or free it (None: drawn from the data given the fixed ones)."""
        if not self.run.conditional:
            raise FacelibError("attribute toggles need a conditional run (train with "
                               "--conditional); use attribute directions instead")
        if name not in self.run.attribute_names:
            raise FacelibError(f"unknown attribute {name!r}; valid: "
                               f"{', '.join(self.run.attribute_names)}")
        if value is None:
            self.fixed.pop(name, None)
        elif value in (0, 1, True, False):
            self.fixed[name] = int(value)
        else:
            raise FacelibError(f"attribute {name}={value!r}: use 0, 1 or None")

    def set_attr_seed(self, seed: int) -> None:
        self.attr_seed = int(seed)

    def upload(self, data) -> "object":
        """Invert a photo (encoded bytes, path or uint8 array) and make it the base face.
        Conditional runs invert with the current attribute vector held fixed. With
        ``tune_steps``, a copy of the generator is then tuned to the photo
        (``facelib.latent.PivotalTuner``, one per explorer, so a second upload is not traced
        again) and draws the face until another seed is picked, so the sliders edit the
        photo's own face."""
        from facelib.latent.inversion import invert_file
        from facelib.latent.tuning import PivotalTuner

        kwargs = {"steps": self.invert_steps, **self.invert_kwargs}
        if self.run.conditional:
            kwargs.setdefault("attrs", self.attributes())
        result = invert_file(self.run, data, **kwargs)
        if self.tune_steps and self.tuner is None:
            self.tuner = PivotalTuner(self.run)
        self.tuned = self.tuner(result, steps=self.tune_steps) if self.tune_steps else None
        self.inverted = result
        self._base = result.z[:1].copy()
        return result

    # -- outputs ------------------------------------------------------------------------------
    def latent(self) -> np.ndarray:
        z = self._base.copy()
        for name, s in self.strengths.items():
            if s != 0.0:
                z = z + np.float32(s) * self.directions[name]
        return z.astype(np.float32)

    def attributes(self) -> np.ndarray | None:
        if not self.run.conditional:
            return None
        key = (tuple(sorted(self.fixed.items())), self.attr_seed)
        if self._attr_cache is None or self._attr_cache[0] != key:
            self._attr_cache = (key, self.run.sample_attributes(1, dict(self.fixed),
                                                                seed=self.attr_seed))
        return self._attr_cache[1]

    def image(self) -> np.ndarray:
        run = self.run if self.tuned is None else self.tuned
        return to_uint8(run.synthesize(self.latent(), self.attributes()))[0]

    def png(self) -> bytes:
        return png_bytes(self.image(), self.display_size)


class ExplorerView:
    """The ipywidgets front end of a ``LatentExplorer``; display ``view.widget``."""

    def __init__(self, explorer: LatentExplorer, slider_range: float = 3.0,
                 continuous_update: bool = False, upload: bool = True):
        import ipywidgets as widgets

        self.explorer = explorer
        self._quiet = False
        size = str(explorer.display_size)
        self.image = widgets.Image(value=explorer.png(), format="png", width=size, height=size)
        self.status = widgets.Label(value="")
        style = {"description_width": "initial"}
        self.sliders = {}
        for name in explorer.directions:
            s = widgets.FloatSlider(value=0.0, min=-slider_range, max=slider_range, step=0.1,
                                    description=explorer.labels[name],
                                    continuous_update=continuous_update, style=style)
            s.observe(lambda change, n=name: self._on_slider(n, change["new"]), names="value")
            self.sliders[name] = s
        self.seed = widgets.IntText(value=explorer.seed, description="seed", style=style)
        self.seed.observe(lambda change: self._on_seed(change["new"]), names="value")
        self.next_seed = widgets.Button(description="next seed")
        self.next_seed.on_click(lambda _b: setattr(self.seed, "value", self.seed.value + 1))
        self.reset_button = widgets.Button(description="reset sliders")
        self.reset_button.on_click(lambda _b: self.reset())
        controls = [widgets.HBox([self.seed, self.next_seed, self.reset_button])]
        controls += list(self.sliders.values())
        self.toggles = {}
        if explorer.run.conditional:
            for name in explorer.run.attribute_names:
                value = {None: ANY, 0: NO, 1: YES}[explorer.fixed.get(name)]
                t = widgets.ToggleButtons(options=[ANY, NO, YES], value=value, description=name,
                                          style={"description_width": "initial",
                                                 "button_width": "56px"})
                t.observe(lambda change, n=name: self._on_toggle(n, change["new"]),
                          names="value")
                self.toggles[name] = t
            self.attr_seed = widgets.IntText(value=explorer.attr_seed,
                                             description="draw other attributes (seed)",
                                             style=style)
            self.attr_seed.observe(lambda change: self._on_attr_seed(change["new"]),
                                   names="value")
            names = list(self.toggles)
            rows = [widgets.HBox([self.toggles[n] for n in names[i:i + 2]])
                    for i in range(0, len(names), 2)]
            controls += [widgets.HTML(value="<b>Attributes</b> (any: drawn from the data given "
                                            "the fixed ones)"), self.attr_seed, *rows]
        self.upload = None
        if upload:
            self.upload = widgets.FileUpload(accept="image/*", multiple=False,
                                             description="invert a photo")
            self.upload.observe(lambda change: self._on_upload(change["new"]), names="value")
            controls.append(widgets.HBox([self.upload, widgets.HTML(
                value="an aligned CelebA-style face crop (JPEG/PNG)")]))
        self.widget = widgets.HBox([widgets.VBox([self.image, self.status]),
                                    widgets.VBox(controls)])

    # -- handlers ------------------------------------------------------------------------------
    def refresh(self) -> None:
        if self._quiet:
            return
        try:
            self.image.value = self.explorer.png()
            self.status.value = ("photo (inverted)" if self.explorer.inverted is not None
                                 else f"seed {self.explorer.seed}")
        except FacelibError as e:
            self.status.value = f"error: {e}"

    def _on_slider(self, name: str, value: float) -> None:
        self.explorer.set_strength(name, value)
        self.refresh()

    def _on_seed(self, value: int) -> None:
        self.explorer.set_seed(value)
        self.refresh()

    def _on_toggle(self, name: str, value: str) -> None:
        self.explorer.set_attribute(name, TOGGLE_VALUES[value])
        self.refresh()

    def _on_attr_seed(self, value: int) -> None:
        self.explorer.set_attr_seed(value)
        self.refresh()

    def _on_upload(self, value) -> None:
        files = uploaded_files(value)
        if not files:
            return
        name, data = files[-1]
        tuning = self.explorer.tune_steps
        self.status.value = (f"inverting {name} ({self.explorer.invert_steps} steps"
                             + (f", then {tuning} of tuning" if tuning else "") + ")...")
        try:
            result = self.explorer.upload(data)
        except FacelibError as e:
            self.status.value = f"error: {e}"
            return
        self.refresh()
        tuned = self.explorer.tuned
        self.status.value = (f"{name}: inverted, PSNR {float(result.psnr[0]):.1f} dB "
                             f"(MSE {float(result.mse[0]):.4f})"
                             + ("" if tuned is None else
                                f"; {tuned.tuning['psnr_db']:.1f} dB after "
                                f"{tuned.tuning['steps']} steps of pivotal tuning"))

    def reset(self) -> None:
        """Sliders to 0 with one redraw."""
        self._quiet = True
        try:
            for s in self.sliders.values():
                s.value = 0.0
        finally:
            self._quiet = False
        self.explorer.reset()
        self.refresh()


def explore(run, directions: Sequence = (), **kwargs):
    """Build and return the explorer widget for a run (display the returned view's ``widget``)."""
    view_kwargs = {k: kwargs.pop(k) for k in ("slider_range", "continuous_update", "upload")
                   if k in kwargs}
    return ExplorerView(LatentExplorer(run, directions, **kwargs), **view_kwargs)
