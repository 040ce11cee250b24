"""Median encode and decode time per pair of the default profile (StreamEncoder / StreamDecoder, in
one process, 2 torch threads) on m3svd_seq (5 sequences x 10 frames, levels 1, 32, 64), for the
package in ``--tree`` (a checkout; default this one): run it on two checkouts in turn to compare
them in the same session, e.g. before and after a refactor:

    git worktree add /tmp/old <commit>
    for t in /tmp/old .; do .venv/bin/python benchmarks/stream_speed.py --tree $t; done
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tree", type=Path, default=Path(__file__).resolve().parents[1])
    p.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data")
    p.add_argument("--levels", type=int, nargs="+", default=[1, 32, 64])
    a = p.parse_args(argv)
    sys.path.insert(0, str(a.tree.resolve()))
    import torch

    from mm_compress_ros.codec.stream import StreamDecoder, StreamEncoder
    from mm_compress_ros.eval.sequences import load_sequences

    torch.set_num_threads(2)
    seqs = load_sequences(a.data / "m3svd_seq", frames=10)
    te, td = [], []
    for q in a.levels:
        for s in seqs:
            enc, dec = StreamEncoder(None, quality=q, gop=10, stream_id=0), StreamDecoder(None)
            for r, t in zip(s.rgb, s.thermal):
                t0 = time.perf_counter()
                packet = enc.encode(r, t)
                t1 = time.perf_counter()
                dec.decode(packet)
                te.append(1e3 * (t1 - t0))
                td.append(1e3 * (time.perf_counter() - t1))
    print(json.dumps({"tree": str(a.tree), "encode_ms": round(statistics.median(te), 2),
                      "decode_ms": round(statistics.median(td), 2), "pairs": len(te)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
