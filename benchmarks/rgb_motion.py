#!/usr/bin/env python3
"""How well the RGB layer's H.264 motion vectors predict the *thermal* picture (issue 25, step 1).

The RGB frames of each chain are coded by this repo's ``LowDelayEncoder('h264')`` (libx264, GOP
``--gop``, constant QP) and decoded by ``codec.motion.MotionDecoder`` (libavcodec with
``flags2=+export_mvs``), which gives every predicted frame a 4x4-block motion field. For every
predicted frame t the current original thermal frame is compared with

* (a) ``prev``: the previous original thermal frame as is (what a codec without motion has), and
* (b) ``warped``: the previous original thermal frame warped by the RGB field rescaled to the thermal
  grid (``codec.motion.rescale`` + ``warp``: integer bilinear at quarter pels),

pooled over all predicted frames, per block class of the RGB field: ``static`` (a zero vector),
``moving`` (a non-zero vector), ``intra`` (no vector: intra-coded in the RGB stream). ``skip``
shares are of 8x8 thermal blocks whose prediction needs no residual within a threshold (block mean
absolute error <= 1 or <= 2 grey levels); an 8x8 block is intra if any of its 4x4 field blocks is,
else moving if any is, else static. ``rgb_*`` is the sanity check on the RGB stream itself (the
decoded previous RGB picture, as is and warped, against the decoded current one).

Data (``../shared/data``, read only): ``m3svd_seq`` (each sequence's first ``--frames`` frames, 640x480
lossless PNG) and ``m3svd_video`` (``--chains`` chains of ``--frames`` frames per clip, evenly spaced;
lossy MPEG-4 sources). ``--thermal-scale 2`` also measures thermal at half the RGB size (INTER_AREA),
which exercises the field's rescaling as a 320x240 camera beside a 640x480 one would. ``--refs1`` adds a
diagnostic run with libx264 limited to one reference frame (``AVMotionVector`` carries no reference
index, so with the default 3 references some vectors point further back than the previous frame).

    flock /tmp/mmc-cpu.lock .venv/bin/python benchmarks/rgb_motion.py --refs1 --write-docs   # docs/results.md
    .venv/bin/python benchmarks/rgb_motion.py --qps 27 --frames 4 --chains 1 --out /tmp/m.json      # quick look
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from mm_compress_ros.codec import videocodec  # noqa: E402
from mm_compress_ros.codec.motion import (CLASS_NAMES, INTRA, MOVING, STATIC, MotionDecoder,  # noqa: E402
                                          pixel_map, rescale, warp)
from mm_compress_ros.io.frames import iter_video, read_rgb, read_thermal  # noqa: E402

MARK_BEGIN, MARK_END = "<!-- rgb_motion:begin -->", "<!-- rgb_motion:end -->"
COMMAND = "flock /tmp/mmc-cpu.lock .venv/bin/python benchmarks/rgb_motion.py --refs1 --write-docs"
SKIP_BLOCK = 8
SKIP_MAE = (1.0, 2.0)
PREDICTORS = ("prev", "warped", "best")


# -- data ----------------------------------------------------------------------------------------

def seq_chains(root: Path, frames: int) -> list[tuple[str, list, list]]:
    out = []
    for d in sorted(p for p in (root / "m3svd_seq").iterdir() if p.is_dir()):
        rgb = [read_rgb(d / "rgb" / f"{i:04d}.png") for i in range(frames)]
        th = [read_thermal(d / "thermal" / f"{i:04d}.png") for i in range(frames)]
        out.append((d.name, rgb, th))
    return out


def _video_frames(path: Path, gray: bool, starts: list[int], n: int) -> dict[int, list]:
    want = {s + k: s for s in starts for k in range(n)}
    got: dict[int, list] = {s: [] for s in starts}
    for i, f in enumerate(iter_video(path, gray)):
        if i in want:
            got[want[i]].append(f)
        if i >= max(want):
            break
    return got


def clip_chains(root: Path, frames: int, chains: int) -> list[tuple[str, list, list]]:
    import av

    out = []
    for d in sorted(p for p in (root / "m3svd_video").iterdir() if p.is_dir()):
        with av.open(str(d / "thermal.mp4")) as c:
            total = c.streams.video[0].frames or 200
        starts = [k * (total - frames) // max(chains, 1) for k in range(chains)]
        rgb = _video_frames(d / "rgb.mp4", False, starts, frames)
        th = _video_frames(d / "thermal.mp4", True, starts, frames)
        for s in starts:
            if len(rgb[s]) == frames and len(th[s]) == frames:
                out.append((f"{d.name}@{s}", rgb[s], th[s]))
    return out


# -- measuring -----------------------------------------------------------------------------------

class Pool:
    """Squared and absolute errors pooled per predictor and block class, and skip counts."""

    def __init__(self):
        self.sq = {p: np.zeros(3) for p in PREDICTORS}
        self.ab = {p: np.zeros(3) for p in PREDICTORS}
        self.px = np.zeros(3)
        self.skip = {(p, t): np.zeros(3) for p in PREDICTORS for t in SKIP_MAE}
        self.blocks = np.zeros(3)
        self.rgb_sq = {p: 0.0 for p in PREDICTORS}
        self.rgb_px = 0
        self.frames = 0
        self.chose_warped: list[float] = []

    def add(self, cur: np.ndarray, preds: dict, cls_px: np.ndarray) -> None:
        c = cur.astype(np.int64)
        for k in range(3):
            m = cls_px == k
            self.px[k] += m.sum()
        h8, w8 = cur.shape[0] // SKIP_BLOCK, cur.shape[1] // SKIP_BLOCK
        cb = cls_px[:h8 * SKIP_BLOCK, :w8 * SKIP_BLOCK].reshape(h8, SKIP_BLOCK, w8, SKIP_BLOCK)
        # the 8x8 block's class: intra if any pixel is, else moving if any is, else static
        bcls = np.where((cb == INTRA).any(axis=(1, 3)), INTRA, np.where((cb == MOVING).any(axis=(1, 3)), MOVING, STATIC))
        for k in range(3):
            self.blocks[k] += (bcls == k).sum()
        for p, pred in preds.items():
            e = c - pred.astype(np.int64)
            for k in range(3):
                m = cls_px == k
                self.sq[p][k] += float((e[m] ** 2).sum())
                self.ab[p][k] += float(np.abs(e[m]).sum())
            bm = np.abs(e[:h8 * SKIP_BLOCK, :w8 * SKIP_BLOCK]).reshape(h8, SKIP_BLOCK, w8, SKIP_BLOCK).mean(axis=(1, 3))
            for t in SKIP_MAE:
                for k in range(3):
                    self.skip[(p, t)][k] += ((bm <= t) & (bcls == k)).sum()
        self.frames += 1

    def add_rgb(self, cur: np.ndarray, preds: dict) -> None:
        for p, pred in preds.items():
            self.rgb_sq[p] += float(((cur.astype(np.int64) - pred.astype(np.int64)) ** 2).sum())
        self.rgb_px += cur.size

    def summary(self) -> dict:
        def db(sq, n):
            return float(10 * np.log10(255.0 ** 2 / max(sq / n, 1e-12))) if n else None
        out = {"frames": self.frames, "pixel_share": {}, "block8_share": {}}
        tot, btot = self.px.sum(), self.blocks.sum()
        for k, name in enumerate(CLASS_NAMES):
            out["pixel_share"][name] = float(self.px[k] / tot) if tot else None
            out["block8_share"][name] = float(self.blocks[k] / btot) if btot else None
        for p in PREDICTORS:
            r = {"psnr": db(self.sq[p].sum(), tot), "mae": float(self.ab[p].sum() / tot) if tot else None}
            for k, name in enumerate(CLASS_NAMES):
                r[f"psnr_{name}"] = db(self.sq[p][k], self.px[k])
                r[f"mae_{name}"] = float(self.ab[p][k] / self.px[k]) if self.px[k] else None
            for t in SKIP_MAE:
                s = self.skip[(p, t)]
                r[f"skip{t:g}"] = float(s.sum() / btot) if btot else None
                for k, name in enumerate(CLASS_NAMES):
                    r[f"skip{t:g}_{name}"] = float(s[k] / self.blocks[k]) if self.blocks[k] else None
            out[p] = r
        out["rgb_psnr"] = {p: db(self.rgb_sq[p], self.rgb_px) for p in PREDICTORS}
        out["best_chose_warped"] = float(np.mean(self.chose_warped)) if self.chose_warped else None
        return out


@contextmanager
def x264_refs(refs: int | None):
    """Diagnostic only: libx264 with ``ref=refs`` (the module's settings otherwise unchanged)."""
    if refs is None:
        yield
        return
    orig = videocodec._options

    def patched(name, qp):
        o = orig(name, qp)
        if name == "libx264":
            o = dict(o, **{"x264-params": o["x264-params"] + f":ref={refs}"})
        return o

    videocodec._options = patched
    try:
        yield
    finally:
        videocodec._options = orig


def _block_sum(a: np.ndarray, b: int = SKIP_BLOCK) -> np.ndarray:
    h, w = -(-a.shape[0] // b) * b, -(-a.shape[1] // b) * b
    a = np.pad(a, ((0, h - a.shape[0]), (0, w - a.shape[1])))
    return a.reshape(h // b, b, w // b, b).sum(axis=(1, 3))


def best_of(cur: np.ndarray, prev: np.ndarray, warped: np.ndarray) -> tuple[np.ndarray, float]:
    """Per 8x8 block, whichever of ``prev`` and ``warped`` has the smaller squared error (an encoder
    decision a codec would signal with one flag per block); and the share of blocks that chose warped."""
    c = cur.astype(np.int64)
    use = _block_sum((c - warped) ** 2) < _block_sum((c - prev) ** 2)
    m = np.repeat(np.repeat(use, SKIP_BLOCK, 0), SKIP_BLOCK, 1)[:cur.shape[0], :cur.shape[1]]
    return np.where(m, warped, prev), float(use.mean())


def measure_chain(rgb: list, th: list, qp: int, gop: int, pools: dict, scales: list[int]) -> int:
    """Codes one chain's RGB, adds its predicted frames to ``pools[scale]``; returns the RGB bytes."""
    enc = videocodec.LowDelayEncoder("h264", "software")
    dec = MotionDecoder("h264")
    size = rgb[0].shape[:2]
    thermals = {s: th if s == 1 else [cv2.resize(t, (t.shape[1] // s, t.shape[0] // s), interpolation=cv2.INTER_AREA)
                                      for t in th] for s in scales}
    nbytes, prev_pic = 0, None
    for t, img in enumerate(rgb):
        au = enc.encode(img, qp, key=t % gop == 0)
        nbytes += len(au)
        pic, field = dec.decode(au, size)
        if t % gop and prev_pic is not None:
            g = cv2.cvtColor(pic, cv2.COLOR_RGB2GRAY)
            gp = cv2.cvtColor(prev_pic, cv2.COLOR_RGB2GRAY)
            for s in scales:
                cur, prev = thermals[s][t], thermals[s][t - 1]
                tf = field if cur.shape == size else rescale(field, cur.shape[:2])
                wp = warp(prev, tf)
                best, share = best_of(cur, prev, wp)
                pools[s].add(cur, {"prev": prev, "warped": wp, "best": best}, pixel_map(tf))
                pools[s].chose_warped.append(share)
            gw = warp(gp, field)
            pools[1].add_rgb(g, {"prev": gp, "warped": gw, "best": best_of(g, gp, gw)[0]})
        prev_pic = pic
    return nbytes


def run(sets: dict, qps: list[int], gop: int, scales: list[int], refs: int | None, progress: bool) -> dict:
    res = {}
    with x264_refs(refs):
        for name, chains in sets.items():
            res[name] = {}
            for qp in qps:
                pools = {s: Pool() for s in scales}
                nbytes, npx, t0 = 0, 0, time.perf_counter()
                for cname, rgb, th in chains:
                    nbytes += measure_chain(rgb, th, qp, gop, pools, scales)
                    npx += sum(r.shape[0] * r.shape[1] for r in rgb)
                row = {"qp": qp, "rgb_bpp": 8 * nbytes / npx}
                for s in scales:
                    row["thermal" if s == 1 else f"thermal_div{s}"] = pools[s].summary()
                res[name][str(qp)] = row
                if progress:
                    p = row["thermal"]
                    print(f"  {name} qp {qp}: prev {p['prev']['psnr']:.2f} dB, warped {p['warped']['psnr']:.2f} dB "
                          f"({time.perf_counter() - t0:.1f} s)", file=sys.stderr, flush=True)
    return res


# -- reporting ----------------------------------------------------------------------------------

def _f(v, fmt=".2f"):
    return "-" if v is None else format(v, fmt)


def table_rows(block: dict, key: str = "thermal") -> list[str]:
    rows = []
    for qp, row in block.items():
        t = row[key]
        a, b, c = t["prev"], t["warped"], t["best"]
        sh = t["pixel_share"]

        def three(k, fmt=".2f", pct=False):
            return " / ".join(_f(100 * x[k] if pct else x[k], ".0f" if pct else fmt) for x in (a, b, c))
        rgb = t.get("rgb_psnr", {})
        rows.append(
            f"| {qp} | {row['rgb_bpp']:.3f} | {100 * sh['static']:.0f} / {100 * sh['moving']:.0f} / {100 * sh['intra']:.0f} "
            f"| {three('psnr')} | {three('mae')} | {_f(a['psnr_static'])} | {three('psnr_moving')} | {_f(a['psnr_intra'])} "
            f"| {three('skip1', pct=True)} | {three('skip2', pct=True)} | {_f(100 * t['best_chose_warped'], '.0f')} "
            f"| {_f(rgb.get('prev'))} / {_f(rgb.get('warped'))} |")
    return rows


HEADER = ("| RGB QP | RGB bpp | pixels static / moving / intra (%) | PSNR prev / warped / best (dB) "
          "| MAE prev / warped / best | PSNR static | PSNR moving prev / warped / best | PSNR intra "
          "| skip-like MAE<=1 prev / warped / best (%) | skip-like MAE<=2 (%) | best took warped (%) "
          "| RGB Y PSNR prev / warped |\n"
          "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")


def render(result: dict) -> str:
    lines = ["## Motion from the RGB stream: how well it predicts thermal (issue 25)", "",
             "Each predicted frame's current *original* thermal picture against (a) the previous original "
             "thermal picture as is (`prev`) and (b) the same warped by the H.264 RGB layer's motion vectors "
             "(`warped`: libavcodec `flags2=+export_mvs`, 4x4-block field rescaled to the thermal grid, "
             "integer bilinear quarter-pel warp, `mm_compress_ros/codec/motion.py`), and (c) `best`: per 8x8 "
             "block whichever of the two has the smaller squared error (an encoder decision, one flag per "
             "block, not counted). Static and intra blocks have zero motion, so prev = warped there. RGB coded by "
             f"`LowDelayEncoder('h264')` (libx264 as shipped: 3 reference frames), GOP {result['gop']}, "
             f"{result['frames']} frames per chain; all pooled over every predicted frame. Classes are those "
             "of the RGB field's 4x4 blocks: static (zero vector), moving (non-zero vector), intra (no vector). "
             f"Skip-like: share of 8x8 thermal blocks whose mean absolute prediction error is within 1 (or 2) "
             "grey levels, i.e. blocks a codec could copy with no residual. Last column: the same warp on the "
             "decoded RGB luma itself (sanity check of the field).", ""]
    for name, block in result["sets"].items():
        lines += [f"**{name}** ({result['chains'][name]} chains)", "", HEADER, *table_rows(block), ""]
        if any("thermal_div2" in r for r in block.values()):
            lines += [f"{name}, thermal at half the RGB size (320x240; the field rescaled):", "", HEADER,
                      *table_rows(block, "thermal_div2"), ""]
    for name, block in result.get("refs1", {}).items():
        lines += [f"Diagnostic, **{name} with libx264 `ref=1`** (every vector then points at the previous frame):",
                  "", HEADER, *table_rows(block), ""]
    lines += summary(result)
    lines += [f"HEVC: {result['hevc']}", "", "```bash", COMMAND, "```", ""]
    return "\n".join(lines)


def _span(vals: list[float], fmt: str = "+.1f") -> str:
    def f(v):
        s = format(v, fmt)
        return s.replace("-", "+") if float(s) == 0 else s   # no "-0"
    lo, hi = min(vals), max(vals)
    return f(lo) if f(lo) == f(hi) else f"{f(lo)} to {f(hi)}"


def summary(result: dict) -> list[str]:
    """The reading, every number computed from the result (ranges over the RGB QPs)."""
    out = ["Reading (ranges over the RGB QPs, full-size thermal):", ""]
    for name, block in result["sets"].items():
        rows = [r["thermal"] for r in block.values()]
        d = [r["warped"]["psnr"] - r["prev"]["psnr"] for r in rows]
        dm = [r["warped"]["psnr_moving"] - r["prev"]["psnr_moving"] for r in rows]
        db = [r["best"]["psnr"] - r["prev"]["psnr"] for r in rows]
        sk = [100 * (r["warped"]["skip1"] - r["prev"]["skip1"]) for r in rows]
        line = (f"- {name}: warping by the RGB vectors changes the thermal prediction's PSNR by {_span(d)} dB "
                f"({_span(dm)} dB on the RGB field's moving blocks, {_span([100 * r['pixel_share']['moving'] for r in rows], '.0f')} % "
                f"of the pixels); the per-block choice (best) by {_span(db)} dB; the skip-like share (MAE <= 1) by "
                f"{_span(sk, '+.0f')} points (it is {_span([100 * r['prev']['skip1'] for r in rows], '.0f')} % without motion: "
                "mostly static blocks).")
        if name in result.get("refs1", {}):
            r1 = [r["thermal"] for r in result["refs1"][name].values()]
            g = [a["warped"]["psnr"] - b["warped"]["psnr"] for a, b in zip(r1, rows)]
            bits = [100 * (a["rgb_bpp"] / b["rgb_bpp"] - 1) for a, b in zip(result["refs1"][name].values(), block.values())]
            line += (f" With one reference frame in libx264 the warped prediction gains another {_span(g)} dB, "
                     f"for {_span(bits)} % RGB bits.")
        out.append(line)
    out += ["", "Where the RGB vectors lose against no motion (m3svd_video at low QPs), the RGB camera sees motion "
            "the thermal one does not (in 0117_1620, drifting smoke in the visible image over a static thermal "
            "scene, seen on its first chain). So the thermal codec needs a "
            "per-block choice between the RGB vector and zero motion (or its own), taken by the encoder; a "
            "vector applied blindly is not enough.", ""]
    return out


def hevc_check(rgb: list) -> str:
    """Codes a few frames with libx265 and decodes them with the same motion-vector export."""
    import av

    enc = videocodec.LowDelayEncoder("h265", "software")
    ctx = av.CodecContext.create("hevc", "r")
    ctx.options = {"flags2": "+export_mvs"}
    kinds, nvec = [], 0
    for t, img in enumerate(rgb[:4]):
        for f in ctx.decode(av.Packet(enc.encode(img, 27, key=t == 0))):
            kinds.append({1: "I", 2: "P", 3: "B"}.get(int(f.pict_type), str(f.pict_type)))
            sd = f.side_data.get(av.sidedata.sidedata.Type.MOTION_VECTORS)
            nvec += 0 if sd is None else len(sd)
    return (f"libx265-coded frames ({', '.join(kinds)}) decoded by libavcodec's `hevc` decoder with "
            f"`flags2=+export_mvs` carry {nvec} motion vectors: the HEVC decoder does not export them "
            f"(libavcodec {'.'.join(map(str, av.library_versions['libavcodec']))}); a H.265 RGB layer needs "
            "motion estimated on the decoded RGB at both ends instead.")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--qps", type=int, nargs="+", default=[22, 27, 32, 37])
    ap.add_argument("--gop", type=int, default=10)
    ap.add_argument("--frames", type=int, default=10, help="frames per chain (default 10)")
    ap.add_argument("--chains", type=int, default=2, help="chains per m3svd_video clip (default 2)")
    ap.add_argument("--thermal-scale", type=int, nargs="*", default=[2], help="also thermal downscaled by these")
    ap.add_argument("--refs1", action="store_true", help="diagnostic: also libx264 with one reference frame")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "results" / "rgb_motion.json")
    ap.add_argument("--write-docs", action="store_true", help="write the docs/results.md section")
    ap.add_argument("--docs-only", action="store_true", help="no measuring: the docs section from --out")
    args = ap.parse_args(argv)

    if args.docs_only:
        result = json.loads(args.out.read_text())
    else:
        sets = {"m3svd_seq": seq_chains(args.data, args.frames),
                "m3svd_video": clip_chains(args.data, args.frames, args.chains)}
        scales = [1] + [s for s in args.thermal_scale if s > 1]
        t0 = time.perf_counter()
        result = {"command": COMMAND, "gop": args.gop, "frames": args.frames, "qps": args.qps,
                  "skip_block": SKIP_BLOCK, "skip_mae": list(SKIP_MAE),
                  "chains": {k: len(v) for k, v in sets.items()},
                  "chain_names": {k: [c[0] for c in v] for k, v in sets.items()},
                  "hevc": hevc_check(sets["m3svd_seq"][0][1]),
                  "sets": run(sets, args.qps, args.gop, scales, None, True)}
        if args.refs1:
            result["refs1"] = run(sets, args.qps, args.gop, [1], 1, True)
        import av
        result["env"] = {"python": platform.python_version(), "pyav": av.__version__,
                         "libavcodec": list(av.library_versions["libavcodec"]), "seconds": time.perf_counter() - t0}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(render(result))
    if args.write_docs:
        from mm_compress_ros.eval.docsection import put_section
        put_section(REPO / "docs" / "results.md", MARK_BEGIN, MARK_END, render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
