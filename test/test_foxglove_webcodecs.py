"""The decoder Foxglove runs in the browser: WebCodecs `VideoDecoder` in headless Chromium (Debian's
`chromium`, driven over the DevTools protocol as in test_viewer.py).

`bag decode --foxglove` of a standard-profile bag (the default `bag encode`: RGB and 8-bit thermal
as H.264) gives two CompressedVideo topics. Every access unit of both topics is fed, as Foxglove
feeds them, to a `VideoDecoder` configured with the codec string of the stream's SPS
(`avc1.PPCCLL`), no `description` (Annex B): every chunk must come out as one frame of the coded
size, with no decoder error, from the first key frame and again from a later one (a viewer seeking).
WebCodecs exists only in a secure context, so the page is a blank one served from 127.0.0.1 (about:blank
has no `VideoDecoder`); the data goes to it inline (base64), through `Runtime.evaluate` with
`awaitPromise`.
"""
from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import signal
import subprocess
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from test_foxglove import GOP, N, read_mcap, written_by_cli
from test_viewer import DevTools

pytestmark = pytest.mark.needs_data

# Decodes spec.units (base64 access units) with one VideoDecoder; returns, per output frame, its
# sizes, timestamp and two sums over the visible luma plane (plain and position-weighted: exact in
# doubles) that Python recomputes from PyAV's decode of the same units.
DECODE_JS = r"""async (spec) => {
  const res = {secure: isSecureContext, api: typeof VideoDecoder};
  res.supported = (await VideoDecoder.isConfigSupported(
      {codec: spec.codec, codedWidth: spec.width, codedHeight: spec.height})).supported;
  const frames = [], pending = [];
  let error = null;
  const luma = async (f) => {
    const r = f.visibleRect, buf = new Uint8Array(f.allocationSize({rect: r}));
    const layout = await f.copyTo(buf, {rect: r});
    let s1 = 0, s2 = 0, i = 0;
    for (let y = 0; y < r.height; y++)
      for (let x = 0; x < r.width; x++) { const v = buf[layout[0].offset + y * layout[0].stride + x]; s1 += v; s2 += v * ++i; }
    return [s1, s2];
  };
  const dec = new VideoDecoder({
    output: f => {
      const r = f.visibleRect;
      const entry = {coded: [f.codedWidth, f.codedHeight], display: [f.displayWidth, f.displayHeight],
                     visible: [r.x, r.y, r.width, r.height], format: f.format, ts: f.timestamp};
      frames.push(entry);
      pending.push(luma(f).then(s => { entry.luma = s; }).finally(() => f.close()));
    },
    error: e => { error = String(e); }});
  try {
    dec.configure({codec: spec.codec, optimizeForLatency: true});   // no description: Annex B
    spec.units.forEach((b64, i) => {
      const bin = atob(b64), data = new Uint8Array(bin.length);
      for (let k = 0; k < bin.length; k++) data[k] = bin.charCodeAt(k);
      dec.decode(new EncodedVideoChunk({type: spec.keys[i] ? "key" : "delta", timestamp: spec.ts[i], data}));
    });
    await dec.flush();
    await Promise.all(pending);
  } catch (e) { error = error || String(e); }
  res.frames = frames; res.error = error; res.state = dec.state;
  return res;
}"""


def luma_sums(y: np.ndarray) -> list[int]:
    """DECODE_JS's two sums over a luma plane (row-major): sum of values, sum of value * (index + 1)."""
    v = y.astype(np.int64).ravel()
    return [int(v.sum()), int((v * np.arange(1, v.size + 1)).sum())]


def pyav_lumas(units: list[bytes]) -> list[list[int]]:
    """luma_sums of every picture PyAV's h264 decoder makes of ``units`` (a fresh decoder)."""
    import av

    from test_foxglove import luma_plane

    dec = av.CodecContext.create("h264", "r")
    out = []
    for u in units:
        (f,) = dec.decode(av.Packet(u))
        out.append(luma_sums(luma_plane(f)))
    return out


