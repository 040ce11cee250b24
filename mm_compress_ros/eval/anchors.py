"""Traditional-codec anchors, run for real: HEVC (libx265 through PyAV) and JPEG (OpenCV).

Every anchor takes a list of frames of one modality (RGB ``HxWx3 uint8`` or thermal ``HxW
uint8``) and returns one :class:`CodedFrame` per input frame: the bits that frame costs on the
wire and the frame a decoder reconstructs from them (decoded by FFmpeg's HEVC decoder or
OpenCV's JPEG decoder, never taken from the encoder).

The anchors are the entries of :data:`ANCHOR_TABLE` at the end of this module: name, coding
function, setting (QP, JPEG quality: :data:`SETTINGS`), whether the key-frame interval applies,
the label of the RD report and the setup text of docs/results.md. ``mm-compress eval`` and
benchmarks/results.py read everything about the anchors from there, so a new anchor is one entry
(plus a :class:`Setting` when it is run at a new kind of setting).

* :func:`x265_intra` - HEVC intra set up like BPG (bpgenc's x265 back end).
* :func:`x265_video` - HEVC low-delay P. Per-frame bits are packet sizes.
* :func:`jpeg` - OpenCV ``imencode``, as ROS ``compressed_image_transport`` sends.

x265 options go through the codec context's ``x265-params`` option (FFmpeg's libx265 wrapper);
``preset`` and ``tune`` are libx265 options of their own. With a raw codec context (no
container, so no global header) FFmpeg's wrapper makes x265 repeat VPS/SPS/PPS before every
key frame, so every key-frame packet is decodable on its own and carries its header bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, Sequence

import cv2
import numpy as np


class AnchorError(ValueError):
    """An anchor cannot code these frames (one-line message)."""


@dataclass(frozen=True)
class Setting:
    """The number an anchor is run at, one value per RD point."""
    option: str                 # `mm-compress eval` / results.py option (--qp, --jpeg-quality) and
                                # key of evaluate()'s ``settings``
    name: str                   # in reports: "qp", "quality"
    what: str                   # in messages: "QP", "JPEG quality"
    lo: int
    hi: int
    defaults: tuple[int, ...]
    help: str = ""

    def check(self, value: int) -> None:
        if not self.lo <= value <= self.hi:
            raise AnchorError(f"{self.what} must be {self.lo}..{self.hi}, got {value}")


QP = Setting("qp", "qp", "QP", 0, 51, (22, 27, 32, 37, 42, 47, 51), "x265 QPs")
JPEG_QUALITY = Setting("jpeg_quality", "quality", "JPEG quality", 1, 100, (5, 10, 20, 35, 50, 75, 90),
                       "JPEG qualities")


@dataclass
class CodedFrame:
    bits: int
    decoded: np.ndarray
    key: bool = True     # coded without reference to other frames (from the packet's key flag)


# -- colour conversion (full-range BT.601 YCbCr, as bpgenc's default and JPEG) ----------------

def rgb_to_ycbcr_planes(rgb: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 RGB -> 3xHxW uint8 planes Y, Cb, Cr (full range, BT.601)."""
    ycrcb = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb)
    return np.ascontiguousarray(np.stack([ycrcb[..., 0], ycrcb[..., 2], ycrcb[..., 1]]))


def ycbcr_planes_to_rgb(planes: np.ndarray) -> np.ndarray:
    ycrcb = np.ascontiguousarray(np.stack([planes[0], planes[2], planes[1]], axis=-1))
    return cv2.cvtColor(ycrcb, cv2.COLOR_YCrCb2RGB)


def _check_frames(frames: Sequence[np.ndarray]) -> str:
    if not frames:
        raise AnchorError("no frames to code")
    f0 = frames[0]
    for f in frames:
        if f.shape != f0.shape or f.dtype != f0.dtype:
            raise AnchorError(f"all frames must have one shape and type: {f.shape} {f.dtype} "
                              f"vs {f0.shape} {f0.dtype}")
    if f0.dtype != np.uint8:
        raise AnchorError(f"the anchors code 8-bit frames; got {f0.dtype}")
    if f0.ndim == 2:
        return "gray"
    if f0.ndim == 3 and f0.shape[2] == 3:
        return "rgb"
    raise AnchorError(f"frames must be HxW (thermal) or HxWx3 (RGB), got {f0.shape}")


