"""Unit tests of the approximate-time synchronizer (message_filters ApproximateTimeSynchronizer
semantics), pure Python, no ROS."""
import random
import subprocess
import sys
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mm_compress_ros.link.synchronizer import ApproximateTimeSynchronizer

MS = 1_000_000
S = 1_000_000_000


class Msg:
    """A stand-in payload: the synchronizer never looks inside messages."""

    def __init__(self, topic, stamp_ns):
        self.topic, self.stamp = topic, stamp_ns

    def __repr__(self):
        return f"{self.topic}@{self.stamp / MS:.1f}ms"


def collect(sync):
    out = []
    sync.register_callback(lambda *m: out.append(m))
    return out


def feed(sync, events):
    """events: iterable of (input index, stamp_ns)."""
    for i, s in events:
        sync.add(i, s, Msg(i, s))


# --- basic behaviour -------------------------------------------------------------------------

def test_equal_stamps_pair_up_immediately():
    sync = ApproximateTimeSynchronizer(2, queue_size=1, slop=0.1)
    out = collect(sync)
    for t in range(10):
        a, b = Msg(0, t * S), Msg(1, t * S)
        assert sync.add(0, t * S, a) == []
        assert out == [] if t == 0 else len(out) == t
        emitted = sync.add(1, t * S, b)
        assert emitted == [(a, b)]
        assert out[-1] == (a, b)
    assert sync.stats.emitted == 10 and sync.stats.evicted == 0


def test_output_is_in_input_order_whoever_arrives_last():
    sync = ApproximateTimeSynchronizer(2, queue_size=5, slop=0.05)
    a, b = Msg("rgb", 0), Msg("th", 10 * MS)
    assert sync.add(1, 10 * MS, b) == []
    assert sync.add(0, 0, a) == [(a, b)]


def test_slop_is_strict():
    sync = ApproximateTimeSynchronizer(2, queue_size=5, slop=0.010)
    out = collect(sync)
    feed(sync, [(0, 0), (1, 10 * MS)])          # exactly slop apart: not synchronized
    assert out == []
    feed(sync, [(1, 10 * MS - 1)])              # 1 ns closer: synchronized with the rgb at 0
    assert len(out) == 1 and out[0][0].stamp == 0 and out[0][1].stamp == 10 * MS - 1


def test_closest_candidate_wins_and_messages_are_used_once():
    sync = ApproximateTimeSynchronizer(2, queue_size=10, slop=0.05)
    out = collect(sync)
    feed(sync, [(0, 0), (0, 30 * MS), (0, 60 * MS)])
    feed(sync, [(1, 35 * MS)])
    assert [(a.stamp, b.stamp) for a, b in out] == [(30 * MS, 35 * MS)]
    assert sync.queued(0) == [0, 60 * MS]
    feed(sync, [(1, 36 * MS)])  # 30ms is gone; 60 (24ms) beats 0 (36ms)
    assert [(a.stamp, b.stamp) for a, b in out][-1] == (60 * MS, 36 * MS)
    assert sync.queued(0) == [0] and sync.queued(1) == []


def test_ties_go_to_the_earlier_queued_message():
    sync = ApproximateTimeSynchronizer(2, queue_size=10, slop=0.05)
    out = collect(sync)
    feed(sync, [(0, 20 * MS), (0, 0)])  # both 10ms from 10ms; 20ms was queued first
    feed(sync, [(1, 10 * MS)])
    assert out[0][0].stamp == 20 * MS


def test_greedy_matching_like_message_filters():
    # The partner is chosen among what is queued when the new message arrives, as in
    # message_filters: the thermal at 25ms pairs with rgb 0 because rgb 33ms has not arrived yet.
    sync = ApproximateTimeSynchronizer(2, queue_size=10, slop=0.03)
    out = collect(sync)
    feed(sync, [(0, 0), (1, 25 * MS), (0, 33 * MS)])
    assert [(a.stamp, b.stamp) for a, b in out] == [(0, 25 * MS)]
    assert sync.queued(0) == [33 * MS]


