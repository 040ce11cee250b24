"""Training for a wall-clock budget on whatever device is there: the one-shot GPU run.

``scripts/device_train.sh MINUTES`` runs this on the lent GPU machine (docs/training.md, "One-shot
GPU run"); ``test/test_device_train.py`` runs it on the CPU. What it does:

* decodes every clip and still once into device memory (uint8) and draws each batch's random
  aligned crops there (:class:`DeviceSampler`): no step waits for the CPU;
* trains the stages of ``--schedule`` one after the other on one model (``ref:1,dep:2,video:1``:
  shares of the budget, in that order), each with its own fused Adam, bf16 autocast (entropy models
  in float32) and a step that never waits for the device (:class:`..trainer.Trainer` with
  ``sync_free``); per stage: linear warm-up, then ``--lr``, then ``--lr``/10 over the stage's last
  ``--decay-share`` of its time;
* stops by the clock: ``--minutes`` counts from the start of :func:`main` (data loading included),
  less ``--reserve-s`` for the last save;
* every ``--save-every-s`` seconds, after each stage and at the end, writes the weights (float32)
  to ``--out`` as safetensors shards of at most ``--shard-mib`` MiB plus ``checkpoint.json`` (steps,
  seconds and steps/s per stage, SHA-256 of each shard), overwriting the same file names;
* prints a progress line every ``--log-every-s`` seconds (steps, steps/s, rate and PSNR of the
  stage) and appends it to ``--out``/train.log as JSON.

``mm-compress export OUT`` makes a model of the shards (``train/assemble.py``). The shards hold no
Adam moments (they would not fit the 64 MiB that comes back): continue from them with ``--init``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from ..codec.multimodal import ModelConfig
from .data import VIDEO_DECODERS, TrainingSet, load_training_set
from .trainer import AMP, STAGES, TrainConfig, Trainer

MIB = 1 << 20
FILE_LIMIT = 16 * MIB        # the largest file that comes back from the device machine's $OUT
CHECKPOINT_FORMAT = "mm-compress sharded checkpoint 1"
DEFAULT_SCHEDULE = "ref:1,dep:2,video:1"


# -- crops drawn on the device ---------------------------------------------------------------------

class DeviceSampler:
    """Random aligned crops drawn on the device from frames held there as uint8.

    The same draws as :class:`.data.CropSampler` (a sequence uniformly, or thermal-only ones at
    ``blank_share``; a gap of 1..``max_gap`` frames, a window, a horizontal flip; ``downscale``: a
    larger window shrunk by area averaging, one scale per batch here), made with a device generator and one gather per batch. Frames of
    different sizes are padded into one tensor and each draw stays inside its own frame. Stills
    smaller than the crop are left out (``dropped_stills``); sequences smaller than it are refused.
    ``data`` is the training set as used (those stills left out). ``last`` holds the latest
    batch's draws (frame indices, rows, columns, flips, window size) for checks. Paired clips
    with coded references (:mod:`.coded`) also give the RGB as coded at a QP of
    :attr:`coded_qps` (``clips(..., coded=...)``)."""

    on_device = True

    def __init__(self, data: TrainingSet, crop: int, seed: int, device, max_gap: int = 3,
                 downscale: float = 1.0, channels_last: bool = False, blank_share: float | None = None):
        if not 0.0 < downscale <= 1.0:
            raise ValueError(f"--downscale must be in (0, 1], got {downscale}")
        self.device = torch.device(device)
        seqs = [q for q in data.sequences if len(q.rgb) >= 2]
        small = [q.name for q in seqs if min(q.thermal.shape[1:3]) < crop]
        if small:
            raise ValueError(f"crop {crop} is larger than some frames ({', '.join(small[:3])})")
        stills = [(r, t) for r, t in data.stills if min(t.shape[:2]) >= crop]
        self.dropped_stills = len(data.stills) - len(stills)
        self.data = TrainingSet(stills=stills, sequences=seqs)
        self.crop, self.max_gap, self.downscale, self.channels_last = crop, max_gap, downscale, channels_last
        self.gen = torch.Generator(device=self.device)
        self.gen.manual_seed(seed)
        self.rng = np.random.default_rng(seed)  # the per-batch downscale factor (host side: no sync)
        self.seq = self._upload([(q.rgb, q.thermal) for q in seqs]) if seqs else None
        self.still = self._upload([(r[None], t[None]) for r, t in stills]) if stills else None
        self.min_seq_len = min((len(q.rgb) for q in seqs), default=0)
        self.last: dict = {}
        # thermal-only sequences (blank reference) drawn with probability ``blank_share`` (None:
        # every sequence alike), as CropSampler does
        if blank_share is not None and not 0.0 <= blank_share <= 1.0:
            raise ValueError(f"--blank-share must be in [0, 1], got {blank_share}")
        blank = [i for i, q in enumerate(seqs) if q.blank]
        paired = [i for i, q in enumerate(seqs) if not q.blank]
        self.blank_share = blank_share if blank and paired else None
        self._pools = [torch.tensor(p, dtype=torch.long, device=self.device) for p in (paired, blank)]
        # coded references (train/coded.py): the paired sequences' RGB at each packed QP, one
        # (QPs * frames, H, W, 3) tensor laid out like ``seq["rgb"]``; blank sequences keep theirs
        self.coded_qps: tuple[int, ...] = ()
        qsets = {tuple(q.coded) for q in seqs if not q.blank and q.coded}
        if qsets:
            if len(qsets) > 1 or any(not q.blank and not q.coded for q in seqs):
                raise ValueError("every paired clip needs coded references at the same QPs "
                                 f"(found {sorted(qsets)})")
            self.coded_qps = next(iter(qsets))
            rgb = self.seq["rgb"]
            self.seq["coded"] = torch.cat([rgb.clone() for _ in self.coded_qps])
            n = len(rgb)
            for q, i in zip(seqs, self.seq["start"].tolist()):
                if q.blank:
                    continue
                h, w = q.thermal.shape[1:3]
                for k, qp in enumerate(self.coded_qps):
                    a = torch.from_numpy(np.ascontiguousarray(q.coded[qp])).to(self.device)
                    self.seq["coded"][k * n + i:k * n + i + len(a), :h, :w] = a

    def _upload(self, items):
        """One padded (frames, H, W, 3) and (frames, H, W) uint8 tensor, and per item its first
        frame, frame count, height and width (device tensors) plus the smallest side (int)."""
        hs = [t.shape[1] for _, t in items]
        ws = [t.shape[2] for _, t in items]
        n = sum(len(t) for _, t in items)
        rgb = torch.zeros((n, max(hs), max(ws), 3), dtype=torch.uint8, device=self.device)
        th = torch.zeros((n, max(hs), max(ws)), dtype=torch.uint8, device=self.device)
        start, i = [], 0
        for (r, t), h, w in zip(items, hs, ws):
            rgb[i:i + len(t), :h, :w] = torch.from_numpy(np.ascontiguousarray(r)).to(self.device)
            th[i:i + len(t), :h, :w] = torch.from_numpy(np.ascontiguousarray(t)).to(self.device)
            start.append(i)
            i += len(t)
        as_t = lambda v: torch.tensor(v, dtype=torch.long, device=self.device)  # noqa: E731
        return {"rgb": rgb, "th": th, "start": as_t(start), "len": as_t([len(t) for _, t in items]),
                "h": as_t(hs), "w": as_t(ws), "min_side": min(min(hs), min(ws))}

    def _uniform(self, n: torch.Tensor) -> torch.Tensor:
        """An integer in [0, n) per element of ``n`` (a long tensor of counts >= 1)."""
        r = torch.rand(n.shape, generator=self.gen, device=self.device)
        return torch.minimum((r * n).long(), n - 1)

    def _window(self, store: dict) -> int:
        if self.downscale >= 1.0:
            return self.crop
        s = float(self.rng.uniform(max(self.downscale, self.crop / store["min_side"]), 1.0))
        return min(int(round(self.crop / s)), store["min_side"])

    def _gather(self, store: dict, frames: torch.Tensor, item: torch.Tensor,
                coded: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Crops of ``frames`` (b, L) of items ``item`` (b,): [rgb_0, th_0, rgb_1, th_1, ...] as float
        (b, C, crop, crop) in [0, 1]; with ``coded`` (b,) indexes into :attr:`coded_qps`, the RGB
        is the coded reference at that QP."""
        b, length = frames.shape
        src = self._window(store)
        h, w = store["h"][item], store["w"][item]
        y = self._uniform(h - src + 1)
        x = self._uniform(w - src + 1)
        flip = torch.rand(b, generator=self.gen, device=self.device) < 0.5
        ar = torch.arange(src, device=self.device)
        rows = y[:, None] + ar                                               # (b, src)
        cols = x[:, None] + torch.where(flip[:, None], src - 1 - ar, ar)     # (b, src)
        _, H, W = store["th"].shape
        idx = (frames[:, :, None, None] * (H * W) + rows[:, None, :, None] * W
               + cols[:, None, None, :])                                     # (b, L, src, src)
        if coded is None:
            rgb = store["rgb"].view(-1, 3)[idx].permute(0, 1, 4, 2, 3)       # (b, L, 3, src, src)
        else:
            plane = coded[:, None, None, None] * store["th"].numel()
            rgb = store["coded"].view(-1, 3)[idx + plane].permute(0, 1, 4, 2, 3)
        th = store["th"].view(-1)[idx].unsqueeze(2)                           # (b, L, 1, src, src)
        self.last = {"frames": frames, "y": y, "x": x, "flip": flip, "src": src}
        out = []
        for k in range(length):
            for a in (rgb[:, k], th[:, k]):
                a = a.float().div_(255.0)
                if src != self.crop:
                    a = F.interpolate(a, size=(self.crop, self.crop), mode="area")
                fmt = torch.channels_last if self.channels_last else torch.contiguous_format
                out.append(a.contiguous(memory_format=fmt))
        return out

    def _items(self, batch: int) -> torch.Tensor:
        if self.blank_share is None:
            return torch.randint(len(self.seq["start"]), (batch,), generator=self.gen, device=self.device)
        paired, blank = self._pools
        pick = lambda pool: pool[self._uniform(torch.full((batch,), len(pool), device=self.device))]  # noqa: E731
        is_blank = torch.rand(batch, generator=self.gen, device=self.device) < self.blank_share
        return torch.where(is_blank, pick(blank), pick(paired))

    def clips(self, batch: int, length: int, coded: torch.Tensor | None = None) -> list[torch.Tensor]:
        """``length`` frames ``gap`` apart of one sequence per sample, the same crop for all
        (``coded``: see :meth:`_gather`)."""
        if self.seq is None:
            raise ValueError("no sequences to draw clips from")
        if length > self.min_seq_len:
            raise ValueError(f"a sequence has {self.min_seq_len} frames, fewer than a clip of {length}")
        if coded is not None and not self.coded_qps:
            raise ValueError("the data has no coded references (make device-pack ARCH=rt)")
        s = self.seq
        item = self._items(batch)
        n = s["len"][item]
        max_gap = torch.clamp((n - 1) // max(length - 1, 1), min=1, max=self.max_gap)
        gap = 1 + self._uniform(max_gap)
        t0 = self._uniform(n - (length - 1) * gap)
        frames = s["start"][item, None] + t0[:, None] + torch.arange(length, device=self.device) * gap[:, None]
        return self._gather(s, frames, item, coded)

    def stills(self, batch: int) -> list[torch.Tensor]:
        if self.still is None:
            raise ValueError("no stills to draw from")
        s = self.still
        item = torch.randint(len(s["start"]), (batch,), generator=self.gen, device=self.device)
        return self._gather(s, s["start"][item, None], item)


# -- sharded checkpoints ------------------------------------------------------------------------

def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(MIB), b""):
            h.update(chunk)
    return h.hexdigest()


