"""Training of the real-time dependent codec (:mod:`..codec.rtcodec`), on the hybrid profile's terms.

Each sample is a clip: a key frame and ``chain`` predicted frames of one sequence, the same crop.
The reference modality of every frame is coded by H.264/H.265 at the QP of the sample's level (or
replaced by a constant image: the single-modality baseline) and decoded by libavcodec, as the
receiver gets it; the dependent codec codes the clip frame after frame, each predicted frame from
the previous one's decoded feature, with gradients through the chain. A share of the clips
(``static_share``) repeats the key frame, so the skip rule learns that an unchanged scene costs
nothing. Every ``still_every``-th step adds a batch of still pairs coded as key frames.

Loss: the sum over coded frames of ``bpp + lambda[level] * 255^2 * MSE``, one of the model's
levels drawn per sample (the quality bank's lambdas are geometric from ``lambda_min`` to
``lambda_max``). The checkpoints, resumption and logging are :class:`..train.trainer.Trainer`'s.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..codec.intnet import IntConv2d
from ..codec.multimodal import BLANK_REFERENCE
from ..codec.rtcodec import RTDependentCodec
from .trainer import Trainer, _psnr, _rd_terms

STATIC_SHARE = 0.15


@torch.no_grad()
def calibrate(net: RTDependentCodec, x: torch.Tensor, ref_hat: torch.Tensor, level: torch.Tensor) -> None:
    """Data-dependent initialisation (LSUV, Mishkin & Matas, ICLR 2016): layer by layer in forward
    order, scales each output channel's weights and sets its bias so that the real-valued
    pre-activation on (``x``, ``ref_hat``) has a chosen mean and spread. Integer layers then start
    using their range instead of rounding most activations to zero or clipping them."""
    hidden, signed = (1.0, 2.0), (0.0, 4.0)
    plan = [(net.ref_net[0], hidden), (net.ref_net[1], hidden), (net.align_net[2], (0.0, 1.5)),
            (net.ctx_net[0], hidden), (net.ctx_net[1], hidden),
            (net.g_a[0], (0.5, 1.0)), (net.g_a[2], (0.5, 1.0)), (net.g_a[4], (0.0, 1.0)),
            (net.h_a[0], (0.5, 1.0)), (net.h_a[2], signed),
            (net.h_s[0], hidden), (net.h_s[1], hidden), (net.ctx_down, hidden), (net.ep, hidden),
            (net.ep_mean, signed), (net.ep_scale, (3.0, 1.5)),
            (net.g_s_up, hidden), (net.g_s[0], hidden), (net.g_s[1], hidden), (net.recon, (0.45, 0.05))]
    was = net.training
    net.train()
    for layer, (mu, sd) in plan:
        seen = {}
        hook = layer.register_forward_hook(lambda m, i, o: seen.update(x=i[0]))
        try:
            net(x, ref_hat, level)
        finally:
            hook.remove()
        inp = seen["x"]
        if isinstance(layer, IntConv2d):
            pre = F.conv2d(inp * 2.0 ** -layer.in_shift, layer.weight, None, layer.stride, layer.kernel // 2)
        else:
            pre = F.conv2d(inp, layer.weight, None, layer.stride, layer.padding)
        m, s = pre.mean((0, 2, 3)), pre.std((0, 2, 3)).clamp_min(1e-6)
        k = sd / s
        layer.weight.mul_(k[:, None, None, None])
        layer.bias.copy_(mu - m * k)
    net.train(was)


class RTTrainer(Trainer):
    def __init__(self, cfg, data, run_dir, device="cpu", init_weights=None, **kw):
        if cfg.stage != "all":
            raise ValueError("the real-time codec trains as one part (stage all)")
        if "learned" in cfg.reference_codecs and not cfg.blank_reference:
            raise ValueError("the real-time codec is the hybrid profile's dependent codec: "
                             "train it with --reference-codec h264,h265 (or --blank-reference)")
        super().__init__(cfg, data, run_dir, device=device, init_weights=init_weights, **kw)
        self.lambdas = self.model.lambdas(self.device)
        self.rng = torch.Generator().manual_seed(cfg.seed + 1)
        # coded references drawn by the sampler (the GPU pack, train/coded.py): each level takes
        # the packed QP nearest its own
        qps = getattr(self.sampler, "coded_qps", ())
        self._coded_lut = None
        if qps and not cfg.blank_reference:
            if self.model.ref_name != "rgb":
                raise ValueError("coded references are RGB: they train the thermal_given_rgb direction")
            from ..codec.profiles import reference_qp
            from .coded import nearest

            self._coded_lut = torch.tensor([nearest(qps, reference_qp(lv + 1, cfg.model.levels))
                                            for lv in range(cfg.model.levels)], device=self.device)
        if self.step == 0 and not init_weights and kw.get("model") is None:   # a fresh network: start it in range
            level = self._levels(cfg.batch)
            refs, deps = self._draw(cfg.batch, 1, level)
            calibrate(self.model, deps[0], refs[0], level)

    def _draw(self, b: int, length: int, level: torch.Tensor, static: torch.Tensor | None = None):
        """Clips of ``length`` frames: (references as the decoder gets them, dependent frames).
        ``static`` (b,) bool: those samples repeat their key frame (an unchanged scene)."""
        if self._coded_lut is None:
            frames = self._clips(b, length)
        else:  # the RGB comes coded already (the pack's H.264 at the QP nearest the level's)
            frames = list(self.sampler.clips(b, length, self._coded_lut[level]))
        rgb_is_ref = self.model.ref_name == "rgb"
        refs = [frames[2 * k + (0 if rgb_is_ref else 1)] for k in range(length)]
        deps = [frames[2 * k + (1 if rgb_is_ref else 0)] for k in range(length)]
        if static is not None and static.any():
            keep = static.to(self.device)[:, None, None, None]
            for seq in (refs, deps):
                for k in range(1, len(seq)):
                    seq[k] = torch.where(keep, seq[0], seq[k])
        if self._coded_lut is None:
            with torch.no_grad():
                refs = self._references(refs, level)
        return refs, deps

    def _references(self, frames: list[torch.Tensor], level: torch.Tensor) -> list[torch.Tensor]:
        if self.cfg.blank_reference:
            return [torch.full_like(f, BLANK_REFERENCE / 255.0) for f in frames]
        return self._video_refs(frames, level)

    def _clip_loss(self, refs, deps, level, lam, tag: str, stats: dict) -> torch.Tensor:
        loss, state = torch.zeros((), device=self.device), None
        for k, (r, x) in enumerate(zip(refs, deps)):
            out = self.model(x, r, level, state)
            bpp, d, mse = _rd_terms(x, out["x_hat"], out["likelihoods"], lam)
            loss = loss + (bpp + d).mean()
            name = f"{tag}key" if k == 0 else f"{tag}p{k}"
            stats.update({f"{name}_bpp": bpp.detach().mean(), f"{name}_psnr": _psnr(mse),
                          f"{name}_skip": out["skip"].detach()})
            state = out["state"]
        return loss

    def _forward_loss(self):
        cfg = self.cfg
        b = cfg.batch
        level = self._levels(b)
        lam = self.lambdas[level]
        stats: dict = {}
        # a share of static clips: the key frame repeated (the same picture coded again)
        static = torch.rand(b, generator=self.rng) < STATIC_SHARE
        refs, deps = self._draw(b, 1 + cfg.chain, level, static)
        loss = self._clip_loss(refs, deps, level, lam, "", stats)
        # stills have no coded references: with a pack's, they are not used
        if self.data.stills and self._coded_lut is None and self.step % cfg.still_every == 0:
            rs, ts = self._stills(b)
            r, x = (rs, ts) if self.model.ref_name == "rgb" else (ts, rs)
            with torch.no_grad():
                r_hat = self._references([r], level)[0]
            loss = loss + self._clip_loss([r_hat], [x], level, lam, "still_", stats)
        return loss, stats
