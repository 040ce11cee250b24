"""viewer_node: the operator's page in a browser (live RGB, thermal and fused views, the link's figures).

Runs on the receiving side next to decoder_node. Subscribes:

* ``rgb/image``, ``thermal/image`` (sensor_msgs/Image: the decoder's outputs; best effort);
* ``encoded`` (EncodedFrame): bytes per modality from the packet header (bitrate), frame type,
  quality, and sequence jumps (packets lost before the viewer);
* ``/diagnostics`` (DiagnosticArray): the encoder's and decoder's reports (drops, lost, decoder
  latency, their status; PSNR only if the encoder reports ``psnr_rgb`` / ``psnr_thermal``).

Serves one page (static files in ``viewer_static/``, no build step, nothing from the network) with
aiohttp on ``host``:``port``. Frames go to each browser over a WebSocket as JPEG with
back-pressure: per client and modality one slot holding the newest frame (never a queue), at most
one frame per modality in flight to a page (the page acknowledges each frame once drawn), and
TCP flow control (aiohttp waits for the socket to drain) for a client that does not acknowledge.
A slow browser gets fewer frames; the node's memory does not grow with it.

Buttons on the page: "key frame now" calls the encoder's std_srvs/Trigger ``request_key_frame``;
quality and target bitrate set the encoder node's ROS parameters ``quality`` / ``target_kbps``
through its parameter services (``<encoder_node>/set_parameters``).

There is no authentication: the default ``host`` 127.0.0.1 serves this machine only. Any other
``host`` (e.g. 0.0.0.0) lets everyone who can reach the port watch both cameras and press the
buttons; the node says so in its log.
"""
from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import json
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rclpy.parameter import Parameter, parameter_value_to_python
from rclpy.parameter_client import AsyncParameterClient
from sensor_msgs.msg import Image
from std_srvs.srv import Trigger

from mm_compress_ros.io.ros_image import image_to_numpy, stamp_to_ns, to_rgb
from mm_compress_ros.msg import EncodedFrame
from mm_compress_ros.ros.common import Window, make_qos, mean, spin_node

MODALITIES = ("rgb", "thermal")
STATIC_DIR = Path(__file__).resolve().with_name("viewer_static")
COLORMAPS = ("inferno", "ironbow", "gray")
RANGE_MODES = ("auto", "fixed")
ACK_TIMEOUT_S = 5.0       # a page that has not acknowledged a frame for this long gets the next one
ACTION_TIMEOUT_S = 5.0    # service calls from the buttons
PARAMS_REFRESH_S = 5.0    # how often the encoder's quality / target_kbps are read back
WARN_PERIOD_S = 10.0
PSNR_KEY = re.compile(r"psnr_(rgb|thermal)(_db)?")
# Encoder parameters the page may set, with their ROS type (as encoder_node declares them).
SETTABLE = {"quality": (Parameter.Type.INTEGER, int), "target_kbps": (Parameter.Type.DOUBLE, float)}


# -- frames and their JPEG payloads ---------------------------------------------------------------
@dataclass
class Frame:
    """The newest image of one modality (replaced, never queued). ``jpegs`` caches the payloads
    made from it per display setting, so that browsers with the same settings share one encode."""
    modality: str
    version: int
    pixels: np.ndarray        # rgb: HxWx3 uint8 in RGB order; thermal: HxW uint8 or uint16
    encoding: str
    stamp_ns: int
    frame_id: str
    jpegs: dict = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def thermal_range(pixels: np.ndarray, mode: str, fixed: tuple[float, float]) -> tuple[float, float]:
    """The value range mapped to the colormap: ``auto``, the 1st..99th percentile of this frame;
    ``fixed``, the given (lo, hi), where (0, 0) is the encoding's full range."""
    full = float(np.iinfo(pixels.dtype).max)
    if mode == "fixed":
        lo, hi = (0.0, full) if fixed[0] == 0 and fixed[1] == 0 else (float(fixed[0]), float(fixed[1]))
    else:
        sample = pixels[::2, ::2] if pixels.size > 65536 else pixels
        lo, hi = (float(v) for v in np.percentile(sample, (1.0, 99.0)))
    if hi <= lo:
        hi = lo + 1.0
    return lo, hi


