"""Real anchor round trips (libx265 through PyAV, OpenCV JPEG) on crops of real m3svd_seq frames."""

import numpy as np
import pytest

from conftest import DATA_ROOT
from mm_compress_ros.eval import anchors
from mm_compress_ros.eval.metrics import psnr
from mm_compress_ros.eval.sequences import center_crop
from mm_compress_ros.io.frames import read_rgb, read_thermal

SEQ = DATA_ROOT / "m3svd_seq" / "0111_1716"
pytestmark = pytest.mark.needs_data


@pytest.fixture(scope="module")
def frames():
    if not SEQ.is_dir():
        pytest.fail(f"real data missing: {SEQ}")
    crop = (160, 120)
    rgb = [center_crop(read_rgb(SEQ / "rgb" / f"{i:04d}.png"), crop) for i in range(4)]
    th = [center_crop(read_thermal(SEQ / "thermal" / f"{i:04d}.png"), crop) for i in range(4)]
    return rgb, th


def test_x265_intra_low_qp_round_trips_above_45_db(frames):
    rgb, th = frames
    for src, kind in ((rgb[:2], "rgb"), (th[:2], "thermal")):
        out = anchors.x265_intra(src, qp=4)
        assert len(out) == len(src)
        for s, c in zip(src, out):
            assert c.decoded.shape == s.shape and c.decoded.dtype == np.uint8
            assert c.bits > 0 and c.bits % 8 == 0 and c.key
            assert psnr(s, c.decoded) > 45.0, kind
            if kind == "rgb":  # every channel in its place (no channel swap, no range error)
                for ch in range(3):
                    assert psnr(s[..., ch], c.decoded[..., ch]) > 43.0
                assert psnr(s[..., ::-1], c.decoded) < 40.0


def test_x265_intra_qp_sweep_is_monotone(frames):
    rgb, th = frames
    for src in (rgb[:1], th[:1]):
        res = {qp: anchors.x265_intra(src, qp)[0] for qp in (22, 37, 51)}
        bits = [res[q].bits for q in (22, 37, 51)]
        quality = [psnr(src[0], res[q].decoded) for q in (22, 37, 51)]
        assert bits[0] > bits[1] > bits[2]
        assert quality[0] > quality[1] > quality[2] > 20.0


def test_x265_intra_frames_are_self_contained(frames):
    # keyint 1 with repeated parameter sets: a frame costs the same coded alone or in a sequence
    _, th = frames
    alone = anchors.x265_intra(th[2:3], 32)[0]
    in_seq = anchors.x265_intra(th[:3], 32)
    assert in_seq[2].bits == alone.bits
    assert np.array_equal(in_seq[2].decoded, alone.decoded)


def test_x265_video_low_delay_p(frames):
    rgb, th = frames
    for src in (rgb, th):
        out = anchors.x265_video(src, qp=30, keyint=3)
        assert [c.decoded.shape for c in out] == [s.shape for s in src]
        bits = [c.bits for c in out]
        assert [c.key for c in out] == [True, False, False, True]
        # key frames at 0 and 3 cost more than the predicted frames between them
        assert min(bits[0], bits[3]) > max(bits[1], bits[2])
        assert all(psnr(s, c.decoded) > 30.0 for s, c in zip(src, out))
    # predicted frames make the sequence cheaper than all-intra at the same QP
    assert sum(c.bits for c in anchors.x265_video(th, 30, keyint=10)) < \
        sum(c.bits for c in anchors.x265_encode_decode(th, 30, "medium", "psnr", {"keyint": 1, "bframes": 0}))


def test_jpeg_round_trip_and_420(frames):
    rgb, th = frames
    hi = anchors.jpeg(th[:1], 95)[0]
    lo = anchors.jpeg(th[:1], 10)[0]
    assert hi.decoded.shape == th[0].shape and hi.decoded.ndim == 2
    assert psnr(th[0], hi.decoded) > 40.0 > psnr(th[0], lo.decoded) and hi.bits > lo.bits
    c = anchors.jpeg(rgb[:1], 90)[0]
    assert c.decoded.shape == rgb[0].shape and psnr(rgb[0], c.decoded) > 30.0
    assert psnr(rgb[0][..., ::-1], c.decoded) < psnr(rgb[0], c.decoded) - 3  # RGB order kept
    # 4:2:0: the SOF0 header lists component 1 (Y) with sampling factors 2x2
    import cv2
    ok, buf = cv2.imencode(".jpg", rgb[0][..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90,
                                                       cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
                                                       cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420])
    data = buf.tobytes()
    assert c.bits == 8 * len(data)
    sof = data.index(b"\xff\xc0")
    assert data[sof + 9] == 3 and data[sof + 11] == 0x22  # 3 components, Y sampled 2x2


def test_anchor_errors(frames):
    rgb, th = frames
    with pytest.raises(anchors.AnchorError):
        anchors.x265_intra([th[0].astype(np.uint16)], 30)
    with pytest.raises(anchors.AnchorError):
        anchors.jpeg([rgb[0], th[0]], 50)
    with pytest.raises(anchors.AnchorError):
        anchors.x265_intra([], 30)
    with pytest.raises(anchors.AnchorError):
        anchors.x265_intra(th[:1], 60)
    with pytest.raises(anchors.AnchorError):
        anchors.run_anchor("bpg", th[:1], 30)
