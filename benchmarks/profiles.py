"""Rate-distortion and speed of the profiles: hybrid (RGB as H.264 / H.265, thermal learned given it)
against the fully learned profile and x265 low-delay P, on m3svd_seq.

    .venv/bin/python benchmarks/profiles.py --quality 1 3 6 --profiles h264 h265   (make results runs it)

The hybrid points are measured in this run (encoder and decoder in one process, one codec thread,
the frames of every sequence as one stream with GOP --gop). The fully learned profile and the x265
anchors are read from docs/results/rd.json (`make results`: the same frames, model and GOP; the
learned profile's computation is unchanged by the reference layer); the script refuses a rd.json
made on other frames or with another model. Speed: medians per pair of encode and decode (both
modalities), and the standard layer alone (libavcodec encode + decode of the RGB) in the same run.

Writes docs/results/profiles.json, docs/results/profiles_rd.png and the "Profiles" section of
docs/results.md (`make results` keeps it). BD-rates: per modality (bits
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

from mm_compress_ros.codec.profiles import STANDARD_LEVELS, reference_qp  # noqa: E402
from mm_compress_ros.codec.stream import codec_threads  # noqa: E402,F401
from mm_compress_ros.codec.videocodec import LowDelayEncoder, VideoDecoder  # noqa: E402
from mm_compress_ros.codec.zoo import load_model  # noqa: E402
from mm_compress_ros.eval.bdrate import BDError, bd_rate  # noqa: E402
from mm_compress_ros.eval.learned import run_sequence  # noqa: E402
from mm_compress_ros.eval.metrics import psnr  # noqa: E402
from mm_compress_ros.eval.sequences import load_sequences  # noqa: E402
from mm_compress_ros.eval.docsection import put_section  # noqa: E402
from mm_compress_ros.eval.yardstick import log_rate_at as _rate_at  # noqa: E402

MODS = ("rgb", "thermal")
# (name here, codec in rd.json): the anchors first, then the learned profile
ANCHOR_CURVES = (("x265 low-delay P", "x265-video"), ("x265 intra", "x265-intra"), ("JPEG", "jpeg"),
                 ("learned (mmvc-video)", "mmvc-video"))


# standard profiles: "<RGB codec>+<thermal codec>", both layers standard streams, no model
STANDARD_PROFILES = ("h264+h264", "h264+h265", "h265+h265")


def measure_profile(model, seqs, codec: str, quality: int, gop: int, thermal_codec: str = "learned") -> dict:
    bits = {m: [] for m in MODS}
    qual = {m: [] for m in MODS}
    enc_s, dec_s, layer_s = [], [], []
    levels = model.levels if model is not None else STANDARD_LEVELS
    for seq in seqs:
        for i, r in enumerate(run_sequence(model, seq.rgb, seq.thermal, quality, gop, reference_codec=codec,
                                           thermal_codec=thermal_codec)):
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
                dec.decode(enc.encode(img, reference_qp(quality, levels), i % gop == 0), img.shape[:2], 3)
                layer_s.append(time.perf_counter() - t0)
    point = {"quality": quality, "pairs": len(enc_s),
             "encode_s_median": statistics.median(enc_s), "decode_s_median": statistics.median(dec_s)}
    if layer_s:
        point["standard_layer_s_median"] = statistics.median(layer_s)
        point["reference_qp"] = reference_qp(quality, levels)
    for m in MODS:
        point[m] = {"bpp": float(np.mean(bits[m])), "psnr": float(np.mean(qual[m]))}
    return point


def pair_curve(points):
    """(bits per RGB pixel of the pair, mean PSNR of the two modalities) per point."""
    return ([p["rgb"]["bpp"] + p["thermal"]["bpp"] for p in points],
            [(p["rgb"]["psnr"] + p["thermal"]["psnr"]) / 2 for p in points])


# how far past the anchor's PSNR range its rate is extrapolated (log-linear, end segment): x265's
# QP 22..51 points span 22.7-40.9 dB (RGB) and 32.0-46.6 dB (thermal); our top and bottom levels
# land a few tenths of a dB outside, and leaving them out would bias the mean to the middle levels
EXTRAPOLATE_DB = 1.0


def pair_vs_anchor(anchor_pts, pts) -> dict:
    """The pair's bits against what the anchor needs **on each camera for the same two PSNRs**
    (its RGB bits at our RGB PSNR plus its thermal bits at our thermal PSNR), per point, and their
    geometric mean over the points the anchor covers (within EXTRAPOLATE_DB of its range; % ,
    negative = fewer bits)."""
    rows = []
    for p in pts:
        a_rgb = _rate_at(anchor_pts, "rgb", p["rgb"]["psnr"], EXTRAPOLATE_DB)
        a_th = _rate_at(anchor_pts, "thermal", p["thermal"]["psnr"], EXTRAPOLATE_DB)
        ours = p["rgb"]["bpp"] + p["thermal"]["bpp"]   # both cameras 640x480 here: bits per pixel add
        if a_rgb is None or a_th is None:
            rows.append({"level": p.get("quality", p.get("setting")), "delta": None})
            continue
        theirs = a_rgb + a_th
        rows.append({"level": p.get("quality", p.get("setting")), "delta": 100.0 * (ours / theirs - 1.0),
                     "rgb_delta": 100.0 * (p["rgb"]["bpp"] / a_rgb - 1.0),
                     "thermal_delta": 100.0 * (p["thermal"]["bpp"] / a_th - 1.0)})
    inside = [r["delta"] for r in rows if r["delta"] is not None]
    mean = 100.0 * (float(np.exp(np.mean([np.log1p(d / 100.0) for d in inside]))) - 1.0) if inside else None
    return {"mean": mean, "points": rows}


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


def _fmt(v) -> str:
    return f"{v:+.1f} %" if isinstance(v, (int, float)) else "no overlap"


def render_markdown(res: dict) -> str:
    """The "Profiles" section of docs/results.md (also used by benchmarks/results.py)."""
    L = ["## Profiles: standard (both cameras H.264 / H.265), hybrid (RGB standard, thermal learned) and fully learned\n",
         f"Measured by `{res['command']}` on {', '.join(res['sequences'])}, the first "
         f"{res['frames_per_sequence']} frames of each, GOP {res['gop']}. The hybrid profile codes RGB with a "
         "low-delay standard codec (libx264 preset faster / libx265 preset superfast, tune zerolatency, "
         "constant QP from the quality level) and thermal with the model given libavcodec's decode of "
         "the RGB bytes; the learned profile and the anchors (x265 low-delay P, x265 intra, JPEG) are "
         "the points of the tables above (same frames, same model). Seconds per pair: medians, encoder and "
         "decoder in one process, with the torch threads given (the first design runs one codec thread; "
         "a real-time model's integer decoder uses both cores).\n",
         "| profile | level | RGB QP | RGB bpp | RGB PSNR | thermal bpp | thermal PSNR | encode s/pair | decode s/pair | threads |",
         "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, pts in res["points"].items():
        if not name.startswith(("hybrid", "learned", "standard")):
            continue
        for p in pts:
            lv = p.get("quality", p.get("setting"))
            L.append(f"| {name} | {lv} | {p.get('reference_qp', '-')} | {p['rgb']['bpp']:.3f} | {p['rgb']['psnr']:.2f} | "
                     f"{p['thermal']['bpp']:.3f} | {p['thermal']['psnr']:.2f} | "
                     f"{p['encode_s_median']:.3f} | {p['decode_s_median']:.3f} | {p.get('threads', 1)} |"
                     if "encode_s_median" in p else
                     f"| {name} | {lv} | - | {p['rgb']['bpp']:.3f} | {p['rgb']['psnr']:.2f} | "
                     f"{p['thermal']['bpp']:.3f} | {p['thermal']['psnr']:.2f} | - | - | - |")
    L.append("\nBD-rate (PCHIP; negative = fewer bits at equal PSNR). Pair here: bits of both modalities per RGB "
             "pixel against the mean of the two PSNRs (the per-camera yardstick follows below the table).\n")
    L.append("| profile | against | RGB | thermal | pair |")
    L.append("| --- | --- | ---: | ---: | ---: |")
    for against, table in (*res["bd_rate_vs_anchors"].items(),
                           ("learned profile", res["bd_rate_vs_learned_profile"])):
        for name, row in table.items():
            L.append(f"| {name} | {against} | {_fmt(row['rgb'])} | {_fmt(row['thermal'])} | {_fmt(row['pair'])} |")
    pair = res.get("pair_vs_x265_each_camera")
    if pair:
        L.append("\n**The pair against x265 low-delay P on each camera** (the yardstick): at each level, our bits "
                 "of both cameras against x265's RGB bits at our RGB PSNR plus x265's thermal bits at our thermal "
                 "PSNR (x265's rate interpolated in log domain between its QPs, and up to 1 dB beyond its PSNR range "
                 "along its end segment; a level further out shows -); mean = geometric mean over the levels. "
                 "Negative = fewer bits.\n")
        L.append("| profile | mean | per level (pair / RGB / thermal) |")
        L.append("| --- | ---: | --- |")
        for name, row in pair.items():
            per = "; ".join(f"L{r['level']}: {r['delta']:+.0f} / {r['rgb_delta']:+.0f} / {r['thermal_delta']:+.0f} %"
                            if r["delta"] is not None else f"L{r['level']}: -" for r in row["points"])
            L.append(f"| {name} | {_fmt(row['mean'])} | {per} |")
        full = {k: v for k, v in pair.items() if isinstance(v["mean"], (int, float))
                and all(r["delta"] is not None for r in v["points"])}
        ranked = sorted((v["mean"], k) for k, v in full.items())
        playable = [(v, k) for v, k in ranked if k.startswith("standard h264+h264") or
                    (k.startswith("hybrid h264") and "(" in k)]
        if ranked:
            L.append(f"\nRanked over the profiles measured at every level ({', '.join(f'{k} {v:+.1f} %' for v, k in ranked)}). "
                     f"**Measured winner: {ranked[0][1]}**" + (
                         "." if not playable or playable[0][1] == ranked[0][1] else
                         f"; **the default is the winner among the profiles Foxglove plays: {playable[0][1]}** "
                         f"({playable[0][0]:+.1f} %): Foxglove decodes CompressedVideo with WebCodecs, which plays "
                         "H.264 but not H.265 here (docs/rosbag.md), so an H.265 layer is on request "
                         "(`--thermal-codec h265`).") +
                     " The default lives in `codec/profiles.py` (`DEFAULT_REFERENCE_CODEC`, `DEFAULT_THERMAL_CODEC`), "
                     "config/encoder.yaml and the README.")
    shas = {res.get("model_sha256")} | {m["sha256"] for m in res.get("hybrid_models", {}).values()}
    for cm in sorted((REPO / "docs" / "results").glob("cross_modal_*.json")):
        c = json.loads(cm.read_text())
        if c.get("model_sha256") in shas and "rigs" in c:
            L.append(f"\n**Cross-modal gain in the hybrid profile, model {c.get('model', 'mmvc')}** "
                     f"(`{c['command']}`): thermal key frames "
                     f"coded given the {c['reference_codec'].upper()}-decoded RGB against the same network given "
                     "a blank reference (a constant grey image coded the same way), BD-rate of the thermal bits: "
                     + "; ".join(f"{rig} ({r['pairs']} pairs) {_fmt(r['bd_rate_real_vs_blank'])}"
                                 for rig, r in c["rigs"].items())
                     + (". roadscene is a FLIR rig the model was trained on (stills) but whose RGB is "
                        "lossy JPEG; m3svd_seq is the held-out test set of the training rig."
                        if res.get("hybrid_models", {}).get(c.get("model"), {}).get("arch", "mmvc") == "mmvc" else
                        ". Neither rig's frames were in this model's training data (M3SVD clips of other "
                        "scenes); roadscene is another camera (FLIR) with lossy JPEG RGB."))
    L.append("\n![profiles](results/profiles_rd.png)\n")
    return "\n".join(L) + "\n"


def update_results_doc(res: dict, doc: Path) -> None:
    """Puts the section into docs/results.md between its markers (before "## Reproduce")."""
    put_section(doc, MARK_BEGIN, MARK_END, render_markdown(res))


MARK_BEGIN, MARK_END = "<!-- profiles: benchmarks/profiles.py -->", "<!-- /profiles -->"


def update_card(model, mname: str, res: dict) -> None:
    """Puts a hybrid-only model's measured points (per profile) and BD-rates into its card."""
    from mm_compress_ros.codec.zoo import models_dir

    path = models_dir() / f"{model.name}-{model.direction}.json"
    card = json.loads(path.read_text())
    if card.get("sha256") != model.sha256:
        print(f"profiles: note: {path.name} describes other weights; card not updated", file=sys.stderr)
        return
    names = [k for k in res["points"] if k.endswith(f"({mname})")]
    card["measured_rd"] = {
        "data": f"{res['data']}: {len(res['sequences'])} sequences, first {res['frames_per_sequence']} frames "
                f"each, GOP {res['gop']} (never trained on)",
        "command": res["command"],
        "points": {k: [{"level": p["quality"], "reference_qp": p.get("reference_qp"), "threads": p.get("threads"),
                        **{mod: {q: round(p[mod][q], 4) for q in ("bpp", "psnr")} for mod in MODS}}
                       for p in res["points"][k]] for k in names},
        "bd_rate": {a: {k: t[k] for k in names if k in t} for a, t in res["bd_rate_vs_anchors"].items()}}
    path.write_text(json.dumps(card, indent=2) + "\n")


