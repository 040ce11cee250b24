"""``mm-compress eval``, the command line: rate-distortion of the project's codec against x265 and
JPEG anchors.

Checks everything that can be known before coding (a model that cannot serve the profile, missing
data, bad levels or settings), loads the sequences, runs the engine (eval/engine.py: what is
measured, and how) and writes rd.json, rd.md and rd_<modality>.png (eval/tables.py) to ``--out``.
The profile is picked as ``mm-compress encode`` picks it: by default the product's default
(``codec.profiles.DEFAULT_REFERENCE_CODEC`` / ``DEFAULT_THERMAL_CODEC``), ``--thermal-codec
learned`` the hybrid profile (model mmrt), ``--reference-codec learned`` the learned profile (model
mmvc), ``--model`` another model of that profile.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

from ..errors import CliError
from . import anchors as anc
from .engine import MODES, evaluate
from .tables import MODALITIES, write_outputs


def _int_list(values, what, lo, hi):
    for v in values:
        if not lo <= v <= hi:
            raise CliError(f"{what} {v} is outside {lo}..{hi}")
    return values


def load_baseline(name, direction, device="auto", path=None):
    """A single-modality baseline model: one whose card says ``"reference_input": "blank"``."""
    from ..codec.zoo import load_model

    try:
        model = load_model(name or "", direction=direction, device=device, path=path, baseline_ok=True)
    except ValueError as exc:
        raise CliError(f"baseline: {exc}") from None
    if model.card.get("reference_input") != "blank":
        raise CliError(f"baseline {model.name!r} is not a single-modality model "
                       "(its card lacks \"reference_input\": \"blank\"; see docs/training.md)")
    return model


def anchor_settings(args) -> dict:
    """The values of every anchor setting's option (see :func:`add_setting_options`) in ``args``."""
    return {s.option: getattr(args, s.option) for s in anc.SETTINGS}


def add_setting_options(p) -> None:
    """One option per anchor setting (--qp, --jpeg-quality), each taking one or more values."""
    for s in anc.SETTINGS:
        p.add_argument("--" + s.option.replace("_", "-"), type=int, nargs="+", default=list(s.defaults),
                       help=s.help or None)


def thermal_choice(reference_codec: str, thermal_codec: str | None) -> str:
    """``--thermal-codec`` as given, else the profile's: learned for ``--reference-codec learned``
    (the learned profile codes both cameras with the model), else ``DEFAULT_THERMAL_CODEC``."""
    from ..codec.profiles import DEFAULT_THERMAL_CODEC

    if thermal_codec is not None:
        return thermal_codec
    return "learned" if reference_codec == "learned" else DEFAULT_THERMAL_CODEC


def load_profile(args):
    """(model or None, (reference codec, thermal codec)) of the profile ``args`` ask for, checked
    as an encoder of it would check it (a model that cannot serve it, levels outside its range):
    CliError with one line before anything is coded."""
    from ..codec.profiles import STANDARD_LEVELS
    from ..codec.stream import StreamEncoder, check_profile
    from ..codec.zoo import encoding_model

    ref, th = args.reference_codec, thermal_choice(args.reference_codec, args.thermal_codec)
    hint = " (pass --no-model to evaluate the anchors only)"
    try:
        check_profile(ref, th)
        model = encoding_model(ref, th, args.model, args.direction, args.device, args.weights)
    except ValueError as exc:  # ModelError, not a profile, bad device
        raise CliError(f"{exc}{hint}") from None
    levels = model.levels if model is not None else STANDARD_LEVELS
    if args.quality:
        _int_list(args.quality, "quality", 1, levels)
    try:   # what an encoder of this profile refuses (e.g. a dependent-only model for the learned profile)
        StreamEncoder(model, quality=(args.quality or [1])[0], gop=args.gop, reference_codec=ref,
                      encoder="software", thermal_codec=th, reconstruct=False)
    except ValueError as exc:
        raise CliError(f"{exc}{hint}") from None
    return model, (ref, th)


