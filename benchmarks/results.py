#!/usr/bin/env python3
"""Regenerates docs/results.md (tables, BD-rates, plots) from real runs on m3svd_seq.

    .venv/bin/python benchmarks/results.py               # anchors + model mmvc (models/), all frames
    .venv/bin/python benchmarks/results.py --no-model    # anchors only

Writes docs/results.md, docs/results/*.png and docs/results/*.json (summaries without per-frame
values); the per-frame JSON goes to runs/results/ (not committed). The document names the data,
the command and the machine.

Every measured point is also kept in runs/results/cache/, keyed by the codec, its setting (the
model's weights hash), the GOP and a hash of the exact input frames: a run that was interrupted
resumes where it stopped, and a run after a new model re-codes only the model (``--no-cache``
measures everything again). ``--rebuild`` rewrites the document from the last run's JSON without
coding anything (for changes of the text).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for p in (REPO, REPO / "benchmarks"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from mm_compress_ros.errors import CliError  # noqa: E402
from mm_compress_ros.eval import anchors as anc  # noqa: E402
from mm_compress_ros.eval.engine import cpu_name, evaluate  # noqa: E402
from mm_compress_ros.eval.report import add_setting_options, anchor_settings  # noqa: E402
from mm_compress_ros.eval.tables import MODALITIES, TARGET_PSNR, json_safe, plot, render_markdown  # noqa: E402

# Orientation numbers quoted in issue 5 (bpp at 35 dB on m3svd_seq, measured earlier by others).
ISSUE_ORIENTATION = {
    "thermal": {"x265-intra": 0.024, "x265-video": 0.005},
    "rgb": {"x265-intra": 0.85, "x265-video": 0.29, "jpeg": 1.6},
}


def strip_frames(result: dict) -> dict:
    out = json.loads(json.dumps(json_safe(result)))
    for c in out["codecs"].values():
        for p in c["points"]:
            p.pop("pair_times", None)
            for m in MODALITIES:
                p[m].pop("frames", None)
    return out


def build_doc(result: dict, plots: dict, gop_md: str | None, args, command: str, seconds: float,
              model_note: str) -> str:
    note = model_note
    seqs = result["sequences"]
    n = sum(s["frames"] for s in seqs)
    h, w = seqs[0]["rgb_size"]
    L = ["# Results", ""]
    when = result["run"].get("date") or datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    L.append(f"Measured {when} by\n\n```\n{command}\n```\n")
    L.append(f"- Data: `{result['run']['data']}`: {len(seqs)} sequences "
             f"({', '.join(s['name'] for s in seqs)}), "
             f"{'the first ' + str(args.frames) + ' frames of each, ' if args.frames else ''}"
             f"{n} RGB + thermal pairs, {w}x{h}"
             f"{' (centre crop ' + args.crop + ')' if args.crop else ''}, lossless PNG (M3SVD, MIT). "
             "Never used for training.")
    L.append(f"- Machine: {result['run'].get('cpu', cpu_name())}, {result['run'].get('cores', os.cpu_count())} cores, "
             f"no GPU used; this run took {seconds / 60:.1f} min"
             f"{' (plus the earlier runs of its cached points)' if result.get('points_from_cache') else ''}. "
             "Times per pair are wall-clock on this machine "
             "while other jobs (training) shared it: indicative only.")
    L.append(f"- Model: {model_note}")
    if args.frames:
        L.append(f"- Only the first {args.frames} frames of each sequence were coded (to spare a CPU shared with "
                 "training); without `--frames` every frame is.")
    if not note.startswith("`"):
        L.append("- The project's codec is not in this run (no model was evaluated); once a model is in "
                 "`models/` (`mm-compress export ...`), the same command without `--no-model` adds its image "
                 "and video modes, their BD-rates and the video-mode section.")
    if result.get("points_from_cache"):
        L.append(f"- {result['points_from_cache']} of the RD points were measured by an earlier run of this "
                 "command on the very same frames and settings (runs/results/cache); the rest by this run.")
    L.append("- Every codec is run for real: the bits are the sizes of the bytes produced (x265 packets, "
             "JPEG files, our packets) and the quality is measured on the frames decoded from them.")
    L.append("")
    L.append("## Setup\n")
    for a in anc.ANCHOR_TABLE.values():
        values = ", ".join(map(str, getattr(args, a.setting.option)))
        L.append(f"- `{a.name}`: " + a.setup.format(keyint=args.keyint, settings=values))
    L.append("- Our codec (`<model>-image`: every frame a key frame; `<model>-video`: GOP "
             f"{args.gop}): `StreamEncoder` packets decoded by `StreamDecoder`. Bits per modality from "
             "the packet sections (alignment coefficients count for the dependent modality; header, "
             "section table and CRC split in proportion to payload bytes).")
    L.append("- bpp: bits of one modality / pixels of that modality (H x W), mean over frames. PSNR: per frame "
             "(RGB: MSE over the three channels, peak 255), mean over frames. MS-SSIM: pytorch_msssim, "
             "per frame, mean over frames; plotted as -10 log10(1 - MS-SSIM).")
    L.append("- BD-rate: Bjontegaard delta rate with piecewise-cubic (PCHIP) interpolation of log-rate over "
             "quality, over the quality range both curves cover; negative = fewer bits than x265-intra.")
    L.append("")
    L.append(f"## Rate at {TARGET_PSNR:g} dB PSNR (bpp of that modality)\n")
    L.append("| modality | codec | measured here | issue 5 orientation |")
    L.append("| --- | --- | ---: | ---: |")
    key = "bpp_at_%gdB" % TARGET_PSNR
    for m in MODALITIES:
        for name, row in result["bd"][m].items():
            v = row.get(key)
            o = ISSUE_ORIENTATION[m].get(name)
            L.append(f"| {m} | {name} | {'out of range' if v is None else f'{v:.4f}'} | "
                     f"{'-' if o is None else o} |")
    L.append("\n'out of range': the codec's curve does not reach 35 dB (or starts above it) at the settings run.\n")
    L.append(render_markdown(result, {m: f"results/{p}" for m, p in plots.items()}, heading="##"))
    cross = cross_modal_section(result)
    if cross:
        L.append(cross)
    if gop_md:
        L.append("## Video mode against all-intra (our codec)\n")
        L.append(video_vs_intra(result))
        L.append("![per-frame bits and PSNR](results/video_gop.png)\n")
        L.append(gop_md.replace("![per-frame bits and PSNR](video_gop.png)\n", ""))
    prof = Path(__file__).resolve().parents[1] / "docs" / "results" / "profiles.json"
    if prof.is_file():  # the hybrid profile (benchmarks/profiles.py), when measured on this model
        import profiles

        pres = json.loads(prof.read_text())
        if pres.get("model_sha256") == result.get("model", {}).get("sha256"):
            L.append(f"{profiles.MARK_BEGIN}\n{profiles.render_markdown(pres)}{profiles.MARK_END}\n")
    lossless = Path(__file__).resolve().parents[1] / "docs" / "results" / "lossless16.json"
    if lossless.is_file():   # benchmarks/lossless16.py: the lossless thermal layer's codec choice
        import lossless16

        L.append(f"{lossless16.MARK_BEGIN}\n{lossless16.render_section(json.loads(lossless.read_text()))}"
                 f"{lossless16.MARK_END}\n")
    L.append("## Reproduce\n")
    L.append(f"```\n{command}\n```\n")
    L.append("Tables only (any data, any crop): `mm-compress eval DATA --out DIR` "
             "(`--no-model` for anchors only, `--frames N`, `--crop WxH`). "
             "Per-frame video-mode details: `.venv/bin/python benchmarks/video_gop.py`.")
    return "\n".join(L) + "\n"


def _bd_cells(anchor_points, test_points, modality) -> tuple[str, str]:
    """(BD-rate, BD-PSNR) of ``test`` against ``anchor`` as text; 'n/a (why)' where undefined."""
    from mm_compress_ros.eval.bdrate import BDError, bd_psnr, bd_rate
    from mm_compress_ros.eval.tables import curve

    ra, qa = curve(anchor_points, modality, "psnr")
    rt, qt = curve(test_points, modality, "psnr")
    cells = []
    for f, fmt in ((bd_rate, "{:+.1f} %"), (bd_psnr, "{:+.2f} dB")):
        try:
            cells.append(fmt.format(f(ra, qa, rt, qt)))
        except BDError as exc:
            cells.append(f"n/a ({exc})")
    return cells[0], cells[1]


def cross_modal_section(result: dict) -> str | None:
    """BD-rate of the cross-modal key frames against the single-modality baseline (same network,
    same training budget, reference input blank): the gain of coding with the other camera."""
    model = result.get("model")
    codecs = result["codecs"]
    base = next((n for n, c in codecs.items() if c["kind"] == "baseline"), None)
    if not model or not base or f"{model['name']}-image" not in codecs:
        return None
    ours = f"{model['name']}-image"
    dep = "thermal" if model["direction"] == "thermal_given_rgb" else "rgb"
    L = ["## Cross-modal gain (key frames)\n",
         f"`{base}`: {codecs[base]['label']}. Both are coded as key frames; the {dep} bits of `{ours}` "
         "include the alignment coefficients.\n",
         f"| level | {ours} bpp | {ours} PSNR | {base} bpp | {base} PSNR |",
         "| ---: | ---: | ---: | ---: | ---: |"]
    by_level = {p["setting"]: p for p in codecs[base]["points"]}
    for p in codecs[ours]["points"]:
        b = by_level.get(p["setting"])
        if b:
            L.append(f"| {p['setting']} | {p[dep]['bpp']:.4f} | {p[dep]['psnr']:.2f} | "
                     f"{b[dep]['bpp']:.4f} | {b[dep]['psnr']:.2f} |")
    rate, gain = _bd_cells(codecs[base]["points"], codecs[ours]["points"], dep)
    L.append(f"\nBD-rate of `{ours}` against `{base}` ({dep}, PSNR): **{rate}** (BD-PSNR {gain}); "
             "negative = the other camera saves bits.\n")
    return "\n".join(L)


def video_vs_intra(result: dict) -> str:
    """BD-rate of the model's video mode against its own image mode (every frame a key frame)."""
    name = result["model"]["name"]
    img, vid = result["codecs"].get(f"{name}-image"), result["codecs"].get(f"{name}-video")
    if not img or not vid:
        return ""
    L = [f"BD-rate of `{name}-video` (GOP {vid['gop']}) against `{name}-image` over the RD points above "
         "(negative = predicted frames save bits at equal PSNR):\n",
         "| modality | BD-rate | BD-PSNR |", "| --- | ---: | ---: |"]
    for m in MODALITIES:
        rate, gain = _bd_cells(img["points"], vid["points"], m)
        L.append(f"| {m} | {rate} | {gain} |")
    return "\n".join(L) + "\n"


