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
from .keyframes import KeyFrameRule
from .multimodal import Decoded
from .packet import (FRAME_KEY, FRAME_PREDICTED, FRAME_TYPES, NO_MAX_ERROR, REFERENCE_CODECS, SIXTEEN_BIT,
                     STANDARD_THERMAL, THERMAL_CODECS, CorruptPacket, EntropyMismatch, Limits, ModelMismatch,
                     Packet, PacketError, PacketHeader, profile_name, read_packet, write_packet)
from .ratecontrol import RateController
from .profiles import (DEFAULT_DIRECTION, DEFAULT_GOP, DEFAULT_REFERENCE_CODEC, DEFAULT_THERMAL_CODEC, STANDARD_LEVELS,
                       check_profile, profile_name, reference_qp, thermal_for)
from .reference import make_reference
from .thermal import AUTO, fits, make_thermal, resolve, thermal_range
from .videocodec import VideoCodecError
from .zoo import LoadedModel, has_learned_reference

NO_MODEL_HASH = bytes(8)   # the weights hash of a stream coded without a learned model


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
    """Maps (rgb, thermal) to (reference, dependent) for the model's direction and back (no model:
    RGB is the reference, as in every standard-profile stream)."""

    def __init__(self, model: LoadedModel | None):
        self.rgb_is_ref = model is None or model.net.ref_name == "rgb"

    def split(self, rgb, th):
        return (rgb, th) if self.rgb_is_ref else (th, rgb)

    def join(self, ref, dep):
        return (ref, dep) if self.rgb_is_ref else (dep, ref)


@dataclass
class _Pictures:
    """The decoded pictures of a standard-profile pair (no learned layer, no tensors)."""

    rgb: np.ndarray | None     # None where the encoder skipped its local RGB decode
    thermal: np.ndarray


