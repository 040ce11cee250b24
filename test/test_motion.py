"""codec/motion.py: motion vectors of the RGB layer's H.264 stream (libavcodec export_mvs), the dense
field, its rescaling to the thermal grid and the integer warp, on real M3SVD crops."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from codec_fixtures import crop_pair, psnr
from mm_compress_ros.codec.motion import (INTRA, MOVING, STATIC, MotionDecoder, MotionField, block_classes,
                                          rescale, warp)
from mm_compress_ros.codec.videocodec import LowDelayEncoder, VideoDecoder

pytestmark = pytest.mark.needs_data

H, W, Y0, X0 = 128, 192, 160, 224


def shifted(i: int, dy: int, dx: int):
    """The crop whose pixel (y, x) is the original's (y + dy, x + dx): content moved by (-dx, -dy)."""
    return crop_pair(i, H, W, Y0 + dy, X0 + dx)


def code(frames, codec: str = "h264", qp: int = 27):
    enc, dec = LowDelayEncoder(codec, "software"), MotionDecoder(codec)
    aus = [enc.encode(f, qp, key=t == 0) for t, f in enumerate(frames)]
    return aus, [dec.decode(au, frames[0].shape[:2]) for au in aus]


# -- plain references, written pixel by pixel -----------------------------------------------------

def slow_warp(prev: np.ndarray, field: MotionField) -> np.ndarray:
    h, w = prev.shape[:2]
    out = np.zeros_like(prev)
    for y in range(h):
        for x in range(w):
            dx, dy = (int(v) for v in field.mv[y // field.block, x // field.block])
            sx, sy = 4 * x + dx, 4 * y + dy
            x0, y0 = sx // 4, sy // 4           # floor
            fx, fy = sx - 4 * x0, sy - 4 * y0
            def px(yy, xx):
                return prev[min(max(yy, 0), h - 1), min(max(xx, 0), w - 1)].astype(np.int64)
            acc = ((4 - fx) * (4 - fy) * px(y0, x0) + fx * (4 - fy) * px(y0, x0 + 1)
                   + (4 - fx) * fy * px(y0 + 1, x0) + fx * fy * px(y0 + 1, x0 + 1))
            out[y, x] = (acc + 8) // 16
    return out


def slow_rescale(field: MotionField, size) -> np.ndarray:
    (hs, ws), (ht, wt), b = field.size, size, field.block
    hb, wb = -(-ht // b), -(-wt // b)
    out = np.zeros((hb, wb, 2), np.int64)
    for by in range(hb):
        for bx in range(wb):
            cy, cx = min(by * b + b // 2, ht - 1), min(bx * b + b // 2, wt - 1)
            dx, dy = field.mv[min(cy * hs // ht // b, field.mv.shape[0] - 1), min(cx * ws // wt // b, field.mv.shape[1] - 1)]
            for k, (v, num, den) in enumerate(((int(dx), wt, ws), (int(dy), ht, hs))):
                q = (2 * abs(v) * num + den) // (2 * den)
                out[by, bx, k] = q if v >= 0 else -q
    return out


def random_field(size, seed: int, block: int = 4) -> MotionField:
    rng = np.random.default_rng(seed)
    hb, wb = -(-size[0] // block), -(-size[1] // block)
    mv = rng.integers(-40, 41, (hb, wb, 2)).astype(np.int32)     # up to 10 px: reaches outside the picture
    inter = rng.random((hb, wb)) > 0.2
    mv[~inter] = 0
    return MotionField(mv, inter, tuple(size), block)


# -- tests ----------------------------------------------------------------------------------------

def test_field_read_from_a_real_coded_rgb_stream():
    frames = [crop_pair(i, H, W, Y0, X0)[0] for i in range(4)]
    aus, out = code(frames)
    plain = VideoDecoder("h264")
    for au, (pic, field) in zip(aus, out):
        assert np.array_equal(pic, plain.decode(au, (H, W), 3))     # the same picture as the layer's decoder
        assert field.mv.shape == (H // 4, W // 4, 2) and field.mv.dtype == np.int32
        assert field.size == (H, W)
    assert not out[0][1].inter.any()                                 # key frame: all intra
    for _, field in out[1:]:
        assert field.inter.mean() > 0.5                              # predicted frames carry vectors
        assert not field.mv[~field.inter].any()                      # no vector: zero motion
    assert any((block_classes(f) == MOVING).any() for _, f in out[1:])


def test_zero_field_warp_is_the_identity():
    rgb, th = crop_pair(0, H, W, Y0, X0)
    for img in (th, th.astype(np.uint16) * 257 + 3, rgb):
        z = MotionField.zero(img.shape[:2])
        got = warp(img, z)
        assert got.dtype == img.dtype and np.array_equal(got, img)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_warp_is_deterministic_and_matches_the_plain_reference(dtype):
    _, th = crop_pair(1, 36, 52, Y0, X0)       # odd-sized small crop: partial edge blocks
    img = th.astype(dtype) * (257 if dtype == np.uint16 else 1)
    field = random_field(img.shape, seed=7)
    a, b = warp(img, field), warp(img.copy(), field)
    assert a.dtype == dtype and np.array_equal(a, b)
    assert np.array_equal(a, slow_warp(img, field))
    rgb = crop_pair(1, 20, 28, Y0, X0)[0]
    f3 = random_field(rgb.shape[:2], seed=8)
    assert np.array_equal(warp(rgb, f3), slow_warp(rgb, f3))


def test_rescale_matches_the_plain_reference():
    field = random_field((96, 128), seed=3)
    for size in ((48, 64), (60, 80), (120, 160), (37, 53)):
        r = rescale(field, size)
        assert r.size == size and np.array_equal(r.mv, slow_rescale(field, size))
        assert not r.mv[~r.inter].any()


@pytest.mark.parametrize("dy,dx", [(3, -2), (-2, 5)])
def test_global_shift_gives_its_vectors_and_warping_beats_the_unwarped_previous(dy, dx):
    (rgb0, th0), (rgb1, th1) = shifted(0, 0, 0), shifted(0, dy, dx)
    _, out = code([rgb0, rgb1])
    field = out[1][1]
    mv = field.mv[field.inter]
    near = (np.abs(mv[:, 0] - 4 * dx) <= 1) & (np.abs(mv[:, 1] - 4 * dy) <= 1)
    assert field.inter.mean() > 0.8 and near.mean() > 0.8, (field.inter.mean(), near.mean())
    assert (block_classes(field) == MOVING).mean() > 0.8
    before, after = psnr(th0, th1), psnr(warp(th0, field), th1)
    assert after > before + 6, (before, after)
    # the thermal camera at half the RGB resolution: the field rescaled to its grid
    half = [cv2.resize(t, (W // 2, H // 2), interpolation=cv2.INTER_AREA) for t in (th0, th1)]
    hf = rescale(field, half[0].shape)
    assert psnr(warp(half[0], hf), half[1]) > psnr(half[0], half[1]) + 3


def test_static_content_gives_static_blocks():
    rgb, _ = crop_pair(0, H, W, Y0, X0)
    _, out = code([rgb, rgb])
    cls = block_classes(out[1][1])
    assert (cls == STATIC).mean() > 0.9 and not (cls == INTRA).any()


def test_hevc_decoder_exports_no_vectors():
    """libavcodec's HEVC decoder ignores export_mvs: predicted H.265 frames give all-intra fields."""
    frames = [shifted(0, 0, 0)[0], shifted(0, 2, 3)[0]]
    _, out = code(frames, "h265")
    assert not any(f.inter.any() for _, f in out)
