"""Returning large blocks to the system (napari_segrefiner.models.allocator)."""

from __future__ import annotations

import subprocess
import sys


def test_the_setting_takes_effect_on_linux_glibc_and_is_harmless_elsewhere():
    # in a child: the setting is process-wide and the test process should keep its own
    code = "from napari_segrefiner.models.allocator import return_large_blocks as r; print(r())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    expected = sys.platform.startswith("linux") and "glibc" in " ".join(__import__("platform").libc_ver())
    assert out == str(bool(expected))
