"""Training for a wall-clock budget on whatever device is there: the one-shot GPU run.

``scripts/device_train.sh MINUTES`` runs this on the lent GPU machine (docs/training.md, "One-shot
GPU run"); ``test/test_device_train.py`` runs it on the CPU. What it does:

* decodes every clip and still once into device memory (uint8) and draws each batch's random
  aligned crops there (:class:`.sampler.DeviceSampler`): no step waits for the CPU;
* trains the stages of ``--schedule`` one after the other on one model (``ref:1,dep:2,video:1``:
  shares of the budget, in that order), each with its own fused Adam, bf16 autocast (entropy models
  in float32) and a step that never waits for the device (:class:`..trainer.Trainer` with
  ``sync_free``); per stage: linear warm-up, then ``--lr``, then ``--lr``/10 over the stage's last
  ``--decay-share`` of its time (train/schedule.py);
* stops by the clock: ``--minutes`` counts from the start of :func:`main` (data loading included),
  less ``--reserve-s`` for the last save;
* every ``--save-every-s`` seconds, after each stage and at the end, writes the weights (float32)
  to ``--out`` as safetensors shards of at most ``--shard-mib`` MiB plus ``checkpoint.json`` (steps,
  seconds and steps/s per stage, SHA-256 of each shard; train/shards.py), overwriting the same
  file names;
* prints a progress line every ``--log-every-s`` seconds (steps, steps/s, rate and PSNR of the
  stage) and appends it to ``--out``/train.log as JSON.

``mm-compress export OUT`` makes a model of the shards (``train/assemble.py``). The shards hold no
Adam moments (they would not fit the 64 MiB that comes back): continue from them with ``--init``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open

from ..codec.multimodal import ModelConfig
from .data import VIDEO_DECODERS, TrainingSet, load_training_set
from .sampler import DeviceSampler
from .schedule import DEFAULT_SCHEDULE, StageLog, parse_schedule, stage_ends, stage_lr
from .shards import save_shards
from .trainer import AMP, TrainConfig, Trainer


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
        for i, ((stage, _), end) in enumerate(zip(self.schedule, stage_ends(self.schedule, t_train, budget))):
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
                pending.append(tr.train_step(lr=stage_lr(a.lr, g.steps, a.warmup, frac, a.decay_share)))
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
