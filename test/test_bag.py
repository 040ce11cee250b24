"""rosbag tools on real frames (small crops of ../shared/data m3svd_seq): bag encode / decode
round trips with stamps, frame_ids and encodings intact (mono8 and 16-bit thermal, MCAP and
sqlite3), other topics copied through byte for byte, bag info, and the one-line error paths."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from codec_fixtures import crop_pair, psnr

from mm_compress_ros.bag.bagio import open_reader
from mm_compress_ros.io.ros_image import stamp_to_ns
from mm_compress_ros.bag.rawbag import write_raw_bag
from mm_compress_ros.bag.types import ENCODED_FRAME, IMAGE, full_msgdef_from_files, typestore
from mm_compress_ros.cli import main as cli_main
from mm_compress_ros.io.ros_image import image_to_numpy, to_rgb

pytestmark = [pytest.mark.needs_codec, pytest.mark.needs_data]

REPO = Path(__file__).resolve().parents[1]

N = 5                       # frame pairs per test bag
GOP = 3
THERMAL_OFFSET_NS = 4_000_000   # thermal camera 4 ms after RGB: paired by approximate time
# Decoded images are checked bit-exactly against the codec's own StreamDecoder on the same packets
# (the bag tools add no loss of their own). The PSNR floors against the originals only catch gross
# mistakes (wrong frame, wrong pixel layout), set well below what the default model gives on these
# crops at its default level (a swapped frame is below 12 dB).
RGB_FLOOR, THERMAL_FLOOR = 13.0, 24.0


def pairs(n=N, sixteen=False):
    out = []
    for i in range(n):
        rgb, th = crop_pair(i)
        if sixteen:  # a scaled copy of real thermal, as a radiometric camera delivers (mono16)
            th = (th.astype(np.uint16) * 40 + 3000).astype(np.uint16)
        out.append((rgb, th))
    return out


def extra_topics(w):
    """Non-image topics the tools must copy through unchanged: a std_msgs/String and a
    geometry_msgs/PointStamped interleaved with the images."""
    s = w.store
    T = s.types
    note = w.add_typed("/note", "std_msgs/msg/String")
    point = w.add_typed("/gps/point", "geometry_msgs/msg/PointStamped")
    for i in range(4):
        t = 1_700_000_000_000_000_000 + i * 40_000_000 + 1_000_000
        w.write_msg(note, t, T["std_msgs/msg/String"](data=f"note {i}"))
        hdr = T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=t // 10**9, nanosec=t % 10**9),
                                        frame_id="gps")
        w.write_msg(point, t + 5, T["geometry_msgs/msg/PointStamped"](
            header=hdr, point=T["geometry_msgs/msg/Point"](x=float(i), y=2.5, z=-1.0)))


def read_all(path):
    """{topic: [(record time, raw bytes, connection)]} of a bag."""
    r = open_reader(path)
    try:
        out = {}
        for c, ts, raw in r.messages():
            out.setdefault(c.topic, []).append((ts, bytes(raw), c))
        return out
    finally:
        r.close()


def _model():
    return None   # bag encode's default: the standard profile, both cameras standard streams, no model


DEFAULT_CODEC, DEFAULT_LEVEL = "h264+h264", 32   # EncodedFrame.codec and quality of that profile (8-bit thermal)


def reference_decode(enc_bag, topic="/encoded"):
    """The codec's own decoding of the packets stored in a bag."""
    from mm_compress_ros.codec.stream import StreamDecoder

    dec = StreamDecoder(_model())
    store = typestore()
    return [dec.decode(store.deserialize_cdr(b, ENCODED_FRAME).data.tobytes())
            for _, b, _ in read_all(enc_bag)[topic]]


def run_cli(capsys, *argv):
    rc = cli_main([str(a) for a in argv])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def rosidl_hash() -> str:
    """RIHS01 of EncodedFrame as rosidl computed it in the colcon build."""
    j = REPO / "install" / "mm_compress_ros" / "share" / "mm_compress_ros" / "msg" / "EncodedFrame.json"
    if not j.is_file():
        pytest.fail("the colcon build is missing (install/mm_compress_ros): run `make build`", pytrace=False)
    return json.loads(j.read_text())["type_hashes"][0]["hash_string"]


