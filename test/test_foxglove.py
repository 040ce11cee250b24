"""Foxglove / Lichtblick output (`bag decode --foxglove`, docs/rosbag.md), checked with libraries the
project does not otherwise use: the MCAP file is read back with `mcap` + `mcap_ros2.decoder`, and
each video layer is decoded from its CompressedVideo messages alone with PyAV's h264 / hevc
decoders, as a viewer would. Small crops of real frames (../shared/data).

Producers of the file, all fed to the same checks:
- :func:`written_by_cli`: raw bag -> `mm-compress bag encode` (a profile's options) ->
  `mm-compress bag decode --foxglove`, the whole path. The standard profile (the default) gives two
  CompressedVideo topics, RGB and 8-bit thermal; a stream with a thermal layer that is not an
  8-bit video (learned in the hybrid profile, 16-bit by H.265 at 12 bits, lossless) gives one
  CompressedVideo (RGB) and one decoded thermal Image. Everything a viewer decodes equals what
  the codec's own StreamDecoder decodes.
- :func:`written_by_writer`: RGB and gray thermal crops coded by PyAV's libx264 / libx265 in
  another configuration (low delay, no B frames, one `encode()` per frame; two slices per H.264
  frame, CRA key frames in H.265; the two topics in different formats), written through
  FoxgloveWriter: access units from an encoder other than the project's pass through as well.
"""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from codec_fixtures import crop_pair, psnr

from mm_compress_ros.bag.bagio import open_reader
from mm_compress_ros.bag.foxglove import VIDEO_SUFFIX, FoxgloveWriter
from mm_compress_ros.bag.rawbag import write_raw_bag
from mm_compress_ros.bag.types import (COMPRESSED_VIDEO, COMPRESSED_VIDEO_MSG, ENCODED_FRAME, IMAGE,
                                       full_msgdef_from_files, typestore)
from mm_compress_ros.cli import main as cli_main
from mm_compress_ros.io.ros_image import stamp_to_ns

pytestmark = pytest.mark.needs_data

N = 5                # frame pairs
GOP = 3              # key frames at 0 and 3
T0, PERIOD = 1_700_000_000_000_000_000, 33_333_333
THERMAL_OFFSET_NS = 4_000_000
PYAV_DECODER = {"h264": "h264", "h265": "hevc"}
PYAV_ENCODER = {"h264": "libx264", "h265": "libx265"}
OTHER_FORMAT = {"h264": "h265", "h265": "h264"}
FRAME_IDS = {"rgb": "rgb_optical_frame", "thermal": "thermal_optical_frame"}
TOPICS = {"rgb": "/rgb/image", "thermal": "/thermal/image"}
# RIHS01 of foxglove_msgs/msg/CompressedVideo as rosidl computes it: rosidl_adapter +
# rosidl_generator_type_description 4.9.5 (the venv's) run on the upstream .msg file's four fields
# (builtin_interfaces/Time timestamp, string frame_id, uint8[] data, string format).
UPSTREAM_RIHS01 = "RIHS01_32039eafc3770e589c86c4dabff9c392ce9955ebffd43f5f60763011d43d8d1d"


