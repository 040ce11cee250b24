"""Rate-distortion and speed of the profiles: hybrid (RGB as H.264 / H.265, thermal learned given it)
against the fully learned profile and x265 low-delay P, on m3svd_seq.

    .venv/bin/python benchmarks/profiles.py --frames 10 --quality 1 3 6 --profiles h264 h265

The hybrid points are measured in this run (encoder and decoder in one process, one codec thread,
the frames of every sequence as one stream with GOP --gop). The fully learned profile and the x265
anchors are read from docs/results/rd.json (`make results`: the same frames, model and GOP; the
learned profile's computation is unchanged by the reference layer); the script refuses a rd.json
made on other frames or with another model. Speed: medians per pair of encode and decode (both
modalities), and the standard layer alone (libavcodec encode + decode of the RGB) in the same run.

Writes docs/results/profiles.json and docs/results/profiles_rd.png. BD-rates: per modality (bits
of that modality against its PSNR) and for the pair (bits of both against the mean of the two PSNRs).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mm_compress_ros.codec.reference import reference_qp  # noqa: E402
from mm_compress_ros.codec.stream import codec_threads  # noqa: E402,F401
from mm_compress_ros.codec.videocodec import LowDelayEncoder, VideoDecoder  # noqa: E402
from mm_compress_ros.codec.zoo import load_model  # noqa: E402
from mm_compress_ros.eval.bdrate import BDError, bd_rate  # noqa: E402
from mm_compress_ros.eval.learned import run_sequence  # noqa: E402
from mm_compress_ros.eval.metrics import psnr  # noqa: E402
from mm_compress_ros.eval.sequences import load_sequences  # noqa: E402

MODS = ("rgb", "thermal")


def measure_profile(model, seqs, codec: str, quality: int, gop: int) -> dict:
    bits = {m: [] for m in MODS}
    qual = {m: [] for m in MODS}
    enc_s, dec_s, layer_s = [], [], []
    for seq in seqs:
        for i, r in enumerate(run_sequence(model, seq.rgb, seq.thermal, quality, gop, reference_codec=codec)):
            enc_s.append(r.encode_s)
            dec_s.append(r.decode_s)
            for m in MODS:
                src = getattr(seq, m)[i]
                bits[m].append(r.bits[m] / src.size * (3 if src.ndim == 3 else 1))  # bpp
                qual[m].append(psnr(src, r.decoded[m]))
        if codec != "learned":  # the standard layer alone, same frames, same QP
            enc, dec = LowDelayEncoder(codec, "software"), VideoDecoder(codec)
            for i, img in enumerate(seq.rgb):
                t0 = time.perf_counter()
                dec.decode(enc.encode(img, reference_qp(quality, model.levels), i % gop == 0), img.shape[:2], 3)
                layer_s.append(time.perf_counter() - t0)
    point = {"quality": quality, "pairs": len(enc_s),
             "encode_s_median": statistics.median(enc_s), "decode_s_median": statistics.median(dec_s)}
    if layer_s:
        point["standard_layer_s_median"] = statistics.median(layer_s)
        point["reference_qp"] = reference_qp(quality, model.levels)
    for m in MODS:
        point[m] = {"bpp": float(np.mean(bits[m])), "psnr": float(np.mean(qual[m]))}
    return point


def pair_curve(points):
    """(bits per RGB pixel of the pair, mean PSNR of the two modalities) per point."""
    return ([p["rgb"]["bpp"] + p["thermal"]["bpp"] for p in points],
            [(p["rgb"]["psnr"] + p["thermal"]["psnr"]) / 2 for p in points])


def bd_table(points_by_name: dict, anchor: str) -> dict:
    out = {}
    a = points_by_name[anchor]
    for name, pts in points_by_name.items():
        if name == anchor:
            continue
        row = {}
        for m in MODS:
            try:
                row[m] = bd_rate([p[m]["bpp"] for p in a], [p[m]["psnr"] for p in a],
                                 [p[m]["bpp"] for p in pts], [p[m]["psnr"] for p in pts])
            except BDError as e:
                row[m] = f"n/a ({e})"
        try:
            row["pair"] = bd_rate(*pair_curve(a), *pair_curve(pts))
        except BDError as e:
            row["pair"] = f"n/a ({e})"
        out[name] = row
    return out


def plot(points_by_name: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for name, pts in points_by_name.items():
        pts = sorted(pts, key=lambda p: p["rgb"]["bpp"] + p["thermal"]["bpp"])
        for ax, m in zip(axes, MODS):
            ax.plot([p[m]["bpp"] for p in pts], [p[m]["psnr"] for p in pts], "o-", label=name)
        x, y = pair_curve(pts)
        axes[2].plot(x, y, "o-", label=name)
    for ax, title in zip(axes, ("RGB", "thermal", "pair (bits of both / RGB pixels, mean PSNR)")):
        ax.set_title(title)
        ax.set_xlabel("bits per pixel")
        ax.set_ylabel("PSNR (dB)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("m3svd_seq, GOP 10: profiles against x265 low-delay P")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "m3svd_seq"))
    ap.add_argument("--frames", type=int, default=10)
    ap.add_argument("--quality", type=int, nargs="+", default=[1, 3, 6])
    ap.add_argument("--gop", type=int, default=10)
    ap.add_argument("--profiles", nargs="+", default=["h264", "h265"], choices=["h264", "h265", "learned"])
    ap.add_argument("--rd-json", default=str(REPO / "docs" / "results" / "rd.json"))
    ap.add_argument("--out", default=str(REPO / "docs" / "results" / "profiles.json"))
    ap.add_argument("--plot", default=str(REPO / "docs" / "results" / "profiles_rd.png"))
    args = ap.parse_args(argv)

    import torch
    torch.set_num_threads(1)
    model = load_model("mmvc", device="cpu")
    seqs = load_sequences(args.data, frames=args.frames)
    rd = json.loads(Path(args.rd_json).read_text())
    if rd["model"]["sha256"] != model.sha256 or rd["run"]["frames_per_sequence"] != args.frames:
        raise SystemExit(f"{args.rd_json} was made with another model or other frames; run `make results` first")
    points = {}
    for name, key in (("x265 low-delay P", "x265-video"), ("learned (mmvc-video)", "mmvc-video")):
        points[name] = [p for p in rd["codecs"][key]["points"]
                        if key != "mmvc-video" or p["setting"] in args.quality]
    t0 = time.time()
    for codec in args.profiles:
        name = f"hybrid {codec}" if codec != "learned" else "learned (this run)"
        points[name] = []
        for q in args.quality:
            p = measure_profile(model, seqs, codec, q, args.gop)
            points[name].append(p)
            print(json.dumps({"profile": codec, **{k: v for k, v in p.items()}}), flush=True)
    bd = bd_table(points, "x265 low-delay P")
    bd_vs_learned = bd_table({k: v for k, v in points.items() if k != "x265 low-delay P"}, "learned (mmvc-video)")
    res = {"data": args.data, "frames_per_sequence": args.frames, "sequences": [s.name for s in seqs],
           "gop": args.gop, "model_sha256": model.sha256, "seconds": round(time.time() - t0),
           "command": "benchmarks/profiles.py " + " ".join(sys.argv[1:] if argv is None else argv),
           "points": points, "bd_rate_vs_x265_lowdelay_p": bd, "bd_rate_vs_learned_profile": bd_vs_learned}
    Path(args.out).write_text(json.dumps(res, indent=1))
    plot(points, Path(args.plot))
    print(json.dumps({"bd_rate_vs_x265_lowdelay_p": bd, "bd_rate_vs_learned_profile": bd_vs_learned}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
