"""Where the real-time codec's quality stops: thermal PSNR of key frames at each level as coded,
and with the two roundings of the codec taken away one after the other.

    .venv/bin/python benchmarks/rt_ceiling.py --model mmrt --model runs/older-thermal_given_rgb.safetensors

Per level and rig (the mean over frames):

- ``coded``: what the decoder shows (latent quantized with the level's step, small-scale elements
  skipped, integer activations): ``RTDependentCodec.compress``'s picture, computed the same way;
- ``y exact``: the latent not quantized at all (ŷ = y), activations still integers;
- ``y exact, float act.``: also the synthesis layers' outputs not rounded to integers
  (``intnet.round_ste`` replaced by the identity while they run): the transform's own ceiling.

The gap coded → y exact is what quantization costs at that level; the last column is what no
level can beat with these weights (analysis and synthesis capacity). References: the RGB coded by
H.264 at the level's QP (``reference_qp``) and decoded by libavcodec, as in the hybrid profile.
Frames: m3svd_seq frames 0 and 10 of each sequence and the first --roadscene roadscene pairs,
cropped to multiples of 64 (the latent grid) from the top left. Writes docs/results/rt_ceiling.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cross_modal_hybrid import rigs  # noqa: E402

from mm_compress_ros.codec import intnet  # noqa: E402
from mm_compress_ros.codec.profiles import reference_qp  # noqa: E402
from mm_compress_ros.codec.rtcodec import Y_MAX  # noqa: E402
from mm_compress_ros.codec.videocodec import LowDelayEncoder, VideoDecoder  # noqa: E402
from mm_compress_ros.codec.zoo import load_model  # noqa: E402


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    a = torch.round(a.clamp(0, 1) * 255)
    return float(10 * torch.log10(255.0 ** 2 / ((a - b * 255) ** 2).mean().clamp_min(1e-9)))


@torch.no_grad()
def ceiling(net, rgb: np.ndarray, th: np.ndarray, level: int) -> dict[str, float]:
    h, w = th.shape[0] // 64 * 64, th.shape[1] // 64 * 64
    rgb, th = np.ascontiguousarray(rgb[:h, :w]), np.ascontiguousarray(th[:h, :w])
    if th.dtype != np.uint8:
        raise ValueError("8-bit thermal expected")
    qp = reference_qp(level + 1, net.levels)
    ref = VideoDecoder("h264").decode(LowDelayEncoder("h264", "software").encode(rgb, qp, True), (h, w), 3)
    x = torch.from_numpy(th).float()[None, None] / 255
    r = torch.from_numpy(ref).permute(2, 0, 1)[None].float() / 255
    lv = torch.tensor([level])
    with intnet.exact_mode():
        _, ctx, y, z = net._analyze(x, r, None)
        mean, idx, delta = net._params(net.z_coder.symbols(z), ctx, lv)
        coded = ~net.y_coder.skipped(idx)
        q = torch.where(coded, torch.floor((y - mean) / delta + 0.5), torch.zeros_like(y))
        y_coded = (mean + q * delta).clamp(-Y_MAX, Y_MAX)
        y_exact = y.clamp(-Y_MAX, Y_MAX)
        out = {"coded": _psnr(net._synthesize(y_coded, ctx)[0], x),
               "y_exact": _psnr(net._synthesize(y_exact, ctx)[0], x)}
        with mock.patch.object(intnet, "round_ste", lambda t: t):
            out["y_exact_float_act"] = _psnr(net._synthesize(y_exact, ctx)[0], x)
    out["coded_share"] = float(coded.float().mean())
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", help="model name or file (repeatable; default mmrt)")
    ap.add_argument("--levels", type=int, nargs="+", default=[1, 22, 43, 64])
    ap.add_argument("--roadscene", type=int, default=10, help="roadscene pairs (default 10)")
    ap.add_argument("--out", default=str(REPO / "docs" / "results" / "rt_ceiling.json"))
    args = ap.parse_args()
    torch.set_num_threads(2)
    data = rigs(args.roadscene)
    results = []
    for spec in args.model or ["mmrt"]:
        lm = load_model(path=spec, device="cpu") if spec.endswith(".safetensors") else load_model(spec, device="cpu")
        net = lm.net.eval()
        name = Path(spec).stem if spec.endswith(".safetensors") else spec
        for rig, pairs in data.items():
            for level in args.levels:
                rows = [ceiling(net, rgb, th, level - 1) for rgb, th in pairs]
                mean = {k: round(float(np.mean([r[k] for r in rows])), 2) for k in rows[0]}
                results.append({"model": name, "sha256": lm.card.get("sha256", "")[:16], "rig": rig,
                                "level": level, "frames": len(rows), **mean})
                print(f"{name:28s} {rig:10s} level {level:2d}: coded {mean['coded']:.2f} dB | y exact "
                      f"{mean['y_exact']:.2f} | y exact, float act. {mean['y_exact_float_act']:.2f} | "
                      f"coded elements {mean['coded_share']:.0%}", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"command": " ".join(sys.argv[1:]), "results": results}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
