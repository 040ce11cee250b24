"""Coded references: the reference modality of a paired clip coded once by H.264 at a few QPs,
for training the hybrid profile's dependent codec where no encoder is installed.

The CPU trainer codes each sample's reference crops with libx264/libx265 through PyAV at the QP of
the sample's level (``Trainer._video_refs``). The lent GPU machine has no PyAV and its OpenCV has
no H.264 encoder, and coding crops one sample at a time would starve the GPU anyway. So
``make device-pack ARCH=rt`` codes every paired clip's RGB here, whole frames as the robot's
encoder does (low delay, an IDR every ``GOP`` frames), at the QPs of :data:`CODED_QPS`, and packs
the Annex B streams as ``rgb_h264_qp<QP>.h264`` beside ``thermal.mp4``. The trainer there decodes
them once into memory and gives each sample the coded picture at the packed QP nearest its level's.

Decoding is exact with PyAV (this machine: :func:`..codec.videocodec.from_yuv` on the decoded
planes, the very pictures the hybrid decoder conditions on). OpenCV, on the GPU machine, hands out
either the luma plane alone or a BGR picture converted by swscale with another chroma upsampling;
there the exact luma is combined with chroma estimated from that BGR picture (BT.601 matrix, 2x2
mean), which came within 58 dB of the exact pictures on an m3svd_video clip (max. difference 4
levels, 3.5 % of the values off). That is a training stand-in: models are measured with the
exact decoder.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import cv2
import numpy as np

from ..codec.profiles import reference_qp

CODEC = "h264"
# the QPs of levels 1, 32 and 64 of the real-time model (codec.profiles.reference_qp: 37, 30, 22)
CODED_QPS = tuple(reference_qp(level, 64) for level in (1, 32, 64))
GOP = 10                     # the stream's default key-frame interval
_NAME = re.compile(r"rgb_h264_qp(\d+)\.h264$")


def coded_name(qp: int) -> str:
    return f"rgb_{CODEC}_qp{qp}.{CODEC}"


def coded_files(clip: Path) -> dict[int, Path]:
    """The coded references of a clip folder, by QP."""
    out = {}
    for p in clip.glob("rgb_*_qp*.*"):
        m = _NAME.fullmatch(p.name)
        if m:
            out[int(m.group(1))] = p
    return dict(sorted(out.items()))


def code_clip(frames, qp: int, gop: int = GOP) -> bytes:
    """The frames (HxWx3 uint8) as one low-delay H.264 stream at ``qp``: Annex B access units."""
    from ..codec.videocodec import LowDelayEncoder

    enc = LowDelayEncoder(CODEC, "software")
    return b"".join(enc.encode(f, qp, k % gop == 0) for k, f in enumerate(frames))


def _planes(flat: np.ndarray, h: int, w: int):
    q = h * w // 4
    return (flat[: h * w].reshape(h, w), flat[h * w: h * w + q].reshape(h // 2, w // 2),
            flat[h * w + q: h * w + 2 * q].reshape(h // 2, w // 2))


def _read_av(path: Path, limit: int | None) -> list[np.ndarray]:
    import av

    from ..codec.videocodec import from_yuv

    out = []
    with av.open(str(path), format=CODEC) as c:
        for fr in c.decode(video=0):
            if limit is not None and len(out) >= limit:
                break
            if fr.format.name != "yuv420p":
                raise ValueError(f"{path}: {fr.format.name} pictures, expected yuv420p")
            h, w = fr.height, fr.width
            y, u, v = (np.frombuffer(p, np.uint8).reshape(-1, p.line_size)[:, : pw]
                       for p, pw in zip(fr.planes, (w, w // 2, w // 2)))
            out.append(from_yuv(y, u, v, (h, w), 3))
    return out


def _frames_cv2(path: Path, raw: bool, limit: int | None) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ValueError(f"cannot open {path}")
    if raw:
        cap.set(cv2.CAP_PROP_CONVERT_RGB, 0)
    level = cv2.getLogLevel()
    cv2.setLogLevel(2)  # errors only: OpenCV warns on every raw picture
    out = []
    try:
        while limit is None or len(out) < limit:
            ok, fr = cap.read()
            if not ok:
                break
            out.append(fr)
    finally:
        cap.release()
        cv2.setLogLevel(level)
    return out


def _read_cv2(path: Path, limit: int | None) -> list[np.ndarray]:
    from ..codec.videocodec import from_yuv

    raws, bgrs = _frames_cv2(path, True, limit), _frames_cv2(path, False, limit)
    out = []
    for raw, bgr in zip(raws, bgrs):
        h, w = bgr.shape[:2]
        flat = raw.reshape(-1)
        if flat.size >= h * w * 3 // 2:   # an OpenCV that hands out the whole picture: exact
            out.append(from_yuv(*_planes(flat, h, w), (h, w), 3))
            continue
        y = flat[: h * w].reshape(h, w)
        rgb = bgr[:, :, ::-1].astype(np.float64)
        r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
        cb = -0.148 * r - 0.291 * g + 0.439 * b + 128
        cr = 0.439 * r - 0.368 * g - 0.071 * b + 128

        def mean2(c):
            return (c[0::2, 0::2] + c[1::2, 0::2] + c[0::2, 1::2] + c[1::2, 1::2]) / 4

        u, v = (np.clip(np.round(mean2(c)), 0, 255).astype(np.uint8) for c in (cb, cr))
        out.append(from_yuv(y, u, v, (h, w), 3))
    return out


def read_coded(path: Path, limit: int | None = None, decoder: str = "auto") -> list[np.ndarray]:
    """The decoded pictures (HxWx3 uint8) of a coded reference stream, at most ``limit``."""
    if decoder == "auto":
        decoder = "av" if importlib.util.find_spec("av") else "cv2"
    return _read_av(Path(path), limit) if decoder == "av" else _read_cv2(Path(path), limit)


def nearest(qps, qp: int) -> int:
    """Index of the packed QP nearest ``qp`` (the lower QP, the better picture, on a tie)."""
    return min(range(len(qps)), key=lambda i: (abs(qps[i] - qp), qps[i]))
