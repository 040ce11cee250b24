#!/usr/bin/env python3
"""Lossless 16-bit gray (radiometric thermal) codecs: size, exactness, encode/decode time.

Every encoder of this PyAV build (libavcodec) that takes a 16-bit gray pixel format is measured on
radiometric-like frames, each frame coded on its own (intra), with options and pre-steps for FFV1,
and compared with what users have today: OpenCV PNG (``cv2.imencode('.png', img16)``), which is what
ROS ``compressed_image_transport`` sends for ``mono16``. Every coded frame is decoded and compared
value by value with the input; a codec that is not exact is reported as such and never ranked.

Data (``../shared/data``, read only):

* ``real``: the one real radiometric frame (``radiometric/example_radiometric.tiff``, 640x512);
* ``m3svd:<seq>``: synthetic 14-bit sequences (``mm_compress_ros.io.radiometric``, seed = sequence
  index) from the first ``--frames`` thermal frames of each ``m3svd_seq`` sequence (640x480);
* ``roadscene:<image>``: synthetic 14-bit stills from RoadScene thermal images (odd sizes).

Sizes are bytes per frame including everything a decoder needs for that frame alone (FFV1 level 3
extradata counted with every frame; 2 bytes for the minimum with ``v - min``). Times are medians
per frame over the 640-px data sets, one process, reusing the codec contexts across frames (the
module is also timed with fresh contexts per frame); run it alone (``flock /tmp/mmc-cpu.lock``).

    .venv/bin/python benchmarks/lossless16.py --out docs/results/lossless16.json
    .venv/bin/python benchmarks/lossless16.py --frames 5 --only ffv1 --out /tmp/l16.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from mm_compress_ros.codec.lossless import (OPTIONS as MODULE_OPTIONS, Lossless16Decoder,  # noqa: E402
                                            Lossless16Encoder, decode_lossless16, encode_lossless16)
from mm_compress_ros.io.frames import read_thermal  # noqa: E402
from mm_compress_ros.io.radiometric import read_radiometric, synthetic_radiometric  # noqa: E402

REFERENCE = "png-cv2-l3"
ROADSCENE = ("FLIR_00006.jpg", "FLIR_00018.jpg")
GRAY_BY_BITS = ((9, "gray9le"), (10, "gray10le"), (12, "gray12le"), (14, "gray14le"), (16, "gray16le"))


class NotApplicable(Exception):
    """The codec cannot code this frame (e.g. its range needs more bits than the format has)."""


@dataclass
class Dataset:
    name: str
    frames: list[np.ndarray]
    note: str = ""


@dataclass
class Config:
    key: str
    label: str
    kind: str                       # "av", "cv2", "module", "raw"
    codec: str = ""
    pix_fmt: str = "gray16le"
    options: dict = field(default_factory=dict)
    pre: str = "none"               # none | min | tdiff | tdiff_c
    ctx: dict = field(default_factory=dict)
    decoder: str = ""
    self_contained: bool = True
    note: str = ""


def configs() -> list[Config]:
    x265 = "lossless=1:keyint=1:min-keyint=1:rc-lookahead=0:bframes=0:frame-threads=1:pools=1:log-level=error"
    ffv1_l1 = {"level": "1", "coder": "range_tab", "context": "0"}
    return [
        Config("ffv1-l1", "FFV1 level 1, range_tab, context 0", "av", "ffv1", options=ffv1_l1),
        Config("ffv1-l1-ctx1", "FFV1 level 1, range_tab, context 1", "av", "ffv1",
               options={**ffv1_l1, "context": "1"}),
        Config("ffv1-l1-rdef", "FFV1 level 1, range_def, context 0", "av", "ffv1",
               options={**ffv1_l1, "coder": "range_def"}),
        Config("ffv1-l3", "FFV1 level 3 (slices auto, slice CRC)", "av", "ffv1", options={"level": "3"}),
        Config("ffv1-l3-nocrc", "FFV1 level 3, slicecrc 0", "av", "ffv1", options={"level": "3", "slicecrc": "0"}),
        Config("ffv1-l3-ctx1", "FFV1 level 3, context 1, slicecrc 0", "av", "ffv1",
               options={"level": "3", "slicecrc": "0", "context": "1"}),
        Config("ffv1-l3-rdef", "FFV1 level 3, range_def, slicecrc 0", "av", "ffv1",
               options={"level": "3", "slicecrc": "0", "coder": "range_def"}),
        Config("ffv1-l1-min", "FFV1 level 1 on v - min (gray9..16)", "av", "ffv1", options=ffv1_l1, pre="min"),
        Config("ffv1-l1-tdiff", "FFV1 level 1 on (v - prev) mod 2^16", "av", "ffv1", options=ffv1_l1, pre="tdiff",
               self_contained=False),
        Config("ffv1-l1-tdiffc", "FFV1 level 1 on (v - prev + 2^15) mod 2^16", "av", "ffv1", options=ffv1_l1,
               pre="tdiff_c", self_contained=False),
        Config("ffv1-l1-state", "FFV1 level 1, coder state kept (gop 1000)", "av", "ffv1", options=ffv1_l1,
               ctx={"gop_size": 1000}, self_contained=False),
        Config("ffv1-l4-remap", "FFV1 level 4 (experimental), remap dualrle", "av", "ffv1",
               options={"level": "4", "strict": "experimental", "remap_mode": "dualrle"}),
        Config("ffv1-l4-remap-rdef", "FFV1 level 4 (experimental), remap dualrle, range_def", "av", "ffv1",
               options={"level": "4", "strict": "experimental", "remap_mode": "dualrle", "coder": "range_def"}),
        Config("jpegls", "JPEG-LS (jpegls)", "av", "jpegls"),
        Config("jpeg2000", "JPEG 2000 (jpeg2000, dwt53, j2k)", "av", "jpeg2000",
               options={"pred": "dwt53", "format": "j2k"}),
        Config("png-av-mixed", "PNG (libavcodec, pred mixed)", "av", "png", "gray16be", {"pred": "mixed"}),
        Config("png-av-paeth", "PNG (libavcodec, pred paeth)", "av", "png", "gray16be", {"pred": "paeth"}),
        Config("png-av-mixed9", "PNG (libavcodec, pred mixed, level 9)", "av", "png", "gray16be",
               {"pred": "mixed", "compression_level": "9"}),
        Config("ffvhuff-plane", "FFVHuff (pred plane)", "av", "ffvhuff", options={"pred": "plane"}),
        Config("ffvhuff-median", "FFVHuff (pred median, context 1)", "av", "ffvhuff",
               options={"pred": "median", "context": "1"}),
        Config("tiff-deflate", "TIFF (libavcodec, deflate)", "av", "tiff", options={"compression_algo": "deflate"}),
        Config("tiff-lzw", "TIFF (libavcodec, lzw)", "av", "tiff", options={"compression_algo": "lzw"}),
        Config("sgi-rle", "SGI (rle)", "av", "sgi", "gray16be", {"rle": "1"}),
        Config("x265-g12-min", "x265 lossless intra, gray12le on v - min", "av", "libx265", "gray12le",
               {"x265-params": x265, "preset": "medium", "tune": "zerolatency"}, pre="min", decoder="hevc",
               note="x265 has no 14/16-bit path here (gray10le/gray12le only): v - min must fit 12 bits"),
        Config("png-cv2-l1", "PNG (OpenCV, level 1 = cv2 default)", "cv2", "png1"),
        Config("png-cv2-l3", "PNG (OpenCV, level 3: compressed_image_transport)", "cv2", "png3"),
        Config("png-cv2-l9", "PNG (OpenCV, level 9)", "cv2", "png9"),
        Config("tiff-cv2", "TIFF (OpenCV, LZW)", "cv2", "tiff"),
        Config("module", "mm_compress_ros.codec.lossless (reused contexts)", "module"),
        Config("module-fresh", "mm_compress_ros.codec.lossless (fresh contexts)", "module"),
        Config("raw", "raw 16-bit", "raw"),
    ]


# -- data ------------------------------------------------------------------------------------------

def load_datasets(data: Path, n_frames: int, roadscene: tuple[str, ...]) -> list[Dataset]:
    sets = [Dataset("real", [read_radiometric(data / "radiometric" / "example_radiometric.tiff")],
                    "real RAW16 frame")]
    for i, seq in enumerate(sorted(p for p in (data / "m3svd_seq").iterdir() if p.is_dir())):
        paths = sorted((seq / "thermal").glob("*.png"))[:n_frames]
        sets.append(Dataset(f"m3svd:{seq.name}", synthetic_radiometric([read_thermal(p) for p in paths], seed=i),
                            f"synthetic 14-bit, seed {i}"))
    for j, name in enumerate(roadscene):
        img = read_thermal(data / "roadscene" / "thermal" / name)
        sets.append(Dataset(f"roadscene:{Path(name).stem}", synthetic_radiometric([img], seed=100 + j),
                            f"synthetic 14-bit still, seed {100 + j}"))
    return sets


# -- coding -----------------------------------------------------------------------------------------

def _dtype(fmt: str) -> str:
    return ">u2" if fmt.endswith("be") else "<u2"


def _to_frame(a: np.ndarray, fmt: str) -> av.VideoFrame:
    h, w = a.shape
    fr = av.VideoFrame(w, h, fmt)
    p = fr.planes[0]
    np.frombuffer(p, dtype=_dtype(fmt)).reshape(h, p.line_size // 2)[:, :w] = a
    return fr


def _from_frame(fr: av.VideoFrame) -> np.ndarray:
    p = fr.planes[0]
    return np.frombuffer(p, dtype=_dtype(fr.format.name)).reshape(fr.height, p.line_size // 2)[:, :fr.width] \
        .astype(np.uint16)


class AvRunner:
    """One encoder per pixel format and one decoder, reused over the frames of one data set."""

    def __init__(self, cfg: Config, shape: tuple[int, int]):
        self.cfg, self.shape = cfg, shape
        self.enc: dict[str, av.CodecContext] = {}
        self.dec: dict[str, av.CodecContext] = {}
        self.pts = 0
        self.prev_in: np.ndarray | None = None
        self.prev_out: np.ndarray | None = None

    def _encoder(self, fmt: str):
        if fmt not in self.enc:
            h, w = self.shape
            ctx = av.CodecContext.create(self.cfg.codec, "w")
            ctx.width, ctx.height, ctx.pix_fmt = w, h, fmt
            ctx.time_base = Fraction(1, 30)
            ctx.gop_size = 1
            ctx.thread_count = 1
            for k, v in self.cfg.ctx.items():
                setattr(ctx, k, v)
            ctx.options = dict(self.cfg.options)
            ctx.open()
            self.enc[fmt] = ctx
        return self.enc[fmt]

    def _decoder(self, fmt: str):
        if fmt not in self.dec:
            h, w = self.shape
            ctx = av.CodecContext.create(self.cfg.decoder or self.cfg.codec, "r")
            ctx.width, ctx.height = w, h
            ctx.thread_type = "NONE"
            ctx.thread_count = 1
            ed = self.enc[fmt].extradata
            if ed:
                ctx.extradata = ed
            self.dec[fmt] = ctx
        return self.dec[fmt]

    def encode(self, img: np.ndarray):
        pre, fmt, side = self.cfg.pre, self.cfg.pix_fmt, 0
        a, lo = img, 0
        if pre == "min":
            lo = int(img.min())
            a = (img.astype(np.int32) - lo).astype(np.uint16)
            rng = int(a.max())
            if self.cfg.pix_fmt == "gray16le":
                fmt = next(f for b, f in GRAY_BY_BITS if rng < (1 << b))
            elif rng >= (1 << 12):
                raise NotApplicable(f"range {rng + 1} does not fit 12 bits")
            side = 2
        elif pre in ("tdiff", "tdiff_c") and self.prev_in is not None:
            off = 32768 if pre == "tdiff_c" else 0
            a = ((img.astype(np.int32) - self.prev_in + off) & 0xFFFF).astype(np.uint16)
        self.prev_in = img.astype(np.int32)
        ctx = self._encoder(fmt)
        fr = _to_frame(a, fmt)
        fr.pts = self.pts
        self.pts += 1
        packets = ctx.encode(fr)
        if len(packets) != 1:
            raise RuntimeError(f"{len(packets)} packets for one frame")
        data = bytes(packets[0])
        extra = len(ctx.extradata or b"") if self.cfg.self_contained else 0
        return (fmt, lo, data), len(data) + extra + side

    def decode(self, coded) -> np.ndarray:
        fmt, lo, data = coded
        pkt = av.Packet(data)
        # Flag it: libavcodec's PNG decoder adds the previous picture to a packet without the key
        # flag (inter-coded MPNG), which a reused decoder then does to every later frame.
        pkt.is_keyframe = True
        frames = self._decoder(fmt).decode(pkt)
        if len(frames) != 1:
            raise RuntimeError(f"{len(frames)} frames from one packet")
        out = _from_frame(frames[0])
        pre = self.cfg.pre
        if pre == "min":
            out = (out.astype(np.int32) + lo).astype(np.uint16)
        elif pre in ("tdiff", "tdiff_c") and self.prev_out is not None:
            off = 32768 if pre == "tdiff_c" else 0
            out = ((out.astype(np.int32) + self.prev_out - off) & 0xFFFF).astype(np.uint16)
        self.prev_out = out.astype(np.int32)
        return out


class Cv2Runner:
    def __init__(self, cfg: Config, shape):
        self.ext = ".tiff" if cfg.codec == "tiff" else ".png"
        self.params = [cv2.IMWRITE_PNG_COMPRESSION, int(cfg.codec[3:])] if cfg.codec.startswith("png") else []

    def encode(self, img):
        ok, buf = cv2.imencode(self.ext, img, self.params)
        if not ok:
            raise RuntimeError("imencode failed")
        return buf, buf.size

    def decode(self, buf):
        return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)


class ModuleRunner:
    def __init__(self, cfg: Config, shape):
        self.fresh = cfg.key.endswith("fresh")
        self.shape = shape
        self.enc, self.dec = Lossless16Encoder(), Lossless16Decoder()

    def encode(self, img):
        data = encode_lossless16(img) if self.fresh else self.enc.encode(img)
        return data, len(data)

    def decode(self, data):
        return decode_lossless16(data, self.shape) if self.fresh else self.dec.decode(data, self.shape)


def measure(cfg: Config, ds: Dataset) -> dict:
    shape = ds.frames[0].shape
    row = {"config": cfg.key, "dataset": ds.name, "frames": len(ds.frames), "size": [shape[1], shape[0]]}
    if cfg.kind == "raw":
        row.update(bytes_per_frame=2.0 * shape[0] * shape[1], bpp=16.0, exact=True, enc_ms=[], dec_ms=[])
        return row
    try:
        runner = {"av": AvRunner, "cv2": Cv2Runner, "module": ModuleRunner}[cfg.kind](cfg, shape)
        sizes, enc_ms, dec_ms, exact = [], [], [], True
        for img in ds.frames:
            t0 = time.perf_counter()
            coded, n = runner.encode(img)
            t1 = time.perf_counter()
            out = runner.decode(coded)
            t2 = time.perf_counter()
            sizes.append(n)
            enc_ms.append(1e3 * (t1 - t0))
            dec_ms.append(1e3 * (t2 - t1))
            exact &= bool(out is not None and out.dtype == np.uint16 and out.shape == img.shape
                          and np.array_equal(out, img))
        row.update(bytes_per_frame=float(np.mean(sizes)), exact=exact, enc_ms=enc_ms, dec_ms=dec_ms)
    except NotApplicable as e:
        row.update(bytes_per_frame=None, exact=None, error=f"n/a: {e}", enc_ms=[], dec_ms=[])
    except Exception as e:  # noqa: BLE001 - a codec that fails is a result, reported in one line
        row.update(bytes_per_frame=None, exact=False, error=f"{type(e).__name__}: {str(e).splitlines()[0][:160]}",
                   enc_ms=[], dec_ms=[])
    if row["bytes_per_frame"] is not None:
        row["bpp"] = 8.0 * row["bytes_per_frame"] / (shape[0] * shape[1])
    return row


def gray16_encoders() -> dict[str, list[str]]:
    """Every video encoder of this build with a >8-bit gray input format (name -> formats)."""
    out = {}
    for name in sorted(av.codecs_available):
        try:
            c = av.Codec(name, "w")
        except Exception:  # noqa: BLE001 - decoders only, hardware wrappers, ...
            continue
        if c.type != "video":
            continue
        fmts = [f.name for f in (c.video_formats or []) if f.name.startswith("gray") and f.name not in ("gray", "gray8")
                and not f.name.startswith("grayf")]
        if fmts:
            out[name] = fmts
    return out


# -- summary ----------------------------------------------------------------------------------------

def summarize(rows: list[dict], cfgs: list[Config], datasets: list[Dataset]) -> list[dict]:
    groups = {"real": ["real"], "m3svd": [d.name for d in datasets if d.name.startswith("m3svd:")],
              "roadscene": [d.name for d in datasets if d.name.startswith("roadscene:")]}
    timed = {d.name for d in datasets if d.frames[0].shape[1] == 640}
    by = {(r["config"], r["dataset"]): r for r in rows}
    ref = {d.name: by[(REFERENCE, d.name)]["bytes_per_frame"] for d in datasets if (REFERENCE, d.name) in by}
    out = []
    for c in cfgs:
        rs = [by[(c.key, d.name)] for d in datasets if (c.key, d.name) in by]
        if not rs:
            continue
        s = {"config": c.key, "label": c.label, "codec": c.codec, "pix_fmt": c.pix_fmt, "options": c.options,
             "pre": c.pre, "self_contained": c.self_contained, "note": c.note,
             "exact": all(r["exact"] for r in rs if r["exact"] is not None),
             "errors": sorted({r["error"] for r in rs if r.get("error")})}
        for g, names in groups.items():
            vals = [by[(c.key, n)] for n in names if (c.key, n) in by and by[(c.key, n)]["bytes_per_frame"] is not None]
            if vals and len(vals) == len(names):
                s[f"{g}_bytes"] = float(np.mean([v["bytes_per_frame"] for v in vals]))
                s[f"{g}_bpp"] = float(np.mean([v["bpp"] for v in vals]))
        ratios = [r["bytes_per_frame"] / ref[r["dataset"]] for r in rs
                  if r["bytes_per_frame"] is not None and ref.get(r["dataset"])]
        if ratios and len(ratios) == len(datasets):
            s["rel_png"] = float(np.mean(ratios))
        enc = [t for r in rs if r["dataset"] in timed for t in r["enc_ms"]]
        dec = [t for r in rs if r["dataset"] in timed for t in r["dec_ms"]]
        if enc:
            s["enc_ms"] = float(statistics.median(enc))
            s["dec_ms"] = float(statistics.median(dec))
        out.append(s)
    return out


def markdown(summary: list[dict]) -> str:
    def f(v, fmt):
        return "-" if v is None else format(v, fmt)

    lines = ["| codec | real 640x512 bytes (bpp) | m3svd 640x480 bytes (bpp) | roadscene bytes (bpp) "
             "| vs PNG (OpenCV l3) | enc ms | dec ms | exact |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for s in summary:
        cells = []
        for g in ("real", "m3svd", "roadscene"):
            b = s.get(f"{g}_bytes")
            cells.append("-" if b is None else f"{b:,.0f} ({s[f'{g}_bpp']:.2f})")
        exact = "yes" if s["exact"] else "**NO**"
        if s["errors"]:
            exact += " (" + "; ".join(s["errors"])[:80] + ")"
        label = s["label"] + ("" if s["self_contained"] else " [not self-contained]")
        lines.append(f"| {label} | {' | '.join(cells)} | {f(s.get('rel_png'), '.3f')} | {f(s.get('enc_ms'), '.1f')} "
                     f"| {f(s.get('dec_ms'), '.1f')} | {exact} |")
    return "\n".join(lines)


MARK_BEGIN, MARK_END = "<!-- lossless16: benchmarks/lossless16.py -->", "<!-- /lossless16 -->"


def render_section(result: dict) -> str:
    """The "Lossless 16-bit thermal" section of docs/results.md (benchmarks/results.py keeps it)."""
    sets = ", ".join(f"{d['name']} ({d['frames']} x {d['size'][0]}x{d['size'][1]}, counts {d['min']}-{d['max']}; "
                     f"{d['note']})" for d in result["datasets"])
    return ("## Lossless 16-bit thermal (`--thermal-codec lossless`)\n\n"
            f"Measured by `{result['command']}` (libavcodec {result['machine']['libavcodec']}, PyAV "
            f"{result['machine']['pyav']}) on {sets}. Every codec is checked value by value (exact); sizes are "
            "bytes per frame (bits per pixel), against OpenCV's PNG at level 3, what compressed_image_transport "
            "users have today; times are medians per frame on one core. The winner, "
            f"**{result['winner']}**, is what `codec/lossless.py` codes (each frame self-contained).\n\n"
            + markdown(result["summary"]) + "\n")


def write_docs(result: dict, doc: Path = REPO / "docs" / "results.md") -> None:
    """Puts the section into docs/results.md between its markers (before "## Reproduce")."""
    from mm_compress_ros.eval.docsection import put_section

    put_section(doc, MARK_BEGIN, MARK_END, render_section(result))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data", help="data root (../shared/data)")
    ap.add_argument("--frames", type=int, default=20, help="frames per m3svd_seq sequence (default 20)")
    ap.add_argument("--roadscene", nargs="*", default=list(ROADSCENE), help="RoadScene thermal images to use")
    ap.add_argument("--only", nargs="*", default=None, help="config keys (or prefixes) to run; the reference "
                    f"{REFERENCE} always runs")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "results" / "lossless16.json")
    ap.add_argument("--per-frame", action="store_true", help="keep per-frame times in the JSON")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--write-docs", action="store_true", help="also write the section of docs/results.md")
    ap.add_argument("--docs-only", action="store_true", help="no measuring: the docs section from --out")
    args = ap.parse_args(argv)
    if args.docs_only:
        write_docs(json.loads(args.out.read_text()))
        return 0

    from tqdm import tqdm

    av.logging.set_level(av.logging.PANIC)
    cfgs = configs()
    if args.only:
        cfgs = [c for c in cfgs if c.key == REFERENCE or any(c.key.startswith(p) for p in args.only)]
    datasets = load_datasets(args.data, args.frames, tuple(args.roadscene))
    rows = []
    jobs = [(c, d) for c in cfgs for d in datasets]
    for c, d in tqdm(jobs, desc="lossless16", disable=args.no_progress):
        rows.append(measure(c, d))
    summary = summarize(rows, cfgs, datasets)
    ranked = [s for s in summary if s["exact"] and s["self_contained"] and not s["errors"] and s.get("rel_png")
              and s["config"] not in ("raw",) and not s["config"].startswith("module")]
    winner = min(ranked, key=lambda s: s["rel_png"]) if ranked else None
    result = {
        "command": "benchmarks/lossless16.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": {"cpu": platform.processor() or platform.machine(), "python": platform.python_version(),
                    "pyav": av.__version__, "libavcodec": ".".join(map(str, av.library_versions["libavcodec"])),
                    "opencv": cv2.__version__},
        "reference": REFERENCE,
        "module_options": MODULE_OPTIONS,
        "gray_encoders": gray16_encoders(),
        "not_measured": {
            "huffyuv": "no 16-bit gray input (ffvhuff is its 16-bit variant)",
            "libopenjpeg": "not in this build (the native jpeg2000 encoder is measured)",
            "libx264": "gray10le at most",
            "libx265": "gray10le/gray12le at most: measured only on v - min when it fits 12 bits",
            "pam/pgm/fits/dpx": "uncompressed containers (same as raw 16-bit)",
        },
        "datasets": [{"name": d.name, "frames": len(d.frames), "size": [d.frames[0].shape[1], d.frames[0].shape[0]],
                      "min": int(min(f.min() for f in d.frames)), "max": int(max(f.max() for f in d.frames)),
                      "note": d.note} for d in datasets],
        "winner": winner["config"] if winner else None,
        "summary": summary,
        "rows": [r if args.per_frame else {k: v for k, v in r.items() if k not in ("enc_ms", "dec_ms")} |
                 ({"enc_ms_median": statistics.median(r["enc_ms"]), "dec_ms_median": statistics.median(r["dec_ms"])}
                  if r["enc_ms"] else {}) for r in rows],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(markdown(summary))
    print(f"\nwinner (smallest exact self-contained codec): {result['winner']}; wrote {args.out}")
    if args.write_docs:
        write_docs(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
