"""sample_publisher -> encoder_node -> decoder_node over real DDS, each node its own process,
started from the launch files' node tables with the config/ parameter files (as ros2 launch
would), measured by a separate pipeline_monitor process. Real frames (small, for CI speed)."""
from __future__ import annotations

import re
import sys

import pytest

from conftest import DATA_ROOT, PROCS, read_jsonl, start_launch, wait_for, wait_for_log

pytestmark = pytest.mark.ros

SEQ = DATA_ROOT / "m3svd_seq" / "0111_1716"
W, H = 160, 120
THREADS = 1
# PSNR floors on real frames (160x120 downscaled M3SVD, the default model at its default level):
# set well below what it gives, so that they catch images that are not reconstructions of the input. Exact correctness is
# checked separately: published images are bit-identical to an offline decode of the packets.
RGB_PSNR_FLOOR = 14.0
THERMAL_PSNR_FLOOR = 16.0


def need_data():
    if not (SEQ / "rgb").is_dir():
        pytest.fail(f"test data missing: {SEQ} (../shared/data must sit beside the repository)", pytrace=False)


def start_monitor(ros, tmp_path, keep_packets=False):
    out = tmp_path / "monitor.jsonl"
    mon = ros.start("monitor", [sys.executable, "-m", "mm_compress_ros.ros.monitor", "--out", out]
                    + (["--keep-packets"] if keep_packets else []))
    wait_for_log(mon, "monitor ready", 60, ros)
    return mon, out


def records(path, kind, modality=None):
    return [r for r in read_jsonl(path) if r["kind"] == kind and (modality is None or r.get("modality") == modality)]


def last_diag(path, suffix):
    diags = [r for r in records(path, "diagnostics") if r["name"].endswith(suffix)]
    return diags[-1]["values"] if diags else None


def sample_params(count, rate, **extra):
    p = {"count": count, "rate": rate, "width": W, "height": H, "loop": True,
         "wait_for_subscribers": 2, "wait_timeout": 60.0}
    p.update(extra)
    return p


def wait_until_drained(out, timeout, quiet=4.0):
    """Until the number of decoded images has not changed for ``quiet`` seconds."""
    import time

    last, since = -1, time.monotonic()
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        n = len(records(out, "decoded")) + len(records(out, "encoded"))
        if n != last:
            last, since = n, time.monotonic()
        elif time.monotonic() - since > quiet:
            return
        time.sleep(0.2)


def offline_decode(encoded):
    """Decode the packets the monitor saw with the codec API in this process: what the decoder
    node publishes must be exactly this (per stamp: sha256 of the RGB and thermal image bytes)."""
    import base64
    import hashlib

    import numpy as np

    from mm_compress_ros.codec.packet import read_header
    from mm_compress_ros.codec.stream import StreamDecoder
    from mm_compress_ros.codec.zoo import decoding_model

    encoded = sorted(encoded, key=lambda e: e["sequence"])
    dec = StreamDecoder(decoding_model(read_header(base64.b64decode(encoded[0]["data_b64"])), device="cpu"))
    out = {}
    for e in encoded:
        pair = dec.decode(base64.b64decode(e["data_b64"]))
        assert pair is not None
        th = pair.thermal.astype(pair.thermal.dtype.newbyteorder("<"))
        out[e["stamp"]] = (hashlib.sha256(np.ascontiguousarray(pair.rgb).tobytes()).hexdigest(),
                           hashlib.sha256(np.ascontiguousarray(th).tobytes()).hexdigest())
    return out


