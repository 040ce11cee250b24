"""Offline transcoding of bags: raw-image bag -> compressed bag (``encode_bag``) and compressed
bag -> raw-image bag, PNG frames or a side-by-side review video (``decode_bag``).

Encoding pairs RGB and thermal images with the project's approximate-time synchronizer
(:mod:`mm_compress_ros.link.synchronizer`: the same policy and defaults as encoder_node) in the
bag's record order, codes each pair with :class:`~mm_compress_ros.link.pair_encoder.PairEncoder`
(encoder_node's stream: the same key frames
after stamp gaps and clock resets, the same stale pairs skipped) and writes one
``mm_compress_ros/msg/EncodedFrame`` per encoded pair with the RGB header (stamp, frame_id), the
thermal stamp and frame_id, both encodings, the sequence number (+1 per frame, from 0), the frame
type, the model id and the quality: the message encoder_node publishes
(:func:`mm_compress_ros.io.encoded_frame.encoded_frame`). Its record time is the record
time of the message that completed the pair (as if recorded live behind the encoder). All other
topics are copied through byte for byte, with their definitions, hashes and QoS.

Decoding reads each EncodedFrame with :class:`~mm_compress_ros.link.pair_decoder.PairDecoder`
(decoder_node's policy: the model the stream names, waiting for a key frame, the counts).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..codec.profiles import DEFAULT_REFERENCE_CODEC, DEFAULT_RESTORE
from ..io.encoded_frame import decoded_image, encoded_frame
from ..io.ros_image import COLOR_ENCODINGS, THERMAL_ENCODINGS, stamp_to_ns, to_rgb
from ..link.synchronizer import SYNC_QUEUE_SIZE, SYNC_SLOP, ApproximateTimeSynchronizer
from .bagio import (BagError, bag_output, custom_data, describe_topics, image_connection, iter_messages,
                    make_image, open_reader, staged_path, topics_of)
from .types import ENCODED_FRAME, IMAGE, typestore

DEFAULT_RGB_TOPIC = "/rgb/image"
DEFAULT_THERMAL_TOPIC = "/thermal/image"
DEFAULT_ENCODED_TOPIC = "/encoded"
META = "mm_compress_ros."  # prefix of the custom_data keys written by bag encode


def _progress(total, desc, quiet):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="msg", disable=quiet, leave=False)


@dataclass
class EncodeStats:
    rgb_in: int = 0
    thermal_in: int = 0
    copied: int = 0
    raw_image_bytes: int = 0
    encoded_bytes: int = 0
    packet_bytes: int = 0
    seconds: float = 0.0


def encode_bag(inp, out, rgb_topic: str, thermal_topic: str, *, model, quality: int | None = None, gop: int = 10,
               storage: str = "mcap", encoded_topic: str = DEFAULT_ENCODED_TOPIC,
               slop: float = SYNC_SLOP, queue_size: int = SYNC_QUEUE_SIZE, quiet: bool = False,
               reference_codec: str = DEFAULT_REFERENCE_CODEC, encoder: str = "auto", target_kbps: float = 0.0,
               thermal_codec: str = "learned") -> dict:
    """Raw-image bag ``inp`` -> compressed bag ``out``. ``model`` is a loaded model
    (:func:`mm_compress_ros.codec.zoo.encoding_model`; None for the standard profile);
    ``reference_codec`` and ``thermal_codec`` pick the profile."""
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
            bar = _progress(reader.message_count, "bag encode", quiet)
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
            "quality": quality, "gop": gop, "reference_codec": reference_codec, "thermal_codec": thermal_codec, "encoded_topic": encoded_topic, "storage": storage, "seconds": round(st.seconds, 2)}


# -- decode --------------------------------------------------------------------------------------

def encoded_connections(reader, encoded_topic: str | None):
    """The EncodedFrame connections to decode: those of ``encoded_topic``, else of the bag's one
    EncodedFrame topic. Checks the recorded type hash against this package's definition."""
    store = typestore()
    topics = topics_of(reader)
    if encoded_topic:
        conns = topics.get(encoded_topic)
        if not conns:
            raise BagError(f"encoded topic {encoded_topic} is not in the bag (topics: {describe_topics(reader)})")
        bad = {c.msgtype for c in conns} - {ENCODED_FRAME}
        if bad:
            raise BagError(f"topic {encoded_topic} holds {', '.join(sorted(bad))}, not {ENCODED_FRAME}")
    else:
        names = sorted(t for t, cs in topics.items() if any(c.msgtype == ENCODED_FRAME for c in cs))
        if not names:
            raise BagError(f"the bag has no {ENCODED_FRAME} topic (topics: {describe_topics(reader)})")
        if len(names) > 1:
            raise BagError(f"the bag has several {ENCODED_FRAME} topics ({', '.join(names)}): "
                           "choose one with --encoded-topic")
        conns = topics[names[0]]
    ours = store.hash_rihs01(ENCODED_FRAME)
    for c in conns:
        if c.digest and c.digest.startswith("RIHS01_") and c.digest != ours:
            raise BagError(f"{c.topic} was recorded with another EncodedFrame definition "
                           f"({c.digest[:20]}...) than this package's ({ours[:20]}...)")
    return conns


