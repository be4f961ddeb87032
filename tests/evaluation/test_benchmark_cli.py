"""The ``napari-segrefiner benchmark`` subcommand (napari_segrefiner.evaluation.benchmark_cli).

Runs on real folders are tested with the benchmark itself (test_benchmark.py).
"""

from __future__ import annotations

import argparse

from napari_segrefiner.evaluation.benchmark import DEFAULT_OUT
from napari_segrefiner.evaluation.benchmark_cli import add_arguments, run_from_args


def _parse(argv):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_flags_and_their_defaults():
    args = _parse(["--data", "a", "--data", "b", "c"])
    assert args.data == ["a", "b", "c"] and args.device == "auto" and args.seed == 0 and args.out == DEFAULT_OUT
    assert args.kinds is None and args.methods is None and args.hints == 0 and not args.per_item


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    assert run_from_args(_parse(["--data", str(tmp_path), "--threads", "0"])) == 2
    assert capsys.readouterr().err.strip() == "napari-segrefiner: error: --threads must be >= 1, got 0"
