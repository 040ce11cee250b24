"""viewer_node (issue 16): the operator's page in a real browser on the real pipeline, and a slow
WebSocket client against the node's memory.

* test_page_in_chromium_on_the_pipeline: sample_publisher (real frames, 16-bit thermal) ->
  encoder_node -> decoder_node -> viewer_node, each started from its launch file over DDS; Debian's
  headless Chromium loads the page and is driven over the DevTools protocol (a WebSocket, with
  aiohttp's client): images arrive and change and are not blank, the figures update, the thermal
  range switches between automatic and fixed, "key frame now" (a real mouse click) makes the next
  EncodedFrame a key frame (the `encoded` topic is recorded by the pipeline monitor), and quality /
  target bitrate land as parameters on the encoder node (read back by a separate process).
  MMC_SAVE_VIEWER_PNG=1 writes the page's screenshot to docs/viewer.png (always to the test's
  tmp dir).
* test_slow_client_does_not_grow_memory: 640x480 frames at 10 Hz into viewer_node; a client that
  reads one frame a second for a minute (and sends no acknowledgements, so only TCP flow control
  holds the node back) beside a fast one: the node's RSS at 60 s stays within a tolerance of its
  RSS at 10 s, the slow client gets about one frame a second, the fast one many more.
"""
from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import (DATA_ROOT, LIB_DIR, PROCS, REPO, SHARE_DIR, read_jsonl, start_launch, wait_for,
                      wait_for_log)
from test_launch_files import declared_parameters

from mm_compress_ros.ros.launch_table import node_commands, read_table

pytestmark = pytest.mark.ros
SEQ = DATA_ROOT / "m3svd_seq" / "0111_1716"
VIEWER_SOURCE = REPO / "mm_compress_ros" / "ros" / "viewer" / "node.py"
RSS_TOLERANCE_MB = 12.0


def viewer_url(proc, ros) -> str:
    wait_for_log(proc, "viewer at http://", 60, ros)
    return re.search(r"viewer at (http://[^/\s]+/)", proc.output()).group(1)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"no VmRSS for pid {pid}")


# -- the launch file ---------------------------------------------------------------------------------
def test_viewer_launch_file_table_and_parameters():
    src = REPO / "launch" / "viewer.launch.py"
    assert (SHARE_DIR / "launch" / "viewer.launch.py").read_text() == src.read_text(), "stale install: make build"
    text = src.read_text()
    # Built by the shared builder (launch_ros Nodes, the Fast DDS profile): test_launch_files.py checks it.
    assert "from mm_compress_ros.ros.launch_description import build" in text and "return build(ARGS, NODES)" in text
    args, nodes = read_table(src)
    (spec,) = nodes
    exe = LIB_DIR / spec["executable"]
    assert exe.is_file() and exe.stat().st_mode & 0o111, exe
    doc = yaml.safe_load((SHARE_DIR / "config" / spec["params"]).read_text())
    assert list(doc) == [spec["name"]]
    assert set(doc[spec["name"]]["ros__parameters"]) == declared_parameters(VIEWER_SOURCE)
    assert doc[spec["name"]]["ros__parameters"]["host"] == "127.0.0.1" and args["host"] == "127.0.0.1"
    assert all(a in args for a in list(spec["remap"].values()) + list(spec["param_args"].values()))
    # It shows what the decoder of decoder.launch.py / pipeline.launch.py publishes.
    dec = {c.name: c for c in node_commands("pipeline.launch.py", share=SHARE_DIR, lib=LIB_DIR)}["decoder_node"]
    (view,) = node_commands("viewer.launch.py", {"port": 0}, share=SHARE_DIR, lib=LIB_DIR)
    assert view.remappings["rgb/image"] == dec.remappings["rgb/image"]
    assert view.remappings["thermal/image"] == dec.remappings["thermal/image"]
    assert view.remappings["encoded"] == dec.remappings["encoded"]
    assert "port:=0" in view.argv and "host:='127.0.0.1'" in view.argv  # port stays an integer


