"""Qt helpers of the dock widget for closing safely and asking the user.

* :func:`qt_slot` guards a main-thread slot: it does nothing once the dock is closed, and a
  Qt object deleted under it (a closing viewer) ends the slot quietly instead of raising
  (PyQt aborts the whole process on an exception escaping a slot).
* :class:`RemovalWatcher` calls back when napari takes the widget out of its dock.
* :func:`ask_yes_no` is the default confirmation dialog (the widget's ``confirm`` can be
  replaced, e.g. by tests).
"""

from __future__ import annotations

import functools

from qtpy.QtCore import QEvent, QObject
from qtpy.QtWidgets import QMessageBox

__all__ = ["RemovalWatcher", "ask_yes_no", "qt_slot", "quietly"]


def qt_slot(method):
    """Decorate a slot of an object with a ``_closed`` flag (see the module docstring)."""

    @functools.wraps(method)
    def slot(self, *args):
        if self._closed:
            return None
        try:
            return method(self, *args)
        except RuntimeError as exc:
            if "deleted" not in str(exc):  # "wrapped C/C++ object of type ... has been deleted"
                raise
            self._closed = True
            return None

    return slot


def quietly(call, *args) -> None:
    """``call(*args)``, ignoring a Qt object deleted meanwhile (teardown paths only)."""
    try:
        call(*args)
    except RuntimeError as exc:
        if "deleted" not in str(exc):
            raise


class RemovalWatcher(QObject):
    """Calls back when the watched widget loses its parent (napari's "close dock widget")."""

    def __init__(self, callback):
        super().__init__()
        self._callback = callback

    def eventFilter(self, obj, event):  # noqa: N802 (Qt API)
        if event.type() == QEvent.Type.ParentChange and obj.parent() is None:
            self._callback()
        return False


def ask_yes_no(parent, text: str) -> bool:
    """A modal Yes/No question (No is the default button); True for Yes."""
    box = QMessageBox.question(
        parent,
        "SegRefiner",
        text,
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
        QMessageBox.StandardButton.No,
    )
    return box == QMessageBox.StandardButton.Yes
