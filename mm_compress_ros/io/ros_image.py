"""sensor_msgs/Image <-> numpy, for the encodings this package handles (replaces cv_bridge).

Supported encodings: rgb8, bgr8 (H x W x 3 uint8), mono8 (H x W uint8), mono16 and 16UC1
(H x W uint16). Row padding (``step`` larger than ``width * bytes_per_pixel``) and big-endian
16-bit data are handled. This module never imports rclpy; ``sensor_msgs.msg`` is imported only
inside :func:`numpy_to_image`, which builds a message. :func:`image_to_numpy` accepts any object
with the sensor_msgs/Image fields (a message from rclpy, from rosbags, ...). :func:`stamp_to_ns`
reads a header stamp the same way, for nodes, synchronizer and bag tools alike.
"""
from __future__ import annotations

import sys

import numpy as np

# encoding -> (channels, numpy dtype of one channel)
ENCODINGS: dict[str, tuple[int, np.dtype]] = {
    "rgb8": (3, np.dtype(np.uint8)),
    "bgr8": (3, np.dtype(np.uint8)),
    "mono8": (1, np.dtype(np.uint8)),
    "mono16": (1, np.dtype(np.uint16)),
    "16UC1": (1, np.dtype(np.uint16)),
}
COLOR_ENCODINGS = ("rgb8", "bgr8")
THERMAL_ENCODINGS = ("mono8", "mono16", "16UC1")
_HOST_BIG_ENDIAN = sys.byteorder == "big"


def stamp_to_ns(stamp) -> int:
    """Nanoseconds of a builtin_interfaces/Time-like object (``sec``, ``nanosec``): a stamp from
    rclpy, from rosbags or any object with those two fields."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def _check_encoding(encoding: str) -> tuple[int, np.dtype]:
    try:
        return ENCODINGS[encoding]
    except KeyError:
        raise ValueError(
            f"unsupported image encoding {encoding!r} (supported: {', '.join(ENCODINGS)})"
        ) from None


def image_to_numpy(msg) -> np.ndarray:
    """Return the pixels of a sensor_msgs/Image as a C-contiguous array that owns its data.

    rgb8/bgr8 -> (H, W, 3) uint8 in the message's channel order; mono8 -> (H, W) uint8;
    mono16/16UC1 -> (H, W) uint16 in native byte order.
    """
    channels, dtype = _check_encoding(msg.encoding)
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    row_bytes = width * channels * dtype.itemsize
    if step < row_bytes:
        raise ValueError(f"image step {step} is smaller than width*bytes_per_pixel = {row_bytes}")
    data = msg.data
    try:  # bytes, array.array('B') (rclpy), memoryview, numpy arrays: no copy
        buf = np.frombuffer(data, dtype=np.uint8)
    except TypeError:  # a list of ints
        buf = np.asarray(data, dtype=np.uint8)
    if buf.ndim != 1:
        buf = buf.reshape(-1)
    if buf.size < step * height:
        raise ValueError(f"image data has {buf.size} bytes, expected step*height = {step * height}")
    rows = buf[: step * height].reshape(height, step)[:, :row_bytes]
    big = bool(msg.is_bigendian)
    pixel_dtype = dtype.newbyteorder(">" if big else "<") if dtype.itemsize > 1 else dtype
    arr = np.ascontiguousarray(rows).view(pixel_dtype)
    arr = arr.astype(dtype, copy=True) if arr.dtype != dtype else arr.copy()
    shape = (height, width, channels) if channels > 1 else (height, width)
    return arr.reshape(shape)


def numpy_to_image(array: np.ndarray, encoding: str, header=None, msg=None):
    """Build a sensor_msgs/Image (little-endian, unpadded) from an array.

    ``array`` must match ``encoding``: (H, W, 3) uint8 for rgb8/bgr8 (channel order is the
    caller's: no conversion happens), (H, W) uint8 for mono8, (H, W) uint16 for mono16/16UC1.
    ``header`` (a std_msgs/Header) is copied into the message when given. ``msg`` reuses an
    existing message object instead of creating one.
    """
    channels, dtype = _check_encoding(encoding)
    array = np.asarray(array)
    expected_ndim = 3 if channels > 1 else 2
    if array.ndim == 3 and channels == 1 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim != expected_ndim or (channels > 1 and array.shape[2] != channels):
        raise ValueError(f"array of shape {array.shape} does not fit encoding {encoding!r}")
    if array.dtype != dtype:
        raise ValueError(f"array dtype {array.dtype} does not fit encoding {encoding!r} ({dtype})")
    if msg is None:
        from sensor_msgs.msg import Image  # lazy: keeps this module importable without ROS

        msg = Image()
    if header is not None:
        msg.header = header
    height, width = array.shape[:2]
    little = np.ascontiguousarray(array, dtype=dtype.newbyteorder("<"))
    msg.height = int(height)
    msg.width = int(width)
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = int(width * channels * dtype.itemsize)
    msg.data = little.tobytes()
    return msg


def to_rgb(array: np.ndarray, encoding: str) -> np.ndarray:
    """(H, W, 3) uint8 in RGB order from an rgb8/bgr8 array."""
    if encoding == "rgb8":
        return array
    if encoding == "bgr8":
        return np.ascontiguousarray(array[:, :, ::-1])
    raise ValueError(f"not a color encoding: {encoding!r} (expected rgb8 or bgr8)")


def from_rgb(array: np.ndarray, encoding: str) -> np.ndarray:
    """Inverse of :func:`to_rgb`: an RGB-order array in the given color encoding."""
    return to_rgb(array, encoding)  # the channel swap is its own inverse