def to_8bit(pixels: np.ndarray, lo: float, hi: float) -> np.ndarray:
    scaled = (pixels.astype(np.float32) - np.float32(lo)) * np.float32(255.0 / (hi - lo))
    return np.clip(scaled + 0.5, 0, 255).astype(np.uint8)


def pack(meta: dict, jpeg: bytes) -> bytes:
    """One WebSocket binary message: 4-byte big-endian length, JSON metadata, JPEG bytes."""
    head = json.dumps(meta, separators=(",", ":")).encode()
    return len(head).to_bytes(4, "big") + head + jpeg


def frame_payload(frame: Frame, range_mode: str, fixed: tuple[float, float], jpeg_quality: int,
                  max_width: int) -> tuple[bytes, dict]:
    """The JPEG message for one frame and display setting (cached on the frame)."""
    import cv2

    if frame.modality == "thermal":
        key = ("fixed", fixed) if range_mode == "fixed" else ("auto",)
    else:
        key = ()
    with frame.lock:
        hit = frame.jpegs.get(key)
        if hit is not None:
            return hit
        px = frame.pixels
        meta = {"modality": frame.modality, "version": frame.version, "stamp_ns": frame.stamp_ns,
                "frame_id": frame.frame_id, "encoding": frame.encoding,
                "width": int(px.shape[1]), "height": int(px.shape[0])}
        if frame.modality == "thermal":
            lo, hi = thermal_range(px, range_mode, fixed)
            meta.update(range_mode=range_mode, lo=lo, hi=hi, min=float(px.min()), max=float(px.max()),
                        full=float(np.iinfo(px.dtype).max))
            img = to_8bit(px, lo, hi)
        else:
            img = cv2.cvtColor(px, cv2.COLOR_RGB2BGR)
        if max_width > 0 and img.shape[1] > max_width:
            h = max(1, round(img.shape[0] * max_width / img.shape[1]))
            img = cv2.resize(img, (max_width, h), interpolation=cv2.INTER_AREA)
        ok, jpeg = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        hit = (pack(meta, jpeg.tobytes()), meta)
        frame.jpegs[key] = hit
        return hit


# -- one browser ----------------------------------------------------------------------------------
class Client:
    """One WebSocket: its display settings, what it has been sent, and the slots of what it will be
    sent next (the newest frame of each modality is read from the node when sending; stats and
    action results are single items or a short bounded list)."""

    def __init__(self, ws, range_mode: str, fixed: tuple[float, float], peer: str):
        self.ws = ws
        self.peer = peer
        self.wake = asyncio.Event()
        self.ack = False                                   # the page acknowledges frames
        self.range_mode, self.fixed = range_mode, fixed
        self.sent_version = {m: 0 for m in MODALITIES}
        self.sent = {m: 0 for m in MODALITIES}
        self.skipped = {m: 0 for m in MODALITIES}          # frames this client never got
        self.in_flight: dict[str, tuple[int, int, float] | None] = {m: None for m in MODALITIES}
        self.latency_send = {m: Window(5.0) for m in MODALITIES}
        self.latency_display = {m: Window(5.0) for m in MODALITIES}
        self.stats: str | None = None                      # newest stats message not yet sent
        self.texts: collections.deque = collections.deque(maxlen=8)
        self.busy = False                                  # an action (service call) is running
        self.resend: set[str] = set()                      # modalities to send again (new settings)

    def figures(self) -> dict:
        return {m: {"sent": self.sent[m], "skipped": self.skipped[m],
                    "latency_send_ms": _mean_or_none(self.latency_send[m].values()),
                    "latency_display_ms": _mean_or_none(self.latency_display[m].values())}
                for m in MODALITIES}


def _mean_or_none(xs):
    return mean(xs) if xs else None


