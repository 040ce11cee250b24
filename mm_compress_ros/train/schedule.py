"""The time schedule of the one-shot GPU run (train/timed.py): the stages' shares of the wall-clock
budget, when each stage ends, its learning rate over its time, and what each stage did.

``--schedule ref:1,dep:2,video:1`` trains the stages in that order, each for its share of the
budget; per stage: linear warm-up over ``--warmup`` steps, then ``--lr``, then ``--lr``/10 over the
stage's last ``--decay-share`` of its time.
"""

from __future__ import annotations

from dataclasses import dataclass

from .trainer import STAGES

DEFAULT_SCHEDULE = "ref:1,dep:2,video:1"


def parse_schedule(text: str) -> list[tuple[str, float]]:
    """``ref:1,dep:2,video:1`` -> [(stage, share of the budget)], shares summing to 1."""
    out = []
    for part in text.split(","):
        stage, _, w = part.strip().partition(":")
        try:
            weight = float(w) if w else 1.0
        except ValueError:
            raise ValueError(f"--schedule: bad share {w!r} in {part!r}") from None
        if stage not in STAGES:
            raise ValueError(f"--schedule: unknown stage {stage!r}; use {', '.join(STAGES)}")
        if not weight > 0:
            raise ValueError(f"--schedule: the share of {stage} must be > 0")
        out.append((stage, weight))
    total = sum(w for _, w in out)
    return [(s, w / total) for s, w in out]



def stage_ends(schedule: list[tuple[str, float]], t_train: float, budget: float) -> list[float]:
    """The wall-clock time at which each stage of ``schedule`` ends: its share of ``budget`` seconds
    from ``t_train``, one stage after the other."""
    ends, acc = [], 0.0
    for _, w in schedule:
        acc += w
        ends.append(t_train + acc * budget)
    return ends


def stage_lr(lr: float, step: int, warmup: int, frac: float, decay_share: float) -> float:
    """The learning rate of a stage's ``step`` (counted from 0) at ``frac`` of its time: linear
    warm-up over ``warmup`` steps, then ``lr``, then ``lr``/10 over the last ``decay_share``."""
    if frac >= 1.0 - decay_share:
        return lr * 0.1
    return lr * min(1.0, (step + 1) / max(warmup, 1))


@dataclass
class StageLog:
    stage: str
    share: float
    steps: int = 0
    seconds: float = 0.0
    skipped: int = 0
    last: dict | None = None

    def entry(self) -> dict:
        return {"stage": self.stage, "share": round(self.share, 4), "steps": self.steps,
                "seconds": round(self.seconds, 1), "skipped": self.skipped,
                "steps_per_s": round(self.steps / self.seconds, 3) if self.seconds else None,
                "last": self.last or {}}

