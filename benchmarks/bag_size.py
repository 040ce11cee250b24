#!/usr/bin/env python3
"""Bag sizes (issue 7): the same m3svd_seq frames recorded as raw images, as JPEG (what
compressed_image_transport records) and as this project's compressed stream.

For every sequence: a raw bag (sensor_msgs/Image: rgb8 + mono8 at 30 Hz, RGB and thermal stamped
4 ms apart), a JPEG bag (sensor_msgs/CompressedImage at ``--jpeg-quality``, encoded with OpenCV's
``imencode`` as compressed_image_transport does, format strings as it writes them) and the bag
``mm-compress bag encode`` makes of the raw bag (``--quality``, ``--gop``). Reported: bag sizes on
disk (all files of the bag folder), image payload bytes, kbit/s at 30 fps, bits per pixel pair,
and the PSNR of the decoded frames against the originals for JPEG and for the learned codec (a
size means little without the quality it buys). Sizes depend on the model: the model file's
SHA-256 is printed with the results.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bag_size.py --sequences 2 --frames 20
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bag_size.py --size 320x240 --json out.json
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from mm_compress_ros.eval.metrics import psnr  # noqa: E402

FPS = 30.0
THERMAL_OFFSET_NS = 4_000_000


def bag_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def load_frames(seq: Path, n: int, size: tuple[int, int] | None):
    import cv2

    from mm_compress_ros.io.frames import list_images, read_rgb, read_thermal

    rgbs, ths = list_images(seq / "rgb")[:n], list_images(seq / "thermal")[:n]
    out = []
    for a, b in zip(rgbs, ths):
        rgb, th = read_rgb(a), read_thermal(b)
        if size:
            rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
            th = cv2.resize(th, size, interpolation=cv2.INTER_AREA)
        out.append((rgb, th))
    return out


def write_jpeg_bag(out: Path, pairs, quality: int, storage: str) -> dict:
    """CompressedImage bag as compressed_image_transport records it (OpenCV JPEG, given quality)."""
    import cv2

    from mm_compress_ros.bag.bagio import bag_output, make_header
    from types import SimpleNamespace

    payload, errs_rgb, errs_th = 0, [], []
    with bag_output(out, storage) as w:
        T = w.store.types
        rc = w.add_typed("/rgb/image/compressed", "sensor_msgs/msg/CompressedImage")
        tc = w.add_typed("/thermal/image/compressed", "sensor_msgs/msg/CompressedImage")
        params = [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)]
        for i, (rgb, th) in enumerate(pairs):
            t = 1_700_000_000_000_000_000 + int(i * 1e9 / FPS)
            for conn, img, fmt, ts, errs in (
                    (rc, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), "rgb8; jpeg compressed bgr8", t, errs_rgb),
                    (tc, th, "mono8; jpeg compressed mono8", t + THERMAL_OFFSET_NS, errs_th)):
                ok, buf = cv2.imencode(".jpg", img, params)
                assert ok
                back = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
                errs.append(psnr(back, img))
                stamp = SimpleNamespace(sec=ts // 10**9, nanosec=ts % 10**9)
                w.write_msg(conn, ts, T["sensor_msgs/msg/CompressedImage"](
                    header=make_header(w.store, stamp, "cam"), format=fmt, data=buf.reshape(-1)))
                payload += buf.size
    return {"payload": payload, "psnr_rgb": float(np.mean(errs_rgb)), "psnr_thermal": float(np.mean(errs_th))}


def decode_quality(enc_bag: Path, pairs, model) -> dict:
    from mm_compress_ros.bag.bagio import open_reader
    from mm_compress_ros.bag.types import ENCODED_FRAME, typestore
    from mm_compress_ros.codec.stream import StreamDecoder

    store = typestore()
    dec = StreamDecoder(model)
    r = open_reader(enc_bag)
    pr, pt, i = [], [], 0
    try:
        for c, _, raw in r.messages():
            if c.msgtype != ENCODED_FRAME:
                continue
            pair = dec.decode(store.deserialize_cdr(raw, ENCODED_FRAME).data.tobytes())
            pr.append(psnr(pair.rgb, pairs[i][0]))
            pt.append(psnr(pair.thermal, pairs[i][1]))
            i += 1
    finally:
        r.close()
    return {"psnr_rgb": float(np.mean(pr)), "psnr_thermal": float(np.mean(pt)), "decoded": i}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", help="m3svd_seq folder (default: ../shared/data/m3svd_seq)")
    ap.add_argument("--sequences", default="2", help="a count (first N, sorted) or comma-separated names")
    ap.add_argument("--frames", type=int, default=20, help="frame pairs per sequence (default 20)")
    ap.add_argument("--size", help="resize to WxH (default: native 640x480)")
    ap.add_argument("--quality", type=int, default=3, help="codec quality level (default 3)")
    ap.add_argument("--gop", type=int, default=10)
    ap.add_argument("--jpeg-quality", type=int, default=80)
    ap.add_argument("--model", default="mmvc")
    ap.add_argument("--storage", default="mcap", choices=["mcap", "sqlite3"])
    ap.add_argument("--keep", help="keep the bags in this folder (default: a temporary folder)")
    ap.add_argument("--json", help="write the results as JSON here")
    args = ap.parse_args(argv)

    from mm_compress_ros.bag.rawbag import write_raw_bag
    from mm_compress_ros.bag.encode import encode_bag
    from mm_compress_ros.codec.zoo import load_model
    from mm_compress_ros.io.frames import default_data_root

    if args.data:
        root = Path(args.data)
    else:
        base = default_data_root()
        if base is None:
            print("bag_size: no data: pass --data .../m3svd_seq", file=sys.stderr)
            return 2
        root = base / "m3svd_seq"
    names = sorted(p.name for p in root.iterdir() if (p / "rgb").is_dir())
    seqs = names[: int(args.sequences)] if args.sequences.isdigit() else args.sequences.split(",")
    size = tuple(int(v) for v in args.size.lower().split("x")) if args.size else None
    model = load_model(args.model, device="cpu")
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bag_size_"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        for name in seqs:
            pairs = load_frames(root / name, args.frames, size)
            h, w = pairs[0][0].shape[:2]
            raw, jpg, enc = work / f"{name}_raw", work / f"{name}_jpeg{args.jpeg_quality}", work / f"{name}_mmvc"
            for p in (raw, jpg, enc):
                shutil.rmtree(p, ignore_errors=True)
            write_raw_bag(raw, pairs, rgb_encoding="rgb8", thermal_encoding="mono8", storage=args.storage,
                          period_ns=int(1e9 / FPS), thermal_offset_ns=THERMAL_OFFSET_NS)
            j = write_jpeg_bag(jpg, pairs, args.jpeg_quality, args.storage)
            t0 = time.perf_counter()
            e = encode_bag(raw, enc, "/rgb/image", "/thermal/image", model=model, quality=args.quality,
                           gop=args.gop, storage=args.storage, quiet=True)
            enc_s = time.perf_counter() - t0
            q = decode_quality(enc, pairs, model)
            n = len(pairs)
            rows.append({
                "sequence": name, "frames": n, "width": w, "height": h,
                "raw_bag": bag_bytes(raw), "raw_payload": sum(p[0].nbytes + p[1].nbytes for p in pairs),
                "jpeg_bag": bag_bytes(jpg), "jpeg_payload": j["payload"],
                "jpeg_psnr_rgb": round(j["psnr_rgb"], 2), "jpeg_psnr_thermal": round(j["psnr_thermal"], 2),
                "codec_bag": bag_bytes(enc), "codec_payload": e["packet_bytes"], "codec_key_frames": e["key_frames"],
                "codec_psnr_rgb": round(q["psnr_rgb"], 2), "codec_psnr_thermal": round(q["psnr_thermal"], 2),
                "encode_s_per_pair": round(enc_s / n, 3),
            })
            print(json.dumps(rows[-1]), file=sys.stderr)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    tot = {k: sum(r[k] for r in rows) for k in ("frames", "raw_bag", "raw_payload", "jpeg_bag", "jpeg_payload",
                                                "codec_bag", "codec_payload")}
    mean = {k: round(float(np.mean([r[k] for r in rows])), 2) for k in
            ("jpeg_psnr_rgb", "jpeg_psnr_thermal", "codec_psnr_rgb", "codec_psnr_thermal", "encode_s_per_pair")}
    px = rows[0]["width"] * rows[0]["height"]
    result = {"model": model.model_id, "weights_sha256": model.sha256, "quality": args.quality, "gop": args.gop,
              "jpeg_quality": args.jpeg_quality, "storage": args.storage, "sequences": seqs,
              "frames_per_sequence": args.frames, "size": f"{rows[0]['width']}x{rows[0]['height']}",
              "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "rows": rows, "total": tot, "mean": mean}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))

    def kbps(b):
        return b * 8 / (tot["frames"] / FPS) / 1e3

    def line(label, bag, payload, prgb, pth):
        return (f"| {label} | {bag / 1e6:.3f} | {payload / 1e6:.3f} | {kbps(payload):,.0f} | "
                f"{payload * 8 / tot['frames'] / px:.3f} | {tot['raw_bag'] / bag:.1f}x | {prgb} | {pth} |")

    print(f"{len(seqs)} sequences ({', '.join(seqs)}) x {args.frames} frame pairs at {result['size']}, "
          f"{args.storage}; model {model.model_id} sha256 {model.sha256[:16]}, quality {args.quality}, "
          f"GOP {args.gop}; JPEG quality {args.jpeg_quality}\n")
    print("| bag | bag MB | image payload MB | payload kbit/s at 30 fps | bits per pixel pair | raw bag / bag "
          "| PSNR RGB dB | PSNR thermal dB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    print(line("raw sensor_msgs/Image (rgb8 + mono8)", tot["raw_bag"], tot["raw_payload"], "lossless", "lossless"))
    print(line(f"JPEG q{args.jpeg_quality} sensor_msgs/CompressedImage", tot["jpeg_bag"], tot["jpeg_payload"],
               f"{mean['jpeg_psnr_rgb']:.2f}", f"{mean['jpeg_psnr_thermal']:.2f}"))
    print(line(f"mm_compress EncodedFrame (q{args.quality}, GOP {args.gop})", tot["codec_bag"], tot["codec_payload"],
               f"{mean['codec_psnr_rgb']:.2f}", f"{mean['codec_psnr_thermal']:.2f}"))
    print(f"\nencode time {mean['encode_s_per_pair']:.2f} s per pair (CPU, OMP_NUM_THREADS="
          f"{result['omp_num_threads']}); JPEG bag / compressed bag = {tot['jpeg_bag'] / tot['codec_bag']:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
