"""Evaluation inputs: RGB + thermal sequences from a frame-sequence folder or paired videos.

``DATA`` may be

* a folder of sequences, ``DATA/<seq>/{rgb,thermal}/NNNN.png`` (like ``m3svd_seq``), or
  ``DATA/<clip>/{rgb,thermal}.mp4`` (like ``m3svd_video``);
* one sequence, ``DATA/{rgb,thermal}/`` or ``DATA/{rgb,thermal}.mp4``.

Thermal frames are read as one gray channel (``read_thermal``). A crop (``WxH``) is taken from
the centre of every frame, the same window for both modalities when they have the same size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..io.frames import VIDEO_EXTS, FrameSourceError, iter_pairs


@dataclass
class Sequence:
    name: str
    rgb: list[np.ndarray] = field(default_factory=list)
    thermal: list[np.ndarray] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rgb)


def parse_crop(text: str | None) -> tuple[int, int] | None:
    """``"WxH"`` -> (W, H); None for None or empty."""
    if not text:
        return None
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise FrameSourceError(f"crop must look like WIDTHxHEIGHT (e.g. 256x192), got {text!r}") from None
    if w < 16 or h < 16:
        raise FrameSourceError(f"crop {w}x{h} is smaller than 16x16")
    return w, h


def center_crop(img: np.ndarray, crop: tuple[int, int] | None) -> np.ndarray:
    if crop is None:
        return img
    w, h = crop
    H, W = img.shape[:2]
    if w > W or h > H:
        raise FrameSourceError(f"crop {w}x{h} is larger than the {W}x{H} frames")
    y0, x0 = (H - h) // 2, (W - w) // 2
    return np.ascontiguousarray(img[y0: y0 + h, x0: x0 + w])


def _source(folder: Path, modality: str) -> Path | None:
    d = folder / modality
    if d.is_dir():
        return d
    for ext in VIDEO_EXTS:
        f = folder / f"{modality}{ext}"
        if f.is_file():
            return f
    return None


def find_sequences(data: str | Path) -> list[tuple[str, Path, Path]]:
    """(name, rgb source, thermal source) of every sequence under ``data``, sorted by name."""
    data = Path(data)
    if not data.exists():
        raise FrameSourceError(f"no such file or directory: {data}")
    if not data.is_dir():
        raise FrameSourceError(f"{data} is not a folder of sequences")
    rgb, th = _source(data, "rgb"), _source(data, "thermal")
    if rgb and th:
        return [(data.name, rgb, th)]
    out = []
    for sub in sorted(p for p in data.iterdir() if p.is_dir()):
        rgb, th = _source(sub, "rgb"), _source(sub, "thermal")
        if rgb and th:
            out.append((sub.name, rgb, th))
    if not out:
        raise FrameSourceError(f"no sequences in {data}: expected <seq>/rgb + <seq>/thermal "
                               "(frame folders or .mp4 files)")
    return out


def load_sequences(data: str | Path, frames: int = 0, crop: tuple[int, int] | None = None,
                   sequences: list[str] | None = None) -> list[Sequence]:
    """Reads the first ``frames`` pairs (0 = all) of every sequence, centre-cropped to ``crop``."""
    found = find_sequences(data)
    if sequences:
        known = {n for n, _, _ in found}
        missing = [s for s in sequences if s not in known]
        if missing:
            raise FrameSourceError(f"no sequence {', '.join(missing)} in {data} "
                                   f"(have: {', '.join(sorted(known))})")
        found = [f for f in found if f[0] in sequences]
    out = []
    for name, rgb_src, th_src in found:
        seq = Sequence(name)
        for rgb, th in iter_pairs(rgb_src, th_src):
            if frames and len(seq) >= frames:
                break
            seq.rgb.append(center_crop(rgb, crop))
            seq.thermal.append(center_crop(th, crop))
        if not seq.rgb:
            raise FrameSourceError(f"sequence {name} has no frames")
        out.append(seq)
    return out
