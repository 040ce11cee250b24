"""Foxglove / Lichtblick output of hybrid streams (`bag decode --foxglove`, docs/rosbag.md), checked
with libraries the project does not otherwise use: the MCAP file is read back with `mcap` +
`mcap_ros2.decoder`, and the reference layer is decoded from the CompressedVideo messages alone
with PyAV's h264 / hevc decoders, as a viewer would. Small crops of real frames (../shared/data).

Two producers of the file feed the same checks:
- :func:`written_by_cli`: raw bag -> `mm-compress bag encode --reference-codec h264|h265` ->
  `mm-compress bag decode --foxglove`, the whole path;
- :func:`written_by_writer`: RGB crops coded by PyAV's libx264 / libx265 in another configuration
  (low delay, no B frames, one `encode()` per frame; two slices per H.264 frame, CRA key frames in
  H.265), written through FoxgloveWriter with the thermal crops as Images: access units from an
  encoder other than the project's pass through as well.
"""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from codec_fixtures import crop_pair, psnr

from mm_compress_ros.bag.bagio import make_image, open_reader
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


def test_carried_compressed_video_definition_is_the_upstream_type():
    store = typestore()
    _, fields = store.fielddefs[COMPRESSED_VIDEO]
    assert [name for name, _ in fields] == ["timestamp", "frame_id", "data", "format"]
    assert store.hash_rihs01(COMPRESSED_VIDEO) == UPSTREAM_RIHS01
    full = full_msgdef_from_files(COMPRESSED_VIDEO)
    assert full.startswith(COMPRESSED_VIDEO_MSG)
    assert "\n" + "=" * 80 + "\nMSG: builtin_interfaces/Time\n" in full


# -- producers of a Foxglove MCAP file -----------------------------------------------------------

def code_rgb(frames, fmt):
    """One Annex B access unit per frame from PyAV's libx264 / libx265: low delay, no B frames,
    a key frame every GOP frames (with its parameter sets in band)."""
    import av

    ctx = av.CodecContext.create(PYAV_ENCODER[fmt], "w")
    ctx.height, ctx.width = frames[0].shape[:2]
    ctx.pix_fmt, ctx.gop_size = "yuv420p", GOP
    ctx.options = ({"tune": "zerolatency", "bframes": "0"} if fmt == "h264" else
                   {"tune": "zerolatency", "x265-params": f"bframes=0:keyint={GOP}:log-level=error"})
    aus = []
    for rgb in frames:
        packets = ctx.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p"))
        assert len(packets) == 1  # low delay: the frame's own access unit comes out at once
        aus.append(bytes(packets[0]))
    return aus


def written_by_writer(tmp: Path, fmt: str) -> SimpleNamespace:
    pairs = [crop_pair(i) for i in range(N)]
    aus = code_rgb([rgb for rgb, _ in pairs], fmt)
    out = tmp / f"writer_{fmt}.mcap"
    w = FoxgloveWriter(out)
    w.open(fmt, "/rgb/image" + VIDEO_SUFFIX, "/thermal/image")
    rgb_stamps = [T0 + i * PERIOD for i in range(N)]
    th_stamps = [t + THERMAL_OFFSET_NS for t in rgb_stamps]
    for i, ((_, th), au) in enumerate(zip(pairs, aus)):
        w.write_video(th_stamps[i], au, i % GOP == 0, stamp(rgb_stamps[i]), "rgb_optical_frame")
        w.write_image(th_stamps[i], make_image(w.store, th, "mono8", stamp(th_stamps[i]), "thermal_optical_frame"))
    w.close()
    return SimpleNamespace(path=out, fmt=fmt, video_topic="/rgb/image/compressed_video", image_topic="/thermal/image",
                           video_stamps=rgb_stamps, image_stamps=th_stamps, video_frame_id="rgb_optical_frame",
                           image_frame_id="thermal_optical_frame", image_encoding="mono8", size=(128, 192),
                           keys=[i % GOP == 0 for i in range(N)], expected_thermal=[th for _, th in pairs],
                           expected_rgb=None, extra_topics={})


def extra_topic(w):
    """A std_msgs/String interleaved with the images: copied through to the Foxglove file."""
    conn = w.add_typed("/note", "std_msgs/msg/String")
    for i in range(3):
        w.write_msg(conn, T0 + i * 50_000_000 + 1_000_000, w.store.types["std_msgs/msg/String"](data=f"note {i}"))


def written_by_cli(tmp: Path, fmt: str, capsys) -> SimpleNamespace:
    from mm_compress_ros.codec.packet import read_header
    from mm_compress_ros.codec.stream import StreamDecoder
    from mm_compress_ros.codec.zoo import load_model

    pairs = [crop_pair(i) for i in range(N)]
    stamps = write_raw_bag(tmp / "raw", pairs, thermal_offset_ns=THERMAL_OFFSET_NS, start_ns=T0, period_ns=PERIOD,
                           extra=extra_topic)
    rc, so, se = run_cli(capsys, "bag", "encode", tmp / "raw", tmp / "enc", "--rgb-topic", "/rgb/image",
                         "--thermal-topic", "/thermal/image", "--reference-codec", fmt, "--gop", GOP,
                         "--device", "cpu", "--quiet")
    assert rc == 0, se
    out = tmp / f"cli_{fmt}.mcap"
    rc, so, se = run_cli(capsys, "bag", "decode", tmp / "enc", "--foxglove", out, "--quiet")
    assert rc == 0, se
    res = json.loads(so)
    assert (res["kind"], res["format"], res["decoded"], res["video_messages"]) == ("foxglove", fmt, N, N), res
    assert (res["video_topic"], res["image_topic"]) == ("/rgb/image/compressed_video", "/thermal/image")
    assert not list(tmp.glob(".*"))  # no staging leftovers
    # What the codec's own StreamDecoder makes of the same packets.
    store = typestore()
    r = open_reader(tmp / "enc")
    try:
        packets = [store.deserialize_cdr(raw, ENCODED_FRAME).data.tobytes()
                   for c, _, raw in r.messages() if c.msgtype == ENCODED_FRAME]
    finally:
        r.close()
    dec = StreamDecoder(load_model(read_header(packets[0]).model_id, device="cpu"))
    ref = [dec.decode(p) for p in packets]
    h = read_header(packets[0])
    assert h.reference_codec == fmt
    return SimpleNamespace(path=out, fmt=fmt, video_topic=res["video_topic"], image_topic=res["image_topic"],
                           video_stamps=stamps["rgb_stamps"], image_stamps=stamps["thermal_stamps"],
                           video_frame_id="rgb_optical_frame", image_frame_id="thermal_optical_frame",
                           image_encoding="mono8", size=h.rgb_size,
                           keys=[read_header(p).frame_type_name == "key" for p in packets],
                           expected_thermal=[p.thermal for p in ref], expected_rgb=[p.rgb for p in ref],
                           extra_topics={"/note": 3})


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