def stamp(ns: int) -> SimpleNamespace:
    return SimpleNamespace(sec=ns // 10**9, nanosec=ns % 10**9)


def run_cli(capsys, *argv):
    rc = cli_main([str(a) for a in argv])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def luma_to_gray(y: np.ndarray) -> np.ndarray:
    """8-bit thermal from the luma plane of its 4:2:0 picture: limited range 16..235 -> 0..255 with
    rounding (the inverse of the encoder's gray -> luma; docs/bitstream.md, codec/videocodec.py)."""
    return ((np.clip(y.astype(np.int32) - 16, 0, 219) * 255 + 109) // 219).astype(np.uint8)


def luma_plane(frame) -> np.ndarray:
    """The luma plane of a decoded PyAV frame as it came out of the decoder (no conversion)."""
    assert frame.format.name == "yuv420p", frame.format.name
    p = frame.planes[0]
    return np.frombuffer(p, np.uint8).reshape(-1, p.line_size)[:frame.height, :frame.width]


def test_carried_compressed_video_definition_is_the_upstream_type():
    store = typestore()
    _, fields = store.fielddefs[COMPRESSED_VIDEO]
    assert [name for name, _ in fields] == ["timestamp", "frame_id", "data", "format"]
    assert store.hash_rihs01(COMPRESSED_VIDEO) == UPSTREAM_RIHS01
    full = full_msgdef_from_files(COMPRESSED_VIDEO)
    assert full.startswith(COMPRESSED_VIDEO_MSG)
    assert "\n" + "=" * 80 + "\nMSG: builtin_interfaces/Time\n" in full


# -- producers of a Foxglove MCAP file -----------------------------------------------------------

def code_frames(frames, fmt):
    """One Annex B access unit per frame (HxWx3 RGB, or HxW gray coded as luma with flat chroma)
    from PyAV's libx264 / libx265: low delay, no B frames, a key frame every GOP frames (with its
    parameter sets in band)."""
    import av

    ctx = av.CodecContext.create(PYAV_ENCODER[fmt], "w")
    ctx.height, ctx.width = frames[0].shape[:2]
    ctx.pix_fmt, ctx.gop_size = "yuv420p", GOP
    ctx.options = ({"tune": "zerolatency", "bframes": "0", "slices": "2"} if fmt == "h264" else
                   {"tune": "zerolatency", "x265-params": f"bframes=0:keyint={GOP}:log-level=error"})
    aus = []
    for img in frames:
        if img.ndim == 3:
            frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
        else:  # 4:2:0 planes stacked as PyAV takes them: Y, then U and V (flat 128)
            h, w = img.shape
            y = ((img.astype(np.int32) * 219 + 127) // 255 + 16).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(np.concatenate([y, np.full((h // 2, w), 128, np.uint8)]),
                                               format="yuv420p")
        packets = ctx.encode(frame)
        assert len(packets) == 1  # low delay: the frame's own access unit comes out at once
        aus.append(bytes(packets[0]))
    return aus


def video_expect(modality, fmt, stamps, size, expected, min_psnr=None):
    return SimpleNamespace(modality=modality, fmt=fmt, stamps=stamps, frame_id=FRAME_IDS[modality], size=size,
                           expected=expected, min_psnr=min_psnr)


def written_by_writer(tmp: Path, fmt: str) -> SimpleNamespace:
    """RGB in ``fmt`` and thermal in the other format, each on its own CompressedVideo topic."""
    pairs = [crop_pair(i) for i in range(N)]
    th_fmt = OTHER_FORMAT[fmt]
    rgb_aus = code_frames([rgb for rgb, _ in pairs], fmt)
    th_aus = code_frames([th for _, th in pairs], th_fmt)
    out = tmp / f"writer_{fmt}.mcap"
    w = FoxgloveWriter(out)
    w.add_video("rgb", TOPICS["rgb"] + VIDEO_SUFFIX, fmt)
    w.add_video("thermal", TOPICS["thermal"] + VIDEO_SUFFIX, th_fmt)
    rgb_stamps = [T0 + i * PERIOD for i in range(N)]
    th_stamps = [t + THERMAL_OFFSET_NS for t in rgb_stamps]
    for i in range(N):
        key = i % GOP == 0
        w.write_video("rgb", th_stamps[i], rgb_aus[i], key, stamp(rgb_stamps[i]), FRAME_IDS["rgb"])
        w.write_video("thermal", th_stamps[i], th_aus[i], key, stamp(th_stamps[i]), FRAME_IDS["thermal"])
    w.close()
    size = pairs[0][1].shape
    s = w.summary()
    assert s == {"videos": {"/rgb/image/compressed_video": {"modality": "rgb", "format": fmt, "messages": N},
                            "/thermal/image/compressed_video": {"modality": "thermal", "format": th_fmt,
                                                                "messages": N}},
                 "images": {}, "video_messages": 2 * N, "image_messages": 0}, s
    return SimpleNamespace(
        path=out, keys=[i % GOP == 0 for i in range(N)], images={}, extra_topics={},
        videos={TOPICS["rgb"] + VIDEO_SUFFIX: video_expect("rgb", fmt, rgb_stamps, size, [r for r, _ in pairs], 30),
                TOPICS["thermal"] + VIDEO_SUFFIX: video_expect("thermal", th_fmt, th_stamps, size,
                                                               [t for _, t in pairs], 30)})


def extra_topic(w):
    """A std_msgs/String interleaved with the images: copied through to the Foxglove file."""
    conn = w.add_typed("/note", "std_msgs/msg/String")
    for i in range(3):
        w.write_msg(conn, T0 + i * 50_000_000 + 1_000_000, w.store.types["std_msgs/msg/String"](data=f"note {i}"))


def written_by_cli(tmp: Path, capsys, encode_args=(), kinds=None, sixteen_bit=False) -> SimpleNamespace:
    """raw bag -> ``bag encode`` (``encode_args``) -> ``bag decode --foxglove``. ``kinds``:
    modality -> the video format its topic must have, or "image" (default: both h264 videos)."""
    from mm_compress_ros.codec.packet import read_header
    from mm_compress_ros.codec.stream import StreamDecoder
    from mm_compress_ros.codec.zoo import decoding_model

    kinds = kinds or {"rgb": "h264", "thermal": "h264"}
    pairs = [crop_pair(i) for i in range(N)]
    if sixteen_bit:  # radiometric-like counts
        pairs = [(rgb, th.astype(np.uint16) * 16 + 7000) for rgb, th in pairs]
    stamps = write_raw_bag(tmp / "raw", pairs, thermal_offset_ns=THERMAL_OFFSET_NS, start_ns=T0, period_ns=PERIOD,
                           extra=extra_topic)
    rc, so, se = run_cli(capsys, "bag", "encode", tmp / "raw", tmp / "enc", "--rgb-topic", TOPICS["rgb"],
                         "--thermal-topic", TOPICS["thermal"], "--gop", GOP, "--device", "cpu", "--quiet",
                         *encode_args)
    assert rc == 0, se
    out = tmp / "view.mcap"
    rc, so, se = run_cli(capsys, "bag", "decode", tmp / "enc", "--foxglove", out, "--quiet")
    assert rc == 0, se
    res = json.loads(so)
    assert not list(tmp.glob(".*"))  # no staging leftovers
    # What the codec's own StreamDecoder makes of the same packets.
    store = typestore()
    r = open_reader(tmp / "enc")
    try:
        packets = [store.deserialize_cdr(raw, ENCODED_FRAME).data.tobytes()
                   for c, _, raw in r.messages() if c.msgtype == ENCODED_FRAME]
    finally:
        r.close()
    h = read_header(packets[0])
    dec = StreamDecoder(decoding_model(h, device="cpu"))
    ref = [dec.decode(p) for p in packets]
    expected = {"rgb": [p.rgb for p in ref], "thermal": [p.thermal for p in ref]}
    modality_stamps = {"rgb": stamps["rgb_stamps"], "thermal": stamps["thermal_stamps"]}
    encodings = {"rgb": "rgb8", "thermal": "mono16" if sixteen_bit else "mono8"}

    videos, images = {}, {}
    for m, kind in kinds.items():
        if kind == "image":
            images[TOPICS[m]] = SimpleNamespace(modality=m, stamps=modality_stamps[m], frame_id=FRAME_IDS[m],
                                                encoding=encodings[m], expected=expected[m])
        else:
            videos[TOPICS[m] + VIDEO_SUFFIX] = video_expect(
                m, kind, modality_stamps[m], h.rgb_size if m == "rgb" else h.thermal_size, expected[m],
                35 if m == "rgb" else None)  # RGB: PyAV's conversion; thermal: exact (luma_to_gray)
    assert (res["kind"], res["decoded"], res["profile"]) == ("foxglove", N, h.profile), res
    assert res["videos"] == {t: {"modality": v.modality, "format": v.fmt, "messages": N} for t, v in videos.items()}
    assert res["images"] == {t: {"modality": i.modality, "encoding": i.encoding, "messages": N}
                             for t, i in images.items()}
    assert (res["video_messages"], res["image_messages"]) == (N * len(videos), N * len(images)), res
    return SimpleNamespace(path=out, keys=[read_header(p).frame_type_name == "key" for p in packets],
                           videos=videos, images=images, extra_topics={"/note": 3}, profile=h.profile)


# -- the checks: what a viewer needs -------------------------------------------------------------

def read_mcap(path: Path):
    """(summary, {topic: [(schema, channel, message, decoded)]}) read with mcap + mcap_ros2."""
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    with open(path, "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        summary = reader.get_summary()
        by_topic: dict[str, list] = {}
        for item in reader.iter_decoded_messages(log_time_order=True):
            by_topic.setdefault(item[1].topic, []).append(item)
    return summary, by_topic


def check_video_topic(messages, v: SimpleNamespace, keys: list[bool]) -> None:
    import av

    video = [decoded for _, _, _, decoded in messages]
    assert len(video) == N
    assert [stamp_to_ns(m.timestamp) for m in video] == v.stamps  # capture stamps, not record times
    assert {m.frame_id for m in video} == {v.frame_id}
    assert {m.format for m in video} == {v.fmt}
    units = [bytes(m.data) for m in video]

    # The concatenated data from the first key frame is one Annex B stream whose access units are
    # exactly the messages; the parser's key frames are the stream's key frames.
    first = keys.index(True)
    assert first == 0  # the file starts at a key frame (frames before one are not written)
    parser = av.CodecContext.create(PYAV_DECODER[v.fmt], "r")
    parsed = parser.parse(b"".join(units[first:])) + parser.parse(None)
    assert [bytes(p) for p in parsed] == units[first:]
    assert [p.is_keyframe for p in parsed] == keys[first:]

    # Each message alone yields exactly one frame of the coded size (decoding from the first key
    # frame, and again from a later key frame with a fresh decoder, as a viewer seeking does).
    h, w = v.size
    coded = (h + h % 2, w + w % 2)  # the picture may be padded to even sizes
    for start in [i for i, k in enumerate(keys) if k]:
        dec = av.CodecContext.create(PYAV_DECODER[v.fmt], "r")
        frames = []
        for unit in units[start:]:
            got = dec.decode(av.Packet(unit))
            assert len(got) == 1, (v.modality, start, len(got))
            frames.append(got[0])
        assert dec.decode(None) == []
        assert {(f.height, f.width) for f in frames} == {coded}
        # the viewer sees what StreamDecoder decodes (or, for the writer, the coded source)
        for f, ref in zip(frames, v.expected[start:]):
            if v.modality == "rgb":
                assert psnr(f.to_ndarray(format="rgb24")[:h, :w], ref) > v.min_psnr
            elif v.min_psnr is None:   # thermal: exactly the decoded gray
                assert np.array_equal(luma_to_gray(luma_plane(f))[:h, :w], ref)
            else:
                assert psnr(luma_to_gray(luma_plane(f))[:h, :w], ref) > v.min_psnr


def check_image_topic(messages, im: SimpleNamespace) -> None:
    images = [decoded for _, _, _, decoded in messages]
    assert len(images) == N
    assert [stamp_to_ns(m.header.stamp) for m in images] == im.stamps
    assert {m.header.frame_id for m in images} == {im.frame_id}
    for m, ref in zip(images, im.expected):
        assert (m.encoding, m.height, m.width) == (im.encoding, *ref.shape[:2])
        assert m.step * m.height == len(m.data)
        dtype = np.dtype((">" if m.is_bigendian else "<") + "u2") if im.encoding == "mono16" else np.dtype(np.uint8)
        got = np.frombuffer(bytes(m.data), dtype).reshape(m.height, m.step // dtype.itemsize)[:, :m.width]
        assert np.array_equal(got, ref)


def check_foxglove_mcap(x: SimpleNamespace) -> None:
    summary, topics = read_mcap(x.path)
    assert summary is not None and summary.chunk_indexes  # indexed: viewers can seek
    schema_of = {c.topic: summary.schemas[c.schema_id] for c in summary.channels.values()}
    assert set(schema_of) == {*x.videos, *x.images, *x.extra_topics}
    for t in x.videos:
        assert (schema_of[t].name, schema_of[t].encoding) == (COMPRESSED_VIDEO, "ros2msg")
    for t in x.images:
        assert (schema_of[t].name, schema_of[t].encoding) == (IMAGE, "ros2msg")
    assert {c.message_encoding for c in summary.channels.values()} == {"cdr"}
    for t, n in x.extra_topics.items():
        assert len(topics[t]) == n
    for t, v in x.videos.items():
        check_video_topic(topics[t], v, x.keys)
    for t, im in x.images.items():
        check_image_topic(topics[t], im)


@pytest.mark.parametrize("fmt", ["h264", "h265"])
def test_foxglove_writer_writes_two_video_topics_that_decode_in_a_viewer_pipeline(tmp_path, fmt):
    check_foxglove_mcap(written_by_writer(tmp_path, fmt))
    assert [p.name for p in tmp_path.iterdir()] == [f"writer_{fmt}.mcap"]  # the bag folder is gone


@pytest.mark.parametrize("fmt", ["h264", "h265"])
def test_bag_decode_foxglove_of_a_standard_stream_passes_both_cameras_through(tmp_path, capsys, fmt):
    """The default `bag encode` (standard profile: RGB and thermal as H.264), and both as H.265:
    two CompressedVideo topics, no Image."""
    args = () if fmt == "h264" else ("--reference-codec", "h265", "--thermal-codec", "h265")
    x = written_by_cli(tmp_path, capsys, args, {"rgb": fmt, "thermal": fmt})
    assert x.profile == "standard" and not x.images and len(x.videos) == 2
    check_foxglove_mcap(x)


@pytest.mark.parametrize("case", [
    pytest.param(("h264", "learned", False), marks=pytest.mark.needs_codec, id="hybrid-h264"),
    pytest.param(("h265", "learned", False), marks=pytest.mark.needs_codec, id="hybrid-h265"),
    pytest.param(("h264", "h265", True), id="standard-16bit-thermal"),
    pytest.param(("h264", "lossless", False), id="lossless-thermal"),
])
def test_bag_decode_foxglove_writes_a_thermal_layer_that_is_no_8bit_video_as_an_image(tmp_path, capsys, case):
    """Learned thermal (hybrid profile, model mmrt), 16-bit thermal (H.265 at 12 bits 4:0:0, which
    viewers cannot play) and lossless thermal: the RGB layer as CompressedVideo, thermal decoded."""
    ref, thermal, sixteen = case
    args = ("--reference-codec", ref, "--thermal-codec", thermal) + (("--model", "mmrt") if thermal == "learned"
                                                                      else ())
    x = written_by_cli(tmp_path, capsys, args, {"rgb": ref, "thermal": "image"}, sixteen_bit=sixteen)
    assert x.profile == ("hybrid" if thermal == "learned" else "standard")
    check_foxglove_mcap(x)


@pytest.mark.needs_codec
def test_a_learned_reference_layer_has_no_video_to_pass_through(tmp_path, capsys):
    write_raw_bag(tmp_path / "raw", [crop_pair(i, h=64, w=64) for i in range(2)])
    rc, so, se = run_cli(capsys, "bag", "encode", tmp_path / "raw", tmp_path / "enc", "--rgb-topic", "/rgb/image",
                         "--thermal-topic", "/thermal/image", "--reference-codec", "learned", "--thermal-codec",
                         "learned", "--device", "cpu", "--quiet")
    assert rc == 0, se
    out = tmp_path / "view.mcap"
    rc, so, se = run_cli(capsys, "bag", "decode", tmp_path / "enc", "--foxglove", out, "--quiet")
    assert rc == 2, (so, se)
    lines = se.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in se, se
    assert "coded by the learned codec" in lines[0] and "no H.264/H.265 video" in lines[0], lines[0]
    assert f"nothing written to {out}" in lines[0]
    assert not out.exists() and not list(tmp_path.glob(".*"))


@pytest.mark.ros
@pytest.mark.needs_codec
def test_decoder_node_without_foxglove_msgs_warns_once_and_decodes_on(ros):
    """decoder_node with foxglove_video:=true where foxglove_msgs is not importable: one warning
    line, the option is off, the node runs on."""
    import importlib.util

    if importlib.util.find_spec("foxglove_msgs") is not None:
        pytest.skip("foxglove_msgs is importable here: the fallback does not apply")
    from conftest import wait_for_log

    dec = ros.node("decoder", "decoder_node", "--ros-args", "-p", "foxglove_video:=true", "-p", "device:=cpu",
                   "-p", "torch_threads:=1", "-p", "log_period:=0.5")
    wait_for_log(dec, "decoded 0/0", 120, ros)  # past start-up: model loaded, publishers made, stats logged
    lines = [line for line in dec.output().splitlines() if "foxglove_video" in line]
    assert len(lines) == 1 and "WARN" in lines[0] and "foxglove_msgs is not importable" in lines[0], lines
    assert "not publishing CompressedVideo" in lines[0]
    assert dec.poll() is None
    assert dec.stop() == 0 and "Traceback" not in dec.output()
