"""The viewer's web server: aiohttp in its own thread and event loop, one page and a WebSocket per browser.

Frames go to each browser over the WebSocket as JPEG (render.py) with back-pressure: per client
and modality one slot holding the newest frame (never a queue), at most one frame per modality in
flight to a page (the page acknowledges each frame once drawn), and TCP flow control (aiohttp
waits for the socket to drain) for a client that does not acknowledge. A slow browser gets fewer
frames; the node's memory does not grow with it. The buttons' requests (key frame, encoder
parameters) go through the node's service clients, their rclpy futures awaited from this loop.

The server reads everything from the node (``latest``, ``snapshot``, ``page_config``, ...) and
imports no message type.
"""
from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import json
import threading
import time
from pathlib import Path

import numpy as np

from mm_compress_ros.ros.common import Window, mean
from mm_compress_ros.ros.viewer.render import MODALITIES, RANGE_MODES, frame_payload

STATIC_DIR = Path(__file__).resolve().with_name("static")
ACK_TIMEOUT_S = 5.0       # a page that has not acknowledged a frame for this long gets the next one
ACTION_TIMEOUT_S = 5.0    # service calls from the buttons
PARAMS_REFRESH_S = 5.0    # how often the encoder's quality / target_kbps are read back
# Encoder parameters the page may set, with the Python type of their value (encoder_node declares
# quality an integer, target_kbps a double).
SETTABLE = {"quality": int, "target_kbps": float}


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
    """aiohttp in its own thread and event loop; reads frames and figures from the node (viewer/node.py)."""

    def __init__(self, node, host: str, port: int):
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
        try:
            value = SETTABLE[name](value)
        except (TypeError, ValueError):
            return False, f"{name} needs a number, not {value!r}"
        if not np.isfinite(value) or value < 0 or (name == "quality" and value < 1):
            return False, f"{name} out of range: {value}"
        return await self._call(self.node.set_encoder_parameter(name, value),
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
        self.node.store_encoder_parameters(res)
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