def test_queue_size_evicts_the_oldest_stamp_not_the_oldest_arrival():
    sync = ApproximateTimeSynchronizer(2, queue_size=3, slop=0.001)
    out = collect(sync)
    feed(sync, [(0, 50 * MS), (0, 10 * MS), (0, 30 * MS), (0, 40 * MS)])
    assert sync.queued(0) == [30 * MS, 40 * MS, 50 * MS]
    assert sync.stats.evicted == 1
    feed(sync, [(1, 10 * MS)])  # its partner was evicted
    assert out == []
    feed(sync, [(1, 30 * MS)])
    assert len(out) == 1


def test_late_message_older_than_a_full_queue_is_dropped_without_error():
    sync = ApproximateTimeSynchronizer(2, queue_size=2, slop=0.05)
    out = collect(sync)
    feed(sync, [(1, 0), (0, 100 * MS), (0, 200 * MS)])
    feed(sync, [(0, 1 * MS)])  # evicted immediately (oldest in a full queue)
    assert out == [] and sync.queued(0) == [100 * MS, 200 * MS] and sync.queued(1) == [0]
    assert sync.stats.evicted == 1


def test_same_stamp_replaces_the_queued_message():
    sync = ApproximateTimeSynchronizer(2, queue_size=5, slop=0.05)
    old, new, th = Msg(0, 0), Msg(0, 0), Msg(1, 1 * MS)
    sync.add(0, 0, old)
    sync.add(0, 0, new)
    assert sync.stats.replaced == 1
    assert sync.add(1, 1 * MS, th) == [(new, th)]


def test_three_inputs_need_a_set_spanning_less_than_slop():
    sync = ApproximateTimeSynchronizer(3, queue_size=10, slop=0.02)
    out = collect(sync)
    feed(sync, [(0, 0), (1, 15 * MS)])
    feed(sync, [(2, -10 * MS)])   # within slop of each, but the set spans 25ms: no
    assert out == []
    feed(sync, [(2, 5 * MS)])     # set 0, 15, 5 spans 15ms: yes
    assert [(m[0].stamp, m[1].stamp, m[2].stamp) for m in out] == [(0, 15 * MS, 5 * MS)]
    assert sync.queued(2) == [-10 * MS]


def test_three_inputs_second_best_combination_is_used_when_the_closest_spans_too_much():
    sync = ApproximateTimeSynchronizer(3, queue_size=10, slop=0.02)
    out = collect(sync)
    # For a new input-0 message at 0: closest input-1 is +12, closest input-2 is -12 (span 24).
    feed(sync, [(1, 12 * MS), (1, -15 * MS), (2, -12 * MS)])
    feed(sync, [(0, 0)])
    assert [(m[0].stamp, m[1].stamp, m[2].stamp) for m in out] == [(0, -15 * MS, -12 * MS)]


def test_invalid_arguments():
    with pytest.raises(ValueError):
        ApproximateTimeSynchronizer(1)
    with pytest.raises(ValueError):
        ApproximateTimeSynchronizer(2, queue_size=0)
    with pytest.raises(ValueError):
        ApproximateTimeSynchronizer(2, slop=0)
    with pytest.raises(IndexError):
        ApproximateTimeSynchronizer(2).add(2, 0, None)


# --- realistic streams -----------------------------------------------------------------------

def _stream(rate_hz, duration_s, offset_s, jitter_s, rng):
    n = int(duration_s * rate_hz)
    return [int((offset_s + k / rate_hz + rng.uniform(-jitter_s, jitter_s)) * S) for k in range(n)]