def save_shards(tensors: dict[str, torch.Tensor], out: Path, meta: dict, shard_mib: float = 15.0) -> dict:
    """Writes ``tensors`` as ``weights-<i>.safetensors`` of at most ``shard_mib`` MiB each (greedy, in
    order) and then ``checkpoint.json`` (``meta`` plus the shards' names, sizes and SHA-256),
    each through a temporary file; removes shards of an earlier save beyond this one's count."""
    if shard_mib * MIB > FILE_LIMIT:
        raise ValueError(f"--shard-mib {shard_mib} is over the {FILE_LIMIT // MIB} MiB file limit")
    cap = int(shard_mib * MIB) - 256 * 1024  # room for the safetensors header (names and offsets)
    groups, cur, size = [], {}, 0
    for k, v in tensors.items():
        n = v.numel() * v.element_size()
        if n > cap:
            raise ValueError(f"tensor {k} ({n} bytes) does not fit a {shard_mib} MiB shard")
        if cur and size + n > cap:
            groups.append(cur)
            cur, size = {}, 0
        cur[k], size = v.detach().cpu().contiguous(), size + n
    groups.append(cur)
    out.mkdir(parents=True, exist_ok=True)
    shards = []
    for i, g in enumerate(groups):
        path = out / f"weights-{i}.safetensors"
        tmp = path.with_name(path.name + ".tmp")
        save_file(g, str(tmp), metadata={"shard": f"{i} of {len(groups)}"})
        if tmp.stat().st_size > FILE_LIMIT:
            raise ValueError(f"{path.name}: {tmp.stat().st_size} bytes, over the {FILE_LIMIT} byte limit")
        os.replace(tmp, path)
        shards.append({"file": path.name, "bytes": path.stat().st_size, "sha256": _sha256(path),
                       "tensors": len(g)})
    for old in out.glob("weights-*.safetensors"):
        if old.name not in {s["file"] for s in shards}:
            old.unlink()
    meta = {"format": CHECKPOINT_FORMAT, **meta, "shards": shards}
    tmp = out / "checkpoint.json.tmp"
    tmp.write_text(json.dumps(meta, indent=1))
    os.replace(tmp, out / "checkpoint.json")
    return meta


