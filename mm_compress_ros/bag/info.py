"""``mm-compress bag info``: per-topic message counts and sizes, the bitrate over time, and for
EncodedFrame topics the key frames, frame sizes and sequence gaps (packet headers only: no
network runs)."""
from __future__ import annotations

from collections import defaultdict

from .bagio import iter_messages, open_reader
from .types import ENCODED_FRAME, typestore


def bag_info(path, bin_s: float = 1.0) -> dict:
    from ..codec.packet import PacketError, read_header

    if not bin_s > 0:
        raise ValueError("bin must be positive")
    store = typestore()
    reader = open_reader(path)
    try:
        conns = {c.id: c for c in reader.connections}
        start = reader.start_time if reader.message_count else 0
        bin_ns = int(bin_s * 1e9)
        topics: dict[str, dict] = {}
        bins: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        enc: dict[str, dict] = {}
        for conn, ts, raw in iter_messages(reader, path=path):
            t = topics.setdefault(conn.topic, {"topic": conn.topic, "type": conn.msgtype, "count": 0,
                                               "bytes": 0, "first_ns": ts, "last_ns": ts})
            t["count"] += 1
            t["bytes"] += len(raw)
            t["first_ns"], t["last_ns"] = min(t["first_ns"], ts), max(t["last_ns"], ts)
            b = (ts - start) // bin_ns
            bins[conn.topic][b] += len(raw)
            if conn.msgtype != ENCODED_FRAME:
                continue
            e = enc.setdefault(conn.topic, {"frames": 0, "key_frames": 0, "key_sequences": [],
                                            "key_bytes": 0, "predicted_bytes": 0, "packet_bytes": 0,
                                            "sequence_gaps": 0, "lost": 0, "bad_packets": 0,
                                            "per_bin": defaultdict(lambda: [0, 0, 0]), "_last": None})
            msg = store.deserialize_cdr(raw, ENCODED_FRAME)
            n = int(msg.data.size)
            e["frames"] += 1
            e["packet_bytes"] += n
            pb = e["per_bin"][b]
            pb[0] += n
            pb[1] += 1
            key = msg.frame_type == 0
            if key:
                e["key_frames"] += 1
                e["key_sequences"].append(int(msg.sequence))
                e["key_bytes"] += n
                pb[2] += 1
            else:
                e["predicted_bytes"] += n
            if e["_last"] is not None and msg.sequence != e["_last"] + 1:
                e["sequence_gaps"] += 1
                if msg.sequence > e["_last"]:
                    e["lost"] += int(msg.sequence - e["_last"] - 1)
            e["_last"] = int(msg.sequence)
            if "model" not in e:
                try:
                    h = read_header(msg.data.tobytes())
                    e.update(model=h.model_id, weights=h.model_hash.hex(), direction=h.direction,
                             profile=h.profile, reference_codec=h.reference_codec, thermal_codec=h.thermal_codec,
                             quality=h.quality, rgb=f"{h.rgb_size[1]}x{h.rgb_size[0]} {msg.rgb_encoding}",
                             thermal=f"{h.thermal_size[1]}x{h.thermal_size[0]} {msg.thermal_encoding}",
                             rgb_frame_id=msg.header.frame_id, thermal_frame_id=msg.thermal_frame_id)
                except PacketError as exc:
                    e["bad_packets"] += 1
                    e["first_error"] = str(exc)
        duration_ns = reader.duration if reader.message_count else 0
        for c in conns.values():  # topics without messages
            topics.setdefault(c.topic, {"topic": c.topic, "type": c.msgtype, "count": 0, "bytes": 0,
                                        "first_ns": None, "last_ns": None})
        out_topics = []
        for name in sorted(topics):
            t = topics[name]
            span = (t["last_ns"] - t["first_ns"]) if t["count"] > 1 else 0
            t["rate_hz"] = round((t["count"] - 1) / (span / 1e9), 3) if span > 0 else None
            t["kbps"] = round(t["bytes"] * 8 / (duration_ns / 1e9) / 1e3, 1) if duration_ns > 0 else None
            t["bitrate_kbps"] = [round(bins[name].get(i, 0) * 8 / bin_s / 1e3, 1)
                                 for i in range(int(duration_ns // bin_ns) + 1)] if t["count"] else []
            if name in enc:
                e = enc[name]
                e.pop("_last")
                per_bin = e.pop("per_bin")
                e["timeline"] = [{"t_s": round(i * bin_s, 3), "kbps": round(v[0] * 8 / bin_s / 1e3, 1),
                                  "frames": v[1], "key_frames": v[2]}
                                 for i in range(int(duration_ns // bin_ns) + 1) for v in [per_bin.get(i, [0, 0, 0])]]
                pk = e["frames"] - e["key_frames"]
                e["mean_key_bytes"] = round(e["key_bytes"] / e["key_frames"]) if e["key_frames"] else None
                e["mean_predicted_bytes"] = round(e["predicted_bytes"] / pk) if pk else None
                e["kbps"] = round(e["packet_bytes"] * 8 / (duration_ns / 1e9) / 1e3, 1) if duration_ns > 0 else None
                t["encoded"] = e
            out_topics.append(t)
        return {"bag": str(path), "storage": _storage(reader), "messages": reader.message_count,
                "start_ns": start, "duration_s": round(duration_ns / 1e9, 3), "bin_s": bin_s,
                "bytes": sum(t["bytes"] for t in out_topics), "topics": out_topics}
    finally:
        reader.close()


def _storage(reader) -> str:
    from pathlib import Path

    path = Path(reader.path)
    names = [p.name for p in path.iterdir()] if path.is_dir() else [path.name]
    if any(n.endswith((".mcap", ".mcap.zstd")) for n in names):
        return "mcap"
    if any(n.endswith((".db3", ".db3.zstd")) for n in names):
        return "sqlite3"
    return "unknown"


def format_info(info: dict) -> str:
    lines = [f"bag       {info['bag']} ({info['storage']})",
             f"messages  {info['messages']} in {info['duration_s']:.3f} s, {info['bytes'] / 1e6:.3f} MB", ""]
    w = max([len(t["topic"]) for t in info["topics"]] + [5])
    lines.append(f"{'topic':<{w}}  {'type':<34} {'count':>6} {'MB':>9} {'Hz':>7} {'kbit/s':>10}")
    for t in info["topics"]:
        hz = f"{t['rate_hz']:.2f}" if t["rate_hz"] else "-"
        kb = f"{t['kbps']:.1f}" if t["kbps"] is not None else "-"
        lines.append(f"{t['topic']:<{w}}  {t['type']:<34} {t['count']:>6} {t['bytes'] / 1e6:>9.3f} {hz:>7} {kb:>10}")
    for t in info["topics"]:
        e = t.get("encoded")
        if not e:
            continue
        lines += ["", f"{t['topic']}: {e['frames']} frames, {e['key_frames']} key "
                      f"(sequences {_ranges(e['key_sequences'])})"]
        if "model" in e:
            codec = (f"model {e['model']} ({e['direction']}, weights {e['weights']})" if e["model"] else
                     f"profile {e['profile']}: RGB {e['reference_codec']}, thermal {e['thermal_codec']}")
            lines.append(f"  {codec}, quality {e['quality']}, "
                         f"RGB {e['rgb']} [{e['rgb_frame_id']}], thermal {e['thermal']} [{e['thermal_frame_id']}]")
        lines.append(f"  mean bytes: key {e['mean_key_bytes']}, predicted {e['mean_predicted_bytes']}; "
                     f"sequence gaps {e['sequence_gaps']} ({e['lost']} lost)")
        lines.append(f"  bitrate over time ({info['bin_s']:g} s bins):")
        lines.append(f"  {'t [s]':>8} {'kbit/s':>10} {'frames':>7} {'key':>4}")
        for r in e["timeline"]:
            lines.append(f"  {r['t_s']:>8.2f} {r['kbps']:>10.1f} {r['frames']:>7} {r['key_frames']:>4}")
    return "\n".join(lines)


def _ranges(seqs: list[int], limit: int = 20) -> str:
    s = ", ".join(map(str, seqs[:limit]))
    return s + (f", ... ({len(seqs)} in all)" if len(seqs) > limit else "") if seqs else "none"
