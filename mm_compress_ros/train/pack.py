"""``make device-pack``: what the one-shot GPU run needs beyond the working tree, within its limit.

The device machine gets the working tree (tracked and untracked-not-ignored files) plus the carried
paths, at most 64 MiB in all (/work/.library/device/README.md). This fills the room the tree
leaves (less ``--margin-mib``) into an ignored folder (``device/``), copying every file (a link
would not travel). Both packs start with ``wheels/``: CompressAI for CPython 3.12 and
pytorch-msssim (CompressAI imports it), at the versions of requirements.txt; the machine has
neither and no network. Then, for the first design (``mmvc``, the default):

1. ``data/m3svd_video/<clip>/{rgb,thermal}.mp4``: the paired clips, whole clips in name order;
2. ``data/roadscene/{rgb,thermal}/``: the still pairs at least ``--crop`` on both sides (smaller
   ones cannot give a crop), in name order, as many as fit.

For the real-time dependent codec (``--arch rt``, ``mmrt``; :func:`build_rt_pack`):

1. ``data/m3svd_video/<clip>/thermal.mp4`` and ``rgb_h264_qp<QP>.h264``: the RGB of each paired
   clip's first ``--frames`` coded here by H.264 at the QPs of :data:`.coded.CODED_QPS` (the
   machine has no H.264 encoder);
2. ``data/m3svd_thermal_video/<clip>/thermal.mp4``: thermal-only clips, whole, as many as fit.

``MANIFEST.json`` in the pack lists what went in, what was left out and why, and the sizes.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
from tqdm import tqdm

from ..io.frames import IMAGE_EXTS, default_data_root
from .coded import CODEC, CODED_QPS, GOP, code_clip, coded_name

MIB = 1 << 20
LIMIT = 64 * MIB                     # the working tree and the carried paths together
REPO = Path(__file__).resolve().parents[2]
WHEELS = ("compressai", "pytorch-msssim")
WHEEL_PLATFORM = "manylinux_2_34_x86_64"  # the device machine: x86-64, Python 3.12, glibc >= 2.34
RT_FRAMES = 240     # frames of each paired clip the real-time pack codes (24 s at 10 fps)


class PackError(RuntimeError):
    pass


def tree_bytes(repo: Path = REPO) -> int:
    """Bytes of what travels without carry: tracked and untracked-not-ignored files, and the
    checkout's ``shared/`` folder when it has one."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=repo, check=True, capture_output=True).stdout
    names = {n for n in out.decode().split("\0") if n}
    total = sum((repo / n).stat().st_size for n in names if (repo / n).is_file())
    shared = repo / "shared"
    if shared.is_dir():
        total += sum(p.stat().st_size for p in shared.rglob("*") if p.is_file() and
                     str(p.relative_to(repo)) not in names)
    return total


def pinned(name: str, requirements: Path = REPO / "requirements.txt") -> str:
    for line in requirements.read_text().splitlines():
        req = line.split("#")[0].strip()
        if req.lower().replace("_", "-").startswith(name + "=="):
            return req.split("==", 1)[1]
    raise PackError(f"{name} is not pinned in {requirements}")


def download_wheels(dest: Path) -> list[Path]:
    """The wheels for the device machine (kept in ``dest`` between packs)."""
    dest.mkdir(parents=True, exist_ok=True)
    found = []
    for name in WHEELS:
        version = pinned(name)
        stem = f"{name.replace('-', '_')}-{version}-"
        have = sorted(dest.glob(stem + "*.whl"))
        if not have:
            cmd = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-deps",
                   "--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp",
                   "--platform", WHEEL_PLATFORM, f"{name}=={version}", "-d", str(dest)]
            r = subprocess.run(cmd, capture_output=True, text=True)
            have = sorted(dest.glob(stem + "*.whl"))
            if r.returncode or not have:
                raise PackError(f"pip download {name}=={version} failed: {(r.stderr or r.stdout).strip()[-300:]}")
        found.append(have[-1])
    return found


def _pairs(folder: Path) -> list[tuple[Path, Path]]:
    th = {p.stem: p for p in (folder / "thermal").iterdir() if p.suffix.lower() in IMAGE_EXTS}
    return [(p, th[p.stem]) for p in sorted((folder / "rgb").iterdir())
            if p.suffix.lower() in IMAGE_EXTS and p.stem in th]


