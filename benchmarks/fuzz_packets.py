"""Fuzzing the packet decoder at scale (the CI test, test/test_fuzz.py, runs a bounded version).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/fuzz_packets.py --count 100000

Mutates real packets (real M3SVD frames, 64x64 crops) of every stream kind the decoder reads
(test_fuzz.STREAM_KINDS: the learned profile, the hybrid profile with the real-time model, the
standard profile with H.264 / H.265 / 12-bit H.265 / lossless thermal), round robin, with the same
mutation operators as the CI test (bit flips, byte sets, cuts, insertions, deletions; half of them
with a fixed-up CRC so that they reach the video decoders, the entropy decoders and the networks),
decodes each with a decoder that holds the right reference, and reports per kind how each ended.
Anything but a decoded frame, a dropped frame or a PacketError is a failure; a decode slower than
--hang-s is a hang; memory is the peak resident size and its growth over the second half of the
run (a leak shows as growth). Writes docs/results/fuzz.json (--out).
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import resource
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "test")]

from test_fuzz import STREAM_KINDS, decode_mutant, mutate, stream  # noqa: E402

from mm_compress_ros.codec.packet import PacketError  # noqa: E402

OPS = ["flip", "set", "cut", "insert", "delete"]


def rss_mb() -> float:
    """Current resident size (Linux /proc)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--kinds", nargs="+", default=sorted(STREAM_KINDS), choices=sorted(STREAM_KINDS))
    ap.add_argument("--hang-s", type=float, default=5.0, help="a decode slower than this counts as a hang")
    ap.add_argument("--seconds", type=float, default=7200, help="stop early after this long")
    ap.add_argument("--out", default=str(REPO / "docs" / "results" / "fuzz.json"))
    args = ap.parse_args()

    from tqdm import tqdm

    streams = {k: stream(k) for k in args.kinds}
    rng = random.Random(args.seed)
    outcomes = {k: collections.Counter() for k in args.kinds}
    slowest = {k: 0.0 for k in args.kinds}
    failures, hangs = [], []
    rss_half = None
    t0 = time.time()
    n = 0
    for n in tqdm(range(1, args.count + 1), unit="mutant", mininterval=5):
        kind = args.kinds[n % len(args.kinds)]
        model, packets = streams[kind]
        which = rng.randrange(3)
        ops = [(rng.choice(OPS), rng.randrange(1 << 16), rng.randrange(256)) for _ in range(rng.randint(1, 4))]
        fix = rng.random() < 0.5
        bad = mutate(packets[which], ops, fix)
        t = time.perf_counter()
        try:
            out = decode_mutant(model, packets, which, bad)
            outcomes[kind]["decoded" if out is not None else "dropped"] += 1
        except PacketError as exc:
            outcomes[kind][type(exc).__name__] += 1
        except Exception as exc:  # noqa: BLE001 - this is what the run looks for
            outcomes[kind]["FAILURE"] += 1
            failures.append({"kind": kind, "which": which, "ops": ops, "fix_crc": fix, "error": repr(exc)})
        dt = time.perf_counter() - t
        slowest[kind] = max(slowest[kind], dt)
        if dt > args.hang_s:
            hangs.append({"kind": kind, "which": which, "ops": ops, "fix_crc": fix, "seconds": round(dt, 2)})
        if n == args.count // 2:
            rss_half = rss_mb()
        if time.time() - t0 > args.seconds:
            break
    result = {
        "command": "benchmarks/fuzz_packets.py " + " ".join(sys.argv[1:]),
        "mutants": n, "seconds": round(time.time() - t0, 1), "failures": len(failures), "hangs": len(hangs),
        "per_kind": {k: {"mutants": sum(outcomes[k].values()), "outcomes": dict(outcomes[k]),
                         "slowest_decode_s": round(slowest[k], 3)} for k in args.kinds},
        "failure_examples": failures[:20], "hang_examples": hangs[:20],
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "rss_mb_half_way": None if rss_half is None else round(rss_half, 1), "rss_mb_end": round(rss_mb(), 1),
        "models": {k: (m.sha256[:16] if m is not None else None) for k, (m, _) in streams.items()},
        "seed": args.seed,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 1 if failures or hangs else 0


if __name__ == "__main__":
    sys.exit(main())
