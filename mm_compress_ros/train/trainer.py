"""Rate-distortion training of the multi-modality codec (CPU or GPU, resumable).

Stages (as in Lu et al.: the reference codec first, then the dependent codec with the reference
frozen, then the temporal codecs with the key-frame codecs frozen), or ``all`` to train every part
jointly. Each step draws one quality level per sample; the loss is
``sum over coded images of (lambda[level] * 255^2 * MSE + bits per pixel)``.

Checkpoints are safetensors (weights and Adam moments) plus a JSON file (step, config, RNG state):
nothing is unpickled when a run resumes.

The wall-clock-budget run for a lent GPU (``train/timed.py``) drives the same :class:`Trainer`
with crops drawn on the device, bf16 autocast and a step that never waits for the device.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from ..codec.multimodal import BLANK_REFERENCE, Decoded, ModelConfig, MultiModalCodec
from .data import CropSampler, TrainingSet

# MSE lambdas of CompressAI's pretrained models, quality 1..6 (images in [0, 1])
LAMBDAS = (0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483)
STAGES = ("ref", "dep", "video", "all")
AMP = {"off": None, "bf16": torch.bfloat16}

PARTS = {
    "ref": ("ref_intra.",),
    "dep": ("align_ref.", "align_cur.", "align.", "align_coder.", "dep_intra."),
    "video": ("ref_temporal.", "ref_inter.", "dep_temporal.", "dep_cross.", "dep_inter."),
}


@dataclass
class TrainConfig:
    stage: str = "all"
    steps: int = 20000
    batch: int = 8
    crop: int = 128
    lr: float = 1e-4
    decay_at: float = 0.85       # fraction of ``steps`` after which lr drops 10x
    blank_reference: bool = False  # stage dep: feed a constant reference (single-modality baseline)
    warmup: int = 100            # steps of linear lr warm-up at the start of every (resumed) run
    still_every: int = 4         # every n-th step also trains key frames on still pairs
    chain: int = 1               # predicted frames after each key frame in one training sample
    downscale: float = 1.0       # crops come from windows up to 1/downscale larger, shrunk (1 = off)
    blank_share: float = 0.25    # share of clips drawn from thermal-only sequences (blank reference)
    # stages dep, video: how the reference the dependent codec sees is coded, cycled step by step
    # ("learned": this model's reference codec; "h264"/"h265": decoded by libavcodec at the level's QP)
    reference_codecs: tuple = ("learned",)
    seed: int = 0
    threads: int = 0             # torch threads (0 = torch default)
    log_every: int = 50
    save_every: int = 500
    model: ModelConfig = field(default_factory=ModelConfig)


def _trainable(name: str, stage: str) -> bool:
    if stage == "all":
        return True
    return name.startswith(PARTS[stage])


def _to_tensor(batch: np.ndarray, device) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(batch)).to(device)
    t = t.unsqueeze(1) if t.ndim == 3 else t.permute(0, 3, 1, 2)
    return t.float().div_(255.0)


def _rd_terms(x: torch.Tensor, x_hat: torch.Tensor, likelihoods: dict, lam: torch.Tensor):
    """Per-sample rate (bpp of this image) and lambda-weighted distortion."""
    n_px = x.shape[-2] * x.shape[-1]
    bits = sum(((-torch.log2(l.float())).flatten(1).sum(1) for l in likelihoods.values()),
               torch.zeros(x.shape[0], device=x.device))
    mse = F.mse_loss(x_hat.float(), x.float(), reduction="none").flatten(1).mean(1)
    return bits / n_px, lam * 255.0 ** 2 * mse, mse


def _psnr(mse: torch.Tensor) -> torch.Tensor:
    """Mean PSNR of a batch, as a tensor (read with ``float()``: reading it waits for the device)."""
    return (10 * torch.log10(1.0 / mse.detach().clamp_min(1e-10))).mean()


def _fp32_forward(forward, device_type: str):
    """``forward`` run without autocast on float32 inputs: the entropy models' likelihoods (and so
    the rate term) keep float32 precision while the transforms around them run in bf16."""
    @functools.wraps(forward)
    def run(*args, **kwargs):
        with torch.autocast(device_type=device_type, enabled=False):
            args = [a.float() if torch.is_tensor(a) and a.is_floating_point() else a for a in args]
            kwargs = {k: (v.float() if torch.is_tensor(v) and v.is_floating_point() else v)
                      for k, v in kwargs.items()}
            return forward(*args, **kwargs)
    return run


class Trainer:
    """One stage's optimisation of ``cfg``. Keyword options (the wall-clock-budget run, ``timed.py``):
    ``model`` trains an existing model (stages in sequence share one) instead of building one;
    ``sampler`` draws the batches (an object with ``clips``/``stills`` returning float tensors on the
    device, ``on_device = True``; default: :class:`CropSampler` on the CPU); ``amp="bf16"`` runs
    the transforms under bf16 autocast (entropy models in float32); ``sync_free`` makes a step that
    never waits for the device (fused Adam skips a non-finite step on the device itself);
    ``resume=False`` ignores a checkpoint in ``run_dir``."""

    def __init__(self, cfg: TrainConfig, data: TrainingSet, run_dir: Path, device="cpu",
                 init_weights: Path | None = None, *, model: MultiModalCodec | None = None,
                 sampler=None, amp: str = "off", sync_free: bool = False, resume: bool = True):
        if cfg.stage not in STAGES:
            raise ValueError(f"unknown stage {cfg.stage!r}; use one of {', '.join(STAGES)}")
        if cfg.chain < 1:
            raise ValueError(f"--chain must be >= 1, got {cfg.chain}")
        if cfg.still_every < 1:
            raise ValueError(f"--still-every must be >= 1, got {cfg.still_every}")
        rt = cfg.model.to_dict().get("arch") == "rt"   # the real-time codec (train/rt.py): stage all
        if cfg.blank_reference and cfg.stage != "dep" and not rt:
            raise ValueError("a blank reference (single-modality baseline) trains stage 'dep' only")
        bad = [c for c in cfg.reference_codecs if c not in ("learned", "h264", "h265")]
        if bad or not cfg.reference_codecs:
            raise ValueError(f"unknown reference codec(s) {bad}; use learned, h264, h265")
        if any(c != "learned" for c in cfg.reference_codecs) and cfg.stage not in ("dep", "video") and not rt:
            raise ValueError("standard-codec references train stages dep and video only")
        if (any(c != "learned" for c in cfg.reference_codecs) and not importlib.util.find_spec("av")
                and not getattr(sampler, "coded_qps", ())):   # a pack's coded references need no PyAV
            raise ValueError("--reference-codec h264/h265 needs PyAV (av), which is not installed here")
        if cfg.stage in ("video", "all") and not data.sequences:
            raise ValueError(f"stage {cfg.stage!r} needs sequences or paired videos in the data")
        if amp not in AMP:
            raise ValueError(f"unknown autocast mode {amp!r}; use one of {', '.join(AMP)}")
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.cfg, self.data, self.run_dir, self.device = cfg, data, Path(run_dir), torch.device(device)
        self.amp, self.sync_free = AMP[amp], sync_free
        torch.manual_seed(cfg.seed)
        fresh = model is None
        if fresh:
            from ..codec.zoo import build_net
            model = build_net(cfg.model.to_dict()).to(self.device)   # either design (config "arch")
        self.model = model
        self.init_info = None
        if init_weights and fresh:
            from ..codec.zoo import load_weights_file, sha256_file
            self.init_info = {"file": str(init_weights), "sha256": sha256_file(Path(init_weights))}
            # parameters only: buffers are constants of the layers (likelihood and GDN bounds) or
            # CDF tables, which training does not use (export rebuilds them); a float16 model file
            # would turn the 1e-9 likelihood bound into 0 and the rate into infinity
            params = dict(self.model.named_parameters())
            state = {k: v.float() for k, v in load_weights_file(init_weights).items() if k in params}
            self.model.load_state_dict(state, strict=False)
        params = [p for n, p in self.model.named_parameters()
                  if _trainable(n, cfg.stage) and not n.endswith(".quantiles")]
        for n, p in self.model.named_parameters():
            p.requires_grad_(_trainable(n, cfg.stage))
        aux = [p for n, p in self.model.named_parameters() if n.endswith(".quantiles") and p.requires_grad]
        # fused Adam reads ``found_inf`` on the device: a non-finite step is skipped without a sync
        self.opt = torch.optim.Adam(params, lr=cfg.lr, fused=sync_free or None)
        self.aux_opt = torch.optim.Adam(aux, lr=1e-3, fused=sync_free or None)
        self.sampler = sampler if sampler is not None else CropSampler(data, cfg.crop, cfg.seed,
                                                                       downscale=cfg.downscale,
                                                                       blank_share=cfg.blank_share)
        if self.amp is not None:
            self._entropy_models_in_fp32()
        self.step = 0
        self._skipped = 0  # steps whose loss or gradient was not finite (no update made)
        self.seconds = 0.0  # training time over all resumed runs (for the model card)
        self.lambdas = torch.tensor(LAMBDAS[: cfg.model.levels], device=self.device)
        if resume:
            self._resume()
        self.start_step = self.step

    @property
    def skipped(self) -> int:
        """Steps whose loss or gradient was not finite (no update made)."""
        return int(self._skipped)

    def _entropy_models_in_fp32(self) -> None:
        for m in self.model.modules():
            if isinstance(m, (EntropyBottleneck, GaussianConditional)) and not getattr(m, "_mmc_fp32", False):
                m.forward = _fp32_forward(m.forward, self.device.type)
                m._mmc_fp32 = True

    def _autocast(self):
        if self.amp is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp)

    def _clips(self, b: int, length: int) -> list[torch.Tensor]:
        if getattr(self.sampler, "on_device", False):
            return list(self.sampler.clips(b, length))
        return [_to_tensor(a, self.device) for a in self.sampler.clips(b, length)]

    def _stills(self, b: int) -> list[torch.Tensor]:
        if getattr(self.sampler, "on_device", False):
            return list(self.sampler.stills(b))
        return [_to_tensor(a, self.device) for a in self.sampler.stills(b)]

    # -- checkpoints ------------------------------------------------------------------------
    @property
    def ckpt_paths(self):
        return self.run_dir / "checkpoint.safetensors", self.run_dir / "checkpoint.json"

    def save(self) -> None:
        bad = [n for n, p in self.model.named_parameters() if not torch.isfinite(p).all()]
        if bad:
            raise FloatingPointError(f"not saving a checkpoint with non-finite weights ({bad[0]}, ...)")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        tensors = {f"model/{k}": v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        meta = {"step": self.step, "seconds": self.seconds, "init": self.init_info, "device": str(self.device),
                "train": {**self.cfg.__dict__, "model": self.cfg.model.to_dict()},
                "sampler_rng": self.sampler.rng.bit_generator.state, "torch_rng": torch.get_rng_state().tolist(),
                "optimizers": {}}
        for name, opt in (("opt", self.opt), ("aux", self.aux_opt)):
            sd = opt.state_dict()
            meta["optimizers"][name] = {"param_groups": sd["param_groups"],
                                        "steps": {str(i): float(s["step"]) for i, s in sd["state"].items()}}
            for i, s in sd["state"].items():
                for k in ("exp_avg", "exp_avg_sq"):
                    tensors[f"{name}/{i}/{k}"] = s[k].detach().cpu().contiguous()
        w, j = self.ckpt_paths
        save_file(tensors, str(w) + ".tmp")
        (Path(str(j) + ".tmp")).write_text(json.dumps(meta))
        os.replace(str(w) + ".tmp", w)
        os.replace(str(j) + ".tmp", j)

    def _resume(self) -> None:
        w, j = self.ckpt_paths
        if not (w.exists() and j.exists()):
            return
        meta = json.loads(j.read_text())
        if meta["train"]["model"] != self.cfg.model.to_dict():
            raise ValueError(f"{j}: checkpoint was made with another model configuration")
        tensors = load_file(str(w))
        self.model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model/")})
        if meta["train"]["stage"] == self.cfg.stage:
            for name, opt in (("opt", self.opt), ("aux", self.aux_opt)):
                om = meta["optimizers"][name]
                state = {int(i): {"step": torch.tensor(st),
                                  "exp_avg": tensors[f"{name}/{i}/exp_avg"].to(self.device),
                                  "exp_avg_sq": tensors[f"{name}/{i}/exp_avg_sq"].to(self.device)}
                         for i, st in om["steps"].items()}
                opt.load_state_dict({"state": state, "param_groups": om["param_groups"]})
            self.step = meta["step"]
            self.init_info = meta.get("init", self.init_info)
            self.seconds = meta.get("seconds", 0.0)
            self.sampler.rng.bit_generator.state = meta["sampler_rng"]
            torch.set_rng_state(torch.tensor(meta["torch_rng"], dtype=torch.uint8))

    # -- one optimisation step --------------------------------------------------------------
    def _levels(self, b: int) -> torch.Tensor:
        return torch.randint(0, self.cfg.model.levels, (b,), device=self.device)

    def _loss_key(self, rgb, th, level, lam):
        ref, dep = (rgb, th) if self.model.ref_name == "rgb" else (th, rgb)
        if self.cfg.blank_reference:  # single-modality baseline: the reference carries nothing
            ref = torch.full_like(ref, BLANK_REFERENCE / 255.0)
        if self.cfg.stage == "ref":  # the dependent codec is not trained: skip it
            r = self.model.ref_intra(ref, level)
            r_bpp, r_d, r_mse = _rd_terms(ref, r["x_hat"], r["likelihoods"], lam)
            stats = {"key_ref_bpp": r_bpp.detach().mean(), "key_ref_psnr": _psnr(r_mse)}
            return (r_bpp + r_d).mean(), {"ref_hat": r["x_hat"]}, stats
        if self._video_codec() is not None:  # the reference as the hybrid profile's decoder gets it
            with torch.no_grad():
                ref_hat = self._video_refs([ref], level)[0]
                stages = self.model.reference_stages(ref_hat, level)
            d = self.model.forward_dep_key(ref_hat, stages, dep, level)
            d_bpp, d_d, d_mse = _rd_terms(dep, d["x_hat"], d["likelihoods"], lam)
            stats = {"key_dep_bpp": d_bpp.detach().mean(), "key_dep_psnr": _psnr(d_mse),
                     "key_ref_psnr": _psnr(F.mse_loss(ref_hat, ref, reduction="none").flatten(1).mean(1))}
            return (d_bpp + d_d).mean(), {"ref_hat": ref_hat, "dep_hat": d["x_hat"]}, stats
        out = self.model.forward_key(ref, dep, level)
        r_bpp, r_d, r_mse = _rd_terms(ref, out["ref_hat"], out["likelihoods"]["ref"], lam)
        d_bpp, d_d, d_mse = _rd_terms(dep, out["dep_hat"], out["likelihoods"]["dep"], lam)
        stats = {"key_ref_bpp": r_bpp.detach().mean(), "key_dep_bpp": d_bpp.detach().mean(),
                 "key_ref_psnr": _psnr(r_mse), "key_dep_psnr": _psnr(d_mse)}
        if self.cfg.stage == "ref":
            loss = (r_bpp + r_d).mean()
        elif self.cfg.stage == "dep":
            loss = (d_bpp + d_d).mean()
        else:
            loss = (r_bpp + r_d + d_bpp + d_d).mean()
        return loss, out, stats

    def _video_codec(self) -> str | None:
        """The standard codec that codes this step's references (None: the learned one)."""
        c = self.cfg.reference_codecs[self.step % len(self.cfg.reference_codecs)]
        return None if c == "learned" else c

    def _video_refs(self, frames: list[torch.Tensor], level: torch.Tensor) -> list[torch.Tensor]:
        """Codes each sample's frames (a key frame, then predicted ones) as one low-delay stream at
        its level's QP and returns libavcodec's decoded pictures, as the hybrid profile does."""
        from ..codec.profiles import reference_qp
        from ..codec.videocodec import LowDelayEncoder, VideoDecoder

        codec, levels = self._video_codec(), self.cfg.model.levels
        out = [torch.empty_like(f) for f in frames]
        for b in range(frames[0].shape[0]):
            enc, dec = LowDelayEncoder(codec, "software"), VideoDecoder(codec)
            qp = reference_qp(int(level[b]) + 1, levels)
            for k, f in enumerate(frames):
                img = (f[b] * 255).round().clamp(0, 255).to(torch.uint8).cpu().numpy()
                img = img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0)
                pic = dec.decode(enc.encode(img, qp, k == 0), img.shape[:2], f.shape[1])
                t = torch.from_numpy(pic).float().div_(255)
                out[k][b] = (t[None] if t.ndim == 2 else t.permute(2, 0, 1)).to(f.device)
        return out

    def learning_rate(self) -> float:
        """Linear warm-up over ``warmup`` steps of this run (fresh Adam moments on pretrained
        weights otherwise make large first updates), then ``lr``, then ``lr / 10`` after
        ``decay_at * steps``."""
        cfg = self.cfg
        if self.step >= cfg.decay_at * cfg.steps:
            return cfg.lr * 0.1
        return cfg.lr * min(1.0, (self.step - self.start_step + 1) / max(cfg.warmup, 1))

    def train_step(self, lr: float | None = None) -> dict:
        """One optimisation step (``lr``: this step's learning rate, default :meth:`learning_rate`).
        Returns its statistics as 0-d tensors (``float()`` reads one)."""
        self.opt.zero_grad(set_to_none=True)
        self.aux_opt.zero_grad(set_to_none=True)
        lr = self.learning_rate() if lr is None else lr
        for g in self.opt.param_groups:
            g["lr"] = lr
        with self._autocast():
            loss, stats = self._forward_loss()
        return self._update(loss, stats)

    def _forward_loss(self) -> tuple[torch.Tensor, dict]:
        cfg, dev = self.cfg, self.device
        b = cfg.batch
        level = self._levels(b)
        lam = self.lambdas[level]
        stats = {}
        clip = []  # the predicted frames: [(rgb, thermal), ...]
        if self.data.sequences:
            frames = self._clips(b, 1 + cfg.chain)
            rp, tp = frames[0], frames[1]
            clip = [(frames[2 * k], frames[2 * k + 1]) for k in range(1, 1 + cfg.chain)]
        else:
            rp, tp = self._stills(b)
        video_refs = None
        if self._video_codec() is not None and clip and cfg.stage in ("video", "all"):
            refs = [(r if self.model.ref_name == "rgb" else t) for r, t in [(rp, tp), *clip]]
            video_refs = self._video_refs(refs, level)
        if cfg.stage == "video":
            with torch.no_grad():
                ref, dep = (rp, tp) if self.model.ref_name == "rgb" else (tp, rp)
                if video_refs is not None:
                    ref_hat = video_refs[0]
                    d = self.model.forward_dep_key(ref_hat, self.model.reference_stages(ref_hat, level), dep, level)
                    key = {"ref_hat": ref_hat, "dep_hat": d["x_hat"]}
                else:
                    key = self.model.forward_key(ref, dep, level)
            loss = torch.zeros((), device=dev)
        else:
            loss, key, s = self._loss_key(rp, tp, level, lam)
            stats.update(s)
        if cfg.stage in ("video", "all") and clip:
            # a chain of predicted frames, each with the previous decoded pair as context; gradients
            # flow through the chain, so the codecs learn to correct their own accumulated error
            prev = Decoded(key["ref_hat"].detach().clamp(0, 1), key["dep_hat"].detach().clamp(0, 1))
            for k, (rc, tc) in enumerate(clip, start=1):
                ref, dep = (rc, tc) if self.model.ref_name == "rgb" else (tc, rc)
                if video_refs is not None:  # the standard codec's picture; only the dependent codec learns
                    d = self.model.forward_dep_predicted(video_refs[k], dep, prev.dep, level)
                    out = {"ref_hat": video_refs[k], "dep_hat": d["x_hat"],
                           "likelihoods": {"ref": {}, "dep": d["likelihoods"]}}
                else:
                    out = self.model.forward_predicted(ref, dep, prev, level)
                r_bpp, r_d, r_mse = _rd_terms(ref, out["ref_hat"], out["likelihoods"]["ref"], lam)
                d_bpp, d_d, d_mse = _rd_terms(dep, out["dep_hat"], out["likelihoods"]["dep"], lam)
                loss = loss + ((d_bpp + d_d) if video_refs is not None else (r_bpp + r_d + d_bpp + d_d)).mean()
                tag = "p" if k == 1 else f"p{k}"
                stats.update({f"{tag}_ref_bpp": r_bpp.detach().mean(), f"{tag}_dep_bpp": d_bpp.detach().mean(),
                              f"{tag}_ref_psnr": _psnr(r_mse), f"{tag}_dep_psnr": _psnr(d_mse)})
                prev = Decoded(out["ref_hat"].clamp(0, 1), out["dep_hat"].clamp(0, 1))
        if cfg.stage != "video" and self.data.stills and self.step % cfg.still_every == 0:
            rs, ts = self._stills(b)
            l2, _, _ = self._loss_key(rs, ts, level, lam)
            loss = loss + l2
        return loss, stats

    def _update(self, loss: torch.Tensor, stats: dict) -> dict:
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_([p for g in self.opt.param_groups for p in g["params"]], 1.0)
        if self.sync_free:  # fused Adam skips the update on the device when found_inf is set
            bad = (~torch.isfinite(norm)).float()
            self.opt.found_inf = bad
            self._skipped = self._skipped + bad
        elif not torch.isfinite(norm):  # a non-finite loss or gradient: skip the update, keep going
            self._skipped += 1
            self.step += 1
            return {}
        self.opt.step()
        aux = self.model.aux_loss()
        if aux.requires_grad:
            aux.backward()
            self.aux_opt.step()
        self.step += 1
        stats["loss"] = loss.detach()
        return stats

    def run(self, progress: bool = True) -> None:
        cfg = self.cfg
        log = (self.run_dir / "train.log")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        bar = tqdm(total=cfg.steps, initial=self.step, disable=not progress, desc=f"train {cfg.stage}",
                   mininterval=5)
        acc: dict[str, list[float]] = {}
        t0 = time.time()
        while self.step < cfg.steps:
            t_step = time.time()
            stats = self.train_step()
            self.seconds += time.time() - t_step
            for k, v in stats.items():
                v = float(v)
                if math.isfinite(v):
                    acc.setdefault(k, []).append(v)
            bar.update(1)
            if self.step % cfg.log_every == 0:
                line = {"step": self.step, "sec_per_step": (time.time() - t0) / cfg.log_every,
                        "skipped": self.skipped,
                        **{k: round(float(np.mean(v)), 4) for k, v in acc.items()}}
                with log.open("a") as f:
                    f.write(json.dumps(line) + "\n")
                bar.set_postfix(loss=line.get("loss"))
                acc, t0 = {}, time.time()
            if self.step % cfg.save_every == 0 or self.step == cfg.steps:
                self.save()
        bar.close()