class _BagSink:
    def __init__(self, w, reader, skip_ids, rgb_topic, thermal_topic):
        self.w = w
        self.copies = {c.id: w.add_copy(c) for c in reader.connections if c.id not in skip_ids}
        self.rgb = w.add_typed(rgb_topic, IMAGE)
        self.th = w.add_typed(thermal_topic, IMAGE)
        self.store = typestore()

    def other(self, conn, ts, raw):
        self.w.write(self.copies[conn.id], ts, raw)

    def frame(self, ts, msg, pair, n, packet=None):
        """The decoded images with their inputs' headers and encodings (mm_compress_ros.io.encoded_frame)."""
        for conn, modality in ((self.rgb, "rgb"), (self.th, "thermal")):
            self.w.write_msg(conn, ts, make_image(self.store, *decoded_image(msg, pair, modality)))


class _FramesSink:
    def __init__(self, folder: Path):
        self.folder = folder
        (folder / "rgb").mkdir()
        (folder / "thermal").mkdir()
        self.index = open(folder / "frames.csv", "w")
        self.index.write("index,sequence,frame_type,rgb_stamp_ns,rgb_frame_id,rgb_encoding,"
                         "thermal_stamp_ns,thermal_frame_id,thermal_encoding\n")

    def other(self, conn, ts, raw):
        pass

    def frame(self, ts, msg, pair, n, packet=None):
        from ..io.frames import write_rgb, write_thermal

        write_rgb(self.folder / "rgb" / f"{n:04d}.png", to_rgb(pair.rgb, pair.rgb_format))
        write_thermal(self.folder / "thermal" / f"{n:04d}.png", pair.thermal)
        self.index.write(f"{n},{msg.sequence},{pair.frame_type},{stamp_to_ns(msg.header.stamp)},"
                         f"{msg.header.frame_id},{msg.rgb_encoding},{stamp_to_ns(msg.thermal_stamp)},"
                         f"{msg.thermal_frame_id},{msg.thermal_encoding}\n")

    def close(self):
        self.index.close()


def thermal_to_gray8(th: np.ndarray) -> np.ndarray:
    """8-bit view of a thermal frame for review (16-bit: stretched over the frame's range)."""
    if th.dtype == np.uint8:
        return th
    lo, hi = int(th.min()), int(th.max())
    return ((th.astype(np.float32) - lo) * (255.0 / max(hi - lo, 1))).round().astype(np.uint8)


