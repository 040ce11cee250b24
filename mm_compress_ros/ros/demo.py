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


def stop_process(proc: subprocess.Popen, timeout: float = 15.0) -> None:
    """SIGINT, then SIGTERM, then SIGKILL, by PID (processes this module or a benchmark started)."""
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


def run_pipeline(data: str, frames: int, rate: float, width: int, height: int, *, device: str = "auto",
                 threads: int = 1, encoder: dict | None = None, decoder: dict | None = None,
                 sample: dict | None = None, timeout: float = 300.0, quiet_s: float = 8.0,
                 log=print):
    """Run sample -> encoder -> decoder (launch/pipeline.launch.py's nodes, as processes) with a
    monitor in this process until the source is done and decoding has drained.

    Returns (monitor, ok, logdir). ``monitor.records`` holds every observation.
    """
    import rclpy

    from mm_compress_ros.ros.launch_table import env_for_nodes, node_commands
    from mm_compress_ros.ros.monitor import PipelineMonitor

    params = {
        "sample_publisher": {"count": frames, "rate": rate, "width": width, "height": height, "loop": True,
                             "wait_for_subscribers": 2, "wait_timeout": 120.0, **(sample or {})},
        "encoder_node": {"torch_threads": threads, "log_period": 5.0, **(encoder or {})},
        "decoder_node": {"torch_threads": threads, "log_period": 5.0, **(decoder or {})},
    }
    cmds = {c.name: c for c in node_commands("pipeline.launch.py", {"path": data, "device": device}, params)}
    env = env_for_nodes()
    log(f"ROS_DOMAIN_ID={env.get('ROS_DOMAIN_ID')}, RMW={env.get('RMW_IMPLEMENTATION')}, "
        f"Fast DDS profile {Path(env['FASTDDS_DEFAULT_PROFILES_FILE']).name}")
    logdir = Path(tempfile.mkdtemp(prefix="mmc_pipeline_"))
    procs: dict[str, subprocess.Popen] = {}
    logs: dict[str, Path] = {}

    def start(name):
        logs[name] = logdir / f"{name}.log"
        procs[name] = subprocess.Popen(cmds[name].argv, env=env, stdout=open(logs[name], "wb"),
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True)

    if not rclpy.ok():
        rclpy.init()
    monitor = PipelineMonitor(str(logdir / "monitor.jsonl"))
    ok = True
    try:
        start("decoder_node")
        start("encoder_node")
        start("sample_publisher")  # waits for 2 subscribers (encoder + monitor) before publishing
        deadline = time.monotonic() + timeout
        last_count, last_change = -1, time.monotonic()
        while True:
            if time.monotonic() > deadline:
                log("timed out")
                ok = False
                break
            rclpy.spin_once(monitor, timeout_sec=0.1)
            dead = [n for n in ("encoder_node", "decoder_node") if procs[n].poll() is not None]
            if dead:
                for n in dead:
                    log(f"{n} exited with {procs[n].returncode}:\n{_tail(logs[n], 15)}")
                ok = False
                break
            done = procs["sample_publisher"].poll() is not None
            n = sum(1 for r in monitor.records if r["kind"] != "diagnostics")
            if n != last_count:
                last_count, last_change = n, time.monotonic()
            if done and time.monotonic() - last_change > quiet_s:
                break
        # A last round of diagnostics.
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            rclpy.spin_once(monitor, timeout_sec=0.1)
    finally:
        for name in ("sample_publisher", "encoder_node", "decoder_node"):
            if name in procs:
                stop_process(procs[name])
    return monitor, ok, logdir


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

    from mm_compress_ros.ros.monitor import format_summary

    data = str(Path(args.data).resolve()) if args.data else ""
    if data and not Path(data).is_dir():
        print(f"demo: --data {args.data}: not a directory", file=sys.stderr)
        return 2
    label = f"REAL frames from {data}" if data else "SYNTHETIC scene (built-in, not real data)"
    enc = {}
    if args.quality is not None:
        enc["quality"] = args.quality
    if args.gop is not None:
        enc["gop"] = args.gop
    print(f"demo: input: {label}")
    print(f"demo: {args.frames} frames at {args.rate:g} Hz, {args.width}x{args.height}")
    rc = 0
    try:
        monitor, ok, logdir = run_pipeline(
            data, args.frames, args.rate, args.width, args.height, device=args.device, threads=args.threads,
            encoder=enc, sample={"thermal_encoding": args.thermal_encoding}, timeout=args.timeout,
            log=lambda m: print(f"demo: {m}", flush=True))
        summary = monitor.summary()
        print()
        print(format_summary(summary, label))
        for name, rec in sorted(monitor.diagnostics.items()):
            v = rec["values"]
            if "encode_ms_mean_all" in v:
                print(f"encoder: {v['frames']} frames encoded, {v['drops']} dropped by the keep-newest policy, "
                      f"encode {float(v['encode_ms_mean_all']):.0f} ms mean")
            if "decode_ms_mean_all" in v:
                print(f"decoder: {v['decoded']} decoded, decode {float(v['decode_ms_mean_all']):.0f} ms mean, "
                      f"lost {v['lost']}, corrupt {v['corrupt']}")
        print(f"logs: {logdir}")
        if args.json:
            Path(args.json).write_text(json.dumps({"input": label, **summary}, indent=2) + "\n")
        if not ok or summary["rgb"]["decoded"] == 0:
            print("demo: FAILED: no frame was decoded" if ok else "demo: FAILED", file=sys.stderr)
            for f in sorted(logdir.glob("*.log")):
                print(f"--- {f.stem}\n{_tail(f, 10)}", file=sys.stderr)
            rc = 1
        monitor.destroy_node()
    except KeyboardInterrupt:
        rc = 130
    finally:
        rclpy.try_shutdown()
    return rc


if __name__ == "__main__":
    sys.exit(main())