@pytest.fixture(scope="module")
def bags(tmp_path_factory):
    """A raw bgr8 + mono8 MCAP bag with extra topics, and its encoding with `bag encode`."""
    d = tmp_path_factory.mktemp("bags")
    src = pairs()
    stamps = write_raw_bag(d / "raw", src, rgb_encoding="bgr8", thermal_offset_ns=THERMAL_OFFSET_NS,
                           extra=extra_topics)
    rc = cli_main(["bag", "encode", str(d / "raw"), str(d / "enc"), "--rgb-topic", "/rgb/image",
                   "--thermal-topic", "/thermal/image", "--gop", str(GOP), "--device", "cpu", "--quiet"])
    assert rc == 0
    return SimpleNamespace(dir=d, raw=d / "raw", enc=d / "enc", src=src, stamps=stamps)


def test_encoded_bag_carries_stamps_frame_ids_and_a_rosbag2_compatible_type(bags):
    enc = read_all(bags.enc)
    raw = read_all(bags.raw)
    assert set(enc) == {"/encoded", "/note", "/gps/point"}  # raw image topics replaced
    store = typestore()
    msgs = [store.deserialize_cdr(b, ENCODED_FRAME) for _, b, _ in enc["/encoded"]]
    assert len(msgs) == N
    from mm_compress_ros.codec.packet import read_header

    for i, m in enumerate(msgs):
        assert stamp_to_ns(m.header.stamp) == bags.stamps["rgb_stamps"][i]
        assert stamp_to_ns(m.thermal_stamp) == bags.stamps["thermal_stamps"][i]
        assert (m.header.frame_id, m.thermal_frame_id) == ("rgb_optical_frame", "thermal_optical_frame")
        assert (m.rgb_encoding, m.thermal_encoding) == ("bgr8", "mono8")
        assert m.sequence == i and m.codec == DEFAULT_CODEC and m.quality == DEFAULT_LEVEL
        h = read_header(m.data.tobytes())
        assert m.frame_type == h.frame_type == (0 if i % GOP == 0 else 1)
        assert h.frame_index == i and h.rgb_format == "bgr8" and h.rgb_size == (128, 192)
    # The packets are what StreamEncoder makes of the same frames (RGB handed over in RGB order).
    from mm_compress_ros.codec.packet import read_packet
    from mm_compress_ros.codec.profiles import DEFAULT_REFERENCE_CODEC
    from mm_compress_ros.codec.stream import StreamEncoder

    # bag encode's default profile; x264/x265 are deterministic for the same input and settings
    ref = StreamEncoder(_model(), gop=GOP, reference_codec=DEFAULT_REFERENCE_CODEC)
    for m, (rgb, th) in zip(msgs, bags.src):
        direct = read_packet(ref.encode(rgb, th, rgb_format="bgr8", thermal_format="mono8"))
        assert read_packet(m.data.tobytes())[1] == direct[1]
    # Record time of each encoded frame: the record time of the image that completed its pair.
    assert [ts for ts, _, _ in enc["/encoded"]] == bags.stamps["thermal_stamps"]
    # Same type name, hash and definition as `ros2 bag record` would store.
    conn = enc["/encoded"][0][2]
    assert conn.msgtype == ENCODED_FRAME
    assert conn.digest == rosidl_hash()
    msg_text = (REPO / "msg" / "EncodedFrame.msg").read_text()
    assert conn.msgdef.data == full_msgdef_from_files(ENCODED_FRAME)
    assert conn.msgdef.data.startswith(msg_text)
    assert "\n" + "=" * 80 + "\nMSG: std_msgs/Header\n" in conn.msgdef.data
    assert "\n" + "=" * 80 + "\nMSG: builtin_interfaces/Time\n" in conn.msgdef.data
    # Other topics: same bytes, record times, types, definitions and hashes.
    for topic in ("/note", "/gps/point"):
        assert [(t, b) for t, b, _ in enc[topic]] == [(t, b) for t, b, _ in raw[topic]]
        a, b = enc[topic][0][2], raw[topic][0][2]
        assert (a.msgtype, a.digest, a.msgdef.data) == (b.msgtype, b.digest, b.msgdef.data)


