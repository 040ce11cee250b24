"""Joint restoration at the decoder: rate-distortion with and without it, on two rigs, and its speed.

    .venv/bin/python benchmarks/restoration.py --write-docs
    .venv/bin/python benchmarks/restoration.py --model runs/restore/checkpoint.safetensors \
        --ablation runs/restore-solo/checkpoint.safetensors --write-docs

The streams are the default standard profile (H.264 RGB + H.264 thermal, GOP 10, the product's
encoder settings) at quality levels --levels, coded and decoded by StreamEncoder/StreamDecoder
as the nodes do; every decoded pair is then restored by the model (and by the ablation model:
the same network size and training, each camera restored without the other's input). Rates are
the packets' own bits per modality, so restored and plain points share their rates.

Rigs: m3svd_seq (5 sequences x --frames frames, one stream each; never trained on) and roadscene
(a FLIR rig the model never saw; --roadscene stills, each a key frame of its own stream, cropped
to a multiple of 4). On m3svd_seq the pair is also measured against x265 low-delay P on each camera
at the same two PSNRs (x265 coded here on the same frames; benchmarks/profiles.py's yardstick).

Writes --out (docs/results/restoration.json), restoration_frames.png beside it (per-frame PSNR:
flicker) and, with --write-docs, the "Joint restoration" section of docs/results.md.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from mm_compress_ros.codec.profiles import STANDARD_LEVELS, reference_qp  # noqa: E402
from mm_compress_ros.codec.stream import StreamDecoder, StreamEncoder  # noqa: E402
from mm_compress_ros.eval.docsection import put_section  # noqa: E402
from mm_compress_ros.eval.learned import split_bits  # noqa: E402
from mm_compress_ros.eval.metrics import psnr  # noqa: E402
from mm_compress_ros.eval.sequences import load_sequences  # noqa: E402
from mm_compress_ros.io.frames import default_data_root, list_images, read_rgb, read_thermal  # noqa: E402
from mm_compress_ros.restore.restorer import load_restorer  # noqa: E402

MODS = ("rgb", "thermal")
VARIANTS = ("plain", "restored", "ablation")


def roadscene_pairs(root: Path, n: int):
    rgb = list_images(root / "rgb")[:n]
    out = []
    for p in rgb:
        r, t = read_rgb(p), read_thermal(root / "thermal" / p.name)
        h, w = min(r.shape[0], t.shape[0]) // 4 * 4, min(r.shape[1], t.shape[1]) // 4 * 4
        out.append((p.stem, [r[:h, :w]], [t[:h, :w]]))
    return out


def measure(streams, levels, restorers, gop: int, progress: str):
    """Per level: mean bpp per modality, mean PSNR per modality and variant, per-frame PSNRs."""
    points = []
    for li, level in enumerate(levels):
        acc = {m: {"bits": 0.0, "pixels": 0, **{v: [] for v in VARIANTS}} for m in MODS}
        for si, (name, rgbs, ths) in enumerate(streams):
            print(f"\r{progress}: level {level} ({li + 1}/{len(levels)}) stream {si + 1}/{len(streams)}   ",
                  end="", file=sys.stderr, flush=True)
            enc = StreamEncoder(None, quality=level, gop=gop, stream_id=0, encoder="software", reconstruct=False)
            dec = StreamDecoder(None)
            for r in restorers.values():
                r.reset()
            for rgb, th in zip(rgbs, ths):
                packet = enc.encode(rgb, th)
                bits = split_bits(packet)
                pair = dec.decode(packet)
                outs = {"plain": pair, **{k: r.restore(pair) for k, r in restorers.items()}}
                for m, ref in (("rgb", rgb), ("thermal", th)):
                    acc[m]["bits"] += bits[m]
                    acc[m]["pixels"] += ref.shape[0] * ref.shape[1]
                    for v, o in outs.items():
                        acc[m][v].append(min(psnr(ref, getattr(o, m)), 100.0))
        pt = {"quality": level, "qp": reference_qp(level, STANDARD_LEVELS)}
        for v in VARIANTS:
            if v != "plain" and v not in restorers:
                continue
            pt[v] = {m: {"bpp": acc[m]["bits"] / acc[m]["pixels"], "psnr": float(np.mean(acc[m][v]))} for m in MODS}
            pt[v]["frames"] = {m: [round(x, 3) for x in acc[m][v]] for m in MODS}
        points.append(pt)
    print(file=sys.stderr)
    return points


X265_QPS = (22, 27, 32, 37, 42, 47)


def x265_points(seqs, gop: int):
    """x265 low-delay P (the yardstick's anchor: preset medium, keyint ``gop``) on these very frames,
    each camera one stream per sequence, at X265_QPS: mean bpp and PSNR per camera."""
    from mm_compress_ros.eval.yardstick import x265_point
    pts = []
    for qp in X265_QPS:
        per = [{m: x265_point(getattr(s, m), qp, keyint=gop)["x"] for m in MODS} for s in seqs]
        pts.append({"setting": qp, **{m: {k: float(np.mean([q[m][k] for q in per])) for k in ("bpp", "psnr")}
                                      for m in MODS}})
    return pts


def bd_rows(points, variants):
    """BD-rates of each variant against the plain decode (profiles.bd_table: per camera and pair),
    with the mean PSNR gain per camera over the levels."""
    from profiles import bd_table   # the same BD table as the profiles benchmark

    rows = bd_table({v: [p[v] for p in points] for v in ("plain", *variants)}, "plain")
    for v in variants:
        rows[v]["psnr_gain_db"] = {m: float(np.mean([p[v][m]["psnr"] - p["plain"][m]["psnr"] for p in points]))
                                   for m in MODS}
    return rows


def speed(restorer, frames, repeats: int = 20):
    """Median ms per 640x480 pair: StreamDecoder alone, and the restoration after it."""
    enc = StreamEncoder(None, quality=32, gop=10, stream_id=0, encoder="software", reconstruct=False)
    packets = [enc.encode(r, t) for r, t in frames]
    dec, t_dec, t_res = StreamDecoder(None), [], []
    restorer.reset()
    for i in range(repeats):
        p = packets[i % len(packets)]
        if i % len(packets) == 0:   # the stream again from its key frame
            dec.reset()
        t0 = time.perf_counter()
        pair = dec.decode(p)
        t1 = time.perf_counter()
        restorer.restore(pair)
        t2 = time.perf_counter()
        t_dec.append(1000 * (t1 - t0))
        t_res.append(1000 * (t2 - t1))
    return {"decode_ms": statistics.median(t_dec), "restore_ms": statistics.median(t_res),
            "pairs_per_s": 1000.0 / (statistics.median(t_dec) + statistics.median(t_res)),
            "threads": torch.get_num_threads(), "repeats": repeats}


def plot(res, path: Path) -> None:
    """Per-frame PSNR of each camera, plain / restored / ablation, at each level (m3svd_seq: the
    frames of its streams in order; flicker shows as a jagged restored line)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = res["rigs"]["m3svd_seq"]["points"]
    fig, axes = plt.subplots(2, len(pts), figsize=(4 * len(pts), 6), squeeze=False)
    for j, p in enumerate(pts):
        for i, m in enumerate(MODS):
            ax = axes[i][j]
            for v, style in (("plain", "k-"), ("restored", "C0-"), ("ablation", "C1--")):
                if v in p:
                    ax.plot(p[v]["frames"][m], style, lw=1, label=v)
            ax.set_title(f"{m}, QP {p['qp']}", fontsize=9)
            ax.set_xlabel("frame (streams in order)", fontsize=8)
            ax.set_ylabel("PSNR dB", fontsize=8)
            ax.tick_params(labelsize=7)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _f(v, unit="%"):
    return f"{v:+.1f} {unit}" if isinstance(v, float) else str(v)


def render(res) -> str:
    """The measured table of docs/results.md's section (what --write-docs puts there)."""
    lines = [f"Command: `{res['command']}` ({res['date']}). Model `{res['model']}`"
             + (f", ablation `{res['ablation']}`" if res.get("ablation") else "") + ". Default standard profile "
             "(H.264 + H.264, GOP 10), levels " + ", ".join(str(x) for x in res["levels"]) + ".", "",
             "| rig | variant | RGB BD-rate | thermal BD-rate | pair BD-rate | RGB dB | thermal dB |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for rig, r in res["rigs"].items():
        for v, row in r["bd_vs_plain"].items():
            g = row["psnr_gain_db"]
            lines.append(f"| {rig} | {v} | {_f(row['rgb'])} | {_f(row['thermal'])} | {_f(row['pair'])} | "
                         f"{g['rgb']:+.3f} | {g['thermal']:+.3f} |")
    lines += ["", "BD-rates against the same streams decoded plainly (negative: fewer bits for the same PSNR); "
              "dB: mean PSNR gain over the levels. `ablation`: each camera restored without the other's input "
              "(same size and training budget): `restored` minus `ablation` is what the other camera adds."]
    y = res["rigs"].get("m3svd_seq", {}).get("vs_x265")
    if y:
        lines += ["", "Pair against x265 low-delay P on each camera at the same two PSNRs (m3svd_seq, geometric mean "
                  "over levels): " + ", ".join(f"{k} {_f(v['mean'])}" for k, v in y.items() if v["mean"] is not None) + "."]
    s = res.get("speed")
    if s:
        lines += ["", f"Speed (640x480, {s['threads']} threads, median of {s['repeats']}): decode {s['decode_ms']:.1f} ms, "
                  f"restoration {s['restore_ms']:.1f} ms per pair: {s['pairs_per_s']:.1f} pairs/s decoded and restored."]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", type=Path, default=None, help="weights (default: models/restore.safetensors)")
    p.add_argument("--ablation", type=Path, default=None, help="the no-other-camera model's weights")
    p.add_argument("--data", type=Path, default=default_data_root())
    p.add_argument("--levels", type=int, nargs="+", default=[1, 22, 43, 64])
    p.add_argument("--frames", type=int, default=10)
    p.add_argument("--sequences", nargs="+", default=None, metavar="SEQ",
                   help="m3svd_seq sequences to measure (default: all; the shipped model trained on "
                        "0111_1716 0111_1753 0111_1803, so its held-out ones are 0114_1551 0114_1609)")
    p.add_argument("--roadscene", type=int, default=40)
    p.add_argument("--gop", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-speed", dest="speed", action="store_false")
    p.add_argument("--out", type=Path, default=REPO / "docs/results/restoration.json")
    p.add_argument("--write-docs", action="store_true")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    restorers = {"restored": load_restorer(path=a.model) if a.model else load_restorer()}
    if a.ablation:
        restorers["ablation"] = load_restorer(path=a.ablation)
    seqs = load_sequences(a.data / "m3svd_seq", frames=a.frames, sequences=a.sequences)
    rigs = {"m3svd_seq": [(s.name, s.rgb, s.thermal) for s in seqs]}
    if a.roadscene:
        rigs["roadscene"] = roadscene_pairs(a.data / "roadscene", a.roadscene)
    res = {"command": "benchmarks/restoration.py " + " ".join(str(x) for x in (argv if argv is not None else sys.argv[1:])),
           "sequences": [s.name for s in seqs],
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "model": str(a.model or "models/restore.safetensors"), "ablation": str(a.ablation) if a.ablation else None,
           "levels": a.levels, "rigs": {}}
    for rig, streams in rigs.items():
        pts = measure(streams, a.levels, restorers, a.gop, rig)
        r = {"points": pts, "bd_vs_plain": bd_rows(pts, [v for v in VARIANTS if v in restorers])}
        if rig == "m3svd_seq":
            from profiles import pair_vs_anchor   # the yardstick of docs/results.md
            x265 = x265_points(seqs, a.gop)
            r["vs_x265"] = {v: pair_vs_anchor(x265, [dict(p[v], quality=p["quality"]) for p in pts])
                            for v in ("plain", *restorers)}
        res["rigs"][rig] = r
    if a.speed:
        s = seqs[0]
        res["speed"] = speed(restorers["restored"], list(zip(s.rgb, s.thermal)))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(res))
    plot(res, a.out.with_name("restoration_frames.png"))
    print(render(res))
    if a.write_docs:
        put_section(REPO / "docs/results.md", "<!-- restoration-table:begin -->", "<!-- restoration-table:end -->",
                    render(res) + "\n")   # inside the section "Joint restoration at the decoder"
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
