"""The ``napari-segrefiner`` command line (the only part of the package that prints and exits)."""

from .main import main

__all__ = ["main"]
