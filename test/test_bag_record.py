"""`mm-compress record` on live topics over DDS: sample_publisher -> encoder_node, recorded (the
encoded stream and the raw images) by `mm-compress record` in its own process, stopped by SIGINT;
the bag then decodes with `bag decode`, stamps and frame_ids intact."""
from __future__ import annotations

import json
import re
import sys
import time

import numpy as np
import pytest

from conftest import DATA_ROOT, start_launch, wait_for_log

from mm_compress_ros.bag.bagio import open_reader
from mm_compress_ros.bag.decode import decode_bag
from mm_compress_ros.bag.types import ENCODED_FRAME, IMAGE, full_msgdef_from_files, typestore
from mm_compress_ros.io.ros_image import stamp_to_ns

pytestmark = pytest.mark.ros

SEQ = DATA_ROOT / "m3svd_seq" / "0111_1716"
W, H = 160, 120
COUNT = 8


def _encoded_count(proc) -> int:
    found = re.findall(r"encoded (\d+) \(", proc.output())
    return int(found[-1]) if found else 0


def test_record_live_encoder_then_bag_decode(ros, tmp_path):
    if not (SEQ / "rgb").is_dir():
        pytest.fail(f"test data missing: {SEQ}", pytrace=False)
    enc = start_launch(ros, "encoder.launch.py", {},
                       {"encoder_node": {"torch_threads": 1, "gop": 3, "log_period": 1.0}})["encoder_node"]
    wait_for_log(enc, "loaded in", 120, ros)
    bag = tmp_path / "live"
    rec = ros.start("record", [sys.executable, "-m", "mm_compress_ros.cli", "record", bag,
                               "--topics", "/encoded", "/rgb/image", "thermal/image"])
    wait_for_log(rec, "recording /encoded", 60, ros)
    params = {"sample_publisher": {"count": COUNT, "rate": 2.0, "width": W, "height": H, "loop": True,
                                   "rgb_encoding": "bgr8", "thermal_encoding": "mono16",
                                   "wait_for_subscribers": 2, "wait_timeout": 60.0}}
    sample = start_launch(ros, "pipeline.launch.py", {"path": str(SEQ)}, params,
                          only=("sample_publisher",))["sample_publisher"]
    try:
        assert sample.wait(timeout=120) == 0, ros.logs()
        # Until the encoder has coded what it will code (its stats line, every second).
        last, since, end = -1, time.monotonic(), time.monotonic() + 60
        while time.monotonic() < end and time.monotonic() - since < 4.0:
            n = _encoded_count(enc)
            if n != last:
                last, since = n, time.monotonic()
            time.sleep(0.3)
        time.sleep(1.0)
        assert rec.poll() is None, ros.logs()
        assert rec.stop(timeout=30) == 0, rec.output()  # SIGINT: the bag is closed cleanly
    finally:
        ros.stop_all()
    logs = ros.logs()
    result = json.loads(rec.output().strip().splitlines()[-1])
    assert result["stopped_by"] == "SIGINT" and result["not_recorded"] == [], result
    assert bag.is_dir() and (bag / "metadata.yaml").is_file() and list(bag.glob("*.mcap")), logs
    assert not list(tmp_path.glob(".*partial"))

    store = typestore()
    r = open_reader(bag)
    try:
        conns = {c.topic: c for c in r.connections}
        assert conns["/encoded"].msgtype == ENCODED_FRAME
        assert conns["/encoded"].digest == store.hash_rihs01(ENCODED_FRAME)
        assert conns["/encoded"].msgdef.data == full_msgdef_from_files(ENCODED_FRAME)
        assert conns["/rgb/image"].msgtype == conns["/thermal/image"].msgtype == IMAGE
        encoded, raw_rgb, raw_th = [], {}, {}
        for c, ts, data in r.messages():
            if c.topic == "/encoded":
                encoded.append(store.deserialize_cdr(data, ENCODED_FRAME))
            else:
                m = store.deserialize_cdr(data, IMAGE)
                (raw_rgb if c.topic == "/rgb/image" else raw_th)[stamp_to_ns(m.header.stamp)] = m
    finally:
        r.close()
    assert result["messages"]["/encoded"] == len(encoded)
    assert COUNT - 2 <= len(encoded) <= COUNT, (len(encoded), logs)
    assert len(raw_rgb) >= COUNT - 1 and len(raw_th) >= COUNT - 1, (result, logs)
    assert [m.sequence for m in encoded] == list(range(len(encoded)))
    assert encoded[0].frame_type == 0
    for m in encoded:
        assert stamp_to_ns(m.header.stamp) in raw_rgb and stamp_to_ns(m.thermal_stamp) in raw_th
        assert (m.header.frame_id, m.thermal_frame_id) == ("rgb_optical_frame", "thermal_optical_frame")
        assert (m.rgb_encoding, m.thermal_encoding) == ("bgr8", "mono16")

    # The recorded stream decodes: every frame, with the encoder's stamps, frame_ids, encodings.
    res = decode_bag(bag, out_bag=tmp_path / "decoded", rgb_topic="/decoded/rgb",
                     thermal_topic="/decoded/thermal", quiet=True)
    assert res["decoded"] == len(encoded) and res["waiting"] == 0 and res["corrupt"] == 0, res
    r = open_reader(tmp_path / "decoded")
    try:
        got = {"/decoded/rgb": [], "/decoded/thermal": [], "/rgb/image": 0, "/thermal/image": 0}
        for c, ts, data in r.messages():
            if c.topic.startswith("/decoded"):
                got[c.topic].append(store.deserialize_cdr(data, IMAGE))
            else:
                got[c.topic] += 1  # the raw topics of the recording are copied through
    finally:
        r.close()
    assert got["/rgb/image"] == len(raw_rgb) and got["/thermal/image"] == len(raw_th)
    for e, rgb, th in zip(encoded, got["/decoded/rgb"], got["/decoded/thermal"]):
        assert stamp_to_ns(rgb.header.stamp) == stamp_to_ns(e.header.stamp)
        assert stamp_to_ns(th.header.stamp) == stamp_to_ns(e.thermal_stamp)
        assert (rgb.header.frame_id, rgb.encoding, rgb.width, rgb.height) == ("rgb_optical_frame", "bgr8", W, H)
        assert (th.header.frame_id, th.encoding, th.width, th.height) == ("thermal_optical_frame", "mono16", W, H)
    # Bit-exact: what the codec's own decoder makes of the recorded packets (no loss added by
    # recording or by bag decode; quality against the raw images is the model's business).
    from mm_compress_ros.codec.packet import read_header
    from mm_compress_ros.codec.stream import StreamDecoder
    from mm_compress_ros.codec.zoo import decoding_model
    from mm_compress_ros.io.ros_image import image_to_numpy

    # the model the packets name (none: the default, standard profile)
    dec = StreamDecoder(decoding_model(read_header(encoded[0].data.tobytes()), device="cpu"))
    for e, rgb, th in zip(encoded, got["/decoded/rgb"], got["/decoded/thermal"]):
        pair = dec.decode(e.data.tobytes())
        assert np.array_equal(image_to_numpy(rgb), pair.rgb)
        assert np.array_equal(image_to_numpy(th), pair.thermal)
        assert image_to_numpy(th).shape == image_to_numpy(raw_th[stamp_to_ns(e.thermal_stamp)]).shape


