"""The report of ``mm-compress eval``: RD curves, the BD table, rd.md, the plots and rd.json.

Reads the result :func:`eval.engine.evaluate` returns (no coding here). BD-rates are computed
against x265 intra per modality (PSNR, and MS-SSIM in dB) with PCHIP (eval/bdrate.py); the bpp
at ``TARGET_PSNR`` is reported beside them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from .bdrate import BDError, bd_psnr, bd_rate, rate_at
from .metrics import msssim_db

MODALITIES = ("thermal", "rgb")       # the report's modalities, in table order
REFERENCE = "x265-intra"              # the curve every BD value is measured against
TARGET_PSNR = 35.0                    # the bpp at this PSNR is reported beside the BD-rates


def curve(points, modality, metric):
    rate = [p[modality]["bpp"] for p in points]
    if metric == "psnr":
        q = [p[modality]["psnr"] for p in points]
    else:
        q = [msssim_db(p[modality]["msssim"]) if p[modality]["msssim"] is not None else None for p in points]
    pairs = [(r, v) for r, v in zip(rate, q) if r is not None and v is not None and math.isfinite(v)]
    return [r for r, _ in pairs], [v for _, v in pairs]


def bd_table(codecs: dict, reference: str = REFERENCE) -> dict:
    """BD-rate (%) and BD-PSNR (dB) of every codec against ``reference``, per modality."""
    out = {}
    for m in MODALITIES:
        out[m] = {}
        for name, c in codecs.items():
            row = {}
            r_test, q_test = curve(c["points"], m, "psnr")
            if not r_test:  # a single-modality codec has no points in the other modality
                continue
            try:
                row["bpp_at_%gdB" % TARGET_PSNR] = rate_at(r_test, q_test, TARGET_PSNR)
            except BDError:
                row["bpp_at_%gdB" % TARGET_PSNR] = None
            if reference in codecs and name != reference:
                for metric in ("psnr", "msssim_db"):
                    ra, qa = curve(codecs[reference]["points"], m, metric)
                    rt, qt = curve(c["points"], m, metric)
                    try:
                        row[f"bd_rate_{metric}"] = bd_rate(ra, qa, rt, qt)
                    except BDError as exc:
                        row[f"bd_rate_{metric}"] = None
                        row[f"bd_rate_{metric}_why"] = str(exc)
                ra, qa = curve(codecs[reference]["points"], m, "psnr")
                try:
                    row["bd_psnr"] = bd_psnr(ra, qa, r_test, q_test)
                except BDError as exc:
                    row["bd_psnr"] = None
                    row["bd_psnr_why"] = str(exc)
            out[m][name] = row
    return out


def json_safe(o):
    if isinstance(o, dict):
        return {k: json_safe(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [json_safe(v) for v in o]
    if isinstance(o, (np.floating, float)):
        o = float(o)
        return o if math.isfinite(o) else None
    if isinstance(o, np.integer):
        return int(o)
    return o


def _fmt(v, nd=3, pct=False):
    if v is None:
        return "n/a"
    return f"{v:+.1f} %" if pct else f"{v:.{nd}f}"


def render_markdown(result: dict, plots: dict | None = None, heading: str = "##") -> str:
    lines = []
    codecs = result["codecs"]
    for m in MODALITIES:
        lines.append(f"{heading} {m}: rate-distortion\n")
        if plots and m in plots:
            lines.append(f"![{m} RD curves]({plots[m]})\n")
        lines.append("| codec | setting | bpp | PSNR (dB) | MS-SSIM | s / pair |")
        lines.append("| --- | --- | ---: | ---: | ---: | ---: |")
        for name, c in codecs.items():
            for p in c["points"]:
                v = p[m]
                if v["bpp"] is None:
                    continue
                t = p.get("seconds_per_pair")
                tt = (f"{t:.2f} (enc+dec)" if t is not None else
                      f"{p['encode_s_per_pair']:.2f} + {p['decode_s_per_pair']:.2f}")
                lines.append(f"| {name} | {p['setting_name']} {p['setting']} | {_fmt(v['bpp'], 4)} | "
                             f"{_fmt(v['psnr'], 2)} | {_fmt(v['msssim'], 4)} | {tt} |")
        lines.append("")
    lines.append(f"{heading} BD-rate against {result['reference']} (per modality)\n")
    key = "bpp_at_%gdB" % TARGET_PSNR
    lines.append(f"| codec | modality | BD-rate (PSNR) | BD-PSNR (dB) | BD-rate (MS-SSIM dB) | bpp at {TARGET_PSNR:g} dB |")
    lines.append("| --- | --- | ---: | ---: | ---: | ---: |")
    for m in MODALITIES:
        for name, row in result["bd"][m].items():
            if name == result["reference"]:
                lines.append(f"| {name} (reference) | {m} | 0 | 0 | 0 | {_fmt(row.get(key), 4)} |")
                continue
            bdp = row.get("bd_psnr")
            lines.append(f"| {name} | {m} | {_fmt(row.get('bd_rate_psnr'), pct=True)} | "
                         f"{'n/a' if bdp is None else f'{bdp:+.2f}'} | "
                         f"{_fmt(row.get('bd_rate_msssim_db'), pct=True)} | {_fmt(row.get(key), 4)} |")
    lines.append("")
    lines.append("n/a: the curves do not overlap in quality (or rate), so no BD value exists over a shared range.\n")
    for name, c in codecs.items():
        lines.append(f"- `{name}`: {c['label']}")
    lines.append("")
    return "\n".join(lines)


def plot(result: dict, out_dir: Path, prefix: str = "rd") -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = {}
    for m in MODALITIES:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
        for name, c in result["codecs"].items():
            style = "--" if c["kind"] == "anchor" else "-"
            for ax, metric in zip(axes, ("psnr", "msssim_db")):
                r, q = curve(c["points"], m, metric)
                if r:
                    ax.plot(r, q, style, marker="o", ms=3, label=name)
        axes[0].set_ylabel("PSNR (dB)")
        axes[1].set_ylabel("MS-SSIM (dB)")
        for ax in axes:
            ax.set_xlabel(f"bits per {m} pixel")
            ax.set_xscale("log")
            ax.grid(True, which="both", alpha=0.3)
        axes[0].legend(fontsize=8)
        n = sum(s["frames"] for s in result["sequences"])
        fig.suptitle(f"{m}: {len(result['sequences'])} sequence(s), {n} frames")
        fig.tight_layout()
        path = out_dir / f"{prefix}_{m}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths[m] = path.name
    return paths


def write_outputs(result: dict, out_dir: Path, prefix: str = "rd") -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = plot(result, out_dir, prefix)
    (out_dir / f"{prefix}.json").write_text(json.dumps(json_safe(result), indent=1) + "\n")
    (out_dir / f"{prefix}.md").write_text(render_markdown(result, plots, heading="##"))
    return {"json": str(out_dir / f"{prefix}.json"), "markdown": str(out_dir / f"{prefix}.md"),
            "plots": [str(out_dir / p) for p in plots.values()]}