def check_foxglove_mcap(x: SimpleNamespace) -> None:
    import av

    summary, topics = read_mcap(x.path)
    assert summary is not None and summary.chunk_indexes  # indexed: viewers can seek
    schema_of = {c.topic: summary.schemas[c.schema_id] for c in summary.channels.values()}
    assert set(schema_of) == {x.video_topic, x.image_topic, *x.extra_topics}
    assert (schema_of[x.video_topic].name, schema_of[x.video_topic].encoding) == (COMPRESSED_VIDEO, "ros2msg")
    assert (schema_of[x.image_topic].name, schema_of[x.image_topic].encoding) == (IMAGE, "ros2msg")
    assert {c.message_encoding for c in summary.channels.values()} == {"cdr"}
    for t, n in x.extra_topics.items():
        assert len(topics[t]) == n

    video = [decoded for _, _, _, decoded in topics[x.video_topic]]
    assert len(video) == N
    assert [stamp_to_ns(v.timestamp) for v in video] == x.video_stamps  # capture stamps, not record times
    assert {v.frame_id for v in video} == {x.video_frame_id}
    assert {v.format for v in video} == {x.fmt}
    units = [bytes(v.data) for v in video]

    # The concatenated data from the first key frame is one Annex B stream whose access units are
    # exactly the messages; the parser's key frames are the stream's key frames.
    first = x.keys.index(True)
    assert first == 0  # the file starts at a key frame (frames before one are not written)
    parser = av.CodecContext.create(PYAV_DECODER[x.fmt], "r")
    parsed = parser.parse(b"".join(units[first:])) + parser.parse(None)
    assert [bytes(p) for p in parsed] == units[first:]
    assert [p.is_keyframe for p in parsed] == x.keys[first:]

    # Each message alone yields exactly one frame of the coded size (decoding from the first key
    # frame, and again from a later key frame with a fresh decoder, as a viewer seeking does).
    h, w = x.size
    coded = (h + h % 2, w + w % 2)  # the reference picture may be padded to even sizes
    for start in [i for i, k in enumerate(x.keys) if k]:
        dec = av.CodecContext.create(PYAV_DECODER[x.fmt], "r")
        frames = []
        for unit in units[start:]:
            got = dec.decode(av.Packet(unit))
            assert len(got) == 1, (start, len(got))
            frames.append(got[0])
        assert dec.decode(None) == []
        assert {(f.height, f.width) for f in frames} == {coded}
        if x.expected_rgb is not None and start == first:  # the viewer sees what StreamDecoder decodes
            for f, ref in zip(frames, x.expected_rgb[first:]):
                assert psnr(f.to_ndarray(format="rgb24")[:h, :w], ref) > 35

    images = [decoded for _, _, _, decoded in topics[x.image_topic]]
    assert len(images) == N
    assert [stamp_to_ns(m.header.stamp) for m in images] == x.image_stamps
    assert {m.header.frame_id for m in images} == {x.image_frame_id}
    for m, ref in zip(images, x.expected_thermal):
        assert (m.encoding, m.height, m.width) == (x.image_encoding, *ref.shape[:2])
        assert m.step * m.height == len(m.data)
        got = np.frombuffer(bytes(m.data), np.uint8).reshape(m.height, m.step)[:, :m.width]
        assert np.array_equal(got, ref)


@pytest.mark.parametrize("fmt", ["h264", "h265"])
def test_foxglove_writer_output_decodes_in_a_viewer_pipeline(tmp_path, fmt):
    check_foxglove_mcap(written_by_writer(tmp_path, fmt))
    assert [p.name for p in tmp_path.iterdir()] == [f"writer_{fmt}.mcap"]  # the bag folder is gone


@pytest.mark.needs_codec
@pytest.mark.parametrize("fmt", ["h264", "h265"])
def test_bag_decode_foxglove_passes_the_reference_layer_through(tmp_path, capsys, fmt):
    check_foxglove_mcap(written_by_cli(tmp_path, fmt, capsys))


@pytest.mark.needs_codec
def test_a_learned_reference_layer_has_no_video_to_pass_through(tmp_path, capsys):
    write_raw_bag(tmp_path / "raw", [crop_pair(i, h=64, w=64) for i in range(2)])
    rc, so, se = run_cli(capsys, "bag", "encode", tmp_path / "raw", tmp_path / "enc", "--rgb-topic", "/rgb/image",
                         "--thermal-topic", "/thermal/image", "--reference-codec", "learned", "--device", "cpu",
                         "--quiet")
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
