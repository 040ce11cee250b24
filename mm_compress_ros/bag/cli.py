"""``mm-compress bag encode|decode|info`` and ``mm-compress record`` (registered by
:func:`add_bag_parsers`, which mm_compress_ros.cli calls)."""
from __future__ import annotations

import json
import sys

from .bagio import DEFAULT_ENCODED_TOPIC, STORAGES, BagError
from ..codec.profiles import DEFAULT_DIRECTION, DEFAULT_GOP
from ..options import add_restore_args, reference_args
from ..errors import claim_output
from ..link.synchronizer import SYNC_QUEUE_SIZE, SYNC_SLOP


# Expected failures raise BagError (a FrameSourceError): mm-compress prints them in one line and
# exits 2.


def cmd_bag_encode(args) -> None:
    from ..codec.zoo import encoding_model
    from .encode import encode_bag

    claim_output(args.out, args.force, "output bag")
    if args.gop < 1:
        raise BagError("--gop must be at least 1")
    if not args.slop > 0 or args.queue_size < 1:
        raise BagError("--slop must be positive and --queue-size at least 1")
    model = encoding_model(args.reference_codec, args.thermal_codec, args.model, args.direction, args.device,
                           args.weights)
    res = encode_bag(args.inp, args.out, args.rgb_topic, args.thermal_topic, model=model,
                     quality=args.quality, gop=args.gop, storage=args.storage,
                     encoded_topic=args.encoded_topic, slop=args.slop, queue_size=args.queue_size,
                     quiet=args.quiet, reference_codec=args.reference_codec, encoder=args.encoder,
                     target_kbps=args.target_kbps, thermal_codec=args.thermal_codec)
    print(json.dumps(res))


def cmd_bag_decode(args) -> None:
    from .decode import decode_bag

    outs = [x for x in (args.out, args.frames, args.video, args.foxglove) if x is not None]
    if len(outs) != 1:
        raise BagError("give exactly one output: OUT_BAG, --frames DIR, --video FILE.mp4 or --foxglove FILE.mcap")
    claim_output(outs[0], args.force)
    res = decode_bag(args.inp, out_bag=args.out, frames_dir=args.frames, video=args.video, foxglove=args.foxglove,
                     encoded_topic=args.encoded_topic, rgb_topic=args.rgb_topic,
                     thermal_topic=args.thermal_topic, model=args.model, weights=args.weights,
                     device=args.device, storage=args.storage, fps=args.fps,
                     video_codec=args.video_codec, quiet=args.quiet, restore=args.restore,
                     restore_weights=args.restore_weights)
    print(json.dumps(res))


def cmd_bag_info(args) -> None:
    from .info import bag_info, format_info

    if not args.bin > 0:
        raise BagError("--bin must be positive")
    info = bag_info(args.bag, bin_s=args.bin)
    print(json.dumps(info, indent=1) if args.json else format_info(info))


def cmd_record(args) -> None:
    from .record import record

    claim_output(args.out, args.force, "output bag")
    res = record(args.out, args.topics, duration=args.duration, storage=args.storage,
                 discovery_timeout=args.discovery_timeout, quiet=args.quiet)
    print(json.dumps(res))
    sys.stdout.flush()


