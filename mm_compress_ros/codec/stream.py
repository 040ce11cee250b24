"""GOP state shared by the stream encoder and decoder.

The encoder keeps its own *decoded* frames as the temporal context (never the originals), so the
encoder's and the decoder's states are identical frame after frame. Key frames come every ``gop``
frames, on request, at the start of a stream and whenever the input size or format changes. The
decoder never outputs a frame decoded against a wrong reference: after a missing, reordered or
corrupt packet it drops predicted frames until the next key frame and counts them.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from dataclasses import dataclass

import numpy as np
import torch

from .imaging import from_tensor, padded, to_tensor  # noqa: F401 (re-exported)
from .multimodal import Decoded
from .packet import (FRAME_KEY, FRAME_PREDICTED, FRAME_TYPES, PROFILES, REFERENCE_CODECS, SIXTEEN_BIT,
                     CorruptPacket, EntropyMismatch, Limits, ModelMismatch, PacketError, PacketHeader,
                     read_packet, write_packet)
from .ratecontrol import RateController
from .reference import make_reference, reference_qp
from .videocodec import VideoCodecError
from .zoo import LoadedModel, has_learned_reference


# PyTorch picks different CPU kernels by thread count (for example THNN for a batch-1 1x1
# convolution on one thread, oneDNN on several), and they round differently: a decoder running with
# another thread count than the encoder reconstructs frames that differ in the last bits, and the
# difference feeds the next predicted frame. The codec therefore computes on the CPU with a fixed
# number of threads, the same in every process, whatever the process's torch setting.
CODEC_THREADS = int(os.environ.get("MM_COMPRESS_CODEC_THREADS", "1"))


@contextlib.contextmanager
def codec_threads(device: torch.device, exact: bool = False):
    """Pins the thread count around a first-design network; ``exact`` networks (the real-time
    codec's integer decoder, rtcodec.py) decode identically on any thread count and keep them all."""
    if exact or device.type != "cpu" or torch.get_num_threads() == CODEC_THREADS:
        yield
        return
    saved = torch.get_num_threads()
    torch.set_num_threads(CODEC_THREADS)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


class InputError(ValueError):
    """Frames the encoder cannot take (wrong shape, type or format); one-line message."""


@dataclass
class DecodedPair:
    rgb: np.ndarray          # HxWx3 uint8, in ``rgb_format`` channel order
    thermal: np.ndarray      # HxW uint8 or uint16
    frame_type: str
    index: int
    rgb_format: str
    thermal_format: str
    header: PacketHeader


MAX_GAP_NS = 1_000_000_000   # capture stamps further apart than this (1 s) end the GOP


def stamp_step(last: int | None, stamp: int, max_gap_ns: int = MAX_GAP_NS) -> str:
    """How a frame's capture stamp follows the last coded one's: ``first`` (none before),
    ``next`` (0 < step <= max_gap_ns), ``same``, ``jump`` (ahead by more), ``back`` (behind by less
    than max_gap_ns) or ``reset`` (behind by max_gap_ns or more: a clock reset). The one rule of
    :class:`StreamEncoder` (a key frame after ``jump``, ``back`` or ``reset``) and of the
    encoding session (which also skips ``same`` and ``back`` pairs as stale)."""
    if last is None:
        return "first"
    d = stamp - last
    if d == 0:
        return "same"
    if d > 0:
        return "next" if d <= max_gap_ns else "jump"
    return "back" if -d < max_gap_ns else "reset"


def _thermal_format(th: np.ndarray, requested: str | None) -> str:
    if requested:
        want16 = requested in SIXTEEN_BIT
        if want16 != (th.dtype == np.uint16):
            raise InputError(f"thermal format {requested} does not match its {th.dtype} pixels")
        return requested
    return "mono16" if th.dtype == np.uint16 else "mono8"


def _check_inputs(rgb: np.ndarray, thermal: np.ndarray) -> None:
    if not (isinstance(rgb, np.ndarray) and rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.dtype == np.uint8):
        raise InputError(f"RGB frame must be HxWx3 uint8, got {getattr(rgb, 'shape', '?')} "
                         f"{getattr(rgb, 'dtype', type(rgb).__name__)}")
    if not (isinstance(thermal, np.ndarray) and thermal.ndim == 2 and thermal.dtype in (np.uint8, np.uint16)):
        raise InputError(f"thermal frame must be HxW uint8 or uint16, got {getattr(thermal, 'shape', '?')} "
                         f"{getattr(thermal, 'dtype', type(thermal).__name__)}")
    for name, a in (("RGB", rgb), ("thermal", thermal)):
        if min(a.shape[:2]) < 16:
            raise InputError(f"{name} frame {a.shape[1]}x{a.shape[0]} is smaller than 16x16")


class _Modalities:
    """Maps (rgb, thermal) to (reference, dependent) for the model's direction and back."""

    def __init__(self, model: LoadedModel):
        self.rgb_is_ref = model.net.ref_name == "rgb"

    def split(self, rgb, th):
        return (rgb, th) if self.rgb_is_ref else (th, rgb)

    def join(self, ref, dep):
        return (ref, dep) if self.rgb_is_ref else (dep, ref)


class StreamEncoder:
    """Codes frame pairs into packets.

    ``reference_codec`` picks how the reference modality is coded: ``learned`` (the model's own
    reference codec: the fully learned profile) or ``h264`` / ``h265`` (the hybrid profile, with
    ``encoder`` auto|software|nvenc; see :mod:`.reference`). The dependent modality is always
    coded by the model, given the decoded reference.

    A key frame is sent at the start, every ``gop`` frames, on :meth:`request_key_frame`, when the
    input size or pixel format changes, and when capture stamps (``stamp_ns`` of :meth:`encode`)
    jump forward by more than ``max_gap_ns`` or go backwards: after such a gap the previous frame
    is a poor (or wrong) temporal reference. Both layers' key frames coincide.
    """

    def __init__(self, model: LoadedModel, quality: int | None = None, gop: int = 10, stream_id: int | None = None,
                 max_gap_ns: int = MAX_GAP_NS, reference_codec: str = "learned", encoder: str = "auto",
                 target_kbps: float = 0.0, fps: float = 10.0):
        quality = model.default_quality if quality is None else quality
        if not 1 <= quality <= model.levels:
            raise ValueError(f"quality must be 1..{model.levels}, got {quality}")
        if gop < 1:
            raise ValueError(f"gop must be >= 1, got {gop}")
        if reference_codec not in REFERENCE_CODECS:
            raise ValueError(f"unknown reference codec {reference_codec!r}; use one of {sorted(REFERENCE_CODECS)}")
        self.model, self.quality, self.gop = model, quality, gop
        # target-bitrate mode (kbit/s of the pair): the controller moves the quality knob of both
        # layers at every key frame; ``fps`` is the frame rate until capture stamps tell it
        self.rate = RateController(1000.0 * target_kbps, model.levels, fps, start=quality) if target_kbps else None
        self._fps = fps
        self._pending = None            # (quality, target_kbps) of set_rate, applied at the next key frame
        if reference_codec == "learned" and not has_learned_reference(model.net):
            raise ValueError(f"model {model.name!r} codes only the dependent modality (hybrid profile); "
                             f"use reference_codec h264 or h265, or a fully learned model such as mmvc")
        self.reference_codec = reference_codec
        self.reference = make_reference(model.net, reference_codec, encoder)
        self.stream_id = secrets.randbits(32) if stream_id is None else stream_id
        self._mod = _Modalities(model)
        self._level = torch.tensor([quality - 1], device=model.device)
        self.frame_index = 0
        self.last_frame_type: str | None = None
        self._prev: Decoded | None = None
        self._since_key = 0
        self._force_key = True
        self._signature = None
        self._range = (0, 255)
        self._last_stamp: int | None = None
        self.max_gap_ns = max_gap_ns

    @property
    def last_decoded(self) -> Decoded | None:
        """The encoder's own reconstruction of the last pair (its temporal context)."""
        return self._prev

    @property
    def profile(self) -> str:
        return PROFILES[self.reference_codec]

    def last_pair(self) -> DecodedPair | None:
        """The images a decoder outputs for the last packet (the encoder's own reconstruction)."""
        return None if self._prev is None else _pair(self._mod, self._prev, self._header)

    def request_key_frame(self) -> None:
        self._force_key = True

    def set_rate(self, quality: int | None = None, target_kbps: float | None = None) -> None:
        """Changes the quality level and/or the target bitrate (kbit/s of the pair; 0 = constant
        quality) from the next key frame on (any thread; the GOP in progress keeps its settings)."""
        if quality is not None and not 1 <= quality <= self.model.levels:
            raise ValueError(f"quality must be 1..{self.model.levels}, got {quality}")
        if target_kbps is not None and target_kbps < 0:
            raise ValueError(f"target bitrate must be >= 0 kbit/s, got {target_kbps}")
        self._pending = (quality, target_kbps)

    def _apply_pending(self) -> None:
        pending, self._pending = self._pending, None
        if pending is None:
            return
        quality, target_kbps = pending
        if quality is not None:
            self.quality = quality
            if self.rate is not None:   # the controller moves on from the level asked for
                self.rate.x = float(quality)
        if target_kbps is not None:
            fps = self.rate.fps if self.rate is not None else self._fps
            self.rate = (RateController(1000.0 * target_kbps, self.model.levels, fps, start=self.quality)
                         if target_kbps > 0 else None)
        self._level = torch.tensor([self.quality - 1], device=self.model.device)

    def _thermal_range(self, th: np.ndarray, fmt: str, key: bool) -> tuple[int, int]:
        if fmt not in SIXTEEN_BIT:
            return (0, 255)
        if key:  # a margin so that predicted frames of the GOP rarely clip
            lo, hi = int(th.min()), int(th.max())
            m = max((hi - lo) // 8, 16)
            return max(lo - m, 0), min(hi + m, 65535)
        return self._range

    @torch.inference_mode()
    def encode(self, rgb: np.ndarray, thermal: np.ndarray, force_key: bool = False,
               rgb_format: str = "rgb8", thermal_format: str | None = None,
               stamp_ns: int | None = None) -> bytes:
        """Codes one frame pair and returns its packet. ``rgb`` must be in RGB channel order;
        ``rgb_format`` only records how the decoder should hand it back (rgb8 or bgr8)."""
        _check_inputs(rgb, thermal)
        if stamp_ns is not None:
            last, self._last_stamp = self._last_stamp, stamp_ns
            if stamp_step(last, stamp_ns, self.max_gap_ns) in ("jump", "back", "reset"):
                force_key = True
        if rgb_format not in ("rgb8", "bgr8"):
            raise InputError(f"unsupported RGB format {rgb_format!r} (rgb8 or bgr8)")
        tfmt = _thermal_format(thermal, thermal_format)
        ref_img, _ = self._mod.split(rgb, thermal)
        if self.reference_codec != "learned" and ref_img.dtype != np.uint8:
            raise InputError(f"the {self.reference_codec} reference layer codes 8-bit frames; "
                             f"use reference_codec learned for {tfmt} thermal as the reference")
        signature = (rgb.shape, thermal.shape, rgb_format, tfmt)
        requested, self._force_key = self._force_key, False   # a request made during encode() stays
        key = (force_key or requested or self._prev is None or self._since_key >= self.gop
               or signature != self._signature)
        lo, hi = self._thermal_range(thermal, tfmt, key)
        if key:
            self._apply_pending()
        if self.rate is not None:
            if key:
                self.rate.key_frame()
                self.quality = self.rate.level
                self._level = torch.tensor([self.quality - 1], device=self.model.device)
            qp = self.rate.qp
        else:
            qp = reference_qp(self.quality, self.model.levels)
        dev = self.model.device
        learned = self.reference_codec == "learned"   # only the learned reference takes a tensor
        ref, dep = self._mod.split(to_tensor(rgb, dev) if learned or not self._mod.rgb_is_ref else None,
                                   to_tensor(thermal, dev, lo, hi) if learned or self._mod.rgb_is_ref else None)
        net, level = self.model.net, self._level
        try:
            with codec_threads(dev, net.exact):
                cr = self.reference.encode(ref_img, ref, key, None if key else self._prev.ref, level, qp)
                d_str, d_dig, dep_hat, dep_state = net.compress_dep(
                    cr.x_hat, cr.stages, dep, level, None if key else self._prev.dep_state)
        except BaseException:
            # nothing was sent, but a standard codec's state may have moved on: restart with a key frame
            self._force_key = True
            raise
        header = PacketHeader(
            frame_type=FRAME_KEY if key else FRAME_PREDICTED, direction=self.model.direction,
            quality=self.quality, stream_id=self.stream_id, frame_index=self.frame_index,
            model_hash=self.model.hash8, model_id=self.model.model_id,
            rgb_size=rgb.shape[:2], rgb_format=rgb_format, thermal_size=thermal.shape[:2],
            thermal_format=tfmt, thermal_range=(lo, hi), index_digests=(cr.digest, d_dig),
            reference_codec=self.reference_codec, reference_qp=cr.qp,
        )
        packet = write_packet(header, [*cr.sections, *d_str])
        if self.rate is not None:
            self.rate.frame_coded(8 * len(packet), stamp_ns)
        self._header = header
        self._prev, self._signature, self._range = Decoded(cr.x_hat, dep_hat, dep_state), signature, (lo, hi)
        self._since_key = 1 if key else self._since_key + 1
        self.frame_index = (self.frame_index + 1) & 0xFFFFFFFF
        self.last_frame_type = FRAME_TYPES[header.frame_type]
        return packet


class StreamDecoder:
    """Decodes packets of either profile (the reference codec is read from each packet)."""

    def __init__(self, model: LoadedModel, limits: Limits = Limits()):
        self.model, self.limits = model, limits
        self._mod = _Modalities(model)
        self._references: dict[str, object] = {}
        self._prev: Decoded | None = None
        self._last: PacketHeader | None = None
        self.dropped = 0        # predicted frames received but not output (their reference is missing)
        self.lost = 0           # frame indexes never received (gaps in the sequence)
        self.decoded = 0

    @property
    def waiting_for_key(self) -> bool:
        return self._prev is None

    def reset(self) -> None:
        self._prev = self._last = None
        for r in self._references.values():
            r.reset()

    def _reference(self, codec: str):
        if codec not in self._references:
            self._references[codec] = make_reference(self.model.net, codec)
        return self._references[codec]

    def _check_model(self, h: PacketHeader) -> None:
        if h.model_hash != self.model.hash8 or h.direction != self.model.direction:
            raise ModelMismatch(
                f"stream was made with model {h.model_id!r} ({h.direction}, weights {h.model_hash.hex()}), "
                f"this decoder has {self.model.model_id!r} ({self.model.direction}, weights {self.model.hash8.hex()})")

    def _follows(self, h: PacketHeader) -> bool:
        last = self._last
        return (last is not None and h.stream_id == last.stream_id
                and h.frame_index == (last.frame_index + 1) & 0xFFFFFFFF
                and h.rgb_size == last.rgb_size and h.thermal_size == last.thermal_size
                and h.thermal_range == last.thermal_range and h.reference_codec == last.reference_codec)

    @torch.inference_mode()
    def decode(self, packet: bytes) -> DecodedPair | None:
        """Decodes one packet; ``None`` for a predicted frame whose reference is missing.

        Raises a :class:`PacketError` subclass for a malformed packet (and then waits for the next
        key frame, since the frame it carried is lost).
        """
        try:
            h, sections = read_packet(packet, self.limits)
            self._check_model(h)
        except PacketError:
            self.reset()
            raise
        if self._last is not None and h.stream_id == self._last.stream_id:
            gap = (h.frame_index - self._last.frame_index - 1) & 0xFFFFFFFF
            if 0 < gap < 1 << 16:
                self.lost += gap
        key = h.frame_type == FRAME_KEY
        if not key and (not self._follows(h) or self._prev is None):
            self.dropped += 1
            self.reset()
            return None
        if not 1 <= h.quality <= self.model.levels:
            self.reset()
            raise ModelMismatch(f"quality {h.quality} is not a level of this model (1..{self.model.levels})")
        net, dev = self.model.net, self.model.device
        level = torch.tensor([h.quality - 1], device=dev)
        ref_size, dep_size = self._mod.split(h.rgb_size, h.thermal_size)
        n_ref = sum(role == "ref" for role, _ in h.layout)
        try:
            with codec_threads(dev, net.exact):
                cr = self._reference(h.reference_codec).decode(
                    sections[:n_ref], ref_size, padded(ref_size), key, None if key else self._prev.ref,
                    level, h.index_digests[0], h.reference_qp)
                dep_sections, dep_pad = sections[n_ref:], padded(dep_size)
                dep_hat, dep_state = net.decompress_dep(dep_sections, cr.x_hat, cr.stages, dep_pad, level,
                                                        h.index_digests[1], None if key else self._prev.dep_state)
        except PacketError:   # a corrupt section, or entropy indexes that differ from the encoder's
            self.reset()
            raise
        except VideoCodecError as exc:
            self.reset()
            raise CorruptPacket(str(exc)) from None
        self._prev, self._last = Decoded(cr.x_hat, dep_hat, dep_state), h
        self.decoded += 1
        return _pair(self._mod, self._prev, h)


def _pair(mod: _Modalities, dec: Decoded, h: PacketHeader) -> DecodedPair:
    """The images a decoder outputs for ``dec`` (sizes, formats and 16-bit range from ``h``)."""
    rgb_t, th_t = mod.join(dec.ref, dec.dep)
    rgb = from_tensor(rgb_t, h.rgb_size)
    if h.rgb_format == "bgr8":
        rgb = np.ascontiguousarray(rgb[..., ::-1])
    sixteen = h.thermal_format in SIXTEEN_BIT
    th = from_tensor(th_t, h.thermal_size, np.uint16 if sixteen else np.uint8, *h.thermal_range)
    return DecodedPair(rgb, th, h.frame_type_name, h.frame_index, h.rgb_format, h.thermal_format, h)
