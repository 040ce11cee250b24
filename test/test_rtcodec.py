"""The real-time dependent codec (codec/rtcodec.py): its decoder derives only exact integers, so
what it decodes is bit-identical at the encoder and the decoder, on 1 or 2 threads, with oneDNN or
without, in float32 or float64, and in another process. Real frames (small crops of the lossless
M3SVD sequences), a seeded random network.

The proofs hold for any weights, but an untouched random initialisation makes them vacuous: its
integer activations collapse to a handful of values (the temporal feature is 0..2, every
hyper-latent symbol is 0, every scale index is the same), and a network that computes zeros is
trivially deterministic. :func:`calibrate` therefore rescales the random weights on a real frame
(layer by layer, as LSUV initialisation does) so that every integer layer uses its whole range:
features take the whole -16..127 range, x̂ thousands, scale indexes span the skip threshold.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from functools import lru_cache

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from codec_fixtures import REPO, crop_pair
from mm_compress_ros.codec.entropy import N_SCALES, SKIP_BELOW, SkipGaussianCoder
from mm_compress_ros.codec.intnet import ACT_MAX, ACT_MIN, EXACT_LIMIT, W_MAX, IntConv2d, int_resize
from mm_compress_ros.codec.packet import CorruptPacket, EntropyMismatch
from mm_compress_ros.codec.rtcodec import PIX_SHIFT, Y_MAX, RTConfig, RTDependentCodec, RTState
from mm_compress_ros.train.rt import calibrate

pytestmark = [pytest.mark.needs_data,
              # torch.backends.mkldnn.flags() warns that this build has no Intel GPU support
              pytest.mark.filterwarnings("ignore:TF32 acceleration on top of oneDNN")]

LEVEL = 40
H, W = 128, 192


# -- real frames ---------------------------------------------------------------------------------
def _rgb(a: np.ndarray, dtype=torch.float32) -> torch.Tensor:
    return torch.from_numpy(a).to(dtype).div(255).permute(2, 0, 1)[None].contiguous()


def _gray(a: np.ndarray, dtype=torch.float32) -> torch.Tensor:
    return torch.from_numpy(a).to(dtype).div(255)[None, None].contiguous()


def pair(i: int, direction: str = "thermal_given_rgb", h: int = H, w: int = W, dtype=torch.float32):
    """(dependent x, reference ref_hat) of frame ``i``: values k/255 (8-bit images)."""
    rgb, th = crop_pair(i, h=h, w=w)
    if direction == "thermal_given_rgb":
        return _gray(th, dtype), _rgb(rgb, dtype)
    return _rgb(rgb, dtype), _gray(th, dtype)


def lv(level: int = LEVEL) -> torch.Tensor:
    return torch.tensor([level])


# -- a seeded random network whose integer layers use their range ---------------------------------
@torch.no_grad()
@lru_cache(maxsize=None)
def _codec(direction: str) -> RTDependentCodec:
    torch.manual_seed(1234)
    net = RTDependentCodec(RTConfig(direction=direction)).eval()
    calibrate(net, *pair(0, direction), lv())
    net.freeze()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


@pytest.fixture(scope="module")
def net() -> RTDependentCodec:
    return _codec("thermal_given_rgb")


@pytest.fixture(scope="module")
def stream(net):
    """A key frame and two coded predicted frames at LEVEL: [(sections, digest, encoder state)]
    (``uncoded=False``: a random network would often rather repeat the previous frame)."""
    out, state = [], None
    with torch.no_grad():
        for i in range(3):
            x, ref = pair(i)
            sections, digest, state = net.compress(x, ref, lv(), state, uncoded=False)
            out.append((sections, digest, state))
    return out


def bits(t: torch.Tensor) -> torch.Tensor:
    """The float32 bit patterns (float64 values are cast first: exact for these integers/4096)."""
    return t.detach().to(torch.float32).contiguous().view(torch.int32)


def assert_same_bits(a: RTState, b: RTState, what: str = "") -> None:
    assert torch.equal(bits(a.x_hat), bits(b.x_hat)), f"x_hat differs {what}"
    assert torch.equal(bits(a.feature), bits(b.feature)), f"feature differs {what}"


def decode_chain(net, frames, dtype=torch.float32, direction="thermal_given_rgb") -> list[RTState]:
    states, state = [], None
    with torch.no_grad():
        for i, (sections, digest, _) in enumerate(frames):
            ref = pair(i, direction, dtype=dtype)[1]
            state = net.decompress(sections, ref, (H, W), lv(), digest, state)
            states.append(state)
    return states


# -- 1. encoder and decoder agree ------------------------------------------------------------------
def test_encoder_and_decoder_states_are_identical_over_a_key_and_two_predicted_frames(net, stream):
    assert [len(s) for s, _, _ in stream] == [3, 2, 2]          # [align, y, z], then [y, z]
    assert len(stream[0][0][0]) == 2 * net.cfg.R
    for i, (dec, (_, _, enc)) in enumerate(zip(decode_chain(net, stream), stream)):
        assert_same_bits(enc, dec, f"at frame {i}")
        assert torch.equal(enc.coef, dec.coef)
        # the claim behind it: everything decoded is an exact integer (x̂ in 1/4096 units)
        q = dec.x_hat * (1 << PIX_SHIFT)
        assert torch.equal(q, q.round()) and q.min() >= 0 and q.max() < (1 << PIX_SHIFT)
        assert torch.equal(dec.feature, dec.feature.round())
        assert ACT_MIN <= dec.feature.min() <= dec.feature.max() <= ACT_MAX
        # ... and the network is not degenerate (see the module docstring)
        assert dec.feature.unique().numel() > 64 and dec.x_hat.unique().numel() > 1000
        assert dec.x_hat.shape == (1, 1, H, W) and dec.feature.shape == (1, net.cfg.C, H // 8, W // 8)
    assert not torch.equal(stream[1][2].feature, stream[2][2].feature)   # the state does move on


# -- 2. threads, oneDNN, precision ------------------------------------------------------------------
def test_decoding_is_bit_identical_across_threads_onednn_and_float64(net, stream):
    base = decode_chain(net, stream)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = decode_chain(net, stream)
        torch.set_num_threads(2)
        two = decode_chain(net, stream)
        with torch.backends.mkldnn.flags(enabled=False):
            two_no_dnn = decode_chain(net, stream)
    finally:
        torch.set_num_threads(threads)
    with torch.backends.mkldnn.flags(enabled=False):
        no_dnn = decode_chain(net, stream)
    net64 = copy.deepcopy(net).double()
    assert net64.recon.b_int.dtype == torch.int32 and net64.g_s_up.w_int.dtype == torch.int8
    f64 = decode_chain(net64, stream, torch.float64)
    assert f64[0].x_hat.dtype == torch.float64
    for name, states in [("1 thread", one), ("2 threads", two), ("2 threads, no oneDNN", two_no_dnn),
                         ("no oneDNN", no_dnn), ("float64", f64)]:
        for i, (a, b) in enumerate(zip(base, states)):
            assert_same_bits(a, b, f"with {name} at frame {i}")
            assert torch.equal((b.x_hat.double() * 4096).long(), (a.x_hat.double() * 4096).long())


def test_a_float64_encoder_and_a_float32_decoder_agree(net):
    """The encoder's float analysis may pick other symbols in float64; whatever it sends, a
    float32 decoder reproduces the float64 encoder's state bit for bit."""
    net64 = copy.deepcopy(net).double()
    state64 = state32 = None
    with torch.no_grad():
        for i in range(2):
            x, ref = pair(i, dtype=torch.float64)
            sections, digest, state64 = net64.compress(x, ref, lv(), state64)
            state32 = net.decompress(sections, pair(i)[1], (H, W), lv(), digest, state32)
            assert_same_bits(state64, state32, f"at frame {i}")