def avc_codec_string(au: bytes) -> str:
    """``avc1.PPCCLL`` from the first SPS (NAL type 7) of an Annex B access unit: profile_idc, the
    constraint-flags byte and level_idc (RFC 6381)."""
    i = 0
    while (j := au.find(b"\x00\x00\x01", i)) >= 0 and j + 6 < len(au):
        if au[j + 3] & 0x1F == 7:
            return "avc1." + au[j + 4:j + 7].hex().upper()
        i = j + 3
    raise AssertionError("the key frame's access unit has no SPS")


class _BlankPage(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802  (http.server's name)
        body = b"<!doctype html><title>webcodecs</title>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@contextmanager
def blank_page_url():
    """http://127.0.0.1:PORT/: a blank page in a secure context (localhost), where WebCodecs exists."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _BlankPage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def headless_chromium(chromium: str, user_data, url: str):
    """Debian's chromium, headless, on ``url``, with a DevTools port (its own process group)."""
    browser = subprocess.Popen([chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                                "--no-first-run", "--remote-debugging-port=0", f"--user-data-dir={user_data}", url],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        yield browser
    finally:
        try:
            os.killpg(browser.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            browser.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(browser.pid, signal.SIGKILL)
            browser.wait(10)


async def evaluate_in_page(user_data, expressions: list[str]) -> list:
    """The values of ``expressions`` (awaited) in the page, once it is loaded in a secure context."""
    dt = await DevTools.open(user_data)
    try:
        await dt.wait("document.readyState === 'complete' && isSecureContext && location.protocol === 'http:'",
                      60, "the blank page")
        return [await dt.eval(e) for e in expressions]
    finally:
        await dt.close()


@pytest.mark.timeout(300)
def test_webcodecs_decodes_every_frame_of_both_foxglove_video_topics(tmp_path, capsys):
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium is not installed (apt-get install chromium; `make test` and .ci/run install it)",
                    pytrace=False)
    x = written_by_cli(tmp_path, capsys)   # standard profile: RGB and thermal as H.264
    assert [v.modality for v in x.videos.values()] == ["rgb", "thermal"]
    _, topics = read_mcap(x.path)
    jobs, expect = [], []
    for topic, v in x.videos.items():
        msgs = [decoded for _, _, _, decoded in topics[topic]]
        assert {m.format for m in msgs} == {"h264"}
        units = [bytes(m.data) for m in msgs]
        ts = [(m.timestamp.sec * 10**9 + m.timestamp.nanosec) // 1000 for m in msgs]  # microseconds
        h, w = v.size
        coded = (w + w % 2, h + h % 2)
        codec = avc_codec_string(units[0])
        for start in [i for i, k in enumerate(x.keys) if k]:   # from the first key frame and a later one
            jobs.append({"codec": codec, "width": coded[0], "height": coded[1], "keys": x.keys[start:],
                         "ts": ts[start:], "units": [base64.b64encode(u).decode() for u in units[start:]]})
            expect.append((topic, codec, start, coded, ts[start:], pyav_lumas(units[start:])))
    assert len(jobs) == 2 * len([k for k in x.keys if k]) and N > GOP

    user_data = tmp_path / "chromium"
    with blank_page_url() as url, headless_chromium(chromium, user_data, url):
        results = asyncio.run(asyncio.wait_for(
            evaluate_in_page(user_data, [f"({DECODE_JS})({json.dumps(job)})" for job in jobs]), 180))

    for (topic, codec, start, (w, h), ts, lumas), res in zip(expect, results):
        what = f"{topic} from frame {start} ({codec})"
        assert res["api"] == "function" and res["secure"], (what, res)
        assert res["supported"] is True, (what, res)
        assert res["error"] is None and res["state"] == "configured", (what, res)
        frames = res["frames"]
        assert len(frames) == len(ts), (what, res)                  # every chunk decodes: one frame each
        assert [f["ts"] for f in frames] == ts, (what, res)          # in order, none dropped
        # the picture's size (coded may carry decoder padding: libavcodec adds 2 rows for H.264)
        assert {(tuple(f["display"]), tuple(f["visible"])) for f in frames} == {((w, h), (0, 0, w, h))}, (what, res)
        assert all(f["coded"][0] >= w and f["coded"][1] >= h for f in frames), (what, res)
        assert [f["luma"] for f in frames] == lumas, what           # the very pictures PyAV decodes