@pytest.mark.parametrize("seed", range(5))
def test_thermal_9hz_against_rgb_30hz(seed):
    """Every thermal frame pairs with the nearest RGB frame; RGB frames in between are evicted."""
    rng = random.Random(seed)
    rgb = _stream(30, 6, 0.0, 0.002, rng)
    th = _stream(9, 6, rng.uniform(0, 0.1), 0.002, rng)
    slop = 0.02
    # Arrival: RGB with 5-15ms transport delay, thermal with 30-60ms (slower camera pipeline).
    events = [(s + rng.randint(5, 15) * MS, 0, s) for s in rgb] + \
             [(s + rng.randint(30, 60) * MS, 1, s) for s in th]
    events.sort()
    sync = ApproximateTimeSynchronizer(2, queue_size=10, slop=slop)
    out = collect(sync)
    for _, i, s in events:
        sync.add(i, s, Msg(i, s))

    pairs = [(a.stamp, b.stamp) for a, b in out]
    matchable = [t for t in th if min(abs(r - t) for r in rgb) < slop * S]
    assert len(pairs) == len(matchable) >= 45
    assert len({a for a, _ in pairs}) == len(pairs)  # each RGB frame used once
    for a, b in pairs:
        assert abs(a - b) < slop * S
        # All RGB frames near a thermal frame had arrived before it: the nearest one was chosen.
        assert abs(a - b) == min(abs(r - b) for r in rgb)
    # Output follows time (both streams arrive in stamp order here).
    assert [b for _, b in pairs] == sorted(b for _, b in pairs)
    assert sync.stats.emitted == len(pairs)
    # RGB frames without a thermal partner were evicted (queue bounded), never emitted.
    assert len(sync.queued(0)) <= 10


@pytest.mark.parametrize("n", range(1, 12))
def test_scrambled_arrival_order_recombines_all_pairs(n):
    rng = random.Random(n)
    stamps = [k * S for k in range(n)]
    seq0 = [Msg(0, s) for s in stamps]
    seq1 = [Msg(1, s) for s in stamps]
    sync = ApproximateTimeSynchronizer(2, queue_size=n, slop=0.1)
    out = collect(sync)
    for m in rng.sample(seq0, n):
        sync.add(0, m.stamp, m)
    assert out == []
    for m in rng.sample(seq1, n):
        sync.add(1, m.stamp, m)
    assert set(out) == set(zip(seq0, seq1))


def test_out_of_order_stamps_within_both_topics_with_offsets():
    rng = random.Random(7)
    base = [k * 100 * MS for k in range(40)]
    events = [(0, s + rng.randint(-3, 3) * MS) for s in base] + [(1, s + rng.randint(-3, 3) * MS) for s in base]
    rng.shuffle(events)  # completely out of order, across and within topics
    sync = ApproximateTimeSynchronizer(2, queue_size=40, slop=0.01)
    out = collect(sync)
    feed(sync, events)
    assert len(out) == 40
    assert all(abs(a.stamp - b.stamp) < 10 * MS for a, b in out)
    assert sorted(round(a.stamp / (100 * MS)) for a, _ in out) == list(range(40))