def test_decode_to_raw_bag_restores_images_stamps_and_encodings(bags, capsys):
    out = bags.dir / "dec"
    rc, so, se = run_cli(capsys, "bag", "decode", bags.enc, out, "--quiet")
    assert rc == 0, se
    res = json.loads(so)
    assert (res["decoded"], res["key_frames"], res["waiting"], res["corrupt"]) == (N, 2, 0, 0)
    dec = read_all(out)
    raw = read_all(bags.raw)
    assert set(dec) == {"/rgb/image", "/thermal/image", "/note", "/gps/point"}
    store = typestore()
    ref = reference_decode(bags.enc)
    for topic, enc_name, floor, key in (("/rgb/image", "bgr8", RGB_FLOOR, "rgb_stamps"),
                                        ("/thermal/image", "mono8", THERMAL_FLOOR, "thermal_stamps")):
        got = [store.deserialize_cdr(b, IMAGE) for _, b, _ in dec[topic]]
        orig = [store.deserialize_cdr(b, IMAGE) for _, b, _ in raw[topic]]
        assert len(got) == N
        assert dec[topic][0][2].digest == raw[topic][0][2].digest
        for i, (g, o, s) in enumerate(zip(got, orig, bags.stamps[key])):
            assert stamp_to_ns(g.header.stamp) == stamp_to_ns(o.header.stamp) == s
            assert g.header.frame_id == o.header.frame_id
            assert (g.encoding, g.width, g.height) == (enc_name, o.width, o.height)
            a, b = image_to_numpy(g), image_to_numpy(o)
            assert a.shape == b.shape and a.dtype == b.dtype
            assert np.array_equal(a, ref[i].rgb if topic == "/rgb/image" else ref[i].thermal)
            assert psnr(a, b) >= floor, (topic, psnr(a, b))
    for topic in ("/note", "/gps/point"):
        assert [(t, b) for t, b, _ in dec[topic]] == [(t, b) for t, b, _ in raw[topic]]


def test_decode_to_png_frames_and_video(bags, capsys):
    frames = bags.dir / "frames"
    rc, so, se = run_cli(capsys, "bag", "decode", bags.enc, "--frames", frames, "--quiet")
    assert rc == 0, se
    rgbs = sorted((frames / "rgb").glob("*.png"))
    ths = sorted((frames / "thermal").glob("*.png"))
    assert [p.name for p in rgbs] == [f"{i:04d}.png" for i in range(N)] == [p.name for p in ths]
    from mm_compress_ros.io.frames import read_rgb, read_thermal

    ref = reference_decode(bags.enc)
    for i in range(N):
        assert np.array_equal(read_rgb(rgbs[i]), to_rgb(ref[i].rgb, "bgr8"))  # PNGs in RGB order
        assert np.array_equal(read_thermal(ths[i]), ref[i].thermal)
        assert psnr(read_rgb(rgbs[i]), bags.src[i][0]) >= RGB_FLOOR
        assert psnr(read_thermal(ths[i]), bags.src[i][1]) >= THERMAL_FLOOR
    rows = (frames / "frames.csv").read_text().splitlines()[1:]
    assert [int(r.split(",")[3]) for r in rows] == bags.stamps["rgb_stamps"]
    assert [int(r.split(",")[6]) for r in rows] == bags.stamps["thermal_stamps"]

    video = bags.dir / "review.mp4"
    rc, so, se = run_cli(capsys, "bag", "decode", bags.enc, "--video", video, "--quiet")
    assert rc == 0, se
    assert json.loads(so)["fps"] == pytest.approx(30.0, rel=1e-3)
    import av

    with av.open(str(video)) as c:
        got = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(got) == N and got[0].shape == (128, 2 * 192, 3)
    # Left half RGB, right half thermal (gray): each close to the decoded frame (lossy video).
    assert psnr(got[2][:, :192], to_rgb(ref[2].rgb, "bgr8")) > 30
    assert psnr(got[2][:, 192:, 1], ref[2].thermal) > 30
    assert not list(bags.dir.glob(".*partial"))


