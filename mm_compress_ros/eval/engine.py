"""The engine of ``mm-compress eval``: rate-distortion of the project's codec against x265 and JPEG anchors.

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
values, timings), ``rd.md`` (tables) and ``rd_<modality>.png`` (curves), written by
eval/tables.py; ``--cache`` keeps measured points (eval/cache.py); the command line: eval/report.py.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import anchors as anc
from .cache import cache_key, frames_digest, load_point, store_point
from .metrics import bpp, ms_ssim, psnr
from .tables import MODALITIES, REFERENCE, bd_table, json_safe


def cpu_name() -> str:
    """The processor's model name (for the record of a measurement)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


MODES = {"image": 1, "video": None}   # our codec: image mode = all key frames; video = --gop
PSNR_CAP = 100.0                      # per-frame PSNR of a lossless frame is counted as this


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



def measure_point(job: Job, seqs, model=None, keyint: int = 10, with_msssim: bool = True,
                  cache_dir: Path | None = None, data_digest: str | None = None) -> tuple[dict, bool]:
    """The summarised point of ``job`` (from the cache when there); returns (point, from_cache)."""
    path = None
    if cache_dir is not None:
        data_digest = data_digest or frames_digest(seqs)
        path = Path(cache_dir) / f"{cache_key(job, data_digest, keyint, with_msssim, model)}.json"
        point = load_point(path)
        if point is not None:
            return point, True
    point = json_safe(summarise(job, run_job(job, seqs, model=model, keyint=keyint, with_msssim=with_msssim)))
    if path is not None:
        store_point(path, point)
    return point, False


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

