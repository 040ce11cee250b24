"""The joint restoration at a decoder: :class:`Restorer` turns each decoded pair into the restored
one, keeping the previous decoded pair as its temporal state (the model keeps its own reference,
as DCVC-RT's does).

What it restores: an 8-bit picture coded by a standard layer (H.264/H.265). A picture the model
was not trained for passes through unchanged but still guides the other camera: the thermal of the
lossless mode (exact by promise), 16-bit thermal (its counts and the error bound in every header
keep their meaning) and the pictures of learned layers. The packets, and what is recorded or
forwarded, never change: only the pictures handed to people and perception do.

Weights: ``models/restore.safetensors`` with its card ``restore.json`` (the SHA-256 of the weights,
the network's configuration, its training and measured points); nothing is unpickled.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from ..codec.device import resolve_device
from ..codec.zoo import ModelError, models_dir, sha256_file
from .net import QP_SCALE, JointRestorer

DEFAULT_RESTORER = "restore"
RESTORABLE = ("h264", "h265")   # layers whose decoded pictures the model learned to correct


def load_restorer(name: str = DEFAULT_RESTORER, device: str = "auto", path: Path | None = None) -> "Restorer":
    """The named restoration model (``models/<name>.safetensors`` + card), or the weights at
    ``path`` (a training checkpoint or an exported file; the card beside it when there is one)."""
    weights = Path(path) if path is not None else models_dir() / f"{name}.safetensors"
    card_path = weights.with_suffix(".json")
    if not weights.exists():
        raise ModelError(f"no restoration model {weights} (turn restoration off with --no-restore)")
    card = json.loads(card_path.read_text()) if card_path.exists() else {}
    if card.get("sha256"):
        digest = sha256_file(weights)
        if digest != card["sha256"]:
            raise ModelError(f"{weights}: weights do not match the card's sha256 ({digest[:8]} != {card['sha256'][:8]})")
    from safetensors import safe_open
    with safe_open(str(weights), "pt") as f:
        meta = f.metadata() or {}
    config = json.loads(meta.get("config") or json.dumps(card.get("config", {})))
    tensors = load_file(str(weights))
    state = {k[6:] if k.startswith("model.") else k: v for k, v in tensors.items() if not k.startswith("opt.")}
    net = JointRestorer(**config)
    net.load_state_dict(state)
    dev = resolve_device(device)
    return Restorer(net.to(dev).eval(), dev, name=card.get("name", weights.stem))


class Restorer:
    """Restores the pairs of one stream, in order; :meth:`reset` when the stream restarts."""

    def __init__(self, net: JointRestorer, device: torch.device = torch.device("cpu"), name: str = DEFAULT_RESTORER):
        self.net, self.device, self.name = net, device, name
        self._prev: tuple[torch.Tensor, torch.Tensor] | None = None

    def reset(self) -> None:
        self._prev = None

    @staticmethod
    def restorable(h) -> tuple[bool, bool]:
        """(RGB, thermal) of a packet header that this model restores."""
        return (h.reference_codec in RESTORABLE,
                h.thermal_codec in RESTORABLE and h.thermal_format in ("mono8", "8UC1"))

    def _tensors(self, rgb: np.ndarray, th: np.ndarray, bgr: bool):
        d = self.device
        x = torch.from_numpy(np.ascontiguousarray(rgb[..., ::-1] if bgr else rgb)).to(d)
        x = x.permute(2, 0, 1).unsqueeze(0).float() / 255
        t = torch.from_numpy(np.ascontiguousarray(th)).to(d).float().unsqueeze(0).unsqueeze(0)
        t = t / (65535.0 if th.dtype == np.uint16 else 255.0)
        if t.shape[-2:] != x.shape[-2:]:   # the thermal camera on the RGB grid
            t = F.interpolate(t, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return x, t

    def restore(self, pair):
        """The restored :class:`codec.stream.DecodedPair` (a copy; ``pair`` is left as decoded)."""
        h = pair.header
        do_rgb, do_th = self.restorable(h)
        if not (do_rgb or do_th) or pair.rgb is None:
            self._prev = None
            return pair
        bgr = pair.rgb_format == "bgr8"
        x, t = self._tensors(pair.rgb, pair.thermal, bgr)
        if pair.frame_type == "key" or self._prev is None or self._prev[0].shape != x.shape:
            self._prev = (x, t)   # a key frame is its own past, as in training
        s = self.net.scale
        hh, ww = x.shape[-2:]
        ph, pw = (-hh) % s, (-ww) % s
        pad = (lambda a: F.pad(a, (0, pw, 0, ph), mode="replicate")) if ph or pw else (lambda a: a)
        qp = torch.tensor([[h.reference_qp, h.thermal_qp]], dtype=torch.float32, device=self.device) / QP_SCALE
        with torch.inference_mode():
            r, q = self.net(pad(x), pad(t), pad(self._prev[0]), pad(self._prev[1]), qp)
        self._prev = (x, t)
        r, q = r[..., :hh, :ww], q[..., :hh, :ww]
        rgb, th = pair.rgb, pair.thermal
        if do_rgb:
            out = (r[0].permute(1, 2, 0) * 255).round_().clamp_(0, 255).to(torch.uint8).cpu().numpy()
            rgb = np.ascontiguousarray(out[..., ::-1]) if bgr else out
        if do_th:
            d = q - t   # the correction, back on the thermal camera's own grid
            if d.shape[-2:] != th.shape:
                d = F.interpolate(d, size=th.shape, mode="bilinear", align_corners=False)
            th = (torch.from_numpy(th).to(self.device).float() + 255 * d[0, 0]).round_().clamp_(0, 255)
            th = th.to(torch.uint8).cpu().numpy()
        return dataclasses.replace(pair, rgb=rgb, thermal=th)
