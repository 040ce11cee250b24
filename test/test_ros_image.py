"""sensor_msgs/Image <-> numpy conversion (real sensor_msgs messages, no rclpy node needed)."""
import subprocess
import sys

import numpy as np
import pytest

from mm_compress_ros.io.ros_image import from_rgb, image_to_numpy, numpy_to_image, stamp_to_ns, to_rgb

sensor_msgs = pytest.importorskip("sensor_msgs.msg", reason="sensor_msgs is part of the ROS install")
Image = sensor_msgs.Image

RNG = np.random.default_rng(1234)


def _rand(shape, dtype):
    info = np.iinfo(dtype)
    return RNG.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype)


@pytest.mark.parametrize("encoding,shape,dtype", [
    ("rgb8", (5, 7, 3), np.uint8),
    ("bgr8", (4, 3, 3), np.uint8),
    ("mono8", (6, 9), np.uint8),
    ("mono16", (3, 5), np.uint16),
    ("16UC1", (8, 2), np.uint16),
])
def test_roundtrip_through_a_real_message(encoding, shape, dtype):
    arr = _rand(shape, dtype)
    msg = numpy_to_image(arr, encoding)
    assert isinstance(msg, Image)
    assert (msg.height, msg.width, msg.encoding, msg.is_bigendian) == (shape[0], shape[1], encoding, 0)
    assert msg.step == shape[1] * (3 if len(shape) == 3 else 1) * np.dtype(dtype).itemsize
    assert len(msg.data) == msg.step * msg.height
    back = image_to_numpy(msg)
    assert back.dtype == dtype and back.shape == shape
    np.testing.assert_array_equal(back, arr)
    # The result owns its memory (safe to keep after the message is reused).
    assert back.flags.owndata or back.base is None or back.base.flags.owndata
    assert back.flags.c_contiguous


def test_mono16_known_bytes_little_and_big_endian():
    msg = Image(height=1, width=2, encoding="mono16", step=4, is_bigendian=0)
    msg.data = bytes([0x34, 0x12, 0xCD, 0xAB])
    np.testing.assert_array_equal(image_to_numpy(msg), [[0x1234, 0xABCD]])
    msg.is_bigendian = 1
    msg.data = bytes([0x12, 0x34, 0xAB, 0xCD])
    out = image_to_numpy(msg)
    np.testing.assert_array_equal(out, [[0x1234, 0xABCD]])
    assert out.dtype == np.uint16 and out.dtype.isnative


def test_padded_rows_are_cropped():
    h, w = 3, 5
    arr = _rand((h, w, 3), np.uint8)
    step = w * 3 + 9  # 9 bytes of padding per row
    padded = np.full((h, step), 0xEE, np.uint8)
    padded[:, : w * 3] = arr.reshape(h, w * 3)
    msg = Image(height=h, width=w, encoding="bgr8", step=step, is_bigendian=0)
    msg.data = padded.tobytes()
    np.testing.assert_array_equal(image_to_numpy(msg), arr)


def test_padded_16bit_big_endian_rows():
    h, w = 2, 3
    arr = _rand((h, w), np.uint16)
    step = w * 2 + 2
    rows = np.zeros((h, step), np.uint8)
    rows[:, : w * 2] = arr.astype(">u2").view(np.uint8).reshape(h, w * 2)
    msg = Image(height=h, width=w, encoding="16UC1", step=step, is_bigendian=1)
    msg.data = rows.tobytes()
    np.testing.assert_array_equal(image_to_numpy(msg), arr)


def test_data_as_list_and_trailing_bytes():
    msg = Image(height=1, width=2, encoding="mono8", step=2)
    msg.data = [7, 9]
    np.testing.assert_array_equal(image_to_numpy(msg), [[7, 9]])
    msg.data = bytes([7, 9, 1, 1])  # more data than step*height: extra bytes ignored
    np.testing.assert_array_equal(image_to_numpy(msg), [[7, 9]])


@pytest.mark.parametrize("encoding", ["rgba8", "32FC1", "bayer_rggb8", "yuv422", ""])
def test_unsupported_encoding_is_a_one_line_value_error(encoding):
    msg = Image(height=1, width=1, encoding=encoding, step=4)
    msg.data = bytes(4)
    with pytest.raises(ValueError) as exc:
        image_to_numpy(msg)
    assert "\n" not in str(exc.value) and "unsupported image encoding" in str(exc.value)
    with pytest.raises(ValueError):
        numpy_to_image(np.zeros((1, 1), np.uint8), encoding)


def test_inconsistent_messages_are_rejected():
    msg = Image(height=2, width=4, encoding="rgb8", step=8)  # step < 4*3
    msg.data = bytes(24)
    with pytest.raises(ValueError, match="step"):
        image_to_numpy(msg)
    msg = Image(height=2, width=4, encoding="mono8", step=4)
    msg.data = bytes(7)  # one byte short
    with pytest.raises(ValueError, match="bytes"):
        image_to_numpy(msg)