def add_bag_parsers(sub) -> None:
    bag = sub.add_parser("bag", help="rosbag2 bags: encode raw images, decode, inspect (rosbags library)")
    bsub = bag.add_subparsers(dest="bag_cmd", required=True)

    p = bsub.add_parser("encode", help="raw-image bag -> compressed bag (other topics copied through)")
    p.add_argument("inp", metavar="IN", help="input bag (folder with metadata.yaml, or a .mcap / .db3 file)")
    p.add_argument("out", metavar="OUT", help="output bag folder (must not exist)")
    p.add_argument("--rgb-topic", required=True, help="sensor_msgs/Image topic, rgb8 or bgr8")
    p.add_argument("--thermal-topic", required=True, help="sensor_msgs/Image topic, mono8, mono16 or 16UC1")
    p.add_argument("--quality", type=int, default=None,
                   help="1 = smallest stream, up to the model's levels; default: the model's middle level")
    p.add_argument("--gop", type=int, default=DEFAULT_GOP, help=f"key frame every N frames (default {DEFAULT_GOP})")
    p.add_argument("--model", default=None, help="model name (see `mm-compress models`; default: the profile's: "
                                                 "none for a standard thermal layer, mmrt for --thermal-codec "
                                                 "learned, mmvc for --reference-codec learned)")
    p.add_argument("--direction", default=DEFAULT_DIRECTION, choices=["thermal_given_rgb", "rgb_given_thermal"])
    p.add_argument("--weights", help="explicit .safetensors file (its .json card beside it)")
    p.add_argument("--device", default="auto", help="auto, cuda or cpu")
    p.add_argument("--storage", default="mcap", choices=STORAGES, help="output storage (default mcap)")
    reference_args(p)
    p.add_argument("--encoded-topic", default=DEFAULT_ENCODED_TOPIC, help=f"default {DEFAULT_ENCODED_TOPIC}")
    p.add_argument("--slop", type=float, default=SYNC_SLOP,
                   help=f"pairing tolerance in seconds (approximate time, default {SYNC_SLOP})")
    p.add_argument("--queue-size", type=int, default=SYNC_QUEUE_SIZE,
                   help=f"synchronizer queue (default {SYNC_QUEUE_SIZE})")
    p.add_argument("--force", action="store_true", help="replace an existing OUT")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_bag_encode)

    p = bsub.add_parser("decode", help="compressed bag -> raw-image bag, PNG frames, a review video or "
                                       "a Foxglove MCAP (hybrid streams)")
    p.add_argument("inp", metavar="IN", help="bag with an mm_compress_ros/msg/EncodedFrame topic")
    p.add_argument("out", metavar="OUT_BAG", nargs="?", help="output bag folder (sensor_msgs/Image)")
    p.add_argument("--frames", metavar="DIR", help="write DIR/rgb/NNNN.png, DIR/thermal/NNNN.png, DIR/frames.csv")
    p.add_argument("--video", metavar="FILE.mp4", help="write a side-by-side RGB | thermal video")
    p.add_argument("--foxglove", metavar="FILE.mcap",
                   help="hybrid streams: write an MCAP file for Foxglove / Lichtblick, the reference layer as "
                        "foxglove_msgs/msg/CompressedVideo (not re-encoded), the other modality as sensor_msgs/Image")
    p.add_argument("--encoded-topic", help="default: the bag's EncodedFrame topic")
    p.add_argument("--rgb-topic", help="decoded RGB topic (default: the one bag encode read, else /rgb/image)")
    p.add_argument("--thermal-topic", help="decoded thermal topic (default: as encoded, else /thermal/image)")
    p.add_argument("--model", help="model name (default: the one the packets name)")
    p.add_argument("--weights", help="explicit .safetensors file")
    p.add_argument("--device", default="cpu", help="cpu (default; decodes streams from any encoder), cuda, auto")
    p.add_argument("--storage", default="mcap", choices=STORAGES, help="OUT_BAG storage (default mcap)")
    p.add_argument("--fps", type=float, help="video frame rate (default: from the stamps)")
    p.add_argument("--video-codec", default="auto", choices=["auto", "libx264", "mpeg4"])
    add_restore_args(p)
    p.add_argument("--force", action="store_true", help="replace an existing output")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_bag_decode)

    p = bsub.add_parser("info", help="per-topic counts, bitrate over time, key frames")
    p.add_argument("bag")
    p.add_argument("--bin", type=float, default=1.0, help="bitrate bin in seconds (default 1)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_bag_info)

    p = sub.add_parser("record", help="record live ROS 2 topics to a bag (rclpy + rosbags; no rosbag2 needed)")
    p.add_argument("out", metavar="OUT", help="output bag folder (must not exist)")
    p.add_argument("--topics", nargs="+", required=True, help="topics to record (the encoded stream, images, ...)")
    p.add_argument("--duration", type=float, default=0.0, help="stop after S seconds (default: until Ctrl-C)")
    p.add_argument("--storage", default="mcap", choices=STORAGES, help="default mcap")
    p.add_argument("--discovery-timeout", type=float, default=0.0,
                   help="fail if a topic has not appeared after S seconds (default: wait)")
    p.add_argument("--force", action="store_true", help="replace an existing OUT")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_record)
