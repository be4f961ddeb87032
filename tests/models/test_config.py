"""napari_segrefiner.models.config: RefineConfig validation and (de)serialisation."""

from __future__ import annotations

import math

import pytest

from napari_segrefiner.models.config import LiteConfig, RefineConfig, UNetConfig, config_from_dict, config_to_dict


def test_official_defaults_are_the_released_test_configuration():
    c = RefineConfig.official()
    assert (c.size, c.pad, c.min_area, c.batch_size) == (256, 20, 512, 32)
    assert (c.hr_patch, c.hr_thr_ratio, c.hr_iou, c.hr_min_pixels, c.auto_hr_side) == (256, 0.9, 0.3, 128, 512)
    assert (c.context, c.context_cap) == (0.0, 0)


@pytest.mark.parametrize(
    "options, error, match",
    [
        ({"size": 0}, ValueError, "size must be in"),
        ({"size": 4096}, ValueError, "size must be in"),
        ({"size": 64.0}, TypeError, "size must be an integer"),
        ({"min_area": 1e9}, TypeError, "min_area must be an integer"),
        ({"context": math.nan}, ValueError, "context must be a finite number"),
        ({"hr_iou": 1.5}, ValueError, "hr_iou must be a finite number in"),
        ({"batch_size": True}, TypeError, "batch_size must be an integer"),
        ({"pad": "20"}, TypeError, "pad must be an integer"),
    ],
)
def test_invalid_values_name_the_option(options, error, match):
    with pytest.raises(error, match=match):
        RefineConfig(**options)
    with pytest.raises(error, match=match):
        RefineConfig().replace(**options)


def test_replace_and_dict_round_trip():
    c = RefineConfig().replace(min_area=16, context=3)
    assert c.min_area == 16 and c.context == 3.0 and isinstance(c.context, float)
    assert RefineConfig.from_dict(c.to_dict()) == c
    assert RefineConfig.from_dict({"pad": 8}) == RefineConfig(pad=8)  # partial (version-1 files)
    with pytest.raises(TypeError, match="unknown options"):
        RefineConfig.from_dict({"padding": 8})
    with pytest.raises(TypeError, match="must be a dict"):
        RefineConfig.from_dict([("pad", 8)])
    with pytest.raises(AttributeError):
        c.pad = 3  # frozen


def test_network_configs_round_trip():
    for cfg in (UNetConfig.official(), LiteConfig(), LiteConfig.tiny()):
        assert config_from_dict(config_to_dict(cfg)) == cfg
    assert UNetConfig.official().divisor == 32 and LiteConfig().divisor == 32 and LiteConfig.tiny().divisor == 8


def test_clean_is_a_bool_option():
    assert RefineConfig().clean is True and RefineConfig(clean=False).clean is False
    with pytest.raises(TypeError, match="clean must be True or False"):
        RefineConfig(clean=1)
