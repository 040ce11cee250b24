"""Share of the channel-wise alignment coefficients (gamma, beta) in the stream, per quality level.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/alignment_share.py [--data ../shared/data/m3svd_seq]

Codes the first `--frames` pairs of every sequence with GOP 10 at each level and reports the
alignment section's bytes against the key frame's bytes and against the whole stream's bytes.
The coefficients travel in key frames only (128 values, step 1/32, entropy-coded).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mm_compress_ros.codec.packet import FRAME_KEY, read_packet  # noqa: E402
from mm_compress_ros.codec.stream import StreamEncoder  # noqa: E402
from mm_compress_ros.codec.zoo import load_model  # noqa: E402
from mm_compress_ros.io.frames import default_data_root, iter_pairs  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    root = default_data_root()
    ap.add_argument("--data", default=str(root / "m3svd_seq") if root else None)
    ap.add_argument("--frames", type=int, default=10)
    ap.add_argument("--sequences", type=int, default=5)
    ap.add_argument("--model", default="mmvc")
    args = ap.parse_args()
    model = load_model(args.model, device="cpu")
    seqs = sorted(p for p in Path(args.data).iterdir() if (p / "rgb").is_dir())[: args.sequences]
    rows = []
    for q in range(1, model.levels + 1):
        align = key = total = 0
        for seq in seqs:
            enc = StreamEncoder(model, quality=q, gop=10)
            for i, (rgb, th) in enumerate(iter_pairs(seq / "rgb", seq / "thermal")):
                if i >= args.frames:
                    break
                pkt = enc.encode(rgb, th)
                h, sections = read_packet(pkt)
                total += len(pkt)
                if h.frame_type == FRAME_KEY:
                    key += len(pkt)
                    align += len(sections[2])
        rows.append({"quality": q, "align_bytes_per_key_frame": align / len(seqs),
                     "share_of_key_frames": align / key, "share_of_stream": align / total})
        print(json.dumps(rows[-1]), flush=True)
    print(json.dumps({"model_sha256": model.sha256[:16], "data": args.data, "frames": args.frames,
                      "sequences": [s.name for s in seqs], "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