def side_by_side(rgb: np.ndarray, thermal: np.ndarray) -> np.ndarray:
    """RGB | thermal (gray as RGB), thermal scaled to the RGB height, even width and height."""
    import cv2

    gray = thermal_to_gray8(thermal)
    h = rgb.shape[0]
    if gray.shape[0] != h:
        w = max(1, round(gray.shape[1] * h / gray.shape[0]))
        gray = cv2.resize(gray, (w, h), interpolation=cv2.INTER_AREA)
    frame = np.concatenate([rgb, np.repeat(gray[:, :, None], 3, axis=2)], axis=1)
    ph, pw = frame.shape[0] % 2, frame.shape[1] % 2
    if ph or pw:
        frame = np.pad(frame, ((0, ph), (0, pw), (0, 0)))
    return np.ascontiguousarray(frame)


class _VideoSink:
    def __init__(self, path: Path, fps: float | None, codec: str):
        self.path, self.fps, self.codec = path, fps, codec
        self.frames: list[np.ndarray] = []  # buffered until the frame rate is known
        self.stamps: list[int] = []
        self.container = self.stream = None

    def other(self, conn, ts, raw):
        pass

    def _open(self, first: np.ndarray):
        import av
        from fractions import Fraction

        fps = self.fps
        if not fps:
            d = np.diff(self.stamps)
            d = d[d > 0]
            fps = 1e9 / float(np.median(d)) if d.size else 10.0
        fps = min(max(fps, 1.0), 120.0)
        self.container = av.open(str(self.path), mode="w", format="mp4")
        codec = self.codec
        if codec == "auto":
            codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        self.stream = self.container.add_stream(codec, rate=Fraction(round(fps * 1000), 1000))
        self.stream.width, self.stream.height = first.shape[1], first.shape[0]
        self.stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            self.stream.options = {"crf": "18", "preset": "veryfast"}
        else:
            self.stream.bit_rate = 8_000_000
        self.fps_used, self.codec_used = fps, codec

    def _write(self, frame: np.ndarray):
        import av

        for p in self.stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
            self.container.mux(p)

    def frame(self, ts, msg, pair, n, packet=None):
        img = side_by_side(to_rgb(pair.rgb, pair.rgb_format), pair.thermal)
        if self.container is None:
            self.frames.append(img)
            self.stamps.append(stamp_to_ns(msg.header.stamp))
            if len(self.frames) < 16 and not self.fps:
                return
            self._open(self.frames[0])
            for f in self.frames:
                self._write(f)
            self.frames = []
            return
        if img.shape[:2] != (self.stream.height, self.stream.width):
            raise BagError(f"frame size changed mid-stream ({img.shape[1]}x{img.shape[0]}); "
                           "write PNG frames (--frames) instead")
        self._write(img)

    def close(self):
        if self.container is None and self.frames:
            self._open(self.frames[0])
            for f in self.frames:
                self._write(f)
        if self.container is not None:
            for p in self.stream.encode():
                self.container.mux(p)
            self.container.close()