def test_pipeline_launch_end_to_end_on_real_frames(ros, tmp_path):
    need_data()
    mon, out = start_monitor(ros, tmp_path, keep_packets=True)
    count = 12
    params = {
        "sample_publisher": sample_params(count, 2.0, rgb_encoding="bgr8", thermal_encoding="mono16"),
        "encoder_node": {"torch_threads": THREADS, "gop": 5},
        "decoder_node": {"torch_threads": THREADS},
    }
    args = {"path": str(SEQ), "device": "cpu"}
    nodes = start_launch(ros, "pipeline.launch.py", args, params, only=("encoder_node", "decoder_node"))
    for n in nodes.values():
        wait_for_log(n, "loaded in", 120, ros)
    sample = start_launch(ros, "pipeline.launch.py", args, params, only=("sample_publisher",))["sample_publisher"]
    try:
        assert sample.wait(timeout=120) == 0
        wait_until_drained(out, 90)
    finally:
        ros.stop_all()
    logs = ros.logs()

    raw_rgb = {r["stamp"]: r for r in records(out, "raw", "rgb")}
    raw_th = {r["stamp"]: r for r in records(out, "raw", "thermal")}
    assert len(raw_rgb) == count, logs
    enc = records(out, "encoded")
    dec_rgb = records(out, "decoded", "rgb")
    dec_th = records(out, "decoded", "thermal")
    enc_diag = last_diag(out, ": encoder")
    assert enc_diag is not None, logs
    drops = int(enc_diag["drops"])

    # The encoder numbers what it publishes: 0, 1, 2, ... without gaps; the first is a key frame.
    seqs = [e["sequence"] for e in enc]
    assert seqs == list(range(len(enc))), seqs
    assert enc[0]["frame_type"] == 0
    assert len(enc) + drops == count and drops <= 2, (len(enc), drops)
    assert sum(e["frame_type"] == 0 for e in enc) >= len(enc) // 5  # gop 5
    for e in enc:
        # Both inputs' stamps and frame_ids travel with the packet.
        assert e["stamp"] in raw_rgb and e["thermal_stamp"] in raw_th
        assert e["frame_id"] == "rgb_optical_frame" and e["thermal_frame_id"] == "thermal_optical_frame"
        assert (e["rgb_encoding"], e["thermal_encoding"]) == ("bgr8", "mono16")
        # the default profile: both cameras standard streams (mono16 thermal: H.265 at 12 bits), middle level
        assert (e["codec"], e["profile"], e["thermal_codec"], e["quality"]) == ("h264+h265", "standard", "h265", 32)
        assert e["sizes"]["rgb"] > 0 and e["sizes"]["thermal"] > 0

    # Every encoded frame is decoded and comes back with its original stamp, frame_id, encoding.
    assert sorted(r["stamp"] for r in dec_rgb) == sorted(e["stamp"] for e in enc), logs
    assert sorted(r["stamp"] for r in dec_th) == sorted(e["thermal_stamp"] for e in enc), logs
    for r in dec_rgb:
        assert (r["frame_id"], r["encoding"], r["width"], r["height"]) == ("rgb_optical_frame", "bgr8", W, H)
        assert r["psnr"] is not None and r["psnr"] >= RGB_PSNR_FLOOR, r
        assert r["latency_ms"] > 0
    for r in dec_th:
        assert (r["frame_id"], r["encoding"], r["width"], r["height"]) == ("thermal_optical_frame", "mono16", W, H)
        assert r["psnr"] is not None and r["psnr"] >= THERMAL_PSNR_FLOOR, r
    dec_diag = last_diag(out, ": decoder")
    assert dec_diag is not None and int(dec_diag["decoded"]) == len(enc)
    assert int(dec_diag["lost"]) == 0 and int(dec_diag["corrupt"]) == 0

    # The images the decoder node published are bit for bit the codec's decode of the packets.
    expected = offline_decode(enc)
    th_by_rgb_stamp = {e["thermal_stamp"]: e["stamp"] for e in enc}
    for r in dec_rgb:
        assert r["data_sha256"] == expected[r["stamp"]][0], r
    for r in dec_th:
        assert r["data_sha256"] == expected[th_by_rgb_stamp[r["stamp"]]][1], r


