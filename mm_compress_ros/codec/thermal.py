"""The standard thermal layer: the thermal camera as a stream of its own (the *standard* profile).

Beside the learned dependent codec (thermal given the decoded RGB, ``thermal_codec`` learned), the
thermal modality can ride the same kind of stream users already have for every camera:

* ``h264`` / ``h265``: a low-delay stream like the RGB layer (:mod:`.videocodec`: same encoder
  family, one access unit per frame, its key frames where the RGB layer's are, the QP the same
  quality knob gives the RGB layer). 8-bit thermal is coded as luma with flat chroma (4:2:0), what
  every player, Foxglove and WebCodecs decode. 16-bit thermal (``mono16``/``16UC1`` counts of a
  radiometric camera) is coded by H.265 at 12 bits (4:0:0, libx265's 12-bit build): the GOP's range
  of counts is mapped onto the 4096 codes (:func:`thermal_range`, sent in the header as ``lo``/``hi``)
  and mapped back at the decoder, so a 16-bit stream comes back as 16-bit counts with a known
  largest error; H.264 codes 8 bits only and refuses such frames.
* ``lossless``: every thermal value exact, 8 or 16 bits (:mod:`.lossless`), each frame self-contained.

The encoder decodes its own thermal access unit (a gray picture: about a millisecond) and sends the
largest error it saw, in the thermal's own units (counts for 16-bit), in the packet header.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .packet import SIXTEEN_BIT
from .profiles import AUTO
from .videocodec import LowDelayEncoder, VideoCodecError, VideoDecoder



def resolve(choice: str, fmt: str) -> str:
    """The thermal codec a user's choice means for thermal of format ``fmt``."""
    if choice != AUTO:
        return choice
    return "h265" if fmt in SIXTEEN_BIT else "h264"


CODE_MAX_12 = 4095   # 12-bit codes: 0..4095
MIN_WINDOW_12 = 256  # counts: the narrowest 16-bit range a 12-bit GOP codes (16 codes per count)


