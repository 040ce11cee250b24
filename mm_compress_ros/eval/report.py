"""``mm-compress eval``: rate-distortion of the project's codec against x265 and JPEG anchors.

The codec is measured in one profile, as ``mm-compress encode`` codes it: by default the product's
default (``codec.profiles.DEFAULT_REFERENCE_CODEC`` / ``DEFAULT_THERMAL_CODEC``: the standard
profile, both cameras standard low-delay streams, no model); ``--thermal-codec learned`` the hybrid
profile (model mmrt), ``--reference-codec learned`` the learned profile (model mmvc); ``--model``
another model of that profile. Everything that can be known before coding (a model that cannot serve
the profile, missing data, bad levels or settings) is checked first, and the profile's points are
measured before the anchors'.

For every codec and setting (x265 QP, JPEG quality, the profile's quality level) every sequence is
coded for real, decoded, and measured per frame: bits (bpp of each modality over that
modality's pixels), PSNR and MS-SSIM. A point of the RD curve is the mean over all frames of all
sequences of the per-frame bpp, PSNR and MS-SSIM. BD-rates are computed against x265 intra per
modality (PSNR, and MS-SSIM in dB). Outputs in ``--out``: ``rd.json`` (all points, per-frame
values, timings), ``rd.md`` (tables) and ``rd_<modality>.png`` (curves).
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import CliError
from . import anchors as anc
from .bdrate import BDError, bd_psnr, bd_rate, rate_at
from .metrics import bpp, ms_ssim, msssim_db, psnr


def cpu_name() -> str:
    """The processor's model name (for the record of a measurement)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()

MODALITIES = ("thermal", "rgb")
REFERENCE = "x265-intra"
MODES = {"image": 1, "video": None}   # our codec: image mode = all key frames; video = --gop
PSNR_CAP = 100.0                      # per-frame PSNR of a lossless frame is counted as this
TARGET_PSNR = 35.0                    # the bpp at this PSNR is reported beside the BD-rates


@dataclass
class Job:
    codec: str          # name in the report
    kind: str           # "anchor" or "model"
    setting: int        # QP, JPEG quality or model quality level
    setting_name: str   # "qp", "quality" or "level"
    gop: int = 1
    label: str = ""
    reference_codec: str = "learned"   # the profile of a "model" job (model None: the standard profile)
    thermal_codec: str = "learned"


@dataclass
class PointAccumulator:
    frames: dict = field(default_factory=lambda: {m: {"bits": [], "bpp": [], "psnr": [], "msssim": [],
                                                     "sequence": [], "index": [], "type": []}
                                                 for m in MODALITIES})
    encode_s: float = 0.0
    decode_s: float = 0.0
    coded_s: float = 0.0
    pairs: int = 0
    pair_times: dict = field(default_factory=lambda: {"encode_s": [], "decode_s": []})  # model jobs, per pair


def _measure(acc: PointAccumulator, modality: str, seq: str, index: int, ref: np.ndarray,
             dec: np.ndarray, bits: float, frame_type: str, with_msssim: bool) -> None:
    f = acc.frames[modality]
    p = psnr(ref, dec)
    f["bits"].append(float(bits))
    f["bpp"].append(bpp(bits, ref.shape))
    f["psnr"].append(min(p, PSNR_CAP))
    f["msssim"].append(ms_ssim(ref, dec) if with_msssim else None)
    f["sequence"].append(seq)
    f["index"].append(index)
    f["type"].append(frame_type)


def run_job(job: Job, seqs, model=None, keyint: int = 10, with_msssim: bool = True) -> PointAccumulator:
    acc = PointAccumulator()
    for seq in seqs:
        if job.kind == "anchor":
            for modality in MODALITIES:
                frames = getattr(seq, modality)
                t0 = time.perf_counter()
                coded = anc.run_anchor(job.codec, frames, job.setting, keyint=keyint)
                acc.coded_s += time.perf_counter() - t0
                for i, (src, c) in enumerate(zip(frames, coded)):
                    _measure(acc, modality, seq.name, i, src, c.decoded, c.bits,
                             "key" if c.key else "predicted", with_msssim)
            acc.pairs += len(seq)
        else:
            from .learned import run_sequence

            rgb, thermal, measured = seq.rgb, seq.thermal, MODALITIES
            if job.kind == "baseline":  # single-modality: the reference camera is a constant image
                from ..codec.multimodal import BLANK_REFERENCE

                blank = [np.full_like(a, BLANK_REFERENCE) for a in getattr(seq, model.net.ref_name)]
                rgb, thermal = (blank, thermal) if model.net.ref_name == "rgb" else (rgb, blank)
                measured = (model.net.dep_name,)
            results = run_sequence(model, rgb, thermal, job.setting, job.gop,
                                   reference_codec=job.reference_codec, thermal_codec=job.thermal_codec)
            for i, r in enumerate(results):
                acc.encode_s += r.encode_s
                acc.decode_s += r.decode_s
                acc.pair_times["encode_s"].append(r.encode_s)
                acc.pair_times["decode_s"].append(r.decode_s)
                for modality in measured:
                    src = getattr(seq, modality)[i]
                    _measure(acc, modality, seq.name, i, src, r.decoded[modality], r.bits[modality],
                             r.frame_type, with_msssim)
            acc.pairs += len(seq)
    return acc


