"""`make demo`: sample_publisher -> encoder_node -> decoder_node over DDS, measured from outside.

Starts the three nodes of launch/pipeline.launch.py as separate processes, with the same
executables, parameter files and remappings (read from the launch file's node table), plus a
monitor node in this process, and prints per modality: bits per pixel, kbit/s, PSNR and latency
(capture stamp -> decoded image received). Input: real frames with ``--data PATH`` (a folder
``PATH/{rgb,thermal}/`` or ``PATH/{rgb,thermal}.mp4``), otherwise the built-in synthetic scene,
labelled SYNTHETIC in the output.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_FRAMES = 20
DEFAULT_RATE = 2.0


def _stop(proc: subprocess.Popen, timeout: float = 15.0) -> None:
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGINT, timeout), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.kill(proc.pid, sig)
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue
        except ProcessLookupError:
            return


def _tail(path: Path, n: int = 8) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-n:])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="", help="frame folder or paired-video folder (default: synthetic scene)")
    ap.add_argument("--frames", type=int, default=DEFAULT_FRAMES, help="frames to publish")
    ap.add_argument("--rate", type=float, default=DEFAULT_RATE, help="camera rate, Hz")
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--height", type=int, default=240)
    ap.add_argument("--quality", type=int, default=None, help="override config/encoder.yaml")
    ap.add_argument("--gop", type=int, default=None, help="override config/encoder.yaml")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=1, help="PyTorch threads per node (0: default)")
    ap.add_argument("--thermal-encoding", default="mono8", choices=["mono8", "mono16", "16UC1"])
    ap.add_argument("--timeout", type=float, default=300.0, help="give up after this many seconds")
    ap.add_argument("--json", default="", help="also write the summary as JSON here")
    args = ap.parse_args(argv)

    import rclpy

    from mm_compress_ros.ros.launch_table import env_for_nodes, node_commands
    from mm_compress_ros.ros.monitor import PipelineMonitor, format_summary

    data = str(Path(args.data).resolve()) if args.data else ""
    if data and not Path(data).is_dir():
        print(f"demo: --data {args.data}: not a directory", file=sys.stderr)
        return 2
    label = f"REAL frames from {data}" if data else "SYNTHETIC scene (built-in, not real data)"
    enc_params = {"torch_threads": args.threads, "log_period": 5.0}
    if args.quality is not None:
        enc_params["quality"] = args.quality
    if args.gop is not None:
        enc_params["gop"] = args.gop
    params = {
        "sample_publisher": {"count": args.frames, "rate": args.rate, "width": args.width,
                             "height": args.height, "loop": True, "wait_for_subscribers": 2,
                             "wait_timeout": 120.0, "thermal_encoding": args.thermal_encoding},
        "encoder_node": enc_params,
        "decoder_node": {"torch_threads": args.threads, "log_period": 5.0},
    }
    cmds = {c.name: c for c in node_commands("pipeline.launch.py", {"path": data, "device": args.device}, params)}
    env = env_for_nodes()
    print(f"demo: input: {label}")
    print(f"demo: {args.frames} frames at {args.rate:g} Hz, {args.width}x{args.height}, "
          f"ROS_DOMAIN_ID={env.get('ROS_DOMAIN_ID')}, RMW={env.get('RMW_IMPLEMENTATION')}, "
          f"Fast DDS profile {Path(env['FASTDDS_DEFAULT_PROFILES_FILE']).name}")
    logdir = Path(tempfile.mkdtemp(prefix="mmc_demo_"))
    procs: dict[str, subprocess.Popen] = {}
    logs: dict[str, Path] = {}

    def start(name):
        logs[name] = logdir / f"{name}.log"
        procs[name] = subprocess.Popen(cmds[name].argv, env=env, stdout=open(logs[name], "wb"),
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True)

    rclpy.init()
    monitor = PipelineMonitor(str(logdir / "monitor.jsonl"))
    rc = 0
    try:
        start("decoder_node")
        start("encoder_node")
        start("sample_publisher")  # waits for 2 subscribers (encoder + monitor) before publishing
        deadline = time.monotonic() + args.timeout
        last_count, last_change = -1, time.monotonic()
        while time.monotonic() < deadline:
            rclpy.spin_once(monitor, timeout_sec=0.1)
            for name in ("encoder_node", "decoder_node"):
                if procs[name].poll() is not None:
                    print(f"demo: {name} exited with {procs[name].returncode}:\n{_tail(logs[name], 15)}",
                          file=sys.stderr)
                    return 1
            done = procs["sample_publisher"].poll() is not None
            n = sum(1 for r in monitor.records if r["kind"] == "decoded")
            if n != last_count:
                last_count, last_change = n, time.monotonic()
            # Finished: the source is done and nothing new was decoded for a while.
            if done and time.monotonic() - last_change > 8.0:
                break
        else:
            print("demo: timed out", file=sys.stderr)
            rc = 1
        summary = monitor.summary()
        print()
        print(format_summary(summary, label))
        for name, rec in sorted(monitor.diagnostics.items()):
            v = rec["values"]
            if "encode_ms_mean" in v:
                print(f"encoder: {v['frames']} frames encoded, {v['drops']} dropped by the keep-newest policy, "
                      f"encode {float(v['encode_ms_mean']):.0f} ms mean")
            if "decode_ms_mean" in v:
                print(f"decoder: {v['decoded']} decoded, decode {float(v['decode_ms_mean']):.0f} ms mean, "
                      f"lost {v['lost']}, corrupt {v['corrupt']}")
        print(f"logs: {logdir}")
        if args.json:
            Path(args.json).write_text(json.dumps({"input": label, **summary}, indent=2) + "\n")
        if summary["rgb"]["decoded"] == 0:
            print("demo: no frame was decoded", file=sys.stderr)
            for name in procs:
                print(f"--- {name}\n{_tail(logs[name], 10)}", file=sys.stderr)
            rc = 1
    except KeyboardInterrupt:
        rc = 130
    finally:
        for name in ("sample_publisher", "encoder_node", "decoder_node"):
            if name in procs:
                _stop(procs[name])
        monitor.destroy_node()
        rclpy.try_shutdown()
    return rc


if __name__ == "__main__":
    sys.exit(main())