def test_sixteen_bit_thermal_round_trip_in_sqlite3(tmp_path, capsys):
    src = pairs(4, sixteen=True)
    stamps = write_raw_bag(tmp_path / "raw16", src, rgb_topic="/cam/color", thermal_topic="/cam/lwir",
                           rgb_encoding="rgb8", thermal_encoding="mono16", storage="sqlite3",
                           thermal_offset_ns=-THERMAL_OFFSET_NS)
    assert list((tmp_path / "raw16").glob("*.db3"))
    rc, so, se = run_cli(capsys, "bag", "encode", tmp_path / "raw16", tmp_path / "enc16", "--rgb-topic",
                         "/cam/color", "--thermal-topic", "/cam/lwir", "--storage", "sqlite3", "--gop", "4",
                         "--quality", "4", "--encoded-topic", "/cam/encoded", "--device", "cpu", "--quiet")
    assert rc == 0, se
    assert json.loads(so)["pairs"] == 4 and list((tmp_path / "enc16").glob("*.db3"))
    rc, so, se = run_cli(capsys, "bag", "decode", tmp_path / "enc16", tmp_path / "dec16", "--quiet")
    assert rc == 0, se
    dec = read_all(tmp_path / "dec16")
    assert set(dec) == {"/cam/color", "/cam/lwir"}  # the topic names bag encode read
    store = typestore()
    ths = [store.deserialize_cdr(b, IMAGE) for _, b, _ in dec["/cam/lwir"]]
    assert [stamp_to_ns(m.header.stamp) for m in ths] == stamps["thermal_stamps"]
    span = float(max(int(t.max()) for _, t in src) - min(int(t.min()) for _, t in src))
    ref = reference_decode(tmp_path / "enc16", "/cam/encoded")
    for m, (_, th), r in zip(ths, src, ref):
        a = image_to_numpy(m)
        assert m.encoding == "mono16" and a.dtype == np.uint16
        assert np.array_equal(a, r.thermal)
        assert psnr(a, th, peak=span) >= THERMAL_FLOOR - 4  # range margins of 16-bit coding
    rgbs = [store.deserialize_cdr(b, IMAGE) for _, b, _ in dec["/cam/color"]]
    assert [m.encoding for m in rgbs] == ["rgb8"] * 4
    assert [stamp_to_ns(m.header.stamp) for m in rgbs] == stamps["rgb_stamps"]


def test_info_text_and_json(bags, capsys):
    rc, so, se = run_cli(capsys, "bag", "info", bags.enc, "--json")
    assert rc == 0, se
    info = json.loads(so)
    topics = {t["topic"]: t for t in info["topics"]}
    assert info["storage"] == "mcap" and info["messages"] == N + 8
    assert (topics["/encoded"]["count"], topics["/note"]["count"], topics["/gps/point"]["count"]) == (N, 4, 4)
    e = topics["/encoded"]["encoded"]
    assert e["frames"] == N and e["key_sequences"] == [0, 3] and e["sequence_gaps"] == 0
    assert e["model"] == "" and e["profile"] == "standard" and e["quality"] == DEFAULT_LEVEL
    assert e["rgb"] == "192x128 bgr8"
    raw = read_all(bags.enc)["/encoded"]
    store = typestore()
    sizes = [store.deserialize_cdr(b, ENCODED_FRAME).data.size for _, b, _ in raw]
    assert e["packet_bytes"] == sum(sizes)
    assert sum(r["frames"] for r in e["timeline"]) == N
    assert sum(r["kbps"] for r in e["timeline"]) == pytest.approx(sum(sizes) * 8 / 1e3, abs=0.5)
    assert topics["/encoded"]["bytes"] == sum(len(b) for _, b, _ in raw)

    rc, so, se = run_cli(capsys, "bag", "info", bags.enc)
    assert rc == 0, se
    assert "/encoded: 5 frames, 2 key (sequences 0, 3)" in so
    assert "mm_compress_ros/msg/EncodedFrame" in so and "/gps/point" in so


