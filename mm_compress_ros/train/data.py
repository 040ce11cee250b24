"""Training data: RGB + thermal pairs and sequences held in memory as uint8, random crops.

Layouts understood (all with matching file names between the two modalities):

* pair folders: ``<root>/{rgb,thermal}/*`` (RoadScene); also ``{vi,ir}``, ``{visible,infrared}``
  (LLVIP: ``visible/train``, ``infrared/train``; MSRS: ``train/{vi,ir}``);
* FLIR ADAS aligned pairs: ``<root>/JPEGImages/FLIR_XXXXX_RGB.jpg`` + ``FLIR_XXXXX_PreviewData.jpeg``;
* frame-sequence folders: ``<root>/<seq>/{rgb,thermal}/NNNN.png`` (M3SVD sequences);
* KAIST multispectral sequences: ``<root>/setXX/VXXX/{visible,lwir}/IXXXXX.jpg``;
* paired videos: ``<root>/<clip>/{rgb,thermal}.mp4`` (M3SVD videos), decoded with PyAV, or with
  OpenCV's FFmpeg where PyAV is missing (the lent GPU machine): the same frames either way; with
  ``rgb_h264_qp<QP>.h264`` beside them (or instead of ``rgb.mp4``), the RGB coded by H.264 at those
  QPs (:mod:`.coded`, the real-time codec's GPU pack), held in ``Sequence.coded``;
* thermal-only videos: ``<root>/<clip>/thermal.mp4`` (M3SVD thermal clips). Their RGB side is the
  blank reference (a constant grey image, no memory): they teach the dependent codec to code
  thermal when the other camera says nothing, which is also what the cross-modal gain is
  measured against. :class:`CropSampler` draws them with probability ``blank_share``.
"""

from __future__ import annotations

import importlib.util
import itertools
import sys
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from ..io.frames import FrameSourceError, IMAGE_EXTS, iter_video, read_rgb, read_thermal
from .coded import coded_files, read_coded

PAIR_DIRS = [("rgb", "thermal"), ("vi", "ir"), ("visible", "infrared")]


@dataclass
class Sequence:
    """Consecutive frames of one recording: rgb (T,H,W,3) and thermal (T,H,W) uint8."""

    name: str
    rgb: np.ndarray
    thermal: np.ndarray
    blank: bool = False     # no RGB was recorded: ``rgb`` is the blank reference
    # the RGB as the hybrid decoder gets it, coded by H.264 at each QP (train/coded.py); a pack for
    # the real-time codec carries only these, and the best of them stands in for ``rgb``
    coded: dict[int, np.ndarray] | None = None


@dataclass
class TrainingSet:
    stills: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    sequences: list[Sequence] = field(default_factory=list)

    def describe(self) -> str:
        frames = sum(len(s.rgb) for s in self.sequences)
        blank = [s for s in self.sequences if s.blank]
        extra = (f", of which {len(blank)} thermal-only ({sum(len(s.rgb) for s in blank)} frames)"
                 if blank else "")
        return f"{len(self.stills)} still pairs, {len(self.sequences)} sequences ({frames} frames){extra}"


def _match(rgb_dir: Path, th_dir: Path) -> list[tuple[Path, Path]]:
    th = {p.stem: p for p in th_dir.iterdir() if p.suffix.lower() in IMAGE_EXTS}
    return [(p, th[p.stem]) for p in sorted(rgb_dir.iterdir())
            if p.suffix.lower() in IMAGE_EXTS and p.stem in th]


def find_pair_dirs(root: Path) -> list[tuple[Path, Path]]:
    """Pair folders under ``root`` (itself, ``train/`` subfolders, FLIR/KAIST style names)."""
    out = []
    for base in (root, root / "train"):
        for a, b in PAIR_DIRS:
            ra, rb = base / a, base / b
            if ra.is_dir() and rb.is_dir():
                if (ra / "train").is_dir() and (rb / "train").is_dir():
                    ra, rb = ra / "train", rb / "train"
                out.append((ra, rb))
    return out