def _mean(values):
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def summarise(job: Job, acc: PointAccumulator) -> dict:
    point = {"setting": job.setting, "setting_name": job.setting_name, "gop": job.gop, "pairs": acc.pairs}
    for m in MODALITIES:
        f = acc.frames[m]
        point[m] = {"bpp": _mean(f["bpp"]), "psnr": _mean(f["psnr"]), "msssim": _mean(f["msssim"]),
                    "frames": f}
    if job.kind == "anchor":
        point["seconds_per_pair"] = acc.coded_s / max(acc.pairs, 1)   # encode + decode, both modalities
    else:
        point["encode_s_per_pair"] = acc.encode_s / max(acc.pairs, 1)
        point["decode_s_per_pair"] = acc.decode_s / max(acc.pairs, 1)
        point["pair_times"] = acc.pair_times
    return point


# -- cache of measured points --------------------------------------------------------------------
# A point is stored under a key made of everything that determines it: the codec and its setting
# (for the model: the weights' SHA-256; for a profile other than the learned one: its two layers and
# a digest of the code and PyAV build behind the standard layers), the GOP / key-frame interval,
# whether MS-SSIM was measured, and a hash of the exact input frames. A later run with the same inputs reuses it, so that a long
# evaluation can be interrupted and resumed, and the anchors are not re-coded when only the model
# changed. CACHE_VERSION changes whenever the measurement code changes what a point holds.

CACHE_VERSION = 1


def frames_digest(seqs) -> str:
    h = hashlib.sha256()
    for s in seqs:
        h.update(s.name.encode())
        for a in (*s.rgb, *s.thermal):
            h.update(str((a.shape, a.dtype.str)).encode())
            h.update(np.ascontiguousarray(a).data)
    return h.hexdigest()


def standard_layers_digest() -> str:
    """What a standard layer's bits depend on beyond its settings: the source of the modules that
    set up libx264/libx265 and the thermal layers, and the PyAV (FFmpeg, x264, x265) build."""
    import av

    from ..codec import lossless, reference, thermal, videocodec

    h = hashlib.sha256(str(av.__version__).encode())
    for mod in (videocodec, thermal, reference, lossless):
        h.update(Path(mod.__file__).read_bytes())
    return h.hexdigest()[:16]


def cache_key(job: Job, data_digest: str, keyint: int, with_msssim: bool, model=None) -> str:
    ident = {"v": CACHE_VERSION, "kind": job.kind, "setting": job.setting, "gop": job.gop,
             "msssim": with_msssim, "data": data_digest}
    if job.kind == "anchor":
        ident.update(codec=job.codec, keyint=keyint if anc.anchor(job.codec).uses_keyint else None)
    else:
        ident.update(model=model.sha256 if model is not None else None,
                     direction=model.direction if model is not None else None)
        if (job.reference_codec, job.thermal_codec) != ("learned", "learned"):   # (learned: keys as before)
            ident.update(profile=[job.reference_codec, job.thermal_codec], layers=standard_layers_digest())
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:24]


def measure_point(job: Job, seqs, model=None, keyint: int = 10, with_msssim: bool = True,
                  cache_dir: Path | None = None, data_digest: str | None = None) -> tuple[dict, bool]:
    """The summarised point of ``job`` (from the cache when there); returns (point, from_cache)."""
    path = None
    if cache_dir is not None:
        data_digest = data_digest or frames_digest(seqs)
        path = Path(cache_dir) / f"{cache_key(job, data_digest, keyint, with_msssim, model)}.json"
        if path.is_file():
            try:
                return json.loads(path.read_text()), True
            except json.JSONDecodeError:
                pass  # a damaged entry is measured again
    point = _json_safe(summarise(job, run_job(job, seqs, model=model, keyint=keyint, with_msssim=with_msssim)))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".part")
        tmp.write_text(json.dumps(point))
        tmp.replace(path)
    return point, False


