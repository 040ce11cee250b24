"""Target-bitrate mode: the pair's rate over time for a m3svd_seq sequence played at 10 Hz.

    .venv/bin/python benchmarks/rate_control.py --targets 600 1500 --seconds 30

The 20 frames of the sequence are played forward and backward (a ping-pong loop, so the scene
stays continuous) for --seconds at --fps with capture stamps, through the default profile's
StreamEncoder in target-bitrate mode (GOP 10). Reports, per target, the rate of every 10 s window
(1 s steps) against the target and writes docs/results/rate_control.json and rate_control.png
(rate per second and per 10 s window). The first GOP is the controller's start: the figures are
given with and without the first 10 s window.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mm_compress_ros.codec.profiles import DEFAULT_REFERENCE_CODEC  # noqa: E402
from mm_compress_ros.codec.stream import StreamEncoder  # noqa: E402
from mm_compress_ros.codec.zoo import load_model  # noqa: E402
from mm_compress_ros.eval.sequences import load_sequences  # noqa: E402


def windows(bits_per_frame: list[int], fps: float, seconds: float = 10.0) -> list[float]:
    """kbit/s of every window of ``seconds`` starting at each whole second."""
    n, step = int(round(seconds * fps)), int(round(fps))
    return [sum(bits_per_frame[i:i + n]) / seconds / 1000 for i in range(0, len(bits_per_frame) - n + 1, step)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "m3svd_seq"))
    ap.add_argument("--sequence", default="0111_1716")
    ap.add_argument("--targets", type=float, nargs="+", default=[600, 1500], help="kbit/s of the pair")
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--fps", type=float, default=10)
    ap.add_argument("--gop", type=int, default=10)
    ap.add_argument("--reference-codec", default=DEFAULT_REFERENCE_CODEC)
    ap.add_argument("--out", default=str(REPO / "docs" / "results" / "rate_control.json"))
    ap.add_argument("--plot", default=str(REPO / "docs" / "results" / "rate_control.png"))
    args = ap.parse_args(argv)

    model = load_model("mmvc", device="cpu")
    seq = load_sequences(args.data, sequences=[args.sequence])[0]
    order = list(range(len(seq))) + list(range(len(seq) - 2, 0, -1))   # ping-pong
    n = int(args.seconds * args.fps)
    period_ns = int(1e9 / args.fps)
    runs = []
    t0 = time.time()
    for target in args.targets:
        enc = StreamEncoder(model, gop=args.gop, reference_codec=args.reference_codec, encoder="software",
                            target_kbps=target, fps=args.fps, stream_id=0)
        bits, levels, qps = [], [], []
        for k in range(n):
            i = order[k % len(order)]
            pkt = enc.encode(seq.rgb[i], seq.thermal[i], stamp_ns=k * period_ns)
            bits.append(8 * len(pkt))
            levels.append(enc.quality)
            qps.append(enc.rate.qp)
            if k % 50 == 0:
                print(f"target {target:.0f} kbit/s: frame {k}/{n}", file=sys.stderr, flush=True)
        w = windows(bits, args.fps)
        err = [abs(x / target - 1) for x in w]
        runs.append({"target_kbps": target, "bits_per_frame": bits, "level": levels, "qp": qps,
                     "window_kbps": w, "max_window_error": max(err), "max_window_error_after_first": max(err[1:]),
                     "mean_kbps": sum(bits) / (n / args.fps) / 1000})
        print(json.dumps({k: v for k, v in runs[-1].items() if not isinstance(v, list)}), flush=True)
    res = {"command": "benchmarks/rate_control.py " + " ".join(sys.argv[1:] if argv is None else argv),
           "sequence": args.sequence, "size": list(seq.rgb[0].shape[:2]), "fps": args.fps, "gop": args.gop,
           "reference_codec": args.reference_codec, "model_sha256": model.sha256,
           "seconds_taken": round(time.time() - t0), "runs": runs}
    Path(args.out).write_text(json.dumps(res, indent=1))

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4))
    for r in runs:
        per_s = [sum(r["bits_per_frame"][i:i + int(args.fps)]) / 1000 for i in range(0, n, int(args.fps))]
        line, = ax.step(range(len(per_s)), per_s, where="post", alpha=0.5, label=f"per second, target {r['target_kbps']:.0f}")
        ax.plot(np.arange(len(r["window_kbps"])) + 10, r["window_kbps"], "-", color=line.get_color(), lw=2,
                label="10 s window (plotted at its end)")
        ax.axhline(r["target_kbps"], color=line.get_color(), ls=":")
        ax.fill_between([0, len(per_s)], 0.9 * r["target_kbps"], 1.1 * r["target_kbps"], color=line.get_color(), alpha=0.08)
    ax.set_xlabel("seconds")
    ax.set_ylabel("kbit/s (RGB + thermal)")
    ax.set_title(f"target-bitrate mode, {args.reference_codec} profile, m3svd_seq {args.sequence} "
                 f"{seq.rgb[0].shape[1]}x{seq.rgb[0].shape[0]} at {args.fps:g} Hz (band: +-10 %)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(args.plot, dpi=90)
    return 0


if __name__ == "__main__":
    sys.exit(main())
