"""`make demo`: sample_publisher -> encoder_node -> decoder_node over DDS, measured from outside.

Starts the three nodes of launch/pipeline.launch.py as separate processes, with the same
executables, parameter files and remappings (read from the launch file's node table), plus a
monitor node in this process, and prints per modality: bits per pixel, kbit/s, PSNR and latency
(capture stamp -> decoded image received), the profile that ran (from the packet headers), and
beside them x265 low-delay P (preset medium, the yardstick of docs/results.md) on the same frames:
per camera the bits x265 needs for the PSNR our stream reached, and the ratio ours / x265.

Input: real frames with ``--data PATH`` (a folder ``PATH/{rgb,thermal}/`` or
``PATH/{rgb,thermal}.mp4``), published at the data's own size, at a video's own rate or 10 Hz for
frame folders, as many frames as the data has up to 20 (--width/--height/--rate/--frames override;
any change from the data is said in one loud line); otherwise the built-in synthetic scene at
640x480 and 10 Hz, labelled SYNTHETIC in the output.
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

import numpy as np

DEFAULT_FRAMES = 20              # at most (a m3svd_seq sequence has 20 frames)
DEFAULT_RATE = 10.0              # Hz: a realistic camera rate (frame folders carry none)
SYNTHETIC_SIZE = (640, 480)


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


def _connected(monitor) -> bool:
    """The graph shows encoder -> decoder -> monitor connected (encoded: the encoder publishing,
    the decoder and the monitor subscribed; the decoder publishing its images)."""
    return (monitor.count_publishers("encoded") >= 1 and monitor.count_subscribers("encoded") >= 2
            and monitor.count_publishers("decoded/rgb/image") >= 1
            and monitor.count_publishers("decoded/thermal/image") >= 1)


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
        # Publish only once the decoder is connected to the encoder: packets sent before it are lost
        # to it (measured: the first 5 of 20 at 10 Hz), and the figures would mix bits of all
        # frames with the quality of some.
        deadline = time.monotonic() + timeout
        ready_by = min(deadline, time.monotonic() + 60.0)
        while not _connected(monitor) and time.monotonic() < ready_by:
            rclpy.spin_once(monitor, timeout_sec=0.1)
            if any(procs[n].poll() is not None for n in ("encoder_node", "decoder_node")):
                break   # reported below
        if _connected(monitor):
            time.sleep(0.5)   # the graph shows the decoder; let the encoder's writer match its reader
        else:
            log("encoder and decoder not seen connected; publishing anyway")
        start("sample_publisher")  # waits for 2 subscribers (encoder + monitor) before publishing
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


def describe_data(data: str) -> dict:
    """What the data itself is: kind (folder / video), frames, size (one frame read) and rate (a
    video's own; a frame folder has none)."""
    from mm_compress_ros.io.frames import count_frames, input_fps
    from mm_compress_ros.ros.sources import detect_source, open_source

    kind = detect_source(data)
    rgb_src = Path(data) / ("rgb" if kind == "folder" else "rgb.mp4")
    rgb, th = next(iter(open_source(kind, data, None, loop=False)))
    return {"kind": kind, "frames": count_frames(rgb_src), "width": rgb.shape[1], "height": rgb.shape[0],
            "thermal_size": (th.shape[1], th.shape[0]), "thermal_dtype": str(th.dtype), "rate": input_fps(rgb_src)}


def published_frames(data: str, count: int, width: int, height: int, thermal_encoding: str):
    """The first ``count`` pairs as sample_publisher publishes them (same source, size, thermal
    encoding; it loops a shorter source), RGB in RGB order."""
    from mm_compress_ros.ros.sources import open_source, thermal_to_encoding

    rgbs, ths = [], []
    for rgb, th in open_source("auto", data or None, (width, height) if width and height else None, loop=True):
        rgbs.append(rgb)
        ths.append(thermal_to_encoding(th, thermal_encoding))
        if len(rgbs) >= count:
            break
    return rgbs, ths


def profile_line(monitor) -> str:
    """Which profile ran, read from the packets the encoder published (their headers)."""
    pkts = [e for e in monitor.encoded if e.get("profile")]
    if not pkts:
        return "profile: unknown (no packet received)"
    e = pkts[-1]
    kinds = sorted({p["profile"] for p in pkts})
    rgb = e["reference_codec"] + (f" QP {e['reference_qp']}" if e["reference_codec"] != "learned" else "")
    th = e["thermal_codec"] + (f" QP {e['thermal_qp']}" if e["thermal_codec"] in ("h264", "h265") else "")
    model = f"model {e['model']}" if e.get("model") else "no model"
    return (f"profile: {'/'.join(kinds)} (RGB {rgb}, thermal {th}, {model}), quality {e['quality']} "
            f"[from the packet headers]")


def x265_yardstick(summary: dict, frames: dict, keyint: int, fps: float) -> tuple[list[str], dict]:
    """Lines (and JSON) of x265 low-delay P on the published frames at the PSNR our stream reached
    on each camera, with the ratio of our bits to x265's."""
    from mm_compress_ros.eval.anchors import AnchorError
    from mm_compress_ros.eval.yardstick import x265_at_psnr

    n = len(frames["rgb"])
    lines = [f"x265 low-delay P (libx265 preset medium, tune psnr, keyint {keyint}) on the same {n} frames "
             "at the PSNR our stream reached on each camera:",
             f"{'modality':<9} {'PSNR dB':>8} {'x265 bpp':>9} {'x265 kbit/s':>12} {'ours kbit/s':>12} "
             f"{'ours / x265':>12}   x265 QPs (PSNR dB)"]
    out = {}
    for m in ("rgb", "thermal"):
        o = summary[m]
        target, ours = o.get("psnr_db"), o.get("bpp")
        row = {"psnr_db": target, "ours_bpp": ours}
        out[m] = row
        if target is None or ours is None:
            lines.append(f"{m:<9} n/a (no matched decoded frames)")
            continue
        if frames[m][0].dtype != np.uint8:
            lines.append(f"{m:<9} {target:>8.2f} n/a (the x265 anchor codes 8-bit frames; thermal here is "
                         f"{frames[m][0].dtype})")
            continue
        try:
            r = x265_at_psnr(frames[m], target, keyint=keyint)
        except AnchorError as exc:
            lines.append(f"{m:<9} {target:>8.2f} n/a ({exc})")
            continue
        tried = ", ".join(f"{p['qp']} ({p['psnr']:.1f})" for p in r["points"])
        row.update(x265=r)
        if r["bpp"] is None:
            lines.append(f"{m:<9} {target:>8.2f} n/a: x265 reaches {r['range'][0]:.1f}..{r['range'][1]:.1f} dB "
                         f"only   {tried}")
            continue
        pixels = frames[m][0].shape[0] * frames[m][0].shape[1]
        x_kbps, o_kbps = r["bpp"] * pixels * fps / 1000, ours * pixels * fps / 1000
        row.update(x265_bpp=r["bpp"], x265_kbps=x_kbps, ours_kbps=o_kbps, ratio=ours / r["bpp"])
        lines.append(f"{m:<9} {target:>8.2f} {r['bpp']:>9.4f} {x_kbps:>12.1f} {o_kbps:>12.1f} "
                     f"{ours / r['bpp']:>11.2f}x   {tried}")
    lines.append(f"(kbit/s of both at the measured {fps:.2f} fps; the ratio is that of the bits per frame. "
                 "x265 codes RGB as 4:4:4, as in docs/results.md.)")
    short = {m: summary[m]["decoded"] for m in ("rgb", "thermal") if summary[m]["decoded"] < summary["encoded_frames"]}
    if short:
        lines.append(f"NOTE: decoded {', '.join(f'{m} {d}' for m, d in short.items())} of {summary['encoded_frames']} "
                     "encoded frames: our PSNR is over the decoded ones, our bits over all packets")
    return lines, out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="", help="frame folder or paired-video folder (default: synthetic scene)")
    ap.add_argument("--frames", type=int, default=None,
                    help=f"frames to publish (default: all of the data, at most {DEFAULT_FRAMES}; synthetic: "
                         f"{DEFAULT_FRAMES}; a shorter source loops)")
    ap.add_argument("--rate", type=float, default=None,
                    help=f"camera rate, Hz (default: a video's own rate, else {DEFAULT_RATE:g})")
    ap.add_argument("--width", type=int, default=None, help="publish at this size (default: the data's own; "
                                                           f"synthetic: {SYNTHETIC_SIZE[0]})")
    ap.add_argument("--height", type=int, default=None, help=f"(default: the data's own; synthetic: {SYNTHETIC_SIZE[1]})")
    ap.add_argument("--quality", type=int, default=None, help="override config/encoder.yaml")
    ap.add_argument("--gop", type=int, default=None, help="override config/encoder.yaml")
    ap.add_argument("--reference-codec", default=None, help="override config/encoder.yaml (h264, h265, learned)")
    ap.add_argument("--thermal-codec", default=None,
                    help="override config/encoder.yaml (auto, h264, h265, lossless, learned)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=1, help="PyTorch threads per node (0: default)")
    ap.add_argument("--thermal-encoding", default="mono8", choices=["mono8", "mono16", "16UC1"])
    ap.add_argument("--no-x265", action="store_true", help="skip the x265 low-delay P comparison")
    ap.add_argument("--timeout", type=float, default=300.0, help="give up after this many seconds")
    ap.add_argument("--json", default="", help="also write the summary as JSON here")
    args = ap.parse_args(argv)

    data = str(Path(args.data).resolve()) if args.data else ""
    if data and not Path(data).is_dir():
        print(f"demo: --data {args.data}: not a directory", file=sys.stderr)
        return 2
    changed = []   # what this run changes from the data
    if data:
        try:
            info = describe_data(data)
        except Exception as exc:  # noqa: BLE001  (no rgb/ + thermal/, unreadable frames): one line
            print(f"demo: --data {args.data}: {exc}", file=sys.stderr)
            return 2
        frames = min(info["frames"], DEFAULT_FRAMES) if args.frames is None else args.frames
        width = info["width"] if args.width is None else args.width
        height = info["height"] if args.height is None else args.height
        rate = args.rate if args.rate is not None else (info["rate"] or DEFAULT_RATE)
        changed_size = (width, height) != (info["width"], info["height"])
        if changed_size:
            changed.append(f"size {width}x{height} instead of the data's {info['width']}x{info['height']}")
        if info["rate"] and abs(rate - info["rate"]) > 1e-6:
            changed.append(f"rate {rate:g} Hz instead of the video's {info['rate']:g} Hz")
        if frames > info["frames"]:
            changed.append(f"{frames} frames from a {info['frames']}-frame sequence (it loops)")
        rate_note = "the video's own rate" if info["rate"] and rate == info["rate"] else (
            "frame folders carry no rate; a realistic camera rate" if not info["rate"] and args.rate is None else "as asked")
        label = f"REAL frames from {data}"
    else:
        frames = DEFAULT_FRAMES if args.frames is None else args.frames
        width = SYNTHETIC_SIZE[0] if args.width is None else args.width
        height = SYNTHETIC_SIZE[1] if args.height is None else args.height
        rate = DEFAULT_RATE if args.rate is None else args.rate
        rate_note = "as asked" if args.rate is not None else "a realistic camera rate"
        label = "SYNTHETIC scene (built-in, not real data)"
    if frames < 1 or rate <= 0 or width < 16 or height < 16:
        print("demo: --frames must be >= 1, --rate positive, --width/--height >= 16", file=sys.stderr)
        return 2

    import rclpy

    from mm_compress_ros.codec.profiles import DEFAULT_GOP
    from mm_compress_ros.ros.monitor import format_summary

    enc = {}
    for key in ("quality", "gop", "reference_codec", "thermal_codec"):
        if getattr(args, key) is not None:
            enc[key] = getattr(args, key)
    gop = args.gop if args.gop is not None else _config_value("encoder.yaml", "encoder_node", "gop", DEFAULT_GOP)
    print(f"demo: input: {label}")
    print(f"demo: {frames} frames at {rate:g} Hz ({rate_note}), {width}x{height}")
    if changed:
        print(f"demo: !!! CHANGED FROM THE DATA: {'; '.join(changed)}: these figures are not the data's own !!!")
    # the data's own size: the publisher does not resize (a thermal camera of another size stays so)
    pub_w, pub_h = (0, 0) if data and not changed_size else (width, height)
    rc = 0
    try:
        monitor, ok, logdir = run_pipeline(
            data, frames, rate, pub_w, pub_h, device=args.device, threads=args.threads,
            encoder=enc, sample={"thermal_encoding": args.thermal_encoding, "loop": True}, timeout=args.timeout,
            log=lambda m: print(f"demo: {m}", flush=True))
        summary = monitor.summary()
        print()
        print(format_summary(summary, label + (f" [CHANGED: {'; '.join(changed)}]" if changed else "")))
        print(profile_line(monitor))
        for name, rec in sorted(monitor.diagnostics.items()):
            v = rec["values"]
            if "encode_ms_mean_all" in v:
                print(f"encoder: {v['frames']} frames encoded, {v['drops']} dropped by the keep-newest policy, "
                      f"encode {float(v['encode_ms_mean_all']):.0f} ms mean")
            if "decode_ms_mean_all" in v:
                print(f"decoder: {v['decoded']} decoded, decode {float(v['decode_ms_mean_all']):.0f} ms mean, "
                      f"lost {v['lost']}, corrupt {v['corrupt']}")
        yard = None
        if ok and not args.no_x265 and summary["rgb"]["decoded"]:
            rgbs, ths = published_frames(data, frames, pub_w, pub_h, args.thermal_encoding)
            lines, yard = x265_yardstick(summary, {"rgb": rgbs, "thermal": ths}, gop,
                                         summary["fps"] if summary["fps"] > 0 else rate)
            print("\n".join(lines))
        print(f"logs: {logdir}")
        if args.json:
            Path(args.json).write_text(json.dumps({"input": label, "changed_from_data": changed, **summary,
                                                   "x265_low_delay_p": yard}, indent=2, default=float) + "\n")
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


def _config_value(filename: str, node: str, key: str, default):
    """A parameter of config/<filename> as the nodes read it (the share dir of the install)."""
    try:
        import yaml

        from mm_compress_ros.ros.launch_table import share_dir

        return yaml.safe_load((share_dir() / "config" / filename).read_text())[node]["ros__parameters"][key]
    except Exception:  # noqa: BLE001
        return default


if __name__ == "__main__":
    sys.exit(main())
