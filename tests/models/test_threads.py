"""napari_segrefiner.models.threads: CPU thread counts sized to the machine and the front end."""

from __future__ import annotations

import pytest
import torch

from napari_segrefiner.models import threads


@pytest.mark.parametrize("cores, gui, cli", [(1, 1, 1), (2, 1, 2), (8, 7, 8)])
def test_gui_leaves_a_core_for_the_event_loop(monkeypatch, cores, gui, cli):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "available_cores", lambda: cores)
    assert threads.cpu_threads("gui") == gui and threads.cpu_threads("cli") == cli


def test_environment_and_explicit_choice_win(monkeypatch):
    monkeypatch.setattr(threads, "available_cores", lambda: 8)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads.cpu_threads("gui") == 3 and threads.cpu_threads("cli") == 3
    assert threads.cpu_threads("gui", requested=5) == 5
    monkeypatch.setenv("OMP_NUM_THREADS", "junk")
    assert threads.cpu_threads("cli") == 8


def test_bad_values():
    with pytest.raises(ValueError, match="purpose"):
        threads.cpu_threads("server")
    with pytest.raises(ValueError, match="threads must be a positive integer"):
        threads.cpu_threads("cli", requested=0)


def test_use_threads_restores_the_previous_count():
    before = torch.get_num_threads()
    with threads.use_threads(1) as n:
        assert n == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
