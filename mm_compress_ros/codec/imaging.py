"""Images <-> the padded float tensors the networks take (shared by streams and reference coders)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .api import PAD


def to_tensor(img: np.ndarray, device, lo: int = 0, hi: int = 255) -> torch.Tensor:
    """uint8/uint16 image -> (1, C, H', W') float in [0, 1], replicate-padded to a multiple of PAD."""
    t = torch.from_numpy(np.ascontiguousarray(img)).to(device)
    t = t.unsqueeze(0) if t.ndim == 2 else t.permute(2, 0, 1)
    t = (t.float() - lo) / float(max(hi - lo, 1))
    t = t.clamp_(0, 1).unsqueeze(0)
    h, w = img.shape[:2]
    ph, pw = (-h) % PAD, (-w) % PAD
    return F.pad(t, (0, pw, 0, ph), mode="replicate") if (ph or pw) else t


def from_tensor(t: torch.Tensor, size: tuple[int, int], dtype=np.uint8, lo: int = 0, hi: int = 255) -> np.ndarray:
    """Inverse of :func:`to_tensor`: crops the padding and rounds to the integer type."""
    t = t[0, :, : size[0], : size[1]].clamp(0, 1) * float(hi - lo) + lo
    a = t.round().to(torch.int32).cpu().numpy()
    a = a[0] if a.shape[0] == 1 else np.transpose(a, (1, 2, 0))
    return np.ascontiguousarray(a.astype(dtype))


def padded(size: tuple[int, int]) -> tuple[int, int]:
    return (size[0] + (-size[0]) % PAD, size[1] + (-size[1]) % PAD)
