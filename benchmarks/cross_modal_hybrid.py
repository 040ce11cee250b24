"""Cross-modal gain in the hybrid profile: thermal bits at equal PSNR with the real H.264/H.265-
decoded RGB as the reference, against the same network given a blank reference.

    .venv/bin/python benchmarks/cross_modal_hybrid.py --quality 1 2 4 6

Thermal key frames (GOP 1) of two rigs: m3svd_seq (frames 0 and 10 of each sequence, 640x480,
lossless) and roadscene (the first --roadscene pairs, FLIR ADAS, another camera rig). "blank"
replaces the RGB frame by a constant grey image, coded by the same standard codec, so the dependent
codec gets no information from the other camera; everything else is the same. Thermal bits are the
dependent sections of each packet (alignment coefficients, y, z). BD-rate < 0 means the real
reference saves bits. Writes docs/results/cross_modal_hybrid.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mm_compress_ros.codec.multimodal import BLANK_REFERENCE  # noqa: E402
from mm_compress_ros.codec.packet import read_header  # noqa: E402
from mm_compress_ros.codec.stream import StreamEncoder  # noqa: E402
from mm_compress_ros.codec.zoo import load_model  # noqa: E402
from mm_compress_ros.eval.bdrate import BDError, bd_psnr, bd_rate  # noqa: E402
from mm_compress_ros.eval.metrics import psnr  # noqa: E402
from mm_compress_ros.io.frames import read_rgb, read_thermal  # noqa: E402

DATA = REPO.parent / "shared" / "data"


def rigs(n_road: int) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    m3 = []
    for seq in sorted((DATA / "m3svd_seq").iterdir()):
        for i in (0, 10):
            m3.append((read_rgb(seq / "rgb" / f"{i:04d}.png"), read_thermal(seq / "thermal" / f"{i:04d}.png")))
    road = []
    for f in sorted((DATA / "roadscene" / "rgb").iterdir())[:n_road]:
        rgb, th = read_rgb(f), read_thermal(DATA / "roadscene" / "thermal" / f.name)
        h, w = min(rgb.shape[0], th.shape[0]), min(rgb.shape[1], th.shape[1])
        road.append((np.ascontiguousarray(rgb[:h, :w]), np.ascontiguousarray(th[:h, :w])))
    return {"m3svd_seq": m3, "roadscene": road}


def thermal_point(model, pairs, codec: str, quality: int, blank: bool) -> tuple[float, float]:
    """(thermal bpp, thermal PSNR) averaged over key frames."""
    bpp, q = [], []
    for rgb, th in pairs:
        enc = StreamEncoder(model, quality=quality, gop=1, reference_codec=codec, encoder="software")
        ref = np.full_like(rgb, BLANK_REFERENCE) if blank else rgb
        h = read_header(enc.encode(ref, th))
        dep_bytes = sum(n for (role, _), n in zip(h.layout, h.section_lengths) if role == "dep")
        bpp.append(8 * dep_bytes / th.size)
        q.append(psnr(th, enc.last_pair().thermal))
    return float(np.mean(bpp)), float(np.mean(q))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quality", type=int, nargs="+", default=[1, 2, 4, 6])
    ap.add_argument("--codec", default="h264", choices=["h264", "h265", "learned"])
    ap.add_argument("--model", default="mmvc", help="model name (default mmvc)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads (default: 1 for the first design, 2 for an integer decoder)")
    ap.add_argument("--roadscene", type=int, default=20, help="roadscene pairs (default 20)")
    ap.add_argument("--out", default=str(REPO / "docs" / "results" / "cross_modal_hybrid.json"))
    args = ap.parse_args(argv)
    import torch
    model = load_model(args.model, device="cpu")
    torch.set_num_threads(args.threads or (2 if model.net.exact else 1))
    t0 = time.time()
    res = {"command": "benchmarks/cross_modal_hybrid.py " + " ".join(sys.argv[1:] if argv is None else argv),
           "model": model.model_id, "model_sha256": model.sha256, "reference_codec": args.codec, "rigs": {}}
    for rig, pairs in rigs(args.roadscene).items():
        curves = {}
        for kind in ("real", "blank"):
            curves[kind] = [thermal_point(model, pairs, args.codec, q, kind == "blank") for q in args.quality]
            print(rig, kind, curves[kind], file=sys.stderr, flush=True)
        (rb, qb), (rr, qr) = zip(*curves["blank"]), zip(*curves["real"])
        row = {"pairs": len(pairs), "quality": args.quality, "real": curves["real"], "blank": curves["blank"]}
        try:
            row["bd_rate_real_vs_blank"] = bd_rate(rb, qb, rr, qr)
            row["bd_psnr_real_vs_blank"] = bd_psnr(rb, qb, rr, qr)
        except BDError as e:
            row["bd_rate_real_vs_blank"] = f"n/a ({e})"
        res["rigs"][rig] = row
        print(json.dumps({rig: {k: v for k, v in row.items() if k.startswith("bd")}}), flush=True)
    res["seconds"] = round(time.time() - t0)
    Path(args.out).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
