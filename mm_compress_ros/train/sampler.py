"""Random aligned training crops drawn on the device (the one-shot GPU run, train/timed.py).

Every clip and still is decoded once into device memory (uint8) and each batch's crops are drawn
there with one gather: no training step waits for the CPU.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .data import TrainingSet


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
