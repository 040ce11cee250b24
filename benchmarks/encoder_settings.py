#!/usr/bin/env python3
"""Encoder settings of the standard low-delay layers (RGB and thermal): the speed / efficiency
frontier of libx264 and libx265 presets, and what key frames cost a late joiner.

Every stream is coded by the product's ``LowDelayEncoder`` (codec/videocodec.py): one Annex B
access unit out per frame in (it raises otherwise), no B-frames, no lookahead, slice threads only
(``thread_type = "SLICE"``, libavcodec's automatic thread count: 2 threads, 2 slices for x264, on
a 2-core machine), key frames when asked. The only thing changed is the option dict that
``_options`` gives it: a copy of the product's with ``preset`` (and ``tune``, x264/x265 params)
overridden (:meth:`Setting.options`). Decoding is the product's ``VideoDecoder`` (libavcodec,
integer YUV -> RGB / gray), so PSNR is measured on the picture a subscriber sees: RGB with
``eval.metrics.psnr`` over the three channels, thermal on the gray plane; per-frame PSNR capped at
100 dB and averaged over all frames of all sequences; bpp over the pixels of one frame.

1. Frontier (``m3svd_seq``, lossless PNG, 640x480): for each layer, encoder (libx264, libx265),
   preset (ultrafast .. medium) and psy variant (tune zerolatency; zerolatency + psy off, which in
   constant-QP mode equals tune psnr / ssim because AQ is off there: x264 only where psy-rd acts,
   subme >= 6, i.e. presets fast and medium; elsewhere the slices are checked to be bit-identical
   and not coded twice), at QPs 37, 32, 27, 22, IDR every 10 frames: bpp, PSNR, encode time per
   frame (median, the ``encode`` call as the product makes it, colour conversion included), decode
   time, BD-rate against the project's anchor x265 low-delay P preset medium (eval/anchors.py
   ``x265_video``, keyint 10) and against the product's current setting. x265 settings carry
   ``info=0`` (the product's do not: it repeats a 2.2 kB version SEI at every IDR; the product's
   dict as it is is measured as an extra row). Then the pair (RGB setting, thermal setting) with
   the smallest bit-weighted BD-rate whose pair encode (RGB + thermal, one after the other) runs
   at >= ``--target-fps`` at every QP (median over frames), and a real sequential pair run of it.
2. Key frames for the chosen settings, on ``m3svd_seq`` and on the first ``--clip-frames`` frames
   of ``--clips`` (m3svd_video): GOP 10 IDR; a long GOP (IDR at the start only, then on request);
   periodic intra refresh (x264 ``intra-refresh=1``, period ``--refresh``; x265's
   ``intra-refresh`` too, measured and checked the same way). bpp per QP, BD-rate against GOP 10,
   and, on the clips at QP 27, how many frames a decoder that starts at every possible point waits
   until its picture is bit-identical to the full decode (and stays so): libavcodec with default
   flags, with ``flags2 +showall`` (how many wrong pictures it shows first), and the product's
   ``VideoDecoder``. The NAL units of the streams (IDR, SPS/PPS, SEI payload types, recovery point
   SEI and its fields) say what a WebCodecs player (Foxglove) would see.

    flock /tmp/mmc-cpu.lock .venv/bin/python benchmarks/encoder_settings.py --out docs/results/encoder_settings.json
    .venv/bin/python benchmarks/encoder_settings.py --quick --out /tmp/encoder_settings.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import sys
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from mm_compress_ros.codec import videocodec as vc  # noqa: E402
from mm_compress_ros.codec.videocodec import LowDelayEncoder, VideoCodecError, VideoDecoder  # noqa: E402
from mm_compress_ros.eval.anchors import x265_video  # noqa: E402
from mm_compress_ros.eval.bdrate import BDError, bd_psnr, bd_rate  # noqa: E402
from mm_compress_ros.eval.metrics import bpp, psnr  # noqa: E402
from mm_compress_ros.eval.engine import cpu_name  # noqa: E402

PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium")
QPS = (37, 32, 27, 22)
LAYERS = ("rgb", "thermal")
CHANNELS = {"rgb": 3, "thermal": 1}
ENCODER_OF = {"h264": "libx264", "h265": "libx265"}
SHORT = {"h264": "x264", "h265": "x265"}
GOP = 10
PSNR_CAP = 100.0
RATES_HZ = (10, 30)
CLIPS = ("0113_1714", "0117_1605")
JOIN_QP = 27
PRODUCT_OPTIONS = vc._options   # the product's option dicts, captured before anything else runs


# -- settings -----------------------------------------------------------------------------------

# params this benchmark sets itself: dropped from the product's params first, so a setting means
# the same whatever the product's current choice (preset defaults unless the setting says otherwise)
OWN_PARAMS = {"libx264": ("psy",), "libx265": ("psy-rd", "psy-rdoq", "info")}


def _drop_params(params: str, keys) -> str:
    return ":".join(kv for kv in params.split(":") if kv and kv.split("=", 1)[0] not in keys)


@dataclass(frozen=True)
class Setting:
    codec: str              # h264 / h265
    preset: str
    psy: bool = True        # False: psy off (x264 psy=0; x265 psy-rd=0, psy-rdoq=0)
    refresh: int = 0        # periodic intra refresh with this period (0: none, IDRs when asked)
    info: bool = False      # x265: keep its version/options SEI (repeated at every IDR); else info=0
    as_is: bool = False     # the product's option dict exactly as _options gives it

    @property
    def encoder(self) -> str:
        return ENCODER_OF[self.codec]

    @property
    def name(self) -> str:
        if self.as_is:
            return f"{SHORT[self.codec]} product as is" + (f" ir{self.refresh}" if self.refresh else "")
        s = f"{SHORT[self.codec]} {self.preset} zl" + ("" if self.psy else "+psy0") + (" +info SEI" if self.info else "")
        return s + (f" ir{self.refresh}" if self.refresh else "")

    def options(self, qp: int) -> dict:
        """The product's ``_options`` dict with this setting's preset, tune and psy / info params
        (x264-params / x265-params are parsed in order, so an appended key wins)."""
        o = dict(PRODUCT_OPTIONS(self.encoder, qp))
        key = "x264-params" if self.encoder == "libx264" else "x265-params"
        if self.as_is:
            params = o[key]
        else:
            o["preset"], o["tune"] = self.preset, "zerolatency"
            params = _drop_params(o[key], OWN_PARAMS[self.encoder])
        if self.encoder == "libx264":
            params += "" if self.psy or self.as_is else ":psy=0"
            if self.refresh:
                o["g"] = str(self.refresh)
                params += f":intra-refresh=1:keyint={self.refresh}"
        else:
            if not self.as_is:
                params += ("" if self.info else ":info=0") + ("" if self.psy else ":psy-rd=0:psy-rdoq=0")
            if self.refresh:
                params += f":keyint={self.refresh}:intra-refresh=1"
        o[key] = params
        return o


# the product's settings before issue 21 (libx264 faster; libx265 superfast with its info SEI)
BEFORE = {"h264": Setting("h264", "faster"), "h265": Setting("h265", "superfast", info=True)}


class SettingEncoder(LowDelayEncoder):
    """The product's encoder, opened with ``setting``'s option dict instead of ``_options``'s."""

    def __init__(self, setting: Setting):
        super().__init__(setting.codec, encoder="software")
        self.setting = setting

    def _open(self, width: int, height: int, qp: int) -> None:
        opts = self.setting.options(qp)
        saved = vc._options
        vc._options = lambda *a, **k: dict(opts)
        try:
            super()._open(width, height, qp)
        finally:
            vc._options = saved


