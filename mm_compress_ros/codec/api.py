"""What every learned dependent codec shares: the directions, the channels, the padding, and the
interface the stream (``codec/stream.py``) codes frames through.

Two designs implement :class:`DependentCodec`: ``MultiModalCodec`` (``codec/multimodal.py``, the
first design, which also has its own reference codec: :class:`LearnedReferenceCodec`) and
``RTDependentCodec`` (``codec/rtcodec.py``, the real-time design with an integer decoder). The
stream never asks which one it holds; what differs is declared: ``exact`` (an integer decoder that
decodes identically on any thread count) and, for the learned profile, the reference codec.

The data flow the stream drives, for one pair (``x̂_ref`` from whichever reference coder)::

    dep ──► compress_dep(x̂_ref, stages, dep, level, state) ──► sections, digest, x̂_dep, state'
    sections ──► decompress_dep(sections, x̂_ref, stages, size, level, digest, state) ──► x̂_dep, state'

``state`` is None at a key frame and the previous frame's ``state'`` after it; ``stages`` are the
reference features a key frame's spatial alignment attends to (``reference_stages``).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

PAD = 64  # images are padded to a multiple of this (analysis transforms: /16, hyper: /4)

DIRECTIONS = {
    # direction: (reference modality, dependent modality)
    "thermal_given_rgb": ("rgb", "thermal"),
    "rgb_given_thermal": ("thermal", "rgb"),
}
CHANNELS = {"rgb": 3, "thermal": 1}


@runtime_checkable
class DependentCodec(Protocol):
    """A learned codec of the dependent modality given the decoded reference (both designs)."""

    exact: bool          # integer decoder: identical on any thread count (no thread pinning)
    ref_name: str        # "rgb" or "thermal" (DIRECTIONS)
    dep_name: str

    @property
    def levels(self) -> int: ...

    def compress_dep(self, ref_hat: torch.Tensor, stages, dep: torch.Tensor, level: torch.Tensor,
                     state=None) -> tuple[list[bytes], int, torch.Tensor, object]: ...

    def decompress_dep(self, sections: list[bytes], ref_hat: torch.Tensor, stages, size, level: torch.Tensor,
                       digest: int | None = None, state=None) -> tuple[torch.Tensor, object]: ...

    def reference_stages(self, ref_hat: torch.Tensor, level: torch.Tensor): ...


@runtime_checkable
class LearnedReferenceCodec(DependentCodec, Protocol):
    """A design that also codes the reference modality itself (the fully learned profile)."""

    def compress_ref(self, ref: torch.Tensor, level: torch.Tensor, prev_ref=None): ...

    def decompress_ref(self, sections: list[bytes], ref_size, level: torch.Tensor, digest=None, prev_ref=None): ...
