"""What the networks look at: per-layer activation maps of the generator and discriminator.

For one sample, every convolution's output is read out, each channel is scored by its mean
absolute activation, and the strongest channels are drawn as heatmaps next to the face. A
generator whose deep layers are mostly dead channels, or a discriminator that fires on a
checkerboard instead of eyes and mouth, shows up here long before it shows in FID.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
from matplotlib.figure import Figure

from facelib.errors import FacelibError
from facelib.images import to_float, to_uint8


def conv_layers(model) -> list:
    """The model's 2-D convolution layers (plain, transposed, or wrapped e.g. by spectral norm),
    in graph order."""
    kinds = (keras.layers.Conv2D, keras.layers.Conv2DTranspose, keras.layers.DepthwiseConv2D,
             keras.layers.SeparableConv2D)
    found = []
    for layer in model.layers:
        inner = getattr(layer, "layer", None)
        if isinstance(layer, kinds) or isinstance(inner, kinds):
            if len(layer.output.shape) == 4:
                found.append(layer)
    if not found:
        raise FacelibError(f"model {model.name!r} has no 2-D convolution layers to show; pass a "
                           "conv net such as run.generator or the run's discriminator")
    return found


def activation_maps(model, inputs, layers=None) -> dict[str, np.ndarray]:
    """{layer name: float32 (N, H, W, C) output} for `inputs` (what the model takes: an array,
    or a list for a conditional model). `layers`: layer objects or names; default all convs."""
    if layers is None:
        layers = conv_layers(model)
    else:
        names = {layer.name for layer in model.layers}
        picked = []
        for item in layers:
            if isinstance(item, str):
                if item not in names:
                    raise FacelibError(f"model {model.name!r} has no layer {item!r}; its layers: "
                                       f"{', '.join(sorted(names))}")
                item = model.get_layer(item)
            picked.append(item)
        layers = picked
    model_inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    probe = keras.Model(model_inputs, [layer.output for layer in layers])
    try:
        outs = probe(inputs, training=False)
    except (ValueError, TypeError) as e:
        raise FacelibError(f"could not run {model.name!r} on the given inputs ({e}); pass what the "
                           "model takes, e.g. [z, attributes] for a conditional model") from None
    if not isinstance(outs, (list, tuple)):
        outs = [outs]
    return {layer.name: np.asarray(keras.ops.convert_to_numpy(out), np.float32)
            for layer, out in zip(layers, outs)}


def channel_scores(activation) -> np.ndarray:
    """Mean |activation| of each channel of one (H, W, C) map, (C,) float64."""
    a = np.asarray(activation)
    if a.ndim != 3:
        raise FacelibError(f"channel_scores takes one sample's (H, W, C) map, got shape {a.shape}")
    return np.abs(a.astype(np.float64)).mean(axis=(0, 1))


def top_channels(activation, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and scores of the k channels with the largest mean |activation|, strongest first
    (ties keep channel order)."""
    scores = channel_scores(activation)
    order = np.argsort(-scores, kind="stable")[:max(1, int(k))]
    return order, scores[order]


def plot_activation_maps(sections, path=None, top_k: int = 6, title: str | None = None):
    """Draw sections of (heading, image uint8 HWC or None, {layer: (H, W, C) map}) as rows of
    the top-k channel heatmaps; saves a PNG when `path` is given. Returns the Figure."""
    rows = [(heading, image, name, act) for heading, image, acts in sections
            for name, act in acts.items()]
    if not rows:
        raise FacelibError("nothing to draw: no activation maps were given")
    k = max(1, int(top_k))
    ncols = 1 + min(k, max(a.shape[-1] for *_, a in rows))
    fig = Figure(figsize=(1.35 * ncols + 1.2, 1.35 * len(rows) + 0.6 * len(sections) + 0.4),
                 layout="constrained")
    axes = np.asarray(fig.subplots(len(rows), ncols, squeeze=False))
    previous = None
    for r, (heading, image, name, act) in enumerate(rows):
        ax0 = axes[r, 0]
        ax0.set_xticks([])
        ax0.set_yticks([])
        h, w, c = act.shape
        ax0.set_ylabel(f"{name}\n{h}x{w}x{c}", fontsize=8)
        if heading != previous:
            ax0.set_title(heading, fontsize=8)
            if image is not None:
                ax0.imshow(image)
            previous = heading
        else:
            for side in ax0.spines.values():
                side.set_visible(False)
        order, scores = top_channels(act, ncols - 1)
        for col in range(1, ncols):
            ax = axes[r, col]
            ax.set_xticks([])
            ax.set_yticks([])
            if col - 1 < len(order):
                ch = int(order[col - 1])
                ax.imshow(np.abs(act[..., ch]), cmap="magma", interpolation="nearest")
                ax.set_title(f"ch {ch} |a|={scores[col - 1]:.2g}", fontsize=7)
            else:
                ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
    return fig


def internals_figure(run, path, seed: int = 0, top_k: int = 6, real_image=None,
                     discriminator=None) -> Path:
    """One generated face (latent `seed`): the generator's conv maps that made it, the
    discriminator's maps on it, and (with `real_image`, uint8 HWC) the discriminator on a real
    face for comparison. Writes a PNG and returns its path."""
    z = run.sample_latents(1, seed=seed)
    attrs = run.sample_attributes(1, seed=seed) if run.conditional else None
    g_inputs = [z, attrs] if attrs is not None else z
    g_maps = activation_maps(run.generator, g_inputs)
    fake = run.synthesize(z, attrs)
    fake_u8 = to_uint8(fake[0])
    sections = [("G output", fake_u8, {k: v[0] for k, v in g_maps.items()})]
    d = discriminator if discriminator is not None else run.discriminator()
    if d is not None:
        def d_section(image_float, image_u8, label):
            inputs = [image_float, attrs] if attrs is not None else image_float
            logit = float(np.asarray(d(inputs, training=False)).reshape(-1)[0])
            maps = activation_maps(d, inputs)
            return (f"D on {label}\nlogit {logit:+.2f}", image_u8,
                    {k: v[0] for k, v in maps.items()})

        sections.append(d_section(fake, fake_u8, "generated"))
        if real_image is not None:
            real = np.asarray(real_image)
            if real.shape != fake_u8.shape or real.dtype != np.uint8:
                raise FacelibError(f"real_image must be uint8 {fake_u8.shape} like the run's faces,"
                                   f" got {real.dtype} {real.shape}")
            sections.append(d_section(to_float(real[None]), real, "real"))
    # Run.label says pretrained:NAME for a shipped network; measures may not import the run
    # layer's run_label, so other generator objects are named by their path here.
    name = getattr(run, "label", None) or Path(run.path).name
    title = f"{name} step {run.step}: strongest channels (mean |activation|) of each conv layer"
    plot_activation_maps(sections, path, top_k=top_k, title=title)
    return Path(path)


__all__ = ["activation_maps", "channel_scores", "conv_layers", "internals_figure",
           "plot_activation_maps", "top_channels"]
