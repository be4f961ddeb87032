"""Boundary-band uncertainty, checked against bands counted by hand."""

import pytest
import torch

from napari_segrefiner.annotate.scores import boundary_uncertainty


def _square(conf_value: float):
    prob = torch.zeros(1, 1, 12, 12)
    prob[0, 0, 4:8, 4:8] = 1.0  # a 4 x 4 object
    conf = torch.ones(1, 1, 12, 12)
    return prob, conf


def test_sure_everywhere_is_zero_and_unsure_band_is_counted():
    prob, conf = _square(1.0)
    assert float(boundary_uncertainty(prob, conf, width=1)[0]) == 0.0
    # width 1: the band is the 6x6 grown square minus the 2x2 shrunk core = 32 pixels
    conf[0, 0, 3, 3] = 0.0  # one band pixel (grown corner) with no confidence
    conf[0, 0, 0, 0] = 0.0  # far background: not in the band
    assert float(boundary_uncertainty(prob, conf, width=1)[0]) == pytest.approx(1 / 32)


def test_region_limits_the_band_and_an_empty_band_is_most_uncertain():
    prob, conf = _square(1.0)
    conf[0, 0, 3, 3] = 0.0  # on the band's top row
    top = torch.zeros(1, 1, 12, 12, dtype=torch.bool)
    top[0, 0, :4, :] = True  # only the band's top row (row 3, columns 3..8: 6 pixels) counts
    assert float(boundary_uncertainty(prob, conf, region=top, width=1)[0]) == pytest.approx(1 / 6)
    bottom = ~top
    assert float(boundary_uncertainty(prob, conf, region=bottom, width=1)[0]) == 0.0
    empty = torch.zeros(1, 1, 12, 12)
    assert float(boundary_uncertainty(empty, conf, width=1)[0]) == 1.0


def test_shapes_are_checked():
    with pytest.raises(ValueError, match="must be"):
        boundary_uncertainty(torch.zeros(1, 12, 12), torch.zeros(1, 12, 12))


def test_review_score_is_expected_error_plus_changed_share():
    from napari_segrefiner.annotate.scores import review_score

    coarse = torch.zeros(1, 1, 10, 10)
    coarse[0, 0, 2:6, 2:6] = 1  # 16 px
    prob = torch.zeros(1, 1, 10, 10)
    prob[0, 0, 2:6, 2:8] = 1.0  # refined: 24 px, 8 of them new
    prob[0, 0, 0, 0] = 0.25  # the network half-expects an error here (min(p, 1-p) = 0.25)
    # expected error 0.25 / 24 px; change 8 / 24 (XOR over OR)
    assert float(review_score(prob, coarse)[0]) == pytest.approx(0.25 / 24 + 8 / 24)
    same = coarse.clone()
    assert float(review_score(same, coarse)[0]) == 0.0  # kept exactly, with certainty
    region = torch.zeros(1, 1, 10, 10, dtype=torch.bool)
    region[0, 0, :, :6] = True  # columns 0-5: the unsure pixel is inside, the 8 new pixels (columns 6-7) are not
    assert float(review_score(prob, coarse, region=region)[0]) == pytest.approx(0.25 / 16)
    assert float(review_score(torch.zeros(1, 1, 10, 10), coarse)[0]) == pytest.approx(2.0)  # vanished: 1 + all changed