def load_shards(run: Path, meta: dict | None = None) -> dict[str, torch.Tensor]:
    """The tensors of a sharded checkpoint, each shard checked against its SHA-256 in the JSON."""
    run = Path(run)
    meta = meta or json.loads((run / "checkpoint.json").read_text())
    tensors: dict[str, torch.Tensor] = {}
    for s in meta["shards"]:
        path = run / s["file"]
        if not path.is_file():
            raise ValueError(f"{run}: shard {s['file']} is missing")
        if _sha256(path) != s["sha256"]:
            raise ValueError(f"{path}: SHA-256 does not match checkpoint.json (a save was cut off?)")
        tensors.update(load_file(str(path)))
    return tensors


# -- the run ----------------------------------------------------------------------------------

def parse_schedule(text: str) -> list[tuple[str, float]]:
    """``ref:1,dep:2,video:1`` -> [(stage, share of the budget)], shares summing to 1."""
    out = []
    for part in text.split(","):
        stage, _, w = part.strip().partition(":")
        try:
            weight = float(w) if w else 1.0
        except ValueError:
            raise ValueError(f"--schedule: bad share {w!r} in {part!r}") from None
        if stage not in STAGES:
            raise ValueError(f"--schedule: unknown stage {stage!r}; use {', '.join(STAGES)}")
        if not weight > 0:
            raise ValueError(f"--schedule: the share of {stage} must be > 0")
        out.append((stage, weight))
    total = sum(w for _, w in out)
    return [(s, w / total) for s, w in out]


