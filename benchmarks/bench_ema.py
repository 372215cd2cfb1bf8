"""EMA rules, measured paired: one training run keeps several exponential moving averages of its
own G, each under another decay rule, and exports every one at the same CPU-time marks.

Training never reads the EMA generator, so each export is exactly what a run with that rule
would have saved at that mark: the rules differ on the same G trajectory, not on another seed's
luck. The built-in EMA generator (the preset's own rule) is exported beside them as ``preset``;
the export of the rule equal to it should match it to 0.0 (printed as a check). Exports keep
G's BatchNorm statistics, as runs saved before ``standing_statistics``; measure them with
``bench_standing_statistics.py``, which scores each both as exported and with standing
statistics (the protocol of ``bench_quality.py``: n = 1,000 against held-out faces):

    python benchmarks/bench_ema.py --data caches/celeba8k-64 --out ema-s4 --seed 4 \\
        --budgets 10,20,40
    python benchmarks/bench_standing_statistics.py --data caches/celeba8k-64 --out ema-s4/eval \\
        ema-s4/ramp-0.999-40min.keras ema-s4/power-4-40min.keras ...

Budgets are minutes on ``--cores`` fully used cores, counted as the process's own CPU time (as
``bench_quality.py`` counts them), less the time the extra averages themselves cost. Run one
process per core with ``TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1`` to train two seeds
at once on two cores.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# name -> (kind, parameter): "ramp" is config.ema_rampup's min(cap, (1+s)/(10+s)) ("uncapped":
# 0.9999, which binds only from step 90,000); "power" is config.ema_power's
# (1 - 1/(s+1))^(gamma+1), capped at 0.9999 (cpu-wide's ema_decay).
RULES = {"ramp-0.998": ("ramp", 0.998), "ramp-0.999": ("ramp", 0.999),
         "ramp-0.9995": ("ramp", 0.9995), "ramp-uncapped": ("ramp", 0.9999),
         "power-2": ("power", 2.0), "power-4": ("power", 4.0), "power-16": ("power", 16.0)}
POWER_CAP = 0.9999


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="a prepared cache (python -m facelib prepare)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--preset", default="cpu-wide")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--budgets", default="10,20,40", help="minutes, e.g. 10,20,40")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--rules", default="ramp-0.999,ramp-0.9995,ramp-uncapped,power-4,power-2",
                    help=f"comma-separated, of {sorted(RULES)}")
    args = ap.parse_args()
    rules = [r for r in args.rules.split(",") if r]
    unknown = [r for r in rules if r not in RULES]
    if unknown:
        raise SystemExit(f"unknown EMA rule '{unknown[0]}': choose from {sorted(RULES)}")
    try:
        budgets = sorted(float(b) for b in args.budgets.split(","))
    except ValueError:
        raise SystemExit(f"--budgets {args.budgets!r}: give minutes separated by commas, "
                         "e.g. 10,20,40") from None
    import keras
    import tensorflow as tf

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_quality import _bf16  # the same precision as the benchmark's candidates

    from facelib.config import preset
    from facelib.models import build_generator
    from facelib.run.interface import build_float32
    from facelib.run.train import train
    from facelib.training.gan import ema_decay

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    marks = [60.0 * b * args.cores for b in budgets]
    cfg = preset(args.preset, precision=_bf16(), steps=10 ** 8, checkpoint_every=10 ** 8,
                 epoch_steps=500, kid_every=0, seed=args.seed, standing_statistics=0)

    def rule_config(rule: str):
        """The config whose own EMA is this rule: facelib.training.gan.ema_decay then computes
        its decay exactly as training would."""
        kind, value = RULES[rule]
        if kind == "ramp":
            return cfg.replace(ema_decay=value, ema_rampup=True, ema_power=0.0)
        return cfg.replace(ema_decay=POWER_CAP, ema_rampup=False, ema_power=value)

    rule_configs = {r: rule_config(r) for r in rules}

    class Averages(keras.callbacks.Callback):
        """The rules' averages of G, updated after every step as GAN._update_ema updates its
        own (from the step before the increment), exported at the marks."""

        def on_train_begin(self, logs=None):
            if hasattr(self, "shadows"):  # train() may call fit again: the averages go on
                return
            self.start, self.own, self.done = time.process_time(), 0.0, 0
            g = self.model.generator
            self.shadows = {r: [tf.Variable(tf.cast(v.value, tf.float32))
                                for v in g.trainable_variables] for r in rules}
            values = [v.value for v in g.trainable_variables]

            @tf.function
            def update(s):
                for r in rules:
                    d = ema_decay(rule_configs[r], s)
                    for e, v in zip(self.shadows[r], values):
                        e.assign(d * e + (1.0 - d) * tf.cast(v, tf.float32))

            self.update = update

        def export(self, variables, non_trainables, path):
            net = build_float32(build_generator, cfg)
            for dst, src in zip(net.trainable_variables, variables):
                dst.assign(tf.cast(src, tf.float32))
            for dst, src in zip(net.non_trainable_variables, non_trainables):
                dst.assign(tf.cast(src.value, tf.float32))
            net.save(path)

        def on_train_batch_end(self, batch, logs=None):
            t = time.process_time()
            step = int(self.model.step.numpy())
            self.update(tf.constant(step - 1, tf.int64))
            if t - self.start - self.own >= marks[self.done]:
                minutes = budgets[self.done]
                g, ema = self.model.generator, self.model.ema_generator
                for r in rules:
                    self.export(self.shadows[r], g.non_trainable_variables,
                                out / f"{r}-{minutes:g}min.keras")
                self.export([v.value for v in ema.trainable_variables],
                            ema.non_trainable_variables, out / f"preset-{minutes:g}min.keras")
                row = {"minutes": minutes, "step": step}
                for r in rules:  # the rule equal to the preset's reads 0.0 here
                    row[f"{r}_vs_preset_maxabs"] = max(
                        float(tf.reduce_max(tf.abs(a - tf.cast(b.value, tf.float32))))
                        for a, b in zip(self.shadows[r], ema.trainable_variables))
                print(json.dumps(row), flush=True)
                with open(out / "marks.jsonl", "a") as f:
                    f.write(json.dumps(row) + "\n")
                self.done += 1
                if self.done == len(marks):
                    self.model.stop_training = True
            self.own += time.process_time() - t

    train(cfg, out / "run", data=args.data, callbacks=[Averages()], verbose=0)


if __name__ == "__main__":
    sys.exit(main())