def rebuild(args) -> int:
    """Rewrites docs/results.md from runs/rd.json (+ video_gop.json) of the last full run."""
    import video_gop

    runs = Path(args.runs)
    try:
        result = json.loads((runs / "rd.json").read_text())
        run = result["run"]
        command, seconds, note = run["command"], run["seconds"], run["model_note"]
    except (OSError, KeyError, json.JSONDecodeError) as exc:
        print(f"results: error: no complete previous run in {runs} ({exc})", file=sys.stderr)
        return 2
    for k, v in run.get("settings", {}).items():
        setattr(args, k, v)
    doc = Path(args.doc)
    assets = doc.parent / "results"
    assets.mkdir(parents=True, exist_ok=True)
    plots = plot(result, assets, "rd")
    (assets / "rd.json").write_text(json.dumps(strip_frames(result), indent=1) + "\n")
    gop_md = None
    if (runs / "video_gop.json").is_file() and run.get("model_note", "").startswith("`"):
        res = json.loads((runs / "video_gop.json").read_text())
        video_gop.plot(res, assets / "video_gop.png")
        gop_md = video_gop.render_markdown(res, "video_gop.png")
    doc.write_text(build_doc(result, plots, gop_md, args, command, seconds, note))
    print(json.dumps({"doc": str(doc), "rebuilt_from": str(runs / "rd.json")}))
    return 0


