"""Integer networks: layers whose outputs are the same integers on every platform.

A decoder that runs a floating-point network to find its entropy parameters or its next temporal
state gets results that depend on the kernel library, the thread count and the precision: sums
taken in another order round differently. Ballé et al. (ICLR 2019, "Integer networks for data
compression with latent-variable models") remove that dependence by making the network integer.
:class:`IntConv2d` does so with ordinary float convolutions:

* weights are integers ``w`` with ``|w| <= 127`` (a power-of-two scale per output channel);
* inputs are integers with ``|x| <= in_max``; biases are integers;
* the layer checks at construction that ``fan_in * 127 * in_max + |bias|`` stays below ``2**24``,
  so every partial sum of the convolution is an integer that float32 (and float64) represents
  exactly: the result is the same whatever order a kernel sums in, with oneDNN or without, on one
  thread or many, in float32 or float64, on a CPU or a GPU (with TF32 off: see :func:`exact_mode`);
* the output is requantized by a power of two and rounded half up in float64 (exact), and clamped.

During training the same code runs with straight-through rounding (the gradient of ``round`` is
taken as 1), so the trained network is the integer network the decoder runs. :meth:`freeze`
stores the integer weights, biases and shifts as buffers; a frozen layer in eval mode uses only
those (they travel in the model file).

Activations of hidden layers are integers ``q`` in ``-16..127`` standing for ``q / 16``: a leaky ReLU
(slope 1/8 below zero, exact) clipped at 7.94, written ``ACT`` below. The leak keeps channels from
dying (a plain clipped ReLU left a quarter of them at zero in training).
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn as nn
import torch.nn.functional as F

W_MAX = 127                 # largest integer weight magnitude
ACT_SHIFT = 4               # hidden activations are integers in units of 2**-4
ACT_MAX = 127               # ... up to 127
ACT_MIN = -16               # ... down to -16 (the leaky part: 1/8 of the negative pre-activation)
EXACT_LIMIT = 1 << 24       # float32 represents every integer below this exactly


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """Round half up; the gradient passes straight through (identity)."""
    r = torch.floor(x + 0.5)
    return x + (r - x).detach() if x.requires_grad else r


class IntConv2d(nn.Module):
    """``out = clamp(floor((conv(x, w) + b) * 2**-shift + 1/2), lo, hi)`` with integer ``x, w, b``.

    ``in_shift`` / ``out_shift``: the inputs and outputs are integers in units of ``2**-in_shift``
    and ``2**-out_shift`` of the real values the layer was trained on. ``out_range`` bounds the
    output integers; ``leaky`` (hidden layers) divides negative values by 8 first (a leaky ReLU;
    without it the layer is linear up to the clamp).
    ``upscale`` > 1 follows the convolution with a pixel shuffle (a sub-pixel convolution).
    """

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, *,
                 in_max: int = ACT_MAX, in_shift: int = ACT_SHIFT, out_shift: int = ACT_SHIFT,
                 out_range: tuple[int, int] = (ACT_MIN, ACT_MAX), leaky: bool = True, upscale: int = 1):
        super().__init__()
        fan_in = cin * kernel * kernel
        bound = fan_in * W_MAX * in_max
        if bound >= EXACT_LIMIT:
            raise ValueError(f"IntConv2d({cin}, {cout}, {kernel}): fan-in {fan_in} x 127 x {in_max} "
                             f"= {bound} >= 2**24; its sums would not be exact in float32")
        self.cin, self.cout, self.kernel, self.stride, self.upscale = cin, cout, kernel, stride, upscale
        self.in_shift, self.out_shift = in_shift, out_shift
        self.lo, self.hi = out_range
        self.leaky = leaky
        self.bias_max = EXACT_LIMIT - 1 - bound
        self.weight = nn.Parameter(torch.empty(cout, cin, kernel, kernel))
        nn.init.kaiming_uniform_(self.weight, a=5 ** 0.5)
        self.bias = nn.Parameter(torch.zeros(cout))
        # the frozen integer layer (filled by freeze(); used in eval mode once ``frozen`` is 1)
        self.register_buffer("w_int", torch.zeros(cout, cin, kernel, kernel, dtype=torch.int8))
        self.register_buffer("b_int", torch.zeros(cout, dtype=torch.int32))
        self.register_buffer("shift", torch.zeros(cout, dtype=torch.int8))
        self.register_buffer("frozen", torch.zeros((), dtype=torch.uint8))

    def extra_repr(self) -> str:
        return (f"{self.cin}, {self.cout}, kernel={self.kernel}, stride={self.stride}, "
                f"out=[{self.lo}, {self.hi}]/2^{self.out_shift}{', leaky' if self.leaky else ''}, "
                f"upscale={self.upscale}")

    def quantized(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(integer weights, integer biases, per-channel shift), with straight-through gradients."""
        w = self.weight
        amax = w.detach().abs().flatten(1).amax(1).clamp_min(1e-12)
        e = torch.floor(torch.log2(W_MAX / amax)).clamp(-8, 30)   # w_real = w_int * 2**-e
        w_int = round_ste(w * torch.exp2(e)[:, None, None, None]).clamp(-W_MAX, W_MAX)
        b_int = round_ste(self.bias * torch.exp2(e + self.in_shift)).clamp(-self.bias_max, self.bias_max)
        return w_int, b_int, e + self.in_shift - self.out_shift

    @torch.no_grad()
    def freeze(self) -> None:
        w_int, b_int, shift = self.quantized()
        self.w_int.copy_(w_int.to(torch.int8))
        self.b_int.copy_(b_int.to(torch.int32))
        self.shift.copy_(shift.to(torch.int8))
        self.frozen.fill_(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.frozen and not self.training:
            w, b, shift = self.w_int.to(x.dtype), self.b_int.to(x.dtype), self.shift.to(x.dtype)
        else:
            w, b, shift = (t.to(x.dtype) for t in self.quantized())
        acc = F.conv2d(x, w, b, self.stride, self.kernel // 2)
        # the power-of-two rescale and the rounding in float64, where ``acc * 2**-shift + 1/2`` is
        # exact for every |acc| < 2**24 and shift (in float32 it would round half to even above 2**23)
        v = acc.double() * torch.exp2(-shift.double())[:, None, None]
        if self.leaky:
            v = torch.where(v < 0, v * 0.125, v)
        out = round_ste(v).clamp(self.lo, self.hi).to(x.dtype)
        return F.pixel_shuffle(out, self.upscale) if self.upscale > 1 else out


def freeze(module: nn.Module) -> None:
    """Freezes every :class:`IntConv2d` in ``module`` (before export)."""
    for m in module.modules():
        if isinstance(m, IntConv2d):
            m.freeze()


def int_resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Nearest-neighbour resize with integer index arithmetic (exact on every platform)."""
    h, w = x.shape[-2:]
    if (h, w) == tuple(size):
        return x
    rows = (torch.arange(size[0], device=x.device) * h) // size[0]
    cols = (torch.arange(size[1], device=x.device) * w) // size[1]
    return x[..., rows[:, None], cols[None, :]]


@contextlib.contextmanager
def exact_mode():
    """On a GPU: no TF32 and no cuDNN while integer networks run (cuDNN may pick FFT or Winograd
    convolutions, which are not sums of the integer products; without it PyTorch convolves by
    im2col and a plain GEMM). A no-op on a CPU."""
    if not torch.cuda.is_available():
        yield
        return
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        with torch.backends.cudnn.flags(enabled=False):
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