def cmd_eval(args) -> None:
    from .sequences import find_sequences, load_sequences, parse_crop

    if args.frames < 0:
        raise CliError(f"--frames must be >= 0, got {args.frames}")
    if args.gop < 1 or args.keyint < 1:
        raise CliError("--gop and --keyint must be >= 1")
    for s in anc.SETTINGS:
        _int_list(getattr(args, s.option), s.what, s.lo, s.hi)
    crop = parse_crop(args.crop)
    find_sequences(args.data)   # a missing or empty data folder: before any model is loaded
    model, profile = None, None
    if not args.no_model:
        model, profile = load_profile(args)
    baseline = None
    if args.baseline or args.baseline_weights:
        baseline = load_baseline(args.baseline, args.direction, args.device, args.baseline_weights)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    seqs = load_sequences(args.data, frames=args.frames, crop=crop, sequences=args.sequences)
    t0 = time.perf_counter()
    try:
        result = evaluate(seqs, anchors=args.anchors, settings=anchor_settings(args),
                          model=model, qualities=args.quality, modes=args.modes, gop=args.gop,
                          keyint=args.keyint, with_msssim=not args.no_msssim, progress=not args.quiet,
                          cache_dir=Path(args.cache) if args.cache else None, baseline=baseline,
                          profile=profile)
    except anc.AnchorError as exc:
        raise CliError(str(exc)) from None
    result["run"] = {"data": str(args.data), "frames_per_sequence": args.frames or "all", "crop": args.crop,
                     "seconds": round(time.perf_counter() - t0, 1), "python": platform.python_version(),
                     "machine": platform.machine(), "argv": sys.argv[1:]}
    files = write_outputs(result, Path(args.out))
    summary = {m: {n: {k: (round(v, 2) if isinstance(v, float) else v) for k, v in row.items()
                       if k.startswith("bd_rate_psnr") or k.startswith("bpp_at")}
                   for n, row in result["bd"][m].items()} for m in MODALITIES}
    print(json.dumps({**files, "profile": result.get("profile"), "seconds": result["run"]["seconds"],
                      "points_from_cache": result["points_from_cache"], "bd": summary}))


def add_eval_parser(subparsers) -> None:
    from ..codec.packet import REFERENCE_CODECS, THERMAL_CODECS
    from ..codec.profiles import DEFAULT_REFERENCE_CODEC, DEFAULT_THERMAL_CODEC
    from ..codec.zoo import DEFAULT_DIRECTION, DEFAULT_HYBRID_MODEL, DEFAULT_MODEL

    p = subparsers.add_parser(
        "eval", help="rate-distortion table + plots: the codec (default profile) against x265 and JPEG anchors",
        description="Codes every sequence of DATA with each codec and setting, decodes it, and writes "
                    "rd.json, rd.md and rd_<modality>.png to --out. Our codec is measured in the profile "
                    "--reference-codec / --thermal-codec / --model pick, as `mm-compress encode` takes them "
                    f"(default: the default profile, RGB {DEFAULT_REFERENCE_CODEC}, thermal {DEFAULT_THERMAL_CODEC}).")
    p.add_argument("data", help="sequences: DATA/<seq>/{rgb,thermal}/ (or .mp4), or one sequence folder")
    p.add_argument("--out", default="runs/eval", help="output folder (default runs/eval)")
    p.add_argument("--frames", type=int, default=0, help="first N frames of each sequence (default all)")
    p.add_argument("--sequences", nargs="+", help="only these sequence names")
    p.add_argument("--crop", help="centre crop WxH of every frame, e.g. 256x192")
    p.add_argument("--reference-codec", default=DEFAULT_REFERENCE_CODEC, choices=list(REFERENCE_CODECS),
                   help=f"how the profile codes RGB: h264/h265 (a standard low-delay stream) or learned (the "
                        f"learned profile); default {DEFAULT_REFERENCE_CODEC}")
    p.add_argument("--thermal-codec", default=None, choices=["auto", *THERMAL_CODECS],
                   help="how the profile codes thermal: auto/h264/h265/lossless (the standard profile, no "
                        "model), learned (the model given the decoded RGB: the hybrid profile); default "
                        f"learned with --reference-codec learned, else {DEFAULT_THERMAL_CODEC}")
    p.add_argument("--quality", type=int, nargs="+",
                   help="the profile's quality levels (default: all of a model with up to 8; of 64: 1 22 43 64)")
    p.add_argument("--modes", nargs="*", default=["image", "video"], choices=list(MODES),
                   help="the model's modes: image (all key frames) and video (--gop)")
    p.add_argument("--gop", type=int, default=10, help="GOP of the model's video mode (default 10)")
    p.add_argument("--anchors", nargs="*", default=list(anc.ANCHORS), choices=list(anc.ANCHORS),
                   help="anchors to run (default all; none with an empty list)")
    add_setting_options(p)
    p.add_argument("--keyint", type=int, default=10, help="key frame interval of x265-video (default 10)")
    p.add_argument("--no-model", action="store_true", help="anchors only (no profile of ours)")
    p.add_argument("--no-msssim", action="store_true", help="skip MS-SSIM (faster)")
    p.add_argument("--model", default=None,
                   help=f"shipped model name (default: the profile's: none for the standard profile, "
                        f"{DEFAULT_HYBRID_MODEL} for --thermal-codec learned, {DEFAULT_MODEL} for --reference-codec learned)")
    p.add_argument("--direction", default=DEFAULT_DIRECTION, choices=["thermal_given_rgb", "rgb_given_thermal"])
    p.add_argument("--weights", help="explicit .safetensors model file (its .json card beside it; a profile "
                                     "with a learned layer)")
    p.add_argument("--baseline", help="shipped single-modality baseline model (card reference_input: "
                                      "blank), evaluated in image mode, e.g. mmvc-single")
    p.add_argument("--baseline-weights", help="explicit .safetensors file of the baseline")
    p.add_argument("--device", default="auto", help="auto, cuda or cpu")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--cache", help="folder of measured points to reuse and extend (same frames, same settings)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_eval)