class ViewerServer:
    """aiohttp in its own thread and event loop; reads frames and figures from the node."""

    def __init__(self, node: "ViewerNode", host: str, port: int):
        self.node = node
        self.host, self.port = host, port
        self.loop: asyncio.AbstractEventLoop | None = None
        self.clients: set[Client] = set()
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="viewer_jpeg")
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._runner = None
        self._tasks: list[asyncio.Task] = []
        self.sent_total = 0       # frames sent to browsers, all clients since the start
        self.skipped_total = 0    # frames a client was too slow to be sent

    # -- lifetime (called from the ROS thread) ------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="viewer_http", daemon=True)
        self._thread.start()
        if not self._ready.wait(30.0):
            raise RuntimeError("the web server did not start within 30 s")
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        loop = self.loop
        if loop is not None and loop.is_running():
            loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=15.0)
        self.pool.shutdown(wait=False, cancel_futures=True)

    def notify(self) -> None:
        """A new frame: wake every client's sender (thread-safe)."""
        loop = self.loop
        if loop is not None:
            try:
                loop.call_soon_threadsafe(self._wake_all)
            except RuntimeError:  # the loop closed (shutting down)
                pass

    def _wake_all(self) -> None:
        for c in self.clients:
            c.wake.set()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._start_site())
        except BaseException as exc:  # noqa: BLE001  (reported by start())
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self.loop = loop
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            try:
                loop.run_until_complete(self._shutdown())
            finally:
                loop.close()

    async def _start_site(self) -> None:
        from aiohttp import web

        app = web.Application(client_max_size=64 * 1024)
        app.router.add_get("/", self._index)
        app.router.add_get("/ws", self._websocket)
        app.router.add_get("/api/state", self._state)
        app.router.add_static("/static/", STATIC_DIR, show_index=False, follow_symlinks=False)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])  # the bound port (port 0: a free one)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._stats_ticker()), loop.create_task(self._params_ticker())]

    async def _shutdown(self) -> None:
        for t in self._tasks:
            t.cancel()
        for c in list(self.clients):
            try:
                await asyncio.wait_for(c.ws.close(), 2.0)
            except Exception:  # noqa: BLE001  (a client that is gone already)
                pass
        if self._runner is not None:
            try:
                await asyncio.wait_for(self._runner.cleanup(), 5.0)
            except Exception:  # noqa: BLE001
                pass

    # -- HTTP ---------------------------------------------------------------------------------
    async def _index(self, request):
        from aiohttp import web

        return web.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    async def _state(self, request):
        from aiohttp import web

        return web.json_response(self.node.snapshot())

    async def _websocket(self, request):
        from aiohttp import WSMsgType, web

        ws = web.WebSocketResponse(max_msg_size=64 * 1024)
        await ws.prepare(request)
        client = Client(ws, self.node.range_mode, self.node.fixed_range, request.remote or "?")
        self.clients.add(client)
        self.node.client_count_changed(len(self.clients), client.peer, joined=True)
        sender = asyncio.get_running_loop().create_task(self._send_loop(client))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self._on_text(client, msg.data)
                elif msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                    break
        finally:
            self.clients.discard(client)
            sender.cancel()
            self.node.client_count_changed(len(self.clients), client.peer, joined=False)
        return ws

    def _on_text(self, c: Client, text: str) -> None:
        try:
            msg = json.loads(text)
            kind = msg.get("type")
        except (ValueError, AttributeError):
            return
        if kind == "ack":
            m = msg.get("modality")
            pending = c.in_flight.get(m) if m in MODALITIES else None
            if pending is not None and pending[0] == msg.get("version"):
                c.latency_display[m].add((self.node.now_ns() - pending[1]) / 1e6)
                c.in_flight[m] = None
                c.wake.set()
        elif kind in ("hello", "settings"):
            if kind == "hello":
                c.ack = bool(msg.get("ack", False))
            mode = msg.get("range_mode", c.range_mode)
            if mode in RANGE_MODES:
                c.range_mode = mode
            try:
                lo, hi = float(msg.get("range_lo", c.fixed[0])), float(msg.get("range_hi", c.fixed[1]))
                if np.isfinite(lo) and np.isfinite(hi) and (hi > lo or lo == hi == 0):
                    c.fixed = (lo, hi)
            except (TypeError, ValueError):
                pass
            c.resend.add("thermal")  # the current frame again, mapped the new way
            c.wake.set()
        elif kind in ("key_frame", "set_parameter"):
            if c.busy:
                self._reply(c, kind, False, "the previous request is still running")
                return
            c.busy = True
            asyncio.get_running_loop().create_task(self._action(c, kind, msg))

    def _reply(self, c: Client, action: str, ok: bool, message: str, **extra) -> None:
        c.texts.append(json.dumps({"type": "result", "action": action, "ok": ok, "message": message, **extra}))
        c.wake.set()

    async def _action(self, c: Client, kind: str, msg: dict) -> None:
        try:
            if kind == "key_frame":
                ok, text = await self._call(self.node.request_key_frame(), self._key_frame_result)
                self.node.log_action(f"key frame requested from the page ({c.peer}): {text}")
                self._reply(c, kind, ok, text)
            else:
                name, value = msg.get("name"), msg.get("value")
                ok, text = await self._set_parameter(name, value)
                self.node.log_action(f"{name} := {value} from the page ({c.peer}): {text}")
                self._reply(c, kind, ok, text, name=name)
                await self._refresh_params()
        except Exception as exc:  # noqa: BLE001  (the page gets the reason; the node goes on)
            self._reply(c, kind, False, f"{type(exc).__name__}: {exc}")
        finally:
            c.busy = False

    async def _set_parameter(self, name, value) -> tuple[bool, str]:
        if name not in SETTABLE:
            return False, f"not a parameter the page may set: {name!r}"
        ptype, cast = SETTABLE[name]
        try:
            value = cast(value)
        except (TypeError, ValueError):
            return False, f"{name} needs a number, not {value!r}"
        if not np.isfinite(value) or value < 0 or (name == "quality" and value < 1):
            return False, f"{name} out of range: {value}"
        return await self._call(self.node.set_encoder_parameter(name, ptype, value),
                                lambda res: self._set_result(name, value, res))

    def _key_frame_result(self, res) -> tuple[bool, str]:
        return bool(res.success), str(res.message)

    def _set_result(self, name, value, res) -> tuple[bool, str]:
        r = res.results[0] if res.results else None
        if r is None:
            return False, "no result"
        node = self.node.encoder_fqn
        if r.successful:
            return True, f"{name} = {value} set on {node} (takes effect when the encoder applies it)"
        return False, f"{node} refused {name} = {value}: {r.reason or 'no reason given'}"

    async def _call(self, rclpy_future, interpret) -> tuple[bool, str]:
        """Await an rclpy service future from this loop (the response comes in the ROS thread)."""
        if rclpy_future is None:
            return False, f"service not available (is {self.node.encoder_fqn} running?)"
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def on_done(f):
            def deliver():
                if not done.done():
                    done.set_result(f)
            try:
                loop.call_soon_threadsafe(deliver)
            except RuntimeError:  # loop closed
                pass

        rclpy_future.add_done_callback(on_done)
        try:
            f = await asyncio.wait_for(done, ACTION_TIMEOUT_S)
        except asyncio.TimeoutError:
            rclpy_future.cancel()
            return False, f"no answer within {ACTION_TIMEOUT_S:.0f} s"
        if f.exception() is not None:
            return False, f"{type(f.exception()).__name__}: {f.exception()}"
        return interpret(f.result())

    async def _refresh_params(self) -> None:
        fut = self.node.get_encoder_parameters()
        if fut is not None:
            await self._call(fut, self._store_params)

    def _store_params(self, res) -> tuple[bool, str]:
        self.node.encoder_params = {name: (parameter_value_to_python(v) if v.type else None)
                                    for name, v in zip(SETTABLE, res.values)}
        return True, ""

    # -- sending --------------------------------------------------------------------------------
    async def _send_loop(self, c: Client) -> None:
        loop = asyncio.get_running_loop()
        try:
            await c.ws.send_str(json.dumps({"type": "hello", **self.node.page_config()}))
            while not c.ws.closed:
                await c.wake.wait()
                c.wake.clear()
                while c.texts:
                    await c.ws.send_str(c.texts.popleft())
                if c.stats is not None:
                    text, c.stats = c.stats, None
                    await c.ws.send_str(text)
                for m in MODALITIES:
                    frame = self.node.latest(m)
                    if frame is None or (frame.version <= c.sent_version[m] and m not in c.resend):
                        continue
                    pending = c.in_flight[m]
                    if c.ack and pending is not None and time.monotonic() - pending[2] < ACK_TIMEOUT_S:
                        continue  # the page has not drawn the previous one: it gets the newest later
                    data, meta = await loop.run_in_executor(
                        self.pool, frame_payload, frame, c.range_mode, c.fixed,
                        self.node.jpeg_quality, self.node.max_width)
                    c.resend.discard(m)
                    if c.sent_version[m] > 0:
                        skipped = max(0, frame.version - c.sent_version[m] - 1)
                        c.skipped[m] += skipped
                        self.skipped_total += skipped
                    c.sent_version[m] = frame.version
                    now = self.node.now_ns()
                    c.latency_send[m].add((now - frame.stamp_ns) / 1e6)
                    c.in_flight[m] = (frame.version, frame.stamp_ns, time.monotonic())
                    c.sent[m] += 1
                    self.sent_total += 1
                    await c.ws.send_bytes(data)  # waits while the socket's buffer is full
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001  (a client that went away mid-send)
            self.node.get_logger().debug(f"client {c.peer}: {type(exc).__name__}: {exc}")

    async def _stats_ticker(self) -> None:
        while True:
            await asyncio.sleep(self.node.stats_period)
            if not self.clients:
                continue
            snap = self.node.snapshot()
            for c in list(self.clients):
                snap["client"] = c.figures()
                c.stats = json.dumps({"type": "stats", **snap})
                c.wake.set()

    async def _params_ticker(self) -> None:
        while True:
            if self.clients:
                try:
                    await self._refresh_params()
                except Exception:  # noqa: BLE001  (shown as unknown on the page)
                    pass
            await asyncio.sleep(PARAMS_REFRESH_S)


