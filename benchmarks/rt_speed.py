#!/usr/bin/env python3
"""Speed of the real-time dependent codec (codec/rtcodec.py) on this CPU, with the H.264 / H.265
reference layer, against x265 on the thermal alone and the first design's dependent codec.

    .venv/bin/python benchmarks/rt_speed.py --model NAME --write-docs      # a trained model (zoo)
    .venv/bin/python benchmarks/rt_speed.py --random                       # seeded random frozen net
    .venv/bin/python benchmarks/rt_speed.py --weights runs/rt-s5/checkpoint.safetensors
    .venv/bin/python benchmarks/rt_speed.py --random --seqs 1 --frames 3 --threads 1 --levels 33 \\
        --size 128x192 --out /tmp/rt_speed.json                            # a smoke run

What is measured (CPU, encoder and decoder in one process, one frame at a time):

* for every ``--threads`` T (``torch.set_num_threads``), quality level of ``--levels`` (1..64) and
  reference codec of ``--refs``: the first ``--frames`` frames of every m3svd_seq sequence as GOPs
  of ``--gop`` (a key frame, then predicted frames), thermal coded given RGB. Per frame:
  reference encode (libx264 / libx265, low delay, QP of the level), reference decode (libavcodec +
  the exact integer YUV->RGB + tensor), dependent encode (thermal -> tensor -> ``compress``) and
  dependent decode (``decompress`` -> 8-bit image). Before each configuration ``--warmup`` frames
  (a short GOP of the first sequence) are coded untimed. Medians over the frames: dependent fps
  each way, and pair fps (encode: reference encode + reference decode, which the encoder needs for
  its own reference, + dependent encode; decode: reference decode + dependent decode);
* bytes of every dependent frame by section (align / y / z), the fraction of latent elements
  actually coded (not skipped), the decoder's bit-exactness against the encoder, and whether the
  bitstreams are identical for every thread count;
* MACs per pixel of the RT codec (convolutions: ``nn.Conv2d`` and ``IntConv2d``), encoder and
  decoder, key and predicted frames, for a 640x480 frame (padded to 640x512) over 640*480 pixels;
* baselines in the same run: x265 (libx265 through ``LowDelayEncoder``, same settings as the
  reference layer) encoding the thermal frames alone at the level's QP (libx265's own threading,
  not torch's), and, when ``models/mmvc`` exists, the first design's dependent codec
  (``compress_dep_key`` / ``compress_dep_predicted``) with 1 thread (``CODEC_THREADS``: its
  float decoder is only bit-exact at a fixed thread count) at ``--old-quality``.

The speed of a network does not depend on its weights, except through how many latent symbols
are skipped (skipped ones are not entropy-coded); a ``--random`` net skips an arbitrary fraction,
so its times and bytes are not the trained model's.

Writes ``--out`` (docs/results/rt_speed.json) and a plot beside it; ``--write-docs`` also puts a
section into docs/benchmarks.md between ``<!-- rt_speed:begin -->`` and ``<!-- rt_speed:end -->``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import time
import zlib
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from mm_compress_ros.codec.imaging import from_tensor, padded, to_tensor  # noqa: E402
from mm_compress_ros.codec.intnet import IntConv2d  # noqa: E402
from mm_compress_ros.codec.profiles import reference_qp  # noqa: E402
from mm_compress_ros.codec.rtcodec import RTConfig, RTDependentCodec  # noqa: E402
from mm_compress_ros.codec.stream import CODEC_THREADS  # noqa: E402
from mm_compress_ros.codec.videocodec import LowDelayEncoder, VideoDecoder  # noqa: E402
from mm_compress_ros.eval.metrics import psnr  # noqa: E402
from mm_compress_ros.eval.engine import cpu_name  # noqa: E402
from mm_compress_ros.eval.sequences import load_sequences, parse_crop  # noqa: E402

MARK_BEGIN, MARK_END = "<!-- rt_speed:begin -->", "<!-- rt_speed:end -->"
CPU = torch.device("cpu")
WEIGHTS_NOTE = ("Speed does not depend on the weights except through how many latent symbols are "
                "skipped (skipped ones are not entropy-coded): a random net skips an arbitrary "
                "fraction (see the coded fraction; --code-all forces every element to be coded, "
                "the slowest case), so its times and bytes are not a trained model's")


# -- machine ------------------------------------------------------------------------------------

def machine() -> dict:
    import av
    return {"cpu": cpu_name(), "logical_cpus": os.cpu_count(), "torch": torch.__version__,
            "torch_mkldnn": bool(torch.backends.mkldnn.is_available()), "pyav": av.__version__,
            "libavcodec": ".".join(map(str, av.library_versions.get("libavcodec", ()))),
            "python": platform.python_version(), "platform": platform.platform()}


def loadavg() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


# -- the network --------------------------------------------------------------------------------

def _json_or_none(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def load_rt(args) -> tuple[RTDependentCodec, dict]:
    """The RT codec to measure, frozen, in eval mode on the CPU, and a description of it."""
    if args.random:
        torch.manual_seed(args.seed)
        net = RTDependentCodec(RTConfig())
        net.eval()
        net.freeze()
        if args.code_all:   # the largest scale index everywhere: nothing is skipped
            net.ep_scale.b_int.fill_(net.ep_scale.bias_max)
        return net, {"source": "random", "seed": args.seed, "code_all": bool(args.code_all),
                     "config": net.cfg.to_dict(), "note": WEIGHTS_NOTE}
    if args.weights:
        from safetensors import safe_open

        from mm_compress_ros.codec.zoo import _resize_buffers, load_weights_file, sha256_file

        path = Path(args.weights)
        cfg = None
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        if "config" in meta:
            cfg = json.loads(meta["config"])
        else:
            side = _json_or_none(path.with_name("checkpoint.json")) or _json_or_none(path.with_suffix(".json")) or {}
            cfg = side.get("train", {}).get("model") or side.get("config")
        cfg = RTConfig(**cfg) if cfg else RTConfig()
        if cfg.arch != "rt":
            raise SystemExit(f"{path} is not an RT model (arch {cfg.arch!r})")
        net = RTDependentCodec(cfg)
        state = {k: (v.float() if v.is_floating_point() else v) for k, v in load_weights_file(path).items()}
        _resize_buffers(net, state)
        net.load_state_dict(state)
        net.eval()
        if not int(net.bank_frozen):   # a training checkpoint: freeze it as an export would
            net.freeze()
        return net, {"source": "weights", "path": str(path), "sha256": sha256_file(path),
                     "config": cfg.to_dict()}
    from mm_compress_ros.codec.zoo import load_model

    try:
        m = load_model(args.model, device="cpu")
    except Exception as exc:  # noqa: BLE001 - a one-line reason is what the user needs
        raise SystemExit(f"cannot load model {args.model!r}: {exc}") from None
    if not isinstance(m.net, RTDependentCodec):
        raise SystemExit(f"model {args.model!r} is a {type(m.net).__name__}, not an RTDependentCodec "
                         "(use --random, --weights, or an RT model)")
    net = m.net.cpu().eval()
    net.update(force=True)   # freezes only if the file was not frozen
    return net, {"source": "model", "name": m.name, "sha256": m.sha256, "config": net.cfg.to_dict()}


# -- MACs -----------------------------------------------------------------------------------------

def count_macs(net: RTDependentCodec, size=(480, 640)) -> dict:
    """MACs of the convolutions per pixel of a ``size`` frame (coded padded to a multiple of 64):
    encoder and decoder, key and predicted frame, and the encoder's split by top-level module."""
    names = {m: n for n, m in net.named_modules()}
    acc: dict[str, int] = {}

    def hook(mod, inputs, output):
        x = inputs[0]
        if isinstance(mod, IntConv2d):   # F.conv2d with padding k // 2, then a pixel shuffle
            k, s = mod.kernel, mod.stride
            kh = kw = k
            cin, cout, groups = mod.cin, mod.cout, 1
            oh = (x.shape[-2] + 2 * (k // 2) - k) // s + 1
            ow = (x.shape[-1] + 2 * (k // 2) - k) // s + 1
        else:
            kh, kw = mod.kernel_size
            cin, cout, groups = mod.in_channels, mod.out_channels, mod.groups
            oh, ow = output.shape[-2:]
        macs = cin * cout * kh * kw * oh * ow // groups * x.shape[0]
        top = names[mod].split(".")[0]
        acc[top] = acc.get(top, 0) + macs

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, (nn.Conv2d, IntConv2d))]
    g = torch.Generator().manual_seed(0)
    H, W = padded(size)
    x = torch.rand(1, 1, H, W, generator=g)
    ref = torch.rand(1, 3, H, W, generator=g)
    level = torch.tensor([net.levels // 2])
    pixels = size[0] * size[1]
    out: dict = {"frame": f"{size[1]}x{size[0]} (coded as {W}x{H})", "pixels": pixels}
    try:
        with torch.inference_mode():
            for kind in ("key", "predicted"):
                state = None
                if kind == "predicted":
                    _, _, state = net.compress(x, ref, level)
                acc.clear()
                # a coded frame (not a skipped or repeated one, which costs the decoder nothing)
                sections, digest, enc_state = net.compress(x, ref, level, state, uncoded=False)
                out[f"encoder_{kind}"] = sum(acc.values()) / pixels
                out[f"encoder_{kind}_by_module"] = {k: v / pixels for k, v in sorted(acc.items())}
                acc.clear()
                net.decompress(sections, ref, (H, W), level, digest, state)
                out[f"decoder_{kind}"] = sum(acc.values()) / pixels
                out[f"decoder_{kind}_by_module"] = {k: v / pixels for k, v in sorted(acc.items())}
    finally:
        for h in handles:
            h.remove()
    return out


# -- measuring ------------------------------------------------------------------------------------

class CodedCounter:
    """Wraps ``net.y_coder.compress`` to record how many latent elements each frame codes."""

    def __init__(self, net: RTDependentCodec):
        self.net, self.last = net, 0
        self._orig = net.y_coder.compress

    def __enter__(self):
        def compress(q, idx):
            self.last = int(q.numel())
            return self._orig(q, idx)
        self.net.y_coder.compress = compress
        return self

    def __exit__(self, *exc):
        del self.net.y_coder.compress   # back to the class method
        return False


def _rel(p: Path) -> str:
    try:
        return str(p.resolve().relative_to(REPO))
    except ValueError:
        return str(p)


def _ms(s: float) -> float:
    return round(1000.0 * s, 3)


def _median(v):
    return statistics.median(v) if v else None


def _fps(ms):
    return round(1000.0 / ms, 2) if ms else None


def gop_frames(seqs, frames: int, gop: int):
    """(sequence, index, key) of every coded frame."""
    for s in seqs:
        for i in range(min(frames, len(s))):
            yield s, i, i % gop == 0


def rt_run(net, seqs, frames, gop, level, coders, bar, warm: bool = False) -> list[dict]:
    """Codes the frames through reference + RT dependent codec; one row per frame. ``coders``:
    the reference layer's (encoder, decoder), kept from the warm-up (opening one costs time)."""
    lv = torch.tensor([level - 1], dtype=torch.long)   # quality 1..levels -> the network's index
    qp = reference_qp(level, net.levels)
    enc, dec = coders
    latents = net.cfg.M
    rows, est, dst = [], None, None
    with CodedCounter(net) as counter, torch.inference_mode():
        for s, i, key in gop_frames(seqs, frames, gop):
            rgb, th = s.rgb[i], s.thermal[i]
            t0 = time.perf_counter()
            au = enc.encode(rgb, qp, key)
            t1 = time.perf_counter()
            if key:
                dec.reset()
            ref_hat = to_tensor(dec.decode(au, rgb.shape[:2], 3), CPU)
            t2 = time.perf_counter()
            x = to_tensor(th, CPU)
            sections, digest, est = net.compress(x, ref_hat, lv, None if key else est)
            t3 = time.perf_counter()
            dst = net.decompress(sections, ref_hat, tuple(x.shape[-2:]), lv, digest, None if key else dst)
            out = from_tensor(dst.x_hat, th.shape[:2])
            t4 = time.perf_counter()
            bar.update(1)
            if warm:
                continue
            names = ["align", "y", "z"] if key else ["y", "z"]
            total_latents = latents * x.shape[-2] // 16 * x.shape[-1] // 16
            rows.append({
                "sequence": s.name, "index": i, "type": "key" if key else "predicted", "qp": qp,
                "ref_encode_ms": _ms(t1 - t0), "ref_decode_ms": _ms(t2 - t1),
                "dep_encode_ms": _ms(t3 - t2), "dep_decode_ms": _ms(t4 - t3),
                "ref_bytes": len(au), "dep_bytes": sum(len(b) for b in sections),
                "dep_sections": dict(zip(names, (len(b) for b in sections))),
                "coded_fraction": round(counter.last / total_latents, 5),
                "bit_exact": bool(torch.equal(est.x_hat, dst.x_hat)),
                "dep_crc": zlib.crc32(b"".join(sections)), "ref_crc": zlib.crc32(au),
                "thermal_psnr": round(psnr(th, out), 3)})
    return rows


def static_run(net, seqs, level: int, codec: str) -> dict:
    """A static scene: each sequence's first pair coded as a key frame, then the same pair twice
    more as predicted frames; the bytes of the repeated frames' dependent sections."""
    lv = torch.tensor([level - 1], dtype=torch.long)
    qp = reference_qp(level, net.levels)
    out = []
    with torch.inference_mode():
        for s in seqs:
            enc, dec = LowDelayEncoder(codec, "software"), VideoDecoder(codec)
            rgb, th = s.rgb[0], s.thermal[0]
            x, state = to_tensor(th, CPU), None
            for k in range(3):
                ref_hat = to_tensor(dec.decode(enc.encode(rgb, qp, k == 0), rgb.shape[:2], 3), CPU)
                sections, _, state = net.compress(x, ref_hat, lv, state)
                if k:
                    out.append(sum(len(b) for b in sections))
    return {"level": level, "reference_codec": codec, "repeated_frame_dep_bytes": out,
            "max": max(out), "median": _median(out)}


def x265_run(seqs, frames, gop, qp, coders, bar, warm: bool = False) -> list[dict]:
    enc, dec = coders
    rows = []
    for s, i, key in gop_frames(seqs, frames, gop):
        th = s.thermal[i]
        t0 = time.perf_counter()
        au = enc.encode(th, qp, key)
        t1 = time.perf_counter()
        if key:
            dec.reset()
        out = dec.decode(au, th.shape[:2], 1)
        t2 = time.perf_counter()
        bar.update(1)
        if not warm:
            rows.append({"sequence": s.name, "index": i, "type": "key" if key else "predicted", "qp": qp,
                         "encode_ms": _ms(t1 - t0), "decode_ms": _ms(t2 - t1), "bytes": len(au),
                         "thermal_psnr": round(psnr(th, out), 3)})
    return rows


class _ModuleTimer:
    """Wall time spent inside ``modules`` (forward hooks), accumulated until read with ``take``."""

    def __init__(self, modules):
        self.total, self._t0 = 0.0, {}
        self._handles = [h for m in modules for h in (
            m.register_forward_pre_hook(lambda mod, inp: self._t0.__setitem__(id(mod), time.perf_counter())),
            m.register_forward_hook(lambda mod, inp, out: self._add(mod)))]

    def _add(self, mod):
        self.total += time.perf_counter() - self._t0.pop(id(mod))

    def take(self) -> float:
        t, self.total = self.total, 0.0
        return t


def old_run(model, seqs, frames, gop, quality, coders, bar, warm: bool = False) -> list[dict]:
    """The first design's dependent codec (MultiModalCodec) given the same kind of reference; the
    time its window cross-attention (SpatialAlignment, key frames) takes in the decoder is kept."""
    net = model.net
    attention = _ModuleTimer(net.dep_intra.g_s.align or [])
    lv = torch.tensor([quality - 1], dtype=torch.long)
    qp = reference_qp(quality, net.levels)
    enc, dec = coders
    rows, e_prev, d_prev = [], None, None
    with torch.inference_mode():
        for s, i, key in gop_frames(seqs, frames, gop):
            rgb, th = s.rgb[i], s.thermal[i]
            t0 = time.perf_counter()
            au = enc.encode(rgb, qp, key)
            t1 = time.perf_counter()
            if key:
                dec.reset()
            ref_hat = to_tensor(dec.decode(au, rgb.shape[:2], 3), CPU)
            t2 = time.perf_counter()
            x = to_tensor(th, CPU)
            size = tuple(x.shape[-2:])
            if key:   # the key frame's alignment needs the reference's stage features (both ends)
                stages = net.reference_stages(ref_hat, lv)
                sections, digest, e_prev = net.compress_dep_key(ref_hat, stages, x, lv)
            else:
                sections, digest, e_prev = net.compress_dep_predicted(ref_hat, x, e_prev, lv)
            t3 = time.perf_counter()
            attention.take()
            if key:
                stages = net.reference_stages(ref_hat, lv)
                d_prev = net.decompress_dep_key(sections, ref_hat, stages, size, lv, digest)
            else:
                d_prev = net.decompress_dep_predicted(sections, ref_hat, d_prev, size, lv, digest)
            out = from_tensor(d_prev, th.shape[:2])
            t4 = time.perf_counter()
            bar.update(1)
            if not warm:
                rows.append({"sequence": s.name, "index": i, "type": "key" if key else "predicted", "qp": qp,
                             "ref_encode_ms": _ms(t1 - t0), "ref_decode_ms": _ms(t2 - t1),
                             "dep_encode_ms": _ms(t3 - t2), "dep_decode_ms": _ms(t4 - t3),
                             "ref_bytes": len(au), "dep_bytes": sum(len(b) for b in sections),
                             "attention_decode_ms": _ms(attention.take()),
                             "thermal_psnr": round(psnr(th, out), 3)})
    return rows


# -- summaries ------------------------------------------------------------------------------------

def pair_summary(rows: list[dict]) -> dict:
    """Medians of the dependent codec, the reference layer and the pair (per-frame sums)."""
    if not rows:
        return {}
    def med(key, sel=None):
        v = [r[key] for r in rows if sel is None or r["type"] == sel]
        return _median(v)
    pe = [r["ref_encode_ms"] + r["ref_decode_ms"] + r["dep_encode_ms"] for r in rows]
    pd = [r["ref_decode_ms"] + r["dep_decode_ms"] for r in rows]
    out = {"frames": len(rows), "qp": rows[0]["qp"],
           "dep_encode_ms": med("dep_encode_ms"), "dep_decode_ms": med("dep_decode_ms"),
           "dep_encode_ms_key": med("dep_encode_ms", "key"), "dep_encode_ms_predicted": med("dep_encode_ms", "predicted"),
           "dep_decode_ms_key": med("dep_decode_ms", "key"), "dep_decode_ms_predicted": med("dep_decode_ms", "predicted"),
           "ref_encode_ms": med("ref_encode_ms"), "ref_decode_ms": med("ref_decode_ms"),
           "pair_encode_ms": _median(pe), "pair_decode_ms": _median(pd)}
    for k in ("dep_encode", "dep_decode", "pair_encode", "pair_decode"):
        out[f"{k}_fps"] = _fps(out[f"{k}_ms"])
    keys = [r for r in rows if r["type"] == "key"]
    preds = [r for r in rows if r["type"] == "predicted"]
    mean = lambda v: round(float(np.mean(v)), 2) if v else None  # noqa: E731
    out["dep_bytes_key"] = mean([r["dep_bytes"] for r in keys])
    out["dep_bytes_predicted"] = mean([r["dep_bytes"] for r in preds])
    out["ref_bytes_key"] = mean([r["ref_bytes"] for r in keys])
    out["ref_bytes_predicted"] = mean([r["ref_bytes"] for r in preds])
    out["thermal_psnr"] = mean([r["thermal_psnr"] for r in rows])
    if "attention_decode_ms" in rows[0] and keys:
        out["attention_decode_ms_key"] = _median([r["attention_decode_ms"] for r in keys])
    if "dep_sections" in rows[0]:
        for sel, rr in (("key", keys), ("predicted", preds)):
            if rr:
                out[f"dep_sections_{sel}"] = {n: mean([r["dep_sections"][n] for r in rr]) for n in rr[0]["dep_sections"]}
                out[f"coded_fraction_{sel}"] = round(float(np.mean([r["coded_fraction"] for r in rr])), 4)
        # bytes per GOP of the dependent layer, by position in the GOP (static scenes: predicted
        # frames that skip most of their latent cost little)
        pos: dict[int, list[int]] = {}
        for r in rows:
            pos.setdefault(r["index"], []).append(r["dep_bytes"])
        out["dep_bytes_by_index"] = {str(k): mean(v) for k, v in sorted(pos.items())}
        out["bit_exact"] = all(r["bit_exact"] for r in rows)
    return out


def x265_summary(rows: list[dict]) -> dict:
    enc, dec = _median([r["encode_ms"] for r in rows]), _median([r["decode_ms"] for r in rows])
    keys = [r["bytes"] for r in rows if r["type"] == "key"]
    preds = [r["bytes"] for r in rows if r["type"] == "predicted"]
    return {"frames": len(rows), "qp": rows[0]["qp"], "encode_ms": enc, "decode_ms": dec,
            "encode_fps": _fps(enc), "decode_fps": _fps(dec),
            "bytes_key": round(float(np.mean(keys)), 2) if keys else None,
            "bytes_predicted": round(float(np.mean(preds)), 2) if preds else None,
            "thermal_psnr": round(float(np.mean([r["thermal_psnr"] for r in rows])), 3)}


# -- output ---------------------------------------------------------------------------------------

def _f(v, fmt="{:.1f}") -> str:
    return "-" if v is None else fmt.format(v)


def table_rows(res: dict) -> list[list[str]]:
    macs = res["macs_per_pixel"]
    mac = f"{macs['encoder_predicted'] / 1e3:.1f}k / {macs['decoder_predicted'] / 1e3:.1f}k"
    rows = []
    for s in res["summary"]:
        r = [str(s["threads"]), str(s["level"]), _f(s["dep_encode_ms"]), _f(s["dep_decode_ms"]),
             _f(s["dep_encode_fps"]), _f(s["dep_decode_fps"])]
        for c in res["settings"]["refs"]:
            p = s["pair"].get(c, {})
            r.append(f"{_f(p.get('pair_encode_fps'))} / {_f(p.get('pair_decode_fps'))}")
        r.append(mac)
        rows.append(r)
    return rows


def table_header(res: dict) -> list[str]:
    return (["threads", "level", "dep enc ms", "dep dec ms", "dep enc fps", "dep dec fps"]
            + [f"pair fps {c} enc / dec" for c in res["settings"]["refs"]] + ["MACs/px enc / dec"])


def print_table(res: dict) -> None:
    head, rows = table_header(res), table_rows(res)
    w = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]
    print("  ".join(h.rjust(w[i]) for i, h in enumerate(head)))
    for r in rows:
        print("  ".join(c.rjust(w[i]) for i, c in enumerate(r)))
    for x in res["x265_thermal"]:
        s = x["summary"]
        print(f"x265 thermal alone, level {x['level']} (QP {s['qp']}): encode {_f(s['encode_ms'])} ms "
              f"({_f(s['encode_fps'])} fps), decode {_f(s['decode_ms'])} ms; "
              f"{_f(s['bytes_key'], '{:.0f}')} B key, {_f(s['bytes_predicted'], '{:.0f}')} B predicted")
    old = res["old_baseline"]
    if "summary" in old:
        s = old["summary"]
        print(f"old design (mmvc dependent codec, 1 thread, quality {old['quality']}, {old['reference_codec']}): "
              f"encode {_f(s['dep_encode_ms'])} ms ({_f(s['dep_encode_fps'], '{:.2f}')} fps), decode "
              f"{_f(s['dep_decode_ms'])} ms ({_f(s['dep_decode_fps'], '{:.2f}')} fps); pair "
              f"{_f(s['pair_encode_fps'], '{:.2f}')} / {_f(s['pair_decode_fps'], '{:.2f}')} fps")
    else:
        print(f"old design: {old.get('skipped') or old.get('unavailable')}")
    c = res["checks"]
    print(f"bit-exact decoder: {c['decoder_matches_encoder']}; dependent bitstreams identical across "
          f"thread counts: {c['bitstreams_identical_across_threads']} (reference streams: "
          f"{c['reference_identical_across_threads']})")
    print(f"MACs/px (640x480): encoder {res['macs_per_pixel']['encoder_key']:.0f} key / "
          f"{res['macs_per_pixel']['encoder_predicted']:.0f} predicted, decoder "
          f"{res['macs_per_pixel']['decoder_key']:.0f} / {res['macs_per_pixel']['decoder_predicted']:.0f}")
    if res["model"]["source"] == "random":
        print("NOTE: " + WEIGHTS_NOTE + ".")


def render_markdown(res: dict) -> str:
    st, m, macs = res["settings"], res["machine"], res["macs_per_pixel"]
    model = res["model"]
    if model["source"] == "model":
        mdesc = f"model `{model['name']}` sha256 {model['sha256'][:8]}"
    elif model["source"] == "weights":
        mdesc = f"weights `{model['path']}` sha256 {model['sha256'][:8]}"
    else:
        mdesc = (f"a **random** frozen net (seed {model['seed']}"
                 f"{', every latent element coded (--code-all)' if model.get('code_all') else ''}): {WEIGHTS_NOTE}")
    L = ["## Real-time dependent codec (rt): speed on this CPU\n",
         f"`{res['command']}` (results in `{res['out']}`), {res['date']}.\n",
         f"Machine: {m['cpu']}, {m['logical_cpus']} logical CPUs, torch {m['torch']}, PyAV {m['pyav']} "
         f"(libavcodec {m['libavcodec']}); load average {res['loadavg_start']} at the start, "
         f"{res['loadavg_end']} at the end. Codec: {mdesc}.\n",
         f"Data: {', '.join(st['sequences'])} (m3svd_seq), frames 0..{st['frames'] - 1} of each as GOPs of "
         f"{st['gop']}, {st['size']} (coded padded to {st['padded']}), thermal given RGB. Encoder and decoder "
         f"in one process; {st['warmup']} untimed warm-up frames per configuration, then medians over "
         "all frames (key and predicted). Dependent: thermal -> `compress`, `decompress` -> 8-bit image "
         "(medians over the runs with each reference codec). Pair encode: reference encode + its decode "
         "(the encoder's own reference) + dependent encode; pair decode: reference decode + dependent "
         "decode (libx264 preset faster / libx265 preset superfast, tune zerolatency, QP "
         "`reference_qp(level + 1, 64)`; libavcodec's own threading). MACs/px: convolutions of a predicted frame per pixel of a "
         f"640x480 frame (key frame: {macs['encoder_key'] / 1e3:.1f}k encoder, "
         f"{macs['decoder_key'] / 1e3:.1f}k decoder).\n"]
    head = table_header(res)
    L.append("| " + " | ".join(head) + " |")
    L.append("| " + " | ".join("---:" for _ in head) + " |")
    for r in table_rows(res):
        L.append("| " + " | ".join(r) + " |")
    L.append("\nDependent bytes per frame (mean; key: align + y + z, predicted: y + z), the fraction of "
             "latent elements coded (the rest skipped), and the whole GOP, with "
             f"{st['threads'][0]} thread(s):\n")
    L.append("| level | ref | QP | key B (align/y/z) | predicted B (y/z) | coded key / pred | "
             "dep B per GOP | ref B per GOP | thermal PSNR |")
    L.append("| ---: | --- | ---: | --- | --- | ---: | ---: | ---: | ---: |")
    for run in res["runs"]:
        if run["threads"] != st["threads"][0]:
            continue
        s = run["summary"]
        sk, sp = s.get("dep_sections_key", {}), s.get("dep_sections_predicted", {})
        gop_dep = sum(list(s["dep_bytes_by_index"].values())[:st["gop"]])
        n_pred = min(st["gop"], st["frames"]) - 1
        gop_ref = (s["ref_bytes_key"] or 0) + n_pred * (s["ref_bytes_predicted"] or 0)
        L.append(f"| {run['level']} | {run['reference_codec']} | {s['qp']} | "
                 f"{_f(s['dep_bytes_key'], '{:.0f}')} ({'/'.join(_f(sk.get(k), '{:.0f}') for k in ('align', 'y', 'z'))}) | "
                 f"{_f(s['dep_bytes_predicted'], '{:.0f}')} ({'/'.join(_f(sp.get(k), '{:.0f}') for k in ('y', 'z'))}) | "
                 f"{_f(s.get('coded_fraction_key'), '{:.3f}')} / {_f(s.get('coded_fraction_predicted'), '{:.3f}')} | "
                 f"{gop_dep:.0f} | {gop_ref:.0f} | {_f(s['thermal_psnr'], '{:.2f}')} |")
    if res.get("static"):
        L.append("\nStatic scene (each sequence's first pair, then the same pair twice more; "
                 f"{res['static'][0]['reference_codec']} reference): dependent bytes of the repeated "
                 "predicted frames, median / largest: "
                 + "; ".join(f"quality {st['level']}: {_f(st['median'], '{:.0f}')} / {st['max']}" for st in res["static"])
                 + ".")
    L.append("\nBaselines in the same run:\n")
    L.append("| baseline | setting | encode ms | encode fps | decode ms | decode fps | bytes key / predicted |")
    L.append("| --- | --- | ---: | ---: | ---: | ---: | --- |")
    for x in res["x265_thermal"]:
        s = x["summary"]
        L.append(f"| x265 thermal alone (libx265 superfast, low delay) | level {x['level']}, QP {s['qp']} | "
                 f"{_f(s['encode_ms'])} | {_f(s['encode_fps'])} | {_f(s['decode_ms'])} | {_f(s['decode_fps'])} | "
                 f"{_f(s['bytes_key'], '{:.0f}')} / {_f(s['bytes_predicted'], '{:.0f}')} |")
    old = res["old_baseline"]
    if "summary" in old:
        s = old["summary"]
        L.append(f"| first design (mmvc dependent codec), 1 thread | quality {old['quality']}, "
                 f"{old['reference_codec']} QP {s['qp']} | {_f(s['dep_encode_ms'])} | "
                 f"{_f(s['dep_encode_fps'], '{:.2f}')} | {_f(s['dep_decode_ms'])} | "
                 f"{_f(s['dep_decode_fps'], '{:.2f}')} | {_f(s['dep_bytes_key'], '{:.0f}')} / "
                 f"{_f(s['dep_bytes_predicted'], '{:.0f}')} |")
        L.append(f"\nFirst design with {old['reference_codec']}: pair "
                 f"{_f(s['pair_encode_fps'], '{:.2f}')} fps encode, {_f(s['pair_decode_fps'], '{:.2f}')} fps decode "
                 f"(model `mmvc` sha256 {old['sha256'][:8]}).")
        if s.get("attention_decode_ms_key") is not None:
            L.append(f"Its window cross-attention (three SpatialAlignment blocks in the key-frame decoder) "
                     f"takes {_f(s['attention_decode_ms_key'])} ms of each key-frame decode (median), "
                     f"{_f(100 * s['attention_decode_ms_key'] / s['dep_decode_ms_key'])} % of it. The second "
                     "design has no attention: that time alone is more than its whole per-frame budget at "
                     "20 fps (50 ms). Its rate-distortion value was not measured at an equal training budget.")
    else:
        L.append(f"\nFirst design: {old.get('skipped') or old.get('unavailable')}.")
    c = res["checks"]
    L.append(f"\nDecoder bit-exact with the encoder on every frame: {c['decoder_matches_encoder']}; "
             f"dependent bitstreams identical for every thread count: {c['bitstreams_identical_across_threads']} "
             f"(the reference layer's: {c['reference_identical_across_threads']}).\n")
    plot = Path(res.get("plot", ""))
    if plot.name and plot.is_file() and plot.parent == REPO / "docs" / "results":
        L.append(f"![rt speed](results/{plot.name})\n")
    return "\n".join(L)


def update_doc(res: dict, doc: Path) -> None:
    text = doc.read_text()
    section = f"{MARK_BEGIN}\n{render_markdown(res)}{MARK_END}\n"
    if MARK_BEGIN in text and MARK_END in text:
        a, b = text.index(MARK_BEGIN), text.index(MARK_END) + len(MARK_END)
        if text[b:b + 1] == "\n":
            b += 1
        text = text[:a] + section + text[b:]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    doc.write_text(text)


def plot(res: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    threads = res["settings"]["threads"]
    for ax, way in zip(axes, ("encode", "decode")):
        for level in res["settings"]["levels"]:
            rows = [s for s in res["summary"] if s["level"] == level]
            line, = ax.plot([s["threads"] for s in rows], [s[f"dep_{way}_fps"] for s in rows], "o-",
                            label=f"dependent, level {level}")
            for c, ls in zip(res["settings"]["refs"], ("--", ":")):
                ax.plot([s["threads"] for s in rows], [s["pair"].get(c, {}).get(f"pair_{way}_fps") for s in rows],
                        ls, marker=".", color=line.get_color(), label=f"pair with {c}, level {level}")
        old = res["old_baseline"].get("summary")
        if old:
            ax.axhline(old[f"dep_{way}_fps"], color="k", ls="-.", label="first design, dependent (1 thread)")
        for x in res["x265_thermal"][:1]:
            ax.axhline(x["summary"][f"{way}_fps"], color="grey", ls="-",
                       label=f"x265 thermal alone (QP {x['summary']['qp']})")
        ax.set_xticks(threads)
        ax.set_xlabel("torch threads")
        ax.set_ylabel("frames per second")
        ax.set_yscale("log")
        ax.set_title(way)
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=6)
    fig.suptitle(f"RT dependent codec on {res['machine']['cpu']}, {res['settings']['size']}")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


# -- main -----------------------------------------------------------------------------------------

def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="RT model name (codec.zoo.load_model)")
    src.add_argument("--random", action="store_true", help="a seeded random frozen net (speed only: see the note)")
    src.add_argument("--weights", help="an RT model file or training checkpoint (.safetensors)")
    ap.add_argument("--seed", type=int, default=0, help="seed of --random")
    ap.add_argument("--code-all", action="store_true",
                    help="with --random: bias the scale head so that no latent element is skipped "
                         "(the slowest case; a random net otherwise skips an arbitrary fraction)")
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "m3svd_seq"))
    ap.add_argument("--seqs", type=int, default=5, help="first N sequences of --data")
    ap.add_argument("--frames", type=int, default=10, help="frames 0..N-1 of each sequence")
    ap.add_argument("--gop", type=int, default=10)
    ap.add_argument("--size", default=None, help="centre crop WxH (default: the whole 640x480 frame)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--levels", type=int, nargs="+", default=[1, 22, 43, 64],
                    help="quality levels 1..64 as on the command line (default 1 22 43 64)")
    ap.add_argument("--refs", nargs="+", default=["h264", "h265"], choices=["h264", "h265"])
    ap.add_argument("--warmup", type=int, default=2, help="untimed frames before each configuration")
    ap.add_argument("--x265-qp", type=int, default=None, help="QP of the x265 thermal baseline (default: the level's)")
    ap.add_argument("--no-old", action="store_true", help="skip the first design's dependent codec")
    ap.add_argument("--old-quality", type=int, default=3, help="quality (1..6) of the first design")
    ap.add_argument("--old-reference", default="h264", choices=["h264", "h265"])
    ap.add_argument("--out", default=str(REPO / "docs" / "results" / "rt_speed.json"))
    ap.add_argument("--plot", default=None, help="plot path (default: --out with .png)")
    ap.add_argument("--write-docs", action="store_true", help="write the section of docs/benchmarks.md")
    ap.add_argument("--doc", default=str(REPO / "docs" / "benchmarks.md"))
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    if args.code_all and not args.random:
        ap.error("--code-all only applies to --random")
    from tqdm import tqdm

    command = ".venv/bin/python benchmarks/rt_speed.py " + shlex.join(argv)
    load_start = loadavg()
    net, model_info = load_rt(args)
    if any(not 1 <= lv <= net.levels for lv in args.levels):
        ap.error(f"levels must be 1..{net.levels}")
    crop = parse_crop(args.size)
    all_seqs = load_sequences(args.data, frames=args.frames, crop=crop)
    seqs = all_seqs[: args.seqs]
    h, w = seqs[0].thermal[0].shape[:2]
    ph, pw = padded((h, w))
    n_frames = sum(min(args.frames, len(s)) for s in seqs)
    warm_seqs = [type(seqs[0])(seqs[0].name, seqs[0].rgb[: args.warmup], seqs[0].thermal[: args.warmup])]
    n_warm = min(args.warmup, len(seqs[0]))

    old_model, old_info = None, {}
    if args.no_old:
        old_info = {"skipped": "skipped (--no-old)"}
    else:
        try:
            from mm_compress_ros.codec.zoo import load_model
            old_model = load_model("mmvc", device="cpu")
            if not 1 <= args.old_quality <= old_model.levels:
                ap.error(f"--old-quality must be 1..{old_model.levels}")
        except Exception as exc:  # noqa: BLE001
            old_info = {"unavailable": f"model mmvc not available ({str(exc).splitlines()[0]})"}

    per_cfg = n_warm + n_frames
    total = (len(args.threads) * len(args.levels) * len(args.refs) * per_cfg + len(args.levels) * per_cfg
             + (per_cfg if old_model is not None else 0))
    print(f"RT codec: {model_info['source']}" + (f" ({model_info.get('name') or model_info.get('path')})"
                                                 if model_info["source"] != "random" else f" (seed {args.seed})")
          + f"; {len(seqs)} sequences x {args.frames} frames, {w}x{h} (coded {pw}x{ph}), GOP {args.gop}",
          file=sys.stderr)
    if model_info["source"] == "random":
        print("NOTE: " + WEIGHTS_NOTE + ".", file=sys.stderr)
    print("counting MACs at 640x480 ...", file=sys.stderr, flush=True)
    torch.set_num_threads(args.threads[0])
    macs = count_macs(net)

    t_start = time.time()
    runs, x265, saved_threads = [], [], torch.get_num_threads()
    bar = tqdm(total=total, desc="rt_speed", unit="frame", disable=args.no_progress)
    try:
        for level in args.levels:   # baseline: x265 on the thermal alone (libx265's own threads)
            qp = args.x265_qp if args.x265_qp is not None else reference_qp(level, net.levels)
            bar.set_postfix_str(f"x265 thermal QP {qp}")
            coders = (LowDelayEncoder("h265", "software"), VideoDecoder("h265"))
            x265_run(warm_seqs, args.warmup, args.gop, qp, coders, bar, warm=True)
            rows = x265_run(seqs, args.frames, args.gop, qp, coders, bar)
            x265.append({"level": level, "summary": x265_summary(rows), "frames": rows})
        for t in args.threads:
            torch.set_num_threads(t)
            for level in args.levels:
                for codec in args.refs:
                    bar.set_postfix_str(f"{t} thr, level {level}, {codec}")
                    coders = (LowDelayEncoder(codec, "software"), VideoDecoder(codec))
                    rt_run(net, warm_seqs, args.warmup, args.gop, level, coders, bar, warm=True)
                    rows = rt_run(net, seqs, args.frames, args.gop, level, coders, bar)
                    runs.append({"threads": t, "level": level, "reference_codec": codec,
                                 "summary": pair_summary(rows), "frames": rows})
        if old_model is not None:
            torch.set_num_threads(CODEC_THREADS)
            bar.set_postfix_str(f"first design, {CODEC_THREADS} thread")
            coders = (LowDelayEncoder(args.old_reference, "software"), VideoDecoder(args.old_reference))
            old_run(old_model, warm_seqs, args.warmup, args.gop, args.old_quality, coders, bar, warm=True)
            rows = old_run(old_model, seqs, args.frames, args.gop, args.old_quality, coders, bar)
            old_info = {"model": "mmvc", "sha256": old_model.sha256, "threads": CODEC_THREADS,
                        "quality": args.old_quality, "reference_codec": args.old_reference,
                        "summary": pair_summary(rows), "frames": rows}
    finally:
        bar.close()
        torch.set_num_threads(saved_threads)

    static = [static_run(net, seqs, level, args.refs[0]) for level in args.levels]
    summary = []
    for t in args.threads:
        for level in args.levels:
            rr = [r for r in runs if r["threads"] == t and r["level"] == level]
            frames = [f for r in rr for f in r["frames"]]
            enc = _median([f["dep_encode_ms"] for f in frames])
            dec = _median([f["dep_decode_ms"] for f in frames])
            summary.append({"threads": t, "level": level, "dep_encode_ms": enc, "dep_decode_ms": dec,
                            "dep_encode_fps": _fps(enc), "dep_decode_fps": _fps(dec),
                            "pair": {r["reference_codec"]: {k: r["summary"][k] for k in
                                     ("qp", "pair_encode_ms", "pair_decode_ms", "pair_encode_fps", "pair_decode_fps",
                                      "ref_encode_ms", "ref_decode_ms")} for r in rr}})
    crcs: dict[tuple, dict[str, set]] = {}
    for r in runs:
        c = crcs.setdefault((r["level"], r["reference_codec"]), {"dep": set(), "ref": set()})
        for k in ("dep", "ref"):
            c[k].add(tuple(f[f"{k}_crc"] for f in r["frames"]))
    plot_path = Path(args.plot) if args.plot else Path(args.out).with_suffix(".png")
    res = {
        "command": command, "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "seconds": round(time.time() - t_start), "machine": machine(),
        "loadavg_start": load_start, "loadavg_end": loadavg(), "model": model_info,
        "settings": {"data": args.data, "sequences": [s.name for s in seqs], "frames": args.frames,
                     "gop": args.gop, "size": f"{w}x{h}", "padded": f"{pw}x{ph}", "threads": args.threads,
                     "levels": args.levels, "refs": args.refs, "warmup": args.warmup,
                     "timing": "medians over all frames (key and predicted) after the warm-up frames"},
        "macs_per_pixel": macs, "summary": summary, "runs": runs, "x265_thermal": x265, "static": static,
        "old_baseline": old_info, "plot": str(plot_path), "out": _rel(Path(args.out)),
        "checks": {"decoder_matches_encoder": all(f["bit_exact"] for r in runs for f in r["frames"]),
                   "bitstreams_identical_across_threads": all(len(v["dep"]) == 1 for v in crcs.values()),
                   "reference_identical_across_threads": all(len(v["ref"]) == 1 for v in crcs.values())},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1) + "\n")
    plot(res, plot_path)
    print_table(res)
    print(f"wrote {out} and {plot_path}")
    if args.write_docs:
        update_doc(res, Path(args.doc))
        print(f"wrote the rt_speed section of {args.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