# -- HEVC via PyAV ---------------------------------------------------------------------------

def _x265_params(qp: int, extra: dict) -> str:
    QP.check(qp)
    params = {"qp": qp, "info": 0, "log-level": "error", **extra}
    return ":".join(f"{k}={v}" for k, v in params.items())


def x265_encode_decode(frames: Sequence[np.ndarray], qp: int, preset: str, tune: str | None,
                       params: dict) -> list[CodedFrame]:
    """Codes ``frames`` as one HEVC stream with libx265 and decodes it with FFmpeg's decoder."""
    import av

    kind = _check_frames(frames)
    h, w = frames[0].shape[:2]
    enc = av.CodecContext.create("libx265", "w")
    enc.width, enc.height = w, h
    enc.pix_fmt = "gray" if kind == "gray" else "yuv444p"
    enc.time_base = Fraction(1, 30)
    enc.framerate = Fraction(30, 1)
    options = {"preset": preset, "x265-params": _x265_params(qp, params)}
    if tune:
        options["tune"] = tune
    enc.options = options

    packets = []
    for i, f in enumerate(frames):
        if kind == "gray":
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="gray")
        else:
            vf = av.VideoFrame.from_ndarray(rgb_to_ycbcr_planes(f), format="yuv444p")
        vf.pts = i
        vf.time_base = enc.time_base
        packets.extend(enc.encode(vf))
    packets.extend(enc.encode(None))

    bits = [0] * len(frames)
    keys = [False] * len(frames)
    for p in packets:
        if p.pts is None or not 0 <= p.pts < len(frames):
            raise AnchorError(f"x265 returned a packet with unexpected pts {p.pts}")
        bits[p.pts] += 8 * p.size
        keys[p.pts] = keys[p.pts] or bool(p.is_keyframe)

    dec = av.CodecContext.create("hevc", "r")
    decoded = []
    for p in packets:
        pkt = av.Packet(bytes(p))
        pkt.pts = p.pts
        decoded.extend(dec.decode(pkt))
    decoded.extend(dec.decode(None))
    if len(decoded) != len(frames):
        raise AnchorError(f"HEVC decoder returned {len(decoded)} frames for {len(frames)}")
    decoded.sort(key=lambda fr: fr.pts)

    out = []
    for b, k, fr in zip(bits, keys, decoded):
        if kind == "gray":
            img = fr.to_ndarray(format="gray")
        else:
            if fr.format.name != "yuv444p":
                raise AnchorError(f"HEVC decoder returned {fr.format.name}, expected yuv444p")
            planes = fr.to_ndarray()  # (3, H, W) for yuv444p
            img = ycbcr_planes_to_rgb(planes)
        out.append(CodedFrame(b, np.ascontiguousarray(img), k))
    return out


def x265_intra(frames: Sequence[np.ndarray], qp: int, preset: str = "slow",
               tune: str | None = "ssim") -> list[CodedFrame]:
    """HEVC all-intra (BPG-like): every frame an IDR picture with its own parameter sets."""
    return x265_encode_decode(frames, qp, preset, tune,
                              {"keyint": 1, "min-keyint": 1, "scenecut": 0, "bframes": 0,
                               "frame-threads": 1, "repeat-headers": 1})


def x265_video(frames: Sequence[np.ndarray], qp: int, keyint: int = 10, preset: str = "medium",
               tune: str | None = "psnr") -> list[CodedFrame]:
    """HEVC low-delay P: an IDR every ``keyint`` frames, P frames between, no B frames."""
    if keyint < 1:
        raise AnchorError(f"keyint must be >= 1, got {keyint}")
    return x265_encode_decode(frames, qp, preset, tune,
                              {"keyint": keyint, "min-keyint": keyint, "scenecut": 0, "bframes": 0,
                               "b-adapt": 0, "open-gop": 0, "frame-threads": 1, "repeat-headers": 1})


