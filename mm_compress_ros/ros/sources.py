"""Frame-pair sources for the sample publisher (no rclpy): a frame folder, paired videos, or a
built-in synthetic RGB + thermal scene.

Every source yields ``(rgb, thermal)`` with ``rgb`` an (H, W, 3) uint8 array in RGB order and
``thermal`` an (H, W) uint8 or uint16 array (the publisher converts to the thermal encoding).
Folders and videos are read with :mod:`mm_compress_ros.io.frames` (the project's conventions):

* folder: ``<dir>/rgb/*`` and ``<dir>/thermal/*`` image files paired by sorted order; thermal
  images stored as 3 identical channels are read as one gray channel; 16-bit files stay 16-bit.
* video: ``<dir>/rgb.mp4`` and ``<dir>/thermal.mp4`` decoded in lockstep (PyAV).
* synthetic: a deterministic moving scene (sky, road, a car and a pedestrian that are hot in the
  thermal image), labelled ``synthetic`` wherever it is reported.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

def detect_source(path: str | Path | None) -> str:
    """'synthetic' for an empty path, 'folder' or 'video' from the directory's contents."""
    if not path:
        return "synthetic"
    p = Path(path)
    if (p / "rgb").is_dir() and (p / "thermal").is_dir():
        return "folder"
    if (p / "rgb.mp4").is_file() and (p / "thermal.mp4").is_file():
        return "video"
    raise ValueError(f"{p}: expected rgb/ and thermal/ frame folders or rgb.mp4 and thermal.mp4")