# -- the node ---------------------------------------------------------------------------------------
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

        self._lock = threading.Lock()
        self._latest: dict[str, Frame | None] = {m: None for m in MODALITIES}
        self._version = {m: 0 for m in MODALITIES}
        self._fps = {m: Window(self.window_s) for m in MODALITIES}
        self._size = {m: None for m in MODALITIES}
        self._bad_images = 0
        self._logged_at: dict[str, float] = {}
        # From `encoded`
        self._bits = {m: Window(self.window_s) for m in MODALITIES}
        self._packets = Window(self.window_s)
        self.link = {"packets": 0, "key_frames": 0, "sequence": None, "frame_type": None, "quality": None,
                     "codec": None, "reference_codec": None, "thermal_codec": None, "lost": 0, "restarts": 0, "unreadable": 0}
        # From /diagnostics: name -> (role, level, message, values, monotonic time)
        self._diag: dict[str, tuple] = {}
        self.encoder_params: dict | None = None   # the encoder's quality / target_kbps, read back

        self.encoder_fqn = self.resolve_service_name(self.encoder_name)
        self._key_client = self.create_client(Trigger, "request_key_frame")
        self._param_client = AsyncParameterClient(self, self.encoder_name)

        in_qos = make_qos(in_rel, in_depth)
        self.create_subscription(Image, "rgb/image", lambda m: self._on_image("rgb", m), in_qos)
        self.create_subscription(Image, "thermal/image", lambda m: self._on_image("thermal", m), in_qos)
        self.create_subscription(EncodedFrame, "encoded", self._on_encoded, make_qos(enc_rel, enc_depth))
        self.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        self._browsers = 0

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
            with self._lock:
                self._bad_images += 1
            self._warn(f"bad {modality}", f"{modality} image not shown: {exc}")
            return
        with self._lock:
            self._version[modality] += 1
            self._latest[modality] = Frame(modality, self._version[modality], px, msg.encoding,
                                           stamp_to_ns(msg.header.stamp), msg.header.frame_id)
            self._size[modality] = [int(px.shape[1]), int(px.shape[0])]
        self._fps[modality].add(1.0)
        self.server.notify()

    def _on_encoded(self, msg) -> None:
        from mm_compress_ros.codec.packet import read_header

        seq = int(msg.sequence)
        with self._lock:
            last = self.link["sequence"]
            if last is not None:
                if seq > last + 1:
                    self.link["lost"] += seq - last - 1
                elif seq <= last:
                    self.link["restarts"] += 1   # the encoder started again (sequence from 0)
            self.link.update(sequence=seq, packets=self.link["packets"] + 1, quality=int(msg.quality),
                             codec=msg.codec, frame_type="key" if msg.frame_type == EncodedFrame.FRAME_KEY else "predicted")
            if msg.frame_type == EncodedFrame.FRAME_KEY:
                self.link["key_frames"] += 1
        now = time.monotonic()
        self._packets.add(1.0, now)
        try:
            header = read_header(bytes(msg.data))
            sizes = header.modality_bytes()
        except Exception as exc:  # noqa: BLE001  (a corrupt packet: the decoder reports it too)
            with self._lock:
                self.link["unreadable"] += 1
            self._warn("unreadable", f"packet {seq}: header unreadable ({type(exc).__name__}: {exc})")
            return
        with self._lock:
            self.link["reference_codec"] = header.reference_codec
            self.link["thermal_codec"] = header.thermal_codec
        for m in MODALITIES:
            self._bits[m].add(8.0 * sizes[m], now)

    def _on_diagnostics(self, msg) -> None:
        now = time.monotonic()
        for st in msg.status:
            role = st.name.rsplit(": ", 1)[-1] if ": " in st.name else None
            if role not in ("encoder", "decoder"):
                continue
            level = st.level[0] if isinstance(st.level, (bytes, bytearray)) else int(st.level)
            values = {kv.key: kv.value for kv in st.values}
            with self._lock:
                self._diag[st.name] = (role, level, st.message, values, now)

    # -- the buttons (called from the web thread) ----------------------------------------------
    def request_key_frame(self):
        if not self._key_client.service_is_ready():
            return None
        return self._key_client.call_async(Trigger.Request())

    def set_encoder_parameter(self, name: str, ptype, value):
        if not self._param_client.services_are_ready():
            return None
        return self._param_client.set_parameters([Parameter(name, ptype, value)])

    def get_encoder_parameters(self):
        if not self._param_client.services_are_ready():
            return None
        return self._param_client.get_parameters(list(SETTABLE))

    def log_action(self, text: str) -> None:
        self.get_logger().info(text)

    def client_count_changed(self, n: int, peer: str, joined: bool) -> None:
        self._browsers = n
        self.get_logger().info(f"browser {peer} {'connected' if joined else 'left'} ({n} now)")

    # -- reading (web thread) ----------------------------------------------------------------------
    def now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def latest(self, modality: str) -> Frame | None:
        with self._lock:
            return self._latest[modality]

    def page_config(self) -> dict:
        return {"range_mode": self.range_mode, "range_lo": self.fixed_range[0], "range_hi": self.fixed_range[1],
                "colormap": self.colormap, "alpha": self.alpha, "colormaps": list(COLORMAPS),
                "encoder_node": self.encoder_fqn, "key_frame_service": self._key_client.srv_name,
                "stats_period": self.stats_period}

    def _role_status(self, role: str, now: float) -> dict | None:
        with self._lock:
            found = [(name, v) for name, v in self._diag.items() if v[0] == role]
        if not found:
            return None
        exact = [f for f in found if role == "encoder" and f[0] == f"{self.encoder_fqn}: encoder"]
        name, (_, level, message, values, t) = (exact or sorted(found, key=lambda f: f[1][4]))[-1]
        return {"name": name, "level": level, "message": message, "values": values, "age_s": now - t}

    def snapshot(self) -> dict:
        now = time.monotonic()
        enc, dec = self._role_status("encoder", now), self._role_status("decoder", now)
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
        modalities = {m: {"kbps": self._bits[m].sum_rate(now) / 1000.0, "fps": self._fps[m].rate(now),
                          "psnr_db": psnr[m], "size": sizes[m], "encoding": encodings[m]}
                      for m in MODALITIES}
        link.update(packet_rate=self._packets.rate(now),
                    kbps=sum(modalities[m]["kbps"] for m in MODALITIES))
        return {"modalities": modalities, "link": link, "encoder": enc, "decoder": dec,
                "encoder_params": self.encoder_params, "bad_images": bad, "clients": self._browsers,
                "encoder_node": self.encoder_fqn}

    # -- logging --------------------------------------------------------------------------------
    def _warn(self, kind: str, text: str) -> None:
        now = time.monotonic()
        if now - self._logged_at.get(kind, -1e9) >= WARN_PERIOD_S:
            self._logged_at[kind] = now
            self.get_logger().warning(text)

    def stats_line(self) -> str:
        sent, skipped = self.server.sent_total, self.server.skipped_total
        return (f"viewer {self.url} | {self._browsers} browser(s) | rgb {self._fps['rgb'].rate():.1f} fps | "
                f"thermal {self._fps['thermal'].rate():.1f} fps | packets {self.link['packets']} "
                f"(lost {self.link['lost']}) | to browsers: sent {sent}, skipped {skipped}")

    def destroy_node(self):
        self.server.stop()
        return super().destroy_node()


def main(argv=None) -> int:
    return spin_node(ViewerNode, "viewer_node", argv)


if __name__ == "__main__":
    sys.exit(main())
