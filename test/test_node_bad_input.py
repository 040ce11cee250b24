"""Bad input at the encoder node, over real DDS: a publisher process (test/procs/bad_input_pub.py)
sends RGB images for 2.5 s before the first thermal image, unsupported encodings, truncated image
data, a size change mid-stream, RGB without thermal for 3.5 s, a pair stamped before the last
encoded one and a clock reset (stamps 20 s back) to the real encoder_node;
the real decoder_node decodes; pipeline_monitor records what is on the wire. The encoder must stay
up, say what happened in its log, and resume encoding after each case; the decoded images follow
the size change. docs/reliability.md, "Bad input at the nodes"."""
from __future__ import annotations

import re
import sys
import time

import pytest

from conftest import PROCS, read_jsonl, start_launch, wait_for_log

pytestmark = pytest.mark.ros


def test_encoder_survives_and_reports_bad_input(ros, tmp_path):
    out = tmp_path / "monitor.jsonl"
    # The monitor decodes raw images for PSNR: keep it off the raw topics (bayer / 32FC1 there).
    mon = ros.start("monitor", [sys.executable, "-m", "mm_compress_ros.ros.monitor", "--out", out,
                                "--ros-args", "-r", "rgb/image:=unused_rgb", "-r", "thermal/image:=unused_th"])
    params = {"encoder_node": {"torch_threads": 1, "gop": 1000, "diagnostics_period": 0.5,
                               "key_frame_on_new_subscriber": False, "device": "cpu"},
              "decoder_node": {"torch_threads": 1, "device": "cpu"}}
    nodes = start_launch(ros, "pipeline.launch.py", {"device": "cpu"}, params,
                         only=("encoder_node", "decoder_node"))
    enc_proc, dec_proc = nodes["encoder_node"], nodes["decoder_node"]
    wait_for_log(mon, "monitor ready", 60, ros)
    wait_for_log(enc_proc, "loaded in", 120, ros)
    wait_for_log(dec_proc, "loaded in", 120, ros)
    sent_path = tmp_path / "sent.jsonl"
    pub = ros.python("bad_input_pub", PROCS / "bad_input_pub.py", sent_path, 4.0)
    try:
        assert pub.wait(timeout=90) == 0, ros.logs()
        time.sleep(3.0)  # the last pairs' encode + decode
        alive = enc_proc.poll() is None and dec_proc.poll() is None
    finally:
        ros.stop_all()
    logs = ros.logs()
    assert alive, logs
    enc_log = enc_proc.output()
    assert "final: encoded" in enc_log, logs  # a clean shutdown after all of it

    sent = read_jsonl(sent_path)
    phase_of = {s["stamp"]: s["phase"] for s in sent if s["thermal"]}
    recs = read_jsonl(out)
    enc = [r for r in recs if r["kind"] == "encoded"]
    assert enc, logs
    phases = [phase_of.get(e["stamp"], "?") for e in enc]
    by_phase: dict[str, list] = {}
    for e, ph in zip(enc, phases):
        by_phase.setdefault(ph, []).append(e)
    assert "?" not in by_phase, (phases, logs)
    # The encoder numbers its output without gaps whatever came in between.
    assert [e["sequence"] for e in enc] == list(range(len(enc))), phases

    # Thermal missing before its first image: said, and the first thermal image is taken in stride.
    assert "no thermal image received yet" in enc_log, enc_log[-3000:]

    # Unsupported encodings: nothing encoded, a clear log line, counted; encoding resumes after.
    assert "unsupported" not in by_phase, phases
    assert "unsupported encodings bayer_rggb8/32FC1" in enc_log, enc_log[-3000:]
    assert by_phase.get("normal") and by_phase.get("after_bad"), phases
    # The last encoded pair is more than 1 s older (4 skipped pairs, pauses): a key frame.
    assert by_phase["after_bad"][0]["frame_type"] == 0

    # Image data shorter than step * height: skipped, counted as an error, said in the log.
    assert "truncated" not in by_phase, phases
    assert "encoding failed: ValueError: image data has 30720 bytes, expected step*height = 61440" in enc_log, \
        enc_log[-3000:]

    # Size change: the first frame at the new size is a key frame carrying the new size, said in
    # the log; every later frame is 96x64.
    resized = by_phase.get("resized")
    assert resized, phases
    assert resized[0]["frame_type"] == 0, [e["frame_type"] for e in resized]
    assert all(e["rgb_size"] == [64, 96] and e["thermal_size"] == [64, 96] for e in resized), resized
    assert "input changed from rgb 160x128 rgb8, thermal 160x128 mono8 to rgb 96x64 rgb8" in enc_log, enc_log[-3000:]

    # RGB without thermal for 3.5 s: nothing from that phase encoded, a warning while it lasts,
    # then frames resume with a key frame (capture stamps jumped > 1 s).
    assert "no_thermal" not in by_phase, phases
    assert "no thermal image for" in enc_log and "nothing is encoded" in enc_log, enc_log[-3000:]
    assert "thermal images again after" in enc_log, enc_log[-3000:]
    resumed = by_phase.get("resumed")
    assert resumed and resumed[0]["frame_type"] == 0, phases
    assert "s ahead of the last encoded pair: key frame" in enc_log

    # A pair older than the last encoded one (0.3 s back): skipped as stale, said in the log.
    assert "stale" not in by_phase, phases
    assert "capture stamps went back 300 ms" in enc_log, enc_log[-3000:]

    # A clock reset (stamps 20 s back): the synchronizer drops what it queued before it, the
    # stream restarts with a key frame, and the reset stamps are encoded.
    back = by_phase.get("clock_back")
    assert back and len(back) >= 3 and back[0]["frame_type"] == 0, phases
    assert re.search(r"rgb stamps went back 1[6-9]\.\d s \(clock reset\?\)", enc_log), enc_log[-3000:]
    assert re.search(r"thermal stamps went back 1[6-9]\.\d s \(clock reset\?\)", enc_log), enc_log[-3000:]
    assert "(clock reset?): stream restarted with a key frame" in enc_log

    diags = [r for r in recs if r["kind"] == "diagnostics" and r["name"].endswith(": encoder")]
    final = diags[-1]["values"]
    assert int(final["unsupported"]) >= 1 and int(final["stale"]) == 1, final
    assert int(final["clock_resets"]) == 1 and int(final["errors"]) >= 1, final
    # /diagnostics: ERROR while unsupported input comes, OK again once it is gone.
    assert any(int(r["level"]) == 2 and "unsupported input" in r["message"] for r in diags), diags
    assert int(diags[-1]["level"]) == 0, diags[-1]

    # The decoder decoded every frame (reliable link, no loss) and its output follows the size.
    dec = {r["stamp"]: r for r in recs if r["kind"] == "decoded" and r["modality"] == "rgb"}
    dec_th = {r["stamp"] for r in recs if r["kind"] == "decoded" and r["modality"] == "thermal"}
    assert set(dec) == {e["stamp"] for e in enc}, (sorted(set(dec) ^ {e["stamp"] for e in enc}), logs)
    assert dec_th == {e["thermal_stamp"] for e in enc}
    for e, ph in zip(enc, phases):
        w, h = (160, 128) if ph in ("normal", "after_bad") else (96, 64)
        assert (dec[e["stamp"]]["width"], dec[e["stamp"]]["height"]) == (w, h), (ph, dec[e["stamp"]])
