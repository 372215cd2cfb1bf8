import json

import pytest

from facelib.config import PRESETS, Config, preset
from facelib.errors import FacelibError


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_are_valid_and_round_trip(name, tmp_path):
    cfg = preset(name)
    cfg.save(tmp_path / "c.json")
    assert Config.load(tmp_path / "c.json") == cfg


@pytest.mark.parametrize("field,value,allowed", [
    ("resolution", 48, "(32, 64, 128)"),
    ("loss", "lsgan", "'ns', 'hinge', 'wgan-gp'"),
    ("augment", "ada", "'none', 'diffaugment'"),
    ("batch_size", 0, "positive integer"),
    ("g_width", 100, "multiple of 8"),
    ("g_lr", 0.0, "(0, 1)"),
    ("ema_decay", 1.0, "[0, 1)"),
    ("standing_statistics", -1, "a count of latents >= 0"),
    ("ema_power", -1.0, "a float >= 0"),
    ("self_modulation", -32, "0 (off) or the hidden units"),
    ("diffaugment_policy", ("color", "rotate"), "subset"),
    ("balance_share", 1.0, "(0, 1)"),
    ("balance_attributes", ("Bald",), "empty for an unconditional run"),
    ("balance_attributes", "Bald", "a list of names"),
])
def test_invalid_values_name_the_field_and_the_allowed_values(field, value, allowed):
    with pytest.raises(FacelibError) as e:
        preset("smoke", **{field: value})
    assert f"'{field}'" in str(e.value) and allowed in str(e.value)


def test_standing_statistics_need_the_ema_generator_they_describe():
    assert preset("cpu-wide").standing_statistics == 1024 and preset("cpu").standing_statistics == 0
    with pytest.raises(FacelibError, match="'standing_statistics'.*unless ema_decay > 0"):
        preset("cpu-wide", ema_decay=0.0)
    with pytest.raises(FacelibError, match="'ema_power'.*unless ema_decay > 0"):
        preset("cpu-wide", ema_decay=0.0, standing_statistics=0)
    assert preset("cpu-wide", ema_decay=0.0, standing_statistics=0, ema_power=0).ema_decay == 0.0


def test_one_rule_for_the_ema_decay():
    """cpu-wide's power EMA and the ramp are two rules for one decay: asking for both is refused
    in one line naming the field to change; the ramp alone still works."""
    assert preset("cpu-wide").ema_power == 4.0 and not preset("cpu-wide").ema_rampup
    with pytest.raises(FacelibError, match="'ema_rampup'.*false when ema_power > 0"):
        preset("cpu-wide", ema_rampup=True)
    assert preset("cpu-wide", ema_rampup=True, ema_power=0).ema_rampup


def test_unknown_field_and_preset_are_clear_errors(tmp_path):
    with pytest.raises(FacelibError, match="unknown config field.*'colour'"):
        Config.from_dict({"colour": 1})
    with pytest.raises(FacelibError, match="unknown preset 'huge'.*smoke"):
        preset("huge")
    (tmp_path / "c.json").write_text(json.dumps({"resolution": 64, "lr": 1}))
    with pytest.raises(FacelibError, match="'lr'"):
        Config.load(tmp_path / "c.json")


def test_replace_validates():
    cfg = preset("smoke")
    assert cfg.replace(steps=7).steps == 7
    with pytest.raises(FacelibError, match="'steps'"):
        cfg.replace(steps=-1)


def test_precision_reads_the_legacy_mixed_precision_switch_once():
    from facelib.config import Config

    old = Config.from_dict({"mixed_precision": True})  # a config.json from before `precision`
    assert old.precision == "mixed_float16" and old.mixed_precision is False
    assert Config.from_dict(old.to_dict()) == old  # round trip is stable
    assert preset("colab").precision == "mixed_float16"
    # the stale switch never overrules an explicit choice
    assert preset("colab", precision="float32").precision == "float32"
    assert old.replace(precision="mixed_bfloat16").precision == "mixed_bfloat16"
    with pytest.raises(FacelibError, match="precision.*mixed_bfloat16"):
        preset("cpu", precision="bf16")
    with pytest.raises(FacelibError, match="architecture.*resnet"):
        preset("cpu", architecture="stylegan")


def test_conditional_preset_conditions_the_measured_way_and_overrides_win():
    """`conditional_preset` (`train --conditional`, notebook 04) gives an unconditional preset
    cpu-wide-conditional's conditioning, not a projection D alone; fields given win, and a
    preset that is conditional already keeps its own measured recipe."""
    from facelib.config import CONDITIONING, conditional_preset

    for name in ("smoke", "cpu", "colab"):
        cfg = conditional_preset(name)
        assert cfg == preset(name, **CONDITIONING)
        assert (cfg.conditional, cfg.projection, cfg.attribute_loss,
                cfg.balanced_attribute_loss) == (True, "off", 3.0, True)
        assert preset(name).projection == "random"  # the plain preset is untouched
    cfg = conditional_preset("smoke", projection="random", attribute_loss=1.0, steps=7)
    assert (cfg.projection, cfg.attribute_loss, cfg.steps) == ("random", 1.0, 7)
    # the measured conditional presets stay as measured (cpu-conditional: projection + AC-GAN)
    assert conditional_preset("cpu-conditional") == preset("cpu-conditional")
    assert conditional_preset("cpu-conditional").projection == "random"
    assert conditional_preset("cpu-wide-conditional") == preset("cpu-wide-conditional")
    with pytest.raises(FacelibError, match="unknown preset 'huge'"):
        conditional_preset("huge")
