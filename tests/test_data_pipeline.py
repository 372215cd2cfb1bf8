"""The tf.data pipeline: exact batch contents, determinism, resumption, flips, distribution."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facelib.data.cache import FaceCache
from facelib.data.pipeline import batch_plan, gather, make_dataset, steps_per_epoch
from facelib.data.prepare import prepare
from facelib.errors import FacelibError
from facelib.images import to_float

FIXTURE = Path(__file__).parent / "fixtures" / "celeba-tiny"
B = 4  # the fixture's train split has 19 images: 4 full batches per epoch


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> FaceCache:
    out = tmp_path_factory.mktemp("pipeline") / "cache32"
    prepare(FIXTURE, out, 32, progress=False)
    return FaceCache.open(out)


def batches(ds, n):
    return [(x.numpy(), a.numpy()) for x, a in ds.take(n)]


# ------------------------------------------------------------------------------- the plan (numpy)


def test_each_epoch_is_a_permutation_of_the_split(cache):
    train = cache.indices("train")
    plan = list(batch_plan(train, B, seed=3, repeat=False))
    assert len(plan) == steps_per_epoch(cache, B) == 4
    rows = np.concatenate([r for r, _ in plan])
    assert len(set(rows.tolist())) == 16 and set(rows.tolist()) <= set(train.tolist())
    repeated = batch_plan(train, B, seed=3)  # repeat=True: the same first epoch, then more
    assert all(np.array_equal(next(repeated)[0], r) for r, _ in plan)
    assert len(set(np.concatenate([next(repeated)[0] for _ in range(4)]).tolist())) == 16


def test_plan_start_step_equals_skipping_steps(cache):
    train = cache.indices("train")
    fresh = batch_plan(train, B, seed=7)
    reference = [next(fresh) for _ in range(14)]  # crosses three epoch boundaries
    for k in (0, 1, 4, 5, 9):
        resumed = batch_plan(train, B, seed=7, start_step=k)
        for want in reference[k:]:
            got = next(resumed)
            assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
    epochs = [np.concatenate([r for r, _ in reference[e * 4:(e + 1) * 4]]) for e in range(3)]
    assert not np.array_equal(epochs[0], epochs[1])  # reshuffled every epoch


def test_plan_rejects_bad_arguments(cache):
    with pytest.raises(FacelibError, match="fewer than one batch of 32"):
        next(batch_plan(cache.indices("train"), 32))
    with pytest.raises(FacelibError, match="start_step must be >= 0"):
        next(batch_plan(cache.indices("train"), B, start_step=-1))


def test_rare_attribute_weights_lift_rare_attributes_to_the_share():
    from facelib.data.pipeline import rare_attribute_weights

    # 100 rows; attribute 0 on 5 rows (5%), attribute 1 on 40 rows, attribute 2 on 1 row
    a = np.zeros((100, 3), np.int8)
    a[:5, 0] = 1
    a[50:90, 1] = 1
    a[99, 2] = 1
    w = rare_attribute_weights(a, 0.2, cap=10)
    assert np.allclose(w[:5], 0.2 / 0.05) and np.allclose(w[50:90], 1.0)
    assert w[99] == 10  # 0.2 / 0.01 = 20, capped
    assert np.allclose(w[5:50], 1.0)
    p = w / w.sum()
    assert p[:5].sum() == pytest.approx(20 / (20 + 10 + 94))  # 5 rows x 4 of 124 in all
    with pytest.raises(FacelibError, match="fraction in"):
        rare_attribute_weights(a, 0)
    with pytest.raises(FacelibError, match=r"\(N, A\)"):
        rare_attribute_weights(np.zeros(5), 0.2)


def test_weighted_plan_draws_in_proportion_deterministically_and_resumes_exactly(cache):
    train = cache.indices("train")
    weights = np.ones(len(train))
    weights[0] = 30.0  # one face drawn about 30 / 48 of the time
    plan = batch_plan(train, B, seed=2, weights=weights)
    rows = np.concatenate([next(plan)[0] for _ in range(400)])
    share = np.mean(rows == train[0])
    assert 0.55 < share < 0.70
    assert set(rows.tolist()) <= set(train.tolist())
    again = batch_plan(train, B, seed=2, weights=weights)
    fresh = [next(again) for _ in range(10)]
    resumed = batch_plan(train, B, seed=2, weights=weights, start_step=6)
    for want in fresh[6:]:
        got = next(resumed)
        assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
    uniform = batch_plan(train, B, seed=2)
    assert not all(np.array_equal(next(uniform)[0], f[0]) for f in fresh[:4])
    with pytest.raises(FacelibError, match="one per row of the split"):
        next(batch_plan(train, B, weights=np.ones(3)))
    with pytest.raises(FacelibError, match="finite non-negative"):
        next(batch_plan(train, B, weights=-np.ones(len(train))))


def test_gather_returns_rows_in_the_requested_order(cache):
    rows = np.array([17, 2, 9, 2])
    assert np.array_equal(gather(cache.images, rows), np.asarray(cache.images)[rows])


# ------------------------------------------------------------------------------- tf.data


def test_batches_hold_exactly_the_planned_images(cache):
    ds = make_dataset(cache, B, seed=1, flip=True)
    plan = batch_plan(cache.indices("train"), B, seed=1, flip=True)
    images = np.asarray(cache.images)
    flipped_any = False
    for x, a in batches(ds, 6):
        rows, flips = next(plan)
        want = to_float(images[rows])
        want[flips] = want[flips][:, :, ::-1]
        flipped_any |= bool(flips.any())
        assert x.shape == (B, 32, 32, 3) and x.dtype == np.float32
        np.testing.assert_array_equal(x, want)
        assert a.dtype == np.float32 and a.shape == (B, 40)
        np.testing.assert_array_equal(a, cache.attributes[rows].astype(np.float32))
        assert x.min() >= -1.0 and x.max() <= 1.0 and set(np.unique(a)) <= {0.0, 1.0}
    assert flipped_any


def test_same_seed_same_batches_other_seed_other_batches(cache):
    one, two = batches(make_dataset(cache, B, seed=0), 5), batches(make_dataset(cache, B, seed=0), 5)
    assert all(np.array_equal(p[0], q[0]) and np.array_equal(p[1], q[1]) for p, q in zip(one, two))
    other = batches(make_dataset(cache, B, seed=1), 5)
    assert not all(np.array_equal(p[0], q[0]) for p, q in zip(one, other))


@pytest.mark.parametrize("k", [3, 6])
@pytest.mark.slow
def test_start_step_resumes_where_an_uninterrupted_run_would_be(cache, k):
    fresh = batches(make_dataset(cache, B, seed=2), k + 3)
    resumed = batches(make_dataset(cache, B, seed=2, start_step=k), 3)
    for (x, a), (y, b) in zip(fresh[k:], resumed):
        np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(a, b)


def test_flip_mirrors_some_images_and_only_mirrors(cache):
    plain = batches(make_dataset(cache, B, seed=4, flip=False), 4)
    flipped = batches(make_dataset(cache, B, seed=4, flip=True), 4)
    n_flipped = 0
    for (x, _), (y, _) in zip(plain, flipped):
        for xi, yi in zip(x, y):
            if np.array_equal(xi, yi):
                continue
            np.testing.assert_array_equal(yi, xi[:, ::-1])
            n_flipped += 1
    assert 0 < n_flipped < 16


def test_one_pass_without_repeat_and_other_splits(cache):
    assert len(batches(make_dataset(cache, B, repeat=False), 100)) == 4
    assert len(batches(make_dataset(cache, 2, split="test", repeat=False), 100)) == 1
    assert len(batches(make_dataset(str(cache.path), 3, split="all", repeat=False), 100)) == 8
    with pytest.raises(FacelibError, match="fewer than one batch"):
        make_dataset(cache, 64)


def test_distributes_under_mirrored_strategy(cache):
    import tensorflow as tf

    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    dist = strategy.experimental_distribute_dataset(make_dataset(cache, B, seed=0))
    x, a = next(iter(dist))

    @tf.function
    def step(x, a):
        return strategy.run(lambda u, v: tf.reduce_sum(u) + tf.reduce_sum(v), args=(x, a))

    local = strategy.experimental_local_results(x)
    assert sum(t.shape[0] for t in local) == B
    total = sum(float(t) for t in strategy.experimental_local_results(step(x, a)))
    want_x, want_a = batches(make_dataset(cache, B, seed=0), 1)[0]
    assert total == pytest.approx(float(want_x.sum() + want_a.sum()), rel=1e-5)


def test_a_cache_serves_lower_resolutions_by_exact_area_downsampling(_hermetic_cache):
    from facelib.data.pipeline import make_dataset
    from facelib.data.sample import sample_cache

    cache = FaceCache.open(sample_cache(64))
    full = next(iter(make_dataset(cache, 8, seed=3, flip=False)))[0].numpy()
    half = next(iter(make_dataset(cache, 8, seed=3, flip=False, resolution=32)))[0].numpy()
    quarter = next(iter(make_dataset(cache, 8, seed=3, flip=False, resolution=16)))[0].numpy()
    assert full.shape == (8, 64, 64, 3) and half.shape == (8, 32, 32, 3)
    # Each output pixel is the mean of its 2x2 (4x4) block, with no rounding added.
    np.testing.assert_allclose(half, full.reshape(8, 32, 2, 32, 2, 3).mean(axis=(2, 4)), atol=1e-6)
    np.testing.assert_allclose(quarter, full.reshape(8, 16, 4, 16, 4, 3).mean(axis=(2, 4)),
                               atol=1e-6)


def test_uint8_batches_converted_by_the_model_equal_the_float_batches(_hermetic_cache):
    """make_dataset(uint8=True) hands the same rows and mirrors over as uint8 at the cache's
    resolution; to_model_input (what GAN.train_step runs on the device) turns them into the
    float batches, downsampling included."""
    from facelib.data.pipeline import make_dataset, to_model_input
    from facelib.data.sample import sample_cache

    cache = FaceCache.open(sample_cache(64))
    for resolution in (64, 32):
        floats = batches(make_dataset(cache, 8, seed=5, flip=True, resolution=resolution), 3)
        raw = batches(make_dataset(cache, 8, seed=5, flip=True, resolution=resolution,
                                   uint8=True), 3)
        for (xf, af), (xu, au) in zip(floats, raw):
            assert xu.dtype == np.uint8 and xu.shape == (8, 64, 64, 3)
            np.testing.assert_array_equal(au, af)
            np.testing.assert_allclose(to_model_input(xu, resolution).numpy(), xf, atol=1e-6)
    # the mirrors really are applied to the uint8 faces: flip=False gives other pixels
    plain = batches(make_dataset(cache, 8, seed=5, flip=False, uint8=True), 3)
    assert any(not np.array_equal(p[0], r[0]) for p, r in zip(plain, raw))


@pytest.mark.parametrize("resolution", [128, 48])
def test_a_resolution_the_cache_cannot_serve_is_a_clear_error(_hermetic_cache, resolution):
    from facelib.data.pipeline import make_dataset
    from facelib.data.sample import sample_cache

    with pytest.raises(FacelibError, match=rf"prepared at 64px and cannot serve {resolution}px "
                                           r"\(it serves 64, 32, 16, 8px.*--resolution"):
        make_dataset(sample_cache(64), 8, resolution=resolution)


@pytest.mark.slow
def test_cli_trains_a_32px_model_from_a_64px_cache(tmp_path, _hermetic_cache, capsys):
    import facelib
    from facelib.cli import main
    from facelib.data.sample import sample_cache

    run = tmp_path / "run"
    assert main(["train", "--data", str(sample_cache(64)), "--run", str(run), "--preset", "smoke",
                 "--steps", "2", "--quiet"]) == 0
    assert facelib.load_run(run).generate(2).shape == (2, 32, 32, 3)
    assert main(["train", "--data", str(sample_cache(64)), "--run", str(run), "--preset", "smoke",
                 "--steps", "3", "--resume", "--quiet"]) == 0
    assert f"resumed from step 2 (checkpoint {run / 'checkpoints' / 'step-00000002'})" \
        in capsys.readouterr().out


def test_attribute_share_is_the_mean_of_the_rows_as_training_draws_them(_hermetic_cache):
    from facelib.data.pipeline import attribute_share, balance_weights
    from facelib.data.sample import sample_cache

    cache = FaceCache.open(sample_cache(64))
    rows = np.asarray(cache.attributes[cache.indices("train")]) > 0
    plain = attribute_share(cache)
    np.testing.assert_allclose(plain, rows.mean(axis=0))
    bald = cache.attribute_names.index("Bald")
    weights = balance_weights(cache, ["Bald"], 0.15)
    drawn = attribute_share(cache, weights)
    # drawn with the weights, Bald's rows count share / p times: about 0.15 of the draws
    assert plain[bald] < 0.05 and drawn[bald] == pytest.approx(
        (weights * rows[:, bald]).sum() / weights.sum())
    assert drawn[bald] > 2 * plain[bald]


def test_cli_trains_with_balanced_rare_attributes_and_names_unknown_ones(tmp_path, _hermetic_cache,
                                                                         capsys):
    import json

    from facelib.cli import main
    from facelib.data.sample import sample_cache

    base = ["train", "--data", str(sample_cache(64)), "--preset", "smoke", "--conditional",
            "--steps", "2", "--quiet"]
    run = tmp_path / "balanced"
    assert main(base + ["--run", str(run), "--set", "balance_attributes=Eyeglasses, Bald"]) == 0
    saved = json.loads((run / "config.json").read_text())
    assert saved["balance_attributes"] == ["Eyeglasses", "Bald"]
    assert main(base + ["--run", str(tmp_path / "bad"), "--set",
                        "balance_attributes=Sunglasses"]) == 2
    err = capsys.readouterr().err
    assert "balance_attributes ['Sunglasses'] are not attributes of" in err and "Eyeglasses" in err
    assert not (tmp_path / "bad" / "config.json").exists()  # refused before anything is written


def test_cli_trains_with_balanced_attribute_loss(tmp_path, _hermetic_cache):
    """--set balanced_attribute_loss=true reaches the GAN: the run trains and logs the AC-GAN
    loss (the weights come from the training rows' shares, so no other input is needed)."""
    import json

    from facelib.cli import main
    from facelib.data.sample import sample_cache

    run = tmp_path / "balanced-loss"
    assert main(["train", "--data", str(sample_cache(64)), "--preset", "smoke", "--conditional",
                 "--steps", "2", "--quiet", "--run", str(run), "--set", "attribute_loss=1",
                 "--set", "balanced_attribute_loss=true", "--set", "log_every=1"]) == 0
    saved = json.loads((run / "config.json").read_text())
    # --conditional brings the measured conditioning (no projection); --set attribute_loss wins
    assert (saved["balanced_attribute_loss"], saved["projection"], saved["attribute_loss"]) == (
        True, "off", 1.0)
    logged = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert any(np.isfinite(row.get("attribute_loss", np.nan)) for row in logged)


def test_cli_trains_the_cpu_wide_conditional_preset(tmp_path, _hermetic_cache):
    """The conditional preset's own recipe (no projection, AC-GAN at weight 3 with its loss
    balanced) trains end to end from the CLI, at smoke sizes: the preset alone supplies every
    option the balanced loss needs."""
    import json

    from facelib.cli import main
    from facelib.data.sample import sample_cache

    run = tmp_path / "cond-preset"
    assert main(["train", "--data", str(sample_cache(64)), "--preset", "cpu-wide-conditional",
                 "--steps", "2", "--quiet", "--run", str(run), "--batch-size", "8",
                 "--set", "g_width=32", "--set", "d_width=32", "--set", "sample_grid=4",
                 "--set", "log_every=1", "--set", "checkpoint_every=2"]) == 0
    config = json.loads((run / "config.json").read_text())
    assert (config["conditional"], config["projection"], config["attribute_loss"],
            config["balanced_attribute_loss"]) == (True, "off", 3.0, True)
    logged = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in logged] == [1, 2]
    assert all(np.isfinite(row["attribute_loss"]) and row["attribute_loss"] > 0 for row in logged)
