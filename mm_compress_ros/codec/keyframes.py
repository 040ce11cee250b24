"""When a stream sends a key frame: the one key-frame rule, which :class:`~.stream.StreamEncoder`
(the only key-frame decider) holds as its :class:`KeyFrameRule`.

A key frame is sent at the start, every ``gop`` frames, on request, when the input size or pixel
format changes, when 16-bit thermal leaves the value range its GOP codes, and when capture stamps
jump forward by more than the stream's own gap or go backwards (:class:`StampRhythm`): after such
a gap the previous frame is a poor (or wrong) temporal reference. The rule returns the reason.
"""
from __future__ import annotations


MAX_GAP_NS = 1_000_000_000   # the least gap that ends a GOP: a step of up to 1 s never does
GAP_FACTOR = 3               # above that: a step of more than 3 frame intervals of the stream
RHYTHM_WINDOW = 8            # the frame interval: the median of the last 8 steps forward


def stamp_step(last: int | None, stamp: int, max_gap_ns: int | None = MAX_GAP_NS) -> str:
    """How a frame's capture stamp follows the last coded one's: ``first`` (none before),
    ``next`` (0 < step <= max_gap_ns), ``same``, ``jump`` (ahead by more), ``back`` (behind by less
    than max_gap_ns) or ``reset`` (behind by max_gap_ns or more: a clock reset); ``max_gap_ns``
    None: no limit (never ``jump`` or ``reset``). The rule of :class:`StampRhythm`, which gives it
    the stream's own gap (a key frame after ``jump``, ``back`` or ``reset``; the pair encoder
    also skips ``same`` and ``back`` pairs as stale)."""
    if last is None:
        return "first"
    d = stamp - last
    if d == 0:
        return "same"
    if max_gap_ns is None:
        return "next" if d > 0 else "back"
    if d > 0:
        return "next" if d <= max_gap_ns else "jump"
    return "back" if -d < max_gap_ns else "reset"


class StampRhythm:
    """Capture stamps against the stream's own rhythm: the one rule of :class:`StreamEncoder` and
    of the pair encoder (:class:`mm_compress_ros.link.pair_encoder.PairEncoder`) for when a gap ends the GOP.

    The gap is ``max_gap_ns`` when given (a fixed gap), else ``GAP_FACTOR`` (3) times the stream's
    frame interval (the median of its last ``RHYTHM_WINDOW`` steps forward, gaps included, so
    one pause does not move it and a stream that slows down for good is learnt within a few
    frames), and never less than ``MAX_GAP_NS`` (1 s). Before a step is measured (the stream's
    second frame, the first after a clock reset) the interval is taken as 1 s: a gap of 3 s.
    So a 10 or 30 Hz stream ends its GOP after 1 s without frames (as a fixed 1 s gap did), a
    camera throttled to 1 Hz codes predicted frames (its GOP ends after more than 3 s without
    frames), a bag paused 10 s at 10 Hz or a clock going back more than the gap still brings
    a key frame.

    :meth:`step` classifies a stamp (:func:`stamp_step` with :attr:`gap_ns`) and takes it as
    coded; :meth:`classify` and :meth:`accept` are its two halves, for a caller that may skip
    the frame in between (a stale pair is classified, never accepted)."""

    def __init__(self, max_gap_ns: int | None = None):
        if max_gap_ns is not None and max_gap_ns <= 0:
            raise ValueError(f"max_gap_ns must be positive (or None: by the stream's rhythm), got {max_gap_ns}")
        self.max_gap_ns = None if max_gap_ns is None else int(max_gap_ns)
        self.last: int | None = None      # stamp of the last frame taken as coded
        self._steps: list[int] = []       # the last RHYTHM_WINDOW steps forward (ns)

    @property
    def interval_ns(self) -> int | None:
        """The stream's frame interval (median of the recent steps forward), None before one."""
        return sorted(self._steps)[len(self._steps) // 2] if self._steps else None

    @property
    def gap_ns(self) -> int:
        """A step forward longer than this is a ``jump``; one back as long or longer a ``reset``."""
        if self.max_gap_ns is not None:
            return self.max_gap_ns
        interval = self.interval_ns
        return max(MAX_GAP_NS, GAP_FACTOR * (MAX_GAP_NS if interval is None else interval))

    def classify(self, stamp: int) -> str:
        """:func:`stamp_step` of ``stamp`` after the last accepted one; changes nothing."""
        return stamp_step(self.last, int(stamp), self.gap_ns)

    def accept(self, stamp: int, kind: str | None = None) -> str:
        """Takes ``stamp`` as coded (``kind``: its :meth:`classify`, when known) and returns the kind."""
        stamp = int(stamp)
        kind = self.classify(stamp) if kind is None else kind
        if kind in ("next", "jump"):
            self._steps = [*self._steps, stamp - self.last][-RHYTHM_WINDOW:]
        elif kind == "reset":   # a new clock: its rhythm is measured again
            self._steps = []
        self.last = stamp
        return kind

    def step(self, stamp: int) -> str:
        """:meth:`classify` and :meth:`accept` in one: for a coder that codes every frame it sees."""
        return self.accept(stamp)


class KeyFrameRule:
    """The key-frame decision of one stream (held by :class:`~.stream.StreamEncoder`).

    :meth:`reason` says why the next pair must be a key frame (None: it may be predicted);
    :meth:`coded` records a pair as sent. ``rhythm`` is the stream's :class:`StampRhythm`.
    """

    def __init__(self, gop: int, max_gap_ns: int | None = None):
        if gop < 1:
            raise ValueError(f"gop must be >= 1, got {gop}")
        self.gop = gop
        self.rhythm = StampRhythm(max_gap_ns)
        self.requested = True          # a key frame asked for (the first frame is one)
        self.since_key = 0             # frames coded since the last key frame, that one included
        self.signature = None          # the input shapes and formats of the last coded pair
        self.started = False           # a pair was coded

    def request(self) -> None:
        """The next pair is a key frame (safe from any thread)."""
        self.requested = True

    def reason(self, signature, stamp_ns: int | None = None, force: bool | str = False,
               range_fits: bool = True) -> str | None:
        """Why this pair must be a key frame, or None. ``signature``: the pair's shapes and formats;
        ``stamp_ns``: its capture stamp (taken into the rhythm here); ``force``: the caller's
        request (a string is its reason); ``range_fits``: False when 16-bit thermal leaves the
        range its GOP codes. A request made while this pair is being coded stays for the next."""
        if stamp_ns is not None:
            step = self.rhythm.step(stamp_ns)
            if step in ("jump", "back", "reset"):
                force = force or f"stamps: {step}"
        requested, self.requested = self.requested, False
        if not self.started:
            return "start"
        if signature != self.signature:
            return "input changed"
        if force:
            return force if isinstance(force, str) else "forced"
        if requested:
            return "requested"
        if self.since_key >= self.gop:
            return "gop"
        if not range_fits:
            return "thermal range"
        return None

    def coded(self, key: bool, signature) -> None:
        """The pair was sent (a key frame or not)."""
        self.started, self.signature = True, signature
        self.since_key = 1 if key else self.since_key + 1
