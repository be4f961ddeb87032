"""The one run description (napari_segrefiner.engine.request): validated once, shared by every front end."""

from __future__ import annotations

import inspect
import pickle

import numpy as np
import pytest

from napari_segrefiner.engine.request import DEFAULT_SEED, LAZY_MODES, MODES, RefineRequest, resolve_seed


def test_defaults_are_the_packages_defaults():
    r = RefineRequest()
    assert (r.model, r.device, r.mode, r.steps, r.seed, r.labels, r.hints) == (None, None, "auto", None, 0, None, None)
    assert dict(r.options) == {} and not (r.previews or r.autocast or r.force) and r.order == ()
    assert DEFAULT_SEED == 0 and MODES == ("auto", "instance", "whole", "hr") and LAZY_MODES == ("auto", "instance")


def test_every_front_end_defaults_to_the_same_seed():
    from napari_segrefiner import iter_refine, refine, refine_lazy
    from napari_segrefiner.cli.main import _parser

    for fn in (refine, iter_refine, refine_lazy):
        assert inspect.signature(fn).parameters["seed"].default == DEFAULT_SEED, fn.__name__
    args = _parser().parse_args(["refine", "a.png", "b.png", "-o", "c.png"])
    assert args.seed == DEFAULT_SEED and args.mode == "auto"


def test_labels_are_sorted_without_repeats_and_options_read_only():
    r = RefineRequest(labels=[5, 2, np.int64(5)], options={"batch_size": 4}, order=[3, np.int32(1)])
    assert r.labels == (2, 5) and r.order == (3, 1) and all(type(v) is int for v in r.labels + r.order)
    with pytest.raises(TypeError):
        r.options["batch_size"] = 8
    with pytest.raises(AttributeError):
        r.seed = 3  # frozen


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"mode": "fast"}, ValueError, "mode must be one of"),
        ({"steps": 0}, ValueError, "steps must be an integer >= 1"),
        ({"steps": 2.5}, ValueError, "steps must be an integer"),
        ({"steps": True}, ValueError, "steps must be an integer"),
        ({"seed": -1}, ValueError, r"seed must be in \[0, 2\*\*64\)"),
        ({"seed": "0"}, TypeError, "seed must be an int or None"),
        ({"labels": []}, ValueError, "labels is empty"),
        ({"labels": [1.5]}, TypeError, "labels must hold integers"),
        ({"labels": 3}, TypeError, "labels must be an iterable"),
        ({"order": ["a"]}, TypeError, "order must hold integers"),
        ({"previews": 1}, TypeError, "previews must be True or False"),
        ({"autocast": "yes"}, TypeError, "autocast must be True or False"),
        ({"force": None}, TypeError, "force must be True or False"),
        ({"options": {"no_such_option": 1}}, TypeError, "unknown options"),
        ({"options": {"batch_size": 0}}, ValueError, "batch_size"),
        ({"options": [("pad", 3)]}, TypeError, "options must be a mapping"),
        ({"model": 3}, TypeError, "model must be None, a name"),
        ({"device": 0}, TypeError, "device must be None, a string"),
        ({"hints": np.zeros((2, 2), np.float32)}, TypeError, "hints must be an integer array"),
        ({"cache": 3}, TypeError, "cache must be None or a folder"),
    ],
)
def test_bad_fields_are_refused_naming_the_field(kwargs, error, match):
    with pytest.raises(error, match=match):
        RefineRequest(**kwargs)


def test_replace_validates_again_and_hints_take_no_part_in_comparisons():
    r = RefineRequest(seed=3)
    assert r.replace(steps=2).steps == 2 and r.replace(steps=2).seed == 3
    with pytest.raises(ValueError, match="mode"):
        r.replace(mode="nope")
    assert RefineRequest(hints=np.ones((2, 2), np.uint8)) == RefineRequest(hints=np.zeros((2, 2), np.uint8))
    assert RefineRequest(seed=1) != RefineRequest(seed=2)


def test_a_request_travels_to_dask_workers_intact():
    r = RefineRequest(
        model="segrefiner-lite", mode="instance", steps=3, seed=9, labels=[4, 2], options={"batch_size": 2}, force=True
    )
    back = pickle.loads(pickle.dumps(r))
    assert back == r and dict(back.options) == {"batch_size": 2}


def test_check_lazy_accepts_instance_modes_only():
    assert RefineRequest(mode="instance").check_lazy().mode == "instance"
    with pytest.raises(ValueError, match="lazy runs refine object by object"):
        RefineRequest(mode="whole").check_lazy()


def test_resolve_seed():
    assert resolve_seed(5) == 5 and resolve_seed(np.uint64(2**63)) == 2**63
    fresh = {resolve_seed(None) for _ in range(3)}
    assert len(fresh) == 3 and all(0 <= s < 2**63 for s in fresh)
