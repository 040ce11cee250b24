"""The real-time dependent codec (second design): one latent scale, feature-domain temporal
context, the decoded reference modality as context, skip mode, a 64-level quality bank, and
integer networks wherever the decoder computes something.

Data flow for the dependent frame ``x_t`` (thermal for ``thermal_given_rgb``), in the paper names
of CompressAI / DCVC-RT / Lu et al. (``[int]``: an integer network of :mod:`.intnet`, run
identically by encoder and decoder; ``[enc]``: encoder only, ordinary floats)::

    x̂_ref (decoded reference, 8-bit) ─unshuffle 8─► f_ref [int] ─► align(γ,β) ─► a_t
                                   (γ, β: per-channel integers from align_net [enc], sent raw,
                                    once per GOP with the key frame; Lu et al.'s channel-wise
                                    alignment with lossless coefficients)
    F_{t-1} (previous decoded feature, 1/8 scale; zeros at a key frame)
    ctx = ctx_net(a_t, F_{t-1})                                   [int]  1/8

    x_t ─unshuffle 8─► g_a(·, ctx) ─► y  (1/16)                   [enc]
    y ─► h_a ─► z (1/64) ─► Q ─► ẑ (integer symbols) ─► h_s       [enc] / [int]
    (h_s(ẑ), ctx↓2) ─► entropy parameters ─► μ, scale index       [int]
    y ─► q = round((y - μ) / Δ_l)  where index ≥ SKIP_BELOW, else skipped (ŷ = μ, no bits)
    ŷ = μ + q·Δ_l ─► g_s(·, ctx) ─► F_t ─► recon ─unshuffle⁻¹─► x̂_t   [int]
    F_t is the next frame's temporal context.

``Δ_l`` is the quality bank: per-channel integer steps for each of ``levels`` levels, geometric
between two learned vectors (DCVC-RT's learned per-channel scale vectors). The window
cross-attention of the first design is not used; the spatial alignment here is the convolutional
``ctx_net`` over the aligned reference features (what the attention costs in the first design is
in ``docs/benchmarks.md``).

Everything the decoder derives (scale indexes, means, ŷ, F_t, x̂_t) is an exact integer, so it
is bit-identical whatever the platform, thread count, kernel library or float precision.
"""

from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .api import CHANNELS, DIRECTIONS
from .entropy import IDX0, N_SCALES, SkipGaussianCoder, SymbolBottleneck
from .intnet import ACT_MAX, ACT_MIN, IntConv2d, exact_mode, freeze, int_resize, round_ste
from .packet import CorruptPacket, EntropyMismatch

Y_SHIFT = 4             # ŷ and μ are integers in units of 1/16
Y_MAX = 2047            # ... clamped to ±2047 (the first synthesis layer's exact input range)
PIX_SHIFT = 12          # x̂ is an integer in units of 1/4096
SCALE_SHIFT = 3         # scale logits are log2(sigma) in units of 1/8
UNSHUFFLE = 8
DELTA_MAX = 4095
# Frame modes of a predicted frame that codes nothing (its z section is empty; its y section is one
# mode byte): a *skipped frame* (z = 0, every latent element takes its predicted mean) or a
# *repeated frame* (the previous decoded picture and feature, unchanged). The encoder tries a
# repeated frame always and a skipped frame when fewer than SKIP_FRAME_TRY of the elements would be
# coded, and keeps the mode of lowest rate-distortion cost at the level's lambda (encoder-only); an
# input identical to the previous one is always a repeated frame (there is nothing new to send).
MODE_SKIP, MODE_REPEAT = 0, 1
SKIP_FRAME_TRY = 0.05


@dataclass
class RTConfig:
    arch: str = "rt"
    direction: str = "thermal_given_rgb"
    C: int = 48          # feature channels at 1/8 (the temporal state F_t)
    R: int = 32          # reference feature channels
    M: int = 64          # latent channels at 1/16
    Nz: int = 32         # hyper-latent channels at 1/64
    levels: int = 64
    lambda_min: float = 0.0004
    lambda_max: float = 0.2

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class RTState:
    """What a decoded dependent frame leaves for the next one (integers in float tensors)."""

    x_hat: torch.Tensor      # (1, ch, H, W) in [0, 1)
    feature: torch.Tensor    # F_t: (1, C, H/8, W/8), -16..127
    coef: torch.Tensor       # the GOP's alignment coefficients (1, 2R, 1, 1), -128..127
    x: torch.Tensor | None = None   # encoder only: the input picture this state coded