def _fit(rgb: np.ndarray, th: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Crops both to their common size (registered pairs may differ by a pixel or two)."""
    h, w = min(rgb.shape[0], th.shape[0]), min(rgb.shape[1], th.shape[1])
    return np.ascontiguousarray(rgb[:h, :w]), np.ascontiguousarray(th[:h, :w])


def _to8(th: np.ndarray) -> np.ndarray:
    if th.dtype == np.uint8:
        return th
    lo, hi = np.percentile(th, (0.5, 99.5))
    return np.clip((th.astype(np.float32) - lo) * (255.0 / max(hi - lo, 1.0)), 0, 255).astype(np.uint8)


def load_stills(root: Path, limit: int | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    pairs = []
    for rd, td in find_pair_dirs(root):
        pairs += _match(rd, td)
    if limit:
        pairs = pairs[:limit]
    return [_fit(read_rgb(a), _to8(read_thermal(b))) for a, b in tqdm(pairs, desc=f"stills {root.name}", leave=False)]


def load_frame_sequences(seq_dirs: list[Path], names: tuple[str, str] = ("rgb", "thermal"),
                         limit: int | None = None) -> list[Sequence]:
    """Each ``<seq>/<rgb name>/`` + ``<seq>/<thermal name>/`` folder pair is one sequence."""
    seqs = []
    for d in tqdm(seq_dirs, desc="sequences", leave=False):
        pairs = _match(d / names[0], d / names[1])[:limit]
        if not pairs:
            continue
        fr = [_fit(read_rgb(a), _to8(read_thermal(b))) for a, b in pairs]
        seqs.append(Sequence(d.name, np.stack([f[0] for f in fr]), np.stack([f[1] for f in fr])))
    return seqs


def load_flir_aligned(root: Path, limit: int | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """FLIR ADAS "aligned" layout: ``JPEGImages/FLIR_XXXXX_RGB.jpg`` + ``FLIR_XXXXX_PreviewData.jpeg``."""
    pairs = []
    for th in sorted((root / "JPEGImages").glob("*_PreviewData.jpeg")):
        rgb = th.with_name(th.name.replace("_PreviewData.jpeg", "_RGB.jpg"))
        if rgb.is_file():
            pairs.append((rgb, th))
    pairs = pairs[:limit]
    return [_fit(read_rgb(a), _to8(read_thermal(b))) for a, b in tqdm(pairs, desc="FLIR aligned", leave=False)]


def _kaist_sequences(root: Path) -> list[Path]:
    """KAIST multispectral: ``setXX/VXXX/{visible,lwir}/IXXXXX.jpg`` (consecutive frames)."""
    return sorted(p for p in root.glob("*/*") if (p / "visible").is_dir() and (p / "lwir").is_dir())


def detect_layout(d: Path) -> str | None:
    """One of ``flir``, ``videos``, ``thermal_videos``, ``sequences``, ``kaist``, ``pairs`` or None."""
    if (d / "JPEGImages").is_dir() and next((d / "JPEGImages").glob("*_PreviewData.jpeg"), None):
        return "flir"
    subdirs = [p for p in d.iterdir() if p.is_dir()]
    if any(_paired_clip(p) for p in subdirs):
        return "videos"
    if any((p / "thermal.mp4").is_file() for p in subdirs):
        return "thermal_videos"
    if any((p / "rgb").is_dir() and (p / "thermal").is_dir() for p in subdirs):
        return "sequences"
    if _kaist_sequences(d):
        return "kaist"
    if find_pair_dirs(d):
        return "pairs"
    return None


VIDEO_DECODERS = ("auto", "av", "cv2")


def _luma_to_gray(y: np.ndarray) -> np.ndarray:
    """PyAV's ``gray`` picture of a limited-range luma plane: ``(Y - 16) * 255 / 219``, rounded."""
    lut = np.clip(np.round((np.arange(256) - 16) * 255.0 / 219.0), 0, 255).astype(np.uint8)
    return lut[y]


def _iter_video_cv2(path: Path, gray: bool):
    """A video's frames through OpenCV's FFmpeg, equal to PyAV's: RGB is its BGR picture reversed;
    gray is the raw luma plane (``CAP_PROP_CONVERT_RGB`` off) expanded to full range as PyAV does."""
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise FrameSourceError(f"cannot open video {path}")
    h, w = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)), int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
    if gray:
        cap.set(cv2.CAP_PROP_CONVERT_RGB, 0)
    level = cv2.getLogLevel()
    cv2.setLogLevel(2)  # errors only: OpenCV warns on every raw frame ("treated as 8UC1")
    warned = False
    try:
        while True:
            ok, fr = cap.read()
            if not ok:
                break
            if not gray:
                yield np.ascontiguousarray(fr[:, :, ::-1])
            elif fr.ndim == 2 and fr.size >= h * w:  # the luma plane (first h*w bytes of the picture)
                yield _luma_to_gray(fr.reshape(-1)[: h * w].reshape(h, w))
            else:  # this OpenCV build converted anyway: its BGR->gray is within 2 levels of PyAV's
                if not warned:
                    print(f"warning: {path}: OpenCV gives no raw luma; gray frames are approximate",
                          file=sys.stderr)
                    warned = True
                yield cv2.cvtColor(fr, cv2.COLOR_BGR2GRAY)
    finally:
        cv2.setLogLevel(level)
        cap.release()


