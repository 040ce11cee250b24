"""``mm-compress record``: records live ROS 2 topics into a rosbag2 bag (MCAP by default) with
rclpy and rosbags, for machines without rosbag2.

Topics are subscribed when their first publisher is discovered (before or during the recording),
with the QoS the publishers offer (best effort if any publisher is best effort, transient local if all are), and
stored as the serialized CDR bytes received, with the receive time as record time, the type's
complete definition (from its .msg files, as rosbag2 stores it) and its RIHS01 hash (the
publisher's). Recording stops on SIGINT/SIGTERM or after ``--duration``; the bag is then closed
(index, metadata.yaml) and moved to its name. rclpy is imported only when a recording starts.
"""
from __future__ import annotations

import importlib
import signal
import sys
import threading
import time
from pathlib import Path

from .bagio import BagError, bag_output
from .types import full_msgdef_from_files, msgdef_and_hash, typestore


class RecordError(BagError):
    """Recording cannot start or complete as asked (one-line message)."""


def _msg_class(typename: str):
    pkg, kind, name = typename.split("/")
    return getattr(importlib.import_module(f"{pkg}.{kind}"), name)


def _definition(typename: str, publisher_hash: str | None) -> tuple[str, str]:
    store = typestore()
    if typename in store.fielddefs:
        text, ours = msgdef_and_hash(typename, store)
        return text, (publisher_hash or ours)
    text = full_msgdef_from_files(typename) or ""
    return text, publisher_hash or ""


def record(out: str | Path, topics: list[str], *, duration: float = 0.0, storage: str = "mcap",
           discovery_timeout: float = 0.0, quiet: bool = False, node_name: str = "mm_compress_record") -> dict:
    import rclpy
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
    from rclpy.signals import SignalHandlerOptions

    wanted = [t if t.startswith("/") else "/" + t for t in topics]
    if len(set(wanted)) != len(wanted):
        raise RecordError("a topic is given twice")
    stop = threading.Event()
    reason = {"why": "duration"}

    def on_signal(signum, _frame):
        reason["why"] = signal.Signals(signum).name
        stop.set()
        signal.signal(signum, signal.SIG_DFL if signum != signal.SIGINT else signal.default_int_handler)

    def log(text: str) -> None:
        if not quiet:
            print(f"record: {text}", file=sys.stderr, flush=True)

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node(node_name)
    counts = {t: 0 for t in wanted}
    subs: dict = {}
    skipped: dict[str, str] = {}
    t0 = time.monotonic()
    try:
        with bag_output(out, storage) as w:
            conns = {}

            def subscribe(topic: str, typename: str):
                try:
                    cls = _msg_class(typename)
                except (ImportError, AttributeError, ValueError):
                    skipped[topic] = f"message type {typename} is not importable here"
                    log(f"cannot record {topic}: {skipped[topic]}")
                    return
                pubs = node.get_publishers_info_by_topic(topic)
                if not pubs:  # known only from subscribers so far: wait for a publisher's QoS
                    return
                best_effort = any(p.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT for p in pubs)
                latched = bool(pubs) and all(p.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL
                                             for p in pubs)
                hashes = {str(p.topic_type_hash) for p in pubs if getattr(p.topic_type_hash, "version", -1) > 0}
                text, digest = _definition(typename, sorted(hashes)[0] if len(hashes) == 1 else None)
                if not digest:
                    skipped[topic] = f"no type hash known for {typename}"
                    log(f"cannot record {topic}: {skipped[topic]}")
                    return
                conns[topic] = w.writer.add_connection(topic, typename, msgdef=text, rihs01=digest)
                qos = QoSProfile(
                    history=HistoryPolicy.KEEP_LAST, depth=100,
                    reliability=ReliabilityPolicy.BEST_EFFORT if best_effort else ReliabilityPolicy.RELIABLE,
                    durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)
                conn = conns[topic]

                def on_msg(data: bytes, conn=conn, topic=topic):
                    w.write(conn, node.get_clock().now().nanoseconds, data)
                    counts[topic] += 1

                subs[topic] = node.create_subscription(cls, topic, on_msg, qos, raw=True)
                log(f"recording {topic} ({typename}, {'best effort' if best_effort else 'reliable'})")

            next_poll = next_status = 0.0
            log(f"waiting for {', '.join(wanted)}; Ctrl-C stops" + (f", or after {duration:g} s" if duration else ""))
            while not stop.is_set():
                now = time.monotonic()
                if duration and now - t0 >= duration:
                    break
                if now >= next_poll and len(subs) + len(skipped) < len(wanted):
                    names = dict(node.get_topic_names_and_types())
                    for t in wanted:
                        if t not in subs and t not in skipped and names.get(t):
                            subscribe(t, names[t][0])
                    next_poll = now + 0.25
                    missing = [t for t in wanted if t not in subs and t not in skipped]
                    if missing and discovery_timeout and now - t0 > discovery_timeout:
                        raise RecordError(f"no publisher of {', '.join(missing)} after {discovery_timeout:g} s")
                if not quiet and now >= next_status:
                    if next_status:
                        log(", ".join(f"{t} {n}" for t, n in counts.items()) + f" ({now - t0:.0f} s)")
                    next_status = now + 5.0
                rclpy.spin_once(node, timeout_sec=0.05)
            for topic, sub in list(subs.items()):  # nothing arrives while the bag is closed
                node.destroy_subscription(sub)
            w.set_custom("mm_compress_ros.recorded_by", "mm-compress record")
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        for s, h in old.items():
            signal.signal(s, h)
    never = [t for t in wanted if t not in subs]
    if never:
        log(f"never recorded: {', '.join(never)}")
    return {"out": str(out), "storage": storage, "seconds": round(time.monotonic() - t0, 2),
            "stopped_by": reason["why"], "messages": counts, "not_recorded": never, "skipped": skipped}
