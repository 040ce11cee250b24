"""Quality and rate metrics: PSNR (8- and 16-bit peaks), MS-SSIM, bits per pixel.

Conventions (the usual ones in learned image/video compression):

* PSNR of an RGB frame is computed from the MSE over all three channels together.
* The peak is 255 for ``uint8`` frames and 65535 for ``uint16`` frames unless given.
* bpp counts the bits of one modality over the pixels of that modality (``H*W``, not ``H*W*C``).
"""

from __future__ import annotations

import math

import numpy as np

MSSSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def peak_of(img: np.ndarray) -> float:
    if img.dtype == np.uint8:
        return 255.0
    if img.dtype == np.uint16:
        return 65535.0
    raise TypeError(f"no default peak for pixel type {img.dtype}; pass peak=")


def _check_pair(ref: np.ndarray, test: np.ndarray) -> None:
    if ref.shape != test.shape:
        raise ValueError(f"shapes differ: {ref.shape} vs {test.shape}")


def mse(ref: np.ndarray, test: np.ndarray) -> float:
    _check_pair(ref, test)
    d = ref.astype(np.float64) - test.astype(np.float64)
    return float(np.mean(d * d))


def psnr(ref: np.ndarray, test: np.ndarray, peak: float | None = None) -> float:
    """PSNR in dB; ``inf`` for identical images."""
    peak = peak_of(ref) if peak is None else float(peak)
    m = mse(ref, test)
    if m == 0.0:
        return math.inf
    return 10.0 * math.log10(peak * peak / m)


def bpp(bits: float, shape: tuple[int, ...]) -> float:
    """Bits per pixel of one image of ``shape`` (H, W[, C]); channels do not count as pixels."""
    return float(bits) / float(shape[0] * shape[1])


def msssim_setup(height: int, width: int) -> tuple[int, tuple[float, ...]]:
    """Window size and scale weights that MS-SSIM can use on an image of this size.

    The standard setting (11x11 Gaussian window, 5 scales) needs the smaller side to exceed 160
    pixels. Smaller images keep 5 scales with the largest odd window that fits (down to 3x3);
    below 33 pixels scales are dropped (weights of the remaining scales renormalised).
    """
    side = min(height, width)
    levels = len(MSSSIM_WEIGHTS)
    while levels > 1:
        down = 2 ** (levels - 1)
        win = min(11, (side - 1) // down + 1)
        if win % 2 == 0:
            win -= 1
        if win >= 3 and side > (win - 1) * down:
            if levels == len(MSSSIM_WEIGHTS):
                return win, MSSSIM_WEIGHTS
            w = np.array(MSSSIM_WEIGHTS[:levels])
            return win, tuple(float(x) for x in w / w.sum())
        levels -= 1
    raise ValueError(f"image {width}x{height} is too small for MS-SSIM")


def ms_ssim(ref: np.ndarray, test: np.ndarray, peak: float | None = None) -> float:
    """MS-SSIM (pytorch_msssim) of one gray (HxW) or colour (HxWxC) image pair, in [0, 1]."""
    import torch
    from pytorch_msssim import ms_ssim as _ms_ssim

    _check_pair(ref, test)
    peak = peak_of(ref) if peak is None else float(peak)
    win, weights = msssim_setup(ref.shape[0], ref.shape[1])

    def t(a):
        x = torch.from_numpy(np.ascontiguousarray(a).astype(np.float32))
        x = x.unsqueeze(0) if x.ndim == 2 else x.permute(2, 0, 1)
        return x.unsqueeze(0)

    # one thread: the depthwise convolutions of one image are 3-4x cheaper in CPU time that way
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        if len(weights) < len(MSSSIM_WEIGHTS):
            # pytorch_msssim asserts the 5-scale size even when fewer weights are given: do it here.
            return _ms_ssim_few_scales(t(ref), t(test), peak, win, weights)
        with torch.no_grad():
            return float(_ms_ssim(t(ref), t(test), data_range=peak, win_size=win, weights=list(weights)))
    finally:
        torch.set_num_threads(threads)


def _ms_ssim_few_scales(x, y, peak, win_size, weights) -> float:
    import torch
    import torch.nn.functional as F
    from pytorch_msssim.ssim import _fspecial_gauss_1d, _ssim

    win = _fspecial_gauss_1d(win_size, 1.5).repeat([x.shape[1], 1, 1, 1])
    mcs = []
    with torch.no_grad():
        for i in range(len(weights)):
            s, cs = _ssim(x, y, win=win, data_range=peak, size_average=False, K=(0.01, 0.03))
            if i < len(weights) - 1:
                mcs.append(torch.relu(cs))
                pad = [d % 2 for d in x.shape[2:]]
                x = F.avg_pool2d(x, kernel_size=2, padding=pad)
                y = F.avg_pool2d(y, kernel_size=2, padding=pad)
        vals = torch.stack(mcs + [torch.relu(s)], dim=0)
        w = torch.tensor(weights).view(-1, 1, 1)
        return float(torch.prod(vals ** w, dim=0).mean())


def msssim_db(value: float) -> float:
    """MS-SSIM on a dB scale, -10 log10(1 - MS-SSIM), as usually plotted."""
    return math.inf if value >= 1.0 else -10.0 * math.log10(1.0 - value)
