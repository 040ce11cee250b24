"""Overload benchmark: input at twice the encoder's measured capacity for several minutes.

sample_publisher -> encoder_node -> decoder_node (launch/pipeline.launch.py's nodes, each its own
process, over DDS) with a monitor node in this process. Two phases on the same encoder and decoder:

1. capacity: the input runs far faster than the encoder (``--calib-rate``, default 20 Hz) for
   ``--calib-s`` seconds; the encoder's output rate over that time is its capacity on this
   machine (with the decoder running beside it, as in the real pipeline).
2. load: the input runs at ``--factor`` (default 2) x that capacity for ``--duration`` seconds.

Measured in phase 2: latency (capture stamp -> EncodedFrame received, and -> decoded image
received) per minute, so that growth would show; drops (encoder keep-newest slot, stale pairs,
synchronizer evictions, decoder backlog drops, lost/corrupt); resident memory (psutil RSS) of the
encoder and decoder processes every ``--sample-s`` seconds, with its slope after the first minute.
Writes JSON to runs/ and prints a summary. Run inside the ROS environment, one torch thread:

    source scripts/ros_env.sh
    OMP_NUM_THREADS=1 python benchmarks/load.py --width 160 --height 128 --duration 240

This is a benchmark, not a test: it prints its figures and exits 0 unless a node died or nothing
was encoded.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "m3svd_seq" / "0111_1716"


def stats(xs):
    xs = sorted(xs)
    if not xs:
        return None
    pick = lambda q: xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]  # noqa: E731
    return {"n": len(xs), "mean": sum(xs) / len(xs), "p50": pick(0.5), "p95": pick(0.95), "max": xs[-1]}


def slope_per_min(points):
    """Least-squares slope of (t_s, value) points, per minute."""
    if len(points) < 2:
        return None
    n = len(points)
    mt = sum(t for t, _ in points) / n
    mv = sum(v for _, v in points) / n
    den = sum((t - mt) ** 2 for t, _ in points)
    return 60.0 * sum((t - mt) * (v - mv) for t, v in points) / den if den > 0 else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(DEFAULT_DATA) if DEFAULT_DATA.is_dir() else "",
                    help="frame folder (<path>/{rgb,thermal}/); empty: synthetic scene")
    ap.add_argument("--width", type=int, default=160)
    ap.add_argument("--height", type=int, default=128)
    ap.add_argument("--duration", type=float, default=240.0, help="load phase, seconds")
    ap.add_argument("--factor", type=float, default=2.0, help="input rate / measured capacity")
    ap.add_argument("--calib-rate", type=float, default=20.0)
    ap.add_argument("--calib-s", type=float, default=30.0)
    ap.add_argument("--sample-s", type=float, default=5.0, help="memory sampling period")
    ap.add_argument("--quality", type=int, default=3)
    ap.add_argument("--gop", type=int, default=10)
    ap.add_argument("--json", default="", help="default: runs/load_<w>x<h>_<utc time>.json")
    args = ap.parse_args()

    import psutil
    import rclpy

    from mm_compress_ros.ros.demo import stop_process
    from mm_compress_ros.ros.launch_table import env_for_nodes, node_commands
    from mm_compress_ros.ros.monitor import PipelineMonitor

    data = str(Path(args.data).resolve()) if args.data else ""
    env = env_for_nodes()
    env.setdefault("OMP_NUM_THREADS", "1")
    logdir = Path(tempfile.mkdtemp(prefix="mmc_load_"))
    common = {"torch_threads": 1, "log_period": 10.0, "diagnostics_period": 1.0}
    node_params = {"encoder_node": {**common, "quality": args.quality, "gop": args.gop},
                   "decoder_node": dict(common)}

    def cmd(name, sample=None):
        params = dict(node_params)
        if sample is not None:
            params["sample_publisher"] = {"width": args.width, "height": args.height, "loop": True,
                                          "wait_for_subscribers": 2, "wait_timeout": 120.0, **sample}
        return {c.name: c for c in node_commands("pipeline.launch.py", {"path": data, "device": "cpu"},
                                                 params)}[name].argv

    procs: dict[str, subprocess.Popen] = {}

    def start(name, argv, tag=None):
        log = open(logdir / f"{tag or name}.log", "wb")
        procs[tag or name] = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                                              stdin=subprocess.DEVNULL, start_new_session=True)
        return procs[tag or name]

    def say(msg):
        print(f"load: {msg}", flush=True)

    rclpy.init()
    monitor = PipelineMonitor(str(logdir / "monitor.jsonl"))
    mem = {"encoder_node": [], "decoder_node": []}
    result: dict = {}
    ok = True
    try:
        start("decoder_node", cmd("decoder_node"))
        start("encoder_node", cmd("encoder_node"))
        ps = {n: psutil.Process(procs[n].pid) for n in mem}

        def spin(seconds, t0=None, sample=False, until=None):
            end = time.monotonic() + seconds
            next_sample = time.monotonic()
            while time.monotonic() < end:
                rclpy.spin_once(monitor, timeout_sec=0.05)
                for n in mem:
                    if procs[n].poll() is not None:
                        raise RuntimeError(f"{n} exited with {procs[n].returncode}; logs in {logdir}")
                if sample and time.monotonic() >= next_sample:
                    next_sample += args.sample_s
                    for n, p in ps.items():
                        mem[n].append((time.monotonic() - t0, p.memory_info().rss / 2**20))
                if until is not None and until():
                    return

        def encoded_since(t_ns):
            return [r for r in monitor.records if r["kind"] == "encoded" and r["recv_ns"] >= t_ns]

        # Phase 1: capacity.
        calib_count = int(args.calib_rate * args.calib_s)
        say(f"phase 1: capacity at {args.width}x{args.height}, input {args.calib_rate:g} Hz for {args.calib_s:g} s")
        start("sample_publisher", cmd("sample_publisher", {"rate": args.calib_rate, "count": calib_count}),
              tag="sample_calib")
        spin(180, until=lambda: procs["sample_calib"].poll() is not None)
        enc = [r for r in monitor.records if r["kind"] == "encoded"]
        # Skip the first 5 encoded frames (warm-up) and measure the rate over the rest.
        steady = enc[5:]
        if len(steady) < 5:
            raise RuntimeError(f"only {len(enc)} frames encoded in the capacity phase; logs in {logdir}")
        capacity = (len(steady) - 1) / ((steady[-1]["recv_ns"] - steady[0]["recv_ns"]) / 1e9)
        rate = args.factor * capacity
        say(f"capacity {capacity:.2f} frames/s -> load input {rate:.2f} Hz for {args.duration:g} s")
        spin(5.0)  # drain

        # Phase 2: load.
        n_before = len(monitor.records)
        t0_ns = monitor.get_clock().now().nanoseconds
        t0 = time.monotonic()
        start("sample_publisher", cmd("sample_publisher", {"rate": rate, "count": int(rate * args.duration)}),
              tag="sample_load")
        spin(args.duration + 120, t0=t0, sample=True,
             until=lambda: procs["sample_load"].poll() is not None)
        load_end = time.monotonic()
        spin(8.0, t0=t0, sample=True)  # drain
        recs = monitor.records[n_before:]
        diag = {}
        for r in recs:
            if r["kind"] == "diagnostics":
                diag["encoder" if r["name"].endswith(": encoder") else "decoder"] = r["values"]
        diag_start = {}
        for r in monitor.records[:n_before]:
            if r["kind"] == "diagnostics":
                diag_start["encoder" if r["name"].endswith(": encoder") else "decoder"] = r["values"]

        def delta(side, key):
            return int(diag.get(side, {}).get(key, 0)) - int(diag_start.get(side, {}).get(key, 0))

        raw = [r for r in recs if r["kind"] == "raw" and r["modality"] == "rgb"]
        enc = [r for r in recs if r["kind"] == "encoded" and r["stamp"] >= t0_ns]
        dec = [r for r in recs if r["kind"] == "decoded" and r["modality"] == "rgb" and r["stamp"] >= t0_ns]
        span = max(1e-9, (raw[-1]["recv_ns"] - raw[0]["recv_ns"]) / 1e9) if len(raw) > 1 else 0.0
        minutes = {}
        for e in enc:
            m = int((e["stamp"] - t0_ns) / 60e9)
            minutes.setdefault(m, {"to_encoded": [], "end_to_end": []})["to_encoded"].append(
                (e["recv_ns"] - e["stamp"]) / 1e6)
        for d in dec:
            m = int((d["stamp"] - t0_ns) / 60e9)
            minutes.setdefault(m, {"to_encoded": [], "end_to_end": []})["end_to_end"].append(d["latency_ms"])
        mem_out = {}
        for n, pts in mem.items():
            after = [(t, v) for t, v in pts if t >= 60.0 and t <= load_end - t0]
            mem_out[n] = {
                "samples": len(pts), "first_mb": pts[0][1] if pts else None,
                "at_60s_mb": after[0][1] if after else None, "last_mb": pts[-1][1] if pts else None,
                "max_mb": max(v for _, v in pts) if pts else None,
                "slope_mb_per_min_after_60s": slope_per_min(after),
                "series": [[round(t, 1), round(v, 2)] for t, v in pts],
            }
        pairs = delta("encoder", "frames") + delta("encoder", "drops") + delta("encoder", "stale")
        result = {
            "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join([os.path.relpath(sys.argv[0], REPO)] + sys.argv[1:]),
            "input": data or "synthetic scene", "size": f"{args.width}x{args.height}",
            "quality": args.quality, "gop": args.gop, "torch_threads_per_node": 1,
            "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                        "loadavg_at_end": os.getloadavg()},
            "capacity_fps": capacity, "input_rate_hz": rate, "factor": args.factor,
            "duration_s": args.duration,
            "counts": {
                "published": len(raw), "input_fps_measured": (len(raw) - 1) / span if span else 0.0,
                "encoded": len(enc), "encoded_fps": len(enc) / span if span else 0.0,
                "decoded": len(dec),
                "encoder_drops": delta("encoder", "drops"), "encoder_stale": delta("encoder", "stale"),
                "sync_evicted": delta("encoder", "sync_evicted"), "encoder_errors": delta("encoder", "errors"),
                "pairs_accounted": pairs,
                "decoder_overflow_drops": delta("decoder", "overflow_drops"),
                "decoder_lost": delta("decoder", "lost"), "decoder_corrupt": delta("decoder", "corrupt"),
                "decoder_skipped": delta("decoder", "skipped"),
            },
            "encode_ms_mean": float(diag.get("encoder", {}).get("encode_ms_mean_all", "nan")),
            "decode_ms_mean": float(diag.get("decoder", {}).get("decode_ms_mean_all", "nan")),
            "latency_ms": {
                "to_encoded": stats([(e["recv_ns"] - e["stamp"]) / 1e6 for e in enc]),
                "end_to_end": stats([d["latency_ms"] for d in dec]),
                "per_minute": {str(m): {k: stats(v) for k, v in x.items()} for m, x in sorted(minutes.items())},
            },
            "rss": mem_out,
            "logs": str(logdir),
        }
    except RuntimeError as exc:
        say(str(exc))
        ok = False
    finally:
        for name in list(procs)[::-1]:
            stop_process(procs[name])
        monitor.destroy_node()
        rclpy.try_shutdown()
    if not result:
        return 1
    out = Path(args.json) if args.json else (
        REPO / "runs" / f"load_{args.width}x{args.height}_{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")

    c, lat = result["counts"], result["latency_ms"]
    print(f"load: {result['size']}, capacity {capacity:.2f} fps, input {c['input_fps_measured']:.2f} Hz "
          f"for {args.duration:g} s: published {c['published']}, encoded {c['encoded']} "
          f"({c['encoded_fps']:.2f} fps), decoded {c['decoded']}")
    print(f"load: drops: encoder slot {c['encoder_drops']}, stale {c['encoder_stale']}, unpaired "
          f"{c['sync_evicted']}, decoder backlog {c['decoder_overflow_drops']}, lost {c['decoder_lost']}, "
          f"corrupt {c['decoder_corrupt']}; pairs accounted {c['pairs_accounted']}")
    for m, x in result["latency_ms"]["per_minute"].items():
        te, ee = x["to_encoded"], x["end_to_end"]
        print(f"load: minute {m}: to_encoded p50 {te['p50']:.0f} p95 {te['p95']:.0f} max {te['max']:.0f} ms"
              + (f" | end_to_end p50 {ee['p50']:.0f} p95 {ee['p95']:.0f} max {ee['max']:.0f} ms" if ee else ""))
    for n, m in result["rss"].items():
        print(f"load: {n} RSS first {m['first_mb']:.1f} MB, at 60 s {m['at_60s_mb'] or float('nan'):.1f} MB, "
              f"last {m['last_mb']:.1f} MB, max {m['max_mb']:.1f} MB, slope after 60 s "
              f"{m['slope_mb_per_min_after_60s'] or 0.0:+.2f} MB/min")
    print(f"load: wrote {out.relative_to(REPO) if out.is_relative_to(REPO) else out}")
    return 0 if ok and c["encoded"] > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