class RTDependentCodec(nn.Module):
    exact = True    # the decoder is integer: bit-identical on any thread count, library or precision

    def __init__(self, cfg: RTConfig | None = None):
        super().__init__()
        cfg = cfg or RTConfig()
        if cfg.direction not in DIRECTIONS:
            raise ValueError(f"unknown direction {cfg.direction!r}; use one of {sorted(DIRECTIONS)}")
        self.cfg = cfg
        self.ref_name, self.dep_name = DIRECTIONS[cfg.direction]
        rc, dc = CHANNELS[self.ref_name] * 64, CHANNELS[self.dep_name] * 64
        C, R, M, Nz = cfg.C, cfg.R, cfg.M, cfg.Nz
        # both ends, integer
        self.ref_net = nn.Sequential(IntConv2d(rc, R, 1, in_max=255, in_shift=8), IntConv2d(R, R, 3))
        self.ctx_net = nn.Sequential(IntConv2d(R + C, C, 3), IntConv2d(C, C, 3))
        self.h_s = nn.Sequential(IntConv2d(Nz, 4 * 64, 3, in_max=127, in_shift=0, upscale=2),
                                 IntConv2d(64, 4 * 64, 3, upscale=2))
        self.ctx_down = IntConv2d(C, C, 3, stride=2)
        self.ep = IntConv2d(64 + C, 128, 1)
        self.ep_mean = IntConv2d(128, M, 1, out_shift=Y_SHIFT, out_range=(-Y_MAX, Y_MAX), leaky=False)
        self.ep_scale = IntConv2d(128, M, 1, out_shift=SCALE_SHIFT, out_range=(-128, 127), leaky=False)
        self.g_s_up = IntConv2d(M, 4 * C, 1, in_max=Y_MAX, in_shift=Y_SHIFT, upscale=2)
        self.g_s = nn.Sequential(IntConv2d(2 * C, C, 3), IntConv2d(C, C, 3))
        self.recon = IntConv2d(C, dc, 3, out_shift=PIX_SHIFT, out_range=(0, (1 << PIX_SHIFT) - 1),
                               leaky=False, upscale=UNSHUFFLE)
        # encoder only, float
        self.align_net = nn.Sequential(nn.Conv2d(R + dc, 64, 1), nn.ReLU(inplace=True), nn.Conv2d(64, 2 * R, 1))
        self.g_a = nn.Sequential(
            nn.Conv2d(dc + C, 64, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(64, M, 3, stride=2, padding=1))
        self.h_a = nn.Sequential(nn.Conv2d(M, 64, 3, stride=2, padding=1), nn.ReLU(inplace=True),
                                 nn.Conv2d(64, Nz, 3, stride=2, padding=1))
        # entropy models
        self.z_coder = SymbolBottleneck(Nz)
        self.y_coder = SkipGaussianCoder()
        # quality bank: log2 of the quantization step (in 1/16 units of y) at the lowest and the
        # highest level, per channel; frozen into integer tables at export
        self.log_delta = nn.Parameter(torch.stack([torch.full((M,), 5.0), torch.full((M,), 1.0)]))
        self.register_buffer("delta_int", torch.zeros(cfg.levels, M, dtype=torch.int32))
        self.register_buffer("delta_lg", torch.zeros(cfg.levels, M, dtype=torch.int32))
        self.register_buffer("bank_frozen", torch.zeros((), dtype=torch.uint8))

    @property
    def levels(self) -> int:
        return self.cfg.levels

    def lambdas(self, device=None) -> torch.Tensor:
        """The RD trade-off each level was trained for (MSE of images in [0, 1], times 255^2)."""
        c = self.cfg
        t = torch.linspace(0, 1, c.levels, device=device, dtype=torch.float64)
        lam = torch.exp(torch.log(torch.tensor(c.lambda_min, dtype=torch.float64)) * (1 - t)
                        + torch.log(torch.tensor(c.lambda_max, dtype=torch.float64)) * t)
        return lam.float()

    # -- the quality bank -------------------------------------------------------------------
    def _bank(self, level: torch.Tensor, dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """(step Δ, 8·log2 Δ) per sample and channel, integers, shaped (B, M, 1, 1)."""
        if self.bank_frozen and not self.training:
            d, lg = self.delta_int[level], self.delta_lg[level]
        else:
            t = (level.float() / max(self.cfg.levels - 1, 1))[:, None]
            logd = self.log_delta[0] * (1 - t) + self.log_delta[1] * t
            d = round_ste(torch.exp2(logd)).clamp(1, DELTA_MAX)
            lg = round_ste(8 * torch.log2(d))
        return d.to(dtype)[..., None, None], lg.to(dtype)[..., None, None]

    # -- contexts (both ends) ---------------------------------------------------------------
    def _ref_feature(self, ref_hat: torch.Tensor, size) -> torch.Tensor:
        r = int_resize(torch.round(ref_hat * 255.0), size)
        return self.ref_net(F.pixel_unshuffle(r, UNSHUFFLE))

    @staticmethod
    def _align(f_ref: torch.Tensor, coef: torch.Tensor) -> torch.Tensor:
        """Lu et al.'s channel-wise alignment in integers: γ = (32 + g)/32, β = b/2 (ACT units)."""
        g, b = coef.chunk(2, dim=1)
        return round_ste((f_ref * (32 + g) + 16 * b) / 32).clamp(ACT_MIN, ACT_MAX)

    def _coefficients(self, f_ref: torch.Tensor, x_u: torch.Tensor) -> torch.Tensor:
        c = self.align_net(torch.cat([f_ref / 16.0, x_u], dim=1)).mean(dim=(2, 3), keepdim=True)
        return round_ste(8.0 * c).clamp(-128, 127)

    def _context(self, f_ref, coef, prev: torch.Tensor | None) -> torch.Tensor:
        if prev is None:
            prev = f_ref.new_zeros(f_ref.shape[0], self.cfg.C, *f_ref.shape[-2:])
        return self.ctx_net(torch.cat([self._align(f_ref, coef), prev], dim=1))

    def _params(self, z_sym, ctx, level):
        p = self.ep(torch.cat([self.h_s(z_sym), self.ctx_down(ctx)], dim=1))
        mean, s = self.ep_mean(p), self.ep_scale(p)
        delta, lg = self._bank(level, ctx.dtype)
        idx = (s - lg + IDX0).clamp(0, N_SCALES - 1)
        return mean, idx, delta

    def _skip_frame(self, ctx, level):
        """A skipped predicted frame: z = 0 and every latent element takes its predicted mean.
        Returns (x̂, F_t, scale indexes)."""
        z0 = ctx.new_zeros(ctx.shape[0], self.cfg.Nz, ctx.shape[-2] // 8, ctx.shape[-1] // 8)
        mean, idx, _ = self._params(z0, ctx, level)
        x_hat, feature = self._synthesize(mean.clamp(-Y_MAX, Y_MAX), ctx)
        return x_hat, feature, idx

    def _analyze(self, x, ref_hat, state: RTState | None):
        """Encoder side: the GOP's alignment coefficients, the context, ``y`` (1/16 units) and ``z``."""
        x_u = F.pixel_unshuffle(x, UNSHUFFLE)
        f_ref = self._ref_feature(ref_hat, x.shape[-2:])
        coef = self._coefficients(f_ref, x_u) if state is None else state.coef
        ctx = self._context(f_ref, coef, None if state is None else state.feature)
        y = self.g_a(torch.cat([x_u, ctx / 16.0], dim=1)) * (1 << Y_SHIFT)
        return coef, ctx, y, self.h_a(y / (1 << Y_SHIFT))

    def _check_digest(self, idx, digest: int | None) -> None:
        if digest is not None and self.index_digest(idx) != digest:
            raise EntropyMismatch("entropy-coder indexes differ from the encoder's (damaged stream "
                                  "or another model); waiting for a key frame")

    def _synthesize(self, y_hat, ctx):
        feature = self.g_s(torch.cat([self.g_s_up(y_hat), ctx], dim=1))
        return self.recon(feature) / float(1 << PIX_SHIFT), feature

    # -- training ---------------------------------------------------------------------------
    def forward(self, x, ref_hat, level, state: RTState | None = None) -> dict:
        """One frame: a key frame without ``state``, else predicted from it. ``x`` and ``ref_hat``
        are float images in [0, 1]; returns ``x_hat``, ``state``, ``likelihoods``, ``skip`` (the
        fraction of skipped latent elements)."""
        coef, ctx, y, z = self._analyze(x, ref_hat, state)
        _, z_lik = self.z_coder(z)
        mean, idx, delta = self._params(self.z_coder.symbols(z), ctx, level)
        r = (y - mean) / delta
        y_lik = self.y_coder.likelihood(r + torch.empty_like(r).uniform_(-0.5, 0.5), idx)
        skip = self.y_coder.skipped(idx.detach())
        q = torch.where(skip, torch.zeros_like(r), round_ste(r))
        x_hat, feature = self._synthesize((mean + q * delta).clamp(-Y_MAX, Y_MAX), ctx)
        return {"x_hat": x_hat, "state": RTState(x_hat, feature, coef),
                "likelihoods": {"y": y_lik, "z": z_lik}, "skip": skip.float().mean()}

    # -- real bitstreams --------------------------------------------------------------------
    @staticmethod
    def index_digest(idx: torch.Tensor) -> int:
        """16-bit checksum of the scale indexes (exact integers: a mismatch means a bug or a
        damaged stream, never rounding)."""
        return zlib.crc32(idx.to(torch.uint8).cpu().numpy().tobytes()) & 0xFFFF

    def compress(self, x, ref_hat, level, state: RTState | None = None, uncoded: bool = True):
        """Returns ``(sections, digest, state)``; sections ``[align, y, z]`` for a key frame
        (``state`` None), ``[y, z]`` for a predicted one. ``state.x_hat`` is the decoded image.
        ``uncoded=False`` never picks a skipped or repeated frame (the coded path alone)."""
        if state is not None and uncoded and state.x is not None and torch.equal(x, state.x):
            # the very same input again (a camera driver repeating its last frame): nothing new to send
            return [bytes([MODE_REPEAT]), b""], 0, state
        with exact_mode():
            coef, ctx, y, z = self._analyze(x, ref_hat, state)
            z_sym = self.z_coder.symbols(z)
            mean, idx, delta = self._params(z_sym, ctx, level)
            coded = ~self.y_coder.skipped(idx)
            q = torch.where(coded, torch.floor((y - mean) / delta + 0.5), torch.zeros_like(y))
            y_str = self.y_coder.compress(q[coded], idx[coded])
            z_str = self.z_coder.compress_symbols(z_sym)
            x_hat, feature = self._synthesize((mean + q * delta).clamp(-Y_MAX, Y_MAX), ctx)
            if state is not None and uncoded:   # a predicted frame: would coding nothing cost less?
                lam = float(self.lambdas()[int(level[0])]) * 255.0 ** 2
                best = 8 * (len(y_str) + len(z_str)) + lam * float(((x_hat - x) ** 2).sum())
                modes = [(MODE_REPEAT, (state.x_hat, state.feature, None))]
                if float(coded.float().mean()) < SKIP_FRAME_TRY:
                    modes.append((MODE_SKIP, self._skip_frame(ctx, level)))
                for mode, (m_hat, m_feature, m_idx) in modes:
                    j = 8 + lam * float(((m_hat - x) ** 2).sum())
                    if j < best:
                        best, x_hat, feature = j, m_hat, m_feature
                        idx = m_idx
                        y_str, z_str = bytes([mode]), b""
        sections = [y_str, z_str]
        if state is None:
            sections.insert(0, coef.flatten().to(torch.int8).cpu().numpy().tobytes())
        return sections, 0 if idx is None else self.index_digest(idx), RTState(x_hat, feature, coef, x)

    def decompress(self, sections, ref_hat, size, level, digest: int | None = None,
                   state: RTState | None = None) -> RTState:
        """Inverse of :meth:`compress`; ``size`` is the padded image size (H, W)."""
        key = state is None
        if len(sections) != (3 if key else 2):
            raise CorruptPacket(f"the dependent {'key' if key else 'predicted'} frame has "
                                f"{len(sections)} sections, expected {3 if key else 2}")
        dev = ref_hat.device
        if not key and sections == [bytes([MODE_REPEAT]), b""]:   # the previous picture and feature
            return RTState(state.x_hat, state.feature, state.coef)
        with exact_mode():
            f_ref = self._ref_feature(ref_hat, size)
            if key:
                raw = sections[0]
                if len(raw) != 2 * self.cfg.R:
                    raise CorruptPacket(f"alignment section has {len(raw)} bytes, expected {2 * self.cfg.R}")
                coef = torch.frombuffer(bytearray(raw), dtype=torch.int8).to(dev, f_ref.dtype)
                coef = coef.view(1, -1, 1, 1)
            else:
                coef = state.coef
            y_str, z_str = sections[-2:]
            ctx = self._context(f_ref, coef, None if key else state.feature)
            if not key and not z_str:   # a skipped frame (see MODE_SKIP)
                if y_str != bytes([MODE_SKIP]):
                    raise CorruptPacket(f"unknown frame mode {y_str[:4].hex() or 'none'} in an uncoded frame")
                x_hat, feature, idx = self._skip_frame(ctx, level)
                self._check_digest(idx, digest)
                return RTState(x_hat, feature, coef)
            z_shape = (1, self.cfg.Nz, size[0] // 64, size[1] // 64)
            z_sym = self.z_coder.decompress_symbols(z_str, z_shape, dev).to(f_ref.dtype)
            mean, idx, delta = self._params(z_sym, ctx, level)
            self._check_digest(idx, digest)
            coded = ~self.y_coder.skipped(idx)
            q = torch.zeros_like(mean)
            q[coded] = self.y_coder.decompress(y_str, idx[coded]).to(q.dtype)
            x_hat, feature = self._synthesize((mean + q * delta).clamp(-Y_MAX, Y_MAX), ctx)
        return RTState(x_hat, feature, coef)

    # -- the stream's interface (shared with the first design, multimodal.py) ---------------
    def compress_dep(self, ref_hat, stages, dep, level, state: RTState | None = None):
        """Key frame without ``state``, else predicted. Returns (sections, digest, dep_hat, state);
        ``stages`` is unused (no decoder-stage attention in this design)."""
        sections, digest, new = self.compress(dep, ref_hat, level, state)
        return sections, digest, new.x_hat, new

    def decompress_dep(self, sections, ref_hat, stages, size, level, digest=None,
                       state: RTState | None = None):
        new = self.decompress(sections, ref_hat, size, level, digest, state)
        return new.x_hat, new

    def reference_stages(self, ref_hat, level):
        """No decoder-stage features are needed from the reference (see multimodal.py)."""
        return None

    # -- export -----------------------------------------------------------------------------
    @torch.no_grad()
    def freeze(self) -> None:
        """Integer weights, the quality bank's tables and the CDF tables, stored as buffers."""
        freeze(self)
        levels = torch.arange(self.cfg.levels, device=self.log_delta.device)
        was = self.training
        self.train()
        d, lg = self._bank(levels, torch.float32)
        self.train(was)
        self.delta_int.copy_(d[..., 0, 0].to(torch.int32))
        self.delta_lg.copy_(lg[..., 0, 0].to(torch.int32))
        self.bank_frozen.fill_(1)
        self.y_coder.build()
        self.z_coder.build()

    def update(self, force: bool = True) -> None:
        """CDF tables are built by :meth:`freeze` and loaded from the model file (never rebuilt
        at load time: a table computed on another platform could differ)."""
        if force and not int(self.bank_frozen):
            self.freeze()

    def aux_loss(self) -> torch.Tensor:
        return self.z_coder.loss()
