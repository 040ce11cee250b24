"""``bag encode``: a raw-image bag -> a compressed bag (:func:`encode_bag`).

RGB and thermal images are paired with the project's approximate-time synchronizer
(:mod:`mm_compress_ros.link.synchronizer`: the same policy and defaults as encoder_node) in the
bag's record order; each pair is coded by :class:`~mm_compress_ros.link.pair_encoder.PairEncoder`
(encoder_node's stream: the same key frames after stamp gaps and clock resets, the same stale
pairs skipped), and one ``mm_compress_ros/msg/EncodedFrame`` is written per encoded pair with the
RGB header (stamp, frame_id), the thermal stamp and frame_id, both encodings, the sequence number
(+1 per frame, from 0), the frame type, the model id and the quality: the message encoder_node
publishes (:func:`mm_compress_ros.io.encoded_frame.encoded_frame`). Its record time is the record
time of the message that completed the pair (as if recorded live behind the encoder). All other
topics are copied through byte for byte, with their definitions, hashes and QoS.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..codec.profiles import DEFAULT_GOP, DEFAULT_REFERENCE_CODEC
from ..io.encoded_frame import encoded_frame
from ..io.ros_image import COLOR_ENCODINGS, THERMAL_ENCODINGS, stamp_to_ns
from ..link.synchronizer import SYNC_QUEUE_SIZE, SYNC_SLOP, ApproximateTimeSynchronizer
from .bagio import (DEFAULT_ENCODED_TOPIC, META, BagError, bag_output, image_connection, iter_messages, open_reader,
                    progress, topics_of)
from .types import ENCODED_FRAME, IMAGE, typestore


@dataclass
class EncodeStats:
    rgb_in: int = 0
    thermal_in: int = 0
    copied: int = 0
    raw_image_bytes: int = 0
    encoded_bytes: int = 0
    packet_bytes: int = 0
    seconds: float = 0.0


def encode_bag(inp, out, rgb_topic: str, thermal_topic: str, *, model, quality: int | None = None, gop: int = DEFAULT_GOP,
               storage: str = "mcap", encoded_topic: str = DEFAULT_ENCODED_TOPIC,
               slop: float = SYNC_SLOP, queue_size: int = SYNC_QUEUE_SIZE, quiet: bool = False,
               reference_codec: str = DEFAULT_REFERENCE_CODEC, encoder: str = "auto", target_kbps: float = 0.0,
               thermal_codec: str | None = None) -> dict:
    """Raw-image bag ``inp`` -> compressed bag ``out``. ``model`` is a loaded model
    (:func:`mm_compress_ros.codec.zoo.encoding_model`; None for the standard profile);
    ``reference_codec`` and ``thermal_codec`` pick the profile (``thermal_codec`` None: the
    stream's default, :class:`~mm_compress_ros.codec.stream.StreamEncoder`, which also records
    the choice it made)."""
    from ..link.pair_encoder import PairEncoder

    if rgb_topic == thermal_topic:
        raise BagError("--rgb-topic and --thermal-topic must differ")
    store = typestore()
    EncodedFrame = store.types[ENCODED_FRAME]
    if target_kbps < 0:
        raise BagError("--target-kbps must be >= 0")
    try:
        pairs = PairEncoder(model, quality=quality, gop=gop, reference_codec=reference_codec, encoder=encoder,
                            target_kbps=target_kbps, thermal_codec=thermal_codec, reconstruct=False)
    except ValueError as exc:
        raise BagError(str(exc)) from None
    quality = pairs.stream.quality   # the model's default when none was given
    thermal_codec = pairs.stream.thermal_choice   # the stream's reading of the choice (auto with a model: learned)
    st = EncodeStats()
    t0 = time.perf_counter()
    reader = open_reader(inp)
    try:
        rgb_conns = image_connection(reader, rgb_topic, "RGB")
        th_conns = image_connection(reader, thermal_topic, "thermal")
        if encoded_topic in topics_of(reader):
            raise BagError(f"the input bag already has a topic {encoded_topic}; choose another --encoded-topic")
        image_ids = {c.id: 0 for c in rgb_conns} | {c.id: 1 for c in th_conns}
        sync = ApproximateTimeSynchronizer(2, queue_size, slop)
        with bag_output(out, storage) as w:
            copies = {c.id: w.add_copy(c) for c in reader.connections if c.id not in image_ids}
            enc_conn = w.add_typed(encoded_topic, ENCODED_FRAME)
            for k, v in (("rgb_topic", rgb_topic), ("thermal_topic", thermal_topic),
                         ("encoded_topic", encoded_topic), ("model", pairs.stream.model_id),
                         ("direction", model.direction if model else ""),
                         ("weights_sha256", model.sha256 if model else ""),
                         ("quality", quality), ("gop", gop), ("reference_codec", reference_codec),
                         ("thermal_codec", thermal_codec),
                         ("source_bag", Path(inp).name)):
                w.set_custom(META + k, v)
            bar = progress(reader.message_count, "bag encode", quiet)
            for conn, ts, raw in iter_messages(reader, path=inp):
                bar.update(1)
                side = image_ids.get(conn.id)
                if side is None:
                    w.write(copies[conn.id], ts, raw)
                    st.copied += 1
                    continue
                st.raw_image_bytes += len(raw)
                msg = store.deserialize_cdr(raw, IMAGE)
                if side == 0:
                    st.rgb_in += 1
                    if msg.encoding not in COLOR_ENCODINGS:
                        raise BagError(f"{rgb_topic}: encoding {msg.encoding!r} is not one of "
                                       f"{', '.join(COLOR_ENCODINGS)}")
                else:
                    st.thermal_in += 1
                    if msg.encoding not in THERMAL_ENCODINGS:
                        raise BagError(f"{thermal_topic}: encoding {msg.encoding!r} is not one of "
                                       f"{', '.join(THERMAL_ENCODINGS)}")
                for rgb_msg, th_msg in sync.add(side, stamp_to_ns(msg.header.stamp), msg):
                    res = pairs.encode(rgb_msg, th_msg)  # encodings checked above: only a stale pair is skipped
                    if res.packet is None:
                        continue
                    out_msg = encoded_frame(EncodedFrame, rgb_msg, th_msg, res,
                                            data=np.frombuffer(res.packet, dtype=np.uint8))
                    data = store.serialize_cdr(out_msg, ENCODED_FRAME)
                    w.write(enc_conn, ts, data)
                    st.encoded_bytes += len(data)
                    st.packet_bytes += len(res.packet)
                    bar.set_postfix(pairs=pairs.counts.pairs, refresh=False)
            bar.close()
            if st.rgb_in == 0 or st.thermal_in == 0:
                raise BagError(f"no messages on {rgb_topic if st.rgb_in == 0 else thermal_topic}")
            if pairs.counts.pairs == 0:
                raise BagError(f"no RGB and thermal images within {slop} s of each other "
                               f"({st.rgb_in} RGB, {st.thermal_in} thermal); try a larger --slop")
    finally:
        reader.close()
    st.seconds = time.perf_counter() - t0
    c = pairs.counts
    paired = c.pairs + c.stale
    return {"out": str(out), "pairs": c.pairs, "key_frames": c.key_frames, "stale_pairs": c.stale,
            "clock_resets": c.clock_resets, "rgb_messages": st.rgb_in, "thermal_messages": st.thermal_in,
            "unpaired_rgb": st.rgb_in - paired, "unpaired_thermal": st.thermal_in - paired,
            "copied_messages": st.copied, "raw_image_bytes": st.raw_image_bytes,
            "encoded_bytes": st.encoded_bytes, "packet_bytes": st.packet_bytes,
            "ratio": round(st.raw_image_bytes / max(st.encoded_bytes, 1), 2),
            "model": pairs.stream.model_id or None, "weights_sha256": model.sha256[:16] if model else None,
            "quality": quality, "gop": gop, "reference_codec": reference_codec, "thermal_codec": thermal_codec,
            "encoded_topic": encoded_topic, "storage": storage, "seconds": round(st.seconds, 2)}