def test_other_interfaces_warn_and_a_taken_port_ends_the_node(ros):
    """host 0.0.0.0: served, with the no-authentication warning in the log; the same port again:
    the second node ends with one line and status 1."""
    import urllib.request

    first = start_launch(ros, "viewer.launch.py", {"port": 0, "host": "0.0.0.0"})["viewer_node"]
    wait_for_log(first, "viewer at http://", 60, ros)
    port = int(re.search(r"viewer at http://0\.0\.0\.0:(\d+)/", first.output()).group(1))
    wait_for_log(first, "there is no authentication", 10, ros)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as r:
        assert r.status == 200 and b"viewer.js" in r.read()
    second = ros.node("viewer_node_2", "viewer_node", "--ros-args", "-r", "__node:=viewer_node_2",
                      "-p", f"port:={port}", "-p", "host:=0.0.0.0")
    assert second.wait(timeout=60) == 1, second.output()
    lines = [line for line in second.output().splitlines() if line.startswith("[viewer_node] error:")]
    assert len(lines) == 1 and "OSError" in lines[0] and "Traceback" not in second.output(), second.output()


# -- Chromium over the DevTools protocol ---------------------------------------------------------------
class DevTools:
    """A minimal DevTools-protocol client for one page target (aiohttp WebSocket)."""

    def __init__(self, session, ws):
        self.session, self.ws = session, ws
        self._id = 0
        self._pending: dict[int, asyncio.Future] = {}
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def open(cls, user_data_dir: Path, timeout: float = 60.0) -> "DevTools":
        import aiohttp

        port_file = user_data_dir / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while not port_file.is_file() or not port_file.read_text().strip():
            if time.monotonic() > deadline:
                raise TimeoutError("Chromium wrote no DevToolsActivePort")
            await asyncio.sleep(0.2)
        port = int(port_file.read_text().split()[0])
        session = aiohttp.ClientSession()
        while True:
            try:
                async with session.get(f"http://127.0.0.1:{port}/json/list") as r:
                    pages = [t for t in await r.json() if t["type"] == "page"]
                if pages:
                    break
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("no page target in Chromium")
            await asyncio.sleep(0.2)
        ws = await session.ws_connect(pages[0]["webSocketDebuggerUrl"], max_msg_size=0)
        return cls(session, ws)

    async def _read(self):
        async for msg in self.ws:
            data = json.loads(msg.data)
            fut = self._pending.pop(data.get("id"), None)
            if fut is not None and not fut.done():
                if "error" in data:
                    fut.set_exception(RuntimeError(f"DevTools: {data['error']}"))
                else:
                    fut.set_result(data.get("result", {}))

    async def send(self, method: str, timeout: float = 30.0, **params) -> dict:
        self._id += 1
        fut = asyncio.get_running_loop().create_future()
        self._pending[self._id] = fut
        await self.ws.send_json({"id": self._id, "method": method, "params": params})
        return await asyncio.wait_for(fut, timeout)

    async def eval(self, expression: str):
        res = await self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in res:
            raise RuntimeError(f"page: {res['exceptionDetails']}")
        return res["result"].get("value")

    async def wait(self, expression: str, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while True:
            value = await self.eval(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"page: timed out after {timeout:.0f}s waiting for {what}")
            await asyncio.sleep(0.25)

    async def click(self, element_id: str):
        """A real left click (mouse pressed + released) in the middle of the element."""
        box = await self.eval(f"(() => {{ const r = document.getElementById('{element_id}')"
                              ".getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()")
        for kind in ("mousePressed", "mouseReleased"):
            await self.send("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)

    async def close(self):
        try:
            await self.send("Browser.close", timeout=5.0)
        except Exception:  # noqa: BLE001  (the browser goes away while answering)
            pass
        self._reader.cancel()
        await self.ws.close()
        await self.session.close()


# Canvas statistics (every 4th pixel): mean, standard deviation and a hash of the content.
PROBE = """(() => {
  const out = {frames: {...window.mmcViewer.frames}, stats: window.mmcViewer.stats, text: {}};
  for (const id of ["cv-rgb", "cv-thermal", "cv-fused"]) {
    const c = document.getElementById(id);
    const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    let sum = 0, sum2 = 0, n = 0, h = 0;
    for (let i = 0; i < d.length; i += 16) {
      const v = (d[i] + d[i + 1] + d[i + 2]) / 3; sum += v; sum2 += v * v; n++;
      h = (Math.imul(h, 31) + d[i] + 7 * d[i + 1] + 13 * d[i + 2]) >>> 0;
    }
    const m = sum / n;
    out[id] = {w: c.width, h: c.height, mean: m, std: Math.sqrt(Math.max(0, sum2 / n - m * m)), hash: h};
  }
  for (const el of document.querySelectorAll("td[id], span[id], div[id]")) out.text[el.id] = el.textContent;
  return out;
})()"""


def number(text: str) -> float:
    return float(text.split()[0])


@pytest.mark.timeout(600)  # model loads and Chromium's start on 2 busy cores: minutes at worst
def test_page_in_chromium_on_the_pipeline(ros, tmp_path):
    if not SEQ.is_dir():
        pytest.fail(f"test data missing: {SEQ}", pytrace=False)
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium is not installed (apt-get install chromium; `make test` and .ci/run install it)",
                    pytrace=False)
    t0 = time.monotonic()
    out = tmp_path / "monitor.jsonl"
    mon = ros.start("monitor", [sys.executable, "-m", "mm_compress_ros.ros.monitor", "--out", out])
    wait_for_log(mon, "monitor ready", 60, ros)
    nodes = start_launch(ros, "encoder.launch.py", {}, {"encoder_node": {
        "torch_threads": 1, "gop": 1000, "resize": [256, 192]}})
    nodes.update(start_launch(ros, "decoder.launch.py", {}, {"decoder_node": {"torch_threads": 1}}))
    nodes.update(start_launch(ros, "viewer.launch.py", {"port": 0}))
    enc = nodes["encoder_node"]
    url = viewer_url(nodes["viewer_node"], ros)
    wait_for_log(enc, "loaded in", 120, ros)
    start_launch(ros, "pipeline.launch.py", {"path": str(SEQ)},
                 {"sample_publisher": {"count": 0, "rate": 4.0, "width": 320, "height": 240,
                                       "thermal_encoding": "mono16", "wait_for_subscribers": 2}},
                 only=("sample_publisher",))

    def encoded():
        return [r for r in read_jsonl(out) if r["kind"] == "encoded"]

    def decoded():
        return [r for r in read_jsonl(out) if r["kind"] == "decoded"]

    wait_for(lambda: len(decoded()) >= 4, 120, what="decoded frames")
    t_pipeline = time.monotonic() - t0
    user_data = tmp_path / "chromium"
    browser = ros.start("chromium", [chromium, "--headless=new", "--no-sandbox", "--disable-gpu",
                                     "--disable-dev-shm-usage", "--no-first-run", "--remote-debugging-port=0",
                                     f"--user-data-dir={user_data}", "--window-size=1400,1000", "about:blank"])
    results = {}

    async def drive():
        dt = await DevTools.open(user_data)
        try:
            await dt.send("Emulation.setDeviceMetricsOverride", width=1400, height=1000, deviceScaleFactor=1,
                          mobile=False)
            await dt.send("Page.enable")
            await dt.send("Page.navigate", url=url)
            await dt.wait("window.mmcViewer && mmcViewer.frames.rgb >= 3 && mmcViewer.frames.thermal >= 3 "
                          "&& mmcViewer.stats >= 2", 90, "frames and figures")
            results["first"] = await dt.eval(PROBE)
            await asyncio.sleep(2.5)  # not a multiple of the 5 s loop of 20 frames at 4 Hz
            results["second"] = await dt.eval(PROBE)

            # Thermal range: automatic (percentiles of the frame), then a fixed range entered.
            results["auto_meta"] = await dt.eval("mmcViewer.thermalMeta")
            await dt.eval("(() => { const s = document.getElementById('range-mode'); s.value = 'fixed';"
                          " s.dispatchEvent(new Event('change')); })()")
            await dt.eval("document.getElementById('range-lo').value = 1000;"
                          "document.getElementById('range-hi').value = 60000; true")
            # (the element's own click: the range legend above it re-wraps with every frame, so a
            # mouse click at coordinates taken a moment earlier can miss the button)
            await dt.eval("document.getElementById('btn-range').click(); true")
            results["fixed_meta"] = await dt.wait(
                "mmcViewer.thermalMeta.range_mode === 'fixed' && mmcViewer.thermalMeta.lo === 1000 && "
                "mmcViewer.thermalMeta.hi === 60000 && mmcViewer.thermalMeta", 30, "a fixed-range frame")
            results["fixed_text"] = await dt.eval("document.getElementById('thermal-range').textContent")
            await dt.eval("(() => { const s = document.getElementById('range-mode'); s.value = 'auto';"
                          " s.dispatchEvent(new Event('change')); })()")
            await dt.wait("mmcViewer.thermalMeta.range_mode === 'auto'", 30, "automatic range again")

            # "key frame now", pressed with the mouse.
            results["keys_before"] = [r["sequence"] for r in encoded() if r["frame_type"] == 0]
            await dt.click("btn-key")
            results["key_result"] = await dt.wait(
                "mmcViewer.results.find(r => r.action === 'key_frame')", 30, "the key frame answer")
            results["key_text"] = await dt.eval("document.getElementById('action-result').textContent")

            # Quality and target bitrate: parameters of the encoder node.
            await dt.eval("(q => { q.value = 2; q.dispatchEvent(new Event('input')); return true; })"
                          "(document.getElementById('quality'))")   # as typing it does
            await dt.click("btn-quality")
            results["quality_result"] = await dt.wait(
                "mmcViewer.results.find(r => r.name === 'quality')", 30, "the quality answer")
            await dt.eval("document.getElementById('target').value = 400; true")
            await dt.click("btn-target")
            results["target_result"] = await dt.wait(
                "mmcViewer.results.find(r => r.name === 'target_kbps')", 30, "the target answer")
            results["params_text"] = await dt.wait(
                "(t => t.includes('quality 2') && t.includes('target_kbps 400') && t)"
                "(document.getElementById('link-params').textContent)", 30, "the parameters read back")

            await asyncio.sleep(2.0)
            shot = await dt.send("Page.captureScreenshot", format="png")
            results["png"] = base64.b64decode(shot["data"])
            results["final"] = await dt.eval(PROBE)
        finally:
            await dt.close()

    t1 = time.monotonic()
    try:
        asyncio.run(asyncio.wait_for(drive(), 240))
    except Exception as exc:
        pytest.fail(f"{type(exc).__name__}: {exc}\n{ros.logs()}", pytrace=False)
    t_browser = time.monotonic() - t1
    browser.stop()
    (tmp_path / "viewer.png").write_bytes(results["png"])
    if os.environ.get("MMC_SAVE_VIEWER_PNG") == "1":
        (REPO / "docs" / "viewer.png").write_bytes(results["png"])

    # Images arrived, are not blank and change.
    a, b = results["first"], results["second"]
    for cid in ("cv-rgb", "cv-thermal", "cv-fused"):
        assert (b[cid]["w"], b[cid]["h"]) == (256, 192), (cid, b[cid])
        assert b[cid]["std"] > 10 and 5 < b[cid]["mean"] < 250, (cid, b[cid])
        assert a[cid]["hash"] != b[cid]["hash"], f"{cid} did not change in 2.5 s"
    assert b["frames"]["rgb"] >= a["frames"]["rgb"] + 3 and b["frames"]["thermal"] >= a["frames"]["thermal"] + 3, (a, b)
    # The fused view is neither the RGB nor the thermal image alone.
    assert b["cv-fused"]["hash"] not in (b["cv-rgb"]["hash"], b["cv-thermal"]["hash"])

    # The figures update and make sense.
    ta, tb = a["text"], b["text"]
    assert b["stats"] >= a["stats"] + 3
    assert int(tb["link-seq"]) > int(ta["link-seq"])
    for m in ("rgb", "thermal"):
        assert number(tb[f"fig-{m}-kbps"]) > 0 and number(tb[f"fig-{m}-fps"]) > 0, tb
        assert 0 < number(tb[f"fig-{m}-lat-send"]) < 30000 and 0 < number(tb[f"fig-{m}-lat-display"]) < 30000, tb
        psnr = tb[f"fig-{m}-psnr"]
        assert psnr == "n/a" or float(psnr) > 0, psnr  # unknown at the receiver unless the encoder reports it
    assert tb["link-type"] in ("key", "predicted") and tb["link-profile"] == "h264+h265, RGB h264, thermal h265"  # the default profile, 16-bit thermal
    assert tb["enc-status"].startswith("encoder: ") and "no diagnostics" not in tb["enc-status"], tb["enc-status"]
    assert tb["dec-status"].startswith("decoder: ") and "no diagnostics" not in tb["dec-status"], tb["dec-status"]
    assert re.fullmatch(r"encoder \d+ \| decoder \d+", tb["fig-dropped"]), tb["fig-dropped"]
    assert re.fullmatch(r"0 packets missing here \| decoder 0", tb["fig-lost"]), tb["fig-lost"]

    # Thermal: 16-bit values, automatic range inside the frame's values, then the fixed one.
    auto, fixed = results["auto_meta"], results["fixed_meta"]
    assert auto["encoding"] == "mono16" and auto["full"] == 65535
    assert auto["range_mode"] == "auto" and auto["min"] <= auto["lo"] < auto["hi"] <= auto["max"], auto
    assert (fixed["lo"], fixed["hi"]) == (1000, 60000)
    assert "fixed: 1000 .. 60000" in results["fixed_text"], results["fixed_text"]

    # "key frame now": the next frame encoded after the call is a key frame.
    kr = results["key_result"]
    assert kr["ok"], kr
    nxt = int(re.search(r"next sequence (\d+)", kr["message"]).group(1))
    assert f"next sequence {nxt}" in results["key_text"]
    wait_for(lambda: any(r["sequence"] >= nxt + 1 for r in encoded()), 60, what="frames after the key request")
    types = {r["sequence"]: r["frame_type"] for r in encoded()}
    assert 0 in (types.get(nxt), types.get(nxt + 1)), (nxt, types)
    assert types.get(nxt - 1) == 1, (nxt, types)  # gop 1000: nothing else brought a key frame just then
    assert all(k < nxt for k in results["keys_before"]), (results["keys_before"], nxt)
    assert "key frame requested (service request)" in enc.output()

    # Quality and target bitrate reached the encoder node as parameters.
    assert results["quality_result"]["ok"] and results["target_result"]["ok"], results
    reader = ros.python("get_params", PROCS / "get_params.py", "encoder_node", "quality", "target_kbps")
    assert reader.wait(timeout=60) == 0, ros.logs()
    assert json.loads(reader.output().strip().splitlines()[-1]) == {"quality": 2, "target_kbps": 400.0}
    # ... and the encoder took them for its next key frame (its on-set-parameters callback)
    wait_for(lambda: "rate settings from the next key frame: quality None, target_kbps 400.0" in enc.output(),
             30, what="the encoder's answer to the new target")
    assert "rate settings from the next key frame: quality 2, target_kbps None" in enc.output()
    assert results["final"]["cv-rgb"]["std"] > 10
    print(f"\npipeline up {t_pipeline:.1f} s, browser part {t_browser:.1f} s; screenshot {tmp_path / 'viewer.png'}")


# -- a slow client ---------------------------------------------------------------------------------------
def test_slow_client_does_not_grow_memory(ros, tmp_path):
    if not SEQ.is_dir():
        pytest.fail(f"test data missing: {SEQ}", pytrace=False)
    viewer = start_launch(ros, "viewer.launch.py", {"port": 0, "rgb_topic": "rgb/image",
                                                    "thermal_topic": "thermal/image"})["viewer_node"]
    url = viewer_url(viewer, ros)
    start_launch(ros, "pipeline.launch.py", {"path": str(SEQ)},
                 {"sample_publisher": {"count": 0, "rate": 10.0, "width": 640, "height": 480,
                                       "wait_for_subscribers": 1}}, only=("sample_publisher",))
    ws_url = url.replace("http://", "ws://") + "ws"

    async def clients():
        import aiohttp

        rss = {}
        async with aiohttp.ClientSession() as session:
            deadline = time.monotonic() + 60
            while True:  # frames flowing into the node first
                async with session.get(url + "api/state") as r:
                    state = await r.json()
                if min(state["modalities"][m]["fps"] for m in ("rgb", "thermal")) > 5:
                    break
                assert time.monotonic() < deadline, state
                await asyncio.sleep(0.5)

            async def fast(seconds):
                n = 0
                async with session.ws_connect(ws_url, max_msg_size=0) as ws:
                    end = time.monotonic() + seconds
                    while time.monotonic() < end:
                        msg = await asyncio.wait_for(ws.receive(), 10)
                        n += msg.type == aiohttp.WSMsgType.BINARY
                return n

            async def slow(seconds):
                frames, sizes = 0, []
                async with session.ws_connect(ws_url, max_msg_size=0) as ws:
                    start = time.monotonic()
                    fast_task = asyncio.get_running_loop().create_task(fast(20.0))
                    while time.monotonic() - start < seconds:
                        while True:  # one frame (text messages in between are skipped over)
                            msg = await asyncio.wait_for(ws.receive(), 30)
                            if msg.type == aiohttp.WSMsgType.BINARY:
                                break
                            assert msg.type == aiohttp.WSMsgType.TEXT, msg
                        frames += 1
                        sizes.append(len(msg.data))
                        elapsed = time.monotonic() - start
                        for mark in (10, 20, 30, 40, 50, 60):
                            if elapsed >= mark and mark not in rss:
                                rss[mark] = rss_mb(viewer.pid)
                        await asyncio.sleep(1.0)
                    return frames, sizes, await fast_task

            return rss, await slow(61.0)

    try:
        rss, (slow_frames, sizes, fast_frames) = asyncio.run(clients())
    except Exception as exc:
        pytest.fail(f"{type(exc).__name__}: {exc}\n{ros.logs()}", pytrace=False)
    print(f"\nRSS (MB) by seconds into the slow client: {rss}; slow client {slow_frames} frames "
          f"(mean {sum(sizes) / len(sizes) / 1024:.0f} KiB), fast client {fast_frames} frames in 20 s")
    assert viewer.poll() is None, ros.logs()
    assert rss[60] - rss[10] < RSS_TOLERANCE_MB, rss
    assert 45 <= slow_frames <= 62, slow_frames        # about one a second
    assert fast_frames >= 4 * 20, fast_frames          # a fast client is not held back by the slow one
    assert sum(sizes) / len(sizes) > 20_000            # 640x480 JPEGs: the socket buffers fill quickly
