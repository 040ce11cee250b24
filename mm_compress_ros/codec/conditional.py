"""Single-modality codecs: a gain-controlled mean-scale hyperprior, optionally conditioned.

:class:`ConditionalCodec` is the one model behind all four roles of the multi-modality video
codec (see :mod:`mm_compress_ros.codec.multimodal`):

=================  =========================================  ===========================
role               context (full-resolution features)         decoder extras
=================  =========================================  ===========================
reference, key     none (plain mean-scale hyperprior)         -
dependent, key     channel-aligned decoded reference          window cross-attention
reference, P       previous decoded frame                     residual on previous frame
dependent, P       previous decoded frame + same-time ref     residual on previous frame
=================  =========================================  ===========================

The context enters three places: the analysis transform input, the entropy parameters (through a
16x downsampled prior, which is where most of the temporal gain comes from on static cameras) and
the final reconstruction layers. Rate control is one model for all quality levels: learned gain
vectors on ``y`` and ``z`` (Cui et al., CVPR 2021) through CompressAI's gain latent codecs.
"""

from __future__ import annotations

import zlib

import torch
import torch.nn as nn
from compressai.entropy_models import EntropyBottleneck
from compressai.latent_codecs import GainHyperLatentCodec, GaussianConditionalLatentCodec

from .packet import EntropyMismatch
from .layers import AnalysisTransform, ContextPrior, SynthesisTransform, conv, deconv


def _padded(data: bytes, symbols: int) -> bytes:
    """Zero bytes after a rANS stream: CompressAI's decoder reads 32-bit words without bounds
    checks, so a damaged (CRC-valid but forged) stream could make it read past its buffer. A valid
    stream never reaches the padding; a damaged one reads zeros, which end every bypass run."""
    return data + bytes(8 * symbols + 16)


def _gain_init(levels: int, ch: int, lo: float, hi: float) -> torch.Tensor:
    g = torch.exp(torch.linspace(torch.log(torch.tensor(lo)), torch.log(torch.tensor(hi)), levels))
    return g[:, None].repeat(1, ch)


