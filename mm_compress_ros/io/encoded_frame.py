"""EncodedFrame / sensor_msgs/Image <-> frames: the field rules that encoder_node, decoder_node and
the bag tools (``bag encode``, ``bag decode``, ``--foxglove``) share.

Like :mod:`.ros_image` this module never imports rclpy: it reads messages of either library
(rclpy or rosbags) through their fields, and builds them with the class the caller passes.

Encoding: a pair of input images (sensor_msgs/Image) gives the frames the codec takes (RGB in RGB
channel order, thermal as it is); its EncodedFrame carries the RGB image's header, the thermal
image's stamp and frame_id, and both input encodings.

Decoding: each decoded image goes out with the header its input had (RGB: ``header``; thermal:
``thermal_stamp``, ``thermal_frame_id``) in the encoding the packet records (``bgr8`` stays
``bgr8``, ``mono16`` stays ``mono16``). The packet's formats win over the message's encoding
fields: they describe the decoded pixels, and an encoder of this package writes the same values
into both.
"""
from __future__ import annotations

import numpy as np

from .ros_image import COLOR_ENCODINGS, THERMAL_ENCODINGS, image_to_numpy, to_rgb


def unsupported_encodings(rgb_encoding: str, thermal_encoding: str) -> str | None:
    """One line saying why the codec cannot take a pair with these encodings, or None."""
    if rgb_encoding in COLOR_ENCODINGS and thermal_encoding in THERMAL_ENCODINGS:
        return None
    return (f"unsupported encodings {rgb_encoding}/{thermal_encoding} (expected "
            f"{'/'.join(COLOR_ENCODINGS)} and {'/'.join(THERMAL_ENCODINGS)})")


def input_frames(rgb_msg, thermal_msg) -> tuple[np.ndarray, np.ndarray]:
    """The frames of a pair of input images: RGB (H, W, 3) uint8 in RGB order, thermal (h, w)
    uint8 or uint16. Raises ValueError for an unsupported encoding or malformed image data."""
    return to_rgb(image_to_numpy(rgb_msg), rgb_msg.encoding), image_to_numpy(thermal_msg)


def encoded_frame(cls, rgb_msg, thermal_msg, result, data):
    """The EncodedFrame (``cls``: rclpy's or a rosbags typestore's class) of an encoded pair.

    ``result`` is the :class:`mm_compress_ros.link.pair_encoder.PairResult` of the pair (sequence,
    frame type, model id, quality); ``data`` is its packet in the form ``cls`` takes for uint8[]
    (bytes for rclpy, a uint8 numpy array for rosbags)."""
    return cls(header=rgb_msg.header, thermal_stamp=thermal_msg.header.stamp,
               thermal_frame_id=thermal_msg.header.frame_id, rgb_encoding=rgb_msg.encoding,
               thermal_encoding=thermal_msg.encoding, sequence=result.sequence,
               frame_type=cls.FRAME_KEY if result.frame_type == "key" else cls.FRAME_PREDICTED,
               codec=result.codec, quality=result.quality, data=data)


def modality_header(msg, modality: str) -> tuple[object, str]:
    """(stamp, frame_id) of one modality's input image, from an EncodedFrame."""
    if modality == "rgb":
        return msg.header.stamp, msg.header.frame_id
    return msg.thermal_stamp, msg.thermal_frame_id


def decoded_image(msg, pair, modality: str) -> tuple[np.ndarray, str, object, str]:
    """(pixels, encoding, stamp, frame_id) of one decoded modality of ``pair``
    (a :class:`mm_compress_ros.codec.stream.DecodedPair`) of EncodedFrame ``msg``: what goes into
    its sensor_msgs/Image (:func:`.ros_image.numpy_to_image`, :func:`mm_compress_ros.bag.bagio.make_image`)."""
    if modality == "rgb":  # the decoder hands RGB back in the packet's channel order already
        return (pair.rgb, pair.rgb_format, *modality_header(msg, modality))
    # 8UC1, the one thermal packet format sensor_msgs users know by another name, is mono8.
    encoding = pair.thermal_format if pair.thermal_format in THERMAL_ENCODINGS else "mono8"
    return (pair.thermal, encoding, *modality_header(msg, modality))