def test_record_duration_and_discovery_timeout(ros, tmp_path):
    """--duration stops by itself with a complete (here empty) bag; --discovery-timeout fails with
    one line and leaves no bag."""
    rec = ros.start("record_duration", [sys.executable, "-m", "mm_compress_ros.cli", "record", tmp_path / "b1",
                                        "--topics", "/nobody/here", "--duration", "2"])
    assert rec.wait(timeout=90) == 0, rec.output()
    result = json.loads(rec.output().strip().splitlines()[-1])
    assert result["stopped_by"] == "duration" and result["not_recorded"] == ["/nobody/here"]
    assert (tmp_path / "b1" / "metadata.yaml").is_file()
    r = open_reader(tmp_path / "b1")
    assert r.message_count == 0
    r.close()

    rec = ros.start("record_timeout", [sys.executable, "-m", "mm_compress_ros.cli", "record", tmp_path / "b2",
                                       "--topics", "/nobody/here", "--discovery-timeout", "1"])
    assert rec.wait(timeout=90) == 2, rec.output()
    err = [line for line in rec.output().splitlines() if line.startswith("mm-compress: error:")]
    assert err == ["mm-compress: error: no publisher of /nobody/here after 1 s; nothing written to "
                   f"{tmp_path / 'b2'}"], rec.output()
    assert "Traceback" not in rec.output()
    assert not (tmp_path / "b2").exists() and not list(tmp_path.glob(".*partial"))
