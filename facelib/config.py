"""The training configuration: one validated dataclass, presets, and JSON round-trips.

Every run folder holds the ``config.json`` that made it, which is enough to rebuild its models.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import numbers
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from facelib.errors import FacelibError
from facelib.limits import limit, over_limit

RESOLUTIONS = (32, 64, 128)
LOSSES = ("ns", "hinge", "wgan-gp")
AUGMENTS = ("none", "diffaugment")
ARCHITECTURES = ("dcgan", "resnet")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
PROJECTIONS = ("random", "zeros", "off")
# DiffAugment's three, and ADA's scale + rotation + fractional translation ("geometric")
DIFFAUGMENT_OPS = ("color", "translation", "cutout", "geometric")


@dataclass
class Config:
    """Everything that defines a GAN training run.

    Widths are the channel count of the widest (lowest-resolution) block: the Radford et al.
    layout halves channels as the resolution doubles (G 512-256-128-64 at 64 px for width 512).
    """

    resolution: int = 64
    architecture: str = "dcgan"  # "dcgan" (Radford et al.) or "resnet" (SNGAN's residual nets)
    latent_dim: int = 100
    g_width: int = 512
    d_width: int = 512
    conditional: bool = False
    num_attributes: int = 40
    # AC-GAN (Odena et al. 2017) beside the projection (or alone, projection="off"): D also
    # predicts the attributes (a second head), learnt on real faces; G is pushed to make its
    # faces' attributes readable. On an unconditional run the head is D's alone: it learns the
    # labels of real faces and G, which is given none, gets no attribute term (a D whose
    # features must carry what CelebA's annotators saw; the labels shape D, not G's input).
    attribute_loss: float = 0.0
    # AC-GAN's loss per attribute as balanced cross-entropy: its present rows weighted by
    # 0.5 / p and its absent rows by 0.5 / (1 - p) (p its share of the training rows, each weight
    # at most 10), so the head is trained, and G pushed, for balanced accuracy (what `control`
    # scores) instead of for CelebA's mix, where a hat is in 5% of the rows and the plain loss
    # is as low as it gets by never drawing one. The weights average 1 over the rows.
    balanced_attribute_loss: bool = False
    # D's projection term <embed(y), h> (conditional runs): "random", its embedding drawn by
    # the architecture's own initialiser (DCGAN's N(0, 0.02), Glorot in resnet); "zeros", the
    # embedding starting at zero, so D starts as the unconditional D and learns the term from
    # its gradient, as G's conditional BatchNorm starts as plain BatchNorm (a random
    # 40-attribute embedding makes the term several times D's other logit at the first step);
    # or "off": no projection term (its embedding held at zero, frozen), D's real/fake logit is
    # the unconditional one and AC-GAN's attribute head (attribute_loss) is its only use of the
    # attributes.
    projection: str = "random"
    # Conditional runs: training rows holding one of these attributes, where it is rarer than
    # balance_share, are drawn more often (facelib.data.pipeline.rare_attribute_weights).
    # Empty: rows are drawn as the data has them.
    balance_attributes: tuple[str, ...] = ()
    balance_share: float = 0.15
    spectral_norm: bool = False
    loss: str = "ns"
    gp_weight: float = 10.0
    # R1 (Mescheder et al. 2018): gamma/2 * |grad_x D(x)|^2 on real faces, added to D's loss.
    # Lazy as in StyleGAN2: computed every r1_every steps, scaled by r1_every. r1_gamma 0: off.
    r1_gamma: float = 0.0
    r1_every: int = 16
    # LeCam (Tseng et al. 2021): lecam_weight * (relu(D(x) - a_fake)^2 + relu(a_real - D(G(z)))^2)
    # added to D's loss, a_real and a_fake the moving averages (decay lecam_decay) of D's mean
    # logit on real and on fake faces. It keeps D's outputs from drifting apart when D starts to
    # memorise a small training set; made to work beside augmentation. 0: off.
    lecam_weight: float = 0.0
    lecam_decay: float = 0.99
    # StyleGAN's minibatch standard deviation (facelib.models.minibatch_std): D's lowest
    # resolution gets one more channel, how much its features vary over groups of this many
    # faces, so a batch of near-copies looks fake. 0: off; StyleGAN2-ADA's group: 4.
    minibatch_std: int = 0
    # Self-modulation (Chen et al. 2019): every BatchNorm of G gets a scale and shift linear in
    # a hidden layer of this many ReLU units computed from z (the paper's 32), as conditional
    # BatchNorm has them linear in the attributes; they start at zero, so G starts as without
    # it. Each layer then sees which face it is drawing, not only the one above it. 0: off.
    self_modulation: int = 0
    # A frozen pretrained network whose feature maps D also reads, through heads of its own
    # (Projected GANs, Sauer et al. 2021; facelib.models.projected): "" (off), or an attribute
    # classifier at the run's resolution, "pretrained:celeba32-attributes" or a folder written
    # by train-classifier.
    d_features: str = ""
    n_critic: int = 1
    g_lr: float = 2e-4
    d_lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    batch_size: int = 64
    steps: int = 10000
    augment: str = "none"
    # Applied in this order to real and fake faces before D (facelib.training.augment).
    diffaugment_policy: tuple[str, ...] = ("color", "translation", "cutout")
    # ADA (Karras et al. 2020) over DiffAugment's ops: each op is applied to an image with
    # probability p, which rises while D's sign on real faces, E[sign D(x)], is above ada_target
    # (ADA's 0.6) and falls below it, by at most 1 per ada_kimg thousand images (0: off, p = 1).
    ada_target: float = 0.0
    ada_kimg: float = 100.0
    flip: bool = True
    ema_decay: float = 0.999
    ema_rampup: bool = False  # decay min(ema_decay, (1+step)/(10+step)): early EMA not stuck at init
    # > 0: Karras et al. 2024's power-function EMA instead of the ramp, decay
    # min(ema_decay, (1 - 1/t)^(ema_power + 1)) at the t-th update: the average spans a fixed
    # share of the run however long it lasts (the ramp behaves like ema_power 8, a shorter one).
    ema_power: float = 0.0
    # Latents over which the EMA generator's BatchNorm statistics are measured each time it is
    # saved or sampled (BigGAN's standing statistics: facelib.models.standing_statistics);
    # 0 keeps G's moving statistics, which describe another network's activations.
    standing_statistics: int = 0
    mixed_precision: bool = False  # legacy input: true reads as precision="mixed_float16"
    precision: str = "float32"  # "float32", "mixed_float16" (GPUs) or "mixed_bfloat16" (AMX/TPU)
    jit_compile: bool = False
    seed: int = 0
    log_every: int = 50
    checkpoint_every: int = 500
    epoch_steps: int = 0  # steps per Keras epoch (one sample grid each); 0: one pass over the data
    keep_checkpoints: int = 2
    sample_grid: int = 64  # faces in the fixed-seed grid
    kid_every: int = 0  # epochs between KID measurements (0: off); the best KID -> checkpoints/best
    kid_samples: int = 1000  # generated faces per measurement (and held-out real faces at most)
    kid_network: str = "standard"  # "standard" (FID Inception) or "test" (random net, NOT comparable)

    def __post_init__(self) -> None:
        for name in TUPLE_FIELDS:
            if isinstance(getattr(self, name), (list, tuple)):
                setattr(self, name, tuple(getattr(self, name)))
        # Runs from before `precision` existed said mixed_precision=true for float16: read it
        # once into `precision`, which alone decides from then on (so replace(precision=...)
        # is never overruled by a stale switch).
        if self.mixed_precision is True:
            if self.precision == "float32":
                self.precision = "mixed_float16"
            self.mixed_precision = False
        self.validate()

    def validate(self) -> None:
        def bad(name: str, allowed: str) -> None:
            raise FacelibError(
                f"config field '{name}' = {getattr(self, name)!r:.80} is invalid: allowed {allowed}"
            )

        # Types first (a config.json edited by hand may hold anything JSON can): the range
        # checks below may then compare and convert freely.
        for name, hint in _field_types().items():
            value = getattr(self, name)
            if hint is bool and not isinstance(value, bool):
                bad(name, "true or false")
            if hint is int and (not isinstance(value, int) or isinstance(value, bool)):
                bad(name, "an integer")
            if hint is float and (not isinstance(value, numbers.Real) or isinstance(value, bool)
                                  or not math.isfinite(value)):
                bad(name, "a finite number")
            if hint is str and not isinstance(value, str):
                bad(name, "a string")
            if name in TUPLE_FIELDS and not (
                    isinstance(value, tuple) and all(isinstance(v, str) for v in value)):
                bad(name, "a list of names" + (f" from {DIFFAUGMENT_OPS}"
                                               if name == "diffaugment_policy" else ""))

        if self.resolution not in RESOLUTIONS:
            bad("resolution", f"one of {RESOLUTIONS}")
        if self.loss not in LOSSES:
            bad("loss", f"one of {LOSSES}")
        if self.architecture not in ARCHITECTURES:
            bad("architecture", f"one of {ARCHITECTURES}")
        if self.precision not in PRECISIONS:
            bad("precision", f"one of {PRECISIONS}")
        if self.augment not in AUGMENTS:
            bad("augment", f"one of {AUGMENTS}")
        if any(op not in DIFFAUGMENT_OPS for op in self.diffaugment_policy):
            bad("diffaugment_policy", f"a subset of {DIFFAUGMENT_OPS}")
        positive_ints = ("latent_dim", "g_width", "d_width", "batch_size", "steps", "n_critic",
                         "log_every", "checkpoint_every", "keep_checkpoints", "sample_grid",
                         "num_attributes", "r1_every")
        for name in positive_ints:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                bad(name, "a positive integer")
        for name in ("g_width", "d_width"):
            if getattr(self, name) < 8 or getattr(self, name) % 8:
                bad(name, "a multiple of 8, at least 8 (it is halved per upsampling block)")
        if not isinstance(self.epoch_steps, int) or self.epoch_steps < 0:
            bad("epoch_steps", "0 (one pass over the data) or a positive integer")
        for name in ("g_lr", "d_lr"):
            if not 0 < float(getattr(self, name)) < 1:
                bad(name, "a float in (0, 1)")
        for name in ("beta1", "beta2"):
            if not 0 <= float(getattr(self, name)) < 1:
                bad(name, "a float in [0, 1)")
        if not 0 <= float(self.ema_decay) < 1:
            bad("ema_decay", "a float in [0, 1) (0 disables the EMA generator)")
        if int(self.standing_statistics) < 0:
            bad("standing_statistics", "a count of latents >= 0 (0: off; e.g. 1024)")
        if self.standing_statistics and not self.ema_decay:
            bad("standing_statistics", "0 unless ema_decay > 0 (they are the EMA generator's)")
        if float(self.ema_power) < 0:
            bad("ema_power", "a float >= 0 (0: off; e.g. 4)")
        if self.ema_power and not self.ema_decay:
            bad("ema_power", "0 unless ema_decay > 0 (it sets the EMA generator's decay)")
        if self.ema_power and self.ema_rampup:
            bad("ema_rampup", "false when ema_power > 0 (each is a rule for the EMA's decay; the "
                "power rule starts from G itself)")
        if float(self.attribute_loss) < 0:
            bad("attribute_loss", "a float >= 0 (0: off)")
        if self.balanced_attribute_loss and self.attribute_loss <= 0:
            bad("balanced_attribute_loss", "false unless attribute_loss > 0 (it weights AC-GAN's "
                "attribute loss)")
        if not 0 < float(self.balance_share) < 1:
            bad("balance_share", "a fraction in (0, 1), e.g. 0.15")
        if self.balance_attributes and not self.conditional:
            bad("balance_attributes", "empty for an unconditional run (it reweights attributes "
                "the generator is conditioned on)")
        if float(self.gp_weight) < 0:
            bad("gp_weight", "a float >= 0")
        if float(self.r1_gamma) < 0:
            bad("r1_gamma", "a float >= 0 (0: off; StyleGAN2-ADA's heuristic at 32 px, "
                "batch 32: 0.0064)")
        if float(self.lecam_weight) < 0:
            bad("lecam_weight", "a float >= 0 (0: off; the LeCam paper's BigGAN runs: 0.3)")
        if self.projection not in PROJECTIONS:
            bad("projection", f"one of {PROJECTIONS}")
        if self.projection == "zeros" and self.architecture == "resnet" and self.spectral_norm:
            bad("projection", "'random' or 'off' with spectral_norm in resnet (spectral norm "
                "divides by the largest singular value, 0 for a zero matrix)")
        if self.projection == "off" and self.conditional and self.attribute_loss <= 0:
            bad("projection", "'random' or 'zeros' unless attribute_loss > 0 (without either, "
                "D never reads the attributes)")
        if self.self_modulation < 0:
            bad("self_modulation", "0 (off) or the hidden units from z to G's BatchNorms "
                "(the paper's 32)")
        if self.minibatch_std == 1 or self.minibatch_std < 0:
            bad("minibatch_std", "0 (off) or a group size >= 2 (StyleGAN2-ADA's 4)")
        if self.minibatch_std and self.batch_size % self.minibatch_std:
            bad("minibatch_std", f"a group size that divides batch_size ({self.batch_size}), "
                "e.g. 4")
        if self.d_features and not self.d_features.strip():
            bad("d_features", "'' (off), pretrained:celeba32-attributes or a classifier folder")
        if not 0 <= float(self.lecam_decay) < 1:
            bad("lecam_decay", "a float in [0, 1) (the LeCam paper's 0.99)")
        if not 0 <= float(self.ada_target) < 1:
            bad("ada_target", "a float in [0, 1) (0: off; ADA's 0.6)")
        if self.ada_target > 0 and self.augment != "diffaugment":
            bad("ada_target", "0 unless augment='diffaugment' (ADA sets how often its ops apply)")
        if self.ada_target > 0 and self.n_critic > 4:
            bad("ada_target", "0 with n_critic above 4 (the step's random streams run out)")
        if float(self.ada_kimg) <= 0:
            bad("ada_kimg", "a positive number of thousands of images, e.g. 100")
        if not isinstance(self.seed, int) or self.seed < 0:
            bad("seed", "a non-negative integer")
        if not isinstance(self.kid_every, int) or isinstance(self.kid_every, bool) or self.kid_every < 0:
            bad("kid_every", "0 (off) or a positive number of epochs")
        if not isinstance(self.kid_samples, int) or self.kid_samples < 4:
            bad("kid_samples", "an integer >= 4")
        if self.kid_network not in ("standard", "test"):
            bad("kid_network", "'standard' or 'test'")

    # -- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for name in TUPLE_FIELDS:
            d[name] = list(getattr(self, name))
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Config":
        if not isinstance(d, dict):
            raise FacelibError(f"a config must be a JSON object of field: value pairs, got a "
                               f"{type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise FacelibError(
                f"unknown config field(s) {unknown}; valid fields are {sorted(known)}"
            )
        return cls(**d)

    def replace(self, **changes: Any) -> "Config":
        """A copy with some fields changed, validated (unknown fields raise FacelibError)."""
        return Config.from_dict({**self.to_dict(), **changes})

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "Config":
        """Read a config.json; any problem (missing, not JSON, unknown or invalid fields) is one
        FacelibError line that names the file and the fix. Nothing else in the run is touched."""
        path = Path(path)
        if not path.exists():
            raise FacelibError(f"{path} not found: is this a facelib run folder?")
        try:
            size = path.stat().st_size
            if size > limit("FACELIB_MAX_JSON_BYTES"):
                raise over_limit("FACELIB_MAX_JSON_BYTES", f"{path}: its size", size)
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as e:  # JSON and UTF-8 errors are ValueErrors
            raise FacelibError(
                f"{path} is not a readable JSON config ({str(e).splitlines()[0][:160]}): restore "
                "it from a copy, or rewrite it with facelib.Config(...).save(path); the run's "
                "checkpoints are untouched") from None
        try:
            return cls.from_dict(data)
        except FacelibError as e:
            raise FacelibError(f"{path}: {e}. Fix or remove that entry in the file (the run's "
                               "checkpoints are untouched)") from None


TUPLE_FIELDS = ("diffaugment_policy", "balance_attributes")  # lists of names in config.json


@functools.lru_cache(maxsize=1)
def _field_types() -> dict[str, Any]:
    return typing.get_type_hints(Config)


# The small DCGAN of the CPU presets, at 32x32, with DiffAugment (on every face unless ADA is on).
_CPU_DCGAN = dict(resolution=32, latent_dim=64, g_width=128, d_width=128, batch_size=32,
                  steps=1500, augment="diffaugment", log_every=50, checkpoint_every=250,
                  epoch_steps=250, sample_grid=64)
# The cpu recipe: DiffAugment's ops plus ADA's geometric op, each applied with ADA's adaptive
# probability, and a slow EMA of G with ramp-up; and it at twice the widths.
_CPU_RECIPE = dict(_CPU_DCGAN, ada_target=0.6,
                   diffaugment_policy=("color", "translation", "geometric", "cutout"),
                   ema_decay=0.999, ema_rampup=True)
# ... and the EMA generator saved with standing BatchNorm statistics over 1,024 latents (README,
# Benchmarks: KID 0.94x on 9 runs of cpu-wide at 20 minutes, 0.92x on 4 of its conditional
# recipe; lower for 12 of the 13).
_CPU_WIDE = dict(_CPU_RECIPE, g_width=256, d_width=256, standing_statistics=1024)
# Saving and epoch lengths of the conditional presets, whose runs last tens of thousands of steps.
_LONG_RUN = dict(checkpoint_every=1000, epoch_steps=500)
# How a run conditions on the 40 attributes, the measured way (cpu-wide-conditional's recipe,
# whose comment has the numbers): conditional BatchNorm in G, no projection term in D, and
# AC-GAN's attribute head at three times its weight with its loss balanced per attribute. With
# conditional=True alone, D is a projection discriminator without AC-GAN's head: control
# 0.55-0.58 over the 40 attributes in #10's first runs; with the head at weight 1 beside the
# projection, KID 0.021 at 20 minutes where this recipe reads 0.0087 (cpu-wide widths).
# `train --conditional`, conditional_preset() and notebook 04 use it.
CONDITIONING = dict(conditional=True, projection="off", attribute_loss=3.0,
                    balanced_attribute_loss=True)

PRESETS: dict[str, dict[str, Any]] = {
    # CPU, seconds: tiny widths at 32x32, for tests, CI and notebooks' smoke profile.
    "smoke": dict(resolution=32, latent_dim=32, g_width=64, d_width=64, batch_size=16, steps=20,
                  log_every=5, checkpoint_every=10, sample_grid=16, ema_decay=0.9),
    # CPU, minutes: 32x32 faces worth looking at from the bundled sample. DiffAugment for small
    # data plus ADA's geometric op, each applied with ADA's adaptive probability, and a slow EMA
    # of G with ramp-up. On celeba-8k at 20 CPU-minutes (2 cores, benchmarks/bench_quality.py):
    # KID 0.015 against 0.020 for ADA over DiffAugment's ops with EMA 0.99 (cpu-ada), which beat
    # DiffAugment on every face (cpu-diffaugment) 0.020 to 0.031 at 10 minutes.
    "cpu": _CPU_RECIPE,
    # The cpu preset at twice the widths (256 channels at G's and D's 4x4): the best 32 px
    # recipe measured per CPU-minute on celeba-8k (benchmarks/bench_quality.py, 2 cores of a Xeon
    # with AMX, bfloat16): KID 0.014 at 20 and 40 minutes against cpu's 0.017 and 0.021 (cpu gets
    # worse past 20 as ADA's p climbs to 0.86), recall 0.28 at 40. 1.9x cpu's CPU per step in
    # bfloat16 on AMX, 2.5x in float32, so add --precision mixed_bfloat16 where the CPU has
    # bfloat16 units; without them it is unmeasured. For thousands of faces or more. Over three
    # seeds each at 20 minutes: KID 0.0144 against cpu's 0.0179, lower with every seed (Welch
    # p 0.10; one recipe's seeds differ by up to 0.008). With --set d_width=128, the recipe of
    # the pretrained:celeba32 shipped before: level in KID at 20 minutes, recall 0.32 against
    # 0.25, far behind at 10. All of that at DCGAN's learning rates (2e-4, still _CPU_WIDE's);
    # twice them (4e-4 for G and D) then beat it at 20 minutes over three seeds on an AMD EPYC
    # with AVX512-BF16: KID 0.74 of the 2e-4 runs' (Welch p 0.06), recall 0.32 against 0.20,
    # FID 34.7 against 41.4, and 0.76 at 10 minutes; four times them (8e-4, two seeds) was
    # level with 4e-4. ADA's p stays near 0 to step 7,000 and below 0.25 at 20 minutes (2e-4:
    # 0.2-0.4 and 0.5-0.6): D grows less sure of the real faces, so the faces it learns from are
    # less often augmented. The recipe of pretrained:celeba32 (its seed-0 run at 40 minutes);
    # reproduce the networks trained before with --set g_lr=2e-4 --set d_lr=2e-4. Its EMA generator
    # is saved with standing BatchNorm statistics (standing_statistics=1024), which every network
    # shipped so far predates (--set standing_statistics=0 reproduces them). With statistics of
    # its own, the EMA generator is better for a longer average: the power-function EMA with
    # gamma 4 (ema_power=4; 0.9999 binds only from step 50,000) in place of the ramp capped at
    # 0.999. Paired on the same runs (README, Benchmarks): KID 0.96x at 20 minutes over four
    # seeds and 0.78-0.82x at 40 over two. The networks shipped so far used the ramp (--set
    # ema_decay=0.999 --set ema_rampup=true --set ema_power=0). Training never reads the EMA
    # generator, so only what is saved changes.
    "cpu-wide": dict(_CPU_WIDE, g_lr=4e-4, d_lr=4e-4, ema_decay=0.9999, ema_rampup=False,
                     ema_power=4.0),
    # The cpu preset before ADA: DiffAugment on every face, EMA 0.99. The recipe of the earlier
    # pretrained:celeba32 networks and of the detector's dcgan families, kept so their commands
    # reproduce.
    "cpu-diffaugment": dict(_CPU_DCGAN, ema_decay=0.99),
    # A free Colab T4: the Radford et al. 64x64 DCGAN, fp16, DiffAugment off (CelebA is large).
    "colab": dict(resolution=64, latent_dim=100, g_width=512, d_width=512, batch_size=128,
                  steps=30000, precision="mixed_float16", jit_compile=True, log_every=100,
                  checkpoint_every=1000, ema_decay=0.999),
    # CPU, minutes: attribute control at widths 128 (the recipe of an earlier
    # pretrained:celeba32-cond; cpu-wide-conditional beats it, below). The cpu preset's
    # DCGAN, conditional, with AC-GAN's attribute head (balanced control accuracy 0.66 over the
    # 40 attributes against 0.55-0.58 without it), spectral norm and hinge loss, two time-scale
    # learning rates (Adam b1=0, b2=0.9), an EMA of G with ramp-up, DiffAugment. Add
    # --precision mixed_bfloat16 on CPUs with bfloat16 units (AMX, AVX512-BF16). 48,000 steps
    # (about 40 minutes on 2 cores in bfloat16): the reference network's; at 16,000 its KID and
    # control were clearly worse (assets/pretrained/README.md); --minutes stops it earlier.
    "cpu-conditional": dict(_CPU_DCGAN, conditional=True, attribute_loss=1.0,
                            spectral_norm=True, loss="hinge", g_lr=1e-4, d_lr=4e-4, beta1=0.0,
                            beta2=0.9, ema_decay=0.999, ema_rampup=True, **_LONG_RUN,
                            steps=48000),
    # CPU, tens of minutes: attribute control at cpu-wide's quality. cpu-wide made conditional:
    # conditional BatchNorm in G and AC-GAN's attribute head in D at three times its weight, its
    # loss balanced cross-entropy (each attribute's present rows weighted 0.5/p, absent 0.5/(1-p)),
    # and no projection term, on cpu-wide's non-saturating loss, ADA and slow EMA, at DCGAN's 2e-4.
    # On celeba-8k at 20 CPU-minutes (benchmarks/bench_quality.py cond-wide-acgan-al3-wbce, 2
    # cores of an AMD EPYC with AVX512-BF16, bfloat16, seeds 0-2): KID 0.0087 +- 0.0006, 0.78 of
    # cpu-wide's trained beside it, recall 0.30, and balanced control accuracy no more than 0.01
    # below the attribute classifier's on real faces for each of Male, Smiling, Eyeglasses,
    # Blond_Hair, Black_Hair, Young, Wearing_Hat and Bald (#10's conditional goal, on every
    # seed): asked for a hat, 74-84% of faces wear one (real hats: 73%). Each lever alone fell
    # short: with the projection (the recipe before, and that of the celeba32-cond shipped
    # before this one: --set projection=random --set attribute_loss=1 --set
    # balanced_attribute_loss=false) KID 0.021 at 20 minutes; without it at weight 1, hats in
    # 21%; weight 3 or the balanced loss alone, hats in 57-62%. 42,000 steps: about 40 minutes
    # on 2 cores in bfloat16 (add --precision mixed_bfloat16 where the CPU has bfloat16 units);
    # --minutes stops it earlier. pretrained:celeba32-cond is this recipe's seed-0 run at 40
    # CPU-minutes (30,134 steps).
    "cpu-wide-conditional": dict(_CPU_WIDE, **CONDITIONING, **_LONG_RUN, steps=42000),
    # Small data (e.g. the bundled 500-face sample or a few thousand faces): DiffAugment + SN.
    "small-data": dict(resolution=64, g_width=256, d_width=256, batch_size=32, steps=5000,
                       augment="diffaugment", spectral_norm=True, loss="hinge",
                       checkpoint_every=500, ema_decay=0.995),
}


def preset(name: str, **overrides: Any) -> Config:
    """A preset config, with any field overridden."""
    if name not in PRESETS:
        raise FacelibError(f"unknown preset '{name}': choose one of {sorted(PRESETS)}")
    return Config.from_dict({**Config().to_dict(), **PRESETS[name], **overrides})


def conditional_preset(name: str, **overrides: Any) -> Config:
    """Preset ``name`` conditioned on the attributes the measured way (``CONDITIONING``), with
    ``overrides`` on top. A preset that is conditional already (``cpu-conditional``,
    ``cpu-wide-conditional``) keeps its own recipe: it was measured as it is."""
    if name in PRESETS and PRESETS[name].get("conditional"):
        return preset(name, **overrides)
    return preset(name, **{**CONDITIONING, **overrides})