def _start(out: Path, wheels: list[Path], room: int, limit: int, tree: int, margin: int, data_root: Path):
    """Makes ``out``'s ``data/``, ``site/`` and ``MANIFEST.json`` anew, keeps only ``wheels`` in
    ``out/wheels`` and copies them there. Returns ``used()`` (bytes of ``out`` so far: anything
    else there travels too), the manifest, and ``take(src, dst)``, which copies a file into the
    pack (a copy: a symbolic link would not travel)."""
    out.mkdir(parents=True, exist_ok=True)
    for d in ("data", "site", "staging"):
        shutil.rmtree(out / d, ignore_errors=True)
    (out / "MANIFEST.json").unlink(missing_ok=True)
    for old in (out / "wheels").glob("*.whl"):
        if old.name not in {w.name for w in wheels}:
            old.unlink()
    keep = {(out / "wheels" / w.name).resolve() for w in wheels}
    state = {"used": sum(p.stat().st_size for p in out.rglob("*") if p.is_file() and p.resolve() not in keep)}
    manifest: dict = {"limit_bytes": limit, "tree_bytes": tree, "margin_bytes": margin,
                      "data_root": str(data_root), "wheels": [], "data": {}, "left_out": {}}

    def take(src: Path, dst: Path) -> None:
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.resolve() != dst.resolve():
            shutil.copyfile(src, dst)
        state["used"] += dst.stat().st_size

    def used() -> int:
        return state["used"]

    for w in wheels:
        if used() + w.stat().st_size > room:
            raise PackError(f"no room for {w.name}: the working tree takes {tree / MIB:.1f} MiB of "
                            f"{limit / MIB:.0f} MiB")
        take(w, out / "wheels" / w.name)
        manifest["wheels"].append(w.name)
    return used, manifest, take


def _finish(out: Path, manifest: dict, used: int, tree: int) -> dict:
    manifest["pack_bytes"] = used
    manifest["total_bytes"] = tree + used
    (out / "MANIFEST.json").write_text(json.dumps(manifest, indent=1) + "\n")
    manifest["total_bytes"] += (out / "MANIFEST.json").stat().st_size
    return manifest


def build_pack(out: Path, data_root: Path, crop: int, wheels: list[Path], limit: int = LIMIT,
               margin: int = MIB, tree: int | None = None) -> dict:
    """Fills ``out`` within ``limit - tree - margin`` bytes for the first design's run and returns
    the manifest (see :func:`_start` for what happens to ``out``)."""
    tree = tree_bytes() if tree is None else tree
    room = limit - tree - margin
    used, manifest, take = _start(out, wheels, room, limit, tree, margin, data_root)
    manifest["crop"] = crop

    clips_dir = data_root / "m3svd_video"
    clips = sorted(p for p in clips_dir.iterdir() if (p / "rgb.mp4").is_file() and (p / "thermal.mp4").is_file())
    kept, skipped = [], []
    for c in clips:
        size = (c / "rgb.mp4").stat().st_size + (c / "thermal.mp4").stat().st_size
        if used() + size > room:
            skipped.append(c.name)
            continue
        for f in ("rgb.mp4", "thermal.mp4"):
            take(c / f, out / "data" / "m3svd_video" / c.name / f)
        kept.append(c.name)
    manifest["data"]["m3svd_video"] = {"clips": kept}
    if skipped:
        manifest["left_out"]["m3svd_video"] = f"clips {', '.join(skipped)}: no room"

    pairs = _pairs(data_root / "roadscene")
    n_small = n_room = n_kept = 0
    for rgb, th in pairs:
        img = cv2.imread(str(th), cv2.IMREAD_UNCHANGED)
        if img is None or min(img.shape[:2]) < crop:
            n_small += 1
            continue
        size = rgb.stat().st_size + th.stat().st_size
        if used() + size > room:
            n_room += 1
            continue
        take(rgb, out / "data" / "roadscene" / "rgb" / rgb.name)
        take(th, out / "data" / "roadscene" / "thermal" / th.name)
        n_kept += 1
    manifest["data"]["roadscene"] = {"pairs": n_kept, "of": len(pairs)}
    why = ([f"{n_small} pairs smaller than {crop} px"] if n_small else []) + \
        ([f"{n_room} pairs: no room"] if n_room else [])
    if why:
        manifest["left_out"]["roadscene"] = "; ".join(why)
    thermal_only = data_root / "m3svd_thermal_video"
    if thermal_only.is_dir():
        manifest["left_out"]["m3svd_thermal_video"] = (
            "all clips: the first design's run trains on paired data (make device-pack ARCH=rt packs them)")
    return _finish(out, manifest, used(), tree)