def read_video(path: Path, gray: bool, limit: int | None = None, stride: int = 1,
               decoder: str = "auto") -> list[np.ndarray]:
    """Every ``stride``-th frame of a video, at most ``limit`` (decoding stops there).
    ``decoder``: ``av`` (PyAV), ``cv2`` (OpenCV's FFmpeg), ``auto`` (PyAV when installed)."""
    if decoder not in VIDEO_DECODERS:
        raise ValueError(f"unknown video decoder {decoder!r}; use one of {', '.join(VIDEO_DECODERS)}")
    if decoder == "auto":
        decoder = "av" if importlib.util.find_spec("av") else "cv2"
    frames = iter_video(path, gray) if decoder == "av" else _iter_video_cv2(Path(path), gray)
    return list(itertools.islice((f for i, f in enumerate(frames) if i % stride == 0), limit))


def _paired_clip(d: Path) -> bool:
    """A paired clip: ``thermal.mp4`` with ``rgb.mp4`` or coded references (train/coded.py)."""
    return (d / "thermal.mp4").is_file() and ((d / "rgb.mp4").is_file() or bool(coded_files(d)))


def load_video_pairs(root: Path, limit: int | None = None, stride: int = 1,
                     decoder: str = "auto") -> list[Sequence]:
    seqs = []
    clips = sorted(p for p in root.iterdir() if p.is_dir() and _paired_clip(p))
    for d in tqdm(clips, desc=f"videos {root.name}", leave=False):
        th = read_video(d / "thermal.mp4", True, limit, stride, decoder)
        files = coded_files(d)
        coded = {qp: read_coded(f, None if limit is None else limit * stride, decoder)[::stride]
                 for qp, f in files.items()}
        rgb = (read_video(d / "rgb.mp4", False, limit, stride, decoder) if (d / "rgb.mp4").is_file()
               else coded[min(coded)])
        n = min([len(rgb), len(th)] + [len(c) for c in coded.values()])
        fr = [_fit(rgb[i], th[i]) for i in range(n)]
        if any(c[0].shape[:2] != rgb[0].shape[:2] for c in coded.values()):
            raise FrameSourceError(f"{d}: coded references of another size than the RGB")
        cod = ({qp: np.stack([_fit(c[i], th[i])[0] for i in range(n)]) for qp, c in coded.items()}
               if coded else None)
        seqs.append(Sequence(d.name, np.stack([f[0] for f in fr]), np.stack([f[1] for f in fr]), coded=cod))
    return seqs


def load_thermal_videos(root: Path, limit: int | None = None, stride: int = 1,
                        decoder: str = "auto") -> list[Sequence]:
    """Thermal-only clips; their RGB is the blank reference, broadcast (it takes no memory)."""
    from ..codec.multimodal import BLANK_REFERENCE

    seqs = []
    clips = sorted(p for p in root.iterdir() if (p / "thermal.mp4").is_file() and not (p / "rgb.mp4").exists())
    for d in tqdm(clips, desc=f"thermal videos {root.name}", leave=False):
        th = np.stack(read_video(d / "thermal.mp4", True, limit, stride, decoder))
        rgb = np.broadcast_to(np.uint8(BLANK_REFERENCE), (*th.shape, 3))
        seqs.append(Sequence(d.name, rgb, th, blank=True))
    return seqs


def load_training_set(roots: list[Path], limit: int | None = None, decoder: str = "auto") -> TrainingSet:
    """Loads each root by its layout (see :func:`detect_layout`), or each of its subfolders
    (``decoder``: how videos are decoded, see :func:`read_video`)."""
    ts = TrainingSet()
    for root in roots:
        root = Path(root)
        if not root.is_dir():
            raise FrameSourceError(f"no such data folder: {root}")
        before = (len(ts.stills), len(ts.sequences))
        layout = detect_layout(root)
        folders = [(root, layout)] if layout else [
            (p, detect_layout(p)) for p in sorted(root.iterdir()) if p.is_dir()]
        for folder, kind in folders:
            if kind == "flir":
                ts.stills += load_flir_aligned(folder, limit)
            elif kind == "videos":
                ts.sequences += load_video_pairs(folder, limit, decoder=decoder)
            elif kind == "thermal_videos":
                ts.sequences += load_thermal_videos(folder, limit, decoder=decoder)
            elif kind == "sequences":
                ts.sequences += load_frame_sequences(
                    sorted(p for p in folder.iterdir() if (p / "rgb").is_dir()), limit=limit)
            elif kind == "kaist":
                ts.sequences += load_frame_sequences(_kaist_sequences(folder), ("visible", "lwir"), limit)
            elif kind == "pairs":
                ts.stills += load_stills(folder, limit)
        if (len(ts.stills), len(ts.sequences)) == before:
            raise FrameSourceError(f"{root}: no RGB + thermal pairs, sequences, videos, FLIR ADAS or KAIST "
                                   "layout found")
    return ts


