"""Masks and measures shared by the coarse-mask synthesis tests (perturb, synthesis)."""

from __future__ import annotations

import cv2
import numpy as np


def rng(seed=0):
    return np.random.default_rng(seed)


def iou(a, b):
    u = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / u if u else 1.0


def blob(h=160, w=200):
    m = np.zeros((h, w), np.uint8)
    cv2.ellipse(m, (w // 2, h // 2), (w // 3, h // 4), 25, 0, 360, 1, -1)
    cv2.circle(m, (w // 2 + w // 4, h // 2 - h // 5), h // 8, 1, -1)
    return m.astype(bool)


def disk(h, w, cy, cx, r):
    yy, xx = np.mgrid[:h, :w]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def square(n=40, y=15, x=15, side=10):
    m = np.zeros((n, n), bool)
    m[y : y + side, x : x + side] = True
    return m


def assert_input_not_mutated(fn, dtype):
    """``fn`` of a bool or 0/255 uint8 blob neither changes its input nor returns a view of it."""
    m = blob(80, 90).astype(dtype) * (1 if dtype is bool else 255)
    m = m.astype(dtype)
    before = m.copy()
    out = fn(m)
    assert np.array_equal(m, before)
    assert out is not m and not np.shares_memory(out, m)
