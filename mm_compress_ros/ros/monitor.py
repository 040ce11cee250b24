"""pipeline_monitor: measures a running sample -> encoder -> decoder pipeline from the outside.

Subscribes the raw inputs (``rgb/image``, ``thermal/image``), the compressed stream
(``encoded``), the decoder outputs (``decoded/rgb/image``, ``decoded/thermal/image``) and
``/diagnostics``; matches decoded images to raw ones by stamp and reports per modality bits per
pixel, kbit/s, PSNR and latency (capture stamp -> decoded image received). Used by ``make demo``
and by the end-to-end tests (``--out`` writes one JSON line per observation).
"""
from __future__ import annotations

import argparse
import base64
import collections
import hashlib
import json
import math
import sys
import threading
import time

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from rclpy.utilities import remove_ros_args
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

from mm_compress_ros.io.ros_image import image_to_numpy, stamp_to_ns, to_rgb
from mm_compress_ros.ros.common import make_qos, mean, percentile

MODALITIES = ("rgb", "thermal")


def psnr(ref: np.ndarray, test: np.ndarray) -> float:
    """PSNR in dB with the peak of ref's dtype (255 for 8-bit, 65535 for 16-bit)."""
    if ref.shape != test.shape:
        import cv2

        ref = cv2.resize(ref, (test.shape[1], test.shape[0]), interpolation=cv2.INTER_AREA)
    peak = float(np.iinfo(ref.dtype).max) if ref.dtype.kind in "ui" else 1.0
    mse = float(np.mean((ref.astype(np.float64) - test.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * math.log10(peak * peak / mse)


def modality_bytes(header) -> dict | None:
    """Bytes per modality of a packet (the codec's own split, :meth:`PacketHeader.modality_bytes`:
    each modality's sections, the alignment side information with the dependent one, the header
    and CRC shared in proportion)."""
    return header.modality_bytes()


def _packet_info(data: bytes) -> dict:
    """Per-modality payload sizes and image sizes from the packet header (empty when the codec
    package is missing or the packet is corrupt)."""
    try:
        from mm_compress_ros.codec.packet import read_header
    except Exception:  # noqa: BLE001  (codec not installed)
        return {}
    try:
        h = read_header(bytes(data))
    except Exception:  # noqa: BLE001  (a corrupt packet)
        return {}
    return {"sizes": modality_bytes(h), "rgb_size": list(h.rgb_size), "thermal_size": list(h.thermal_size),
            "frame_index": h.frame_index, "profile": h.profile, "thermal_codec": h.thermal_codec,
            "thermal_max_error": h.thermal_max_error, "reference_codec": h.reference_codec,
            "model": h.model_id or None, "reference_qp": h.reference_qp, "thermal_qp": h.thermal_qp}


class PipelineMonitor(Node):
    def __init__(self, out_path: str | None = None, encoded_reliability: str = "reliable",
                 keep: int = 300, keep_packets: bool = False, **kwargs):
        super().__init__("pipeline_monitor", **kwargs)
        self.keep_packets = keep_packets
        self._out = open(out_path, "a") if out_path else None
        self._lock = threading.Lock()
        self.raw = {m: collections.OrderedDict() for m in MODALITIES}
        self.keep = keep
        self.records: list[dict] = []
        self.stats = {m: collections.defaultdict(list) for m in MODALITIES}
        self.encoded: list[dict] = []
        self.diagnostics: dict[str, dict] = {}
        self.t0 = None
        sensor = qos_profile_sensor_data
        self.create_subscription(Image, "rgb/image", lambda m: self._on_raw("rgb", m), sensor)
        self.create_subscription(Image, "thermal/image", lambda m: self._on_raw("thermal", m), sensor)
        self.create_subscription(Image, "decoded/rgb/image", lambda m: self._on_decoded("rgb", m), sensor)
        self.create_subscription(Image, "decoded/thermal/image", lambda m: self._on_decoded("thermal", m), sensor)
        try:
            from mm_compress_ros.msg import EncodedFrame
        except ImportError:
            EncodedFrame = None
        if EncodedFrame is not None:
            self.create_subscription(EncodedFrame, "encoded", self._on_encoded,
                                     make_qos(encoded_reliability, 50))
        self.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 10)

    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def _write(self, rec: dict):
        with self._lock:
            self.records.append(rec)
            if self._out:
                self._out.write(json.dumps(rec) + "\n")
                self._out.flush()

    def _on_raw(self, modality: str, msg: Image):
        stamp = stamp_to_ns(msg.header.stamp)
        arr = image_to_numpy(msg)
        if modality == "rgb":
            arr = to_rgb(arr, msg.encoding)
        with self._lock:
            q = self.raw[modality]
            q[stamp] = arr
            while len(q) > self.keep:
                q.popitem(last=False)
        self._write({"kind": "raw", "modality": modality, "stamp": stamp, "frame_id": msg.header.frame_id,
                     "encoding": msg.encoding, "width": msg.width, "height": msg.height,
                     "recv_ns": self._now_ns()})

    def _on_encoded(self, msg):
        now = self._now_ns()
        data = bytes(msg.data)
        rec = {"kind": "encoded", "sequence": int(msg.sequence), "frame_type": int(msg.frame_type),
               "bytes": len(data), "stamp": stamp_to_ns(msg.header.stamp),
               "thermal_stamp": stamp_to_ns(msg.thermal_stamp), "frame_id": msg.header.frame_id,
               "thermal_frame_id": msg.thermal_frame_id, "codec": msg.codec, "quality": int(msg.quality),
               "rgb_encoding": msg.rgb_encoding, "thermal_encoding": msg.thermal_encoding,
               "recv_ns": now, "sizes": None}
        rec.update(_packet_info(data))
        if self.keep_packets:
            rec["data_b64"] = base64.b64encode(data).decode("ascii")
        with self._lock:
            self.encoded.append(rec)
            if self.t0 is None:
                self.t0 = now
        self._write(rec)

    def _on_decoded(self, modality: str, msg: Image):
        now = self._now_ns()
        stamp = stamp_to_ns(msg.header.stamp)
        arr = image_to_numpy(msg)
        if modality == "rgb":
            arr = to_rgb(arr, msg.encoding)
        with self._lock:
            ref = self.raw[modality].get(stamp)
        same = ref is not None and ref.dtype == arr.dtype and ref.shape == arr.shape
        value = psnr(ref, arr) if same else None
        max_err = int(np.abs(ref.astype(np.int32) - arr.astype(np.int32)).max()) if same else None
        rec = {"kind": "decoded", "modality": modality, "stamp": stamp, "frame_id": msg.header.frame_id,
               "encoding": msg.encoding, "width": msg.width, "height": msg.height,
               "latency_ms": (now - stamp) / 1e6, "psnr": value, "max_abs_error": max_err, "recv_ns": now,
               "matched_raw": ref is not None, "data_sha256": hashlib.sha256(bytes(msg.data)).hexdigest()}
        with self._lock:
            st = self.stats[modality]
            st["latency_ms"].append(rec["latency_ms"])
            if value is not None:
                st["psnr"].append(value)
            st["pixels"].append(msg.width * msg.height)
        self._write(rec)

    def _on_diag(self, msg: DiagnosticArray):
        for status in msg.status:
            values = {kv.key: kv.value for kv in status.values}
            rec = {"kind": "diagnostics", "name": status.name, "level": int.from_bytes(status.level, "little")
                   if isinstance(status.level, bytes) else int(status.level),
                   "message": status.message, "values": values, "recv_ns": self._now_ns()}
            with self._lock:
                self.diagnostics[status.name] = rec
            self._write(rec)

    def summary(self) -> dict:
        with self._lock:
            enc = list(self.encoded)
            stats = {m: {k: list(v) for k, v in self.stats[m].items()} for m in MODALITIES}
        out = {"encoded_frames": len(enc), "key_frames": sum(1 for e in enc if e["frame_type"] == 0)}
        duration = (enc[-1]["recv_ns"] - enc[0]["recv_ns"]) / 1e9 if len(enc) > 1 else 0.0
        fps = (len(enc) - 1) / duration if duration > 0 else 0.0
        out["fps"] = fps
        total_bytes = sum(e["bytes"] for e in enc)
        out["total_kbps"] = (total_bytes * 8 / 1000) / (len(enc) / fps) if fps > 0 else None
        for m in MODALITIES:
            st = stats[m]
            sizes = [e["sizes"][m] for e in enc if e["sizes"] and m in e["sizes"]]
            pixels = mean(st.get("pixels", [])) or None
            o = {"decoded": len(st.get("latency_ms", [])),
                 "psnr_db": mean(st["psnr"]) if st.get("psnr") else None,
                 "latency_ms_mean": mean(st["latency_ms"]) if st.get("latency_ms") else None,
                 "latency_ms_p95": percentile(st["latency_ms"], 95) if st.get("latency_ms") else None}
            if sizes and pixels:
                o["bpp"] = mean(sizes) * 8 / pixels
                o["kbps"] = mean(sizes) * 8 * fps / 1000 if fps > 0 else None
            else:
                o["bpp"] = o["kbps"] = None
            out[m] = o
        return out


def format_summary(s: dict, label: str) -> str:
    def f(v, fmt):
        return "n/a" if v is None else format(v, fmt)

    lines = [f"input: {label}",
             f"encoded frames: {s['encoded_frames']} ({s['key_frames']} key), {f(s['fps'], '.2f')} fps, "
             f"total {f(s['total_kbps'], '.1f')} kbit/s",
             f"{'modality':<9} {'bpp':>8} {'kbit/s':>9} {'PSNR dB':>8} {'latency ms (mean / p95)':>25} {'decoded':>8}"]
    for m in MODALITIES:
        o = s[m]
        lines.append(f"{m:<9} {f(o['bpp'], '.4f'):>8} {f(o['kbps'], '.1f'):>9} {f(o['psnr_db'], '.2f'):>8} "
                     f"{f(o['latency_ms_mean'], '.1f'):>12} / {f(o['latency_ms_p95'], '.1f'):<10} {o['decoded']:>8}")
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = sys.argv if argv is None else argv
    args_wo_ros = remove_ros_args(argv)[1:]
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", help="write one JSON line per observation here")
    ap.add_argument("--duration", type=float, default=0.0, help="seconds to run (0: until stopped)")
    ap.add_argument("--encoded-reliability", default="reliable")
    ap.add_argument("--label", default="")
    ap.add_argument("--keep-packets", action="store_true", help="store each packet (base64) in --out")
    args = ap.parse_args(args_wo_ros)
    rclpy.init(args=argv)
    node = PipelineMonitor(args.out, args.encoded_reliability, keep_packets=args.keep_packets)
    print("monitor ready", flush=True)
    end = time.monotonic() + args.duration if args.duration > 0 else None
    try:
        while rclpy.ok() and (end is None or time.monotonic() < end):
            rclpy.spin_once(node, timeout_sec=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        summary = node.summary()
        print(format_summary(summary, args.label or "(see sample_publisher log)"), flush=True)
        print("SUMMARY " + json.dumps(summary), flush=True)
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
