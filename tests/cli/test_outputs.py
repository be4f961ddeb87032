"""What ``refine`` reads, writes and runs (napari_segrefiner.cli.outputs), checked before any work."""

from __future__ import annotations

import argparse
import os

import numpy as np
import pytest

from napari_segrefiner.cli.outputs import (
    CLIError,
    check_writable,
    model_source,
    plan_file,
    request_from_args,
    warnings_as_notes,
    within,
)


def _args(**kw):
    base = dict(
        model=None,
        checkpoint=None,
        device="auto",
        mode="auto",
        steps=None,
        seed=0,
        force=False,
        ext=None,
        overwrite=False,
    )
    return argparse.Namespace(**{**base, **kw})


def test_the_request_is_built_and_checked_in_one_place():
    r = request_from_args(_args(checkpoint="m.pt", mode="whole", steps=2, seed=5, force=True))
    assert (r.model, r.mode, r.steps, r.seed, r.force, r.device) == ("m.pt", "whole", 2, 5, True, "auto")
    with pytest.raises(CLIError, match="steps must be an integer"):
        request_from_args(_args(steps=0))
    assert model_source(_args(model="segrefiner-lr")) == "segrefiner-lr" and model_source(_args()) is None


def test_within_follows_links_and_dots(tmp_path):
    (tmp_path / "in").mkdir()
    os.symlink(tmp_path / "in", tmp_path / "link")
    assert within(tmp_path / "link" / "x", tmp_path / "in") and within(tmp_path / "in" / ".." / "in", tmp_path / "in")
    assert not within(tmp_path / "out", tmp_path / "in")


def test_outputs_that_cannot_hold_the_mask_or_are_inputs_are_refused(tmp_path):
    with pytest.raises(CLIError, match="PNG stores labels up to 65535"):
        check_writable(tmp_path / "o.png", np.array([[0, 70000]], np.int64))
    check_writable(tmp_path / "o.tif", np.array([[0, 70000]], np.int64))
    img = tmp_path / "a.png"
    img.write_bytes(b"x")
    with pytest.raises(CLIError, match="is the input file"):
        plan_file(img, img, img, _args())
    with pytest.raises(CLIError, match="masks are written as"):
        plan_file(img, img, tmp_path / "o.jpg", _args())


def test_warnings_become_one_line_notes(capsys):
    import warnings

    with warnings_as_notes():
        warnings.warn("mask is empty", UserWarning, stacklevel=1)
    assert capsys.readouterr().err == "napari-segrefiner: warning: mask is empty\n"
