"""Packets back into image pairs, as decoder_node, ``bag decode`` and ``mm-compress decode`` decode
them: the decoder-side policy around a :class:`~mm_compress_ros.codec.stream.StreamDecoder`.
ROS-free (no rclpy import; EncodedFrame messages are read through their fields).

:class:`PairDecoder` makes the per-packet decisions the three share:

- each packet is parsed once (:func:`mm_compress_ros.codec.packet.read_packet`) and the parsed
  :class:`~mm_compress_ros.codec.packet.Packet` is handed on: to the stream decoder, and back to
  the caller in :attr:`DecodeResult.packet` (e.g. for the video pass-through to Foxglove);
- the model is the one :func:`mm_compress_ros.codec.zoo.decoding_choice` picks (one named by the
  caller, else the one the stream names; none for a standard-profile stream), loaded at the first
  packet that needs it and again when the stream names another; loaded models are kept;
- one waiting-for-a-key-frame state, the stream decoder's: from the start, and after a gap in the
  sequence numbers, a corrupt packet, a predicted frame without its reference or an error, nothing
  is output until the next key frame; :attr:`PairDecoder.want_key` says that the caller should
  ask the encoder for one (the decoder node does);
- the joint restoration (:mod:`mm_compress_ros.restore`), where it is on (``restore``;
  ``codec.profiles.DEFAULT_RESTORE``): the decoded pictures are restored, the packet is not
  (what is recorded or forwarded is the same either way); :attr:`DecodeResult.restored` marks them;
- the counts (:class:`DecodeCounts`).

Every decision comes back as a :class:`~.notes.Note` in the packet's :class:`DecodeResult`
(kinds: ``waiting``, ``decoding``, ``corrupt``, ``model``); the adapters log, print or ignore them.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..codec.profiles import DEFAULT_RESTORE
from ..codec.packet import FRAME_KEY, NO_MAX_ERROR, Limits, Packet, PacketError, PacketHeader, read_header, read_packet
from ..codec.stream import DecodedPair, StreamDecoder
from ..codec.zoo import LoadedModel, decoding_choice, load_model
from .notes import Note


@dataclass
class DecodeCounts:
    received: int = 0        # packets given to decode()
    decoded: int = 0         # pairs output
    key_frames: int = 0      # of them, key frames
    skipped: int = 0         # packets not output while waiting for a key frame
    gaps: int = 0            # jumps in the sequence numbers (messages lost before the decoder)
    lost: int = 0            # messages lost in those jumps
    corrupt: int = 0         # packets that did not parse or decode (and errors: PairDecoder.error)
    thermal_max_error: int | None = None   # the largest thermal error the encoder reported (None: none)
    restored: int = 0        # pairs output restored (the joint restoration changed their pictures)


@dataclass
class DecodeResult:
    pair: DecodedPair | None = None      # None: nothing to output (the notes say why)
    packet: Packet | None = None         # the parsed packet (None: it did not parse)
    header: PacketHeader | None = None   # its header, also where only the payload is damaged
    notes: list[Note] = field(default_factory=list)
    error: PacketError | None = None     # why the packet did not parse or decode
    decode_ms: float = 0.0
    restored: bool = False               # the pictures are the joint restoration's, not the plain decode


def packet_bytes(msg) -> bytes:
    """The packet an EncodedFrame message carries (rclpy's array or sequence, rosbags' numpy array)."""
    data = msg.data
    return data.tobytes() if hasattr(data, "tobytes") else bytes(data)


class PairDecoder:
    """Decodes the packets of one stream (see the module docstring).

    ``model`` / ``weights`` (and ``direction``) name a model that decodes every stream that needs
    one (the command line's ``--model``); unset, the stream's own. ``preload``: (name, direction)
    of a model to load now, so that a stream naming it starts without waiting (the decoder node's
    ``model`` parameter). ``restore``: restore the decoded pictures with the joint restoration
    (``restore_weights``: its weights, else the shipped model; loaded now)."""

    def __init__(self, model: str | None = None, direction: str | None = None, device="auto",
                 weights: str | None = None, *, preload: tuple[str, str] | None = None,
                 limits: Limits = Limits(), restore: bool = DEFAULT_RESTORE, restore_weights: str | None = None):
        self.named = (model or None, direction or None, weights or None)
        self.device, self.limits = device, limits
        self.counts = DecodeCounts()
        self.want_key = False            # a key frame is needed that the stream has not brought
        self.last_sequence: int | None = None
        self._models: dict[tuple, LoadedModel] = {}
        self._choice = decoding_choice(None, *preload) if preload and preload[0] else None
        self.stream = StreamDecoder(self._model(self._choice), limits)
        self._said = False
        self.restorer = None
        if restore:
            from ..restore.restorer import load_restorer
            self.restorer = load_restorer(device=device, path=restore_weights or None)

    @property
    def model(self) -> LoadedModel | None:
        """The model decoding the stream now (None: a standard-profile stream needs none)."""
        return self.stream.model

    @property
    def waiting_for_key(self) -> bool:
        return self.stream.waiting_for_key

    def _model(self, choice) -> LoadedModel | None:
        if choice is None:
            return None
        if choice not in self._models:
            name, direction, path = choice
            self._models[choice] = load_model(name, direction=direction, device=self.device, path=path)
        return self._models[choice]

    def decode_message(self, msg) -> DecodeResult:
        """:meth:`decode` of an EncodedFrame message (its packet and sequence number)."""
        return self.decode(packet_bytes(msg), int(msg.sequence))

    def decode(self, data: bytes | Packet, sequence: int | None = None) -> DecodeResult:
        """Decodes one packet (bytes, or one parsed already); ``sequence``: its message's sequence
        number, where the transport numbers them (gaps are counted as lost messages). Raises only
        for a model that does not load (:class:`~mm_compress_ros.codec.zoo.ModelError`)."""
        c, res = self.counts, DecodeResult()
        c.received += 1
        waiting = self._said = self.waiting_for_key   # "waiting for a key frame" is said when it begins
        where = f"sequence {sequence}" if sequence is not None else None
        gap = self._sequence(sequence)
        try:
            res.packet = read_packet(data, self.limits)
        except PacketError as exc:
            res.header = _header_or_none(data, self.limits)
            where = where or (f"frame {res.header.frame_index}" if res.header is not None else "a packet")
            return self._corrupt(res, where, exc)
        h = res.header = res.packet.header
        where = where or f"frame {h.frame_index}"
        key = h.frame_type == FRAME_KEY
        if gap and not key:
            self._lose(res, gap)
        if self.waiting_for_key and not key:
            c.skipped += 1
            self._lose(res, f"{where} is a predicted frame")
            return res
        self._follow(h, res)
        t0 = time.perf_counter()
        try:
            pair = self.stream.decode(res.packet)
        except PacketError as exc:   # a corrupt section, or entropy indexes that differ from the encoder's
            return self._corrupt(res, where, exc)
        res.decode_ms = (time.perf_counter() - t0) * 1e3
        if pair is None:
            c.skipped += 1
            self._lose(res, f"{where}: reference frame missing")
            return res
        if self.restorer is not None:   # its time counts in decode_ms: what the caller waits for
            restored = self.restorer.restore(pair)
            res.decode_ms = (time.perf_counter() - t0) * 1e3
            res.restored = restored is not pair
            c.restored += res.restored
            pair = restored
        res.pair = pair
        c.decoded += 1
        c.key_frames += key
        if h.thermal_max_error != NO_MAX_ERROR:
            c.thermal_max_error = max(h.thermal_max_error, c.thermal_max_error or 0)
        if key:
            if waiting:
                res.notes.append(Note("decoding", f"key frame at {where}: decoding again"))
            self.want_key = False
        return res

    def error(self, exc: BaseException) -> list[Note]:
        """An error around a packet that is not the packet's (a model that would not load, a bug):
        counted as corrupt; the stream waits for the next key frame."""
        self.counts.corrupt += 1
        self._said = self.waiting_for_key
        res = DecodeResult()
        self._lose(res, f"decoder error ({type(exc).__name__}: {exc})")
        return res.notes

    def _sequence(self, sequence: int | None) -> str | None:
        """Counts a gap in the sequence numbers; why the stream may have lost its reference, or None."""
        if sequence is None:
            return None
        last, self.last_sequence = self.last_sequence, sequence
        if last is None or sequence == last + 1:
            return None
        if sequence > last + 1:
            self.counts.gaps += 1
            self.counts.lost += sequence - last - 1
            return f"{sequence - last - 1} message(s) lost before sequence {sequence}"
        return f"sequence went back from {last} to {sequence}"   # an old or repeated message, or a restart

    def _follow(self, h: PacketHeader, res: DecodeResult) -> None:
        """The stream decoder for the model this packet's stream needs (a new one when that changes)."""
        choice = decoding_choice(h, *self.named)
        if choice == self._choice:
            return
        t0 = time.monotonic()
        model = self._model(choice)
        res.notes.append(Note("model", f"stream uses model {choice[0]} ({choice[1]}), ready in "
                                       f"{time.monotonic() - t0:.1f} s" if choice is not None else
                                       f"stream is in the {h.profile} profile: no model needed"))
        self.stream, self._choice = StreamDecoder(model, self.limits), choice

    def _corrupt(self, res: DecodeResult, where: str, exc: PacketError) -> DecodeResult:
        self.counts.corrupt += 1
        res.error = exc
        res.notes.append(Note("corrupt", f"corrupt packet: {where}: {exc}"))
        self._lose(res, "corrupt packet")
        return res

    def _lose(self, res: DecodeResult, why: str) -> None:
        """The stream's reference is lost: wait for a key frame (said once, when the wait begins)."""
        if not self._said:
            res.notes.append(Note("waiting", f"waiting for a key frame: {why}"))
            self._said = True
        self.stream.reset()
        if self.restorer is not None:
            self.restorer.reset()
        self.want_key = True


def _header_or_none(data, limits: Limits) -> PacketHeader | None:
    """The header of a packet that did not parse whole (its frame index for a report), or None."""
    try:
        return read_header(data, limits)
    except PacketError:
        return None
