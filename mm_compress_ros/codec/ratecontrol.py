"""Target-bitrate mode: one controller drives the quality knob of both layers.

The knob is a continuous quality ``x`` (level 1..L of the model in its middle). The dependent codec
codes at level ``round(x)`` clamped to ``1..L``; a standard reference codec at the QP that
``reference_qp`` gives ``x``, which moves in whole QP steps between the levels and goes on past
both ends (up to QP 51, down to QP 12), so the pair's rate can be held finer, and lower or higher,
than the learned levels alone allow. ``x`` changes only at key frames (both layers' GOPs start
together). The learned profile has no QP: there only the levels move.

Control law (per GOP): a virtual buffer holds the bits spent above the target since the start.
The next GOP aims at ``target - buffer / horizon`` and the knob moves by the QP change that
bridges the last GOP's rate and that aim, with the usual rule of thumb of H.264/H.265 and of our
learned levels alike: 6 QP steps halve the rate.
"""

from __future__ import annotations

import math

from .profiles import QP_FIRST, QP_LAST, reference_qp

QP_MAX, QP_MIN = 51, 12


class RateController:
    def __init__(self, target_bps: float, levels: int, fps: float = 10.0, start: float | None = None,
                 horizon_s: float = 2.0, gain: float = 0.8):
        if target_bps <= 0:
            raise ValueError(f"target bitrate must be positive, got {target_bps}")
        self.target_bps, self.levels, self.fps = float(target_bps), levels, float(fps)
        self.horizon_s, self.gain = horizon_s, gain
        self.x = float(start if start is not None else (levels + 1) / 2)
        self.buffer = 0.0                # bits spent above the target so far
        self._gop_bits = 0.0
        self._gop_frames = 0
        self._last_stamp: int | None = None

    @property
    def qp_per_level(self) -> float:
        return (QP_FIRST - QP_LAST) / max(self.levels - 1, 1)

    @property
    def x_range(self) -> tuple[float, float]:
        return (1 - (QP_MAX - QP_FIRST) / self.qp_per_level, self.levels + (QP_LAST - QP_MIN) / self.qp_per_level)

    @property
    def level(self) -> int:
        """The dependent codec's quality level (1..L)."""
        return min(max(int(math.floor(self.x + 0.5)), 1), self.levels)

    @property
    def qp(self) -> int:
        """The standard reference codec's QP."""
        return min(max(reference_qp(self.x, self.levels), QP_MIN), QP_MAX)

    def frame_coded(self, bits: int, stamp_ns: int | None = None) -> None:
        """Accounts one packet; the frame period comes from the capture stamps when they are given."""
        if stamp_ns is not None and self._last_stamp is not None and 0 < stamp_ns - self._last_stamp < 2e9:
            period = (stamp_ns - self._last_stamp) / 1e9
            self.fps = 0.9 * self.fps + 0.1 / period
        if stamp_ns is not None:
            self._last_stamp = stamp_ns
        self.buffer += bits - self.target_bps / self.fps
        self._gop_bits += bits
        self._gop_frames += 1

    def key_frame(self) -> None:
        """Called before a key frame: updates the knob from the GOP that just ended."""
        if self._gop_frames == 0:
            return
        rate = self._gop_bits / self._gop_frames * self.fps
        aim = max(self.target_bps - self.buffer / self.horizon_s, 0.25 * self.target_bps)
        dqp = 6.0 * math.log2(max(rate, 1.0) / aim)       # > 0: too many bits, raise the QP
        lo, hi = self.x_range
        self.x = min(max(self.x - self.gain * dqp / self.qp_per_level, lo), hi)
        self._gop_bits, self._gop_frames = 0.0, 0