def _resize(img: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    if not size or not size[0] or not size[1] or (img.shape[1], img.shape[0]) == tuple(size):
        return img
    import cv2

    return cv2.resize(img, (int(size[0]), int(size[1])), interpolation=cv2.INTER_AREA)


CACHE_BYTES = 256 * 2**20  # a looping source is kept in memory when it fits


def _looping(read_once, loop: bool, cache_bytes: int = CACHE_BYTES) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yields the pairs of ``read_once()``, again and again when ``loop``; the first pass is kept
    in memory (when it fits in ``cache_bytes``) so that later passes cost no decoding."""
    cache: list | None = []
    used = 0
    for pair in read_once():
        if cache is not None:
            used += pair[0].nbytes + pair[1].nbytes
            if loop and used <= cache_bytes:
                cache.append(pair)
            else:
                cache = None
        yield pair
    if not loop:
        return
    if cache:
        while True:
            yield from cache
    while True:
        yield from read_once()


def iter_folder(path, size=None, loop=False) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    from mm_compress_ros.io.frames import iter_pairs

    p = Path(path)

    def once():
        for rgb, th in iter_pairs(p / "rgb", p / "thermal"):
            yield _resize(rgb, size), _resize(th, size)

    return _looping(once, loop)


def iter_video(path, size=None, loop=False) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    from mm_compress_ros.io.frames import iter_pairs

    p = Path(path)

    def once():
        for rgb, th in iter_pairs(p / "rgb.mp4", p / "thermal.mp4"):
            yield _resize(rgb, size), _resize(th, size)

    return _looping(once, loop)


class SyntheticScene:
    """A deterministic RGB + thermal scene; frame ``t`` is a pure function of ``t``."""

    def __init__(self, width: int = 640, height: int = 480, seed: int = 0):
        self.w, self.h = int(width), int(height)
        rng = np.random.default_rng(seed)
        h, w = self.h, self.w
        y = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None]
        horizon = int(h * 0.45)
        sky = np.stack([120 + 60 * (1 - y), 160 + 50 * (1 - y), 230 + 0 * y], -1) * np.ones((1, w, 1))
        road = np.stack([90 + 20 * y, 90 + 20 * y, 95 + 20 * y], -1) * np.ones((1, w, 1))
        rgb = np.where(np.arange(h)[:, None, None] < horizon, sky, road).astype(np.float32)
        # Texture (fixed): grass band, lane markings, buildings on the horizon.
        grass = (np.arange(h)[:, None] >= horizon) & (np.arange(h)[:, None] < horizon + h // 12)
        rgb[grass[:, 0]] = [60, 130, 50]
        lane = (np.abs(np.arange(h) - int(h * 0.75))[:, None] < max(1, h // 120)) & \
            ((np.arange(w)[None, :] // max(1, w // 16)) % 2 == 0)
        rgb[lane] = [230, 230, 220]
        n_bld = 7
        th_bg = np.where(np.arange(h)[:, None] < horizon, 40 + 30 * y, 95 + 40 * y) * np.ones((1, w))
        th_bg = th_bg.astype(np.float32)
        for k in range(n_bld):
            bx0 = int(w * k / n_bld)
            bw = int(w / n_bld * 0.8)
            bh = int(horizon * rng.uniform(0.25, 0.7))
            col = rng.uniform(100, 200, 3)
            rgb[horizon - bh:horizon, bx0:bx0 + bw] = col
            th_bg[horizon - bh:horizon, bx0:bx0 + bw] = rng.uniform(70, 110)
            for wy in range(horizon - bh + 4, horizon - 4, max(4, h // 40)):  # windows
                rgb[wy:wy + max(2, h // 120), bx0 + 3:bx0 + bw - 3:max(4, w // 80)] = [250, 240, 170]
        noise = rng.normal(0, 6, (h, w, 1)).astype(np.float32)
        self._rgb_bg = np.clip(rgb + noise, 0, 255).astype(np.float32)
        self._th_bg = th_bg + rng.normal(0, 2, (h, w)).astype(np.float32)
        self._horizon = horizon
        self._yy, self._xx = np.mgrid[0:h, 0:w].astype(np.float32)
        self._seed = seed

    def frame(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        h, w = self.h, self.w
        rgb = self._rgb_bg.copy()
        th = self._th_bg.copy()
        # A car driving left to right along the road, wrapping around.
        cw, ch = max(8, w // 6), max(6, h // 10)
        cx = int((t * w / 90.0) % (w + cw)) - cw
        cy = int(h * 0.62)
        x0, x1 = max(0, cx), min(w, cx + cw)
        if x1 > x0:
            rgb[cy:cy + ch, x0:x1] = [200, 30, 30]
            rgb[cy + ch // 5:cy + ch // 2, x0:x1] = [60, 70, 90]  # windows
            th[cy:cy + ch, x0:x1] = 150
            ex0, ex1 = max(0, cx + int(cw * 0.75)), min(w, cx + cw)
            if ex1 > ex0:
                th[cy + ch // 3:cy + ch, ex0:ex1] = 235  # hot engine
        # A pedestrian walking right to left, bobbing.
        px = w - ((t * w / 150.0) % (w + 20))
        py = h * 0.55 + 3 * np.sin(t / 3.0)
        body = ((self._xx - px) / max(3, w / 80)) ** 2 + ((self._yy - py) / max(6, h / 14)) ** 2 < 1
        head = ((self._xx - px) ** 2 + (self._yy - (py - h / 11)) ** 2) < max(3, w / 110) ** 2
        person = body | head
        rgb[person] = [40, 60, 150]
        th[person] = 215
        # Slowly varying illumination and sensor noise (temporal).
        rng = np.random.default_rng((self._seed, t))
        rgb = rgb * (1.0 + 0.05 * np.sin(t / 25.0)) + rng.normal(0, 2, (h, w, 1))
        th = th + rng.normal(0, 1.5, (h, w))
        # Thermal optics are blurrier than visible optics.
        th = (th + np.roll(th, 1, 0) + np.roll(th, -1, 0) + np.roll(th, 1, 1) + np.roll(th, -1, 1)) / 5
        return (np.clip(rgb, 0, 255).round().astype(np.uint8),
                np.clip(th, 0, 255).round().astype(np.uint8))


def iter_synthetic(size=None, loop=True, frames=300) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    w, h = (size if size and size[0] and size[1] else (640, 480))
    scene = SyntheticScene(w, h)
    t = 0
    while loop or t < frames:
        yield scene.frame(t)
        t += 1


def open_source(kind: str, path: str | None, size=None, loop=True) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    if kind == "auto":
        kind = detect_source(path)
    if kind == "synthetic":
        return iter_synthetic(size, loop=loop)
    if kind == "folder":
        return iter_folder(path, size, loop=loop)
    if kind == "video":
        return iter_video(path, size, loop=loop)
    raise ValueError(f"unknown source {kind!r} (auto, synthetic, folder, video)")


def thermal_to_encoding(th: np.ndarray, encoding: str) -> np.ndarray:
    """A uint8 or uint16 thermal frame -> the array for a thermal encoding.

    8-bit data published as mono16/16UC1 is scaled 0..255 -> 0..65535 (v * 257, so that the way
    back to 8 bits is exact); 16-bit data published as mono8 keeps its high byte."""
    if encoding == "mono8":
        return th if th.dtype == np.uint8 else (th >> 8).astype(np.uint8)
    if encoding in ("mono16", "16UC1"):
        return th if th.dtype == np.uint16 else th.astype(np.uint16) * np.uint16(257)
    raise ValueError(f"unsupported thermal encoding {encoding!r} (mono8, mono16, 16UC1)")