# -- bitstream inspection -----------------------------------------------------------------------

def split_nals(au: bytes) -> list[bytes]:
    starts, i = [], 0
    while True:
        j = au.find(b"\x00\x00\x01", i)
        if j < 0:
            break
        starts.append(j + 3)
        i = j + 3
    out = []
    for k, s in enumerate(starts):
        nal = au[s:starts[k + 1] - 3] if k + 1 < len(starts) else au[s:]
        out.append(nal.rstrip(b"\x00") if k + 1 < len(starts) else nal)
    return out


def _rbsp(b: bytes) -> bytes:
    return re.sub(b"\x00\x00\x03", b"\x00\x00", b)


def _sei_messages(payload: bytes) -> list[tuple[int, bytes]]:
    i, res = 0, []
    while i < len(payload) and payload[i:] != b"\x80":
        t = s = 0
        while payload[i] == 0xFF:
            t, i = t + 255, i + 1
        t, i = t + payload[i], i + 1
        while payload[i] == 0xFF:
            s, i = s + 255, i + 1
        s, i = s + payload[i], i + 1
        res.append((t, payload[i:i + s]))
        i += s
    return res


def _recovery_point(data: bytes) -> dict:
    bits = "".join(f"{b:08b}" for b in data)
    z = 0
    while bits[z] == "0":
        z += 1
    cnt = (1 << z) - 1 + (int(bits[z + 1:2 * z + 1], 2) if z else 0)
    p = 2 * z + 1
    return {"recovery_frame_cnt": cnt, "exact_match_flag": int(bits[p]), "broken_link_flag": int(bits[p + 1])}


def describe_au(au: bytes, codec: str) -> list[dict]:
    """NAL units of one access unit: type, bytes, SEI payload types, recovery point fields."""
    out = []
    for nal in split_nals(au):
        if codec == "h264":
            t, body, is_sei = nal[0] & 0x1F, nal[1:], (nal[0] & 0x1F) == 6
        else:
            t, body = (nal[0] >> 1) & 0x3F, nal[2:]
            is_sei = t in (39, 40)
        d = {"type": t, "bytes": len(nal)}
        if is_sei:
            msgs = _sei_messages(_rbsp(body))
            d["sei"] = [m[0] for m in msgs]
            for pt, data in msgs:
                if pt == 6:
                    d["recovery_point"] = _recovery_point(data)
        out.append(d)
    return out


def _ue(bits: str, p: int) -> tuple[int, int]:
    z = 0
    while bits[p] == "0":
        z, p = z + 1, p + 1
    p += 1
    return (1 << z) - 1 + (int(bits[p:p + z], 2) if z else 0), p + z


def h264_frame_num_bits(au: bytes) -> int | None:
    """log2_max_frame_num from the SPS of an H.264 access unit (None: no SPS, or one with scaling
    matrices, which this small parser does not walk)."""
    for nal in split_nals(au):
        if nal[0] & 0x1F != 7:
            continue
        b = "".join(f"{x:08b}" for x in _rbsp(nal[1:]))
        profile, p = int(b[:8], 2), 24
        _, p = _ue(b, p)
        if profile in (100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135):
            chroma, p = _ue(b, p)
            p += 1 if chroma == 3 else 0
            _, p = _ue(b, p)
            _, p = _ue(b, p)
            p += 1
            if b[p] == "1":
                return None
            p += 1
        v, p = _ue(b, p)
        return v + 4
    return None


def h264_frame_num(au: bytes, bits: int) -> int | None:
    """frame_num of the first slice of an H.264 access unit."""
    for nal in split_nals(au):
        if nal[0] & 0x1F in (1, 5):
            b = "".join(f"{x:08b}" for x in _rbsp(nal[1:12]))
            p = 0
            for _ in range(3):   # first_mb_in_slice, slice_type, pic_parameter_set_id
                _, p = _ue(b, p)
            return int(b[p:p + bits], 2)
    return None


def x264_options_text(au: bytes) -> str | None:
    m = re.search(rb"options: ([ -~]+)", au)
    return m.group(1).decode() if m else None


def _au_summary(desc: list[dict], codec: str) -> str:
    names264 = {1: "P/nonIDR", 5: "IDR", 6: "SEI", 7: "SPS", 8: "PPS"}
    names265 = {1: "TRAIL_R", 19: "IDR_W_RADL", 20: "IDR_N_LP", 32: "VPS", 33: "SPS", 34: "PPS", 39: "SEI"}
    names = names264 if codec == "h264" else names265
    parts = []
    for d in desc:
        n = names.get(d["type"], str(d["type"]))
        if "sei" in d:
            n += "(" + ",".join(str(x) for x in d["sei"]) + ")"
        if n not in parts:
            parts.append(n)
    return "+".join(parts)


# -- coding -------------------------------------------------------------------------------------

def code_layer(setting: Setting, seqs, layer: str, qp: int, key_every: int | None,
               keep_aus: bool = False) -> dict:
    """Codes every sequence's ``layer`` as one stream each with one encoder: a warm-up frame first
    (opens the context, not counted), then each sequence from a forced IDR, IDR every
    ``key_every`` frames (None: only the first). Fresh product decoder per sequence."""
    enc = SettingEncoder(setting)
    first = getattr(seqs[0], layer)[0]
    warm = enc.encode(first, qp, True)
    res = {"bits": [], "psnr": [], "enc_ms": [], "dec_ms": [], "key": [], "sequence": [], "index": [],
           "warmup_bytes": len(warm)}
    if keep_aus:
        res["aus"] = []
    for s in seqs:
        frames = getattr(s, layer)
        dec = VideoDecoder(setting.codec)
        for i, f in enumerate(frames):
            key = i == 0 or (key_every is not None and i % key_every == 0)
            t0 = time.perf_counter()
            au = enc.encode(f, qp, key)
            t1 = time.perf_counter()
            img = dec.decode(au, f.shape[:2], CHANNELS[layer])
            t2 = time.perf_counter()
            res["bits"].append(8 * len(au))
            res["psnr"].append(min(psnr(f, img), PSNR_CAP))
            res["enc_ms"].append(1e3 * (t1 - t0))
            res["dec_ms"].append(1e3 * (t2 - t1))
            res["key"].append(key)
            res["sequence"].append(s.name)
            res["index"].append(i)
            if keep_aus:
                res["aus"].append(au)
    px = first.shape[0] * first.shape[1]
    res["bpp"] = float(np.mean(res["bits"])) / px
    res["psnr_mean"] = float(np.mean(res["psnr"]))
    res["enc_ms_median"] = float(np.median(res["enc_ms"]))
    res["enc_ms_p90"] = float(np.percentile(res["enc_ms"], 90))
    res["enc_ms_mean"] = float(np.mean(res["enc_ms"]))
    res["dec_ms_median"] = float(np.median(res["dec_ms"]))
    res["x264_options"] = x264_options_text(warm) if setting.codec == "h264" else None
    return res