class StreamEncoder:
    """Codes frame pairs into packets.

    ``reference_codec`` picks how the reference modality (RGB) is coded: ``learned`` (the model's
    own reference codec: the fully learned profile) or ``h264`` / ``h265`` (with ``encoder``
    auto|software|nvenc; see :mod:`.reference`). ``thermal_codec`` picks how thermal is coded:
    ``learned`` (the model's dependent codec given the decoded reference: the hybrid profile) or a
    standard layer of its own, ``h264``, ``h265`` or ``lossless`` (the standard profile,
    :mod:`.thermal`; ``model`` is then None). Unset, it is learned when a model is given, else the
    default standard layer.

    The only key-frame decider: its :class:`~.keyframes.KeyFrameRule` (``keys``) sends a key frame at
    the start, every ``gop`` frames, on :meth:`request_key_frame`, when the input size or pixel
    format changes, when 16-bit thermal leaves the value range its GOP codes, and when capture
    stamps (``stamp_ns`` of :meth:`encode`) jump forward by more than the stream's own gap
    (:class:`~.keyframes.StampRhythm`; ``max_gap_ns`` for a fixed one) or go backwards. Both
    layers' key frames coincide. ``last_key_reason`` says why the last key frame was sent.

    ``reconstruct`` False lets a standard-profile encoder skip decoding its own RGB access units
    (nothing conditions on them there); :meth:`last_pair` then has no RGB picture.
    """

    def __init__(self, model: LoadedModel | None, quality: int | None = None, gop: int = DEFAULT_GOP,
                 stream_id: int | None = None, max_gap_ns: int | None = None,
                 reference_codec: str = DEFAULT_REFERENCE_CODEC, encoder: str = "auto",
                 target_kbps: float = 0.0, fps: float = 10.0, thermal_codec: str | None = None,
                 reconstruct: bool = True):
        if thermal_codec is None:   # a model codes thermal; without one, the default standard layer
            thermal_codec = "learned" if model is not None else DEFAULT_THERMAL_CODEC
        thermal_codec = thermal_for(reference_codec, thermal_codec, model is not None)
        check_profile(reference_codec, thermal_codec)
        self.thermal_choice = thermal_codec          # as asked: auto picks per thermal format
        self.thermal_codec = resolve(thermal_codec, "mono8")   # the codec of the frames being coded
        standard = thermal_codec in (*STANDARD_THERMAL, AUTO)
        if standard and model is not None:
            raise ValueError(f"thermal codec {thermal_codec} codes both cameras as standard streams and takes no "
                             f"model (got {model.name})")
        if not standard and model is None:
            raise ValueError(f"the {profile_name(reference_codec, thermal_codec)} profile needs a learned model")
        self.levels = model.levels if model is not None else STANDARD_LEVELS
        if quality is None:
            quality = model.default_quality if model is not None else (STANDARD_LEVELS + 1) // 2
        if not 1 <= quality <= self.levels:
            raise ValueError(f"quality must be 1..{self.levels}, got {quality}")
        self.keys = KeyFrameRule(gop, max_gap_ns)   # the key-frame rule (checks gop)
        self.model, self.quality, self.gop = model, quality, gop
        # target-bitrate mode (kbit/s of the pair): the controller moves the quality knob of both
        # layers at every key frame; ``fps`` is the frame rate until capture stamps tell it
        self.rate = RateController(1000.0 * target_kbps, self.levels, fps, start=quality) if target_kbps else None
        self._fps = fps
        self._pending = None            # (quality, target_kbps) of set_rate, applied at the next key frame
        if reference_codec == "learned" and not has_learned_reference(model.net):
            raise ValueError(f"model {model.name!r} codes only the dependent modality (hybrid profile); "
                             f"use reference_codec h264 or h265, or a fully learned model such as mmvc")
        self.reference_codec = reference_codec
        self.reference = make_reference(model.net if model is not None else None, reference_codec, encoder)
        self._encoder_choice = encoder
        self._thermals: dict[str, object] = {}       # standard thermal layers by codec
        self.thermal = self._thermal_layer(self.thermal_codec) if standard else None
        if standard and not reconstruct:
            self.reference.local_decode = False
        self.stream_id = secrets.randbits(32) if stream_id is None else stream_id
        self._mod = _Modalities(model)
        self._device = model.device if model is not None else torch.device("cpu")
        self._level = torch.tensor([quality - 1], device=self._device)
        self.frame_index = 0
        self.last_frame_type: str | None = None
        self.last_key_reason: str | None = None
        self._prev: Decoded | _Pictures | None = None
        self._header: PacketHeader | None = None
        self._range = (0, 255)

    @property
    def last_decoded(self) -> Decoded | None:
        """The encoder's own reconstruction of the last pair (its temporal context; learned layers)."""
        return self._prev if isinstance(self._prev, Decoded) else None

    @property
    def profile(self) -> str:
        return profile_name(self.reference_codec, self.thermal_codec)

    def _thermal_layer(self, codec: str):
        if codec not in self._thermals:
            self._thermals[codec] = make_thermal(codec, self._encoder_choice)
        return self._thermals[codec]

    @property
    def model_id(self) -> str:
        """The model the packets name ("" in the standard profile: no model)."""
        return self.model.model_id if self.model is not None else ""

    @property
    def codec_id(self) -> str:
        """What codes the stream, for EncodedFrame.codec and logs: the model, or (standard profile)
        the two layers' codecs, e.g. ``h264+h264``."""
        return self.model_id or f"{self.reference_codec}+{self.thermal_codec}"

    def last_pair(self) -> DecodedPair | None:
        """The images a decoder outputs for the last packet (the encoder's own reconstruction)."""
        if self._prev is None:
            return None
        if isinstance(self._prev, _Pictures):
            return _picture_pair(self._prev, self._header)
        return _pair(self._mod, self._prev, self._header)

    @property
    def last_source(self):
        """The ``source`` of the last coded pair (None before one)."""
        return self.keys.signature[-1] if self.keys.signature is not None else None

    @property
    def rhythm(self):
        """The stream's :class:`~.keyframes.StampRhythm` (when a gap in the capture stamps ends the GOP)."""
        return self.keys.rhythm

    def request_key_frame(self) -> None:
        self.keys.request()

    def set_rate(self, quality: int | None = None, target_kbps: float | None = None) -> None:
        """Changes the quality level and/or the target bitrate (kbit/s of the pair; 0 = constant
        quality) from the next key frame on (any thread; the GOP in progress keeps its settings)."""
        if quality is not None and not 1 <= quality <= self.levels:
            raise ValueError(f"quality must be 1..{self.levels}, got {quality}")
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
            self.rate = (RateController(1000.0 * target_kbps, self.levels, fps, start=self.quality)
                         if target_kbps > 0 else None)
        self._level = torch.tensor([self.quality - 1], device=self._device)

    @torch.inference_mode()
    def encode(self, rgb: np.ndarray, thermal: np.ndarray, force_key: bool = False,
               rgb_format: str = "rgb8", thermal_format: str | None = None,
               stamp_ns: int | None = None, source=None) -> bytes:
        """Codes one frame pair and returns its packet. ``rgb`` must be in RGB channel order;
        ``rgb_format`` only records how the decoder should hand it back (rgb8 or bgr8).
        ``source``: what the frames were made from, where the caller changed them (e.g. the
        input size before a resize; any comparable value): another source is a key frame."""
        _check_inputs(rgb, thermal)
        if rgb_format not in ("rgb8", "bgr8"):
            raise InputError(f"unsupported RGB format {rgb_format!r} (rgb8 or bgr8)")
        tfmt = _thermal_format(thermal, thermal_format)
        ref_img, _ = self._mod.split(rgb, thermal)
        if self.reference_codec != "learned" and ref_img.dtype != np.uint8:
            raise InputError(f"the {self.reference_codec} reference layer codes 8-bit frames; "
                             f"use reference_codec learned for {tfmt} thermal as the reference")
        if self.thermal is not None:
            codec = resolve(self.thermal_choice, tfmt)
            if (problem := self._thermal_layer(codec).check(tfmt)):
                raise InputError(problem)
        signature = (rgb.shape, thermal.shape, rgb_format, tfmt, source)
        reason = self.keys.reason(signature, stamp_ns, force_key,
                                  tfmt not in SIXTEEN_BIT or fits(thermal, self._range))
        key = reason is not None
        if self.thermal is not None and key:   # (a format change is a key frame: the codec follows it)
            self.thermal_codec = codec
            self.thermal = self._thermal_layer(codec)
        rng = thermal_range(thermal, tfmt, self.thermal_codec) if key else self._range
        if key:
            self._apply_pending()
        if self.rate is not None:
            if key:
                self.rate.key_frame()
                self.quality = self.rate.level
                self._level = torch.tensor([self.quality - 1], device=self._device)
            qp = self.rate.qp
        else:
            qp = reference_qp(self.quality, self.levels)
        try:
            if self.thermal is not None:
                sections, digests, tqp, max_error, decoded = self._encode_standard(rgb, thermal, tfmt, key, qp, rng)
            else:
                sections, digests, max_error, decoded = self._encode_learned(rgb, thermal, tfmt, key, qp, rng)
                tqp = 0
        except BaseException:
            # nothing was sent, but a standard codec's state may have moved on: restart with a key frame
            self.keys.request()
            raise
        header = PacketHeader(
            frame_type=FRAME_KEY if key else FRAME_PREDICTED,
            direction=self.model.direction if self.model is not None else DEFAULT_DIRECTION,
            quality=self.quality, stream_id=self.stream_id, frame_index=self.frame_index,
            model_hash=self.model.hash8 if self.model is not None else NO_MODEL_HASH, model_id=self.model_id,
            rgb_size=rgb.shape[:2], rgb_format=rgb_format, thermal_size=thermal.shape[:2],
            thermal_format=tfmt, thermal_range=rng, index_digests=digests,
            reference_codec=self.reference_codec, reference_qp=qp if self.reference_codec != "learned" else 0,
            thermal_codec=self.thermal_codec, thermal_qp=tqp, thermal_max_error=min(max_error, NO_MAX_ERROR),
        )
        packet = write_packet(header, sections)
        if self.rate is not None:
            self.rate.frame_coded(8 * len(packet), stamp_ns)
        self._header = header
        self._prev, self._range = decoded, rng
        self.keys.coded(key, signature)
        self.frame_index = (self.frame_index + 1) & 0xFFFFFFFF
        self.last_frame_type = FRAME_TYPES[header.frame_type]
        if key:
            self.last_key_reason = reason
        return packet

    def _encode_standard(self, rgb, thermal, tfmt, key, qp, rng):
        """Both cameras as standard streams: RGB by the reference layer, thermal by its own."""
        cr = self.reference.encode(rgb, None, key, None, None, qp)
        tqp = qp if self.thermal_codec != "lossless" else 0
        ct = self.thermal.encode(thermal, tfmt, key, tqp, rng)
        return [*cr.sections, *ct.sections], (0, 0), tqp, ct.max_error, _Pictures(cr.image, ct.image)

    def _encode_learned(self, rgb, thermal, tfmt, key, qp, rng):
        """The dependent modality by the model, given the decoded reference."""
        lo, hi = rng
        dev = self._device
        learned = self.reference_codec == "learned"   # only the learned reference takes a tensor
        ref_img, _ = self._mod.split(rgb, thermal)
        ref, dep = self._mod.split(to_tensor(rgb, dev) if learned or not self._mod.rgb_is_ref else None,
                                   to_tensor(thermal, dev, lo, hi) if learned or self._mod.rgb_is_ref else None)
        net, level = self.model.net, self._level
        with codec_threads(dev, net.exact):
            cr = self.reference.encode(ref_img, ref, key, None if key else self._prev.ref, level, qp)
            d_str, d_dig, dep_hat, dep_state = net.compress_dep(
                cr.x_hat, cr.stages, dep, level, None if key else self._prev.dep_state)
        max_error = NO_MAX_ERROR
        if self._mod.rgb_is_ref:   # thermal is the dependent: the largest error the decoder will show
            th_hat = from_tensor(dep_hat, thermal.shape, thermal.dtype, lo, hi)
            max_error = int(np.abs(th_hat.astype(np.int32) - thermal.astype(np.int32)).max())
        return [*cr.sections, *d_str], (cr.digest, d_dig), max_error, Decoded(cr.x_hat, dep_hat, dep_state)