def main(argv=None) -> int:
    from mm_compress_ros.codec.zoo import ModelError, load_model
    from mm_compress_ros.eval.sequences import load_sequences, parse_crop
    from mm_compress_ros.io.frames import FrameSourceError, default_data_root

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", help="sequences (default ../shared/data/m3svd_seq)")
    ap.add_argument("--frames", type=int, default=0, help="first N frames per sequence (default all)")
    ap.add_argument("--sequences", nargs="+", help="only these sequences (default all)")
    ap.add_argument("--crop")
    add_setting_options(ap)
    ap.add_argument("--keyint", type=int, default=10)
    ap.add_argument("--no-model", action="store_true")
    ap.add_argument("--model", default="mmvc")
    ap.add_argument("--direction", default="thermal_given_rgb")
    ap.add_argument("--weights")
    ap.add_argument("--baseline",
                    help="single-modality baseline model (default: MODEL-single when the model is loaded "
                         "by name and that baseline is shipped)")
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--quality", type=int, nargs="+", help="model levels (default all)")
    ap.add_argument("--gop", type=int, default=10)
    ap.add_argument("--gop-quality", type=int, help="model level of the GOP section (default: the middle level)")
    ap.add_argument("--skip-gop", action="store_true", help="no video-mode-vs-intra section")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--doc", default=str(REPO / "docs" / "results.md"))
    ap.add_argument("--runs", default=str(REPO / "runs" / "results"), help="per-frame JSON (not committed)")
    ap.add_argument("--no-cache", action="store_true",
                    help="measure every point again (default: reuse points in RUNS/cache measured on the same frames)")
    ap.add_argument("--rebuild", action="store_true",
                    help="rewrite the document from the last run's JSON in --runs (no coding, for text changes)")
    ap.add_argument("--update-cards", action="store_true",
                    help="write the measured points into the model cards (models/*.json) of the shipped "
                         "model and baseline (the weights' SHA-256 in the card is checked first)")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    if args.rebuild:
        return rebuild(args)

    extra = " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    if os.environ.get("MMC_VIA_MAKE"):
        command = "make results" + (f" RESULTS_ARGS={shlex.quote(extra)}" if extra else "")
    else:
        command = ".venv/bin/python benchmarks/results.py" + (f" {extra}" if extra else "")
    try:
        data = Path(args.data) if args.data else ((default_data_root() or Path("../shared/data")) / "m3svd_seq")
        model, model_note = None, "none (anchors only, `--no-model`)"
        if not args.no_model:
            model = load_model(args.model, direction=args.direction, device=args.device, path=args.weights)
            c = model.card
            t = c.get("training", {})
            model_note = (f"`{model.name}` ({model.direction}), weights sha256 {model.sha256[:16]}, "
                          f"{c.get('file_bytes', 0) / 1e6:.1f} MB, {t.get('steps', '?')} training steps, "
                          f"{t.get('cpu_hours', '?')} CPU hours ({t.get('data', '?')}).")
            if args.gop_quality is None:
                args.gop_quality = (model.levels + 1) // 2
            if not 1 <= args.gop_quality <= model.levels:
                raise ModelError(f"--gop-quality {args.gop_quality} is not a level of this model (1..{model.levels})")
            for q in args.quality or []:
                if not 1 <= q <= model.levels:
                    raise ModelError(f"quality {q} is not a level of this model (1..{model.levels})")
        baseline = None
        if model is not None and not args.no_baseline and (args.baseline or not args.weights):
            from mm_compress_ros.eval.report import load_baseline

            try:
                baseline = load_baseline(args.baseline or f"{args.model}-single", args.direction, args.device)
            except CliError as exc:
                if args.baseline:
                    raise ModelError(str(exc)) from None
                print(f"results: note: no single-modality baseline in this run ({exc})", file=sys.stderr)
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        seqs = load_sequences(data, frames=args.frames, crop=parse_crop(args.crop), sequences=args.sequences)
    except (ModelError, FrameSourceError, ValueError) as exc:
        print(f"results: error: {exc}", file=sys.stderr)
        return 2

    t0 = time.perf_counter()
    runs = Path(args.runs)
    cache = None if args.no_cache else runs / "cache"
    result = evaluate(seqs, settings=anchor_settings(args), model=model,
                      qualities=args.quality, gop=args.gop, keyint=args.keyint, progress=not args.quiet,
                      cache_dir=cache, baseline=baseline)
    result["run"] = {"data": str(data), "frames_per_sequence": args.frames or "all", "crop": args.crop}
    doc = Path(args.doc)
    assets = doc.parent / "results"
    assets.mkdir(parents=True, exist_ok=True)
    runs.mkdir(parents=True, exist_ok=True)
    (assets / "rd.json").write_text(json.dumps(strip_frames(result), indent=1) + "\n")
    plots = plot(result, assets, "rd")

    gop_md = None
    if model is not None and not args.skip_gop:
        import video_gop

        res = video_gop.run(seqs, model, args.gop_quality, [args.gop, 30, 100], progress=not args.quiet,
                            cache_dir=cache)
        (runs / "video_gop.json").write_text(json.dumps(res) + "\n")
        video_gop.plot(res, assets / "video_gop.png")
        gop_md = video_gop.render_markdown(res, "video_gop.png")
    seconds = time.perf_counter() - t0
    result["run"].update({"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "command": command, "seconds": round(seconds, 1), "model_note": model_note,
                          "cpu": cpu_name(), "cores": os.cpu_count(), "settings": {
                              **anchor_settings(args), "keyint": args.keyint,
                              "gop": args.gop, "frames": args.frames, "crop": args.crop}})
    (runs / "rd.json").write_text(json.dumps(json_safe(result)) + "\n")
    doc.write_text(build_doc(result, plots, gop_md, args, command, seconds, model_note))
    if args.update_cards and not args.weights:
        for m in (model, baseline):
            if m is not None:
                update_card(m, result, command)
    print(json.dumps({"doc": str(doc), "assets": str(assets), "seconds": round(seconds, 1)}))
    return 0


