"""The viewer's pictures: one frame and display setting -> one JPEG WebSocket message.

ROS-free (numpy and OpenCV): RGB as it is, thermal mapped to 8 bits with its value range (the page
applies the colormap), scaled down to ``max_width``, JPEG-coded once per frame and setting and
cached on the frame, so that browsers with the same settings share one encode.
"""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field

import numpy as np

MODALITIES = ("rgb", "thermal")
COLORMAPS = ("inferno", "ironbow", "gray")
RANGE_MODES = ("auto", "fixed")


@dataclass
class Frame:
    """The newest image of one modality (replaced, never queued). ``jpegs`` caches the payloads
    made from it per display setting, so that browsers with the same settings share one encode."""
    modality: str
    version: int
    pixels: np.ndarray        # rgb: HxWx3 uint8 in RGB order; thermal: HxW uint8 or uint16
    encoding: str
    stamp_ns: int
    frame_id: str
    jpegs: dict = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def thermal_range(pixels: np.ndarray, mode: str, fixed: tuple[float, float]) -> tuple[float, float]:
    """The value range mapped to the colormap: ``auto``, the 1st..99th percentile of this frame;
    ``fixed``, the given (lo, hi), where (0, 0) is the encoding's full range."""
    full = float(np.iinfo(pixels.dtype).max)
    if mode == "fixed":
        lo, hi = (0.0, full) if fixed[0] == 0 and fixed[1] == 0 else (float(fixed[0]), float(fixed[1]))
    else:
        sample = pixels[::2, ::2] if pixels.size > 65536 else pixels
        lo, hi = (float(v) for v in np.percentile(sample, (1.0, 99.0)))
    if hi <= lo:
        hi = lo + 1.0
    return lo, hi


def to_8bit(pixels: np.ndarray, lo: float, hi: float) -> np.ndarray:
    scaled = (pixels.astype(np.float32) - np.float32(lo)) * np.float32(255.0 / (hi - lo))
    return np.clip(scaled + 0.5, 0, 255).astype(np.uint8)


def pack(meta: dict, jpeg: bytes) -> bytes:
    """One WebSocket binary message: 4-byte big-endian length, JSON metadata, JPEG bytes."""
    head = json.dumps(meta, separators=(",", ":")).encode()
    return len(head).to_bytes(4, "big") + head + jpeg


def frame_payload(frame: Frame, range_mode: str, fixed: tuple[float, float], jpeg_quality: int,
                  max_width: int) -> tuple[bytes, dict]:
    """The JPEG message for one frame and display setting (cached on the frame)."""
    import cv2

    if frame.modality == "thermal":
        key = ("fixed", fixed) if range_mode == "fixed" else ("auto",)
    else:
        key = ()
    with frame.lock:
        hit = frame.jpegs.get(key)
        if hit is not None:
            return hit
        px = frame.pixels
        meta = {"modality": frame.modality, "version": frame.version, "stamp_ns": frame.stamp_ns,
                "frame_id": frame.frame_id, "encoding": frame.encoding,
                "width": int(px.shape[1]), "height": int(px.shape[0])}
        if frame.modality == "thermal":
            lo, hi = thermal_range(px, range_mode, fixed)
            meta.update(range_mode=range_mode, lo=lo, hi=hi, min=float(px.min()), max=float(px.max()),
                        full=float(np.iinfo(px.dtype).max))
            img = to_8bit(px, lo, hi)
        else:
            img = cv2.cvtColor(px, cv2.COLOR_RGB2BGR)
        if max_width > 0 and img.shape[1] > max_width:
            h = max(1, round(img.shape[0] * max_width / img.shape[1]))
            img = cv2.resize(img, (max_width, h), interpolation=cv2.INTER_AREA)
        ok, jpeg = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        hit = (pack(meta, jpeg.tobytes()), meta)
        frame.jpegs[key] = hit
        return hit
