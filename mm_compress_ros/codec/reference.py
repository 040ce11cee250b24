"""The reference layer: how the reference modality of a pair is coded.

Lu et al. (CVPR 2022) code the reference modality with any single-modality codec and put the
cross-modal machinery in the dependent codec. Two kinds of reference coder share one interface:

* :class:`LearnedReference` - this model's own reference codec (the fully learned profile);
* :class:`VideoReference` - H.264 or H.265 through libavcodec (the hybrid profile): one Annex B
  access unit per frame, key frames aligned with the dependent codec's GOP. The picture that
  conditions the dependent codec is libavcodec's decode of the exact bytes sent, at the encoder as
  at the decoder, converted to RGB in integer arithmetic, so both ends hold identical references.

``encode`` and ``decode`` return a :class:`CodedReference` whose ``x_hat`` is the padded float
image the dependent codec takes, and ``stages`` the decoder-stage features its key-frame spatial
alignment attends to.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .api import DependentCodec, LearnedReferenceCodec
from .imaging import to_tensor
from .packet import REFERENCE_CODECS
from .videocodec import CODECS, LowDelayEncoder, VideoDecoder

@dataclass
class CodedReference:
    sections: list[bytes]
    digest: int
    x_hat: torch.Tensor | None          # (1, C, H', W') in [0, 1], padded like the input (None: no model)
    stages: list[torch.Tensor] | None   # decoder-stage features (key frames only)
    qp: int = 0
    image: np.ndarray | None = None     # a standard codec's decoded picture (uint8)


class LearnedReference:
    """The model's learned reference codec (sections: y, z)."""

    codec = "learned"
    encoder_name = None   # no standard encoder

    def __init__(self, net: LearnedReferenceCodec):
        self.net = net

    def reset(self) -> None:
        pass

    def encode(self, image: np.ndarray, x: torch.Tensor, key: bool, prev_ref, level: torch.Tensor,
               qp: int) -> CodedReference:
        """``x`` is ``image`` as the padded tensor; ``qp`` does not apply (the level sets the rate)."""
        sections, digest, x_hat, stages = self.net.compress_ref(x, level, None if key else prev_ref)
        return CodedReference(sections, digest, x_hat, stages)

    def decode(self, sections, size, padded_size, key: bool, prev_ref, level: torch.Tensor,
               digest: int | None, qp: int) -> CodedReference:
        x_hat, stages = self.net.decompress_ref(sections, padded_size, level, digest,
                                                None if key else prev_ref)
        return CodedReference(list(sections), digest or 0, x_hat, stages)


class VideoReference:
    """H.264 / H.265 reference (one section: an Annex B access unit). ``net`` is None in the
    standard profile (no learned layer): the decoded picture is then only an image, and the encoder
    decodes its own access units only when ``local_decode`` (a reconstruction is wanted)."""

    def __init__(self, net: DependentCodec | None, codec: str, encoder: str = "auto"):
        self.net, self.codec, self.encoder_choice = net, codec, encoder
        self.channels = 3 if net is None or net.ref_name == "rgb" else 1
        self.local_decode = True
        self._enc: LowDelayEncoder | None = None
        self._dec = VideoDecoder(codec)   # the encoder's own decoder: the reference the receiver gets

    @property
    def encoder_name(self) -> str | None:
        return self._enc.name if self._enc is not None else None

    def reset(self) -> None:
        self._dec.reset()

    def _picture(self, data: bytes, size, key: bool, level, qp: int) -> CodedReference:
        """The reference both ends hold: libavcodec's decode of ``data`` (one access unit)."""
        if key:
            self._dec.reset()   # every key frame starts a fresh decoder: nothing carries over
        pic = self._dec.decode(data, size, self.channels)
        if self.net is None:
            return CodedReference([data], 0, None, None, qp, pic)
        x_hat = to_tensor(pic, level.device)
        stages = self.net.reference_stages(x_hat, level) if key else None
        return CodedReference([data], 0, x_hat, stages, qp, pic)

    def encode(self, image: np.ndarray, x, key: bool, prev_ref, level: torch.Tensor, qp: int) -> CodedReference:
        """``x`` is unused (None): the standard codec takes the 8-bit ``image`` itself."""
        if image.dtype != np.uint8:
            raise ValueError(f"the {self.codec} reference layer codes 8-bit frames, got {image.dtype}")
        if self._enc is None:
            self._enc = LowDelayEncoder(self.codec, self.encoder_choice)
        data = self._enc.encode(image, qp, key)
        if not self.local_decode and self.net is None:
            return CodedReference([data], 0, None, None, qp)
        return self._picture(data, image.shape[:2], key, level, qp)

    def decode(self, sections, size, padded_size, key: bool, prev_ref, level: torch.Tensor,
               digest: int | None, qp: int) -> CodedReference:
        return self._picture(sections[0], size, key, level, qp)


def make_reference(net: DependentCodec | None, codec: str, encoder: str = "auto"):
    """The reference coder for a packet's or a user's ``reference_codec``."""
    if codec == "learned":
        if net is None:
            raise ValueError("the learned reference codec needs a learned model (for example mmvc)")
        return LearnedReference(net)
    if codec in CODECS:
        return VideoReference(net, codec, encoder)
    raise ValueError(f"unknown reference codec {codec!r}; use one of {sorted(REFERENCE_CODECS)}")