def update_card(model, result: dict, command: str) -> None:
    """Adds this run's points of ``model`` (all its modes) to its card as ``measured_rd``."""
    from mm_compress_ros.codec.zoo import models_dir

    path = models_dir() / f"{model.name}-{model.direction}.json"
    card = json.loads(path.read_text())
    if card.get("sha256") != model.sha256:
        print(f"results: note: {path.name} describes other weights; card not updated", file=sys.stderr)
        return
    points = {}
    for name in (f"{model.name}-image", f"{model.name}-video"):
        c = result["codecs"].get(name)
        if c is not None:
            points[name] = [{"level": p["setting"], "gop": p["gop"],
                             **{mod: {k: (round(p[mod][k], 4) if p[mod][k] is not None else None)
                                      for k in ("bpp", "psnr", "msssim")}
                                for mod in MODALITIES if p[mod]["bpp"] is not None}}
                            for p in c["points"]]
    n = sum(s["frames"] for s in result["sequences"])
    card["measured_rd"] = {"data": f"{result['run']['data']}: {len(result['sequences'])} sequences, {n} frame "
                                   "pairs (never trained on)",
                           "command": command, "date": result["run"]["date"], "points": points,
                           "bd_vs_x265_intra": {mod: {k: result["bd"][mod][k] for k in points
                                                      if k in result["bd"][mod]} for mod in MODALITIES}}
    card.pop("measured_rd_m3svd_seq", None)
    path.write_text(json.dumps(card, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
