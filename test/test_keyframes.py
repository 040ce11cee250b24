"""Key frames on demand: encoder_node sends one when a new subscriber appears on `encoded` and
when its std_srvs/Trigger service `request_key_frame` is called (GOP too long to bring one)."""
import re
import sys

import pytest

from conftest import DATA_ROOT, PROCS, read_jsonl, start_launch, wait_for, wait_for_log

pytestmark = pytest.mark.ros
SEQ = DATA_ROOT / "m3svd_seq" / "0111_1716"


def test_key_frame_on_new_subscriber_and_on_service_request(ros, tmp_path):
    if not SEQ.is_dir():
        pytest.fail(f"test data missing: {SEQ}", pytrace=False)
    out = tmp_path / "monitor.jsonl"
    mon = ros.start("monitor", [sys.executable, "-m", "mm_compress_ros.ros.monitor", "--out", out])
    wait_for_log(mon, "monitor ready", 60, ros)
    enc = start_launch(ros, "encoder.launch.py", {}, {"encoder_node": {"torch_threads": 1, "gop": 1000, "resize": [48, 32]}})["encoder_node"]
    wait_for_log(enc, "loaded in", 120, ros)
    start_launch(ros, "pipeline.launch.py", {"path": str(SEQ)},
                 {"sample_publisher": {"count": 0, "rate": 3.0, "width": 96, "height": 64,
                                       "wait_for_subscribers": 2}}, only=("sample_publisher",))

    def encoded():
        return [r for r in read_jsonl(out) if r["kind"] == "encoded"]

    try:
        wait_for(lambda: len(encoded()) >= 3, 60, what="3 encoded frames")
        # A new subscriber: the encoder answers with a key frame.
        n_before = len(encoded())
        late = tmp_path / "late.jsonl"
        sub = ros.python("late_sub", PROCS / "encoded_frame_sub.py", late, 1000)
        wait_for(lambda: any(r["frame_type"] == 0 for r in read_jsonl(late)), 30, what="key frame at the new subscriber")
        late_rows = read_jsonl(late)
        first_key = next(i for i, r in enumerate(late_rows) if r["frame_type"] == 0)
        assert first_key <= 2, late_rows[:4]  # at most the frames in flight before it
        assert late_rows[first_key]["sequence"] >= n_before
        assert "key frame requested (new subscriber" in enc.output()

        # The Trigger service: the next frame encoded after the call is a key frame.
        wait_for(lambda: len(encoded()) >= len(late_rows) and len(encoded()) > n_before + 2, 30, what="more frames")
        call = ros.python("call", PROCS / "call_trigger.py", "request_key_frame")
        assert call.wait(timeout=40) == 0, ros.logs()
        m = re.search(r"success=True message=key frame requested; next sequence (\d+)", call.output())
        assert m, call.output()
        nxt = int(m.group(1))
        wait_for(lambda: len([r for r in encoded() if r["sequence"] >= nxt + 1]) >= 1, 30, what="frames after the call")
        types = {r["sequence"]: r["frame_type"] for r in encoded()}
        assert 0 in (types.get(nxt), types.get(nxt + 1)), (nxt, types)
        assert "key frame requested (service request)" in enc.output()
        # Without requests, gop 1000 brings no key frames: only the first, the subscriber's
        # (the monitor's and the late subscriber's), and the service's.
        keys = [r["sequence"] for r in encoded() if r["frame_type"] == 0]
        assert keys[0] == 0 and len(keys) <= 4, keys
        # resize: the RGB image is coded at 48x32 and the thermal image (same size here) alike.
        assert all(r["rgb_size"] == [32, 48] and r["thermal_size"] == [32, 48] for r in encoded())
    finally:
        ros.stop_all()


def test_late_decoder_asks_for_a_key_frame_and_publishes_nothing_before_it(ros, tmp_path):
    """A decoder that joins a running stream (encoder without key-on-subscribe, gop 1000) sees
    only predicted frames: it publishes nothing, requests a key frame and decodes from there."""
    if not SEQ.is_dir():
        pytest.fail(f"test data missing: {SEQ}", pytrace=False)
    out = tmp_path / "monitor.jsonl"
    mon = ros.start("monitor", [sys.executable, "-m", "mm_compress_ros.ros.monitor", "--out", out])
    wait_for_log(mon, "monitor ready", 60, ros)
    enc = start_launch(ros, "encoder.launch.py", {}, {"encoder_node": {
        "torch_threads": 1, "gop": 1000, "key_frame_on_new_subscriber": False}})["encoder_node"]
    wait_for_log(enc, "loaded in", 120, ros)
    start_launch(ros, "pipeline.launch.py", {"path": str(SEQ)},
                 {"sample_publisher": {"count": 0, "rate": 3.0, "width": 96, "height": 64,
                                       "wait_for_subscribers": 2}}, only=("sample_publisher",))

    def rows(kind):
        return [r for r in read_jsonl(out) if r["kind"] == kind]

    try:
        wait_for(lambda: len(rows("encoded")) >= 3, 60, what="3 encoded frames")
        dec = start_launch(ros, "decoder.launch.py", {}, {"decoder_node": {"torch_threads": 1}})["decoder_node"]
        wait_for(lambda: len([r for r in rows("decoded") if r["modality"] == "rgb"]) >= 3, 90,
                 what="3 decoded frames")
    finally:
        ros.stop_all()
    encoded = {r["stamp"]: r for r in rows("encoded")}
    keys = sorted(r["sequence"] for r in encoded.values() if r["frame_type"] == 0)
    assert keys[0] == 0 and len(keys) >= 2, keys
    decoded = sorted(encoded[r["stamp"]]["sequence"] for r in rows("decoded") if r["modality"] == "rgb")
    # The first decoded frame is the requested key frame; nothing before it was published.
    assert decoded[0] == keys[1], (decoded, keys)
    assert decoded == list(range(keys[1], keys[1] + len(decoded)))
    assert f"key frame at sequence {keys[1]}: decoding again" in dec.output()
    assert "key frame requested (service request)" in enc.output()