# -- 3. another process -----------------------------------------------------------------------------
DECODER = r"""
import json, sys
import numpy as np, torch
from mm_compress_ros.codec.zoo import load_model

work, threads = sys.argv[1], int(sys.argv[2])
torch.set_num_threads(threads)
net = load_model(path=f"{work}/rt.safetensors", device="cpu").net
meta = json.load(open(f"{work}/stream.json"))
refs = np.load(f"{work}/refs.npy")
out, state = {}, None
with torch.no_grad(), torch.backends.mkldnn.flags(enabled=False):
    for i, fr in enumerate(meta["frames"]):
        ref = torch.from_numpy(refs[i]).float().div(255).permute(2, 0, 1)[None].contiguous()
        state = net.decompress([bytes.fromhex(s) for s in fr["sections"]], ref, tuple(meta["size"]),
                               torch.tensor([meta["level"]]), fr["digest"], state)
        out[f"x{i}"], out[f"f{i}"] = state.x_hat.numpy(), state.feature.numpy()
np.savez(f"{work}/decoded.npz", threads=torch.get_num_threads(), mkldnn=torch.backends.mkldnn.enabled, **out)
"""


def test_another_process_with_another_thread_count_and_no_onednn_decodes_the_same_bits(net, stream, tmp_path):
    from mm_compress_ros.codec.zoo import export_model

    export_model(net, tmp_path / "rt.safetensors", {"name": "rt-test"})   # the shipped model format
    meta = {"level": LEVEL, "size": [H, W],
            "frames": [{"sections": [s.hex() for s in sections], "digest": digest}
                       for sections, digest, _ in stream]}
    (tmp_path / "stream.json").write_text(json.dumps(meta))
    np.save(tmp_path / "refs.npy", np.stack([crop_pair(i, h=H, w=W)[0] for i in range(len(stream))]))
    threads = 2 if torch.get_num_threads() == 1 else 1
    run = subprocess.run([sys.executable, "-c", DECODER, str(tmp_path), str(threads)], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    got = np.load(tmp_path / "decoded.npz")
    assert int(got["threads"]) == threads != torch.get_num_threads()
    for i, (_, _, enc) in enumerate(stream):
        for key, t in ((f"x{i}", enc.x_hat), (f"f{i}", enc.feature)):
            mine = t.numpy()
            assert got[key].dtype == mine.dtype == np.float32 and got[key].shape == mine.shape
            assert got[key].tobytes() == mine.tobytes(), f"{key} differs across processes"


# -- 4. skip mode -----------------------------------------------------------------------------------
def test_the_skip_mask_is_exactly_the_indexes_below_the_threshold():
    assert 0 < SKIP_BELOW < N_SCALES
    idx = torch.arange(N_SCALES)
    for t in (idx, idx.float(), idx.double()):
        assert torch.equal(SkipGaussianCoder.skipped(t), idx < SKIP_BELOW)
    assert SkipGaussianCoder.skipped(torch.tensor([SKIP_BELOW - 1, SKIP_BELOW])).tolist() == [True, False]


def test_only_the_elements_not_skipped_are_coded_and_skipped_ones_take_the_mean(net, monkeypatch):
    coder = net.y_coder
    seen = {"masks": [], "enc": [], "dec": [], "mean": [], "y_hat": []}
    real = (SkipGaussianCoder.skipped, coder.compress, coder.decompress)

    def skipped(idx):
        seen["masks"].append(idx.clone())
        return real[0](idx)

    def compress(q, idx):
        seen["enc"].append((q.clone(), idx.clone()))
        return real[1](q, idx)

    def decompress(data, idx):
        out = real[2](data, idx)
        seen["dec"].append((out.clone(), idx.clone()))
        return out

    monkeypatch.setattr(coder, "skipped", skipped)
    monkeypatch.setattr(coder, "compress", compress)
    monkeypatch.setattr(coder, "decompress", decompress)
    hooks = [net.ep_mean.register_forward_hook(lambda m, i, o: seen["mean"].append(o.clone())),
             net.g_s_up.register_forward_pre_hook(lambda m, i: seen["y_hat"].append(i[0].clone()))]
    try:
        x, ref = pair(0)
        with torch.no_grad():
            sections, digest, _ = net.compress(x, ref, lv(20))
            net.decompress(sections, ref, (H, W), lv(20), digest)
    finally:
        for h in hooks:
            h.remove()
    (idx_enc, idx_dec), (mean_enc, mean_dec) = seen["masks"], seen["mean"]
    assert torch.equal(idx_enc, idx_dec) and torch.equal(mean_enc, mean_dec)
    skip = idx_enc < SKIP_BELOW
    n = int((~skip).sum())
    assert 0 < n < idx_enc.numel()                         # a mix of coded and skipped elements
    (q_enc, i_enc), (q_dec, i_dec) = seen["enc"][0], seen["dec"][0]
    assert q_enc.numel() == i_enc.numel() == n and torch.equal(i_enc, idx_enc[~skip])
    assert q_dec.numel() == i_dec.numel() == n and torch.equal(q_dec.to(q_enc.dtype), q_enc)
    assert bool((i_enc >= SKIP_BELOW).all())
    # the y section holds those n symbols and nothing else
    assert real[1](q_dec, i_dec) == sections[1]
    # skipped elements are decoded as the predicted mean, at both ends
    for y_hat in seen["y_hat"]:
        assert torch.equal(y_hat[skip], mean_enc.clamp(-Y_MAX, Y_MAX)[skip])


def test_an_empty_y_section_decodes_when_every_element_is_skipped(net):
    coder = SkipGaussianCoder()
    coder.build()
    none = torch.zeros(0, dtype=torch.int32)
    assert coder.compress(torch.zeros(0), none) == b""
    assert coder.decompress(b"", none).numel() == 0
    # a network whose scale head predicts the smallest scale everywhere skips every element
    still = copy.deepcopy(net)
    still.ep_scale.b_int.fill_(-still.ep_scale.bias_max)
    state, z_sections = None, []
    with torch.no_grad():
        for i in range(3):
            x, ref = pair(min(i, 1))                          # frame 2 repeats frame 1
            sections, digest, enc = still.compress(x, ref, lv(63), state)
            assert sections[-2] == b"" or (i and not sections[-1] and len(sections[-2]) == 1)
            z_sections.append(sections[-1])
            dec = still.decompress(sections, ref, (H, W), lv(63), digest, state)
            assert_same_bits(enc, dec, f"at frame {i}")
            state = dec
    assert z_sections[0]                                      # a key frame always codes z
    # (a predicted frame either codes z or codes nothing, an empty z and a mode byte, whichever
    # the encoder's rate-distortion check preferred; both decoded identically above)


def test_uncoded_predicted_frames_skipped_and_repeated_decode_identically(net, monkeypatch):
    """Predicted frames that code nothing: an empty z section and one mode byte in y. A skipped
    frame (z = 0, every element at its predicted mean) and a repeated frame (the previous picture
    and feature) decode to the encoder's state, on any thread count; a bad mode byte is refused."""
    import mm_compress_ros.codec.rtcodec as rt
    x0, ref0 = pair(0)
    with torch.no_grad():
        s0, d0, enc = net.compress(x0, ref0, lv(0), None)
        dec = net.decompress(s0, ref0, (H, W), lv(0), d0, None)
        # rate only (lambda 0): coding nothing wins, and of equal costs the repeated frame first
        monkeypatch.setattr(net, "lambdas", lambda device=None: torch.zeros(net.cfg.levels))
        s_rep, d_rep, enc_rep = net.compress(x0, ref0, lv(0), enc)
        # a skipped frame: always tried, and the encoder's previous picture made useless (its copy
        # only: the decoder's skipped frame needs the feature, not the picture)
        monkeypatch.setattr(rt, "SKIP_FRAME_TRY", 1.1)
        monkeypatch.setattr(net, "lambdas", lambda device=None: torch.full((net.cfg.levels,), 1e-9))
        blind = RTState(torch.ones_like(enc.x_hat), enc.feature, enc.coef)   # white: far off
        s_skip, d_skip, enc_skip = net.compress(x0, ref0, lv(0), blind)
        monkeypatch.undo()
        assert s_rep == [bytes([rt.MODE_REPEAT]), b""] and d_rep == 0
        assert s_skip == [bytes([rt.MODE_SKIP]), b""]
        assert_same_bits(enc_rep, net.decompress(s_rep, ref0, (H, W), lv(0), d_rep, dec), "repeated frame")
        assert_same_bits(enc_rep, dec, "a repeated frame is the previous one")
        dec_skip = net.decompress(s_skip, ref0, (H, W), lv(0), d_skip, dec)
        assert_same_bits(enc_skip, dec_skip, "skipped frame")
        torch.set_num_threads(1)
        try:
            assert_same_bits(dec_skip, net.decompress(s_skip, ref0, (H, W), lv(0), d_skip, dec), "1 thread")
        finally:
            torch.set_num_threads(2)
        with pytest.raises(EntropyMismatch):
            net.decompress(s_skip, ref0, (H, W), lv(0), (d_skip + 1) & 0xFFFF, dec)
        with pytest.raises(CorruptPacket):
            net.decompress([b"\x07", b""], ref0, (H, W), lv(0), 0, dec)


# -- 5. every quality level -------------------------------------------------------------------------
def test_every_quality_level_round_trips_a_small_key_frame(net):
    x, ref = pair(3, h=64, w=64)
    y_bytes = []
    with torch.no_grad():
        for level in range(net.levels):
            sections, digest, enc = net.compress(x, ref, lv(level))
            dec = net.decompress(sections, ref, (64, 64), lv(level), digest)
            assert_same_bits(enc, dec, f"at level {level}")
            y_bytes.append(len(sections[1]))
    assert net.levels == 64
    assert y_bytes[-1] > y_bytes[0]        # finer steps and fewer skipped elements at the top


# -- 6. the other direction --------------------------------------------------------------------------
@pytest.mark.parametrize("ref_scale", [1, 2])
def test_rgb_given_thermal_round_trips(ref_scale):
    """RGB (3 channels) coded given thermal (1 channel), also from a half-resolution thermal
    reference (as on robots: int_resize brings it to the RGB size)."""
    rnet = _codec("rgb_given_thermal")
    state_enc = state_dec = None
    with torch.no_grad():
        for i in range(3):
            x, ref = pair(i, "rgb_given_thermal")
            if ref_scale > 1:
                ref = ref[..., ::ref_scale, ::ref_scale].contiguous()
            sections, digest, state_enc = rnet.compress(x, ref, lv(), state_enc)
            assert len(sections) == (3 if i == 0 else 2)
            state_dec = rnet.decompress(sections, ref, (H, W), lv(), digest, state_dec)
            assert state_dec.x_hat.shape == (1, 3, H, W)
            assert_same_bits(state_enc, state_dec, f"at frame {i}")
            assert state_dec.x_hat.unique().numel() > 1000


# -- 7. typed errors ---------------------------------------------------------------------------------
def test_damaged_packets_raise_typed_errors(net, stream):
    (key, digest, _), (pred, pdigest, _) = stream[0], stream[1]
    ref0, ref1 = pair(0)[1], pair(1)[1]
    size = (H, W)
    with torch.no_grad():
        good = net.decompress(key, ref0, size, lv(), digest)
        for align in (key[0][:-1], b"", key[0] + b"\x00"):          # truncated / too long
            with pytest.raises(CorruptPacket):
                net.decompress([align, *key[1:]], ref0, size, lv(), digest)
        with pytest.raises(CorruptPacket):                         # a key frame needs 3 sections
            net.decompress(key[1:], ref0, size, lv(), digest)
        with pytest.raises(CorruptPacket):
            net.decompress([*key, b""], ref0, size, lv(), digest)
        with pytest.raises(CorruptPacket):                         # a predicted frame needs 2
            net.decompress(key, ref1, size, lv(), pdigest, good)
        with pytest.raises(CorruptPacket):
            net.decompress(pred[:1], ref1, size, lv(), pdigest, good)
        with pytest.raises(EntropyMismatch):                       # another digest
            net.decompress(key, ref0, size, lv(), digest ^ 0x5A5A)
        with pytest.raises(EntropyMismatch):
            net.decompress(pred, ref1, size, lv(), pdigest ^ 1, good)
        # alignment coefficients of the right length but other values: caught by the digest
        other = bytes((b + 64) & 0xFF for b in key[0])
        with pytest.raises(EntropyMismatch):
            net.decompress([other, *key[1:]], ref0, size, lv(), digest)
        # the intact packets still decode after all that
        assert_same_bits(net.decompress(pred, ref1, size, lv(), pdigest, good), stream[1][2])
    assert issubclass(CorruptPacket, Exception) and issubclass(EntropyMismatch, Exception)


# -- 8. the integer layers -----------------------------------------------------------------------------
def test_int_conv_refuses_layers_whose_sums_could_leave_exact_float32():
    # 1x1 on 7-bit activations: 1040 inputs fit (1040 * 127 * 127 < 2**24), 1041 do not
    IntConv2d(1040, 2, 1)
    with pytest.raises(ValueError, match="2\\*\\*24"):
        IntConv2d(1041, 2, 1)
    IntConv2d(115, 2, 3)
    with pytest.raises(ValueError):
        IntConv2d(116, 2, 3)
    with pytest.raises(ValueError):                              # wide inputs: 64 x 127 x 2047 fits,
        IntConv2d(65, 2, 1, in_max=2047)                         # 65 channels do not
    IntConv2d(64, 2, 1, in_max=2047)
    with pytest.raises(ValueError):
        IntConv2d(3 * 64, 2, 3, in_max=255, in_shift=0)
    # every layer of the codec satisfies the bound (it was constructed), in both directions
    for direction in ("thermal_given_rgb", "rgb_given_thermal"):
        for m in RTDependentCodec(RTConfig(direction=direction)).modules():
            if isinstance(m, IntConv2d):
                assert m.bias_max >= 0          # = 2**24 - 1 - fan_in * 127 * in_max


def _extreme_layer(shift: int, out_range=(-EXACT_LIMIT, EXACT_LIMIT)):
    """The worst case the bound admits: |w| = 127, |x| = in_max = 127, |b| = bias_max, so that
    one accumulator is exactly 2**24 - 1; returns (layer, x, int64 accumulators)."""
    g = torch.Generator().manual_seed(7)
    layer = IntConv2d(1040, 4, 1, out_shift=0, out_range=out_range, leaky=False).eval()
    layer.freeze()
    sign = torch.randint(0, 2, (4, 1040, 1, 1), generator=g) * 2 - 1
    layer.w_int.copy_((sign * W_MAX).to(torch.int8))
    layer.b_int.copy_(torch.tensor([1, -1, 1, -1]) * layer.bias_max)
    layer.shift.fill_(shift)
    x = torch.randint(-127, 128, (1, 1040, 4, 6), generator=g)
    x[..., 0, 0] = 127 * sign[0, :, 0, 0]                   # the extreme sum for channel 0
    x[..., 0, 1] = -127 * sign[1, :, 0, 0]                  # ... and for channel 1, negative
    acc = torch.einsum("oc,bchw->bohw", layer.w_int.long()[..., 0, 0], x) + layer.b_int.long()[:, None, None]
    assert int(acc[0, 0, 0, 0]) == EXACT_LIMIT - 1 and int(acc[0, 1, 0, 1]) == -(EXACT_LIMIT - 1)
    x = torch.cat([x, x + 1 - 2 * (x > 0).long()], dim=2)   # and many accumulators near 2**24
    acc = torch.einsum("oc,bchw->bohw", layer.w_int.long()[..., 0, 0], x) + layer.b_int.long()[:, None, None]
    return layer, x, acc


def _all_kernels():
    threads = torch.get_num_threads()
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            for dnn in (True, False):
                with torch.no_grad(), torch.backends.mkldnn.flags(enabled=dnn):
                    for dtype in (torch.float32, torch.float64):
                        yield (n, dnn, dtype)
    finally:
        torch.set_num_threads(threads)


def test_a_convolution_at_the_bound_sums_exactly_whatever_the_kernel():
    """1 or 2 threads, oneDNN or not, float32 or float64: the convolution of the integer weights
    is the int64 sum, and the requantized output is round-half-up of acc / 2**shift (for the
    shifts 1..24 that trained layers have), computed in integers."""
    for shift in (1, 4, 8, 12, 20, 24):
        layer, x, acc = _extreme_layer(shift)
        want = (acc + (1 << (shift - 1))) >> shift
        for case in _all_kernels():
            dtype = case[2]
            got = F.conv2d(x.to(dtype), layer.w_int.to(dtype), layer.b_int.to(dtype))
            assert torch.equal(got.long(), acc), (shift, case)
            assert torch.equal(layer(x.to(dtype)).long(), want), (shift, case)


def test_requantization_is_exact_at_shift_0_and_25():
    """The rescale and rounding are exact even where float32 would round half to even (shift 0
    with |acc| >= 2**23, shift 25 with acc = 2**24 - 1): they run in float64."""
    for shift in (0, 25):
        layer, x, acc = _extreme_layer(shift)
        want = (acc + (1 << shift >> 1)) >> shift if shift else acc
        for case in _all_kernels():
            assert torch.equal(layer(x.to(case[2])).long(), want), (shift, case)


@pytest.mark.parametrize("src,dst", [((7, 9), (7, 9)), ((6, 8), (12, 16)), ((12, 16), (6, 8)),
                                     ((60, 80), (64, 128)), ((64, 64), (37, 51)), ((5, 7), (13, 3))])
def test_int_resize_is_numpy_nearest_indexing(src, dst):
    a = np.arange(2 * 3 * src[0] * src[1], dtype=np.float32).reshape(2, 3, *src)
    rows = (np.arange(dst[0]) * src[0]) // dst[0]
    cols = (np.arange(dst[1]) * src[1]) // dst[1]
    got = int_resize(torch.from_numpy(a), dst)
    assert got.shape == (2, 3, *dst)
    np.testing.assert_array_equal(got.numpy(), a[..., rows[:, None], cols[None, :]])
    if dst == (2 * src[0], 2 * src[1]):
        np.testing.assert_array_equal(got.numpy(), a.repeat(2, -2).repeat(2, -1))
    if dst == (src[0] // 2, src[1] // 2):
        np.testing.assert_array_equal(got.numpy(), a[..., ::2, ::2])