def _curve(points, modality, metric):
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
            r_test, q_test = _curve(c["points"], m, "psnr")
            if not r_test:  # a single-modality codec has no points in the other modality
                continue
            try:
                row["bpp_at_%gdB" % TARGET_PSNR] = rate_at(r_test, q_test, TARGET_PSNR)
            except BDError:
                row["bpp_at_%gdB" % TARGET_PSNR] = None
            if reference in codecs and name != reference:
                for metric in ("psnr", "msssim_db"):
                    ra, qa = _curve(codecs[reference]["points"], m, metric)
                    rt, qt = _curve(c["points"], m, metric)
                    try:
                        row[f"bd_rate_{metric}"] = bd_rate(ra, qa, rt, qt)
                    except BDError as exc:
                        row[f"bd_rate_{metric}"] = None
                        row[f"bd_rate_{metric}_why"] = str(exc)
                ra, qa = _curve(codecs[reference]["points"], m, "psnr")
                try:
                    row["bd_psnr"] = bd_psnr(ra, qa, r_test, q_test)
                except BDError as exc:
                    row["bd_psnr"] = None
                    row["bd_psnr_why"] = str(exc)
            out[m][name] = row
    return out


def default_levels(levels: int) -> list[int]:
    """The quality levels measured when none are given: all of a model with up to 8, else 4 spread
    over the range (64 levels: 1, 22, 43, 64, as benchmarks/profiles.py)."""
    if levels <= 8:
        return list(range(1, levels + 1))
    return sorted({round(1 + i * (levels - 1) / 3) for i in range(4)})


def profile_codec_name(model, reference_codec: str, thermal_codec: str, mode: str) -> str:
    """The name of a profile's curve in the report: ``<model>-<mode>`` for the learned profile (as
    before profiles existed), ``hybrid-<rgb codec>-<model>-<mode>``, ``standard-<rgb>+<thermal>-<mode>``."""
    from ..codec.packet import profile_name

    kind = profile_name(reference_codec, thermal_codec)
    if kind == "learned":
        return f"{model.name}-{mode}"
    if kind == "hybrid":
        return f"hybrid-{reference_codec}-{model.name}-{mode}"
    return f"standard-{reference_codec}+{thermal_codec}-{mode}"


def _resolved_thermal(thermal_codec: str, seqs) -> str:
    """``auto`` as the standard profile resolves it for these frames (8-bit: h264, 16-bit: h265)."""
    from ..codec.thermal import AUTO, resolve

    if thermal_codec != AUTO:
        return thermal_codec
    return resolve(AUTO, "mono16" if seqs and seqs[0].thermal[0].dtype == np.uint16 else "mono8")


