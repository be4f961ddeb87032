"""One run, described once: :class:`RefineRequest`, shared by every front end.

The Python API (:func:`~napari_segrefiner.api.refine`, :func:`~napari_segrefiner.api.iter_refine`),
the lazy path (:func:`~napari_segrefiner.lazy.refine.refine_lazy`), the command line (file,
folder and zarr modes) and the napari widget and menu command all describe a run with a
:class:`RefineRequest`, and all of them are validated by its one check
(:meth:`RefineRequest.__post_init__`): a request that exists is valid, whatever front end
made it. What depends on the data (shapes, labels present) or on the model (the number of
timesteps) is checked when the run starts (:func:`~.run.start`).

The defaults are the package's defaults, defined once here: seed :data:`DEFAULT_SEED`,
mode ``"auto"``, every timestep of the model.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import torch

from ..models.config import RefineConfig

__all__ = ["DEFAULT_SEED", "LAZY_MODES", "MODES", "PIPELINES", "RefineRequest", "request_of", "resolve_seed"]

DEFAULT_SEED = 0  # every front end (API, lazy, CLI, plugin) refines with this seed unless told otherwise
PIPELINES = ("instance", "whole", "hr")  # the three pipelines of the engine
MODES = ("auto", *PIPELINES)  # what a run may ask for; "auto" picks a pipeline
LAZY_MODES = ("auto", "instance")  # the lazy path refines object by object


def resolve_seed(seed: int | None) -> int:
    """The seed of a run's per-pixel draws: ``seed`` checked, or a fresh one for None.

    Every object of a run draws from its own CPU stream
    (:func:`~napari_segrefiner.diffusion.scheduler.stream` of the seed and its label): the
    same numbers on every device, for every batch size, and whether the object is refined
    alone or with others.

    Raises
    ------
    TypeError, ValueError
        If ``seed`` is not an int in ``[0, 2**64)`` (or None).
    """
    if seed is None:
        return int(np.random.SeedSequence().entropy % (2**63))
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int or None, got {type(seed).__name__}")
    if not 0 <= int(seed) < 2**64:
        raise ValueError(f"seed must be in [0, 2**64), got {seed}")
    return int(seed)


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return bool(value)


def _ints(name: str, values: Any) -> tuple[int, ...]:
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise TypeError(f"{name} must be an iterable of integers, got {type(values).__name__}")
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{name} must hold integers, got {v!r}")
        out.append(int(v))
    return tuple(out)


def _check_model(model: Any, device: Any) -> None:
    from ..models.refiner import Refiner

    if model is not None and not isinstance(model, (str, os.PathLike, Refiner, torch.nn.Module)):
        raise TypeError(
            f"model must be None, a name, a checkpoint path, a Refiner or a torch.nn.Module, got {type(model).__name__}"
        )
    if device is not None and not isinstance(device, (str, torch.device)):
        raise TypeError(f"device must be None, a string or a torch.device, got {type(device).__name__}")


@dataclass(frozen=True)
class RefineRequest:
    """Everything that describes a refinement run besides the image and the mask.

    Constructing one validates it (types, ranges, option names), so every front end that
    builds one refuses the same bad input with the same message, before any work.

    Attributes
    ----------
    model : None, str, path-like, Refiner or torch.nn.Module
        ``None`` = the shipped default model, a registered name, a checkpoint file, a
        :class:`~napari_segrefiner.models.refiner.Refiner` or a network (see
        :func:`~napari_segrefiner.models.refiner.load_refiner`).
    device : str, torch.device or None
        Where to load the model (None: ``"auto"``; a Refiner keeps its device).
    cache : str or None
        Folder of downloaded weights (registered models only; default: the user cache).
    mode : {"auto", "instance", "whole", "hr"}
        The pipeline (:data:`MODES`); ``"auto"`` picks one.
    steps : int or None
        Reverse steps (None: every timestep of the model; its upper bound is checked
        against the model when the run starts).
    seed : int or None
        Seed of the per-pixel draws (None draws a fresh one when the run starts).
    labels : tuple of int or None
        Refine only these labels (sorted, without repeats); None: all.
    hints : ndarray or None
        Annotator hints of the mask's shape (0 free, 1 object, 2 background); the shape
        and values are checked when the run starts. Not part of comparisons.
    options : Mapping
        :class:`~napari_segrefiner.models.config.RefineConfig` overrides (read-only; names
        and ranges checked here).
    previews : bool
        Keep every object's state after each step (:class:`~.records.ObjectResult`).
    autocast : bool
        bfloat16 autocast (CUDA only; ignored elsewhere).
    force : bool
        Refine an implausible mask or run anyway (:mod:`napari_segrefiner.io.plausible`).
    order : tuple of int
        Labels refined first; the result does not depend on it except through batches.

    Raises
    ------
    TypeError, ValueError
        Naming the field and what it got.
    """

    model: Any = None
    device: Any = None
    cache: str | None = None
    mode: str = "auto"
    steps: int | None = None
    seed: int | None = DEFAULT_SEED
    labels: tuple[int, ...] | None = None
    hints: Any = field(default=None, compare=False, repr=False)
    options: Mapping[str, Any] = field(default_factory=dict)
    previews: bool = False
    autocast: bool = False
    force: bool = False
    order: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        _check_model(self.model, self.device)
        if self.cache is not None and not isinstance(self.cache, (str, os.PathLike)):
            raise TypeError(f"cache must be None or a folder, got {type(self.cache).__name__}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        steps = self.steps
        if steps is not None and (isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1):
            raise ValueError(f"steps must be an integer >= 1 (or None: every timestep), got {steps!r}")
        if self.seed is not None:
            resolve_seed(self.seed)
        labels = self.labels
        if labels is not None:
            labels = tuple(sorted(set(_ints("labels", labels))))  # the result must not depend on the order given
            if not labels:
                raise ValueError("labels is empty: nothing to refine")
        if self.hints is not None:
            kind = np.dtype(getattr(self.hints, "dtype", np.asarray(self.hints).dtype)).kind
            if kind not in "biu":
                raise TypeError(
                    f"hints must be an integer array (0 free, 1 object, 2 background), got dtype {self.hints.dtype}"
                )
        if not isinstance(self.options, Mapping):
            raise TypeError(f"options must be a mapping of RefineConfig overrides, got {type(self.options).__name__}")
        RefineConfig().replace(**self.options)  # names and ranges, as the model's own options will be
        for name, value in (
            ("steps", None if steps is None else int(steps)),
            ("labels", labels),
            ("options", MappingProxyType(dict(self.options))),
            ("previews", _flag("previews", self.previews)),
            ("autocast", _flag("autocast", self.autocast)),
            ("force", _flag("force", self.force)),
            ("order", _ints("order", self.order)),
        ):
            object.__setattr__(self, name, value)

    def __reduce__(self):  # the read-only options travel as a dict (dask ships requests to workers)
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        fields["options"] = dict(self.options)
        return (_rebuild, (fields,))

    def replace(self, **changes: Any) -> RefineRequest:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def check_lazy(self) -> RefineRequest:
        """Itself, if the lazy path can run it (instance mode: ``"auto"`` or ``"instance"``).

        Raises
        ------
        ValueError
            For another mode.
        """
        if self.mode not in LAZY_MODES:
            raise ValueError(
                f"lazy runs refine object by object (instance mode): mode must be one of {LAZY_MODES}, "
                f"got {self.mode!r}"
            )
        return self


def _rebuild(fields: dict) -> RefineRequest:
    return RefineRequest(**fields)


def request_of(arguments: Mapping[str, Any]) -> RefineRequest:
    """The request a front end's call describes: every field of :class:`RefineRequest` taken from
    ``arguments`` by name (a function's ``locals()``: its parameters, ``**options`` as ``options``).

    ``refine``, ``iter_refine`` and ``refine_lazy`` name their parameters after the fields, so
    one call maps them all, and a field added here reaches every front end that takes it.
    """
    names = {f.name for f in dataclasses.fields(RefineRequest)}
    return RefineRequest(**{name: value for name, value in arguments.items() if name in names})
