"""Longer fuzzing run of the packet decoder (the CI test runs a bounded version).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/fuzz_packets.py --count 3000

Mutates real packets (real M3SVD frames, 64x64 crops, the shipped model) with the same mutation
operators as test/test_fuzz.py (bit flips, byte sets, cuts, insertions, deletions; half of them
with a fixed-up CRC so they reach the entropy decoder), decodes each with a decoder that holds the
right reference, and reports how each ended, the slowest decode and the peak resident memory.
Anything but a decoded frame, a dropped frame or a PacketError counts as a failure.
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

from codec_fixtures import crop_pair  # noqa: E402
from test_fuzz import mutate  # noqa: E402

from mm_compress_ros.codec.packet import PacketError  # noqa: E402
from mm_compress_ros.codec.stream import StreamDecoder, StreamEncoder  # noqa: E402
from mm_compress_ros.codec.zoo import load_model  # noqa: E402

KINDS = ["flip", "set", "cut", "insert", "delete"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=1800, help="stop early after this long")
    ap.add_argument("--out", default=str(REPO / "runs" / "fuzz_packets.json"))
    args = ap.parse_args()

    model = load_model("mmvc", device="cpu")
    enc = StreamEncoder(model, gop=3)
    packets = [enc.encode(*crop_pair(i, h=64, w=64)) for i in range(3)]
    rng = random.Random(args.seed)
    outcomes: collections.Counter[str] = collections.Counter()
    failures = []
    slowest = 0.0
    t0 = time.time()
    n = 0
    for n in range(1, args.count + 1):
        which = rng.randrange(3)
        ops = [(rng.choice(KINDS), rng.randrange(1 << 16), rng.randrange(256)) for _ in range(rng.randint(1, 4))]
        fix = rng.random() < 0.5
        dec = StreamDecoder(model)
        for p in packets[:which]:
            dec.decode(p)
        bad = mutate(packets[which], ops, fix)
        t = time.perf_counter()
        try:
            out = dec.decode(bad)
            outcomes["decoded" if out is not None else "dropped"] += 1
        except PacketError as exc:
            outcomes[type(exc).__name__] += 1
        except Exception as exc:  # noqa: BLE001 - this is what the run looks for
            outcomes["FAILURE"] += 1
            failures.append({"which": which, "ops": ops, "fix_crc": fix, "error": repr(exc)})
        slowest = max(slowest, time.perf_counter() - t)
        if time.time() - t0 > args.seconds:
            break
    result = {
        "mutants": n, "seconds": round(time.time() - t0, 1), "outcomes": dict(outcomes),
        "failures": failures[:20], "slowest_decode_s": round(slowest, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "model_sha256": model.sha256[:16], "seed": args.seed,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