def compact(point: dict) -> dict:
    """A coded point for the JSON: per-frame lists rounded, no access units, no per-frame decode times."""
    out = {k: v for k, v in point.items() if k not in ("aus", "key", "sequence", "index", "dec_ms")}
    out["psnr"] = [round(v, 3) for v in point["psnr"]]
    out["enc_ms"] = [round(v, 3) for v in point["enc_ms"]]
    for k in ("bpp", "psnr_mean", "enc_ms_median", "enc_ms_p90", "enc_ms_mean", "dec_ms_median"):
        out[k] = round(point[k], 5)
    return out


def time_layer(setting: Setting, seqs, layer: str, qp: int, key_every: int = GOP) -> list[float]:
    """Encode times (ms) of every frame, as in :func:`code_layer` but nothing else in the loop."""
    enc = SettingEncoder(setting)
    enc.encode(getattr(seqs[0], layer)[0], qp, True)
    out = []
    for s in seqs:
        for i, f in enumerate(getattr(s, layer)):
            t0 = time.perf_counter()
            enc.encode(f, qp, i % key_every == 0)
            out.append(1e3 * (time.perf_counter() - t0))
    return out


def apply_timing(point: dict, passes: list[list[float]]) -> None:
    """Per-frame encode time = the smallest over the timing passes (what the encoder costs with the
    machine to itself); the quality pass's own median is kept beside it."""
    best = np.min(np.asarray(passes), axis=0)
    point.setdefault("enc_ms_quality_pass_median", point["enc_ms_median"])
    point["enc_ms_pass_medians"] = [round(float(np.median(p)), 3) for p in passes]
    point["enc_ms"] = [round(float(v), 3) for v in best]
    point["enc_ms_median"] = round(float(np.median(best)), 5)
    point["enc_ms_p90"] = round(float(np.percentile(best, 90)), 5)
    point["enc_ms_mean"] = round(float(np.mean(best)), 5)


def slices_identical(a: Setting, b: Setting, seqs, frames: int = 6, qp: int = 27) -> bool:
    """Whether two settings give bit-identical slice data (SEI text aside) on a few frames of both
    layers of the first sequence."""
    for layer in LAYERS:
        streams = []
        for s in (a, b):
            enc = SettingEncoder(s)
            aus = [enc.encode(f, qp, i == 0) for i, f in enumerate(getattr(seqs[0], layer)[:frames])]
            streams.append([n for au in aus for n in split_nals(au)
                            if not (s.codec == "h264" and n[0] & 0x1F == 6)
                            and not (s.codec == "h265" and (n[0] >> 1) & 0x3F in (39, 40))])
        if streams[0] != streams[1]:
            return False
    return True


def anchor_points(seqs, qps, layers) -> dict:
    """x265 low-delay P, preset medium (eval/anchors.py), keyint 10, per layer and QP."""
    out = {}
    for layer in layers:
        out[layer] = {}
        for qp in qps:
            b, p = [], []
            for s in seqs:
                frames = getattr(s, layer)
                for src, c in zip(frames, x265_video(frames, qp, keyint=GOP)):
                    b.append(bpp(c.bits, src.shape))
                    p.append(min(psnr(src, c.decoded), PSNR_CAP))
            out[layer][str(qp)] = {"bpp": float(np.mean(b)), "psnr": float(np.mean(p))}
    return out


def _bd(ref_pts: dict, test_pts: dict, qps) -> tuple[float | None, float | None]:
    """BD-rate (%) and BD-PSNR (dB) of ``test`` against ``ref``, both ``{qp: {bpp, psnr}}``."""
    try:
        rb, rp = [ref_pts[str(q)]["bpp"] for q in qps], [ref_pts[str(q)]["psnr"] for q in qps]
        tb, tp = [test_pts[str(q)]["bpp"] for q in qps], [test_pts[str(q)]["psnr"] for q in qps]
        return bd_rate(rb, rp, tb, tp), bd_psnr(rb, rp, tb, tp)
    except BDError:
        return None, None


def _pts(point_by_qp: dict, qps) -> dict:
    return {str(q): {"bpp": point_by_qp[str(q)]["bpp"], "psnr": point_by_qp[str(q)]["psnr_mean"]} for q in qps}


# -- pair ---------------------------------------------------------------------------------------

def pair_fps_from_frames(ra: dict, tb: dict, qps) -> dict:
    """Pair encode fps from per-frame times measured separately (same frames, same order)."""
    by_qp = {}
    for q in qps:
        t = np.asarray(ra[str(q)]["enc_ms"]) + np.asarray(tb[str(q)]["enc_ms"])
        by_qp[str(q)] = 1e3 / float(np.median(t))
    return {"by_qp": by_qp, "min": min(by_qp.values())}


def pair_run(rgb_setting: Setting, th_setting: Setting, seqs, qps, passes: int = 1) -> dict:
    """A real pair encoder: RGB encode, then thermal encode, per pair, one thread of Python, both
    encoders' own slice/WPP threads on the machine's cores. Per pair the smallest time over
    ``passes`` passes, then the median over pairs, per QP (and each pass's own median)."""
    out = {}
    for q in qps:
        runs = []
        for _ in range(max(1, passes)):
            er, et = SettingEncoder(rgb_setting), SettingEncoder(th_setting)
            er.encode(seqs[0].rgb[0], q, True)
            et.encode(seqs[0].thermal[0], q, True)
            times = []
            for s in seqs:
                for i, (rgb, th) in enumerate(zip(s.rgb, s.thermal)):
                    key = i % GOP == 0
                    t0 = time.perf_counter()
                    er.encode(rgb, q, key)
                    et.encode(th, q, key)
                    times.append(time.perf_counter() - t0)
            runs.append(times)
        best = np.min(np.asarray(runs), axis=0)
        out[str(q)] = {"pair_ms_median": 1e3 * float(np.median(best)), "fps": 1.0 / float(np.median(best)),
                       "pair_ms_p90": 1e3 * float(np.percentile(best, 90)),
                       "fps_per_pass": [round(1.0 / float(np.median(r)), 2) for r in runs]}
    return {"by_qp": out, "min_fps": min(v["fps"] for v in out.values()), "passes": max(1, passes)}


