"""JointRestorer: a decoder-side restoration of both cameras' decoded pictures (zero bits).

The decoder holds the decoded RGB, the decoded thermal and the previous decoded pair; a standard
decoder uses none of it across cameras. This network learns the correction of what x264/x265
deliver, each camera guided by the other and both by the previous pair::

    rgb_hat (3,H,W) ─┐                      prev rgb_hat, prev thermal_hat (4,H,W)
    th_hat  (1,H,W) ─┤ (thermal resampled      │  (the current pair at a key frame)
                     │  to the RGB grid)       │
                     ▼                          ▼
           pixel_unshuffle(s) ──────── pixel_unshuffle(s)         s = 4: 16 positions per cell
                     │                          │
                     └──────────── cat ─────────┘   (8 s^2 channels, H/s x W/s)
                          │                    │
                    RGB trunk (C_rgb)    thermal trunk (C_th)   each trunk sees both cameras:
                          │                    │                 the other camera's edges
              conv1x1 ─> C; QP(rgb), QP(th) ─> MLP ─> FiLM (scale, shift)
                          n x [conv3x3 C->C, LeakyReLU] (residual)
                          conv1x1 C -> 3 s^2 | 1 s^2  (zero-initialised: starts as the identity)
                          │                    │
                             pixel_shuffle(s) = delta (4,H,W)
                                    │
          rgb_out = rgb_hat + delta[:3]      th_out = th_hat + delta[3:]   (clamped to [0,1])

One model serves every quality level: the layer QPs condition it (a quality bank in the
DCVC sense: a FiLM scale and shift per channel). It never sees the bytes: the streams, and what
is recorded or forwarded, are the same with it or without it.

``cross`` False is the ablation of the cross-modal part: the same trunks, but the RGB trunk sees
no thermal input and the thermal trunk no RGB.
"""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

QP_SCALE = 51.0   # QPs are given as qp / 51


class _Trunk(nn.Module):
    def __init__(self, cin: int, cout: int, width: int, blocks: int):
        super().__init__()
        self.head = nn.Conv2d(cin, width, 1)
        self.film = nn.Sequential(nn.Linear(2, 32), nn.LeakyReLU(0.1), nn.Linear(32, 2 * width))
        nn.init.zeros_(self.film[2].weight)
        nn.init.zeros_(self.film[2].bias)
        self.body = nn.ModuleList(nn.Conv2d(width, width, 3, padding=1) for _ in range(blocks))
        self.tail = nn.Conv2d(width, cout, 1)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    def forward(self, x: torch.Tensor, qp: torch.Tensor) -> torch.Tensor:
        f = self.head(x)
        scale, shift = self.film(qp).unsqueeze(-1).unsqueeze(-1).chunk(2, dim=1)
        f = F.leaky_relu(f * (1 + scale) + shift, 0.1)
        for conv in self.body:
            f = f + F.leaky_relu(conv(f), 0.1)
        return self.tail(f)


class JointRestorer(nn.Module):
    """Restores a decoded (RGB, thermal) pair; see the module docstring for its data flow.

    forward(rgb, th, prev_rgb, prev_th, qp) with pictures in [0, 1], N x C x H x W (H, W multiples
    of ``scale``) and ``qp`` N x 2 (RGB layer QP, thermal layer QP, each /51). Returns (rgb, th)
    restored.

    Two trunks, one per camera (``width_rgb``, ``width_thermal`` channels), so that the thermal
    correction, a few tenths of a dB, keeps capacity of its own beside the larger RGB one. With
    ``cross`` each trunk sees both cameras; without (the ablation) each sees only its own camera
    and its own past, at the same size.
    """

    def __init__(self, width_rgb: int = 24, width_thermal: int = 16, blocks: int = 4, scale: int = 4,
                 cross: bool = True):
        super().__init__()
        self.width_rgb, self.width_thermal = width_rgb, width_thermal
        self.blocks, self.scale, self.cross = blocks, scale, cross
        s2 = scale * scale
        self.rgb_trunk = _Trunk((8 if cross else 6) * s2, 3 * s2, width_rgb, blocks)
        self.th_trunk = _Trunk((8 if cross else 2) * s2, 1 * s2, width_thermal, blocks)

    def config(self) -> dict:
        return {"width_rgb": self.width_rgb, "width_thermal": self.width_thermal, "blocks": self.blocks,
                "scale": self.scale, "cross": self.cross}

    def forward(self, rgb, th, prev_rgb, prev_th, qp):
        s = self.scale
        r = torch.cat([F.pixel_unshuffle(rgb, s), F.pixel_unshuffle(prev_rgb, s)], 1)
        t = torch.cat([F.pixel_unshuffle(th, s), F.pixel_unshuffle(prev_th, s)], 1)
        if self.cross:
            both = torch.cat([r, t], 1)
            r, t = both, both
        d_rgb = F.pixel_shuffle(self.rgb_trunk(r, qp), s)
        d_th = F.pixel_shuffle(self.th_trunk(t, qp), s)
        return (rgb + d_rgb).clamp(0, 1), (th + d_th).clamp(0, 1)
