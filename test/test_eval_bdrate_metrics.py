"""BD-rate self-checks on synthetic curves with known answers, and the quality metrics."""

import math

import numpy as np
import pytest

from mm_compress_ros.eval.bdrate import BDError, bd_psnr, bd_rate, pchip, rate_at
from mm_compress_ros.eval.metrics import bpp, ms_ssim, msssim_setup, psnr


def _concave(rates):
    # a realistic RD shape: PSNR grows with log-rate, with diminishing returns
    lr = np.log(rates)
    return 38.0 + 6.0 * lr - 0.4 * lr ** 2


def test_bd_rate_of_a_rate_scaled_curve_is_the_scale():
    rates = np.array([0.05, 0.11, 0.24, 0.5, 1.1])
    psnrs = _concave(rates)
    for factor in (0.8, 0.5, 1.25):
        # the same curve with every rate multiplied by ``factor``: BD-rate = factor - 1 exactly
        assert bd_rate(rates, psnrs, rates * factor, psnrs) == pytest.approx((factor - 1) * 100, abs=1e-9)


def test_bd_rate_with_other_sample_points_on_a_loglinear_curve():
    # log R linear in PSNR: PCHIP is exact for linear data, so any sampling gives the exact answer
    qa = np.array([30.0, 33.0, 36.5, 40.0])
    ra = np.exp(-5.0 + 0.23 * qa)
    qt = np.array([29.0, 31.0, 34.0, 38.0, 41.0])
    rt = 0.7 * np.exp(-5.0 + 0.23 * qt)
    assert bd_rate(ra, qa, rt, qt) == pytest.approx(-30.0, abs=1e-6)


def test_bd_rate_of_a_quality_dependent_shift():
    # log R_t = log R_a + s (D - D0): the mean log difference over [30, 40] is s (35 - D0)
    qa = np.array([30.0, 32.0, 35.0, 37.0, 40.0])
    s, d0 = 0.05, 31.0
    ra = np.exp(-4.0 + 0.2 * qa)
    rt = ra * np.exp(s * (qa - d0))
    expected = (math.exp(s * (35.0 - d0)) - 1) * 100
    assert bd_rate(ra, qa, rt, qa) == pytest.approx(expected, abs=1e-6)
    # and the reverse comparison is the inverse rate ratio
    assert bd_rate(rt, qa, ra, qa) == pytest.approx((math.exp(-s * (35.0 - d0)) - 1) * 100, abs=1e-6)


def test_bd_rate_only_uses_the_overlapping_range():
    qa = np.array([30.0, 34.0, 38.0, 42.0])
    ra = np.exp(-4.0 + 0.2 * qa)
    qt = np.array([36.0, 39.0, 44.0, 48.0])
    rt = 0.5 * np.exp(-4.0 + 0.2 * qt)
    assert bd_rate(ra, qa, rt, qt) == pytest.approx(-50.0, abs=1e-6)


def test_bd_psnr_of_a_quality_shifted_curve():
    rates = np.array([0.05, 0.1, 0.2, 0.4, 0.8])
    psnrs = _concave(rates)
    assert bd_psnr(rates, psnrs, rates, psnrs + 0.75) == pytest.approx(0.75, abs=1e-9)
    assert bd_psnr(rates, psnrs, rates, psnrs - 1.5) == pytest.approx(-1.5, abs=1e-9)


def test_bd_errors():
    with pytest.raises(BDError):
        bd_rate([0.1, 0.2], [30, 32], [0.3, 0.4], [40, 42])  # no overlap in quality
    with pytest.raises(BDError):
        bd_rate([0.1], [30], [0.1, 0.2], [30, 31])           # one point only
    with pytest.raises(BDError):
        bd_rate([0.0, 0.0, -1], [30, 31, 32], [0.1, 0.2], [30, 31])  # rates must be > 0


def test_pchip_matches_scipy_and_is_monotone():
    import scipy.interpolate as scipy_interp  # installed with compressai
    rng = np.random.default_rng(0)
    for _ in range(20):
        x = np.sort(rng.uniform(0, 10, 6))
        y = np.cumsum(rng.uniform(-1, 3, 6))
        xq = np.linspace(x[0], x[-1], 200)
        np.testing.assert_allclose(pchip(x, y, xq), scipy_interp.PchipInterpolator(x, y)(xq), atol=1e-10)
    x = np.array([0.0, 1.0, 2.0, 5.0])
    y = np.array([0.0, 0.1, 3.0, 3.2])
    v = pchip(x, y, np.linspace(0, 5, 500))
    assert np.all(np.diff(v) >= -1e-12)  # monotone data stay monotone (no overshoot)


def test_rate_at():
    q = np.array([30.0, 35.0, 40.0])
    r = np.exp(-4.0 + 0.2 * q)
    assert rate_at(r, q, 37.5) == pytest.approx(math.exp(-4.0 + 0.2 * 37.5))
    assert rate_at(r, q, 45.0) is None


def test_psnr_8_and_16_bit_peaks():
    a = np.full((20, 30, 3), 100, np.uint8)
    b = a + np.uint8(5)  # MSE 25
    assert psnr(a, b) == pytest.approx(10 * math.log10(255 ** 2 / 25))
    assert psnr(a, a) == math.inf
    a16 = np.full((20, 30), 30000, np.uint16)
    b16 = a16 + np.uint16(256)
    assert psnr(a16, b16) == pytest.approx(10 * math.log10(65535 ** 2 / 256 ** 2))
    assert psnr(a16, b16, peak=4095) == pytest.approx(10 * math.log10(4095 ** 2 / 256 ** 2))
    with pytest.raises(ValueError):
        psnr(a, a[:10])


def test_bpp_counts_pixels_not_channels():
    assert bpp(640 * 480 * 2, (480, 640, 3)) == 2.0
    assert bpp(1000, (10, 50)) == 2.0


def test_ms_ssim_full_and_small_images():
    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:200, 0:240]
    img = (127 + 60 * np.sin(x / 9.0) * np.cos(y / 13.0)).astype(np.uint8)
    rgb = np.stack([img, np.roll(img, 5, 0), np.roll(img, 7, 1)], -1)
    assert ms_ssim(img, img) == pytest.approx(1.0, abs=1e-6)
    light = np.clip(img + rng.normal(0, 3, img.shape), 0, 255).astype(np.uint8)
    heavy = np.clip(img + rng.normal(0, 20, img.shape), 0, 255).astype(np.uint8)
    assert 1.0 > ms_ssim(img, light) > ms_ssim(img, heavy) > 0.3
    assert ms_ssim(rgb, rgb) == pytest.approx(1.0, abs=1e-6)
    assert msssim_setup(200, 240)[0] == 11 and len(msssim_setup(200, 240)[1]) == 5
    # small images: the window shrinks, then scales are dropped, instead of failing
    for h, w in ((64, 96), (40, 40), (24, 30)):
        small, noisy = img[:h, :w], heavy[:h, :w]
        win, weights = msssim_setup(h, w)
        assert win % 2 == 1 and win >= 3 and sum(weights) == pytest.approx(1.0, abs=2e-4)
        v = ms_ssim(small, noisy)
        assert 0.0 < v < 1.0 and ms_ssim(small, small) == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError):
        msssim_setup(4, 4)
    # 16-bit images use the 16-bit peak
    img16 = img.astype(np.uint16) * 257
    heavy16 = heavy.astype(np.uint16) * 257
    assert ms_ssim(img16, heavy16) == pytest.approx(ms_ssim(img, heavy), abs=2e-3)
