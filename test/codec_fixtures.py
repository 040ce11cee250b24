"""Real frames for codec tests: small crops of the lossless M3SVD sequences in ../shared/data."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("MMC_DATA", REPO.parent / "shared" / "data"))
SEQ = DATA / "m3svd_seq" / "0111_1716"


def need_data() -> None:
    if not SEQ.is_dir():
        pytest.fail(f"test data missing: {SEQ} (../shared/data must sit beside the repository)", pytrace=False)


@lru_cache(maxsize=None)
def frame(i: int, seq: Path = SEQ) -> tuple[np.ndarray, np.ndarray]:
    from mm_compress_ros.io.frames import read_rgb, read_thermal

    need_data()
    return read_rgb(seq / "rgb" / f"{i:04d}.png"), read_thermal(seq / "thermal" / f"{i:04d}.png")


def crop_pair(i: int, h: int = 128, w: int = 192, y: int = 160, x: int = 224):
    rgb, th = frame(i)
    return np.ascontiguousarray(rgb[y:y + h, x:x + w]), np.ascontiguousarray(th[y:y + h, x:x + w])


def write_crops(src: Path, n: int, sixteen_bit: bool = False, **crop) -> Path:
    """``src/rgb/NNNN.png`` and ``src/thermal/NNNN.png`` of the first ``n`` crops (``crop_pair``
    arguments); thermal as 16-bit PNGs (values * 257) with ``sixteen_bit``."""
    from mm_compress_ros.io.frames import write_rgb, write_thermal

    (src / "rgb").mkdir(parents=True)
    (src / "thermal").mkdir()
    for i in range(n):
        rgb, th = crop_pair(i, **crop)
        write_rgb(src / "rgb" / f"{i:04d}.png", rgb)
        write_thermal(src / "thermal" / f"{i:04d}.png", th.astype(np.uint16) * 257 if sixteen_bit else th)
    return src


def half_thermal_pair(i: int, h: int = 192, w: int = 256, y: int = 120, x: int = 160):
    """RGB at twice the thermal resolution, as on robots: the thermal crop is downscaled 2x."""
    rgb, th = frame(i)
    rgb = np.ascontiguousarray(rgb[y:y + h, x:x + w])
    th = cv2.resize(th[y:y + h, x:x + w], (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    return rgb, th


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(peak ** 2 / max(mse, 1e-12)))
