"""Trains the joint restoration (:class:`.net.JointRestorer`) on chains made by :mod:`.data`.

Runs alone (``python -m mm_compress_ros.restore.train``) or under ``torchrun`` (DDP: gloo on CPUs,
NCCL on GPUs; each process draws its own crops, gradients are averaged). Resumable: the weights,
the optimiser state and the step are in ``<out>/checkpoint.safetensors`` (saved every
``--save-every`` steps and at the end; no pickles); ``<out>/log.jsonl`` has a line per
``--log-every`` steps with the loss and the PSNR gain over the plain decoded pictures.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file

from .net import QP_SCALE, JointRestorer

BLANK_SHARE = 0.05   # share of paired crops with the thermal (and as many with the RGB) camera blanked


class ChainSet:
    """Random crops of (decoded pair, previous decoded pair, original pair, QPs) from chain files."""

    def __init__(self, root: Path, crop: int, seed: int):
        self.index = json.loads((root / "index.json").read_text())
        if not self.index:
            raise ValueError(f"{root}: no chains (make them with python -m mm_compress_ros.restore.data)")
        self.chains = [np.load(root / c["file"], mmap_mode="r") for c in self.index]
        self.crop = crop
        self.rng = np.random.default_rng(seed)
        w = np.array([c["frames"] for c in self.index], float)
        self.p = w / w.sum()

    def batch(self, n: int):
        c = self.crop
        cur, prev, qps = [], [], []
        for k in self.rng.choice(len(self.chains), size=n, p=self.p):
            ch, meta = self.chains[k], self.index[k]
            t = int(self.rng.integers(0, ch.shape[0]))
            y = int(self.rng.integers(0, ch.shape[1] - c + 1)) // 4 * 4
            x = int(self.rng.integers(0, ch.shape[2] - c + 1)) // 4 * 4
            a = np.asarray(ch[t, y:y + c, x:x + c])
            b = np.asarray(ch[t - 1, y:y + c, x:x + c]) if t > 0 else a   # a key frame: its own past
            if self.rng.random() < 0.5:
                a, b = a[:, ::-1], b[:, ::-1]
            blank = self.rng.random()
            if meta["kind"] == "paired" and blank < 2 * BLANK_SHARE:
                # one camera shows nothing (a blank picture codes exactly): the other must not need it
                ch = [3, 7] if blank < BLANK_SHARE else [0, 1, 2, 4, 5, 6]
                a, b = a.copy(), b.copy()
                a[..., ch] = 128
                b[..., ch] = 128
            cur.append(a)
            prev.append(b)
            qps.append((meta["qp_rgb"], meta["qp_thermal"]))
        t = lambda arrs: torch.from_numpy(np.ascontiguousarray(np.stack(arrs))).permute(0, 3, 1, 2).float() / 255  # noqa: E731
        return t(cur), t(prev), torch.tensor(qps, dtype=torch.float32) / QP_SCALE


def restore_step(net, cur, prev, qp):
    """The network on a batch: (restored rgb, restored thermal, original rgb, original thermal,
    decoded rgb, decoded thermal)."""
    rgb, th = net(cur[:, 4:7], cur[:, 7:8], prev[:, 4:7], prev[:, 7:8], qp)
    return rgb, th, cur[:, 0:3], cur[:, 3:4], cur[:, 4:7], cur[:, 7:8]


def _db(mse_plain: float, mse: float) -> float:
    return 10 * math.log10(max(mse_plain, 1e-12) / max(mse, 1e-12))


def save_checkpoint(path: Path, net, opt, step: int, cfg: dict) -> None:
    tensors = {f"model.{k}": v.detach().contiguous() for k, v in net.state_dict().items()}
    for i, st in opt.state_dict()["state"].items():
        for k, v in st.items():
            tensors[f"opt.{i}.{k}"] = torch.as_tensor(v).detach().clone().contiguous()
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata={"step": str(step), "config": json.dumps(cfg)})
    os.replace(tmp, path)


def load_checkpoint(path: Path, net, opt) -> int:
    from safetensors import safe_open
    with safe_open(str(path), "pt") as f:
        step = int(f.metadata()["step"])
    t = load_file(str(path))
    net.load_state_dict({k[6:]: v for k, v in t.items() if k.startswith("model.")})
    sd = opt.state_dict()
    for i in sd["param_groups"][0]["params"]:
        st = {k.split(".", 2)[2]: v for k, v in t.items() if k.startswith(f"opt.{i}.")}
        if st:
            sd["state"][i] = st
    opt.load_state_dict(sd)
    return step


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m mm_compress_ros.restore.train", description=__doc__.split("\n")[0])
    p.add_argument("data", type=Path, help="folder of chains (restore.data)")
    p.add_argument("out", type=Path)
    p.add_argument("--steps", type=int, default=20000)
    p.add_argument("--batch", type=int, default=8, help="crops per process and step")
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--width-rgb", type=int, default=24)
    p.add_argument("--width-thermal", type=int, default=16)
    p.add_argument("--blocks", type=int, default=4)
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--no-cross", dest="cross", action="store_false", help="the ablation: no other camera")
    p.add_argument("--thermal-weight", type=float, default=1.0)
    p.add_argument("--threads", type=int, default=0, help="torch threads per process (0: cores / processes)")
    p.add_argument("--save-every", type=int, default=200)
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    a = p.parse_args(argv)

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    dev = torch.device("cuda" if a.device == "auto" and torch.cuda.is_available() else
                       ("cpu" if a.device == "auto" else a.device))
    if dev.type == "cuda" and world > 1:
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    if world > 1:
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    torch.set_num_threads(a.threads or max(1, (os.cpu_count() or 1) // world))
    torch.manual_seed(a.seed)   # the same initial weights on every process
    cfg = {"width_rgb": a.width_rgb, "width_thermal": a.width_thermal, "blocks": a.blocks, "scale": a.scale, "cross": a.cross}
    net = JointRestorer(**cfg).to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=a.lr)
    a.out.mkdir(parents=True, exist_ok=True)
    ckpt = a.out / "checkpoint.safetensors"
    step = load_checkpoint(ckpt, net, opt) if ckpt.exists() else 0
    model = torch.nn.parallel.DistributedDataParallel(net) if world > 1 else net
    data = ChainSet(a.data, a.crop, a.seed * 1000 + rank + 7919 * step)
    log = (a.out / "log.jsonl").open("a") if rank == 0 else None
    acc = np.zeros(5)
    t0 = time.time()
    while step < a.steps:
        lr = a.lr * (0.1 if step > 0.8 * a.steps else 1.0)
        for g in opt.param_groups:
            g["lr"] = lr
        cur, prev, qp = (t.to(dev) for t in data.batch(a.batch))
        rgb, th, rgb0, th0, rgb_d, th_d = restore_step(model, cur, prev, qp)
        l_rgb = torch.mean((rgb - rgb0) ** 2)
        l_th = torch.mean((th - th0) ** 2)
        # each camera's error relative to its plain decoded error (a dB gain, whatever the PSNR):
        # thermal sits ~8 dB above RGB, and a plain sum would train the RGB correction only
        with torch.no_grad():
            p_rgb = torch.mean((rgb_d - rgb0) ** 2).clamp_min(1e-7)
            p_th = torch.mean((th_d - th0) ** 2).clamp_min(1e-7)
        loss = l_rgb / p_rgb + a.thermal_weight * l_th / p_th
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        with torch.no_grad():
            acc += [p_rgb.item(), l_rgb.item(), p_th.item(), l_th.item(), 1]
        if rank == 0 and step % a.log_every == 0:
            n = acc[4]
            line = {"step": step, "lr": lr, "sec_per_step": round((time.time() - t0) / n, 3),
                    "gain_rgb_db": round(_db(acc[0], acc[1]), 4), "gain_thermal_db": round(_db(acc[2], acc[3]), 4),
                    "processes": world}
            log.write(json.dumps(line) + "\n")
            log.flush()
            print(json.dumps(line), flush=True)
            acc[:] = 0
            t0 = time.time()
        if rank == 0 and (step % a.save_every == 0 or step == a.steps):
            save_checkpoint(ckpt, net, opt, step, cfg)
    if world > 1:   # every process must hold the same weights (DDP averaged the gradients)
        flat = torch.cat([q.detach().flatten() for q in net.parameters()]).to(dev)
        ref = flat.clone()
        dist.broadcast(ref, 0)
        same = torch.tensor([float(torch.equal(flat, ref))], device=dev)
        dist.all_reduce(same, op=dist.ReduceOp.MIN)
        if rank == 0:
            line = {"step": step, "processes": world, "ranks_in_sync": bool(same.item() == 1.0)}
            log.write(json.dumps(line) + "\n")
            print(json.dumps(line), flush=True)
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
