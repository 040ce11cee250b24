"""Two separate processes exchange mm_compress_ros/msg/EncodedFrame over real DDS."""
import hashlib
import random

import pytest

from conftest import PROCS, read_jsonl, wait_for

pytestmark = pytest.mark.ros


@pytest.mark.parametrize("payload_bytes", [1_000, 600_000])
def test_encoded_frame_between_processes(ros, tmp_path, payload_bytes):
    count, seed = 12, random.randrange(1 << 30)
    out = tmp_path / "received.jsonl"
    sub = ros.python("sub", PROCS / "encoded_frame_sub.py", out, count)
    wait_for(lambda: "subscribed" in sub.output(), 30, what="subscriber start")
    pub = ros.python("pub", PROCS / "encoded_frame_pub.py", count, payload_bytes, seed)
    try:
        wait_for(lambda: len(read_jsonl(out)) >= count, 60, what=f"{count} messages")
        assert pub.wait(timeout=30) == 0
        assert sub.wait(timeout=10) == 0
    except Exception:
        print(ros.logs())
        raise

    rows = read_jsonl(out)
    assert len(rows) == count
    for i, row in enumerate(rows):
        expected = random.Random(seed * 1_000_003 + i).randbytes(payload_bytes)
        assert row["size"] == payload_bytes
        assert row["sha"] == hashlib.sha256(expected).hexdigest()
        assert row["stamp"] == [1_700_000_000 + i, 123_456_789]
        assert row["thermal_stamp"] == [1_700_000_000 + i, 100_000_000 + i]
        assert row["frame_id"] == "rgb_optical_frame"
        assert row["thermal_frame_id"] == "thermal_optical_frame"
        assert row["rgb_encoding"] == "rgb8" and row["thermal_encoding"] == "mono16"
        assert row["sequence"] == 2**40 + i
        assert row["frame_type"] == (0 if i % 5 == 0 else 1)
        assert row["codec"] == "test-codec" and row["quality"] == 3
    # The publisher saw the subscriber before publishing.
    assert "subscribers=1" in pub.output()


def test_message_definition_constants():
    from mm_compress_ros.msg import EncodedFrame

    assert EncodedFrame.FRAME_KEY == 0 and EncodedFrame.FRAME_PREDICTED == 1
    fields = EncodedFrame.get_fields_and_field_types()
    assert fields["data"] == "sequence<uint8>"
    assert fields["sequence"] == "uint64"
    assert fields["header"] == "std_msgs/Header"
    assert fields["thermal_stamp"] == "builtin_interfaces/Time"