def build_rt_pack(out: Path, data_root: Path, wheels: list[Path], limit: int = LIMIT, margin: int = MIB,
                  tree: int | None = None, qps=CODED_QPS, frames: int | None = RT_FRAMES, progress: bool = True) -> dict:
    """The pack of the real-time dependent codec's run (``make device-pack ARCH=rt``): the wheels,
    then per paired clip its ``thermal.mp4`` and its RGB coded here at ``qps`` (train/coded.py:
    the GPU machine has no H.264 encoder), the first ``frames`` of each clip in name order (the
    coded streams take 4-12 KB a frame: whole clips would leave no room for the rest), then
    thermal-only clips, whole, in name order, as many as fit. ``rgb.mp4`` does not
    travel: the real-time trainer reads only the coded references. Returns the manifest."""
    from .data import read_video

    tree = tree_bytes() if tree is None else tree
    room = limit - tree - margin
    used, manifest, take = _start(out, wheels, room, limit, tree, margin, data_root)
    manifest["arch"] = "rt"
    manifest["coded"] = {"codec": CODEC, "qps": list(qps), "gop": GOP}
    staging = out / "staging"
    clips = sorted(p for p in (data_root / "m3svd_video").iterdir()
                   if (p / "rgb.mp4").is_file() and (p / "thermal.mp4").is_file())
    kept, skipped = [], []
    for c in tqdm(clips, desc="coding RGB references", disable=not progress):
        rgb = read_video(c / "rgb.mp4", False, frames)
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        streams = {qp: staging / coded_name(qp) for qp in qps}
        for qp, path in streams.items():
            path.write_bytes(code_clip(rgb, qp))
        size = (c / "thermal.mp4").stat().st_size + sum(p.stat().st_size for p in streams.values())
        if used() + size > room:
            skipped.append(c.name)
            continue
        dst = out / "data" / "m3svd_video" / c.name
        take(c / "thermal.mp4", dst / "thermal.mp4")
        for path in streams.values():
            take(path, dst / path.name)
        kept.append({"clip": c.name, "frames": len(rgb)})
    shutil.rmtree(staging, ignore_errors=True)
    manifest["data"]["m3svd_video"] = {"clips": kept}
    if skipped:
        manifest["left_out"]["m3svd_video"] = f"clips {', '.join(skipped)}: no room"
    thermal_only = data_root / "m3svd_thermal_video"
    if thermal_only.is_dir():
        kept, skipped = [], []
        for c in sorted(p for p in thermal_only.iterdir() if (p / "thermal.mp4").is_file()):
            if used() + (c / "thermal.mp4").stat().st_size > room:
                skipped.append(c.name)
                continue
            take(c / "thermal.mp4", out / "data" / "m3svd_thermal_video" / c.name / "thermal.mp4")
            kept.append(c.name)
        manifest["data"]["m3svd_thermal_video"] = {"clips": kept}
        if skipped:
            manifest["left_out"]["m3svd_thermal_video"] = f"{len(skipped)} clips: no room"
    manifest["left_out"]["roadscene"] = "stills have no coded references: the real-time run does not use them"
    return _finish(out, manifest, used(), tree)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mm_compress_ros.train.pack", description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO / "device"), help="the pack folder (git-ignored; default device/)")
    ap.add_argument("--arch", default="mmvc", choices=("mmvc", "rt"),
                    help="the design the run trains: mmvc (first design) or rt (real-time dependent codec)")
    ap.add_argument("--data-root", help="default: ../shared/data")
    ap.add_argument("--crop", type=int, default=256, help="stills smaller than this are left out (default 256)")
    ap.add_argument("--frames", type=int, default=RT_FRAMES,
                    help=f"--arch rt: frames of each paired clip coded and packed (default {RT_FRAMES})")
    ap.add_argument("--margin-mib", type=float, default=1.0, help="room left for the tree to grow (default 1)")
    args = ap.parse_args(argv)
    root = Path(args.data_root) if args.data_root else default_data_root()
    try:
        if root is None or not (root / "m3svd_video").is_dir():
            raise PackError(f"no m3svd_video under {root}: pass --data-root")
        out = Path(args.out)
        wheels = download_wheels(out / "wheels")
        margin = int(args.margin_mib * MIB)
        m = (build_rt_pack(out, root, wheels, margin=margin, frames=args.frames) if args.arch == "rt"
             else build_pack(out, root, args.crop, wheels, margin=margin))
    except (PackError, OSError, subprocess.CalledProcessError) as exc:
        print(f"device-pack: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({k: m[k] for k in ("wheels", "data", "left_out")}, indent=1))
    print(f"pack {m['pack_bytes'] / MIB:.1f} MiB + working tree {m['tree_bytes'] / MIB:.1f} MiB = "
          f"{m['total_bytes'] / MIB:.1f} MiB of {m['limit_bytes'] / MIB:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
