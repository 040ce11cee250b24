"""``mm-compress``: encode, decode, inspect, train and evaluate without ROS.

Every expected failure (missing file, mismatched inputs, corrupt stream, unknown model) ends with
one line on stderr and exit status 2; a traceback means a bug.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .errors import CliError
from .options import add_restore_args, model_args, reference_args


def _expected_errors():
    from .codec.packet import PacketError
    from .codec.stream import InputError
    from .codec.videocodec import VideoCodecError
    from .codec.zoo import ModelError
    from .io.frames import FrameSourceError

    return (PacketError, InputError, ModelError, FrameSourceError, VideoCodecError, CliError, FileNotFoundError,
            IsADirectoryError, PermissionError)


def _load(args):
    from .codec.zoo import load_model

    return load_model(args.model, direction=args.direction, device=args.device,
                      path=getattr(args, "weights", None))


# -- encode / decode / info / models ---------------------------------------------------------

def cmd_encode(args) -> None:
    from tqdm import tqdm

    from .codec.stream import StreamEncoder
    from .codec.zoo import encoding_model
    from .io.frames import count_frames, iter_pairs

    from .io.frames import input_fps

    fps_source = "--fps"
    if args.fps is None:   # the input's own rate where it has one (a video), else 10 Hz, said in the summary
        args.fps = input_fps(args.rgb) or input_fps(args.thermal)
        fps_source = "input" if args.fps else "default (frame folders carry no rate: give --fps)"
        args.fps = args.fps or 10.0
    if args.target_kbps < 0 or args.fps <= 0:
        raise CliError("--target-kbps must be >= 0 and --fps positive")
    model = encoding_model(args.reference_codec, args.thermal_codec, args.model, args.direction, args.device,
                           args.weights)
    try:
        enc = StreamEncoder(model, quality=args.quality, gop=args.gop, reference_codec=args.reference_codec,
                            encoder=args.encoder, target_kbps=args.target_kbps, fps=args.fps,
                            thermal_codec=args.thermal_codec, reconstruct=bool(args.recon))
    except ValueError as exc:
        raise CliError(str(exc)) from None
    n = count_frames(args.rgb)
    if args.frames:
        n = min(n, args.frames)
    out = Path(args.out)
    from .errors import claim_output

    claim_output(out, args.force, "stream file")
    if args.recon:
        claim_output(args.recon, args.force, "reconstruction folder")
    tmp = out.with_name(out.name + ".part")
    out.parent.mkdir(parents=True, exist_ok=True)
    total = 0
    levels = []
    t0 = time.perf_counter()
    with open(tmp, "wb") as f:
        for i, (rgb, th) in enumerate(tqdm(iter_pairs(args.rgb, args.thermal), total=n, unit="pair",
                                           disable=args.quiet, desc="encode")):
            if args.frames and i >= args.frames:
                break
            pkt = enc.encode(rgb, th, stamp_ns=round(i * 1e9 / args.fps))
            levels.append(enc.quality)
            f.write(pkt)
            total += len(pkt)
            if args.recon:
                _write_pair(Path(args.recon), i, enc.last_pair())
    tmp.replace(out)
    dt = time.perf_counter() - t0
    print(json.dumps({"out": str(out), "frames": enc.frame_index, "bytes": total,
                      "seconds": round(dt, 2), "model": enc.model_id or None,
                      "direction": model.direction if model is not None else None,
                      "quality": levels[0] if levels else enc.quality,   # the first frame's, as `info` says
                      "quality_range": [min(levels), max(levels)] if levels else None,
                      "gop": args.gop, "profile": enc.profile,
                      "reference_codec": args.reference_codec, "thermal_codec": args.thermal_codec, "fps": args.fps,
                      "fps_from": fps_source,
                      "kbps": round(total * 8 / max(enc.frame_index, 1) * args.fps / 1000, 1),
                      "reference_encoder": enc.reference.encoder_name}))


def _write_pair(out: Path, n: int, pair) -> None:
    """DIR/rgb/NNNN.png and DIR/thermal/NNNN.png (16-bit thermal stays 16-bit)."""
    from .io.frames import write_rgb, write_thermal

    (out / "rgb").mkdir(parents=True, exist_ok=True)
    (out / "thermal").mkdir(parents=True, exist_ok=True)
    write_rgb(out / "rgb" / f"{n:04d}.png", pair.rgb[..., ::-1] if pair.rgb_format == "bgr8" else pair.rgb)
    write_thermal(out / "thermal" / f"{n:04d}.png", pair.thermal)


def cmd_decode(args) -> None:
    """Decodes every packet it can: a damaged packet is reported on one line (its frame index and
    why), the frames that depended on it are skipped up to the next key frame, everything else is
    written. Exit status 0 when nothing was lost, 3 when frames were lost (the summary counts them).
    The decoding policy (the model the stream names, each packet parsed once, waiting for a key
    frame) is :class:`~mm_compress_ros.link.pair_decoder.PairDecoder`, as in the decoder node."""
    from tqdm import tqdm

    from .codec.packet import PacketError, scan_stream
    from .errors import claim_output
    from .link.pair_decoder import PairDecoder

    path = Path(args.file)
    if not path.is_file():
        raise CliError(f"no such stream file: {path}")
    out = Path(args.out)
    claim_output(out, args.force, "output folder")
    data = path.read_bytes()
    dec = PairDecoder(args.model, args.direction, args.device, args.weights, restore=args.restore,
                      restore_weights=args.restore_weights)
    n = damaged = skipped = packets = 0
    last_index = None
    for offset, item in tqdm(scan_stream(data), unit="pair", disable=args.quiet, desc="decode"):
        packets += 1
        where = f"byte {offset}" + (f" (after frame {last_index})" if last_index is not None else "")
        res = dec.decode(item) if not isinstance(item, PacketError) else None
        if res is not None and res.header is not None:
            last_index = res.header.frame_index
            where = f"frame {last_index}"
        error = item if res is None else res.error
        if error is not None:
            damaged += 1
            print(f"mm-compress: {path.name}: {where}: {error}; skipping to the next key frame", file=sys.stderr)
            continue
        if res.pair is None:
            skipped += 1
            continue
        _write_pair(out, n, res.pair)
        n += 1
    if last_index is None:
        raise CliError(f"{path} holds no readable packet")
    (out / "rgb").mkdir(parents=True, exist_ok=True)
    (out / "thermal").mkdir(parents=True, exist_ok=True)
    lost = damaged + skipped
    print(json.dumps({"out": str(out), "frames": n, "packets": packets, "damaged": damaged,
                      "skipped_until_key_frame": skipped, "lost": lost, "restored": dec.counts.restored}))
    if lost:
        raise FramesLost(f"{lost} of {packets} frames lost ({damaged} damaged, {skipped} skipped until the next "
                         "key frame)")


class FramesLost(CliError):
    """Decoding finished, but some frames were lost (exit status 3)."""


def cmd_info(args) -> None:
    from .codec.packet import NO_MAX_ERROR, iter_stream, read_packet

    path = Path(args.file)
    if not path.is_file():
        raise CliError(f"no such stream file: {path}")
    frames = []
    with open(path, "rb") as f:
        for pkt in iter_stream(f):
            h, sections = read_packet(pkt)
            split = h.modality_bytes()
            frames.append({"index": h.frame_index, "type": h.frame_type_name, "bytes": len(pkt),
                           "rgb_bytes": split["rgb"], "thermal_bytes": split["thermal"], "level": h.quality,
                           "rgb_qp": h.reference_qp if h.reference_codec != "learned" else None,
                           "thermal_qp": h.thermal_qp if h.thermal_codec in ("h264", "h265") else None,
                           "thermal_max_error": None if h.thermal_max_error == NO_MAX_ERROR else h.thermal_max_error,
                           "sections": dict(zip((f"{r}_{n}" for r, n in h.layout), h.section_lengths))})
    if not frames:
        raise CliError(f"{path} holds no packets")
    h0 = read_packet(open(path, "rb").read(frames[0]["bytes"]))[0]
    print(json.dumps({
        "file": str(path), "model": h0.model_id, "weights": h0.model_hash.hex(), "direction": h0.direction,
        "quality": h0.quality, "quality_range": [min(f["level"] for f in frames), max(f["level"] for f in frames)],
        "profile": h0.profile, "reference_codec": h0.reference_codec,
        "thermal_codec": h0.thermal_codec,
        "rgb": {"width": h0.rgb_size[1], "height": h0.rgb_size[0], "format": h0.rgb_format},
        "thermal": {"width": h0.thermal_size[1], "height": h0.thermal_size[0], "format": h0.thermal_format},
        "frames": frames, "total_bytes": sum(fr["bytes"] for fr in frames),
        "rgb_bytes": sum(fr["rgb_bytes"] for fr in frames),
        "thermal_bytes": sum(fr["thermal_bytes"] for fr in frames),
        "key_frames": sum(fr["type"] == "key" for fr in frames),
        # the largest thermal error of any frame (thermal's own units: 16-bit counts for mono16), as the
        # encoder measured it; 0 is exact (lossless); None where it was not measured
        "thermal_max_error": max((fr["thermal_max_error"] for fr in frames if fr["thermal_max_error"] is not None),
                                 default=None),
    }, indent=1 if args.pretty else None))


def cmd_models(args) -> None:
    from .codec.zoo import list_models

    models = list_models()
    for m in models:
        if m.get("reference_input") != "blank":
            m["profiles"] = {c: t for c, t in _profiles(m["config"])}
    if args.json:
        print(json.dumps(models, indent=1))
        return
    if not models:
        print("no models found")
    for m in models:
        levels = m["config"]["levels"]
        kind = "  [evaluation baseline: dependent modality alone]" if m.get("reference_input") == "blank" else ""
        print(f"{m['name']:<12} {m['config']['direction']:<18} quality 1..{levels}  "
              f"{m['file_bytes'] / 1e6:.1f} MB  {m.get('summary', '')}{kind}")
        if not kind:
            for codec, text in _profiles(m["config"]):
                print(f"    --reference-codec {codec:<8} {text}")


def _profiles(config: dict) -> list[tuple[str, str]]:
    """The profiles a streaming model offers (`mm-compress models`): a real-time model (arch rt)
    codes only the dependent modality, so it has no fully learned profile."""
    from .codec.profiles import DEFAULT_REFERENCE_CODEC, reference_qp

    levels = config["levels"]
    qps = f"QP {reference_qp(1, levels)}..{reference_qp(levels, levels)}"
    rows = [("h264", f"hybrid: RGB as H.264 ({qps}), thermal learned given it"),
            ("h265", f"hybrid: RGB as H.265 ({qps}), thermal learned given it")]
    if config.get("arch", "mmvc") == "mmvc":
        rows.append(("learned", "fully learned: both modalities by the model"))
    return [(c, t + ("  (default)" if c == DEFAULT_REFERENCE_CODEC else "")) for c, t in rows]


# -- training ----------------------------------------------------------------------------------

def cmd_train(args) -> None:
    from .codec.device import resolve_device
    from .codec.multimodal import ModelConfig
    from .io.frames import default_data_root
    from .train.data import load_training_set
    from .train.trainer import TrainConfig, Trainer

    if args.arch == "rt":
        from .codec.rtcodec import RTConfig
        from .train.rt import RTTrainer as Trainer  # noqa: F811
    roots = [Path(p) for p in args.data] if args.data else None
    if not roots:
        root = default_data_root()
        if root is None:
            raise CliError("no data given and ../shared/data not found: pass --data DIR [DIR ...]")
        roots = ([root / "m3svd_video", root / "m3svd_thermal_video"] if args.arch == "rt"
                 else [root / "roadscene", root / "m3svd_video"])
    # the defaults of each architecture (docs/training.md): the real-time codec trains on 256x256
    # clips of a key frame and 2 predicted frames, against H.265/H.264-coded references
    rt = args.arch == "rt"
    for name, default in (("crop", 256 if rt else 128), ("chain", 2 if rt else 1), ("lr", 5e-4 if rt else 1e-4),
                          ("reference_codec", "h265,h264" if rt else "learned")):
        if getattr(args, name) is None:
            setattr(args, name, default)
    data = load_training_set(roots, limit=args.limit)
    print(f"training data: {data.describe()}", file=sys.stderr)
    mcfg = (RTConfig(direction=args.direction) if args.arch == "rt"
            else ModelConfig(direction=args.direction, N=args.N, M=args.M))
    cfg = TrainConfig(stage=args.stage, steps=args.steps, batch=args.batch, crop=args.crop, lr=args.lr,
                      decay_at=args.decay_at, chain=args.chain, blank_reference=args.blank_reference,
                      still_every=args.still_every, downscale=args.downscale, seed=args.seed,
                      blank_share=args.blank_share, reference_codecs=tuple(args.reference_codec.split(",")),
                      threads=args.threads, save_every=args.save_every, log_every=args.log_every, model=mcfg)
    try:
        trainer = Trainer(cfg, data, Path(args.run), device=resolve_device(args.device),
                          init_weights=args.init)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    trainer.run(progress=not args.quiet)
    print(json.dumps({"run": args.run, "step": trainer.step, "seconds": round(trainer.seconds)}))


def cmd_export(args) -> None:
    from .train.assemble import AssembleError, assemble
    from .codec.zoo import export_model, models_dir

    try:
        net, card = assemble([Path(r) for r in args.run], name=args.name, summary=args.summary,
                             data_note=args.data_note)
    except AssembleError as exc:
        raise CliError(str(exc)) from None
    if args.schedule:
        card["training"]["schedule"] = args.schedule
    out = Path(args.out) if args.out else models_dir() / f"{args.name}-{net.cfg.direction}.safetensors"
    card = export_model(net, out, card)
    print(json.dumps({"file": str(out), "sha256": card["sha256"], "bytes": card["file_bytes"]}))


# -- argument parsing --------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    from .codec.profiles import DEFAULT_DIRECTION, DEFAULT_GOP

    ap = argparse.ArgumentParser(prog="mm-compress", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("encode", help="frame folders or videos -> stream file")
    p.add_argument("--rgb", required=True, help="folder of RGB frames (sorted by name) or a video file")
    p.add_argument("--thermal", required=True, help="folder of thermal frames or a video file")
    p.add_argument("--out", required=True, help="stream file to write")
    p.add_argument("--quality", type=int, default=None,
                   help="1 = smallest stream, up to the model's levels (`mm-compress models`); default: "
                        "the model's middle level")
    p.add_argument("--gop", type=int, default=DEFAULT_GOP,
                   help=f"key frame every N frames; 1 = all intra (default {DEFAULT_GOP})")
    p.add_argument("--frames", type=int, default=0, help="stop after N pairs (default: all)")
    p.add_argument("--fps", type=float, default=None,
                   help="frame rate of the input (capture stamps; bitrates and --target-kbps use it); default: a "
                        "video's own rate, 10 for frame folders")
    p.add_argument("--recon", metavar="DIR", help="also write the encoder's own reconstruction (what a decoder "
                                                  "outputs) as DIR/rgb/NNNN.png, DIR/thermal/NNNN.png")
    p.add_argument("--force", action="store_true", help="replace an existing --out (and --recon)")
    p.add_argument("--quiet", action="store_true")
    model_args(p, by_profile=True)
    reference_args(p)
    p.set_defaults(func=cmd_encode)

    p = sub.add_parser("decode", help="stream file -> DIR/rgb/NNNN.png, DIR/thermal/NNNN.png (exit 3: frames lost)")
    p.add_argument("file")
    p.add_argument("--out", required=True)
    p.add_argument("--force", action="store_true", help="replace an existing, non-empty --out folder")
    p.add_argument("--quiet", action="store_true")
    model_args(p, from_stream=True)
    add_restore_args(p)
    p.set_defaults(func=cmd_decode)

    p = sub.add_parser("info", help="per-frame packet sizes and frame types as JSON")
    p.add_argument("file")
    p.add_argument("--pretty", action="store_true")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("models", help="list shipped models and their quality levels")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("train", help="train (or resume) a model; checkpoints in --run")
    p.add_argument("--data", nargs="+", help="data folders (default: ../shared/data roadscene + m3svd_video; "
                                             "--arch rt: m3svd_video + m3svd_thermal_video)")
    p.add_argument("--run", required=True, help="run folder: checkpoint.safetensors/json, train.log")
    p.add_argument("--arch", default="mmvc", choices=["mmvc", "rt"],
                   help="mmvc: the first design (all four codecs); rt: the real-time dependent codec "
                        "of the hybrid profile (integer decoder, skip mode, 64 levels; stage all, "
                        "--reference-codec h264/h265)")
    p.add_argument("--stage", default="all", choices=["ref", "dep", "video", "all"])
    p.add_argument("--direction", default=DEFAULT_DIRECTION, choices=["thermal_given_rgb", "rgb_given_thermal"])
    p.add_argument("--steps", type=int, default=20000, help="total steps (a resumed run continues to this)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--crop", type=int, default=None, help="crop size (default 128; --arch rt: 256)")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default 1e-4; --arch rt: 5e-4)")
    p.add_argument("--decay-at", type=float, default=0.85,
                   help="fraction of --steps after which the learning rate drops 10x (default 0.85)")
    p.add_argument("--chain", type=int, default=None,
                   help="predicted frames after the key frame in each sample (stages video, all; "
                        "more than 1 trains against drift over a GOP; default 1; --arch rt: 2)")
    p.add_argument("--blank-reference", action="store_true",
                   help="stage dep: replace the reference modality by a constant image (trains the "
                        "single-modality baseline that isolates the cross-modal gain)")
    p.add_argument("--reference-codec", default=None, metavar="LIST",
                   help="stages dep, video: comma-separated reference codecs cycled step by step "
                        "(learned, h264, h265); h264/h265 train the dependent codec on libavcodec's "
                        "decode of the reference at each level's QP, as the hybrid profile codes it "
                        "(default learned; --arch rt: h265,h264)")
    p.add_argument("--still-every", type=int, default=4,
                   help="stages ref, dep, all: every n-th step also codes a batch of still pairs as key "
                        "frames (1: every step; the stills carry more fine texture than the lossy "
                        "video clips; default 4)")
    p.add_argument("--blank-share", type=float, default=0.25, metavar="F",
                   help="share of training clips drawn from thermal-only sequences, coded against a "
                        "blank reference (when the data has both kinds; default 0.25)")
    p.add_argument("--downscale", type=float, default=1.0, metavar="MIN",
                   help="crop windows up to 1/MIN times larger, shrunk by area averaging: sharper edges "
                        "per pixel, fewer block artifacts of lossy training data (default 1: off)")
    p.add_argument("--N", type=int, default=64)
    p.add_argument("--M", type=int, default=96)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--limit", type=int, default=None, help="use at most N frames per folder/clip")
    p.add_argument("--init", help="initial weights (.safetensors model or checkpoint) for a new run")
    p.add_argument("--save-every", type=int, default=200)
    p.add_argument("--log-every", type=int, default=25)
    p.add_argument("--device", default="auto")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("export", help="checkpoint(s) -> models/<name>-<direction>.safetensors + card")
    p.add_argument("run", nargs="+", help="run folder(s); a later run's trained stage replaces those "
                                         "parts of the earlier ones (staged training, see docs/training.md)")
    p.add_argument("--name", default="mmvc")
    p.add_argument("--out")
    p.add_argument("--summary", default="")
    p.add_argument("--schedule", help="how the runs were scheduled, for the card (e.g. restarts with "
                                      "another --lr or --chain, which each run's entry cannot show)")
    p.add_argument("--data-note", default="roadscene + m3svd_video (../shared/data)")
    p.set_defaults(func=cmd_export)

    import importlib.util

    # evaluation and bag tools register their own sub-commands
    if importlib.util.find_spec("mm_compress_ros.eval.report"):
        from .eval.report import add_eval_parser
        add_eval_parser(sub)
    if importlib.util.find_spec("mm_compress_ros.bag.cli"):
        from .bag.cli import add_bag_parsers
        add_bag_parsers(sub)
    return ap


def _quiet_stdout() -> None:
    """After a broken pipe: point stdout at /dev/null so that the interpreter's final flush is quiet."""
    import os

    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except OSError:
        pass


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except BrokenPipeError:   # `mm-compress info s.mmc | head`: the reader left; not an error of ours
        _quiet_stdout()
        return 0
    except _expected_errors() as exc:
        if isinstance(exc, FramesLost):
            print(f"mm-compress: {exc}", file=sys.stderr)
            return 3
        print(f"mm-compress: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mm-compress: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    # `python -m mm_compress_ros.cli`: every error class comes from another module (CliError from
    # mm_compress_ros.errors), so this copy of the module catches what the others raise
    sys.exit(main())
