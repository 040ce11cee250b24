"""Runs the project's codec over a sequence through the real stream API and real packets.

``StreamEncoder`` produces the packets, ``StreamDecoder`` decodes them (the decoded frames, not
the encoder's reconstruction, are measured). Bits per modality come from the packet's sections
(``read_packet``): key frames carry [ref_y, ref_z, align, dep_y, dep_z], predicted frames
[ref_y, ref_z, dep_y, dep_z]. The alignment coefficients are side information of the dependent
modality (they are only used to decode it), so they count for the dependent modality. The bytes
that are not section payload (fixed header, section table, CRC) are split between the two
modalities in proportion to their payload bytes, so that the two modalities' bits add up to the
packet size exactly.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..codec.packet import read_packet
from ..codec.stream import StreamDecoder, StreamEncoder


@dataclass
class MeasuredPair:
    """One pair as ``mm-compress eval`` measures it: coded to a packet and decoded from it (not
    link/pair_encoder.py's PairResult, the encoder node's outcome of one pair)."""
    frame_type: str
    packet_bits: int
    bits: dict           # modality -> bits (float: header bytes are split proportionally)
    decoded: dict        # modality -> decoded image
    encode_s: float
    decode_s: float


def split_bits(packet: bytes) -> dict[str, float]:
    """Bits of each modality in one packet (the packet's own split: docs/bitstream.md)."""
    h, _ = read_packet(packet)
    return {k: 8.0 * v for k, v in h.modality_bytes().items()}


def run_sequence(model, rgb_frames, thermal_frames, quality: int, gop: int,
                 reference_codec: str = "learned", thermal_codec: str = "learned") -> list[MeasuredPair]:
    """Encodes and decodes one sequence as one stream (key frame every ``gop`` frames); ``model``
    is None for the standard profile (``thermal_codec`` h264/h265/lossless)."""
    import torch

    enc = StreamEncoder(model, quality=quality, gop=gop, stream_id=0, reference_codec=reference_codec,
                        encoder="software", thermal_codec=thermal_codec, reconstruct=False)
    dec = StreamDecoder(enc.model)
    sync = enc.model is not None and enc.model.device.type == "cuda"
    out = []
    for rgb, th in zip(rgb_frames, thermal_frames):
        t0 = time.perf_counter()
        packet = enc.encode(rgb, th)
        if sync:
            torch.cuda.synchronize()
        t1 = time.perf_counter()
        pair = dec.decode(packet)
        if sync:
            torch.cuda.synchronize()
        t2 = time.perf_counter()
        if pair is None:
            raise RuntimeError("the decoder dropped a frame of an unbroken stream")
        out.append(MeasuredPair(
            frame_type=pair.frame_type, packet_bits=8 * len(packet),
            bits=split_bits(packet),
            decoded={"rgb": np.asarray(pair.rgb), "thermal": np.asarray(pair.thermal)},
            encode_s=t1 - t0, decode_s=t2 - t1))
    return out