# Load-dependent over best-effort DDS on 2 shared cores: 2 of 4 fresh-clone rehearsals in session 8
# failed it once each (the monitor missing frames; once no drop counted), and it passed 3 of 3 runs
# alone. One rerun, with every assertion kept; the cause is still open (docs/reliability.md).
@pytest.mark.flaky(reruns=1)
def test_encoder_drops_to_newest_pair_under_overload(ros, tmp_path):
    """Input much faster than encoding: the encoder keeps only the newest pair, counts the drops,
    numbers its output without gaps, and its latency stays bounded (no growing queue)."""
    need_data()
    mon, out = start_monitor(ros, tmp_path)
    count, rate = 60, 30.0
    params = {
        "sample_publisher": sample_params(count, rate),
        # the first design on one thread cannot keep up with 30 Hz (the drops below check it);
        # the default real-time model can, so it would not overload
        "encoder_node": {"torch_threads": THREADS, "diagnostics_period": 0.5, "model": "mmvc",
                         "thermal_codec": "learned"},
    }
    enc_proc = start_launch(ros, "pipeline.launch.py", {"path": str(SEQ)}, params, only=("encoder_node",))["encoder_node"]
    wait_for_log(enc_proc, "loaded in", 120, ros)
    sample = start_launch(ros, "pipeline.launch.py", {"path": str(SEQ)}, params, only=("sample_publisher",))["sample_publisher"]
    try:
        assert sample.wait(timeout=60) == 0
        wait_until_drained(out, 30, quiet=3.0)
    finally:
        ros.stop_all()
    logs = ros.logs()
    raw = records(out, "raw", "rgb")
    enc = records(out, "encoded")
    diag = last_diag(out, ": encoder")
    assert diag is not None, logs
    drops, frames = int(diag["drops"]), int(diag["frames"])
    encode_p95_ms = float(diag["encode_ms_p95"]) or 1000.0

    # the input: every frame published (the publisher's own count); the monitor is one more
    # best-effort subscriber on the 2 cores the overloaded encoder saturates, and may miss a few
    assert f"published {count} frames" in logs, logs
    assert len(raw) >= count - 10, logs
    assert frames == len(enc) >= 2
    assert drops > 0, "the encoder kept up with 30 Hz: no overload happened"
    # Every synchronized pair is either encoded or counted as a drop (nothing queued up unseen).
    # Best-effort input under overload may lose a message in DDS: count what the node received.
    received = min(int(diag["rgb_received"]), int(diag["thermal_received"]))
    assert received >= count - 6, diag
    assert received - 2 <= frames + drops + int(diag["stale"]) <= received
    assert [e["sequence"] for e in enc] == list(range(len(enc)))
    # Bounded latency: at most about one wait in the slot plus one encode; a FIFO would let it
    # grow to (frames * encode time - publishing time), several seconds here.
    latencies = [(e["recv_ns"] - e["stamp"]) / 1e6 for e in enc]
    bound = 3 * encode_p95_ms + 1000.0
    assert max(latencies) < bound, (latencies, bound)
    # Keep-newest: the last pair published is the last one encoded.
    assert enc[-1]["stamp"] == raw[-1]["stamp"]
    # Drops are reported in the diagnostics as a warning and in the log.
    assert any(int(r["level"]) == 1 and "dropping" in r["message"] for r in records(out, "diagnostics")), logs
    logged = [int(m) for m in re.findall(r"\| drops (\d+) \|", enc_proc.output())]
    assert logged and logged[-1] == drops, enc_proc.output()[-2000:]


def test_decoder_recovers_after_lost_and_corrupt_packets(ros, tmp_path):
    """encoder.launch.py -> lossy link (drops two packets, corrupts one) -> decoder.launch.py:
    the decoder publishes nothing between a loss and the next key frame, asks the encoder for a
    key frame (the GOP is too long to bring one) and decodes again from there."""
    need_data()
    mon, out = start_monitor(ros, tmp_path, keep_packets=True)
    relay_out = tmp_path / "relay.jsonl"
    drop, corrupt = (3, 4), 11
    relay = ros.start("relay", [sys.executable, PROCS / "lossy_relay.py", relay_out,
                                "--drop", ",".join(map(str, drop)), "--corrupt", str(corrupt)])
    wait_for_log(relay, "relay ready", 60, ros)
    enc = start_launch(ros, "encoder.launch.py", {},
                       {"encoder_node": {"torch_threads": THREADS, "gop": 1000}})["encoder_node"]
    dec = start_launch(ros, "decoder.launch.py", {"encoded_topic": "encoded_lossy"},
                       {"decoder_node": {"torch_threads": THREADS}})["decoder_node"]
    wait_for_log(enc, "loaded in", 120, ros)
    wait_for_log(dec, "loaded in", 120, ros)
    count = 18
    sample = start_launch(ros, "pipeline.launch.py", {"path": str(SEQ)},
                          {"sample_publisher": sample_params(count, 2.0)}, only=("sample_publisher",))["sample_publisher"]
    try:
        assert sample.wait(timeout=120) == 0
        wait_until_drained(out, 90)
    finally:
        ros.stop_all()
    logs = ros.logs()

    encoded = records(out, "encoded")
    by_seq = {e["sequence"]: e for e in encoded}
    assert sorted(by_seq) == list(range(len(encoded))) and len(encoded) >= count - 2, logs
    relayed = {r["sequence"]: r["action"] for r in read_jsonl(relay_out)}
    assert [s for s, a in relayed.items() if a == "drop"] == list(drop)
    assert [s for s, a in relayed.items() if a == "corrupt"] == [corrupt]

    keys = sorted(s for s, e in by_seq.items() if e["frame_type"] == 0)
    # gop 1000: key frames after the start come only from the decoder's requests.
    k1 = min((k for k in keys if k > drop[-1]), default=None)
    k2 = min((k for k in keys if k > corrupt), default=None)
    assert keys[0] == 0 and k1 is not None and k2 is not None, (keys, logs)
    assert k1 < corrupt, (keys, "the key frame after the loss came too late")
    assert "key frame requested (service request)" in enc.output()

    expected = {s for s in by_seq if s < drop[0] or k1 <= s < corrupt or s >= k2}
    decoded_rgb = {r["stamp"] for r in records(out, "decoded", "rgb")}
    decoded_th = {r["stamp"] for r in records(out, "decoded", "thermal")}
    stamp_to_seq = {e["stamp"]: s for s, e in by_seq.items()}
    got = {stamp_to_seq[s] for s in decoded_rgb}
    # Nothing from a lost reference chain is published, everything else is.
    assert got == expected, (sorted(got), sorted(expected), keys)
    assert decoded_th == {by_seq[s]["thermal_stamp"] for s in expected}
    for r in records(out, "decoded"):
        floor = RGB_PSNR_FLOOR if r["modality"] == "rgb" else THERMAL_PSNR_FLOOR
        assert r["psnr"] is not None and r["psnr"] >= floor, r
    # What was published is bit for bit the codec's decode of the intact packets it came from.
    exact = offline_decode([by_seq[q] for q in sorted(expected)])
    for r in records(out, "decoded", "rgb"):
        assert r["data_sha256"] == exact[r["stamp"]][0], r
    diag = last_diag(out, ": decoder")
    assert int(diag["lost"]) == len(drop) and int(diag["corrupt"]) == 1, diag
    assert int(diag["key_requests"]) >= 2


