"""Command-line options shared by the commands of ``mm-compress`` (cli.py) and the sub-commands
that bag/cli.py and eval/report.py register: one definition each, imported by all of them (this
module imports none of them)."""

from __future__ import annotations


def model_args(p, from_stream: bool = False, by_profile: bool = False):
    from .codec.zoo import DEFAULT_DIRECTION, DEFAULT_HYBRID_MODEL, DEFAULT_MODEL

    if by_profile:    # an encoder: the model of the --reference-codec profile, unless given
        p.add_argument("--model", default=None,
                       help=f"shipped model name (see `mm-compress models`; default: the profile's: none for a "
                            f"standard thermal layer (the default), {DEFAULT_HYBRID_MODEL} for --thermal-codec learned, "
                            f"{DEFAULT_MODEL} for --reference-codec learned)")
        p.add_argument("--direction", default=DEFAULT_DIRECTION, choices=["thermal_given_rgb", "rgb_given_thermal"],
                       help="which modality is coded with the other as context")
    elif from_stream:   # a decoder: the model (and direction) the stream names, unless given
        p.add_argument("--model", default=None,
                       help="shipped model name (default: the one the stream's packets name)")
        p.add_argument("--direction", default=None, choices=["thermal_given_rgb", "rgb_given_thermal"],
                       help="which modality is coded with the other as context (default: the stream's)")
    else:
        p.add_argument("--model", default=DEFAULT_MODEL, help="shipped model name (see `mm-compress models`)")
        p.add_argument("--direction", default=DEFAULT_DIRECTION, choices=["thermal_given_rgb", "rgb_given_thermal"],
                       help="which modality is coded with the other as context")
    p.add_argument("--device", default="auto", help="auto, cuda or cpu")
    p.add_argument("--weights", help="explicit .safetensors file (its .json card beside it)")


def reference_args(p) -> None:
    """--reference-codec, --thermal-codec, --encoder and --target-kbps (encode, bag encode)."""
    from .codec.packet import REFERENCE_CODECS, THERMAL_CODECS
    from .codec.profiles import DEFAULT_REFERENCE_CODEC, DEFAULT_THERMAL_CODEC
    from .codec.videocodec import ENCODERS

    p.add_argument("--reference-codec", default=DEFAULT_REFERENCE_CODEC, choices=list(REFERENCE_CODECS),
                   help="how the reference modality (RGB) is coded: h264/h265 (a standard low-delay stream "
                        f"any player decodes) or learned (fully learned profile); default {DEFAULT_REFERENCE_CODEC}")
    p.add_argument("--thermal-codec", default=DEFAULT_THERMAL_CODEC, choices=["auto", *THERMAL_CODECS],
                   help="how thermal is coded: h264/h265 (a standard stream of its own; 16-bit thermal: h265 at "
                        "12 bits, counts come back as 16-bit), lossless (every value exact, 16-bit too), auto "
                        "(h264 for 8-bit thermal, h265 for 16-bit): the standard profile, no model; or learned "
                        f"(the model, given the decoded RGB: the hybrid profile); default {DEFAULT_THERMAL_CODEC}")
    p.add_argument("--encoder", default="auto", choices=list(ENCODERS),
                   help="h264/h265 encoder: auto (NVENC when present, else libx264/libx265), software, nvenc")
    p.add_argument("--target-kbps", type=float, default=0.0, metavar="KBPS",
                   help="target-bitrate mode: kbit/s of the pair (both layers' quality moves at every key "
                        "frame; --quality is the start); 0 = constant quality (default)")


def add_restore_args(p) -> None:
    """--restore / --no-restore and --restore-weights of every command that decodes for people or
    perception (the default: codec.profiles.DEFAULT_RESTORE)."""
    import argparse

    from .codec.profiles import DEFAULT_RESTORE

    p.add_argument("--restore", action=argparse.BooleanOptionalAction, default=DEFAULT_RESTORE,
                   help="restore the decoded pictures with the joint restoration (zero bits: the stream is "
                        f"unchanged; docs/results.md, 'Joint restoration'); default {'on' if DEFAULT_RESTORE else 'off'}")
    p.add_argument("--restore-weights", default=None, metavar="FILE",
                   help="the restoration's weights (.safetensors; default: the shipped models/restore.safetensors)")
