"""End-to-end latency and throughput of sample -> encoder -> decoder over DDS, per stage.

Runs the nodes of launch/pipeline.launch.py as processes (mm_compress_ros.ros.demo.run_pipeline)
and measures from a monitor process-local node. Run inside the ROS environment:

    source scripts/ros_env.sh
    python benchmarks/pipeline_latency.py --width 640 --height 480 --rate 10 --frames 60 \
        --data ../shared/data/m3svd_seq/0111_1716 --json docs/results/pipeline_640x480_10hz.json

Stages (all from the capture stamp or between observations of the same frame):
  transport   capture stamp -> raw image received by the monitor (DDS, 640x480 images)
  to_encoded  capture stamp -> EncodedFrame received (synchronizer + keep-newest slot + encode + DDS)
  encode      encoder's own encode time (codec only)
  to_decoded  EncodedFrame received -> decoded image received (decoder queue + decode + DDS)
  decode      decoder's own decode time (codec only)
  end_to_end  capture stamp -> decoded image received
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path


def stats(xs):
    xs = sorted(xs)
    if not xs:
        return None
    pick = lambda q: xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]  # noqa: E731
    return {"n": len(xs), "mean": sum(xs) / len(xs), "p50": pick(0.5), "p95": pick(0.95), "max": xs[-1]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="")
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--rate", type=float, default=10.0)
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--threads", type=int, default=1, help="PyTorch threads per node")
    ap.add_argument("--quality", type=int, default=0, help="encoder quality (0: the model's middle level)")
    ap.add_argument("--json", default="")
    args = ap.parse_args()

    import rclpy

    from mm_compress_ros.ros.demo import run_pipeline

    data = str(Path(args.data).resolve()) if args.data else ""
    monitor, ok, logdir = run_pipeline(data, args.frames, args.rate, args.width, args.height,
                                       threads=args.threads, encoder={"quality": args.quality},
                                       log=lambda m: print(f"bench: {m}", flush=True))
    recs = list(monitor.records)
    raw = [r for r in recs if r["kind"] == "raw" and r["modality"] == "rgb"]
    enc = [r for r in recs if r["kind"] == "encoded"]
    dec = [r for r in recs if r["kind"] == "decoded" and r["modality"] == "rgb"]
    dec_th = [r for r in recs if r["kind"] == "decoded" and r["modality"] == "thermal"]
    enc_by_stamp = {e["stamp"]: e for e in enc}
    diags = {}
    for r in recs:
        if r["kind"] == "diagnostics":
            diags["encoder" if r["name"].endswith(": encoder") else "decoder"] = r["values"]

    def span_fps(rows):
        if len(rows) < 2:
            return 0.0
        return (len(rows) - 1) / ((rows[-1]["recv_ns"] - rows[0]["recv_ns"]) / 1e9)

    result = {
        "input": data or "synthetic scene",
        "size": f"{args.width}x{args.height}", "rate_hz": args.rate, "frames": args.frames,
        "torch_threads_per_node": args.threads, "quality": args.quality,
        "model": enc[0].get("codec") if enc else None, "quality_used": enc[0].get("quality") if enc else None,
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine()},
        "ok": ok,
        "throughput_fps": {"input": span_fps(raw), "encoded": span_fps(enc), "decoded": span_fps(dec)},
        "counts": {"published": len(raw), "encoded": len(enc), "decoded": len(dec),
                   "encoder_drops": int(diags.get("encoder", {}).get("drops", 0))},
        "latency_ms": {
            "transport": stats([(r["recv_ns"] - r["stamp"]) / 1e6 for r in raw]),
            "to_encoded": stats([(e["recv_ns"] - e["stamp"]) / 1e6 for e in enc]),
            "encode": {"mean": float(diags.get("encoder", {}).get("encode_ms_mean_all", "nan"))},
            "to_decoded": stats([(d["recv_ns"] - enc_by_stamp[d["stamp"]]["recv_ns"]) / 1e6
                                 for d in dec if d["stamp"] in enc_by_stamp]),
            "decode": {"mean": float(diags.get("decoder", {}).get("decode_ms_mean_all", "nan"))},
            "end_to_end": stats([d["latency_ms"] for d in dec]),
            "end_to_end_thermal": stats([d["latency_ms"] for d in dec_th]),
        },
        "per_modality": monitor.summary(),
        "logs": str(logdir),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    monitor.destroy_node()
    rclpy.try_shutdown()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