def model_config_of(init: Path | None, default: ModelConfig):
    """The configuration stored in an exported model file (its safetensors metadata), either
    design's, else ``default``."""
    if init is None:
        return default
    with safe_open(str(init), framework="pt") as f:
        cfg = (f.metadata() or {}).get("config")
    if not cfg:
        return default
    from ..codec.zoo import ARCHS

    config = json.loads(cfg)
    return ARCHS[config.get("arch", "mmvc")][0](**config)


@dataclass
class StageLog:
    stage: str
    share: float
    steps: int = 0
    seconds: float = 0.0
    skipped: int = 0
    last: dict | None = None

    def entry(self) -> dict:
        return {"stage": self.stage, "share": round(self.share, 4), "steps": self.steps,
                "seconds": round(self.seconds, 1), "skipped": self.skipped,
                "steps_per_s": round(self.steps / self.seconds, 3) if self.seconds else None,
                "last": self.last or {}}


class TimedRun:
    def __init__(self, args, data: TrainingSet, sampler: DeviceSampler, mcfg: ModelConfig, device,
                 t_start: float, data_note: str):
        self.args, self.sampler, self.mcfg, self.device = args, sampler, mcfg, torch.device(device)
        self.t_start, self.data_note = t_start, data_note
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "train.log").write_text("")  # a fresh run (the shards are overwritten too)
        self.schedule = parse_schedule(args.schedule)
        self.logs = [StageLog(s, w) for s, w in self.schedule]
        self.deadline = t_start + args.minutes * 60.0 - args.reserve_s
        self.model = None
        self.init_info = None
        self.last_save = time.time()
        self.device_name = (torch.cuda.get_device_name(self.device) if self.device.type == "cuda"
                            else platform.processor() or platform.machine())

    def _cfg(self, stage: str, i: int) -> TrainConfig:
        a = self.args
        return TrainConfig(stage=stage, steps=1 << 40, batch=a.batch, crop=a.crop, lr=a.lr,
                           warmup=a.warmup, still_every=a.still_every, chain=a.chain,
                           downscale=a.downscale, seed=a.seed + i, threads=a.threads, model=self.mcfg,
                           reference_codecs=self.reference_codecs, blank_share=a.blank_share)

    @property
    def rt(self) -> bool:
        return self.mcfg.to_dict().get("arch") == "rt"

    @property
    def reference_codecs(self) -> tuple:
        # the real-time codec trains on the pack's H.264-coded references; the first design on its own
        return ("h264",) if self.rt else ("learned",)

    def _meta(self, complete: bool) -> dict:
        a = self.args
        seconds = sum(g.seconds for g in self.logs)
        return {"step": sum(g.steps for g in self.logs), "seconds": round(seconds, 1),
                "wall_seconds": round(time.time() - self.t_start, 1), "minutes": a.minutes,
                "complete": complete, "device": self.device.type, "device_name": self.device_name,
                "torch": torch.__version__, "numpy": np.__version__, "python": platform.python_version(),
                "amp": a.amp, "channels_last": a.channels_last, "init": self.init_info,
                "train": {"stage": "+".join(s for s, _ in self.schedule), "schedule": a.schedule,
                          "batch": a.batch, "crop": a.crop, "lr": a.lr, "decay_at": round(1 - a.decay_share, 4),
                          "warmup": a.warmup, "chain": a.chain, "still_every": a.still_every,
                          "downscale": a.downscale, "seed": a.seed,
                          "reference_codecs": list(self.reference_codecs), "blank_reference": False,
                          "model": self.mcfg.to_dict(),
                          **({"blank_share": a.blank_share, "coded_qps": list(self.sampler.coded_qps)}
                             if self.rt else {})},
                "stages": [g.entry() for g in self.logs], "data": self.data_note}

    def save(self, complete: bool = False) -> dict:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        bad = [n for n, p in self.model.named_parameters() if not torch.isfinite(p).all()]
        if bad:
            raise FloatingPointError(f"not saving non-finite weights ({bad[0]}, ...)")
        tensors = {f"model/{k}": v for k, v in self.model.state_dict().items()}
        meta = save_shards(tensors, self.out, self._meta(complete), self.args.shard_mib)
        self.last_save = time.time()
        return meta

    def _report(self, i: int, tr: Trainer, pending: list[dict], t_last: float, steps_last: int) -> dict:
        """Means of the statistics since the last report (one wait for the device) as a log line."""
        g = self.logs[i]
        now = time.time()
        line = {"t": round(now - self.t_start, 1), "stage": g.stage, "step": sum(x.steps for x in self.logs),
                "stage_step": g.steps, "steps_per_s": round((g.steps - steps_last) / max(now - t_last, 1e-9), 3),
                "skipped": tr.skipped}
        for k in sorted({k for s in pending for k in s}):
            v = torch.stack([s[k].float() for s in pending if k in s])
            v = v[torch.isfinite(v)]
            if v.numel():
                line[k] = round(float(v.mean()), 4)
        if self.device.type == "cuda":
            line["gpu_gib"] = round(torch.cuda.max_memory_allocated(self.device) / 2**30, 2)
        g.last = {k: v for k, v in line.items() if k not in ("t", "stage", "step", "stage_step")}
        g.skipped = tr.skipped
        shown = " ".join(f"{k} {v}" for k, v in line.items() if k not in ("t", "stage", "step", "stage_step",
                                                                          "steps_per_s", "skipped"))
        print(f"[{line['t']:7.1f}s {g.stage} {i + 1}/{len(self.logs)}] step {line['step']} (stage {g.steps}) "
              f"{line['steps_per_s']:.2f} steps/s | {shown} | skipped {tr.skipped}", flush=True)
        with (self.out / "train.log").open("a") as f:
            f.write(json.dumps(line) + "\n")
        return line

    def run(self) -> dict:
        a = self.args
        t_train = time.time()
        budget = self.deadline - t_train
        if budget < 1.0:
            raise ValueError(f"no time left to train: --minutes {a.minutes} is used up by loading "
                             f"({t_train - self.t_start:.0f} s) and --reserve-s {a.reserve_s}")
        ends, acc = [], 0.0
        for _, w in self.schedule:
            acc += w
            ends.append(t_train + acc * budget)
        for i, ((stage, _), end) in enumerate(zip(self.schedule, ends)):
            trainer_cls = Trainer
            if self.rt:
                from .rt import RTTrainer as trainer_cls
            tr = trainer_cls(self._cfg(stage, i), self.sampler.data, self.out, device=self.device,
                         init_weights=a.init if self.model is None else None, model=self.model,
                         sampler=self.sampler, amp=a.amp, sync_free=True, resume=False)
            if self.model is None:
                self.model, self.init_info = tr.model, tr.init_info
                if a.channels_last:
                    self.model.to(memory_format=torch.channels_last)
            g = self.logs[i]
            start = time.time()
            length = end - start
            t_last, steps_last, pending = start, 0, []
            print(f"stage {stage}: {length:.0f} s, {sum(p.numel() for p in tr.opt.param_groups[0]['params'])} "
                  f"trainable parameters", flush=True)
            while True:
                now = time.time()
                if now >= end:
                    break
                frac = (now - start) / length
                lr = a.lr * min(1.0, (g.steps + 1) / max(a.warmup, 1))
                if frac >= 1.0 - a.decay_share:
                    lr = a.lr * 0.1
                pending.append(tr.train_step(lr=lr))
                g.steps += 1
                g.seconds = time.time() - start
                if time.time() - t_last >= a.log_every_s:
                    self._report(i, tr, pending, t_last, steps_last)
                    t_last, steps_last, pending = time.time(), g.steps, []
                if time.time() - self.last_save >= a.save_every_s:
                    self.save()
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            g.seconds = time.time() - start
            if pending:
                self._report(i, tr, pending, t_last, steps_last)
            self.save(complete=i == len(self.schedule) - 1)
        return self._meta(complete=True)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m mm_compress_ros.train.timed",
                                 description="train for a wall-clock budget; sharded checkpoints in --out")
    ap.add_argument("--minutes", type=float, required=True, help="the whole run's wall-clock budget")
    ap.add_argument("--out", required=True, help="folder for weights-<i>.safetensors, checkpoint.json, train.log")
    ap.add_argument("--data", nargs="+", required=True, help="data folders (layouts as mm-compress train)")
    ap.add_argument("--schedule", default=DEFAULT_SCHEDULE,
                    help=f"stages in order with their shares of the budget (default {DEFAULT_SCHEDULE})")
    ap.add_argument("--init", help="initial weights (a model file: its configuration comes with it)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--warmup", type=int, default=100, help="steps of linear lr warm-up in each stage")
    ap.add_argument("--decay-share", type=float, default=0.15,
                    help="last share of each stage's time at lr/10 (default 0.15)")
    ap.add_argument("--chain", type=int, default=1, help="predicted frames per sample (stages video, all)")
    ap.add_argument("--still-every", type=int, default=4)
    ap.add_argument("--downscale", type=float, default=1.0)
    ap.add_argument("--blank-share", type=float, default=0.25,
                    help="real-time codec: share of clips from thermal-only sequences (default 0.25)")
    ap.add_argument("--amp", default="bf16", choices=list(AMP), help="autocast of the transforms (default bf16)")
    ap.add_argument("--channels-last", action="store_true", help="channels-last tensors (cuDNN's fast layout)")
    ap.add_argument("--limit", type=int, default=None, help="at most N frames per clip / folder")
    ap.add_argument("--video-decoder", default="auto", choices=list(VIDEO_DECODERS))
    ap.add_argument("--N", type=int, default=64, help="model width without --init")
    ap.add_argument("--M", type=int, default=96, help="latent channels without --init")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="CPU threads of torch (0: its default)")
    ap.add_argument("--save-every-s", type=float, default=60.0)
    ap.add_argument("--log-every-s", type=float, default=15.0)
    ap.add_argument("--reserve-s", type=float, default=10.0, help="seconds kept for the last save")
    ap.add_argument("--shard-mib", type=float, default=15.0)
    return ap


