"""viewer_node: the operator's page in a browser (live RGB, thermal and fused views, the link's figures).

Runs on the receiving side next to decoder_node. Subscribes:

* ``rgb/image``, ``thermal/image`` (sensor_msgs/Image: the decoder's outputs; best effort);
* ``encoded`` (EncodedFrame): bytes per modality from the packet header (bitrate), frame type,
  quality, and sequence jumps (packets lost before the viewer);
* ``/diagnostics`` (DiagnosticArray): the encoder's and decoder's reports (drops, lost, decoder
  latency, their status; PSNR only if the encoder reports ``psnr_rgb`` / ``psnr_thermal``).

Serves one page (static files in ``viewer/static/``, no build step, nothing from the network) with
aiohttp on ``host``:``port`` (viewer/web.py: JPEG frames over a WebSocket with back-pressure, made
by viewer/render.py). What the callbacks learn goes into a ViewerState (viewer/state.py), which
the web server reads.

Buttons on the page: "key frame now" calls the encoder's std_srvs/Trigger ``request_key_frame``;
quality and target bitrate set the encoder node's ROS parameters ``quality`` / ``target_kbps``
through its parameter services (``<encoder_node>/set_parameters``).

There is no authentication: the default ``host`` 127.0.0.1 serves this machine only. Any other
``host`` (e.g. 0.0.0.0) lets everyone who can reach the port watch both cameras and press the
buttons; the node says so in its log.
"""
from __future__ import annotations

import sys

from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rclpy.parameter import Parameter, parameter_value_to_python
from rclpy.parameter_client import AsyncParameterClient
from sensor_msgs.msg import Image
from std_srvs.srv import Trigger

from mm_compress_ros.io.ros_image import image_to_numpy, stamp_to_ns, to_rgb
from mm_compress_ros.msg import EncodedFrame
from mm_compress_ros.ros.common import ThrottledLog, make_qos, spin_node
from mm_compress_ros.ros.viewer.render import COLORMAPS, RANGE_MODES, Frame
from mm_compress_ros.ros.viewer.state import ROLES, ViewerState
from mm_compress_ros.ros.viewer.web import SETTABLE, ViewerServer

# The ROS type of each encoder parameter the page may set (as encoder_node declares them).
PARAMETER_TYPES = {"quality": Parameter.Type.INTEGER, "target_kbps": Parameter.Type.DOUBLE}