def pair_candidates(frontier: dict, names: list[str], weights: dict, target_fps: float, qps,
                    codecs: tuple[str, ...] | None = None) -> list[dict]:
    """Every (RGB, thermal) pair whose pair encode, estimated from the per-frame times, reaches
    ``target_fps`` at every QP; best (smallest bit-weighted BD-rate) first."""
    out = []
    for a in names:
        for b in names:
            fa, fb = frontier[a], frontier[b]
            if codecs and (fa["codec"] not in codecs or fb["codec"] not in codecs):
                continue
            bda, bdb = fa["rgb"]["bd_rate_vs_anchor"], fb["thermal"]["bd_rate_vs_anchor"]
            if bda is None or bdb is None:
                continue
            fps = pair_fps_from_frames(fa["rgb"]["points"], fb["thermal"]["points"], qps)
            combined = (weights["rgb"] * bda + weights["thermal"] * bdb) / (weights["rgb"] + weights["thermal"])
            if fps["min"] >= target_fps:
                out.append({"rgb": a, "thermal": b, "pair_fps_min": fps["min"], "pair_fps_by_qp": fps["by_qp"],
                            "bd_rate_rgb": bda, "bd_rate_thermal": bdb, "bd_rate_combined": combined})
    return sorted(out, key=lambda c: c["bd_rate_combined"])


def choose_pair(cands: list[dict], by_name: dict, seqs, qps, target_fps: float, measured: dict,
                passes: int = 1, tries: int = 8) -> dict | None:
    """The first candidate whose real sequential pair run also reaches ``target_fps`` at every QP;
    the candidates measured and rejected on the way are listed in ``rejected``."""
    rejected = []
    for c in cands[:tries]:
        k = (c["rgb"], c["thermal"])
        if k not in measured:
            measured[k] = pair_run(by_name[c["rgb"]], by_name[c["thermal"]], seqs, qps, passes)
        c = dict(c, measured=measured[k])
        if measured[k]["min_fps"] >= target_fps:
            c["rejected_before"] = rejected
            return c
        rejected.append({"rgb": c["rgb"], "thermal": c["thermal"], "measured_min_fps": measured[k]["min_fps"],
                         "bd_rate_combined": c["bd_rate_combined"]})
    return None


# -- late joiners -------------------------------------------------------------------------------

def _decode_planes(ctx, au: bytes) -> list[np.ndarray]:
    import av
    try:
        return [f.to_ndarray(format="yuv420p") for f in ctx.decode(av.Packet(au))]
    except (av.FFmpegError, ValueError):
        return []


def _new_decoder(codec: str, showall: bool):
    import av
    ctx = av.CodecContext.create(vc.CODECS[codec][2], "r")
    ctx.thread_type = "SLICE"
    if showall:
        ctx.options = {"flags2": "+showall"}
    return ctx


def late_join(aus: list[bytes], codec: str, starts, confirm: int, full_check: set[int],
              showall: bool = False) -> dict:
    """For every start j: a fresh libavcodec decoder fed aus[j:]. ``wait``: frames received until
    the first picture bit-identical to the full decode (inclusive), given that it then stays
    identical (checked for ``confirm`` frames, or to the end for starts in ``full_check``);
    ``wrong_shown``: pictures output before that which differ from the full decode."""
    ref_ctx = _new_decoder(codec, False)
    ref = []
    for au in aus:
        p = _decode_planes(ref_ctx, au)
        if len(p) != 1:
            raise VideoCodecError("the full decode does not give one picture per access unit")
        ref.append(p[0])
    rows = []
    for j in starts:
        ctx = _new_decoder(codec, showall)
        first, wrong, stays, checked = None, 0, True, 0
        for k in range(j, len(aus)):
            pics = _decode_planes(ctx, aus[k])
            ok = len(pics) == 1 and np.array_equal(pics[0], ref[k])
            if first is None:
                if ok:
                    first = k
                elif pics:
                    wrong += 1
            else:
                checked += 1
                if not ok:
                    stays = False
                    break
                if j not in full_check and checked >= confirm:
                    break
        rows.append({"start": j, "wait": None if first is None else first - j + 1, "wrong_shown": wrong,
                     "stays_exact": stays if first is not None else None,
                     "checked_to_end": j in full_check})
    waits = [r["wait"] for r in rows if r["wait"] is not None]
    return {"starts": len(rows), "recovered": len(waits), "never": len(rows) - len(waits),
            "wait_max": max(waits) if waits else None, "wait_mean": float(np.mean(waits)) if waits else None,
            "wrong_shown_max": max(r["wrong_shown"] for r in rows),
            "all_stay_exact": all(r["stays_exact"] in (True, None) for r in rows),
            "rows": rows}


def product_decoder_join(aus: list[bytes], codec: str, start: int, size, channels: int,
                         ref_imgs: list[np.ndarray]) -> dict:
    """The product's VideoDecoder fed aus[start:]: pictures it gives, errors, first exact one."""
    dec = VideoDecoder(codec)
    pics = errors = 0
    first = None
    for k in range(start, len(aus)):
        try:
            img = dec.decode(aus[k], size, channels)
        except VideoCodecError:
            errors += 1
            continue
        pics += 1
        if first is None and np.array_equal(img, ref_imgs[k]):
            first = k
    return {"start": start, "pictures": pics, "errors": errors,
            "first_exact_wait": None if first is None else first - start + 1}


# -- key-frame modes ----------------------------------------------------------------------------

def keyframe_modes(setting: Setting, gops, refreshes) -> list[tuple[str, Setting, int | None]]:
    modes = [(f"GOP {g} IDR", setting, g) for g in sorted(set([GOP] + list(gops)))]
    modes.append(("long GOP (IDR on request)", setting, None))
    for n in refreshes:
        modes.append((f"intra refresh {n}", replace(setting, refresh=n), None))
    return modes


def run_keyframes(setting: Setting, layer: str, materials: dict, qps, gops, refreshes, join_starts: int,
                  progress) -> dict:
    out = {"setting": setting.name, "layer": layer, "materials": {}}
    for mname, seqs in materials.items():
        mres = {}
        for label, s, key_every in keyframe_modes(setting, gops, refreshes):
            pts, join = {}, None
            for q in qps:
                keep = mname == "m3svd_video" and q == JOIN_QP
                p = code_layer(s, seqs, layer, q, key_every, keep_aus=keep)
                progress()
                if keep:
                    join = _joins(p, s, seqs, layer, join_starts, period=s.refresh or key_every or GOP)
                pts[str(q)] = compact(p)
            mres[label] = {"setting": s.name, "options_qp27": s.options(JOIN_QP), "points": pts,
                           "late_join": join}
        base = _pts(mres["GOP 10 IDR"]["points"], qps)
        for label, m in mres.items():
            m["bd_rate_vs_gop10"], m["bd_psnr_vs_gop10"] = _bd(base, _pts(m["points"], qps), qps)
        out["materials"][mname] = mres
    return out


