"""What the viewer knows: the newest frame of each modality and the link's figures.

The node (viewer/node.py) writes into one :class:`ViewerState` from its callbacks, the web server
(viewer/web.py) reads from it; both through a lock. No message types: the node hands over plain
values (pixels, stamps, the packet's bytes, diagnostic key/values).
"""
from __future__ import annotations

import re
import threading
import time

import numpy as np

from mm_compress_ros.ros.common import Window
from mm_compress_ros.ros.viewer.render import MODALITIES, Frame

PSNR_KEY = re.compile(r"psnr_(rgb|thermal)(_db)?")
ROLES = ("encoder", "decoder")


class ViewerState:
    """Frames (one slot per modality, replaced), frame rates and sizes from the images; bitrate per
    modality, sequence gaps, frame types and the profile from the ``encoded`` packets; the
    encoder's and decoder's diagnostic reports."""

    def __init__(self, window_s: float):
        self._lock = threading.Lock()
        self._latest: dict[str, Frame | None] = {m: None for m in MODALITIES}
        self._version = {m: 0 for m in MODALITIES}
        self.fps = {m: Window(window_s) for m in MODALITIES}
        self._size = {m: None for m in MODALITIES}
        self._bad_images = 0
        # From `encoded`
        self._bits = {m: Window(window_s) for m in MODALITIES}
        self._packets = Window(window_s)
        self.link = {"packets": 0, "key_frames": 0, "sequence": None, "frame_type": None, "quality": None,
                     "codec": None, "reference_codec": None, "thermal_codec": None, "lost": 0, "restarts": 0,
                     "unreadable": 0}
        # From /diagnostics: name -> (role, level, message, values, monotonic time)
        self._diag: dict[str, tuple] = {}

    # -- writing (the node's callbacks) --------------------------------------------------------
    def add_frame(self, modality: str, pixels: np.ndarray, encoding: str, stamp_ns: int, frame_id: str) -> None:
        with self._lock:
            self._version[modality] += 1
            self._latest[modality] = Frame(modality, self._version[modality], pixels, encoding, stamp_ns, frame_id)
            self._size[modality] = [int(pixels.shape[1]), int(pixels.shape[0])]
        self.fps[modality].add(1.0)

    def add_bad_image(self) -> None:
        with self._lock:
            self._bad_images += 1

    def add_packet(self, seq: int, quality: int, codec: str, key: bool, data: bytes) -> str | None:
        """Counts one packet; reads its header for the bytes per modality and the profile. Returns
        why the header is unreadable (the packet then counts as ``unreadable``), else None."""
        from mm_compress_ros.codec.packet import read_header

        with self._lock:
            last = self.link["sequence"]
            if last is not None:
                if seq > last + 1:
                    self.link["lost"] += seq - last - 1
                elif seq <= last:
                    self.link["restarts"] += 1   # the encoder started again (sequence from 0)
            self.link.update(sequence=seq, packets=self.link["packets"] + 1, quality=quality, codec=codec,
                             frame_type="key" if key else "predicted")
            if key:
                self.link["key_frames"] += 1
        now = time.monotonic()
        self._packets.add(1.0, now)
        try:
            header = read_header(data)
            sizes = header.modality_bytes()
        except Exception as exc:  # noqa: BLE001  (a corrupt packet: the decoder reports it too)
            with self._lock:
                self.link["unreadable"] += 1
            return f"{type(exc).__name__}: {exc}"
        with self._lock:
            self.link["reference_codec"] = header.reference_codec
            self.link["thermal_codec"] = header.thermal_codec
        for m in MODALITIES:
            self._bits[m].add(8.0 * sizes[m], now)
        return None

    def add_diagnostic(self, name: str, role: str, level: int, message: str, values: dict) -> None:
        with self._lock:
            self._diag[name] = (role, level, message, values, time.monotonic())

    # -- reading (the web thread, the node's log line) -----------------------------------------
    def latest(self, modality: str) -> Frame | None:
        with self._lock:
            return self._latest[modality]

    def role_status(self, role: str, encoder_fqn: str, now: float) -> dict | None:
        """The newest report of ``role`` (for the encoder: the one named after ``encoder_fqn`` first)."""
        with self._lock:
            found = [(name, v) for name, v in self._diag.items() if v[0] == role]
        if not found:
            return None
        exact = [f for f in found if role == "encoder" and f[0] == f"{encoder_fqn}: encoder"]
        name, (_, level, message, values, t) = (exact or sorted(found, key=lambda f: f[1][4]))[-1]
        return {"name": name, "level": level, "message": message, "values": values, "age_s": now - t}

    def figures(self, encoder_fqn: str) -> dict:
        """Per modality (kbit/s, fps, PSNR, size, encoding), the link, the encoder's and decoder's
        status, the count of bad images."""
        now = time.monotonic()
        enc, dec = self.role_status("encoder", encoder_fqn, now), self.role_status("decoder", encoder_fqn, now)
        psnr = {m: None for m in MODALITIES}
        for k, v in (enc or {}).get("values", {}).items():
            match = PSNR_KEY.fullmatch(k)
            if match:
                try:
                    psnr[match.group(1)] = float(v)
                except ValueError:
                    pass
        with self._lock:
            link = dict(self.link)
            sizes = dict(self._size)
            encodings = {m: (self._latest[m].encoding if self._latest[m] else None) for m in MODALITIES}
            bad = self._bad_images
        modalities = {m: {"kbps": self._bits[m].sum_rate(now) / 1000.0, "fps": self.fps[m].rate(now),
                          "psnr_db": psnr[m], "size": sizes[m], "encoding": encodings[m]}
                      for m in MODALITIES}
        link.update(packet_rate=self._packets.rate(now),
                    kbps=sum(modalities[m]["kbps"] for m in MODALITIES))
        return {"modalities": modalities, "link": link, "encoder": enc, "decoder": dec, "bad_images": bad}