class ViewerNode(Node):
    def __init__(self, **kwargs):
        super().__init__("viewer_node", **kwargs)
        p = self.declare_parameter
        self.host = str(p("host", "127.0.0.1").value)
        port = int(p("port", 8088).value)
        self.encoder_name = str(p("encoder_node", "encoder_node").value)
        self.jpeg_quality = int(p("jpeg_quality", 80).value)
        self.max_width = int(p("max_width", 0).value)
        self.range_mode = str(p("thermal_range", "auto").value)
        fixed = list(p("thermal_fixed_range", [0.0, 0.0], ParameterDescriptor(dynamic_typing=True)).value)
        self.colormap = str(p("colormap", "inferno").value)
        self.alpha = float(p("fused_alpha", 0.5).value)
        self.stats_period = float(p("stats_period", 0.5).value)
        self.window_s = float(p("window", 5.0).value)
        in_rel = p("input_qos_reliability", "best_effort").value
        in_depth = int(p("input_qos_depth", 1).value)
        enc_rel = p("encoded_qos_reliability", "reliable").value
        enc_depth = int(p("encoded_qos_depth", 10).value)
        self.log_period = float(p("log_period", 10.0).value)
        self._check_parameters(port, fixed)

        self.state = ViewerState(self.window_s)
        self.encoder_params: dict | None = None   # the encoder's quality / target_kbps, read back
        self._browsers = 0
        self._log = ThrottledLog(self.get_logger())   # repeated warnings: at most one of a kind per period

        self.encoder_fqn = self.resolve_service_name(self.encoder_name)
        self._key_client = self.create_client(Trigger, "request_key_frame")
        self._param_client = AsyncParameterClient(self, self.encoder_name)

        in_qos = make_qos(in_rel, in_depth)
        self.create_subscription(Image, "rgb/image", lambda m: self._on_image("rgb", m), in_qos)
        self.create_subscription(Image, "thermal/image", lambda m: self._on_image("thermal", m), in_qos)
        self.create_subscription(EncodedFrame, "encoded", self._on_encoded, make_qos(enc_rel, enc_depth))
        self.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)

        self.server = ViewerServer(self, self.host, port)
        self.server.start()
        self.port = self.server.port
        self.url = f"http://{self.host if ':' not in self.host else '[' + self.host + ']'}:{self.port}/"
        self.get_logger().info(f"viewer at {self.url} (encoder node {self.encoder_fqn}, "
                               f"key frames via {self._key_client.srv_name})")
        if self.host not in ("127.0.0.1", "localhost", "::1"):
            self.get_logger().warning(
                f"listening on {self.host}: there is no authentication; anyone who can reach port "
                f"{self.port} can watch both cameras, request key frames and change the encoder's "
                "quality and target bitrate")
        if self.log_period > 0:
            self.create_timer(self.log_period, lambda: self.get_logger().info(self.stats_line()))

    def _check_parameters(self, port: int, fixed: list) -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be 0..65535 (0: any free port), not {port}")
        if self.range_mode not in RANGE_MODES:
            raise ValueError(f"thermal_range must be auto or fixed, not {self.range_mode!r}")
        if len(fixed) != 2 or not (fixed[1] > fixed[0] or fixed[0] == fixed[1] == 0):
            raise ValueError("thermal_fixed_range must be [lo, hi] with hi > lo ([0, 0]: the full range)")
        self.fixed_range = (float(fixed[0]), float(fixed[1]))
        if self.colormap not in COLORMAPS:
            raise ValueError(f"colormap must be one of {', '.join(COLORMAPS)}, not {self.colormap!r}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be 1..100, not {self.jpeg_quality}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"fused_alpha must be 0..1, not {self.alpha}")
        if self.stats_period <= 0 or self.window_s <= 0:
            raise ValueError("stats_period and window must be > 0")

    # -- ROS callbacks -------------------------------------------------------------------------
    def _on_image(self, modality: str, msg: Image) -> None:
        try:
            px = image_to_numpy(msg)
            if modality == "rgb":
                if px.ndim != 3:
                    raise ValueError(f"rgb/image must be rgb8 or bgr8, not {msg.encoding}")
                px = to_rgb(px, msg.encoding)
            elif px.ndim != 2:
                raise ValueError(f"thermal/image must be mono8, mono16 or 16UC1, not {msg.encoding}")
        except ValueError as exc:
            self.state.add_bad_image()
            self._log(f"bad {modality}", "warning", f"{modality} image not shown: {exc}")
            return
        self.state.add_frame(modality, px, msg.encoding, stamp_to_ns(msg.header.stamp), msg.header.frame_id)
        self.server.notify()

    def _on_encoded(self, msg) -> None:
        seq = int(msg.sequence)
        error = self.state.add_packet(seq, int(msg.quality), msg.codec,
                                      msg.frame_type == EncodedFrame.FRAME_KEY, bytes(msg.data))
        if error is not None:
            self._log("unreadable", "warning", f"packet {seq}: header unreadable ({error})")

    def _on_diagnostics(self, msg) -> None:
        for st in msg.status:
            role = st.name.rsplit(": ", 1)[-1] if ": " in st.name else None
            if role not in ROLES:
                continue
            level = st.level[0] if isinstance(st.level, (bytes, bytearray)) else int(st.level)
            self.state.add_diagnostic(st.name, role, level, st.message, {kv.key: kv.value for kv in st.values})

    # -- the buttons (called from the web thread) ----------------------------------------------
    def request_key_frame(self):
        if not self._key_client.service_is_ready():
            return None
        return self._key_client.call_async(Trigger.Request())

    def set_encoder_parameter(self, name: str, value):
        if not self._param_client.services_are_ready():
            return None
        return self._param_client.set_parameters([Parameter(name, PARAMETER_TYPES[name], value)])

    def get_encoder_parameters(self):
        if not self._param_client.services_are_ready():
            return None
        return self._param_client.get_parameters(list(SETTABLE))

    def store_encoder_parameters(self, res) -> None:
        """The answer of get_encoder_parameters (rcl_interfaces GetParameters)."""
        self.encoder_params = {name: (parameter_value_to_python(v) if v.type else None)
                               for name, v in zip(SETTABLE, res.values)}

    def log_action(self, text: str) -> None:
        self.get_logger().info(text)

    def client_count_changed(self, n: int, peer: str, joined: bool) -> None:
        self._browsers = n
        self.get_logger().info(f"browser {peer} {'connected' if joined else 'left'} ({n} now)")

    # -- reading (web thread) ----------------------------------------------------------------------
    def now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def latest(self, modality: str) -> Frame | None:
        return self.state.latest(modality)

    def page_config(self) -> dict:
        return {"range_mode": self.range_mode, "range_lo": self.fixed_range[0], "range_hi": self.fixed_range[1],
                "colormap": self.colormap, "alpha": self.alpha, "colormaps": list(COLORMAPS),
                "encoder_node": self.encoder_fqn, "key_frame_service": self._key_client.srv_name,
                "stats_period": self.stats_period}

    def snapshot(self) -> dict:
        figures = self.state.figures(self.encoder_fqn)
        return {"modalities": figures["modalities"], "link": figures["link"], "encoder": figures["encoder"],
                "decoder": figures["decoder"], "encoder_params": self.encoder_params,
                "bad_images": figures["bad_images"], "clients": self._browsers, "encoder_node": self.encoder_fqn}

    # -- logging --------------------------------------------------------------------------------
    def stats_line(self) -> str:
        sent, skipped = self.server.sent_total, self.server.skipped_total
        fps, link = self.state.fps, self.state.link
        return (f"viewer {self.url} | {self._browsers} browser(s) | rgb {fps['rgb'].rate():.1f} fps | "
                f"thermal {fps['thermal'].rate():.1f} fps | packets {link['packets']} "
                f"(lost {link['lost']}) | to browsers: sent {sent}, skipped {skipped}")

    def destroy_node(self):
        self.server.stop()
        return super().destroy_node()


def main(argv=None) -> int:
    return spin_node(ViewerNode, "viewer_node", argv)


if __name__ == "__main__":
    sys.exit(main())
