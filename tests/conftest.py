"""Shared test fixtures; most of them serve the napari plugin tests.

Threads are pinned to one (this process and its subprocesses); torch is imported before any
Qt module (loading torch's libraries after Qt's can conflict; importing it first is cheap
insurance) and Qt defaults to the offscreen platform; pytest-xvfb provides the X display
that napari's OpenGL canvas needs (without one no layer can be drawn). Screenshots need the
xcb platform instead: that test runs its own process.
"""

import gc
import os

# One thread everywhere: in this process (torch, below) and in every subprocess the tests start
# (CLI runs, dask workers, import checks). A test machine is small and shared: more threads only
# contend (a CLI call took 6.1 s with the default threads against 0.36 s with one).
for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_name] = "1"

import torch  # noqa: E402  (import before Qt)

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
torch.set_num_threads(1)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

# 64 px network input and small objects allowed: keeps every test run in milliseconds
TINY_DEFAULTS = {"size": 64, "min_area": 32}


@pytest.fixture(scope="session")
def _gc_frozen():
    """Move what is alive once the GUI stack is imported out of the garbage collector's view.

    napari runs a full ``gc.collect()`` on every layer removal and viewer teardown; with
    torch, napari and pytest loaded that is 0.3-0.7 s each here. After ``gc.freeze()`` a
    collection only visits objects made later (milliseconds).
    """
    import napari  # noqa: F401

    import napari_segrefiner._napari._widget  # noqa: F401

    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


@pytest.fixture
def make_napari_viewer(make_napari_viewer, _gc_frozen):
    """napari's fixture, with the collector frozen first (see ``_gc_frozen``)."""
    return make_napari_viewer


@pytest.fixture(scope="session")
def tiny_model():
    """A tiny random SegRefiner network as a CPU Refiner (milliseconds per call)."""
    from napari_segrefiner import LiteConfig, RefineConfig, Refiner, build_network
    from napari_segrefiner.diffusion.scheduler import Schedule

    torch.manual_seed(0)
    network = build_network(LiteConfig.tiny()).eval()
    return Refiner(network, RefineConfig(**TINY_DEFAULTS), Schedule(), torch.device("cpu"), source="tiny")


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_model, tmp_path_factory):
    """The tiny network saved as a checkpoint file (for the widget's "checkpoint file" choice)."""
    from napari_segrefiner import save_checkpoint

    path = tmp_path_factory.mktemp("models") / "tiny.pt"
    save_checkpoint(path, tiny_model.network, refine=tiny_model.config)
    return path


@pytest.fixture
def blobs():
    """A 64x64 RGB image with two bright discs and a coarse (square) labels mask of them."""
    yy, xx = np.mgrid[:64, :64]
    image = np.zeros((64, 64, 3), dtype=np.uint8)
    mask = np.zeros((64, 64), dtype=np.int32)
    for value, (cy, cx) in enumerate([(18, 18), (44, 42)], start=1):
        image[(yy - cy) ** 2 + (xx - cx) ** 2 <= 81] = (220, 120, 200)
        mask[cy - 12 : cy + 12, cx - 12 : cx + 12] = value
    return image, mask


@pytest.fixture(scope="session")
def biased_checkpoint(tiny_model, tmp_path_factory):
    """The tiny network as a checkpoint whose options keep most of the objects (keep_bias;
    without it the random network erases every object and all outputs look alike)."""
    from napari_segrefiner import save_checkpoint

    path = tmp_path_factory.mktemp("models") / "tiny-biased.pt"
    save_checkpoint(path, tiny_model.network, refine=tiny_model.config.replace(keep_bias=0.2))
    return path