def _joins(p: dict, s: Setting, seqs, layer: str, join_starts: int, period: int) -> dict:
    """Late-joiner checks on every clip's stream (aus of ``p``, grouped by sequence)."""
    res = {}
    for seq in seqs:
        idx = [i for i, n in enumerate(p["sequence"]) if n == seq.name]
        aus = [p["aus"][i] for i in idx]
        n = len(aus)
        starts = list(range(1, min(n - 1, join_starts + 1)))
        full = {starts[0], starts[len(starts) // 2]} if starts else set()
        confirm = 16
        r = {"frames": n,
             "default": late_join(aus, s.codec, starts, confirm, full),
             "showall": late_join(aus, s.codec, starts[::max(1, len(starts) // 8)], confirm, set(), showall=True)}
        # the product's decoder, joining one frame after a key frame / wave start
        frames = getattr(seq, layer)
        full_dec = VideoDecoder(s.codec)
        ref_imgs = [full_dec.decode(au, frames[0].shape[:2], CHANNELS[layer]) for au in aus]
        r["product_decoder"] = product_decoder_join(aus, s.codec, min(period + 1, n - 1), frames[0].shape[:2],
                                                    CHANNELS[layer], ref_imgs)
        # what the stream looks like: the first access units, the kinds of access unit
        kinds = {}
        for i, au in enumerate(aus):
            d = describe_au(au, s.codec)
            summ = _au_summary(d, s.codec)
            e = kinds.setdefault(summ, {"count": 0, "first_frames": [], "recovery_point": None})
            e["count"] += 1
            if len(e["first_frames"]) < 4:
                e["first_frames"].append(i)
            for nal in d:
                if "recovery_point" in nal:
                    e["recovery_point"] = nal["recovery_point"]
        r["access_units"] = kinds
        if s.codec == "h264":
            fn_bits = h264_frame_num_bits(aus[0])
            r["log2_max_frame_num"] = fn_bits
            if fn_bits:
                r["wave_start_frame_num"] = {i: h264_frame_num(au, fn_bits) for i, au in enumerate(aus)
                                             if any("recovery_point" in d for d in describe_au(au, "h264"))}
        r["default_wrong_starts"] = [row["start"] for row in r["default"]["rows"] if row["wrong_shown"]]
        res[seq.name] = r
    return res


def key_request_check(setting: Setting, seqs, layer: str, refresh: int, at: int = 25) -> dict:
    """An IDR asked for in the middle of an intra-refresh stream: what comes out."""
    s = replace(setting, refresh=refresh)
    enc = SettingEncoder(s)
    frames = getattr(seqs[0], layer)
    kinds = []
    for i in range(min(len(frames), at + refresh + 2)):
        au = enc.encode(frames[i], JOIN_QP, i == 0 or i == at)
        kinds.append(_au_summary(describe_au(au, s.codec), s.codec))
    return {"setting": s.name, "requested_at": at, "access_units": kinds}


# -- report -------------------------------------------------------------------------------------

def machine() -> dict:
    import av
    return {"cpu": cpu_name(), "logical_cpus": os.cpu_count(), "pyav": av.__version__,
            "libavcodec": ".".join(map(str, av.library_versions.get("libavcodec", ()))),
            "python": platform.python_version(), "platform": platform.platform()}


def loadavg():
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def pareto(rows: list[dict]) -> set[str]:
    """Names of settings no other setting beats on both encode time and BD-rate."""
    keep = set()
    for r in rows:
        if r["bd"] is None:
            continue
        if not any(o is not r and o["bd"] is not None and o["ms"] <= r["ms"] and o["bd"] <= r["bd"]
                   and (o["ms"] < r["ms"] or o["bd"] < r["bd"]) for o in rows):
            keep.add(r["name"])
    return keep


def _f(v, nd=1, suffix=""):
    return "-" if v is None else f"{v:.{nd}f}{suffix}"


def _s(v):
    return "-" if v is None else f"{v:+.1f} %"


def render_markdown(res: dict) -> str:
    L = []
    qps = res["qps"]
    m = res["machine"]
    L.append(f"CPU {m['cpu']}, {m['logical_cpus']} logical CPUs; PyAV {m['pyav']} (libavcodec {m['libavcodec']}); "
             f"load average {res['loadavg_start']} at the start, {res['loadavg_end']} at the end. "
             f"Data: {', '.join(s['name'] for s in res['sequences'])} (m3svd_seq, {res['frames_per_sequence']} "
             f"frames each, 640x480). GOP {GOP} IDR, QPs {', '.join(map(str, qps))}; times: median over all "
             "frames of the product's `LowDelayEncoder.encode` (colour conversion included), each frame's "
             f"time the smallest of {res.get('timing_passes', 0)} encode-only passes (0: the quality pass).\n")
    for layer in LAYERS:
        L.append(f"**{layer}** (BD-rate vs x265 low-delay P preset medium, keyint 10, eval/anchors.py; "
                 f"\"vs before\": vs the product's setting of the same codec before issue 21; "
                 f"(now) / (before): the product's settings)\n")
        L.append(f"| setting | enc ms QP {qps[0]} / {qps[-1]} | enc fps (worst QP) | bpp QP {qps[0]} / {qps[-1]} "
                 f"| PSNR QP {qps[0]} / {qps[-1]} | BD-rate vs anchor | BD-PSNR | BD-rate vs before | frontier |")
        L.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | :---: |")
        for name, f in res["frontier"].items():
            e = f[layer]
            p = e["points"]
            ms = [p[str(q)]["enc_ms_median"] for q in qps]
            tag = "".join(f" ({t})" for t, k in (("now", "product_setting"), ("before", "before_setting"))
                          if res.get(k, {}).get(f["codec"]) == name)
            L.append(f"| {name}{tag} | {ms[0]:.1f} / {ms[-1]:.1f} | {1e3 / max(ms):.0f} | "
                     f"{p[str(qps[0])]['bpp']:.4f} / {p[str(qps[-1])]['bpp']:.4f} | "
                     f"{p[str(qps[0])]['psnr_mean']:.2f} / {p[str(qps[-1])]['psnr_mean']:.2f} | "
                     f"{_s(e['bd_rate_vs_anchor'])} | {_f(e['bd_psnr_vs_anchor'], 2, ' dB')} | "
                     f"{_s(e['bd_rate_vs_before'])} | {'*' if e['on_frontier'] else ''} |")
        a = res["anchor"][layer]
        L.append(f"| anchor x265 LDP medium | - | - | {a[str(qps[0])]['bpp']:.4f} / {a[str(qps[-1])]['bpp']:.4f} | "
                 f"{a[str(qps[0])]['psnr']:.2f} / {a[str(qps[-1])]['psnr']:.2f} | 0 | 0 | - | |")
        L.append("")
    same = res.get("psy0_identical", {})
    if same:
        L.append("psy off gives bit-identical slices (not coded twice) for: "
                 + ", ".join(k for k, v in same.items() if v) + ".\n")
    ch = res["choice"]
    L.append(f"**Chosen pair** (smallest bit-weighted BD-rate with pair encode >= {res['target_fps']:.0f} fps at every QP, "
             f"from per-frame times; weights = anchor bpp: RGB {res['weights']['rgb']:.3f}, thermal "
             f"{res['weights']['thermal']:.3f}):\n")
    L.append("| pair | RGB setting | thermal setting | BD-rate RGB | BD-rate thermal | combined | pair fps (worst QP, per-frame times) "
             "| pair fps measured, per QP " + " / ".join(map(str, qps)) + " |")
    L.append("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for label, c in ch.items():
        if c is None:
            L.append(f"| {label} | none reaches the target | | | | | | |")
            continue
        run = c.get("measured")
        meas = " / ".join(f"{run['by_qp'][str(q)]['fps']:.0f}" for q in qps) if run else "-"
        L.append(f"| {label} | {c['rgb']} | {c['thermal']} | {_s(c['bd_rate_rgb'])} | {_s(c['bd_rate_thermal'])} | "
                 f"{_s(c['bd_rate_combined'])} | {c['pair_fps_min']:.0f} | {meas} |")
    for label, c in ch.items():
        for r in (c or {}).get("rejected_before", []):
            L.append(f"- {label}: {r['rgb']} + {r['thermal']} (combined {_s(r['bd_rate_combined'])}) was fast enough "
                     f"from the per-frame times but measured {r['measured_min_fps']:.1f} fps as a pair: rejected.")
    L.append("")
    kf = res.get("keyframes")
    if kf:
        L.append(f"**Key frames** (bpp at QP {' / '.join(map(str, qps))}; BD-rate against GOP 10 IDR of the same "
                 f"setting; late joiner on the m3svd_video clips at QP {JOIN_QP}, every start point "
                 f"1..{res['join_starts']}: frames until the first picture bit-identical to the full decode with "
                 "libavcodec's default flags, worst / mean, and that worst in seconds at 10 / 30 Hz; "
                 "'never' = not within the clip)\n")
        L.append("| layer | setting | material | mode | bpp per QP | PSNR QP 27 | BD-rate vs GOP 10 | join wait worst / mean (frames) "
                 "| worst s @10 / @30 Hz | wrong pictures shown (+showall) | product VideoDecoder |")
        L.append("| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
        for entry in kf:
            for mname, modes in entry["materials"].items():
                for label, mm in modes.items():
                    p = mm["points"]
                    bp = " / ".join(f"{p[str(q)]['bpp']:.4f}" for q in qps)
                    ps = p.get(str(JOIN_QP), {}).get("psnr_mean")
                    j = mm.get("late_join")
                    if j:
                        waits = [c["default"]["wait_max"] for c in j.values()]
                        means = [c["default"]["wait_mean"] for c in j.values()]
                        never = sum(c["default"]["never"] for c in j.values())
                        starts = sum(c["default"]["starts"] for c in j.values())
                        if None in waits or never:
                            wait = "never" if never == starts else f"{max(w for w in waits if w)} ({never}/{starts} never)"
                            secs = "-"
                        else:
                            wait = f"{max(waits)} / {np.mean(means):.1f}"
                            secs = f"{max(waits) / 10:.2f} / {max(waits) / 30:.2f}"
                        wrong = max(c["showall"]["wrong_shown_max"] for c in j.values())
                        pdj = [c["product_decoder"] for c in j.values()]
                        prod = ("recovers" if all(d["first_exact_wait"] for d in pdj)
                                else f"no picture ({pdj[0]['errors']} errors)" if not any(d["pictures"] for d in pdj)
                                else "wrong pictures")
                    else:
                        wait = secs = wrong = prod = "-"
                    L.append(f"| {entry['layer']} | {entry['setting']} | {mname} | {label} | {bp} | {_f(ps, 2)} | "
                             f"{_s(mm['bd_rate_vs_gop10'])} | {wait} | {secs} | {wrong} | {prod} |")
        L.append("")
        L.append("Access units of the clip streams (QP 27, first clip): kind x count (first frames), "
                 "recovery point SEI (H.264 SEI payload type 6):\n")
        seen = set()
        for entry in kf:
            for label, mm in entry["materials"].get("m3svd_video", {}).items():
                j = mm.get("late_join")
                if not j or mm["setting"] in seen:
                    continue
                seen.add(mm["setting"])
                kinds = next(iter(j.values()))["access_units"]
                txt = "; ".join(f"{k} x{v['count']} ({', '.join(map(str, v['first_frames']))})"
                                + (f" recovery_frame_cnt {v['recovery_point']['recovery_frame_cnt']}, exact_match "
                                   f"{v['recovery_point']['exact_match_flag']}" if v["recovery_point"] else "")
                                for k, v in kinds.items())
                L.append(f"- `{mm['setting']}` ({entry['layer']}): {txt}")
                for clip, c in j.items():
                    bad = c.get("default_wrong_starts")
                    if bad:
                        zero = [f for f, n in c.get("wave_start_frame_num", {}).items() if n == 0]
                        L.append(f"  - {clip}: with default flags, joiners starting at frames {bad[0]}..{bad[-1]} "
                                 f"were shown wrong pictures after the recovery point (exact only after the next "
                                 f"wave); wave starts with frame_num 0 (log2_max_frame_num "
                                 f"{c.get('log2_max_frame_num')}): frames {', '.join(map(str, zero))}")
        L.append("")
    for e in res.get("key_request", []):
        at = e["requested_at"]
        shown = ", ".join(f"{i}: {k}" for i, k in enumerate(e["access_units"]) if i in (0, 1, at - 1, at, at + 1))
        L.append(f"IDR asked for at frame {at} of `{e['setting']}`: {shown}\n")
    return "\n".join(L)


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    qps = res["qps"]
    fig, axes = plt.subplots(2, 2, figsize=(13, 10))
    cmap = plt.get_cmap("viridis")
    for col, layer in enumerate(LAYERS):
        ax = axes[0, col]
        for name, f in res["frontier"].items():
            p = f[layer]["points"]
            ci = PRESETS.index(f["preset"]) / (len(PRESETS) - 1) if f["preset"] in PRESETS else 0.5
            ls = "-" if f["codec"] == "h264" else "--"
            mk = "o" if f["psy"] else "x"
            ax.plot([p[str(q)]["bpp"] for q in qps], [p[str(q)]["psnr_mean"] for q in qps], ls, marker=mk,
                    color=cmap(ci), lw=1, ms=3, label=name)
        a = res["anchor"][layer]
        ax.plot([a[str(q)]["bpp"] for q in qps], [a[str(q)]["psnr"] for q in qps], "k:", marker="s", lw=2,
                label="anchor x265 LDP medium")
        ax.set_xscale("log")
        ax.set_xlabel("bpp")
        ax.set_ylabel("PSNR (dB)")
        ax.set_title(f"{layer}: solid x264, dashed x265 (colour: preset ultrafast -> medium)")
        ax.grid(True, alpha=0.3)
        if col == 1:
            ax.legend(fontsize=6, ncol=2)
        ax = axes[1, col]
        for name, f in res["frontier"].items():
            e = f[layer]
            if e["bd_rate_vs_anchor"] is None:
                continue
            ms = max(e["points"][str(q)]["enc_ms_median"] for q in qps)
            ax.scatter(ms, e["bd_rate_vs_anchor"], marker="o" if f["codec"] == "h264" else "^",
                       color="tab:red" if e["on_frontier"] else "tab:blue")
            ax.annotate(name.replace(" zl", ""), (ms, e["bd_rate_vs_anchor"]), fontsize=6)
        ax.set_xlabel("encode ms per frame (median, slowest QP)")
        ax.set_ylabel("BD-rate vs x265 LDP medium (%)")
        ax.set_title(f"{layer}: speed vs BD-rate (red: frontier; o x264, ^ x265)")
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- main ---------------------------------------------------------------------------------------

def main(argv=None) -> int:
    from tqdm import tqdm

    from mm_compress_ros.eval.sequences import load_sequences
    from mm_compress_ros.io.frames import FrameSourceError, default_data_root

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", help="data root (default ../shared/data): m3svd_seq/ and m3svd_video/ under it")
    ap.add_argument("--frames", type=int, default=20, help="frames per m3svd_seq sequence")
    ap.add_argument("--sequences", nargs="+", help="m3svd_seq sequences (default: all)")
    ap.add_argument("--clips", nargs="+", default=list(CLIPS), help="m3svd_video clips for the key-frame part")
    ap.add_argument("--clip-frames", type=int, default=150)
    ap.add_argument("--presets", nargs="+", default=list(PRESETS))
    ap.add_argument("--codecs", nargs="+", default=["h264", "h265"])
    ap.add_argument("--qps", type=int, nargs="+", default=list(QPS))
    ap.add_argument("--gops", type=int, nargs="+", default=[10, 30], help="IDR periods of the key-frame part")
    ap.add_argument("--refresh", type=int, nargs="+", default=[5, 10, 30], help="intra-refresh periods")
    ap.add_argument("--join-starts", type=int, default=90, help="late-join start points 1..N per clip")
    ap.add_argument("--target-fps", type=float, default=30.0)
    ap.add_argument("--timing-passes", type=int, default=3,
                    help="encode-only timing passes (per-frame minimum over them; 0: the quality pass's times)")
    ap.add_argument("--no-psy", action="store_true", help="skip the psy-off variants")
    ap.add_argument("--no-keyframes", action="store_true", help="skip part 2")
    ap.add_argument("--quick", action="store_true", help="a fast check: 2 sequences x 8 frames, 2 presets, "
                    "one clip of 40 frames")
    ap.add_argument("--out", default="docs/results/encoder_settings.json")
    ap.add_argument("--plot", help="PNG path (default: beside --out, .png)")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--resume", action="store_true",
                    help="continue from the checkpoint (written after every phase) of an interrupted run")
    ap.add_argument("--checkpoint", help="checkpoint file (default OUT with .partial.json); removed at the end")
    args = ap.parse_args(argv)
    if args.quick:
        args.frames = min(args.frames, 8)
        args.presets = [p for p in args.presets if p in ("ultrafast", "faster")] or args.presets[:2]
        args.clips, args.clip_frames, args.join_starts = args.clips[:1], min(args.clip_frames, 40), 15
        args.refresh, args.gops = [10], [10]
        args.no_psy = True
        args.timing_passes = min(args.timing_passes, 1)
    qps = sorted(set(args.qps), reverse=True)
    try:
        root = Path(args.data) if args.data else (default_data_root() or Path("../shared/data"))
        seqs = load_sequences(root / "m3svd_seq", frames=args.frames, sequences=args.sequences)
        if args.quick and not args.sequences:
            seqs = seqs[:2]
        clips = [] if args.no_keyframes else load_sequences(root / "m3svd_video", frames=args.clip_frames,
                                                              sequences=args.clips)
    except (FrameSourceError, ValueError) as exc:
        print(f"encoder_settings: error: {exc}", file=sys.stderr)
        return 2
    t_start = time.perf_counter()
    res = {"command": "benchmarks/encoder_settings.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])),
           "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(),
           "loadavg_start": loadavg(), "qps": qps, "gop": GOP, "target_fps": args.target_fps,
           "frames_per_sequence": args.frames, "join_starts": args.join_starts,
           "sequences": [{"name": s.name, "frames": len(s)} for s in seqs],
           "clips": [{"name": s.name, "frames": len(s)} for s in clips],
           "product_options": {e: PRODUCT_OPTIONS(e, 27) for e in ("libx264", "libx265")}}
    res["config"] = {k: getattr(args, k) for k in ("frames", "sequences", "clips", "clip_frames", "presets", "codecs",
                                                   "qps", "gops", "refresh", "join_starts", "target_fps",
                                                   "no_psy", "timing_passes", "quick")}
    out = Path(args.out)
    partial_path = Path(args.checkpoint) if args.checkpoint else out.with_name(out.stem + ".partial.json")
    done: dict = {}
    if args.resume and partial_path.exists():
        done = json.loads(partial_path.read_text())
        if done.get("config") != res["config"]:
            print(f"encoder_settings: error: {partial_path} is from another configuration", file=sys.stderr)
            return 2
        res["resumed_from"] = done.get("date")

    def checkpoint(**parts):
        done.update(parts)
        done["config"], done["date"] = res["config"], res["date"]
        partial_path.parent.mkdir(parents=True, exist_ok=True)
        partial_path.write_text(json.dumps(done, separators=(",", ":")))

    # settings: every preset, zl; psy-off variants where they change anything; the product as is
    settings: list[Setting] = []
    psy_same = {}
    for codec in args.codecs:
        for preset in args.presets:
            settings.append(Setting(codec, preset))
            if not args.no_psy:
                s0 = Setting(codec, preset, psy=False)
                same = slices_identical(Setting(codec, preset), s0, seqs)
                psy_same[s0.name] = same
                if not same:
                    settings.append(s0)
    res["psy0_identical"] = psy_same
    # the product's settings before issue 21 and now (_options as it is), unless already in the list
    res["before_setting"], res["product_setting"] = {}, {}
    for codec in args.codecs:
        for kind, s in (("before_setting", BEFORE[codec]), ("product_setting", Setting(codec, "", as_is=True))):
            equal = [t for t in settings if t.codec == codec and t.options(27) == s.options(27)]
            if not equal:
                settings.append(s)
            res[kind][codec] = (equal[0] if equal else s).name

    n_steps = len(settings) * len(LAYERS) * len(qps)
    bar = tqdm(total=n_steps, desc="frontier", unit="point", disable=args.no_progress)
    frontier = dict(done.get("frontier", {}))
    for s in settings:
        if s.name in frontier:
            bar.update(len(LAYERS) * len(qps))
            continue
        e = {"codec": s.codec, "preset": s.preset or "as is", "psy": s.psy, "as_is": s.as_is,
             "options_qp27": s.options(27), "loadavg_before": loadavg()}
        for layer in LAYERS:
            pts = {}
            for q in qps:
                pts[str(q)] = compact(code_layer(s, seqs, layer, q, GOP))
                bar.update()
            e[layer] = {"points": pts}
        frontier[s.name] = e
        checkpoint(frontier=frontier)
    bar.close()
    if args.timing_passes:
        passes = {k: list(v) for k, v in done.get("timing_runs", {}).items()}
        for n in frontier:
            for layer in LAYERS:
                for q in qps:
                    passes.setdefault(f"{n}|{layer}|{q}", [])
        bar = tqdm(total=args.timing_passes * len(passes), desc="timing", unit="point", disable=args.no_progress)
        for i in range(args.timing_passes):      # passes outermost: a busy spell hits one pass, not one setting
            for s in settings:
                for layer in LAYERS:
                    for q in qps:
                        runs = passes[f"{s.name}|{layer}|{q}"]
                        if len(runs) <= i:
                            runs.append(time_layer(s, seqs, layer, q))
                        bar.update()
            checkpoint(frontier=frontier, timing_runs=passes)
        bar.close()
        for key, runs in passes.items():
            n, layer, q = key.split("|")
            apply_timing(frontier[n][layer]["points"][q], runs)
    res["timing_passes"] = args.timing_passes
    res["anchor"] = done.get("anchor") or anchor_points(seqs, qps, LAYERS)
    checkpoint(anchor=res["anchor"])
    for name, e in frontier.items():
        before = res["before_setting"][e["codec"]]
        for layer in LAYERS:
            mine = _pts(e[layer]["points"], qps)
            e[layer]["bd_rate_vs_anchor"], e[layer]["bd_psnr_vs_anchor"] = _bd(res["anchor"][layer], mine, qps)
            e[layer]["bd_rate_vs_before"], _ = _bd(_pts(frontier[before][layer]["points"], qps), mine, qps)
    for layer in LAYERS:
        rows = [{"name": n, "ms": max(e[layer]["points"][str(q)]["enc_ms_median"] for q in qps),
                 "bd": e[layer]["bd_rate_vs_anchor"]} for n, e in frontier.items()]
        front = pareto(rows)
        for n, e in frontier.items():
            e[layer]["on_frontier"] = n in front
    res["frontier"] = frontier

    # the pair
    weights = {layer: float(np.mean([res["anchor"][layer][str(q)]["bpp"] for q in qps])) for layer in LAYERS}
    res["weights"] = weights
    names = list(frontier)
    by_name = {s.name: s for s in settings}
    if "choice" in done:
        choice = done["choice"]
    else:
        measured: dict = {}
        choice = {}
        groups = [("best (any codecs)", None)] + [(f"best, both {SHORT[c]}", (c,)) for c in args.codecs]
        for label, codecs in tqdm(groups, desc="pair runs", disable=args.no_progress):
            cands = pair_candidates(frontier, names, weights, args.target_fps, qps, codecs)
            choice[label] = choose_pair(cands, by_name, seqs, qps, args.target_fps, measured, args.timing_passes)
        for label, kind in (("product now (_options)", "product_setting"), ("product before #21", "before_setting")):
            prod = res[kind][args.codecs[0]]
            p0 = pair_fps_from_frames(frontier[prod]["rgb"]["points"], frontier[prod]["thermal"]["points"], qps)
            bd_r, bd_t = frontier[prod]["rgb"]["bd_rate_vs_anchor"], frontier[prod]["thermal"]["bd_rate_vs_anchor"]
            k = (prod, prod)
            if k not in measured:
                measured[k] = pair_run(by_name[prod], by_name[prod], seqs, qps, args.timing_passes)
            choice[label] = {"rgb": prod, "thermal": prod, "pair_fps_min": p0["min"], "pair_fps_by_qp": p0["by_qp"],
                             "bd_rate_rgb": bd_r, "bd_rate_thermal": bd_t,
                             "bd_rate_combined": (weights["rgb"] * bd_r + weights["thermal"] * bd_t)
                             / (weights["rgb"] + weights["thermal"]), "measured": measured[k]}
        checkpoint(choice=choice)
    res["choice"] = choice

    # key frames
    if not args.no_keyframes:
        best = choice["best (any codecs)"] or choice["product now (_options)"]
        jobs = []
        for layer in LAYERS:
            s = by_name[best[layer]]
            jobs.append((s, layer))
            if s.codec != "h264":   # intra refresh with a recovery point is x264's: add the best x264 pair
                alt = choice.get("best, both x264")
                if alt:
                    jobs.append((by_name[alt[layer]], layer))
        materials = {"m3svd_seq": seqs, "m3svd_video": clips}
        n_modes = len(set([GOP] + args.gops)) + 1 + len(args.refresh)
        bar = tqdm(total=len(jobs) * len(materials) * n_modes * len(qps), desc="key frames", unit="point",
                   disable=args.no_progress)
        res["keyframes"] = list(done.get("keyframes", []))
        for s, layer in jobs[len(res["keyframes"]):]:
            res["keyframes"].append(run_keyframes(s, layer, materials, qps, args.gops, args.refresh,
                                                  args.join_starts, bar.update))
            checkpoint(keyframes=res["keyframes"])
        bar.close()
        seen = set()
        res["key_request"] = []
        for s, layer in jobs:
            if s.codec not in seen:
                seen.add(s.codec)
                res["key_request"].append(key_request_check(s, clips, layer, 10))
    res["loadavg_end"] = loadavg()
    res["seconds"] = round(time.perf_counter() - t_start, 1)

    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=None, separators=(",", ":")) + "\n")
    png = Path(args.plot) if args.plot else out.with_suffix(".png")
    try:
        plot(res, png)
    except ImportError:
        png = None
    if partial_path.exists():
        partial_path.unlink()
    md = render_markdown(res)
    print(md)
    print(json.dumps({"out": str(out), "plot": str(png) if png else None, "seconds": res["seconds"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
