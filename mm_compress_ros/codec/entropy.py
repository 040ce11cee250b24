"""Entropy models of the real-time codec: integer scale indexes, a skip rule, integer symbols.

DCVC-RT (Jia et al., CVPR 2025) codes each latent element with a Gaussian whose scale selects one
of a fixed set of CDF tables, and does not code at all an element whose predicted scale is tiny:
it takes the predicted mean instead, and the decoder derives the same mask from the same scales,
so a predictable (static) region costs no bits. Here the index is computed by integer networks
(:mod:`.intnet`), so encoder and decoder select the same table on every platform:

* :class:`SkipGaussianCoder` codes integer residual symbols ``q`` given integer scale indexes
  ``idx``: ``sigma = 2 ** ((idx - IDX0) / 8)``, ``N_SCALES`` tables; elements with
  ``idx < SKIP_BELOW`` are skipped;
* :class:`SymbolBottleneck` is CompressAI's factorized prior for ``z``, coding integer symbols
  ``round(z - median)`` (the decoder never adds a float median: its network takes the symbols).

The CDF tables are built once, at export (:meth:`build`), and travel in the model file.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from compressai.entropy_models import EntropyBottleneck, EntropyModel, GaussianConditional

IDX0 = 24          # the index of sigma = 1
N_SCALES = 89      # sigma = 2**((idx - 24) / 8): 0.125 .. 256
SKIP_BELOW = 6     # idx < 6 (sigma < 0.21): the element is not coded; it takes the predicted mean
SYMBOL_MAX = 127   # |z symbols| (clamped at the encoder; the hyper decoder's input range)


def _padded(data: bytes, symbols: int) -> bytes:
    """Zero bytes after a rANS stream: CompressAI's decoder reads 32-bit words without bounds
    checks, so a damaged stream could make it read past its buffer; a valid one never reaches
    the padding."""
    return data + bytes(8 * symbols + 16)


def scale_of(idx: torch.Tensor) -> torch.Tensor:
    return torch.exp2((idx - IDX0) / 8.0)


class SkipGaussianCoder(nn.Module):
    """Zero-mean Gaussian coder of integer symbols with ``N_SCALES`` tables and a skip rule."""

    def __init__(self):
        super().__init__()
        self.gaussian = GaussianConditional(scale_of(torch.arange(N_SCALES, dtype=torch.float64)).tolist())

    @staticmethod
    def skipped(idx: torch.Tensor) -> torch.Tensor:
        return idx < SKIP_BELOW

    def likelihood(self, r: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """Training: the probability of the unit bin around ``r`` (noisy residual, in steps)."""
        lik = self.gaussian._likelihood(r, scale_of(idx))
        return self.gaussian.likelihood_lower_bound(lik) if self.gaussian.use_likelihood_bound else lik

    def build(self) -> None:
        self.gaussian.update()

    def compress(self, q: torch.Tensor, idx: torch.Tensor) -> bytes:
        """``q``, ``idx``: 1-D tensors of the coded elements (integer values)."""
        if q.numel() == 0:
            return b""
        return EntropyModel.compress(self.gaussian, q[None].float(), idx[None].int())[0]

    def decompress(self, data: bytes, idx: torch.Tensor) -> torch.Tensor:
        if idx.numel() == 0:
            return torch.zeros(0, device=idx.device)
        q = EntropyModel.decompress(self.gaussian, [_padded(data, idx.numel())], idx[None].int())
        return q[0].to(idx.device)


class SymbolBottleneck(EntropyBottleneck):
    """CompressAI's factorized prior, coding integer symbols ``clamp(round(z - median))``."""

    def symbols(self, z: torch.Tensor) -> torch.Tensor:
        """Straight-through integer symbols (the hyper decoder's input at both ends)."""
        med = self._get_medians().detach().reshape(1, -1, *([1] * (z.dim() - 2)))
        v = z - med
        return (v + (torch.floor(v + 0.5) - v).detach()).clamp(-SYMBOL_MAX, SYMBOL_MAX)

    def build(self) -> None:
        self.update(force=True)

    def compress_symbols(self, sym: torch.Tensor) -> bytes:
        return EntropyModel.compress(self, sym.float(), self._build_indexes(sym.size()))[0]

    def decompress_symbols(self, data: bytes, shape: tuple[int, ...], device) -> torch.Tensor:
        indexes = self._build_indexes(torch.Size(shape))
        return EntropyModel.decompress(self, [_padded(data, int(torch.tensor(shape).prod()))],
                                       indexes).to(device)