def test_wrong_array_for_encoding():
    with pytest.raises(ValueError, match="dtype"):
        numpy_to_image(np.zeros((2, 2), np.uint8), "mono16")
    with pytest.raises(ValueError, match="shape"):
        numpy_to_image(np.zeros((2, 2), np.uint8), "rgb8")
    with pytest.raises(ValueError, match="shape"):
        numpy_to_image(np.zeros((2, 2, 3), np.uint8), "mono8")
    # (H, W, 1) is accepted for single-channel encodings.
    msg = numpy_to_image(np.ones((2, 2, 1), np.uint8), "mono8")
    assert msg.step == 2


def test_header_is_copied_and_message_reused():
    from std_msgs.msg import Header

    header = Header(frame_id="thermal_optical")
    header.stamp.sec, header.stamp.nanosec = 12, 34
    msg = numpy_to_image(np.zeros((2, 3), np.uint16), "mono16", header=header)
    assert msg.header.frame_id == "thermal_optical" and msg.header.stamp.nanosec == 34
    again = numpy_to_image(np.ones((4, 1, 3), np.uint8), "bgr8", msg=msg)
    assert again is msg and msg.encoding == "bgr8" and msg.height == 4 and msg.step == 3


def test_stamp_to_ns_of_ros_and_rosbags_stamps():
    from builtin_interfaces.msg import Time
    from rosbags.typesys import Stores, get_typestore

    assert stamp_to_ns(Time(sec=1_700_000_000, nanosec=999_999_999)) == 1_700_000_000_999_999_999
    bag_time = get_typestore(Stores.ROS2_JAZZY).types["builtin_interfaces/msg/Time"](sec=12, nanosec=34)
    assert stamp_to_ns(bag_time) == 12_000_000_034
    assert stamp_to_ns(Time()) == 0


def test_channel_order_helpers():
    rgb = _rand((2, 2, 3), np.uint8)
    bgr = from_rgb(rgb, "bgr8")
    np.testing.assert_array_equal(bgr[..., 0], rgb[..., 2])
    np.testing.assert_array_equal(to_rgb(bgr, "bgr8"), rgb)
    assert to_rgb(rgb, "rgb8") is rgb
    with pytest.raises(ValueError):
        to_rgb(rgb, "mono8")


def test_encoded_frame_with_rclpy_messages():
    """The EncodedFrame bridge (mm_compress_ros.io.encoded_frame) with the rclpy classes the nodes use
    (test_session.py runs it with rosbags messages, real packets and decoded images)."""
    from std_msgs.msg import Header

    from mm_compress_ros.link.pair_encoder import PairResult
    from mm_compress_ros.io.encoded_frame import encoded_frame, modality_header

    EncodedFrame = pytest.importorskip("mm_compress_ros.msg", reason="the colcon build's message").EncodedFrame
    rgb_msg = numpy_to_image(_rand((4, 6, 3), np.uint8), "bgr8", header=Header(frame_id="rgb_optical"))
    rgb_msg.header.stamp.sec, rgb_msg.header.stamp.nanosec = 7, 8
    th_msg = numpy_to_image(_rand((2, 3), np.uint16), "16UC1", header=Header(frame_id="lwir"))
    th_msg.header.stamp.sec, th_msg.header.stamp.nanosec = 7, 9
    result = PairResult(packet=b"\x01\x02\x03", frame_type="predicted", sequence=41, codec="mmvc", quality=5)
    msg = encoded_frame(EncodedFrame, rgb_msg, th_msg, result, data=result.packet)
    assert msg.header == rgb_msg.header and msg.thermal_stamp == th_msg.header.stamp
    assert (msg.thermal_frame_id, msg.rgb_encoding, msg.thermal_encoding) == ("lwir", "bgr8", "16UC1")
    assert (msg.sequence, msg.frame_type, msg.codec, msg.quality) == (41, EncodedFrame.FRAME_PREDICTED, "mmvc", 5)
    assert bytes(msg.data) == b"\x01\x02\x03"
    # The decoded images' headers (decoded_image takes them from here): each modality its own.
    assert modality_header(msg, "rgb") == (rgb_msg.header.stamp, "rgb_optical")
    assert modality_header(msg, "thermal") == (th_msg.header.stamp, "lwir")


def test_module_does_not_import_rclpy():
    code = ("import sys, mm_compress_ros.io.ros_image as m, numpy as np; "
            "m.numpy_to_image(np.zeros((1, 1), np.uint8), 'mono8'); "
            "assert 'rclpy' not in sys.modules, 'rclpy imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