def _model_of(point_name: str) -> str:
    """The model of a points entry: 'hybrid h264 (mmrt)' -> mmrt; unnamed entries are mmvc's."""
    return point_name[point_name.index("(") + 1:-1] if point_name.endswith(")") else "mmvc"


def _kept_points(out: Path, model, measuring: set[str], profiles: list[str]) -> dict:
    """Hybrid points of the last run for models this run does not measure, when their weights are
    still the shipped ones (so one model can be re-measured without re-running the others)."""
    if not out.is_file():
        return {}
    old = json.loads(out.read_text())
    if old.get("model_sha256") != model.sha256:
        return {}
    models = old.get("hybrid_models", {"mmvc": {"sha256": old["model_sha256"]}})
    kept = {}
    for name, pts in old["points"].items():
        if not name.startswith("hybrid"):
            continue
        mname = _model_of(name)
        if mname in measuring:
            continue
        try:
            current = model.sha256 if mname == "mmvc" else load_model(mname, device="cpu").sha256
        except Exception:
            continue
        if models.get(mname, {}).get("sha256") == current:
            kept[name] = pts
    return kept


def _kept_models(out: Path, kept: dict) -> dict:
    if not kept:
        return {}
    old = json.loads(out.read_text())
    names = {_model_of(k) for k in kept}
    models = old.get("hybrid_models", {"mmvc": {"sha256": old["model_sha256"], "levels": 6, "arch": "mmvc"}})
    return {n: v for n, v in models.items() if n in names}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "m3svd_seq"))
    ap.add_argument("--frames", type=int, default=None, help="first N frames per sequence (default: as rd.json)")
    ap.add_argument("--quality", type=int, nargs="+", default=[1, 3, 6])
    ap.add_argument("--model", action="append", default=None, metavar="NAME[:L1,L2,...]",
                    help="hybrid-profile model(s) to measure, each with its levels (default: mmvc with "
                         "--quality); e.g. --model mmvc:1,3,6 --model mmrt:1,22,43,64. Points of a "
                         "model other than mmvc are named 'hybrid <codec> (<model>)'")
    ap.add_argument("--update-cards", action="store_true",
                    help="write each measured hybrid-only model's points and BD-rates into its card "
                         "(models/<name>-*.json, measured_rd; the weights' SHA-256 is checked first)")
    ap.add_argument("--exact-threads", type=int, default=2,
                    help="torch threads for models with an integer decoder (rt); the first design "
                         "always runs one codec thread (default 2)")
    ap.add_argument("--gop", type=int, default=10)
    ap.add_argument("--profiles", nargs="+", default=["h264", "h265", *STANDARD_PROFILES],
                    choices=["h264", "h265", "learned", *STANDARD_PROFILES],
                    help="h264/h265: hybrid (RGB standard, thermal by each --model); learned: both by mmvc; "
                         "RGB+THERMAL (e.g. h264+h264): the standard profile, both cameras standard streams")
    ap.add_argument("--standard-levels", default="1,22,43,64",
                    help="quality levels of the standard profiles (1..64; default 1,22,43,64)")
    ap.add_argument("--rebuild", action="store_true",
                    help="no measuring: BD tables, plot and doc section from the last run's --out file")
    ap.add_argument("--rd-json", default=str(REPO / "docs" / "results" / "rd.json"))
    ap.add_argument("--out", default=str(REPO / "docs" / "results" / "profiles.json"))
    ap.add_argument("--plot", default=str(REPO / "docs" / "results" / "profiles_rd.png"))
    args = ap.parse_args(argv)

    import torch
    torch.set_num_threads(1)
    model = load_model("mmvc", device="cpu")
    rd = json.loads(Path(args.rd_json).read_text())
    if args.frames is None:
        args.frames = rd["run"]["frames_per_sequence"]
    seqs = load_sequences(args.data, frames=args.frames)
    if rd["model"]["sha256"] != model.sha256 or rd["run"]["frames_per_sequence"] != args.frames:
        raise SystemExit(f"{args.rd_json} was made with another model or other frames; run `make results` first")
    points = {}
    for name, key in ANCHOR_CURVES:
        points[name] = [p for p in rd["codecs"][key]["points"]
                        if key != "mmvc-video" or p["setting"] in args.quality]
    t0 = time.time()
    if args.rebuild:  # the measured hybrid points of the last run, tables and doc made anew
        old = json.loads(Path(args.out).read_text())
        points.update({k: v for k, v in old["points"].items() if k.startswith(("hybrid", "standard"))})
        args.profiles = []
    hybrid = []
    for spec in args.model or [f"mmvc:{','.join(map(str, args.quality))}"]:
        name, _, levels = spec.partition(":")
        m = model if name == "mmvc" else load_model(name, device="cpu")
        hybrid.append((name, m, [int(v) for v in levels.split(",")] if levels else args.quality))
    kept = _kept_points(Path(args.out), model, {n for n, _, _ in hybrid}, args.profiles) if not args.rebuild else {}
    points.update(kept)
    for prof in [p for p in args.profiles if "+" in p]:
        rgb_codec, th_codec = prof.split("+")
        name = f"standard {prof}"
        points[name] = []
        torch.set_num_threads(args.exact_threads)
        for q in [int(v) for v in args.standard_levels.split(",")]:
            p = measure_profile(None, seqs, rgb_codec, q, args.gop, thermal_codec=th_codec)
            p["threads"] = torch.get_num_threads()
            points[name].append(p)
            print(json.dumps({"profile": prof, **p}), flush=True)
    for codec in [p for p in args.profiles if "+" not in p]:
        for mname, m, levels in hybrid:
            if codec == "learned" and mname != "mmvc":
                continue   # a hybrid-only model has no learned reference codec
            name = f"hybrid {codec}" if codec != "learned" else "learned (this run)"
            name += f" ({mname})" if mname != "mmvc" else ""
            torch.set_num_threads(args.exact_threads if m.net.exact else 1)
            points[name] = []
            for q in levels:
                p = measure_profile(m, seqs, codec, q, args.gop)
                p["threads"] = torch.get_num_threads()
                points[name].append(p)
                print(json.dumps({"profile": codec, "model": mname, **p}), flush=True)
    ours = [k for k in points if k.startswith(("hybrid", "learned", "standard"))]
    bd = {a: bd_table({a: points[a], **{k: points[k] for k in ours}}, a) for a, _ in ANCHOR_CURVES[:3]}
    pair_x265 = {k: pair_vs_anchor(points["x265 low-delay P"], points[k]) for k in ours}
    bd_vs_learned = bd_table({k: points[k] for k in ours}, "learned (mmvc-video)")
    if args.rebuild:
        old.update(points=points, bd_rate_vs_anchors=bd, bd_rate_vs_learned_profile=bd_vs_learned,
                   pair_vs_x265_each_camera=pair_x265)
        old.pop("bd_rate_vs_x265_lowdelay_p", None)
        Path(args.out).write_text(json.dumps(old, indent=1))
        plot({k: points[k] for k in ("x265 low-delay P", *ours)}, Path(args.plot))
        update_results_doc(old, REPO / "docs" / "results.md")
        return 0
    res = {"data": args.data, "frames_per_sequence": args.frames, "sequences": [s.name for s in seqs],
           "gop": args.gop, "model_sha256": model.sha256, "seconds": round(time.time() - t0),
           "hybrid_models": {**_kept_models(Path(args.out), kept),
                             **{n: {"sha256": m.sha256, "levels": m.levels, "arch": m.card["config"].get("arch", "mmvc")}
                                for n, m, _ in hybrid}},
           "command": "benchmarks/profiles.py " + " ".join(sys.argv[1:] if argv is None else argv),
           "points": points, "bd_rate_vs_anchors": bd, "bd_rate_vs_learned_profile": bd_vs_learned,
           "pair_vs_x265_each_camera": pair_x265}
    Path(args.out).write_text(json.dumps(res, indent=1))
    plot({k: points[k] for k in ("x265 low-delay P", *ours)}, Path(args.plot))
    update_results_doc(res, REPO / "docs" / "results.md")
    if args.update_cards:
        for mname, m, _ in hybrid:
            if mname != "mmvc":   # the first design's card is written by benchmarks/results.py
                update_card(m, mname, res)
    print(json.dumps({"bd_rate_vs_anchors": bd, "bd_rate_vs_learned_profile": bd_vs_learned}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
