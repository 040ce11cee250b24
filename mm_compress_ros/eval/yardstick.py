"""The yardstick of docs/results.md: what x265 low-delay P needs **on each camera** for the PSNR
our stream reached on that camera.

:func:`log_rate_at` reads an anchor's bits per pixel at a PSNR off its measured points (log-rate
interpolated linearly between the two nearest points in PSNR, no extrapolation);
``benchmarks/profiles.py`` uses it on the points of ``make results``. :func:`x265_at_psnr` measures
x265 low-delay P (``anchors.ANCHOR_TABLE["x265-video"]``: preset medium, tune psnr, bframes 0) on
given frames at as few QPs as bracket a target PSNR, and reads its rate there the same way
(``make demo`` uses it on the frames it published).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from . import anchors as anc
from .metrics import bpp, psnr

X265 = "x265-video"      # the anchor of the yardstick (ANCHOR_TABLE name)


def log_rate_at(points, modality: str, psnr_db: float, extrapolate_db: float = 0.0) -> float | None:
    """The bits per pixel of a codec at ``psnr_db`` on one modality, from its ``points``
    (``p[modality]["bpp"]``, ``p[modality]["psnr"]``): log-rate interpolated linearly between its
    two nearest points in PSNR; up to ``extrapolate_db`` beyond its measured range along the end
    segment; None further out."""
    pts = sorted((p[modality]["psnr"], np.log(p[modality]["bpp"])) for p in points
                 if p[modality]["bpp"] and p[modality]["psnr"] is not None)
    if not pts:
        return None
    xs, ys = [a for a, _ in pts], [b for _, b in pts]
    if not xs[0] - extrapolate_db <= psnr_db <= xs[-1] + extrapolate_db:
        return None
    if len(xs) > 1 and not xs[0] <= psnr_db <= xs[-1]:
        i = 0 if psnr_db < xs[0] else -2
        slope = (ys[i + 1] - ys[i]) / (xs[i + 1] - xs[i])
        x0, y0 = (xs[0], ys[0]) if psnr_db < xs[0] else (xs[-1], ys[-1])
        return float(np.exp(y0 + slope * (psnr_db - x0)))
    return float(np.exp(np.interp(psnr_db, xs, ys)))


def x265_point(frames: Sequence[np.ndarray], qp: int, keyint: int = 10) -> dict:
    """x265 low-delay P at ``qp`` on ``frames`` (one stream): mean per-frame bpp and PSNR (RGB: MSE
    over the 3 channels, peak 255; as the RD tables), as ``{"qp": qp, "x": {"bpp", "psnr"}}``."""
    coded = anc.run_anchor(X265, list(frames), qp, keyint=keyint)
    return {"qp": qp, "x": {"bpp": float(np.mean([bpp(c.bits, f.shape) for f, c in zip(frames, coded)])),
                                 "psnr": float(np.mean([min(psnr(f, c.decoded), 100.0)
                                                        for f, c in zip(frames, coded)]))}}


def x265_at_psnr(frames: Sequence[np.ndarray], psnr_db: float, keyint: int = 10, start_qp: int = 32,
                 step: int = 5) -> dict:
    """x265 low-delay P's bits per pixel at ``psnr_db`` on ``frames`` (8-bit RGB or gray, one
    camera): coded at ``start_qp``, then ``step`` QPs at a time towards the target until two QPs
    bracket it (QP 0..51), rate read with :func:`log_rate_at`.

    Returns ``{"bpp": float | None, "qps": [...], "points": [...], "range": (lo, hi) dB}``;
    ``bpp`` is None when even QP 0 / 51 cannot reach the PSNR (the range says how far it goes)."""
    if not np.isfinite(psnr_db):
        raise anc.AnchorError(f"no finite PSNR to match ({psnr_db})")
    points = [x265_point(frames, start_qp, keyint)]
    below = points[0]["x"]["psnr"] < psnr_db          # too coarse: lower the QP
    qp = start_qp
    while True:
        qp = qp - step if below else qp + step
        qp = max(0, min(51, qp))
        if qp == points[-1]["qp"]:
            break                                      # at QP 0 / 51 without reaching it
        points.append(x265_point(frames, qp, keyint))
        if (points[-1]["x"]["psnr"] >= psnr_db) == below:
            break                                      # bracketed
    psnrs = [p["x"]["psnr"] for p in points]
    return {"bpp": log_rate_at(points, "x", psnr_db), "qps": [p["qp"] for p in points],
            "points": [{"qp": p["qp"], **p["x"]} for p in points], "range": (min(psnrs), max(psnrs))}
