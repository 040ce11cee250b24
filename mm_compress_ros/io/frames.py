"""Reading and writing RGB + thermal frames: folders, paired videos, 8/16-bit normalisation.

Conventions used everywhere in the project:

* RGB frames are ``HxWx3 uint8`` in RGB order.
* Thermal frames are ``HxW`` ``uint8`` or ``uint16`` (one gray channel; PNGs stored as three
  identical channels are read as one).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
VIDEO_EXTS = (".mp4", ".mkv", ".avi", ".mov", ".webm")


class FrameSourceError(ValueError):
    """A frame source is missing, empty or unreadable (one-line message)."""


def default_data_root() -> Path | None:
    """``../shared/data`` next to the repository when it exists, else ``$MM_DATA_ROOT``."""
    env = os.environ.get("MM_DATA_ROOT")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parents[2]
    cand = here.parent / "shared" / "data"
    return cand if cand.is_dir() else None


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise FrameSourceError(f"cannot read image {path}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_thermal(path: str | os.PathLike) -> np.ndarray:
    """Reads a thermal image as one gray channel, keeping 16-bit depth when the file has it."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise FrameSourceError(f"cannot read image {path}")
    if img.ndim == 3:
        img = img[..., 0] if img.shape[2] in (3, 4) else img[..., 0]
    if img.dtype not in (np.uint8, np.uint16):
        raise FrameSourceError(f"{path}: unsupported pixel type {img.dtype}")
    return img


def write_rgb(path: str | os.PathLike, rgb: np.ndarray) -> None:
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise FrameSourceError(f"cannot write {path}")


def write_thermal(path: str | os.PathLike, thermal: np.ndarray) -> None:
    if not cv2.imwrite(str(path), thermal):
        raise FrameSourceError(f"cannot write {path}")


def list_images(folder: str | os.PathLike) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise FrameSourceError(f"not a directory: {folder}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS)
    if not files:
        raise FrameSourceError(f"no images in {folder}")
    return files


def iter_video(path: str | os.PathLike, gray: bool) -> Iterator[np.ndarray]:
    import av

    try:
        container = av.open(str(path))
    except Exception as exc:  # PyAV raises several types (FileNotFoundError, InvalidDataError)
        raise FrameSourceError(f"cannot open video {path}: {exc}") from None
    with container:
        for frame in container.decode(video=0):
            yield frame.to_ndarray(format="gray" if gray else "rgb24")


def iter_source(src: str | os.PathLike, modality: str) -> Iterator[np.ndarray]:
    """Frames of one modality from a directory of images (sorted by name) or a video file."""
    src = Path(src)
    gray = modality == "thermal"
    if src.is_dir():
        reader = read_thermal if gray else read_rgb
        for p in list_images(src):
            yield reader(p)
    elif src.is_file() and src.suffix.lower() in VIDEO_EXTS:
        yield from iter_video(src, gray)
    elif src.exists():
        raise FrameSourceError(f"{src}: not a frame directory or a video ({', '.join(VIDEO_EXTS)})")
    else:
        raise FrameSourceError(f"no such file or directory: {src}")


def input_fps(src: str | os.PathLike) -> float | None:
    """The frame rate a video file declares (None for a frame folder, or a video without one)."""
    import av

    src = Path(src)
    if src.is_dir() or not src.is_file():
        return None
    try:
        with av.open(str(src)) as c:
            rate = c.streams.video[0].average_rate or c.streams.video[0].guessed_rate
    except (av.FFmpegError, IndexError):
        return None
    return float(rate) if rate else None


def count_frames(src: str | os.PathLike) -> int:
    src = Path(src)
    if src.is_dir():
        return len(list_images(src))
    import av

    try:
        with av.open(str(src)) as c:
            n = c.streams.video[0].frames
            if n:
                return int(n)
            return sum(1 for _ in c.decode(video=0))
    except FrameSourceError:
        raise
    except Exception as exc:
        raise FrameSourceError(f"cannot open video {src}: {exc}") from None


def iter_pairs(rgb_src, thermal_src) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Frame pairs from two sources; refuses sources of different lengths up front."""
    n_rgb, n_th = count_frames(rgb_src), count_frames(thermal_src)
    if n_rgb != n_th:
        raise FrameSourceError(f"frame counts differ: {n_rgb} RGB frames in {rgb_src}, "
                               f"{n_th} thermal frames in {thermal_src}")
    yield from zip(iter_source(rgb_src, "rgb"), iter_source(thermal_src, "thermal"))
