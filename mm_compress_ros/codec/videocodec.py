"""Low-delay H.264 / H.265 through PyAV (libavcodec): the standard-codec reference layer's engine.

Every frame in gives exactly one Annex B access unit out (no B-frames, no lookahead, no frame
threading: nothing is held back). Key frames are IDR pictures, come when the caller asks for them
(the multi-modality stream aligns them with its GOP), and carry their parameter sets (VPS/SPS/PPS),
so a late joiner, a bag player or Foxglove can start from any key frame.

Colour conversion is done here in integer arithmetic (BT.601, limited range, 4:2:0 with centred
chroma), never by swscale: the decoded picture that conditions the learned dependent codec must be
bit-identical at the encoder and at every decoder, whatever the platform. H.264/H.265 decoding is
bit-exact by specification; the conversion to RGB is made exact by this module.
"""

from __future__ import annotations

import logging
from fractions import Fraction

import av
import numpy as np

log = logging.getLogger(__name__)

# codec name -> (software encoder, NVENC encoder, decoder)
CODECS = {
    "h264": ("libx264", "h264_nvenc", "h264"),
    "h265": ("libx265", "hevc_nvenc", "hevc"),
}
ENCODERS = ("auto", "software", "nvenc")
QP_RANGE = (0, 51)
# how a frame is laid out for the encoder: ``yuv420p`` (RGB, or gray as luma with flat chroma: what
# every player and WebCodecs decode), ``gray12le`` (4:0:0, 12-bit: radiometric thermal, x265 only)
PIXEL_LAYOUTS = ("yuv420p", "gray12le")


class VideoCodecError(ValueError):
    """The standard codec cannot be opened or a bitstream cannot be decoded (one-line message)."""


# -- colour: RGB <-> YUV 4:2:0 (BT.601 limited range), integers only --------------------------