# -- JPEG via OpenCV -------------------------------------------------------------------------

def jpeg(frames: Sequence[np.ndarray], quality: int) -> list[CodedFrame]:
    """Baseline JPEG at ``quality`` (1..100), colour as 4:2:0 YCbCr, gray as one component."""
    kind = _check_frames(frames)
    JPEG_QUALITY.check(quality)
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    if kind == "rgb":
        params += [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420]
    out = []
    for f in frames:
        src = cv2.cvtColor(f, cv2.COLOR_RGB2BGR) if kind == "rgb" else f
        ok, buf = cv2.imencode(".jpg", src, params)
        if not ok:
            raise AnchorError("OpenCV could not encode a JPEG")
        data = buf.tobytes()
        img = cv2.imdecode(np.frombuffer(data, np.uint8),
                           cv2.IMREAD_COLOR if kind == "rgb" else cv2.IMREAD_GRAYSCALE)
        if kind == "rgb":
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        out.append(CodedFrame(8 * len(data), img))
    return out


# -- the table ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Anchor:
    name: str
    code: Callable[[Sequence[np.ndarray], int, int], list[CodedFrame]]  # (frames, setting, keyint)
    setting: Setting
    label: str                  # RD report legend; ``{keyint}`` is filled in
    setup: str                  # docs/results.md "Setup"; ``{keyint}`` and ``{settings}`` are filled in
    uses_keyint: bool = False   # coded with key frames every ``keyint`` frames (GOP, cache key)

    def gop(self, keyint: int) -> int:
        return keyint if self.uses_keyint else 1


ANCHOR_TABLE: dict[str, Anchor] = {a.name: a for a in (
    Anchor("x265-intra", lambda frames, qp, keyint: x265_intra(frames, qp), QP,
           "HEVC intra, BPG-like (libx265 preset slow, tune ssim, keyint 1, 4:4:4 / gray)",
           "HEVC all-intra set up like BPG (bpgenc's x265 back end): libx265 through PyAV, preset slow, "
           "tune ssim (as bpgenc), keyint 1, constant QP (x265 codes I frames at QP - 3, its default "
           "ipratio 1.4, as in BPG), one frame thread, parameter sets repeated in every frame, no info "
           "SEI. RGB as 4:4:4 full-range BT.601 YCbCr (BPG's default), thermal as 4:0:0 gray. "
           "QPs {settings}."),
    Anchor("x265-video", lambda frames, qp, keyint: x265_video(frames, qp, keyint=keyint), QP,
           "HEVC low-delay P (libx265 preset medium, tune psnr, bframes 0, keyint {keyint})",
           "HEVC low-delay P: libx265 preset medium, tune psnr, bframes 0, keyint {keyint} (no scene "
           "cut, closed GOP), constant QP (same QPs), one frame thread, parameter sets repeated at "
           "every key frame, no info SEI; per-frame bits are packet sizes; same colour handling as "
           "x265-intra.", uses_keyint=True),
    Anchor("jpeg", lambda frames, quality, keyint: jpeg(frames, quality), JPEG_QUALITY,
           "JPEG (OpenCV, 4:2:0 / gray), as compressed_image_transport",
           "OpenCV `imencode` (libjpeg), RGB as 4:2:0 YCbCr, thermal as one gray component: what ROS "
           "`compressed_image_transport` sends. Qualities {settings}."),
)}
ANCHORS = tuple(ANCHOR_TABLE)
SETTINGS: tuple[Setting, ...] = tuple(dict.fromkeys(a.setting for a in ANCHOR_TABLE.values()))


def anchor(name: str) -> Anchor:
    try:
        return ANCHOR_TABLE[name]
    except KeyError:
        raise AnchorError(f"unknown anchor {name!r}; use one of {', '.join(ANCHORS)}") from None


def run_anchor(name: str, frames: Sequence[np.ndarray], setting: int, keyint: int = 10) -> list[CodedFrame]:
    """Runs anchor ``name`` (see :data:`ANCHOR_TABLE`) at ``setting``: the QP (x265) or the quality (JPEG)."""
    return anchor(name).code(frames, setting, keyint)
