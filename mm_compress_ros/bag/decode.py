"""``bag decode``: a compressed bag -> a raw-image bag, PNG frames, a side-by-side review video or a
Foxglove MCAP file (:func:`decode_bag`).

Each EncodedFrame is read by :class:`~mm_compress_ros.link.pair_decoder.PairDecoder` (decoder_node's
policy: the model the stream names, waiting for a key frame, the counts, the joint restoration when
asked) and each decoded pair goes to one sink (mm_compress_ros.bag.sinks, mm_compress_ros.bag.foxglove)
with the packet parsed once.
"""
from __future__ import annotations

import time

from ..codec.profiles import DEFAULT_RESTORE
from .bagio import (DEFAULT_RGB_TOPIC, DEFAULT_THERMAL_TOPIC, META, BagError, bag_output, custom_data,
                    describe_topics, iter_messages, open_reader, progress, staged_path, topics_of)
from .sinks import BagSink, FramesSink, VideoSink
from .types import ENCODED_FRAME, typestore


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
                sink = BagSink(target, reader, enc_ids, rgb_topic, thermal_topic)
            elif foxglove is not None:
                from .foxglove import FoxgloveSink

                sink = FoxgloveSink(target, reader, conns, enc_ids, rgb_topic, thermal_topic, inp)
            elif frames_dir is not None:
                sink = FramesSink(target)
            else:
                sink = VideoSink(target, fps, video_codec)
            bar = progress(total, "bag decode", quiet)
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
