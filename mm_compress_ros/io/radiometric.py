"""16-bit (radiometric) thermal frames: the one real frame in the data set, and synthetic sequences.

Radiometric thermal cameras (FLIR Boson/Tau RAW16, Lepton radiometric) deliver ``mono16`` counts
(14 significant bits on most cores). A scene uses only a narrow band of those codes: the real frame
in ``../shared/data/radiometric/example_radiometric.tiff`` spans 6743-7077 (330 distinct values),
with a temporal/pixel noise of about 3-4 counts and a column/row fixed pattern of a few tens of
counts. The data set has no 16-bit *sequences*, so :func:`synthetic_radiometric` makes some from
the 8-bit thermal clips, the way a radiometric camera would have seen them:

* a smooth 8-bit -> counts mapping: a light Gaussian blur of the 8-bit frame (so the values are not
  multiples of the gain) times a gain, plus an offset, so that the scene spans a few hundred to a
  few thousand counts around ~7000-8000 (for 14 bits), never the full range;
* a fixed-pattern offset per column and per row, drawn once per sequence and kept for all frames;
* temporal Gaussian read noise of a few counts, new for every frame;
* rounding and clipping to ``[0, 2**bits - 1]``.

Everything is drawn from ``numpy.random.default_rng(seed)``: the same frames and seed give the same
sequence. No ROS or PyTorch imports here.
"""

from __future__ import annotations

import os
from typing import Iterable

import cv2
import numpy as np


def read_radiometric(path: str | os.PathLike) -> np.ndarray:
    """Reads a 16-bit gray image (e.g. a RAW16 TIFF) as ``HxW uint16``; ValueError otherwise."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError(f"cannot read image {path}")
    if img.dtype != np.uint16 or img.ndim != 2:
        chans = 1 if img.ndim == 2 else img.shape[2]
        raise ValueError(f"{path}: not a 16-bit gray image ({img.dtype}, {chans} channel(s))")
    return img


def synthetic_radiometric(frames8: Iterable[np.ndarray], bits: int = 14, seed: int = 0, *,
                          center: float | None = None, span: float | None = None,
                          read_noise: float = 3.0, column_fpn: float = 6.0, row_fpn: float = 3.0,
                          blur_sigma: float = 0.8) -> list[np.ndarray]:
    """Radiometric-like ``HxW uint16`` frames (``bits`` significant bits) from 8-bit thermal frames.

    ``frames8``: ``HxW uint8`` frames (``HxWx3`` with identical channels is accepted: the first
    channel is used), all of one size. ``center``: the count that 8-bit level 128 maps to (default:
    drawn in 7000-8000, scaled by ``2**(bits - 14)``). ``span``: counts covered by the 8-bit range
    0-255 (default: drawn in 400-2500, scaled the same way). ``read_noise``: standard deviation of
    the temporal noise in counts; ``column_fpn`` / ``row_fpn``: standard deviations of the fixed
    column / row offsets in counts; ``blur_sigma``: the smoothing before scaling (pixels).
    """
    if not 9 <= bits <= 16:
        raise ValueError(f"bits must be 9..16, got {bits}")
    rng = np.random.default_rng(seed)
    scale = 2.0 ** (bits - 14)
    if center is None:
        center = rng.uniform(7000.0, 8000.0) * scale
    if span is None:
        span = rng.uniform(400.0, 2500.0) * scale
    gain = span / 255.0
    top = float(2 ** bits - 1)
    out: list[np.ndarray] = []
    fpn = None
    for i, f in enumerate(frames8):
        f = np.asarray(f)
        if f.ndim == 3:
            f = f[..., 0]
        if f.dtype != np.uint8 or f.ndim != 2:
            raise ValueError(f"frame {i}: expected HxW uint8, got {f.dtype} {f.shape}")
        if fpn is None:
            h, w = f.shape
            fpn = (rng.normal(0.0, column_fpn, (1, w)) + rng.normal(0.0, row_fpn, (h, 1)))
        elif f.shape != fpn.shape:
            raise ValueError(f"frame {i}: size {f.shape} differs from the first frame's {fpn.shape}")
        x = f.astype(np.float64)
        if blur_sigma > 0:
            x = cv2.GaussianBlur(x, (0, 0), blur_sigma, borderType=cv2.BORDER_REFLECT)
        v = center + gain * (x - 128.0) + fpn + rng.normal(0.0, read_noise, f.shape)
        out.append(np.clip(np.rint(v), 0.0, top).astype(np.uint16))
    return out