class CropSampler:
    """Random aligned crops: key-frame batches and (previous, current) sequence batches."""

    def __init__(self, data: TrainingSet, crop: int, seed: int, max_gap: int = 3, downscale: float = 1.0,
                 blank_share: float = 0.25):
        data.sequences = [q for q in data.sequences if len(q.rgb) >= 2]
        small = [q.name for q in data.sequences if min(q.thermal.shape[1:3]) < crop]
        small += [f"still {i}" for i, (_, t) in enumerate(data.stills) if min(t.shape[:2]) < crop]
        if small:
            raise ValueError(f"crop {crop} is larger than some frames ({', '.join(small[:3])})")
        if not 0.0 < downscale <= 1.0:
            raise ValueError(f"--downscale must be in (0, 1], got {downscale}")
        if not 0.0 <= blank_share <= 1.0:
            raise ValueError(f"--blank-share must be in [0, 1], got {blank_share}")
        self.data, self.crop, self.max_gap, self.downscale = data, crop, max_gap, downscale
        self.rng = np.random.default_rng(seed)
        # thermal-only sequences (blank reference) are drawn with probability ``blank_share``
        self._pools = ([i for i, q in enumerate(data.sequences) if not q.blank],
                       [i for i, q in enumerate(data.sequences) if q.blank])
        self.blank_share = blank_share

    def _sequence(self) -> Sequence:
        paired, blank = self._pools
        if not (paired and blank):  # one kind only: uniform over sequences
            return self.data.sequences[int(self.rng.integers(len(self.data.sequences)))]
        pool = blank if self.rng.random() < self.blank_share else paired
        return self.data.sequences[pool[int(self.rng.integers(len(pool)))]]

    def _crop(self, arrays, h, w):
        """The same random window of every array (one frame pair, or a clip), flipped or not.

        With ``downscale < 1`` the window is ``crop / s`` pixels wide (``s`` drawn in
        ``[downscale, 1]``, never wider than the frame) and is shrunk to ``crop`` with area
        averaging (as Ballé et al. did with their lossy training images): edges become sharper
        per pixel, a crop covers more of the scene, and the block artifacts of lossy training data
        (MPEG-4 clips, JPEG stills) mostly average out.
        """
        c = self.crop
        src = c
        if self.downscale < 1.0:
            s = float(self.rng.uniform(max(self.downscale, c / min(h, w)), 1.0))
            src = min(int(round(c / s)), h, w)
        y = int(self.rng.integers(0, h - src + 1))
        x = int(self.rng.integers(0, w - src + 1))
        flip = bool(self.rng.integers(0, 2))
        out = []
        for a in arrays:  # HxW or HxWx3: the first two axes are always rows, columns
            p = a[y:y + src, x:x + src]
            if src != c:
                p = cv2.resize(p, (c, c), interpolation=cv2.INTER_AREA)
            out.append(p[:, ::-1] if flip else p)
        return out

    def stills(self, batch: int):
        rgb, th = [], []
        for _ in range(batch):
            r, t = self.data.stills[int(self.rng.integers(len(self.data.stills)))]
            r, t = self._crop([r, t], *t.shape[:2])
            rgb.append(r)
            th.append(t)
        return np.stack(rgb), np.stack(th)

    def pairs(self, batch: int):
        """(rgb_prev, th_prev, rgb_cur, th_cur), each a batch; frames ``gap`` apart (1..max_gap)."""
        return self.clips(batch, 2)

    def clips(self, batch: int, length: int):
        """(rgb_0, th_0, rgb_1, th_1, ...): ``length`` frames of one sequence per sample, ``gap``
        apart (1..max_gap, drawn per sample), the same crop for all of them."""
        out = [[] for _ in range(2 * length)]
        for _ in range(batch):
            s = self._sequence()
            n = len(s.rgb)
            if n < length:
                raise ValueError(f"sequence {s.name} has {n} frames, fewer than a clip of {length}")
            gap = int(self.rng.integers(1, max(1, min(self.max_gap, (n - 1) // max(length - 1, 1))) + 1))
            t0 = int(self.rng.integers(0, n - (length - 1) * gap))
            h, w = s.thermal.shape[1:3]
            frames = []
            for k in range(length):
                frames += [s.rgb[t0 + k * gap], s.thermal[t0 + k * gap]]
            for o, c in zip(out, self._crop(frames, h, w)):
                o.append(c)
        return tuple(np.stack(o) for o in out)