class ConditionalCodec(nn.Module):
    """Mean-scale hyperprior for one modality with optional full-resolution context."""

    WIDTH = 16  # channels of every full-resolution layer (they dominate the cost on a CPU)

    def __init__(self, ch: int, N: int, M: int, ctx_ch: int = 0, levels: int = 6,
                 cross: bool = False, residual: bool = False):
        super().__init__()
        self.ch, self.N, self.M, self.ctx_ch, self.levels = ch, N, M, ctx_ch, levels
        self.residual = residual
        K = self.WIDTH
        self.ctx_proj = (nn.Conv2d(ctx_ch, K, 1) if ctx_ch != K else nn.Identity()) if ctx_ch else None
        k_ctx = K if ctx_ch else 0
        self.g_a = AnalysisTransform(ch + k_ctx, N, M)
        self.g_s = SynthesisTransform(M, N, K, cross=cross)
        self.recon = nn.Sequential(
            nn.Conv2d(K + k_ctx, K, 3, padding=1), nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(K, K, 3, padding=1), nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(K, ch, 3, padding=1),
        )
        h_a = nn.Sequential(
            conv(M, N, 3, 1), nn.LeakyReLU(inplace=True),
            conv(N, N), nn.LeakyReLU(inplace=True), conv(N, N),
        )
        h_s = nn.Sequential(
            deconv(N, M), nn.LeakyReLU(inplace=True),
            deconv(M, M * 3 // 2), nn.LeakyReLU(inplace=True),
            conv(M * 3 // 2, M * 2, 3, 1),
        )
        self.hyper = GainHyperLatentCodec(EntropyBottleneck(N), h_a, h_s)
        self.prior = ContextPrior(K, M) if ctx_ch else None
        ep_in = 2 * M + (M if ctx_ch else 0)
        entropy_parameters = nn.Sequential(
            nn.Conv2d(ep_in, M * 2, 1), nn.LeakyReLU(inplace=True),
            nn.Conv2d(M * 2, M * 2, 1), nn.LeakyReLU(inplace=True),
            nn.Conv2d(M * 2, M * 2, 1),
        )
        self.y = GaussianConditionalLatentCodec(entropy_parameters=entropy_parameters, quantizer="ste")
        # level 0 = smallest stream; gains grow with the level
        self.y_gain = nn.Parameter(_gain_init(levels, M, 0.5, 2.0))
        self.y_gain_inv = nn.Parameter(_gain_init(levels, M, 2.0, 0.5))
        self.z_gain = nn.Parameter(_gain_init(levels, N, 0.7, 1.4))
        self.z_gain_inv = nn.Parameter(_gain_init(levels, N, 1.4, 0.7))

    # -- helpers ---------------------------------------------------------------------------
    def _gains(self, level: torch.Tensor):
        def g(p):
            return p[level].unsqueeze(-1).unsqueeze(-1)
        return g(self.y_gain), g(self.y_gain_inv), g(self.z_gain), g(self.z_gain_inv)

    def _project(self, ctx):
        return None if ctx is None or self.ctx_proj is None else self.ctx_proj(ctx)

    def _ctx_params(self, hyper_params: torch.Tensor, ctx: torch.Tensor | None) -> torch.Tensor:
        if self.prior is None:
            return hyper_params
        return torch.cat([hyper_params, self.prior(ctx)], dim=1)

    def _synthesize(self, y_hat, ctx, base, ref_stages):
        feat, stages = self.g_s(y_hat, ref_stages)
        if ctx is not None:
            feat = torch.cat([feat, ctx], dim=1)
        x_hat = self.recon(feat)
        if self.residual:
            x_hat = x_hat + base
        return x_hat, stages

    def _analyze(self, x, ctx):
        return self.g_a(x if ctx is None else torch.cat([x, ctx], dim=1))

    # -- training --------------------------------------------------------------------------
    def forward(self, x, level, ctx=None, base=None, ref_stages=None):
        ctx = self._project(ctx)
        yg, ygi, zg, zgi = self._gains(level)
        y = self._analyze(x, ctx)
        hyper = self.hyper(y, zg, zgi)
        y_out = self.y(y * yg, self._ctx_params(hyper["params"], ctx))
        y_hat = y_out["y_hat"] * ygi
        x_hat, stages = self._synthesize(y_hat, ctx, base, ref_stages)
        return {
            "x_hat": x_hat,
            "stages": stages,
            "likelihoods": {"y": y_out["likelihoods"]["y"], "z": hyper["likelihoods"]["z"]},
        }

    def stages_of(self, x, level):
        """Synthesis-stage features of ``x`` without entropy coding: g_s(round(g_a(x) * gain) / gain)."""
        yg, ygi, _, _ = self._gains(level)
        _, stages = self.g_s(torch.round(self._analyze(x, None) * yg) * ygi)
        return stages

    # -- real bitstreams -------------------------------------------------------------------
    def index_digest(self, ctx_params: torch.Tensor) -> int:
        """16-bit checksum of the scale indexes that select the entropy coder's CDF tables.

        Encoder and decoder compute these indexes with floating-point networks; on different
        hardware a value sitting on a table boundary can round the other way, and rANS decoding
        with a different table yields garbage. The encoder sends this digest so that the decoder
        detects such a mismatch *before* decoding ``y`` instead of outputting a wrong image.
        """
        scales, _ = self.y._chunk(self.y.entropy_parameters(ctx_params))
        idx = self.y.gaussian_conditional.build_indexes(scales).to(torch.uint8).cpu().numpy()
        return zlib.crc32(idx.tobytes()) & 0xFFFF

    def compress(self, x, level, ctx=None, base=None, ref_stages=None):
        """Returns ``([y_bytes, z_bytes], digest, x_hat, stages)`` for a batch of one image.

        ``x_hat`` is computed from the decoded latents exactly as :meth:`decompress` does.
        """
        ctx = self._project(ctx)
        yg, ygi, zg, zgi = self._gains(level)
        y = self._analyze(x, ctx)
        hyper = self.hyper.compress(y, zg, zgi)
        ctx_params = self._ctx_params(hyper["params"], ctx)
        y_out = self.y.compress(y * yg, ctx_params)
        strings = [y_out["strings"][0][0], hyper["strings"][0][0]]
        y_hat = y_out["y_hat"] * ygi
        x_hat, stages = self._synthesize(y_hat, ctx, base, ref_stages)
        return strings, self.index_digest(ctx_params), x_hat, stages

    def decompress(self, strings, size, level, digest=None, ctx=None, base=None, ref_stages=None):
        """Inverse of :meth:`compress`; ``size`` is the padded image size (H, W).

        Raises :class:`EntropyMismatch` when ``digest`` is given and differs from the indexes this
        side computed (nothing is decoded then).
        """
        ctx = self._project(ctx)
        _, ygi, _, zgi = self._gains(level)
        y_shape = (size[0] // 16, size[1] // 16)
        z_shape = (size[0] // 64, size[1] // 64)
        z_str = _padded(strings[1], self.N * z_shape[0] * z_shape[1])
        hyper = self.hyper.decompress([[z_str]], z_shape, zgi)
        ctx_params = self._ctx_params(hyper["params"], ctx)
        if digest is not None and self.index_digest(ctx_params) != digest:
            raise EntropyMismatch(
                "entropy-coder tables differ from the encoder's (different hardware or software "
                "computed the entropy parameters differently); waiting for a key frame")
        y_out = self.y.decompress([[_padded(strings[0], self.M * y_shape[0] * y_shape[1])]], y_shape, ctx_params)
        y_hat = y_out["y_hat"] * ygi
        return self._synthesize(y_hat, ctx, base, ref_stages)