def thermal_range(th: np.ndarray, fmt: str, codec: str) -> tuple[int, int]:
    """The (lo, hi) a GOP starting with ``th`` codes: the values the layer's codes 0 and top map to.

    8-bit thermal: (0, 255). Lossless 16-bit: (0, 65535), nothing is mapped. The learned codec and
    12-bit H.265 map the frame's range plus a margin of 1/8 of its span to their codes; for 12 bits
    the window is at least :data:`MIN_WINDOW_12` counts wide, so a count is at most 16 codes: a
    QP then costs about the same error relative to the scene's range as in an 8-bit layer (x265
    scales its quantiser with the bit depth). A later frame of the GOP with a value outside the
    range starts a new GOP (:func:`fits`): nothing is ever clipped."""
    if fmt not in SIXTEEN_BIT:
        return (0, 255)
    if codec == "lossless":
        return (0, 65535)
    lo, hi = int(th.min()), int(th.max())
    m = max((hi - lo) // 8, 16)
    lo, hi = max(lo - m, 0), min(hi + m, 65535)
    if codec != "learned" and hi - lo < MIN_WINDOW_12:
        lo = min(max((lo + hi - MIN_WINDOW_12) // 2, 0), 65535 - MIN_WINDOW_12)
        hi = lo + MIN_WINDOW_12
    return lo, hi


def fits(th: np.ndarray, rng: tuple[int, int]) -> bool:
    """Whether every value of ``th`` lies in ``rng`` (else the encoder starts a new range)."""
    return rng[0] <= int(th.min()) and int(th.max()) <= rng[1]


def to_codes12(th: np.ndarray, rng: tuple[int, int]) -> np.ndarray:
    """16-bit counts in ``rng`` -> 12-bit codes (integer rounding)."""
    lo, hi = rng
    span = hi - lo
    v = th.astype(np.int64) - lo
    return ((v * CODE_MAX_12 + span // 2) // span).astype(np.uint16)


def from_codes12(codes: np.ndarray, rng: tuple[int, int]) -> np.ndarray:
    """Inverse of :func:`to_codes12`."""
    lo, hi = rng
    span = hi - lo
    c = np.minimum(codes.astype(np.int64), CODE_MAX_12)
    return (lo + (c * span + CODE_MAX_12 // 2) // CODE_MAX_12).astype(np.uint16)


@dataclass
class CodedThermal:
    sections: list[bytes]
    image: np.ndarray          # the thermal picture a decoder outputs (HxW uint8 / uint16)
    max_error: int = 0         # largest |image - input| (encoder side)


class VideoThermal:
    """H.264 / H.265 thermal layer (one section: an Annex B access unit)."""

    def __init__(self, codec: str, encoder: str = "auto"):
        self.codec, self.encoder_choice = codec, encoder
        self._enc: dict[str, LowDelayEncoder] = {}
        self._dec = VideoDecoder(codec)

    @property
    def encoder_name(self) -> str | None:
        return next((e.name for e in self._enc.values() if e.name), None)

    @staticmethod
    def layout(fmt: str) -> str:
        return "gray12le" if fmt in SIXTEEN_BIT else "yuv420p"

    def check(self, fmt: str) -> str | None:
        """Why this layer cannot code thermal of format ``fmt`` (one line), or None."""
        if fmt in SIXTEEN_BIT and self.codec != "h265":
            return (f"thermal codec {self.codec} codes 8-bit thermal only; for {fmt} use thermal codec h265 "
                    "(12-bit, counts come back as 16-bit) or lossless (exact)")
        return None

    def reset(self) -> None:
        self._dec.reset()

    def _picture(self, data: bytes, fmt: str, size, key: bool, rng) -> np.ndarray:
        if key:
            self._dec.reset()
        layout = self.layout(fmt)
        pic = self._dec.decode(data, size, 1, layout)
        return from_codes12(pic, rng) if layout == "gray12le" else pic

    def encode(self, th: np.ndarray, fmt: str, key: bool, qp: int, rng: tuple[int, int]) -> CodedThermal:
        layout = self.layout(fmt)
        if layout not in self._enc:
            self._enc[layout] = LowDelayEncoder(self.codec, self.encoder_choice, layout)
        frame = to_codes12(th, rng) if layout == "gray12le" else th
        data = self._enc[layout].encode(frame, qp, key)
        image = self._picture(data, fmt, th.shape, key, rng)
        err = int(np.abs(image.astype(np.int32) - th.astype(np.int32)).max())
        return CodedThermal([data], image, err)

    def decode(self, sections, fmt: str, size, key: bool, rng: tuple[int, int]) -> np.ndarray:
        return self._picture(sections[0], fmt, size, key, rng)


class LosslessThermal:
    """Lossless thermal layer (one section: one self-contained picture, every value exact)."""

    codec = "lossless"
    encoder_name = None

    def __init__(self):
        from .lossless import Lossless16Decoder, Lossless16Encoder

        self._enc, self._dec = Lossless16Encoder(), Lossless16Decoder()

    def check(self, fmt: str) -> str | None:
        return None

    def reset(self) -> None:
        pass

    def encode(self, th: np.ndarray, fmt: str, key: bool, qp: int, rng) -> CodedThermal:
        # 8-bit thermal rides the same 16-bit coder (FFV1 codes prediction residuals: the unused
        # high bits cost next to nothing) and comes back as 8-bit
        return CodedThermal([self._enc.encode(th.astype(np.uint16, copy=False))], th, 0)

    def decode(self, sections, fmt: str, size, key: bool, rng) -> np.ndarray:
        img = self._dec.decode(sections[0], size)
        if fmt not in SIXTEEN_BIT:
            if int(img.max()) > 255:
                raise VideoCodecError("lossless thermal picture has 16-bit values in an 8-bit stream")
            img = img.astype(np.uint8)
        return img


def make_thermal(codec: str, encoder: str = "auto"):
    """The standard thermal layer for ``codec`` (h264, h265 or lossless)."""
    if codec == "lossless":
        return LosslessThermal()
    if codec in ("h264", "h265"):
        return VideoThermal(codec, encoder)
    raise ValueError(f"unknown standard thermal codec {codec!r}; use h264, h265 or lossless")