def test_encoder_pairs_9hz_thermal_with_30hz_rgb(ros, tmp_path):
    """A 9 Hz thermal camera against 30 Hz RGB with a trigger offset: the encoder's
    approximate-time synchronizer pairs every thermal frame with an RGB frame within the slop."""
    need_data()
    mon, out = start_monitor(ros, tmp_path)
    slop = 0.02
    params = {
        "sample_publisher": sample_params(60, 30.0, thermal_rate=9.0, thermal_stamp_offset=0.004),
        "encoder_node": {"torch_threads": THREADS, "sync_slop": slop, "sync_queue_size": 10,
                         "diagnostics_period": 0.5},
    }
    enc_proc = start_launch(ros, "pipeline.launch.py", {"path": str(SEQ)}, params, only=("encoder_node",))["encoder_node"]
    wait_for_log(enc_proc, "loaded in", 120, ros)
    sample = start_launch(ros, "pipeline.launch.py", {"path": str(SEQ)}, params, only=("sample_publisher",))["sample_publisher"]
    try:
        assert sample.wait(timeout=60) == 0
        wait_until_drained(out, 30, quiet=3.0)
    finally:
        ros.stop_all()
    logs = ros.logs()
    raw_rgb = {r["stamp"] for r in records(out, "raw", "rgb")}
    raw_th = sorted(r["stamp"] for r in records(out, "raw", "thermal"))
    enc = records(out, "encoded")
    diag = last_diag(out, ": encoder")
    assert diag is not None and enc, logs
    assert len(raw_rgb) >= 55, logs
    duration = (max(raw_rgb) - min(raw_rgb)) / 1e9  # 2 s, or more when frame reading lags
    assert abs(len(raw_th) - 9.0 * duration) <= 3, (len(raw_th), duration)
    for e in enc:
        assert e["stamp"] in raw_rgb and e["thermal_stamp"] in raw_th
        assert abs(e["stamp"] - e["thermal_stamp"]) < slop * 1e9
    th_stamps = [e["thermal_stamp"] for e in enc]
    assert th_stamps == sorted(set(th_stamps))  # each thermal frame used once, in time order
    pairs = int(diag["frames"]) + int(diag["drops"]) + int(diag["stale"])
    assert pairs >= 0.8 * len(raw_th), (pairs, len(raw_th), diag)
    # Unpaired RGB frames (about 2 of every 3) leave the synchronizer's bounded queue (at most 10
    # stay queued). Best-effort input may lose a message in DDS: count what the node received.
    rgb_received = int(diag["rgb_received"])
    assert len(raw_rgb) - 6 <= rgb_received <= len(raw_rgb), (rgb_received, len(raw_rgb))
    assert int(diag["sync_evicted"]) >= rgb_received - pairs - 10, (rgb_received, pairs, diag)
