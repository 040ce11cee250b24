"""Clean shutdowns (issue 22): Ctrl-C (SIGINT) or SIGTERM ends each node executable with exit
status 0, its final statistics line, and no error in its output: no ``Traceback``, no
``[ERROR]`` log line, no ``RCLError`` (``context is invalid``: a worker thread publishing after
the signal shut the ROS context down), no ``ExternalShutdownException``.

The four installed executables run as one pipeline (sample_publisher -> encoder_node ->
decoder_node -> viewer_node, real frames, each from its launch file), and each is stopped while
frames are still flowing through it: the decoder and the viewer while the encoder sends, the
encoder while images come in, the publisher last."""
from __future__ import annotations

import re
import signal
import sys
import time

import pytest

from conftest import DATA_ROOT, start_launch, wait_for, wait_for_log

pytestmark = pytest.mark.ros
SEQ = DATA_ROOT / "m3svd_seq" / "0111_1716"
BAD = ("Traceback", "[ERROR]", "RCLError", "ExternalShutdownException", "context is invalid")


def _encoded(proc) -> int:
    counts = [int(n) for n in re.findall(r"encoded (\d+) \(", proc.output())]
    return max(counts, default=0)


def _decoded(proc) -> int:
    counts = [int(n) for n in re.findall(r"decoded (\d+)/", proc.output())]
    return max(counts, default=0)


def _stop(proc, sig, timeout: float = 20.0) -> tuple[int | None, float]:
    t0 = time.monotonic()
    proc.proc.send_signal(sig)
    try:
        rc = proc.wait(timeout=timeout)
    except Exception:  # noqa: BLE001  (still running: the fixture kills it; rc None fails the test)
        rc = None
    return rc, time.monotonic() - t0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_nodes_end_cleanly_on_a_signal(ros, sig):
    if not SEQ.is_dir():
        pytest.fail(f"test data missing: {SEQ}", pytrace=False)
    params = {"encoder_node": {"torch_threads": 1, "device": "cpu", "log_period": 0.5},
              "decoder_node": {"torch_threads": 1, "device": "cpu", "log_period": 0.5},
              "sample_publisher": {"count": 0, "rate": 10.0, "width": 640, "height": 480,
                                   "wait_for_subscribers": 1}}
    nodes = start_launch(ros, "pipeline.launch.py", {"path": str(SEQ), "device": "cpu"}, params,
                         only=("encoder_node", "decoder_node"))
    viewer = start_launch(ros, "viewer.launch.py", {"port": 0}, {"viewer_node": {"log_period": 0.5}})["viewer_node"]
    enc, dec = nodes["encoder_node"], nodes["decoder_node"]
    wait_for_log(enc, "loaded in", 120, ros)
    wait_for_log(dec, "[decoder_node]: decoded ", 120, ros)   # its statistics line: spinning
    wait_for_log(viewer, "viewer at http", 60, ros)
    sample = start_launch(ros, "pipeline.launch.py", {"path": str(SEQ)}, params,
                          only=("sample_publisher",))["sample_publisher"]
    try:
        wait_for(lambda: _decoded(dec) >= 3 and _encoded(enc) >= 4, 90, what="frames through the pipeline")
    except TimeoutError:
        pytest.fail(f"no frames through the pipeline\n{ros.logs()}", pytrace=False)

    results = {}
    for proc in (dec, viewer, enc, sample):   # each stopped while frames still reach it
        results[proc.name] = _stop(proc, sig)
        time.sleep(0.5)
    logs = ros.logs()
    for name, (rc, took) in results.items():
        assert rc == 0, (name, rc, logs)
        assert took < 15, (name, took)
    for proc in (dec, viewer, enc, sample):
        out = proc.output()
        bad = [line for line in out.splitlines() if any(b in line for b in BAD)]
        assert not bad, (proc.name, bad, out[-3000:])
    for proc in (dec, viewer, enc):
        assert f"[{proc.name}] final: " in proc.output(), (proc.name, proc.output()[-2000:])