def evaluate(seqs, anchors=anc.ANCHORS, settings: dict | None = None, model=None, qualities=None,
             modes=("image", "video"), gop: int = 10, keyint: int = 10, with_msssim: bool = True,
             progress: bool = True, cache_dir: Path | None = None, baseline=None,
             profile: tuple[str, str] | None = None) -> dict:
    """Runs every codec over ``seqs`` and returns the JSON-ready result (see module docstring).

    ``profile`` (reference codec, thermal codec) is the profile our codec is measured in, with
    ``model`` (None for the standard profile); without it, ``model`` (when given) is measured in
    the learned profile. ``qualities``: its levels (default :func:`default_levels`). ``settings``
    maps a setting's option (``anchors.SETTINGS``: "qp", "jpeg_quality") to the values each anchor
    run at that setting is coded at (default: the setting's defaults). With ``cache_dir``, points
    measured before on the very same frames are reused (see :func:`measure_point`). The profile's
    points are measured first (a failure shows before the long anchor runs); the report lists the
    anchors first."""
    from tqdm import tqdm

    from ..codec.packet import profile_name
    from ..codec.profiles import STANDARD_LEVELS

    settings = settings or {}
    jobs: list[Job] = []
    for a in map(anc.anchor, anchors):
        for s in settings.get(a.setting.option, a.setting.defaults):
            jobs.append(Job(a.name, "anchor", int(s), a.setting.name, gop=a.gop(keyint),
                            label=a.label.format(keyint=keyint)))
    if profile is None and model is not None:
        profile = ("learned", "learned")
    if profile is not None:
        ref_codec, th_codec = profile
        kind = profile_name(ref_codec, th_codec)
        th_used = _resolved_thermal(th_codec, seqs)
        levels = list(qualities) if qualities else default_levels(model.levels if model is not None else STANDARD_LEVELS)
        for mode in modes:
            g = MODES[mode] or gop
            name = profile_codec_name(model, ref_codec, th_used, mode)
            if kind == "standard":
                label = f"standard profile: RGB {ref_codec}, thermal {th_used}, no model, {mode} mode, GOP {g}"
            elif kind == "hybrid":
                label = (f"hybrid profile: RGB {ref_codec}, thermal by {model.name} ({model.direction}), "
                         f"{mode} mode, GOP {g}")
            else:
                label = f"{model.name} ({model.direction}), {mode} mode, GOP {g}"
            for q in levels:
                jobs.append(Job(name, "model", int(q), "level", gop=g, label=label,
                                reference_codec=ref_codec, thermal_codec=th_codec))
    if baseline is not None:  # single-modality model (card "reference_input": "blank"), key frames
        levels = list(qualities) if qualities else list(range(1, baseline.levels + 1))
        for q in levels:
            jobs.append(Job(f"{baseline.name}-image", "baseline", int(q), "level", gop=1,
                            label=f"{baseline.name}: {baseline.net.dep_name} alone (same network and training "
                                  f"budget, {baseline.net.ref_name} input blank), image mode"))
    models = {"model": model, "baseline": baseline}
    codecs: dict = {j.codec: {"label": j.label, "kind": j.kind, "gop": j.gop, "points": []} for j in jobs}
    digest = frames_digest(seqs) if cache_dir is not None else None
    reused = 0
    ours_first = sorted(jobs, key=lambda j: j.kind == "anchor")   # stable: each kind in its order
    bar = tqdm(ours_first, desc="eval", unit="point", disable=not progress)
    for job in bar:
        bar.set_postfix_str(f"{job.codec} {job.setting_name} {job.setting}")
        point, cached = measure_point(job, seqs, model=models.get(job.kind), keyint=keyint, with_msssim=with_msssim,
                                      cache_dir=cache_dir, data_digest=digest)
        reused += cached
        codecs[job.codec]["points"].append(point)
    for c in codecs.values():
        c["points"].sort(key=lambda p: next((p[m]["bpp"] for m in ("thermal", "rgb") if p[m]["bpp"] is not None), 0.0))
    result = {
        "sequences": [{"name": s.name, "frames": len(s), "rgb_size": list(s.rgb[0].shape[:2]),
                       "thermal_size": list(s.thermal[0].shape[:2])} for s in seqs],
        "codecs": codecs,
        "bd": bd_table(codecs),
        "reference": REFERENCE,
        "points_from_cache": reused,
        "conventions": {
            "bpp": "bits of one modality / pixels of that modality, mean over frames",
            "psnr": f"per-frame PSNR (RGB: MSE over the 3 channels; peak 255), mean over frames, capped at {PSNR_CAP} dB",
            "msssim": "per-frame MS-SSIM (pytorch_msssim; RGB channels averaged), mean over frames",
            "model_bits": "packet sections per modality; alignment section counts for the dependent modality; "
                          "header, section table and CRC split in proportion to payload bytes",
            "bd_rate": "piecewise-cubic (PCHIP) Bjontegaard delta rate against x265-intra, % (negative = fewer bits)",
        },
    }
    if profile is not None:
        result["profile"] = {"name": profile_name(*profile), "reference_codec": profile[0],
                             "thermal_codec": profile[1], "thermal_codec_used": _resolved_thermal(profile[1], seqs),
                             "model": model.name if model is not None else None}
    if model is not None:
        result["model"] = {"name": model.name, "direction": model.direction, "sha256": model.sha256,
                           "levels": model.levels, "card": {k: v for k, v in model.card.items() if k != "config"},
                           "config": model.card.get("config")}
    return result


# -- output ------------------------------------------------------------------------------------

def _json_safe(o):
    if isinstance(o, dict):
        return {k: _json_safe(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_json_safe(v) for v in o]
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
                r, q = _curve(c["points"], m, metric)
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
    (out_dir / f"{prefix}.json").write_text(json.dumps(_json_safe(result), indent=1) + "\n")
    (out_dir / f"{prefix}.md").write_text(render_markdown(result, plots, heading="##"))
    return {"json": str(out_dir / f"{prefix}.json"), "markdown": str(out_dir / f"{prefix}.md"),
            "plots": [str(out_dir / p) for p in plots.values()]}


# -- command line ------------------------------------------------------------------------------

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