class StreamDecoder:
    """Decodes packets of every profile (the reference and thermal codecs are read from each packet).

    ``model`` decodes the learned layers; a standard-profile stream needs none (``model`` None)."""

    def __init__(self, model: LoadedModel | None, limits: Limits = Limits()):
        self.model, self.limits = model, limits
        self._references: dict[str, object] = {}
        self._thermals: dict[str, object] = {}
        self._prev: Decoded | _Pictures | None = None
        self._last: PacketHeader | None = None
        self.dropped = 0        # predicted frames received but not output (their reference is missing)
        self.lost = 0           # frame indexes never received (gaps in the sequence)
        self.decoded = 0

    @property
    def waiting_for_key(self) -> bool:
        return self._prev is None

    def reset(self) -> None:
        self._prev = self._last = None
        for r in (*self._references.values(), *self._thermals.values()):
            r.reset()

    def _reference(self, codec: str, standard: bool):
        key = (codec, standard)
        if key not in self._references:
            self._references[key] = make_reference(None if standard else self.model.net, codec)
        return self._references[key]

    def _thermal(self, codec: str):
        if codec not in self._thermals:
            self._thermals[codec] = make_thermal(codec)
        return self._thermals[codec]

    def _check_model(self, h: PacketHeader) -> None:
        if not h.needs_model:
            return
        if self.model is None:
            raise ModelMismatch(f"stream was made with model {h.model_id!r} ({h.direction}); this decoder has "
                                "no learned model")
        if h.model_hash != self.model.hash8 or h.direction != self.model.direction:
            raise ModelMismatch(
                f"stream was made with model {h.model_id!r} ({h.direction}, weights {h.model_hash.hex()}), "
                f"this decoder has {self.model.model_id!r} ({self.model.direction}, weights {self.model.hash8.hex()})")

    def _follows(self, h: PacketHeader) -> bool:
        last = self._last
        return (last is not None and h.stream_id == last.stream_id
                and h.frame_index == (last.frame_index + 1) & 0xFFFFFFFF
                and h.rgb_size == last.rgb_size and h.thermal_size == last.thermal_size
                and h.thermal_range == last.thermal_range and h.reference_codec == last.reference_codec
                and h.thermal_codec == last.thermal_codec and h.thermal_format == last.thermal_format)

    @torch.inference_mode()
    def decode(self, packet: bytes | Packet) -> DecodedPair | None:
        """Decodes one packet (its bytes, or the :class:`~.packet.Packet` :func:`~.packet.read_packet`
        made of them: a packet is parsed once); ``None`` for a predicted frame whose reference is missing.

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
        levels = self.model.levels if h.needs_model else STANDARD_LEVELS
        if not 1 <= h.quality <= levels:
            self.reset()
            raise (ModelMismatch if h.needs_model else CorruptPacket)(
                f"quality {h.quality} is not a level of this {'model' if h.needs_model else 'profile'} (1..{levels})")
        try:
            if h.needs_model:
                dec, pair = self._decode_learned(h, sections, key)
            else:
                dec = self._decode_standard(h, sections, key)
                pair = _picture_pair(dec, h)
        except PacketError:   # a corrupt section, or entropy indexes that differ from the encoder's
            self.reset()
            raise
        except VideoCodecError as exc:
            self.reset()
            raise CorruptPacket(str(exc)) from None
        self._prev, self._last = dec, h
        self.decoded += 1
        return pair

    def _decode_standard(self, h: PacketHeader, sections, key: bool) -> _Pictures:
        cr = self._reference(h.reference_codec, True).decode(sections[:1], h.rgb_size, None, key, None, None,
                                                             None, h.reference_qp)
        th = self._thermal(h.thermal_codec).decode(sections[1:], h.thermal_format, h.thermal_size, key,
                                                   h.thermal_range)
        return _Pictures(cr.image, th)

    def _decode_learned(self, h: PacketHeader, sections, key: bool):
        net, dev = self.model.net, self.model.device
        mod = _Modalities(self.model)
        level = torch.tensor([h.quality - 1], device=dev)
        ref_size, dep_size = mod.split(h.rgb_size, h.thermal_size)
        n_ref = sum(role == "ref" for role, _ in h.layout)
        with codec_threads(dev, net.exact):
            cr = self._reference(h.reference_codec, False).decode(
                sections[:n_ref], ref_size, padded(ref_size), key, None if key else self._prev.ref,
                level, h.index_digests[0], h.reference_qp)
            dep_sections, dep_pad = sections[n_ref:], padded(dep_size)
            dep_hat, dep_state = net.decompress_dep(dep_sections, cr.x_hat, cr.stages, dep_pad, level,
                                                    h.index_digests[1], None if key else self._prev.dep_state)
        dec = Decoded(cr.x_hat, dep_hat, dep_state)
        return dec, _pair(mod, dec, h)


def _pair(mod: _Modalities, dec: Decoded, h: PacketHeader) -> DecodedPair:
    """The images a decoder outputs for ``dec`` (sizes, formats and 16-bit range from ``h``)."""
    rgb_t, th_t = mod.join(dec.ref, dec.dep)
    rgb = from_tensor(rgb_t, h.rgb_size)
    sixteen = h.thermal_format in SIXTEEN_BIT
    th = from_tensor(th_t, h.thermal_size, np.uint16 if sixteen else np.uint8, *h.thermal_range)
    return _output(rgb, th, h)


def _picture_pair(pics: _Pictures, h: PacketHeader) -> DecodedPair:
    return _output(pics.rgb, pics.thermal, h)


def _output(rgb: np.ndarray | None, th: np.ndarray, h: PacketHeader) -> DecodedPair:
    if rgb is not None and h.rgb_format == "bgr8":
        rgb = np.ascontiguousarray(rgb[..., ::-1])
    return DecodedPair(rgb, th, h.frame_type_name, h.frame_index, h.rgb_format, h.thermal_format, h)