def rgb_to_yuv420(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """HxWx3 uint8 (H, W even) -> Y (HxW), U, V (H/2 x W/2), limited range, 8-bit fixed point."""
    r, g, b = (rgb[..., i].astype(np.int32) for i in range(3))
    y = (66 * r + 129 * g + 25 * b + 128 >> 8) + 16
    # chroma from the 2x2 average (centred siting, as the decoder's upsampler assumes)
    def avg(c):
        return (c[0::2, 0::2] + c[1::2, 0::2] + c[0::2, 1::2] + c[1::2, 1::2] + 2) >> 2
    ra, ga, ba = avg(r), avg(g), avg(b)
    u = (-38 * ra - 74 * ga + 112 * ba + 128 >> 8) + 128
    v = (112 * ra - 94 * ga - 18 * ba + 128 >> 8) + 128
    return tuple(np.clip(p, 0, 255).astype(np.uint8) for p in (y, u, v))


def _upsample2(c: np.ndarray) -> np.ndarray:
    """2x chroma upsampling with (3/4, 1/4) weights per axis (centred siting), exact integers.
    Returns the chroma plane times 16 (two rounding-free passes); the caller divides."""
    c = c.astype(np.int32)
    def axis(a, ax):
        prev = np.concatenate([np.take(a, [0], ax), np.take(a, range(a.shape[ax] - 1), ax)], ax)
        nxt = np.concatenate([np.take(a, range(1, a.shape[ax]), ax), np.take(a, [-1], ax)], ax)
        lo, hi = 3 * a + prev, 3 * a + nxt
        out = np.empty(a.shape[:ax] + (2 * a.shape[ax],) + a.shape[ax + 1:], np.int32)
        idx = [slice(None)] * a.ndim
        idx[ax] = slice(0, None, 2)
        out[tuple(idx)] = lo
        idx[ax] = slice(1, None, 2)
        out[tuple(idx)] = hi
        return out
    return axis(axis(c, 0), 1)


def yuv420_to_rgb(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Inverse of :func:`rgb_to_yuv420`: HxWx3 uint8, integer arithmetic only."""
    c = y.astype(np.int32) - 16
    d = _upsample2(u) - 16 * 128       # x16
    e = _upsample2(v) - 16 * 128
    # 298/256 = 1.164, 409/256 = 1.596, 100/256 = 0.391, 208/256 = 0.813, 516/256 = 2.018 (x16 on chroma)
    base = 298 * 16 * c + 128 * 16
    r = (base + 409 * e) >> 12
    g = (base - 100 * d - 208 * e) >> 12
    b = (base + 516 * d) >> 12
    return np.clip(np.stack([r, g, b], axis=-1), 0, 255).astype(np.uint8)


def _even(img: np.ndarray) -> np.ndarray:
    """Replicate-pads to even height and width (4:2:0 needs them); the decoder crops back."""
    ph, pw = img.shape[0] % 2, img.shape[1] % 2
    if not (ph or pw):
        return img
    pad = ((0, ph), (0, pw)) + (((0, 0),) if img.ndim == 3 else ())
    return np.pad(img, pad, mode="edge")


def to_yuv(img: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """RGB (HxWx3) or gray (HxW, coded as luma with neutral chroma) uint8 -> 4:2:0 planes."""
    img = _even(img)
    if img.ndim == 2:
        h, w = img.shape
        y = ((img.astype(np.int32) * 219 + 127) // 255 + 16).astype(np.uint8)
        u = np.full((h // 2, w // 2), 128, np.uint8)
        return y, u, u.copy()
    return rgb_to_yuv420(img)


def from_yuv(y, u, v, size: tuple[int, int], channels: int) -> np.ndarray:
    """4:2:0 planes -> RGB (channels 3) or gray (channels 1) uint8, cropped to ``size`` (H, W)."""
    h, w = size
    if channels == 1:
        g = (np.clip(y.astype(np.int32) - 16, 0, 219) * 255 + 109) // 219
        return np.ascontiguousarray(g[:h, :w].astype(np.uint8))
    return np.ascontiguousarray(yuv420_to_rgb(y, u, v)[:h, :w])


# -- encoder ----------------------------------------------------------------------------------

def _nvenc_usable() -> bool:
    try:
        import torch
        return torch.cuda.is_available()
    except ImportError:  # pragma: no cover - torch is a dependency
        return False


def _options(encoder: str, qp: int) -> dict:
    """Encoder settings: the most efficient ones that keep a 640x480 pair (RGB + thermal layer)
    above 30 pairs/s on 2 cores with zero added latency (benchmarks/encoder_settings.py,
    docs/benchmarks.md "Standard layers"): libx264 preset medium, libx265 preset faster, both with
    tune zerolatency and without psycho-visual tuning (psy-rd trades PSNR for texture)."""
    if encoder == "libx264":
        return {"preset": "medium", "tune": "zerolatency", "qp": str(qp), "bframes": "0",
                "forced-idr": "1", "g": "1000000", "sc_threshold": "0",
                "x264-params": "rc-lookahead=0:sync-lookahead=0:colormatrix=smpte170m:colorprim=smpte170m"
                               ":transfer=smpte170m:range=tv:log=-1:psy=0"}
    if encoder == "libx265":
        return {"preset": "faster", "tune": "zerolatency", "qp": str(qp), "forced-idr": "1",
                "x265-params": "repeat-headers=1:bframes=0:rc-lookahead=0:keyint=-1:scenecut=0:open-gop=0:frame-threads=1"
                               ":colormatrix=smpte170m:colorprim=smpte170m:transfer=smpte170m:range=limited"
                               ":log-level=error:info=0:psy-rd=0:psy-rdoq=0"}
    # NVENC: constant QP, ultra-low-latency tuning, no B-frames, IDR on request, headers in band
    return {"preset": "p1", "tune": "ull", "zerolatency": "1", "bf": "0", "rc": "constqp", "qp": str(qp),
            "forced-idr": "1", "g": "1000000", "delay": "0"}


class LowDelayEncoder:
    """One Annex B access unit per frame; :meth:`encode` with ``key=True`` makes an IDR.

    ``encoder``: ``software`` (libx264/libx265), ``nvenc`` (h264_nvenc/hevc_nvenc, fails without
    it) or ``auto`` (NVENC when the FFmpeg build has it and a GPU is present, else software, with
    one log line saying which). The context is (re)opened lazily for a new size or QP, always at a
    key frame.
    """

    def __init__(self, codec: str, encoder: str = "auto", layout: str = "yuv420p"):
        if codec not in CODECS:
            raise VideoCodecError(f"unknown video codec {codec!r}; use one of {sorted(CODECS)}")
        if encoder not in ENCODERS:
            raise VideoCodecError(f"unknown encoder {encoder!r}; use one of {ENCODERS}")
        if layout not in PIXEL_LAYOUTS:
            raise VideoCodecError(f"unknown pixel layout {layout!r}; use one of {PIXEL_LAYOUTS}")
        if layout == "gray12le" and codec != "h265":
            raise VideoCodecError("12-bit coding needs h265 (libx265's 12-bit build); h264 here codes 8-bit only")
        if layout == "gray12le":
            encoder = "software"   # NVENC has no 12-bit 4:0:0
            if "gray12le" not in {f.name for f in av.codec.Codec("libx265", "w").video_formats or ()}:
                raise VideoCodecError("this FFmpeg build's libx265 has no 12-bit support (gray12le)")
        self.codec, self.encoder, self.layout = codec, encoder, layout
        self._ctx = None
        self._key = None      # (width, height, qp) of the open context
        self._pts = 0
        self.name: str | None = None   # the libavcodec encoder in use

    def _open(self, width: int, height: int, qp: int) -> None:
        sw, hw, _ = CODECS[self.codec]
        names = {"software": [sw], "nvenc": [hw]}.get(self.encoder)
        if names is None:  # auto
            names = [hw, sw] if _nvenc_usable() else [sw]
        err = None
        for name in names:
            try:
                ctx = av.CodecContext.create(name, "w")
                ctx.width, ctx.height, ctx.pix_fmt = width, height, self.layout
                ctx.time_base = Fraction(1, 1000)
                ctx.thread_type = "SLICE"   # frame threading would hold frames back
                ctx.options = _options(name, qp)
                ctx.open()
            except (av.FFmpegError, ValueError) as exc:
                err = exc
                if name == hw and self.encoder == "auto":
                    log.warning("%s not usable (%s); using %s", hw, str(exc).splitlines()[0], sw)
                continue
            if self.name != name:
                log.info("reference video encoder: %s", name)
            self._ctx, self.name, self._key, self._pts = ctx, name, (width, height, qp), 0
            return
        raise VideoCodecError(f"cannot open the {self.codec} encoder {names[-1]}: {err}")

    def encode(self, img: np.ndarray, qp: int, key: bool) -> bytes:
        """Codes one RGB (HxWx3) or gray (HxW) uint8 frame (layout ``yuv420p``), or one HxW uint16
        frame of 12-bit values (``gray12le``); returns its access unit."""
        if not QP_RANGE[0] <= qp <= QP_RANGE[1]:
            raise VideoCodecError(f"QP {qp} outside {QP_RANGE[0]}..{QP_RANGE[1]}")
        planes = to_yuv(img) if self.layout == "yuv420p" else (_even(img),)
        h, w = planes[0].shape
        if self._ctx is None or self._key != (w, h, qp):
            self._open(w, h, qp)
            key = True
        frame = av.VideoFrame(w, h, self.layout)
        for plane, data in zip(frame.planes, planes):
            _write_plane(plane, data)
        frame.pts = self._pts
        self._pts += 1
        frame.pict_type = av.video.frame.PictureType.I if key else av.video.frame.PictureType.NONE
        packets = self._ctx.encode(frame)
        data = b"".join(bytes(p) for p in packets)
        if not data:  # an encoder that holds frames back breaks the low-delay contract
            raise VideoCodecError(f"{self.name} returned no access unit for a frame (it buffers frames)")
        return data


def _write_plane(plane, data: np.ndarray) -> None:
    stride = plane.line_size // data.itemsize
    h, w = data.shape
    buf = np.frombuffer(plane, data.dtype).reshape(-1, stride)
    buf[:h, :w] = data


def _read_plane(plane, h: int, w: int, dtype=np.uint8) -> np.ndarray:
    item = np.dtype(dtype).itemsize
    return np.frombuffer(plane, dtype).reshape(-1, plane.line_size // item)[:h, :w].copy()


# -- decoder ----------------------------------------------------------------------------------

class VideoDecoder:
    """Decodes one access unit into one picture, immediately (the streams carry no reordering)."""

    options: dict = {}   # decoder options (codec/motion.py's MotionDecoder: motion-vector export)

    def __init__(self, codec: str):
        if codec not in CODECS:
            raise VideoCodecError(f"unknown video codec {codec!r}; use one of {sorted(CODECS)}")
        self.codec = codec
        self._ctx = None

    def reset(self) -> None:
        """Forgets all state; the next access unit must be a key frame."""
        self._ctx = None

    def _frame(self, data: bytes, size: tuple[int, int], layout: str):
        """The one decoded frame of ``data`` (checked: one picture, of ``layout``, at least ``size``)."""
        if self._ctx is None:
            self._ctx = av.CodecContext.create(CODECS[self.codec][2], "r")
            self._ctx.thread_type = "SLICE"
            if self.options:
                self._ctx.options = dict(self.options)
        try:
            frames = self._ctx.decode(av.Packet(data))
        except (av.FFmpegError, ValueError) as exc:
            self.reset()
            raise VideoCodecError(f"{self.codec} access unit does not decode: {exc}") from None
        if len(frames) != 1:
            self.reset()
            raise VideoCodecError(f"{self.codec} access unit gave {len(frames)} pictures, expected 1")
        f = frames[0]
        fmt = f.format.name
        if fmt != layout or f.height < size[0] or f.width < size[1]:
            self.reset()
            raise VideoCodecError(f"{self.codec} picture is {f.width}x{f.height} {fmt}, "
                                  f"expected {size[1]}x{size[0]} {layout}")
        return f

    @staticmethod
    def _picture(f, size: tuple[int, int], channels: int) -> np.ndarray:
        if f.format.name == "gray12le":
            return np.ascontiguousarray(_read_plane(f.planes[0], f.height, f.width, np.uint16)[:size[0], :size[1]])
        h2, w2 = (f.height + 1) // 2, (f.width + 1) // 2
        y = _read_plane(f.planes[0], f.height, f.width)
        u = _read_plane(f.planes[1], h2, w2)
        v = _read_plane(f.planes[2], h2, w2)
        return from_yuv(y, u, v, size, channels)

    def decode(self, data: bytes, size: tuple[int, int], channels: int, layout: str = "yuv420p") -> np.ndarray:
        """Returns the picture of ``data`` as RGB (channels 3) or gray (1) uint8 of ``size`` (H, W);
        with ``layout`` gray12le, the 12-bit 4:0:0 picture as HxW uint16."""
        return self._picture(self._frame(data, size, layout), size, channels)
