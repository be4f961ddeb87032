"""The subcommands of ``napari-segrefiner`` (napari_segrefiner.cli.commands), called with parsed arguments.

End to end through the parser: test_main.py.
"""

from __future__ import annotations

import argparse

import pytest

from napari_segrefiner.cli.commands import cmd_download, cmd_models, cmd_refine
from napari_segrefiner.cli.outputs import CLIError


def test_models_lists_every_registered_model_and_where_it_is(capsys):
    from napari_segrefiner.models import registry

    assert cmd_models(argparse.Namespace()) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in registry.MODELS) and "shipped with the package" in out


def test_an_unknown_download_is_a_user_error():
    with pytest.raises(CLIError, match="unknown model 'nope'"):
        cmd_download(argparse.Namespace(name="nope", cache=None, trust_unknown_hash=False))


def test_refine_refuses_a_bad_run_before_reading_anything(tmp_path):
    args = argparse.Namespace(
        image=str(tmp_path / "a.png"),
        mask=str(tmp_path / "m.png"),
        output=str(tmp_path / "o.png"),
        workers=None,
        scheduler=None,
        chunks=None,
        model=None,
        checkpoint=None,
        device="cpu",
        mode="auto",
        steps=0,
        seed=0,
        force=False,
        ext=None,
        overwrite=False,
        threads=1,
    )
    with pytest.raises(CLIError, match="steps must be an integer"):
        cmd_refine(args)
    with pytest.raises(CLIError, match="--workers must be at least 1"):
        cmd_refine(argparse.Namespace(**{**vars(args), "workers": 0}))
