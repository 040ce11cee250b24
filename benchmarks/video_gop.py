#!/usr/bin/env python3
"""Video mode against all-intra (issue 4): per-frame bits and PSNR, timing, drift over long GOPs.

For every sequence of DATA the project's codec codes the pairs as one stream (real packets,
decoded by ``StreamDecoder``) once as all-intra (GOP 1) and once per GOP in ``--gops``. Reported,
per modality: mean bpp and PSNR per GOP, per-frame bits and PSNR averaged over sequences by
frame index, encode and decode time per pair (key and predicted frames separately), and optionally
x265 low-delay P per frame (``--x265-qp``) for reference.

m3svd_seq sequences have 20 frames, so GOP 30 and GOP 100 both mean "one key frame, then 19
predicted frames" there; use paired clips (``--data ../shared/data/m3svd_video --frames 100``) to
see drift over longer GOPs (those clips are lossy MPEG-4, fine for drift, not for quality claims).

    .venv/bin/python benchmarks/video_gop.py                      # m3svd_seq, model mmvc, middle level
    .venv/bin/python benchmarks/video_gop.py --weights /tmp/m.safetensors --crop 256x192 --frames 12
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from mm_compress_ros.eval.metrics import bpp, psnr  # noqa: E402

MODALITIES = ("thermal", "rgb")


def _by_index(rows: list[dict], key: str, n: int) -> list[float | None]:
    out = []
    for i in range(n):
        vals = [r[key] for r in rows if r["index"] == i]
        out.append(float(np.mean(vals)) if vals else None)
    return out


def run(seqs, model, quality: int, gops: list[int], x265_qp: int | None = None, keyint: int = 10,
        progress: bool = True, cache_dir: Path | None = None) -> dict:
    """Codes ``seqs`` with GOP 1 and every GOP of ``gops``; with ``cache_dir``, points that
    ``mm-compress eval`` measured on the same frames (same model, level and GOP) are reused."""
    from tqdm import tqdm

    from mm_compress_ros.eval.cache import frames_digest
    from mm_compress_ros.eval.engine import Job, measure_point

    gops = sorted(set([1] + list(gops)))
    n_max = max(len(s) for s in seqs)
    result = {"quality": quality, "gops": gops, "model": {"name": model.name, "direction": model.direction,
                                                          "sha256": model.sha256},
              "sequences": [{"name": s.name, "frames": len(s)} for s in seqs], "gop": {}, "same_as": {}}
    digest = frames_digest(seqs) if cache_dir is not None else None
    measured: dict[int, int] = {}  # effective GOP -> the GOP it was measured as
    for g in tqdm(gops, desc="video_gop", unit="gop", disable=not progress):
        eff = min(g, n_max)  # a GOP at least as long as the sequences: one key frame, then predicted frames
        if eff in measured:
            result["gop"][str(g)] = result["gop"][str(measured[eff])]
            result["same_as"][str(g)] = measured[eff]
            continue
        measured[eff] = g
        job = Job(f"{model.name}-gop{g}", "model", quality, "level", gop=g)
        point, _ = measure_point(job, seqs, model=model, cache_dir=cache_dir, data_digest=digest)
        f0 = point["thermal"]["frames"]
        times = point["pair_times"]
        rows = []
        for j in range(len(f0["bits"])):
            row = {"sequence": f0["sequence"][j], "index": f0["index"][j], "type": f0["type"][j],
                   "encode_s": times["encode_s"][j], "decode_s": times["decode_s"][j]}
            for m in MODALITIES:
                f = point[m]["frames"]
                row[f"{m}_bits"], row[f"{m}_bpp"], row[f"{m}_psnr"] = f["bits"][j], f["bpp"][j], f["psnr"][j]
            rows.append(row)
        entry = {"frames": len(rows)}
        for m in MODALITIES:
            entry[m] = {"bpp": float(np.mean([r[f"{m}_bpp"] for r in rows])),
                        "psnr": float(np.mean([r[f"{m}_psnr"] for r in rows])),
                        "bits_by_index": _by_index(rows, f"{m}_bits", n_max),
                        "psnr_by_index": _by_index(rows, f"{m}_psnr", n_max)}
        for t in ("key", "predicted"):
            sel = [r for r in rows if r["type"] == t]
            entry[f"{t}_frames"] = len(sel)
            entry[f"{t}_encode_s_per_pair"] = float(np.mean([r["encode_s"] for r in sel])) if sel else None
            entry[f"{t}_decode_s_per_pair"] = float(np.mean([r["decode_s"] for r in sel])) if sel else None
        entry["encode_s_per_pair"] = float(np.mean([r["encode_s"] for r in rows]))
        entry["decode_s_per_pair"] = float(np.mean([r["decode_s"] for r in rows]))
        entry["rows"] = rows
        result["gop"][str(g)] = entry
    if x265_qp is not None:
        from mm_compress_ros.eval.anchors import x265_video

        x = {"qp": x265_qp, "keyint": keyint}
        for m in MODALITIES:
            rs = []
            for s in seqs:
                frames = getattr(s, m)
                for i, (src, c) in enumerate(zip(frames, x265_video(frames, x265_qp, keyint=keyint))):
                    rs.append({"index": i, "bits": c.bits, "bpp": bpp(c.bits, src.shape),
                               "psnr": min(psnr(src, c.decoded), 100.0)})
            x[m] = {"bpp": float(np.mean([r["bpp"] for r in rs])), "psnr": float(np.mean([r["psnr"] for r in rs])),
                    "bits_by_index": _by_index(rs, "bits", n_max), "psnr_by_index": _by_index(rs, "psnr", n_max)}
        result["x265_video"] = x
    return result


def render_markdown(res: dict, plot_name: str | None = None) -> str:
    gops = res["gops"]
    L = []
    seqs = res["sequences"]
    L.append(f"Model `{res['model']['name']}` ({res['model']['direction']}, weights "
             f"{res['model']['sha256'][:12]}), quality {res['quality']}; {len(seqs)} sequence(s), "
             f"{sum(s['frames'] for s in seqs)} pairs.\n")
    if plot_name:
        L.append(f"![per-frame bits and PSNR]({plot_name})\n")
    L.append("| GOP | thermal bpp | thermal PSNR | RGB bpp | RGB PSNR | encode s/pair (key / pred) | decode s/pair (key / pred) |")
    L.append("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")

    def f(v, nd=3):
        return "-" if v is None else f"{v:.{nd}f}"

    for g in gops:
        e = res["gop"][str(g)]
        L.append(f"| {g} | {e['thermal']['bpp']:.4f} | {e['thermal']['psnr']:.2f} | {e['rgb']['bpp']:.4f} | "
                 f"{e['rgb']['psnr']:.2f} | {f(e['key_encode_s_per_pair'], 2)} / {f(e['predicted_encode_s_per_pair'], 2)} | "
                 f"{f(e['key_decode_s_per_pair'], 2)} / {f(e['predicted_decode_s_per_pair'], 2)} |")
    if "x265_video" in res:
        x = res["x265_video"]
        L.append(f"| x265 LDP qp {x['qp']} (keyint {x['keyint']}) | {x['thermal']['bpp']:.4f} | "
                 f"{x['thermal']['psnr']:.2f} | {x['rgb']['bpp']:.4f} | {x['rgb']['psnr']:.2f} | - | - |")
    L.append("")
    g10 = "10" if "10" in res["gop"] else str(gops[1] if len(gops) > 1 else gops[0])
    L.append(f"Per frame index (mean over sequences), all-intra vs GOP {g10}:\n")
    L.append(f"| frame | thermal bits GOP 1 | thermal bits GOP {g10} | thermal PSNR GOP 1 | thermal PSNR GOP {g10} "
             f"| RGB bits GOP 1 | RGB bits GOP {g10} | RGB PSNR GOP 1 | RGB PSNR GOP {g10} |")
    L.append("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    a, b = res["gop"]["1"], res["gop"][g10]
    for i in range(len(a["thermal"]["bits_by_index"])):
        L.append(f"| {i} | {f(a['thermal']['bits_by_index'][i], 0)} | {f(b['thermal']['bits_by_index'][i], 0)} | "
                 f"{f(a['thermal']['psnr_by_index'][i], 2)} | {f(b['thermal']['psnr_by_index'][i], 2)} | "
                 f"{f(a['rgb']['bits_by_index'][i], 0)} | {f(b['rgb']['bits_by_index'][i], 0)} | "
                 f"{f(a['rgb']['psnr_by_index'][i], 2)} | {f(b['rgb']['psnr_by_index'][i], 2)} |")
    L.append("")
    long_gops = [g for g in gops if g > 1 and str(g) not in res.get("same_as", {})]
    if long_gops:
        L.append("PSNR per frame index for each GOP (drift of the predicted frames):\n")
        L.append("| frame | " + " | ".join(f"thermal GOP {g} | RGB GOP {g}" for g in long_gops) + " |")
        L.append("| ---: | " + " | ".join("---: | ---:" for _ in long_gops) + " |")
        for i in range(len(a["thermal"]["psnr_by_index"])):
            cells = []
            for g in long_gops:
                e = res["gop"][str(g)]
                cells += [f(e["thermal"]["psnr_by_index"][i], 2), f(e["rgb"]["psnr_by_index"][i], 2)]
            L.append(f"| {i} | " + " | ".join(cells) + " |")
        n = max(s["frames"] for s in seqs)
        same = res.get("same_as", {})
        if same:
            L.append("\n" + "; ".join(f"GOP {g} is GOP {h} here" for g, h in same.items())
                     + f" (the sequences have {n} frames: one key frame, then predicted frames).")
        L.append("")
    return "\n".join(L)


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 7), sharex=True)
    for col, m in enumerate(MODALITIES):
        for g in res["gops"]:
            if str(g) in res.get("same_as", {}):
                continue
            e = res["gop"][str(g)][m]
            idx = np.arange(len(e["psnr_by_index"]))
            axes[0, col].plot(idx, [v if v is not None else math.nan for v in e["bits_by_index"]],
                              marker=".", label=f"GOP {g}")
            axes[1, col].plot(idx, [v if v is not None else math.nan for v in e["psnr_by_index"]],
                              marker=".", label=f"GOP {g}")
        if "x265_video" in res:
            x = res["x265_video"][m]
            idx = np.arange(len(x["psnr_by_index"]))
            lab = f"x265 LDP qp {res['x265_video']['qp']}"
            axes[0, col].plot(idx, x["bits_by_index"], "--", color="gray", label=lab)
            axes[1, col].plot(idx, x["psnr_by_index"], "--", color="gray", label=lab)
        axes[0, col].set_title(m)
        axes[0, col].set_ylabel("bits per frame")
        axes[0, col].set_yscale("log")
        axes[1, col].set_ylabel("PSNR (dB)")
        axes[1, col].set_xlabel("frame index")
        for ax in axes[:, col]:
            ax.grid(True, alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    from mm_compress_ros.codec.zoo import ModelError, load_model
    from mm_compress_ros.io.frames import FrameSourceError, default_data_root
    from mm_compress_ros.eval.sequences import load_sequences, parse_crop

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", help="sequences (default ../shared/data/m3svd_seq)")
    ap.add_argument("--frames", type=int, default=0)
    ap.add_argument("--sequences", nargs="+")
    ap.add_argument("--crop")
    ap.add_argument("--quality", type=int, help="model level (default: the middle level)")
    ap.add_argument("--gops", type=int, nargs="+", default=[10, 30, 100])
    ap.add_argument("--x265-qp", type=int, help="also x265 low-delay P at this QP, per frame")
    ap.add_argument("--keyint", type=int, default=10)
    ap.add_argument("--model", default="mmvc")
    ap.add_argument("--direction", default="thermal_given_rgb")
    ap.add_argument("--weights")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--out", default="runs/video_gop")
    ap.add_argument("--cache", help="folder of measured points shared with `mm-compress eval --cache`")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    try:
        data = args.data or ((default_data_root() or Path("../shared/data")) / "m3svd_seq")
        model = load_model(args.model, direction=args.direction, device=args.device, path=args.weights)
        if args.quality is None:
            args.quality = (model.levels + 1) // 2
        if not 1 <= args.quality <= model.levels:
            raise ModelError(f"quality {args.quality} is not a level of this model (1..{model.levels})")
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        seqs = load_sequences(data, frames=args.frames, crop=parse_crop(args.crop), sequences=args.sequences)
    except (ModelError, FrameSourceError, ValueError) as exc:
        print(f"video_gop: error: {exc}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    res = run(seqs, model, args.quality, args.gops, x265_qp=args.x265_qp, keyint=args.keyint,
              progress=not args.quiet, cache_dir=Path(args.cache) if args.cache else None)
    res["data"], res["seconds"] = str(data), round(time.perf_counter() - t0, 1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plot(res, out / "video_gop.png")
    (out / "video_gop.json").write_text(json.dumps(res, indent=1) + "\n")
    (out / "video_gop.md").write_text(render_markdown(res, "video_gop.png"))
    print(json.dumps({"out": str(out), "seconds": res["seconds"],
                      **{f"gop{g}": {m: {k: round(res['gop'][str(g)][m][k], 4) for k in ("bpp", "psnr")}
                                     for m in MODALITIES} for g in res["gops"]}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
