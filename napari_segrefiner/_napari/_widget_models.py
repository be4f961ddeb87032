"""The dock widget's model choice: a registered model or a checkpoint file, the cache folder
of the official models, and their download (in a worker, with a progress bar).

Only what fits the choice is shown: the checkpoint field for "checkpoint file", the cache
folder and (while not cached) a Download button for the official models, and a line saying
where the weights come from or what is missing. Main thread only.
"""

from __future__ import annotations

from pathlib import Path

from magicgui.widgets import ComboBox, FileEdit, Label, PushButton
from napari.utils import progress
from napari.utils.notifications import show_info
from qtpy.QtCore import QTimer

from ..models import registry
from ..models.adapted import ADAPTED_PREFIX
from ._napari_layers import notify_error
from ._widget_launch import launch
from .tracking import DownloadTracker

__all__ = ["CHECKPOINT", "MODEL_CHOICES", "ModelChoice"]

CHECKPOINT = "checkpoint file"
MODEL_CHOICES = (*registry.MODELS, CHECKPOINT)


class ModelChoice:
    """The model widgets (``widgets``, in the dock's order) and what they choose."""

    def __init__(self):
        self.model = ComboBox(label="model", choices=MODEL_CHOICES, value=registry.DEFAULT_MODEL)
        self.checkpoint = FileEdit(label="checkpoint", mode="r", filter="*.pt *.pth *.ckpt")
        self.cache = FileEdit(label="cache folder", mode="d", value=registry.cache_dir())
        self.status = Label(label="")
        self.download_btn = PushButton(text="Download")
        self.downloading = None  # the download's worker while one runs
        self.widgets = [self.model, self.checkpoint, self.cache, self.status, self.download_btn]
        self.inputs = [w for w in self.widgets if w is not self.status]  # disabled while a run goes
        self.download_btn.changed.connect(self.download)
        for w in (self.model, self.cache, self.checkpoint):
            w.changed.connect(self.update)
        self.update()

    def set(self, source: str | Path) -> None:
        """Choose a registered model by name, or a checkpoint file by path."""
        if str(source) in registry.MODELS:
            self.model.value = str(source)
        else:
            self.model.value = CHECKPOINT
            self.checkpoint.value = Path(source)

    def source(self) -> str:
        """The chosen registry name or checkpoint path (ValueError when no file is chosen)."""
        if self.model.value != CHECKPOINT:
            return self.model.value
        if not Path(self.checkpoint.value).is_file():
            raise ValueError("choose a checkpoint file for the model")
        return str(self.checkpoint.value)

    def cache_folder(self) -> str | None:
        value = self.cache.value
        return str(value) if value and str(value) != "." else None

    def update(self, *_) -> None:
        """Show the widgets that fit the choice, and say where its weights come from."""
        choice = self.model.value
        self.checkpoint.visible = choice == CHECKPOINT
        official = choice in registry.MODELS and not registry.MODELS[choice].shipped
        self.cache.visible = official
        missing = False
        if choice == CHECKPOINT:
            path = Path(self.checkpoint.value)
            text = f"file: {path.name}" if path.is_file() else "choose a checkpoint file (.pt/.pth)"
        elif choice.startswith(ADAPTED_PREFIX):  # made by the Learn section (_widget_learn.py)
            text = "adapted to your corrections (saved in the model folder)"
        else:
            try:
                registry.resolve(choice, cache=self.cache_folder())
                text = "shipped with the plugin" if not official else "downloaded"
            except FileNotFoundError:
                missing = official
                text = "not downloaded yet" if official else "shipped model missing: choose a checkpoint file"
        self.status.value = text
        self.download_btn.visible = missing
        unsigned = missing and registry.MODELS[choice].sha256 is None
        self.download_btn.text = "Download (no published checksum)" if unsigned else "Download"

    def download(self, *_):
        """Download the chosen official model into the cache folder (in a worker); returns it."""
        name = self.model.value
        if name not in registry.MODELS or self.downloading is not None:
            return None
        tracker = DownloadTracker()
        bar = progress(total=0, desc=f"Downloading {name}")
        timer = QTimer()  # pooch counts bytes in the worker; the bar is updated here
        timer.timeout.connect(lambda: tracker.sync(bar))
        slots = {
            "returned": lambda path: show_info(f"SegRefiner: {name} saved to {path}"),
            "errored": notify_error,
        }
        launched = launch(
            registry.fetch,
            name,
            cache=self.cache_folder(),
            progressbar=tracker,
            trust_unknown_hash=registry.MODELS[name].sha256 is None,
            slots=slots,
            start=False,
        )
        worker = launched.worker

        def done():
            self.downloading = None
            try:  # the dock may have been closed meanwhile: its widgets are gone then
                timer.stop()
                tracker.sync(bar)
                bar.close()
                self.download_btn.enabled = True
                self.update()
            except RuntimeError as exc:
                if "deleted" not in str(exc):
                    raise

        worker.finished.connect(done)
        self.downloading = worker
        self.download_btn.enabled = False
        timer.start(200)
        worker.start()
        return worker
