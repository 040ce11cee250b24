"""Training data for the joint restoration, made by the product's own standard layers.

Each *chain* is a run of consecutive frames coded as one GOP by :class:`codec.stream.StreamEncoder`
(standard profile, the product's encoder settings) at one quality level drawn from the whole knob;
what the decoder would show (the encoder's own reconstruction, bit-identical to a decoder's) is
stored beside the original. A chain file ``chain_NNNN.npy`` is uint8 T x H x W x 8:
channels 0-2 original RGB, 3 original thermal, 4-6 decoded RGB, 7 decoded thermal; ``index.json``
lists the chains with their layer QPs and source.

Sources (M3SVD only; roadscene, a second rig, stays unseen for measurement):
- ``--sequences``: lossless m3svd_seq sequences at full size, every GOP at ``--levels`` levels
  (the run in docs/results.md trained on three and measured on the other two);
- else the clips: ``m3svd_video`` (paired) and ``m3svd_thermal_video`` (thermal only, coded with a
  blank mid-gray RGB camera, so that the network works when one camera shows nothing), shrunk by
  ``--downscale`` (2) first: they are lossy MPEG-4 at 0.5-2 Mbit/s, and a correction cannot be
  learned towards a target that carries artifacts of its own (docs/results.md: neither transfers).
"""
from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import numpy as np

from ..codec.profiles import STANDARD_LEVELS, reference_qp
from ..codec.stream import StreamEncoder
from ..io.frames import default_data_root, iter_video

BLANK_RGB = 128


def code_chain(rgb_frames, th_frames, level: int, thermal_codec: str = "h264",
               reference_codec: str = "h264") -> np.ndarray:
    """Codes one GOP of 8-bit frames and returns the T x H x W x 8 chain array."""
    enc = StreamEncoder(None, quality=level, gop=len(rgb_frames), reference_codec=reference_codec,
                        thermal_codec=thermal_codec)
    out = []
    for rgb, th in zip(rgb_frames, th_frames):
        enc.encode(rgb, th)
        pair = enc.last_pair()
        out.append(np.concatenate([rgb, th[..., None], pair.rgb, pair.thermal[..., None]], axis=2))
    return np.stack(out)


def save_chain(out: Path, index: list, chain: np.ndarray, level: int, **meta) -> None:
    """Writes ``chain`` as the next chain file of ``out`` and its line in ``out/index.json``."""
    name = f"chain_{len(index):04d}.npy"
    np.save(out / name, chain)
    qp = reference_qp(level, STANDARD_LEVELS)
    index.append({"file": name, **meta, "level": level, "qp_rgb": qp, "qp_thermal": qp, "frames": len(chain)})
    (out / "index.json").write_text(json.dumps(index, indent=1))


def _clip_frames(path: Path, gray: bool, start: int, length: int) -> list[np.ndarray]:
    frames = []
    for i, f in enumerate(iter_video(path, gray)):
        if i >= start:
            frames.append(f)
        if len(frames) == length:
            break
    return frames


def _shrink(frames, k: int):
    import cv2
    h, w = frames[0].shape[:2]
    size = (w // k // 4 * 4, h // k // 4 * 4)
    return [cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames]


def _clip_length(path: Path) -> int:
    import av
    with av.open(str(path)) as c:
        return c.streams.video[0].frames or sum(1 for _ in c.decode(video=0))


def _code_sequences(a) -> int:
    from ..eval.sequences import load_sequences
    rnd = random.Random(a.seed)
    a.out.mkdir(parents=True, exist_ok=True)
    index_path = a.out / "index.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else []
    seqs = load_sequences(a.data / "m3svd_seq", sequences=a.sequences)
    levels = sorted(rnd.sample(range(1, STANDARD_LEVELS + 1), a.levels))
    plan = [(s, g, lv) for s in seqs for lv in levels for g in range(0, len(s.rgb), a.length)]
    for k, (s, g, level) in enumerate(plan):
        if k < len(index):
            continue
        rgb, th = s.rgb[g:g + a.length], s.thermal[g:g + a.length]
        save_chain(a.out, index, code_chain(rgb, th, level), level, source=f"m3svd_seq/{s.name}", kind="paired",
                   start=g, downscale=1)
        print(f"[{k + 1}/{len(plan)}] {s.name} frames {g}..{g + len(rgb) - 1} level {level}", flush=True)
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m mm_compress_ros.restore.data", description=__doc__.split("\n")[0])
    p.add_argument("out", type=Path)
    p.add_argument("--data", type=Path, default=default_data_root())
    p.add_argument("--paired-chains", type=int, default=120)
    p.add_argument("--thermal-chains", type=int, default=40)
    p.add_argument("--length", type=int, default=10, help="frames per chain (one GOP)")
    p.add_argument("--downscale", type=int, default=2,
                   help="shrink the clips' frames by this factor before coding: the clips are lossy MPEG-4, "
                        "and 2x2 averaging removes most of their own artifacts, so the originals are clean "
                        "enough to learn a correction from (1: as stored)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sequences", nargs="+", default=None, metavar="SEQ",
                   help="code these lossless m3svd_seq sequences instead of the clips (every GOP of each, at "
                        "--levels levels drawn from the whole knob; full size, no --downscale)")
    p.add_argument("--levels", type=int, default=24)
    a = p.parse_args(argv)
    if a.sequences:
        return _code_sequences(a)
    if a.data is None or not (a.data / "m3svd_video").is_dir():
        print("restore.data: --data must hold m3svd_video/ (../shared/data)", file=sys.stderr)
        return 2
    rnd = random.Random(a.seed)
    a.out.mkdir(parents=True, exist_ok=True)
    index_path = a.out / "index.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else []   # resumable
    paired = sorted(d for d in (a.data / "m3svd_video").iterdir() if (d / "thermal.mp4").exists())
    thermal = sorted(d for d in (a.data / "m3svd_thermal_video").iterdir() if (d / "thermal.mp4").exists())
    lengths = {d: _clip_length(d / "thermal.mp4") for d in paired + thermal}
    plan = [("paired", d) for d in paired for _ in range(a.paired_chains // len(paired))]
    plan += [("thermal", rnd.choice(thermal)) for _ in range(a.thermal_chains)]
    for k, (kind, d) in enumerate(plan):
        start = rnd.randrange(0, max(1, lengths[d] - a.length))
        level = rnd.randint(1, STANDARD_LEVELS)
        if k < len(index):
            continue
        th = _clip_frames(d / "thermal.mp4", True, start, a.length)
        rgb = (_clip_frames(d / "rgb.mp4", False, start, a.length) if kind == "paired"
               else [np.full((*t.shape, 3), BLANK_RGB, np.uint8) for t in th])
        n = min(len(rgb), len(th))
        if a.downscale > 1:
            rgb, th = _shrink(rgb, a.downscale), _shrink(th, a.downscale)
        save_chain(a.out, index, code_chain(rgb[:n], th[:n], level), level,
                   source=f"{d.parent.name}/{d.name}", kind=kind, start=start, downscale=a.downscale)
        print(f"[{k + 1}/{len(plan)}] {d.name} {kind} frames {start}..{start + n - 1} level {level} "
              f"(QP {index[-1]['qp_rgb']})", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