def test_concurrent_adds_from_two_threads():
    sync = ApproximateTimeSynchronizer(2, queue_size=2000, slop=0.001)
    out = []
    lock = threading.Lock()

    def cb(a, b):
        with lock:
            out.append((a.stamp, b.stamp))

    sync.register_callback(cb)
    n = 2000

    def run(i):
        for k in range(n):
            sync.add(i, k * S, Msg(i, k * S))

    threads = [threading.Thread(target=run, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(out) == [(k * S, k * S) for k in range(n)]
    assert sync.queued(0) == [] and sync.queued(1) == []


def test_callback_may_reenter_add():
    sync = ApproximateTimeSynchronizer(2, queue_size=5, slop=0.05)
    seen = []

    def cb(a, b):
        seen.append((a.stamp, b.stamp))
        if len(seen) == 1:
            sync.add(0, S, Msg(0, S))  # would deadlock if called under the lock

    sync.register_callback(cb)
    feed(sync, [(0, 0), (1, 0)])
    feed(sync, [(1, S)])
    assert seen == [(0, 0), (S, S)]


# --- differential test against an independent brute-force model of the 2-input policy ----------

class ReferenceTwoInput:
    """Straightforward restatement of the 2-input policy: queues are lists of [stamp, msg] in
    first-arrival order; partner = queued message of the other input with the smallest |delta|,
    strictly below slop, earliest-queued on ties."""

    def __init__(self, queue_size, slop_ns):
        self.q = [[], []]
        self.queue_size, self.slop_ns = queue_size, slop_ns

    def add(self, i, s, msg):
        q = self.q[i]
        for entry in q:
            if entry[0] == s:
                entry[1] = msg
                break
        else:
            q.append([s, msg])
        while len(q) > self.queue_size:
            q.remove(min(q, key=lambda e: e[0]))
        mine = next((e for e in q if e[0] == s), None)
        if mine is None:
            return None
        other = self.q[1 - i]
        best = None
        for e in other:
            d = abs(e[0] - s)
            if d < self.slop_ns and (best is None or d < abs(best[0] - s)):
                best = e
        if best is None:
            return None
        q.remove(mine)
        other.remove(best)
        return (mine[1], best[1]) if i == 0 else (best[1], mine[1])


@settings(max_examples=300, deadline=None)
@given(
    queue_size=st.integers(1, 6),
    slop_ms=st.integers(1, 40),
    events=st.lists(st.tuples(st.integers(0, 1), st.integers(0, 200)), max_size=60),
)
def test_matches_reference_model(queue_size, slop_ms, events):
    sync = ApproximateTimeSynchronizer(2, queue_size=queue_size, slop=slop_ms / 1000)
    ref = ReferenceTwoInput(queue_size, slop_ms * MS)
    for k, (i, t) in enumerate(events):
        s = t * MS
        msg = (i, s, k)
        got = sync.add(i, s, msg)
        want = ref.add(i, s, msg)
        assert got == ([want] if want else []), (k, i, t)
    for i in (0, 1):
        assert sync.queued(i) == sorted(e[0] for e in ref.q[i])


def test_module_does_not_import_rclpy():
    code = ("import sys, mm_compress_ros.link.synchronizer; "
            "assert 'rclpy' not in sys.modules, 'rclpy imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_pairing_defaults_live_in_one_place():
    """encoder_node, `bag encode` and the synchronizer itself pair with the same defaults, the
    synchronizer module's; config/encoder.yaml states the same values."""
    import argparse
    import inspect
    from pathlib import Path

    import yaml

    from mm_compress_ros.bag.cli import add_bag_parsers
    from mm_compress_ros.link import synchronizer as sync_mod

    sig = inspect.signature(sync_mod.ApproximateTimeSynchronizer)
    assert (sig.parameters["queue_size"].default, sig.parameters["slop"].default) == (sync_mod.SYNC_QUEUE_SIZE, sync_mod.SYNC_SLOP)
    ap = argparse.ArgumentParser()
    add_bag_parsers(ap.add_subparsers())
    args = ap.parse_args(["bag", "encode", "in", "out", "--rgb-topic", "/a", "--thermal-topic", "/b"])
    assert (args.queue_size, args.slop) == (sync_mod.SYNC_QUEUE_SIZE, sync_mod.SYNC_SLOP)
    repo = Path(__file__).resolve().parents[1]
    params = yaml.safe_load((repo / "config" / "encoder.yaml").read_text())["encoder_node"]["ros__parameters"]
    assert (params["sync_queue_size"], params["sync_slop"]) == (sync_mod.SYNC_QUEUE_SIZE, sync_mod.SYNC_SLOP)
    node = (repo / "mm_compress_ros" / "ros" / "encoder_node.py").read_text()
    assert 'p("sync_queue_size", SYNC_QUEUE_SIZE)' in node and 'p("sync_slop", SYNC_SLOP)' in node