def main(argv: list[str] | None = None) -> int:
    t_start = time.time()
    args = build_parser().parse_args(argv)
    from ..codec.device import resolve_device

    try:
        if not 0.0 <= args.decay_share < 1.0:
            raise ValueError(f"--decay-share must be in [0, 1), got {args.decay_share}")
        device = resolve_device(args.device)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        schedule = parse_schedule(args.schedule)
        print(f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}), "
              f"torch {torch.__version__}, numpy {np.__version__}, python {platform.python_version()}; "
              f"schedule {', '.join(f'{s} {w:.0%}' for s, w in schedule)}; batch {args.batch} x {args.crop}^2, "
              f"amp {args.amp}", flush=True)
        data = load_training_set([Path(p) for p in args.data], limit=args.limit, decoder=args.video_decoder)
        init = Path(args.init) if args.init else None
        mcfg = model_config_of(init, ModelConfig(N=args.N, M=args.M))
        rt = mcfg.to_dict().get("arch") == "rt"
        if rt and any(st != "all" for st, _ in schedule):
            raise ValueError("the real-time codec trains as one part: --schedule all:1")
        sampler = DeviceSampler(data, args.crop, args.seed, device, downscale=args.downscale,
                                channels_last=args.channels_last, blank_share=args.blank_share if rt else None)
        if rt and not sampler.coded_qps:
            raise ValueError("the real-time codec needs coded references in the data "
                             "(make device-pack ARCH=rt packs them)")
        if any(s in ("video", "all") for s, _ in schedule) and sampler.min_seq_len < 1 + args.chain:
            raise ValueError(f"--chain {args.chain} needs sequences of {1 + args.chain} frames or more")
        note = (f"{data.describe()} from {', '.join(str(p) for p in args.data)}"
                + (f"; {sampler.dropped_stills} stills smaller than the crop left out" if sampler.dropped_stills else ""))
        print(f"data: {note}; loaded in {time.time() - t_start:.1f} s", flush=True)
        del data
        run = TimedRun(args, sampler.data, sampler, mcfg, device, t_start, note)
        meta = run.run()
    except (ValueError, FloatingPointError) as exc:
        print(f"device-train: error: {exc}", file=sys.stderr)
        return 2
    per_stage = {g["stage"]: g["steps_per_s"] for g in meta["stages"]}
    print(json.dumps({"out": str(args.out), "steps": meta["step"], "seconds": meta["seconds"],
                      "wall_seconds": meta["wall_seconds"], "steps_per_s": per_stage}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
