"""Building blocks of the multi-modality codec.

Transforms follow CompressAI's conventions (5x5 stride-2 convolutions with GDN); what is new here
is the cross-modal machinery of Lu et al. (CVPR 2022):

* :class:`ChannelAlignment` turns features of the decoded reference modality and of the current
  image into per-channel affine coefficients (gamma, beta) that are sent losslessly;
* :class:`CrossWindowAttention` / :class:`SpatialAlignment`: Swin-style blocks in the dependent
  decoder whose queries come from the current modality and keys/values from the reference
  modality's decoder at the same stage.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from compressai.layers import GDN


def conv(in_ch: int, out_ch: int, kernel_size: int = 5, stride: int = 2) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size, stride=stride, padding=kernel_size // 2)


def deconv(in_ch: int, out_ch: int, kernel_size: int = 5, stride: int = 2) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(
        in_ch, out_ch, kernel_size, stride=stride,
        output_padding=stride - 1, padding=kernel_size // 2,
    )


def resize_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of a feature map or image to ``size`` (no-op when it already fits)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class ResBlock(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(ch, ch, 3, padding=1), nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(ch, ch, 3, padding=1),
        )

    def forward(self, x):
        return x + self.body(x)


class FeatureExtractor(nn.Module):
    """Full-resolution features of an image (reference, current and temporal context).

    Kept narrow on purpose: full-resolution layers dominate the cost of the codec on a CPU.
    """

    def __init__(self, in_ch: int, ch: int, deep: bool = True):
        super().__init__()
        tail = ResBlock(ch) if deep else nn.Conv2d(ch, ch, 1)
        self.net = nn.Sequential(
            nn.Conv2d(in_ch, ch, 3, padding=1), nn.LeakyReLU(0.1, inplace=True), tail,
        )

    def forward(self, x):
        return self.net(x)


class ContextPrior(nn.Module):
    """Downsamples a full-resolution context 16x to condition the entropy parameters of ``y``."""

    def __init__(self, ch: int, out_ch: int):
        super().__init__()
        self.net = nn.Sequential(
            conv(ch, ch, 3), nn.LeakyReLU(0.1, inplace=True),
            conv(ch, ch, 3), nn.LeakyReLU(0.1, inplace=True),
            conv(ch, ch, 3), nn.LeakyReLU(0.1, inplace=True),
            conv(ch, out_ch, 3),
        )

    def forward(self, ctx):
        return self.net(ctx)


class ChannelAlignment(nn.Module):
    """Channel-wise affine alignment: gamma * f_ref + beta.

    The coefficients come from both the reference and the current features (conv layers and
    spatial average pooling), so only the encoder can compute them; they are quantized with a
    fixed step and travel in the bitstream, coded by an entropy bottleneck owned by the codec.
    """

    STEP = 1.0 / 32.0  # quantization step of gamma and beta in the bitstream

    def __init__(self, ch: int):
        super().__init__()
        self.ch = ch
        self.net = nn.Sequential(
            nn.AvgPool2d(4), conv(2 * ch, ch, 3), nn.LeakyReLU(0.1, inplace=True),
            conv(ch, ch, 3), nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(ch, 2 * ch, 1),
        )

    def coefficients(self, f_ref: torch.Tensor, f_cur: torch.Tensor) -> torch.Tensor:
        """(B, 2*ch, 1, 1) coefficients in quantization-step units; gamma is centred on 1."""
        c = self.net(torch.cat([f_ref, f_cur], dim=1)).mean(dim=(2, 3), keepdim=True)
        return c / self.STEP

    def align_features(self, f_ref: torch.Tensor, coef_units: torch.Tensor) -> torch.Tensor:
        c = coef_units * self.STEP
        gamma, beta = c[:, : self.ch] + 1.0, c[:, self.ch:]
        return gamma * f_ref + beta


def _window_partition(x: torch.Tensor, w: int) -> torch.Tensor:
    b, h, wd, c = x.shape
    x = x.view(b, h // w, w, wd // w, w, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, w * w, c)


def _window_merge(win: torch.Tensor, w: int, b: int, h: int, wd: int) -> torch.Tensor:
    c = win.shape[-1]
    x = win.view(b, h // w, wd // w, w, w, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h, wd, c)


class CrossWindowAttention(nn.Module):
    """Multi-head attention inside windows; queries from ``q``, keys/values from ``kv``.

    Learnable relative position bias as in Swin Transformer.
    """

    def __init__(self, dim: int, window: int, heads: int):
        super().__init__()
        self.dim, self.window, self.heads = dim, window, heads
        self.scale = (dim // heads) ** -0.5
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        self.bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        nn.init.trunc_normal_(self.bias_table, std=0.02)
        coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij"))
        coords = coords.flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
        self.register_buffer("rel_index", rel[..., 0] * (2 * window - 1) + rel[..., 1], persistent=False)

    def forward(self, q: torch.Tensor, kv: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        bw, n, c = q.shape
        hd = c // self.heads
        qh = self.q(q).view(bw, n, self.heads, hd).transpose(1, 2)
        k, v = self.kv(kv).view(bw, n, 2, self.heads, hd).permute(2, 0, 3, 1, 4)
        attn = (qh * self.scale) @ k.transpose(-2, -1)
        bias = self.bias_table[self.rel_index.view(-1)].view(n, n, -1).permute(2, 0, 1)
        attn = attn + bias.unsqueeze(0)
        if mask is not None:
            nw = mask.shape[0]
            attn = attn.view(bw // nw, nw, self.heads, n, n) + mask[None, :, None]
            attn = attn.view(bw, self.heads, n, n)
        out = attn.softmax(dim=-1) @ v
        return self.proj(out.transpose(1, 2).reshape(bw, n, c))


class CrossSwinBlock(nn.Module):
    """One Swin block (optionally on shifted windows) with cross attention and an MLP."""

    def __init__(self, dim: int, window: int = 4, heads: int = 3, shift: bool = False):
        super().__init__()
        self.window, self.shift = window, (window // 2 if shift else 0)
        self.norm_q = nn.LayerNorm(dim)
        self.norm_kv = nn.LayerNorm(dim)
        self.attn = CrossWindowAttention(dim, window, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def _mask(self, h: int, w: int, device) -> torch.Tensor | None:
        if not self.shift:
            return None
        img = torch.zeros(1, h, w, 1, device=device)
        cnt = 0
        for hs in (slice(0, -self.window), slice(-self.window, -self.shift), slice(-self.shift, None)):
            for ws in (slice(0, -self.window), slice(-self.window, -self.shift), slice(-self.shift, None)):
                img[:, hs, ws, :] = cnt
                cnt += 1
        win = _window_partition(img, self.window).squeeze(-1)
        diff = win[:, None, :] - win[:, :, None]
        return torch.where(diff != 0, torch.tensor(-100.0, device=device), torch.tensor(0.0, device=device))

    def forward(self, x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        # x, ref: (B, H, W, C) with H, W multiples of the window
        b, h, w, c = x.shape
        q, kv = self.norm_q(x), self.norm_kv(ref)
        if self.shift:
            q = torch.roll(q, (-self.shift, -self.shift), dims=(1, 2))
            kv = torch.roll(kv, (-self.shift, -self.shift), dims=(1, 2))
        out = self.attn(_window_partition(q, self.window), _window_partition(kv, self.window),
                        self._mask(h, w, x.device))
        out = _window_merge(out, self.window, b, h, w)
        if self.shift:
            out = torch.roll(out, (self.shift, self.shift), dims=(1, 2))
        x = x + out
        return x + self.mlp(self.norm2(x))


class SpatialAlignment(nn.Module):
    """Patch-2 embedding, two cross Swin blocks (regular then shifted windows), fusion conv.

    ``cur`` are the dependent decoder's features at one upsampling stage, ``ref`` the reference
    decoder's features at the same stage (resized to ``cur`` when the modalities' sizes differ).
    """

    def __init__(self, ch: int, dim: int = 48, window: int = 4, heads: int = 3):
        super().__init__()
        self.window = window
        self.embed_q = nn.Conv2d(ch, dim, 2, stride=2)
        self.embed_kv = nn.Conv2d(ch, dim, 2, stride=2)
        self.blocks = nn.ModuleList([
            CrossSwinBlock(dim, window, heads, shift=False),
            CrossSwinBlock(dim, window, heads, shift=True),
        ])
        self.unembed = nn.ConvTranspose2d(dim, ch, 2, stride=2)
        self.fuse = nn.Conv2d(2 * ch, ch, 1)

    def forward(self, cur: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        ref = resize_to(ref, cur.shape[-2:])
        h, w = cur.shape[-2:]
        m = 2 * self.window
        ph, pw = (-h) % m, (-w) % m
        cp = F.pad(cur, (0, pw, 0, ph), mode="replicate") if (ph or pw) else cur
        rp = F.pad(ref, (0, pw, 0, ph), mode="replicate") if (ph or pw) else ref
        q = self.embed_q(cp).permute(0, 2, 3, 1)
        kv = self.embed_kv(rp).permute(0, 2, 3, 1)
        for blk in self.blocks:
            q = blk(q, kv)
        att = self.unembed(q.permute(0, 3, 1, 2))[..., :h, :w]
        return cur + self.fuse(torch.cat([cur, att], dim=1))


class AnalysisTransform(nn.Module):
    """x (+ context) -> y at 1/16 resolution."""

    def __init__(self, in_ch: int, N: int, M: int):
        super().__init__()
        self.net = nn.Sequential(
            conv(in_ch, N), GDN(N), conv(N, N), GDN(N), conv(N, N), GDN(N), conv(N, M),
        )

    def forward(self, x):
        return self.net(x)


class SynthesisTransform(nn.Module):
    """y_hat -> narrow full-resolution features; also returns each upsampling stage's output.

    With ``cross=True`` a :class:`SpatialAlignment` follows each of the first three upsampling
    stages, attending to the reference decoder's features of the same stage.
    """

    def __init__(self, M: int, N: int, out_ch: int, cross: bool = False):
        super().__init__()
        self.stages = nn.ModuleList([
            nn.Sequential(deconv(M, N), GDN(N, inverse=True)),
            nn.Sequential(deconv(N, N), GDN(N, inverse=True)),
            nn.Sequential(deconv(N, N), GDN(N, inverse=True)),
            nn.Sequential(deconv(N, out_ch), nn.LeakyReLU(0.1, inplace=True)),
        ])
        self.align = nn.ModuleList([SpatialAlignment(N) for _ in range(3)]) if cross else None

    def forward(self, y_hat, ref_stages: list[torch.Tensor] | None = None):
        feats = []
        x = y_hat
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if self.align is not None and i < 3:
                x = self.align[i](x, ref_stages[i])
            feats.append(x)
        return x, feats
