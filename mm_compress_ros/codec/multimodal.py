"""The multi-modality video codec: four conditional codecs for one coding direction.

The *reference* modality (RGB for ``thermal_given_rgb``) is coded first; the *dependent* one is
coded with the decoded reference as context. Key frames use no temporal context; predicted frames
use the same modality's previous decoded frame (and, for the dependent modality, the same-time
decoded reference too).

All tensors here are float images in [0, 1], already padded to a multiple of :data:`PAD`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.models.base import get_scale_table

from .layers import ChannelAlignment, FeatureExtractor, resize_to
from .conditional import ConditionalCodec

from .api import CHANNELS, DIRECTIONS, PAD  # noqa: F401 (re-exported: the contract both designs share)

# The reference input of a single-modality baseline (a model card with "reference_input": "blank"):
# a constant 8-bit image, so that its dependent codec gets no information from the other camera.
BLANK_REFERENCE = 128


@dataclass
class ModelConfig:
    direction: str = "thermal_given_rgb"
    N: int = 64
    M: int = 96
    ctx: int = 16        # channels of temporal / cross-modal context features
    align: int = 64      # channels of the channel-wise alignment (64 gammas + 64 betas)
    levels: int = 6

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Decoded:
    """Decoded (padded) frames of one pair; the temporal context of the next pair."""

    ref: torch.Tensor
    dep: torch.Tensor
    dep_state: object = None   # what the next predicted dependent frame takes (see compress_dep)


class MultiModalCodec(nn.Module):
    exact = False   # floating-point decoder: encoder and decoder pin one thread count (stream.py)

    def __init__(self, cfg: ModelConfig | None = None):
        super().__init__()
        cfg = cfg or ModelConfig()
        if cfg.direction not in DIRECTIONS:
            raise ValueError(f"unknown direction {cfg.direction!r}; use one of {sorted(DIRECTIONS)}")
        self.cfg = cfg
        self.ref_name, self.dep_name = DIRECTIONS[cfg.direction]
        rc, dc = CHANNELS[self.ref_name], CHANNELS[self.dep_name]
        N, M, C, A, L = cfg.N, cfg.M, cfg.ctx, cfg.align, cfg.levels
        # key frames
        self.ref_intra = ConditionalCodec(rc, N, M, levels=L)
        self.align_ref = FeatureExtractor(rc, A, deep=False)
        self.align_cur = FeatureExtractor(dc, A, deep=False)
        self.align = ChannelAlignment(A)
        self.align_coder = EntropyBottleneck(2 * A)
        self.dep_intra = ConditionalCodec(dc, N, M, ctx_ch=A, levels=L, cross=True)
        # predicted frames
        self.ref_temporal = FeatureExtractor(rc, C)
        self.ref_inter = ConditionalCodec(rc, N, M, ctx_ch=C, levels=L, residual=True)
        self.dep_temporal = FeatureExtractor(dc, C)
        self.dep_cross = FeatureExtractor(rc, C)
        self.dep_inter = ConditionalCodec(dc, N, M, ctx_ch=2 * C, levels=L, residual=True)

    @property
    def levels(self) -> int:
        return self.cfg.levels

    # -- contexts (shared by training, compress and decompress) -----------------------------
    def _ref_feature(self, ref_hat, dep_size):
        return self.align_ref(resize_to(ref_hat, dep_size))

    def _dep_inter_ctx(self, dep_prev, ref_hat):
        cross = self.dep_cross(resize_to(ref_hat, dep_prev.shape[-2:]))
        return torch.cat([self.dep_temporal(dep_prev), cross], dim=1)

    # -- training ---------------------------------------------------------------------------
    def forward_key(self, ref, dep, level):
        r = self.ref_intra(ref, level)
        d = self.forward_dep_key(r["x_hat"], r["stages"], dep, level)
        return {"ref_hat": r["x_hat"], "dep_hat": d["x_hat"],
                "likelihoods": {"ref": r["likelihoods"], "dep": d["likelihoods"]}}

    def forward_dep_key(self, ref_hat, stages, dep, level):
        """The dependent key-frame codec given a decoded reference (from any reference coder)."""
        f_ref = self._ref_feature(ref_hat, dep.shape[-2:])
        coef = self.align.coefficients(f_ref, self.align_cur(dep))
        coef_hat, coef_lik = self.align_coder(coef)
        aligned = self.align.align_features(f_ref, coef_hat)
        d = self.dep_intra(dep, level, ctx=aligned, ref_stages=stages)
        return {"x_hat": d["x_hat"], "likelihoods": {**d["likelihoods"], "align": coef_lik}}

    def forward_predicted(self, ref, dep, prev: Decoded, level):
        r = self.ref_inter(ref, level, ctx=self.ref_temporal(prev.ref), base=prev.ref)
        d = self.forward_dep_predicted(r["x_hat"], dep, prev.dep, level)
        return {"ref_hat": r["x_hat"], "dep_hat": d["x_hat"],
                "likelihoods": {"ref": r["likelihoods"], "dep": d["likelihoods"]}}

    def forward_dep_predicted(self, ref_hat, dep, dep_prev, level):
        return self.dep_inter(dep, level, ctx=self._dep_inter_ctx(dep_prev, ref_hat), base=dep_prev)

    # -- real bitstreams --------------------------------------------------------------------
    # Each compress_* returns (sections, digests, Decoded); digests = (reference, dependent) index
    # checksums (see ConditionalCodec.index_digest); decompress_* take them back and verify.
    # The *_dep_* methods code the dependent modality given a decoded reference ``ref_hat`` from any
    # reference coder (this model's own, or a standard video codec: see codec/reference.py).
    def compress_ref(self, ref, level, prev_ref=None):
        """This model's reference codec: intra without ``prev_ref``, else temporal.
        Sections: ref y, ref z. Returns (sections, digest, ref_hat, decoder stages)."""
        if prev_ref is None:
            strings, digest, ref_hat, stages = self.ref_intra.compress(ref, level)
        else:
            strings, digest, ref_hat, stages = self.ref_inter.compress(
                ref, level, ctx=self.ref_temporal(prev_ref), base=prev_ref)
        return strings, digest, ref_hat.clamp(0, 1), stages

    def decompress_ref(self, sections, ref_size, level, digest=None, prev_ref=None):
        if prev_ref is None:
            ref_hat, stages = self.ref_intra.decompress(sections, ref_size, level, digest)
        else:
            ref_hat, stages = self.ref_inter.decompress(
                sections, ref_size, level, digest, ctx=self.ref_temporal(prev_ref), base=prev_ref)
        return ref_hat.clamp(0, 1), stages

    def compress_key(self, ref, dep, level):
        """Sections: ref y, ref z, alignment, dep y, dep z."""
        r_str, r_dig, ref_hat, stages = self.compress_ref(ref, level)
        d_str, d_dig, dep_hat = self.compress_dep_key(ref_hat, stages, dep, level)
        return [*r_str, *d_str], (r_dig, d_dig), Decoded(ref_hat, dep_hat)

    def compress_dep_key(self, ref_hat, stages, dep, level):
        """Sections: alignment, dep y, dep z. Returns (sections, digest, dep_hat)."""
        f_ref = self._ref_feature(ref_hat, dep.shape[-2:])
        coef = self.align.coefficients(f_ref, self.align_cur(dep))
        a_str = self.align_coder.compress(coef)
        coef_hat = self.align_coder.decompress(a_str, coef.shape[-2:])
        aligned = self.align.align_features(f_ref, coef_hat)
        d_str, d_dig, dep_hat, _ = self.dep_intra.compress(dep, level, ctx=aligned, ref_stages=stages)
        return [a_str[0], *d_str], d_dig, dep_hat.clamp(0, 1)

    def decompress_dep_key(self, sections, ref_hat, stages, dep_size, level, digest=None):
        f_ref = self._ref_feature(ref_hat, dep_size)
        coef_hat = self.align_coder.decompress([sections[0]], (1, 1))
        aligned = self.align.align_features(f_ref, coef_hat)
        dep_hat, _ = self.dep_intra.decompress(sections[1:3], dep_size, level, digest, ctx=aligned,
                                               ref_stages=stages)
        return dep_hat.clamp(0, 1)

    def compress_dep_predicted(self, ref_hat, dep, dep_prev, level):
        """Sections: dep y, dep z. Returns (sections, digest, dep_hat)."""
        d_str, d_dig, dep_hat, _ = self.dep_inter.compress(
            dep, level, ctx=self._dep_inter_ctx(dep_prev, ref_hat), base=dep_prev)
        return d_str, d_dig, dep_hat.clamp(0, 1)

    def decompress_dep_predicted(self, sections, ref_hat, dep_prev, dep_size, level, digest=None):
        dep_hat, _ = self.dep_inter.decompress(
            sections, dep_size, level, digest, ctx=self._dep_inter_ctx(dep_prev, ref_hat), base=dep_prev)
        return dep_hat.clamp(0, 1)

    # one entry point for either frame type, shared with the real-time codec (rtcodec.py): the
    # dependent ``state`` of this design is its decoded image
    def compress_dep(self, ref_hat, stages, dep, level, state=None):
        """Key frame without ``state``, else predicted. Returns (sections, digest, dep_hat, state)."""
        if state is None:
            sections, digest, dep_hat = self.compress_dep_key(ref_hat, stages, dep, level)
        else:
            sections, digest, dep_hat = self.compress_dep_predicted(ref_hat, dep, state, level)
        return sections, digest, dep_hat, dep_hat

    def decompress_dep(self, sections, ref_hat, stages, size, level, digest=None, state=None):
        """Inverse of :meth:`compress_dep`: returns (dep_hat, state)."""
        if state is None:
            dep_hat = self.decompress_dep_key(sections, ref_hat, stages, size, level, digest)
        else:
            dep_hat = self.decompress_dep_predicted(sections, ref_hat, state, size, level, digest)
        return dep_hat, dep_hat

    def reference_stages(self, ref_hat, level):
        """Decoder-stage features for a reference picture coded by another codec.

        The dependent key-frame decoder's spatial alignment attends to the reference decoder's
        stage features. A reference decoded by H.264/H.265 has none, so they are made by passing
        the decoded picture through this model's reference transforms: ``g_s(Q(g_a(ref_hat)))`` with
        the level's gains, nothing entropy-coded. Both ends compute it from the same picture.
        """
        return self.ref_intra.stages_of(ref_hat, level)

    def update(self, force: bool = True) -> None:
        """Builds the CDF tables of every entropy model (after training or loading weights)."""
        for m in self.modules():
            if isinstance(m, EntropyBottleneck):
                m.update(force=force)
        for m in self.modules():
            if isinstance(m, GaussianConditional):
                m.update_scale_table(get_scale_table(), force=force)

    def aux_loss(self) -> torch.Tensor:
        return sum(m.loss() for m in self.modules() if isinstance(m, EntropyBottleneck))