def decode_bag(inp, *, out_bag=None, frames_dir=None, video=None, foxglove=None, encoded_topic: str | None = None,
               rgb_topic: str | None = None, thermal_topic: str | None = None, model: str | None = None,
               weights: str | None = None, device: str = "cpu", storage: str = "mcap",
               fps: float | None = None, video_codec: str = "auto", quiet: bool = False,
               restore: bool = DEFAULT_RESTORE, restore_weights: str | None = None) -> dict:
    """Compressed bag -> exactly one of: a raw-image bag ``out_bag`` (sensor_msgs/Image in the
    original encodings, stamps and frame_ids, other topics copied through), PNG frames in
    ``frames_dir`` (rgb/NNNN.png, thermal/NNNN.png, frames.csv), a side-by-side ``video`` or, for
    a stream with a standard RGB layer, a ``foxglove`` MCAP file (every H.264/H.265 layer as
    foxglove_msgs/msg/CompressedVideo without re-encoding, the others as sensor_msgs/Image:
    mm_compress_ros.bag.foxglove)."""
    from ..codec.packet import EntropyMismatch, ModelMismatch
    from ..link.pair_decoder import PairDecoder

    if sum(x is not None for x in (out_bag, frames_dir, video, foxglove)) != 1:
        raise BagError("give exactly one output: OUT_BAG, --frames DIR, --video FILE.mp4 or --foxglove FILE.mcap")
    copy_all = out_bag is not None or foxglove is not None  # outputs that copy the other topics
    store = typestore()
    t0 = time.perf_counter()
    reader = open_reader(inp)
    try:
        conns = encoded_connections(reader, encoded_topic)
        enc_ids = {c.id for c in conns}
        meta = custom_data(reader)
        rgb_topic = rgb_topic or meta.get(META + "rgb_topic") or DEFAULT_RGB_TOPIC
        thermal_topic = thermal_topic or meta.get(META + "thermal_topic") or DEFAULT_THERMAL_TOPIC
        if out_bag is not None:
            present = topics_of(reader)
            for t in (rgb_topic, thermal_topic):
                if t in present:
                    raise BagError(f"the bag already has a topic {t}; name the decoded topics with "
                                   "--rgb-topic / --thermal-topic")
        # the model: the one named, else the stream's; the joint restoration changes the pictures, never
        # the Foxglove video topics (the layers as sent)
        decoder = PairDecoder(model, None, device, weights, restore=restore, restore_weights=restore_weights)
        total = reader.message_count if copy_all else sum(c.msgcount for c in conns)
        ctx = bag_output(out_bag, storage) if out_bag is not None else \
            staged_path(next(x for x in (frames_dir, video, foxglove) if x is not None), is_dir=frames_dir is not None)
        with ctx as target:
            if out_bag is not None:
                sink = _BagSink(target, reader, enc_ids, rgb_topic, thermal_topic)
            elif foxglove is not None:
                from .foxglove import FoxgloveSink

                sink = FoxgloveSink(target, reader, conns, enc_ids, rgb_topic, thermal_topic, inp)
            elif frames_dir is not None:
                sink = _FramesSink(target)
            else:
                sink = _VideoSink(target, fps, video_codec)
            bar = _progress(total, "bag decode", quiet)
            wanted = () if copy_all else conns
            for conn, ts, raw in iter_messages(reader, wanted, path=inp):
                bar.update(1)
                if conn.id not in enc_ids:
                    sink.other(conn, ts, raw)
                    continue
                msg = store.deserialize_cdr(raw, ENCODED_FRAME)
                res = decoder.decode_message(msg)
                if isinstance(res.error, (ModelMismatch, EntropyMismatch)):  # systematic: no later frame decodes
                    raise res.error
                for note in res.notes:   # a corrupt packet: this frame is lost; the decoder waits for a key frame
                    if note.kind == "corrupt" and not quiet:
                        bar.write(f"bag decode: {note.text}")
                if res.pair is not None:
                    sink.frame(ts, msg, res.pair, decoder.counts.decoded - 1, res.packet)   # parsed once
            bar.close()
            c = decoder.counts
            stats = {"messages": c.received, "decoded": c.decoded, "restored": c.restored, "key_frames": c.key_frames,
                     "waiting": c.skipped, "corrupt": c.corrupt, "lost": c.lost}
            if hasattr(sink, "close"):
                sink.close()
            if stats["messages"] == 0:
                raise BagError(f"{', '.join(sorted({c.topic for c in conns}))} holds no messages")
            if stats["decoded"] == 0:
                raise BagError(f"none of the {stats['messages']} encoded frames could be decoded "
                               "(no key frame, or every packet corrupt)")
    finally:
        reader.close()
    out = {"out": str(out_bag or frames_dir or video or foxglove), "kind": "bag" if out_bag is not None else
           "frames" if frames_dir is not None else "video" if video is not None else "foxglove",
           "encoded_topic": conns[0].topic, **stats, "seconds": round(time.perf_counter() - t0, 2)}
    if out_bag is not None:
        out.update(rgb_topic=rgb_topic, thermal_topic=thermal_topic, storage=storage)
    if video is not None:
        out.update(fps=round(sink.fps_used, 3), codec=sink.codec_used)
    if foxglove is not None:
        out.update(sink.summary())
    if decoder.model is not None:   # none: the standard profile
        out.update(model=decoder.model.model_id, weights_sha256=decoder.model.sha256[:16])
    return out