def test_decode_skips_a_corrupt_packet_until_the_next_key_frame(bags, tmp_path, capsys):
    """A damaged packet in a recording (bit flip in frame 1 of K P P K P): frame 1 is reported
    corrupt, frame 2 (predicted from it) waits, decoding resumes at the key frame 3."""
    from mm_compress_ros.bag.bagio import bag_output

    src = read_all(bags.enc)
    store = typestore()
    with bag_output(tmp_path / "damaged") as w:
        conns = {}
        for topic, items in src.items():
            conns[topic] = w.add_copy(items[0][2])
        for topic, items in src.items():
            for i, (ts, raw, _) in enumerate(items):
                if topic == "/encoded" and i == 1:
                    m = store.deserialize_cdr(raw, ENCODED_FRAME)
                    data = m.data.copy()
                    data[len(data) // 2] ^= 0x40
                    m.data = data
                    raw = bytes(store.serialize_cdr(m, ENCODED_FRAME))
                w.write(conns[topic], ts, raw)
    rc, so, se = run_cli(capsys, "bag", "decode", tmp_path / "damaged", "--frames", tmp_path / "f", "--quiet")
    assert rc == 0, se
    res = json.loads(so)
    assert (res["decoded"], res["corrupt"], res["waiting"]) == (3, 1, 1), res
    rows = (tmp_path / "f" / "frames.csv").read_text().splitlines()[1:]
    assert [int(r.split(",")[1]) for r in rows] == [0, 3, 4]
    assert [int(r.split(",")[3]) for r in rows] == [bags.stamps["rgb_stamps"][i] for i in (0, 3, 4)]


def test_thermal_at_a_third_of_the_rgb_rate_is_paired_by_approximate_time(tmp_path, capsys):
    """RGB at 30 Hz, thermal at 10 Hz (4 ms after every third RGB frame): each thermal image is
    paired with the nearest RGB image; the RGB images in between stay unpaired."""
    from mm_compress_ros.bag.bagio import bag_output, make_image

    src = pairs(6)
    t0, period = 1_700_000_000_000_000_000, 33_333_333
    with bag_output(tmp_path / "rates") as w:
        rc, tc = w.add_typed("/rgb", IMAGE), w.add_typed("/lwir", IMAGE)
        for i, (rgb, th) in enumerate(src):
            t = t0 + i * period
            w.write_msg(rc, t, make_image(w.store, rgb, "rgb8", SimpleNamespace(sec=t // 10**9, nanosec=t % 10**9), "c"))
            if i % 3 == 0:
                tt = t + THERMAL_OFFSET_NS
                w.write_msg(tc, tt, make_image(w.store, th, "mono8",
                                               SimpleNamespace(sec=tt // 10**9, nanosec=tt % 10**9), "t"))
    rc_, so, se = run_cli(capsys, "bag", "encode", tmp_path / "rates", tmp_path / "rates_enc", "--rgb-topic", "/rgb",
                          "--thermal-topic", "/lwir", "--device", "cpu", "--quiet")
    assert rc_ == 0, se
    res = json.loads(so)
    assert (res["pairs"], res["unpaired_rgb"], res["unpaired_thermal"]) == (2, 4, 0)
    store = typestore()
    msgs = [store.deserialize_cdr(b, ENCODED_FRAME) for _, b, _ in read_all(tmp_path / "rates_enc")["/encoded"]]
    assert [stamp_to_ns(m.header.stamp) for m in msgs] == [t0, t0 + 3 * period]
    assert [stamp_to_ns(m.thermal_stamp) for m in msgs] == [t0 + THERMAL_OFFSET_NS, t0 + 3 * period + THERMAL_OFFSET_NS]
    # A pairing tolerance below the 4 ms offset pairs nothing: one-line error, no output.
    msg = _error(capsys, "bag", "encode", tmp_path / "rates", tmp_path / "none", "--rgb-topic", "/rgb",
                 "--thermal-topic", "/lwir", "--slop", "0.002", "--device", "cpu", "--quiet")
    assert "no RGB and thermal images within 0.002 s" in msg and not (tmp_path / "none").exists()


def test_decode_refuses_an_encoded_frame_of_another_definition(bags, tmp_path, capsys):
    """A bag whose EncodedFrame topic was recorded with another definition (type hash)."""
    from mm_compress_ros.bag.bagio import bag_output

    src = read_all(bags.enc)["/encoded"]
    other = "RIHS01_" + "0" * 64
    with bag_output(tmp_path / "other") as w:
        c = src[0][2]
        conn = w.writer.add_connection("/encoded", ENCODED_FRAME, msgdef=c.msgdef.data, rihs01=other)
        for ts, raw, _ in src:
            w.write(conn, ts, raw)
    msg = _error(capsys, "bag", "decode", tmp_path / "other", "--frames", tmp_path / "f", "--quiet")
    assert "recorded with another EncodedFrame definition" in msg and not (tmp_path / "f").exists()


def _error(capsys, *argv) -> str:
    rc, so, se = run_cli(capsys, *argv)
    assert rc == 2, (so, se)
    lines = se.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mm-compress: error: "), se
    assert "Traceback" not in se
    return lines[0]


def test_error_paths_are_one_line_and_leave_nothing_behind(bags, tmp_path, capsys):
    enc_args = ("--device", "cpu", "--quiet")
    out = tmp_path / "out"
    msg = _error(capsys, "bag", "encode", bags.raw, out, "--rgb-topic", "/nope", "--thermal-topic",
                 "/thermal/image", *enc_args)
    assert "RGB topic /nope is not in the bag" in msg and "/rgb/image (sensor_msgs/msg/Image)" in msg
    msg = _error(capsys, "bag", "encode", bags.raw, out, "--rgb-topic", "/rgb/image", "--thermal-topic",
                 "/note", *enc_args)
    assert "thermal topic /note holds std_msgs/msg/String, not sensor_msgs/msg/Image" in msg
    msg = _error(capsys, "bag", "decode", bags.raw, out, "--quiet")
    assert "has no mm_compress_ros/msg/EncodedFrame topic" in msg
    msg = _error(capsys, "bag", "decode", bags.enc, "--frames", bags.enc, "--quiet")
    assert "exists already" in msg
    msg = _error(capsys, "bag", "info", tmp_path / "missing")
    assert "no such bag" in msg
    assert not out.exists() and not list(tmp_path.glob(".*"))

    # A truncated bag (a recording cut short): a clear error, and no partial output.
    cut = tmp_path / "cut"
    shutil.copytree(bags.enc, cut)
    mcap = next(cut.glob("*.mcap"))
    data = mcap.read_bytes()
    mcap.write_bytes(data[: len(data) // 2])
    msg = _error(capsys, "bag", "decode", cut, out, "--quiet")
    assert "truncated or damaged" in msg
    assert not out.exists() and not list(tmp_path.glob(".*partial"))
    cut_raw = tmp_path / "cut_raw"
    shutil.copytree(bags.raw, cut_raw)
    mcap = next(cut_raw.glob("*.mcap"))
    data = mcap.read_bytes()
    mcap.write_bytes(data[: int(len(data) * 0.6)])
    msg = _error(capsys, "bag", "encode", cut_raw, out, "--rgb-topic", "/rgb/image", "--thermal-topic",
                 "/thermal/image", *enc_args)
    assert "truncated or damaged" in msg
    assert not out.exists() and not list(tmp_path.glob(".*partial"))


def test_bag_modules_do_not_import_rclpy():
    code = ("import sys, mm_compress_ros.bag.cli, mm_compress_ros.bag.encode, mm_compress_ros.bag.decode, "
            "mm_compress_ros.bag.sinks, mm_compress_ros.bag.info, "
            "mm_compress_ros.bag.record, mm_compress_ros.bag.rawbag; "
            "sys.exit(1 if 'rclpy' in sys.modules else 0)")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    assert subprocess.run([sys.executable, "-c", code], env=env, timeout=120).returncode == 0
