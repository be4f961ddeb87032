"""Tests of the napari wing (``napari_segrefiner/_napari``): real viewers where marked ``gui``."""
