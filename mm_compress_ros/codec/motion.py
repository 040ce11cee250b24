"""Motion taken from the RGB layer's H.264 stream (issue 25): libavcodec's block motion vectors, a
dense per-block field, rescaled to another camera's grid and used to warp a previous picture.

Both ends of a link hold the RGB layer's exact bytes, so both decode the same vectors at no extra
bit. Everything after libavcodec is integer arithmetic on numpy arrays: the field, its rescaling
and the warp give the same result on every machine.

* :class:`MotionDecoder` decodes one Annex B access unit (as ``videocodec.VideoDecoder`` does, with
  the decoder option ``flags2=+export_mvs``) into the picture and its :class:`MotionField`.
* :func:`field_from_vectors` turns libavcodec's ``MOTION_VECTORS`` side data (one ``AVMotionVector``
  per coded partition: ``dst_x, dst_y`` its centre, ``w, h`` its size, ``motion_x / motion_scale``
  the displacement to its source in the reference picture) into one vector per 4x4 block, in
  quarter pels. A block without a vector (intra, or a key frame) gets zero motion and ``inter``
  False.
* :func:`rescale` maps a field to another picture size (the thermal camera's), :func:`warp` does
  block motion compensation of a uint8 or uint16 picture (bilinear at quarter-pel positions with
  integer weights /16 and rounding; outside the picture the nearest edge pixel, as H.264's
  reference padding). H.264 itself interpolates luma with a 6-tap filter; the bilinear warp here is
  the simpler, exact predictor of a *different* picture (the thermal one), not a re-implementation
  of H.264's motion compensation.

Caveats, measured (PyAV 18.1, libavcodec 62.28): libavcodec's HEVC decoder ignores
``export_mvs`` (libx265-coded P frames decode with no ``MOTION_VECTORS`` side data), so a H.265 RGB
layer gives no field here (:data:`EXPORTS_MVS`); and ``AVMotionVector`` carries no reference index,
so with libx264's several reference frames (preset medium: 3) a vector may point at the picture two
or three frames back while this module applies it to the previous one.
"""

from __future__ import annotations

from dataclasses import dataclass

import av
import numpy as np

from .videocodec import VideoDecoder

BLOCK = 4            # pixels per field block side (H.264's smallest partition)
QPEL = 4             # field vectors are in 1/QPEL pixel
# whether libavcodec's decoder of the codec exports motion vectors (checked, see the module notes)
EXPORTS_MVS = {"h264": True, "h265": False}
STATIC, MOVING, INTRA = 0, 1, 2      # block classes (:func:`block_classes`)
CLASS_NAMES = ("static", "moving", "intra")


@dataclass(frozen=True)
class MotionField:
    """One vector per ``block`` x ``block`` pixels of a ``size`` (H, W) picture.

    ``mv``: (Hb, Wb, 2) int32, (dx, dy) in quarter pels: the block's pixel (x, y) is predicted from
    (x + dx/4, y + dy/4) of the previous picture. ``inter``: (Hb, Wb) bool, a vector was coded
    (False: intra or no vector; its ``mv`` is zero).
    """

    mv: np.ndarray
    inter: np.ndarray
    size: tuple[int, int]
    block: int = BLOCK

    @staticmethod
    def zero(size: tuple[int, int], block: int = BLOCK, inter: bool = True) -> "MotionField":
        hb, wb = -(-size[0] // block), -(-size[1] // block)
        return MotionField(np.zeros((hb, wb, 2), np.int32), np.full((hb, wb), inter), tuple(size), block)


def _qpel(motion: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``motion / scale`` pixels in quarter pels, rounded half away from zero, integers only."""
    m = motion.astype(np.int64) * QPEL
    s = np.maximum(scale.astype(np.int64), 1)
    q = (2 * np.abs(m) + s) // (2 * s)
    return (np.sign(m) * q).astype(np.int32)


def field_from_vectors(vectors: np.ndarray | None, size: tuple[int, int], block: int = BLOCK) -> MotionField:
    """The dense field of a picture of ``size`` from libavcodec's ``AVMotionVector`` records (a numpy
    structured array, ``MotionVectors.to_ndarray()``; None or empty: all intra). Only vectors into
    the past (``source < 0``) count; a later record for a block overwrites an earlier one."""
    out = MotionField.zero(size, block, inter=False)
    if vectors is None or len(vectors) == 0:
        return out
    v = vectors[vectors["source"] < 0]
    hb, wb = out.inter.shape
    w, h = v["w"].astype(np.int64), v["h"].astype(np.int64)
    x0 = v["dst_x"].astype(np.int64) - w // 2          # dst is the partition's centre
    y0 = v["dst_y"].astype(np.int64) - h // 2
    dx, dy = _qpel(v["motion_x"], v["motion_scale"]), _qpel(v["motion_y"], v["motion_scale"])
    nby, nbx = -(-h // block), -(-w // block)          # blocks the partition covers
    for i in range(int(nby.max(initial=0))):
        for j in range(int(nbx.max(initial=0))):
            by = y0 // block + i
            bx = x0 // block + j
            ok = (i < nby) & (j < nbx) & (by >= 0) & (by < hb) & (bx >= 0) & (bx < wb)
            out.mv[by[ok], bx[ok], 0] = dx[ok]
            out.mv[by[ok], bx[ok], 1] = dy[ok]
            out.inter[by[ok], bx[ok]] = True
    return out


def _scale_q(v: np.ndarray, num: int, den: int) -> np.ndarray:
    """``v * num / den`` rounded half away from zero, integers only."""
    v = v.astype(np.int64)
    return (np.sign(v) * ((2 * np.abs(v) * num + den) // (2 * den))).astype(np.int32)


def rescale(field: MotionField, size: tuple[int, int], block: int = BLOCK) -> MotionField:
    """The field on the grid of a ``size`` (H, W) picture showing the same view (a registered camera
    of another resolution): each target block takes the vector of the source block under its centre
    (``y_src = y * H_src // H``), scaled by ``H / H_src`` (vertical) and ``W / W_src`` (horizontal)
    with integer rounding."""
    (hs, ws), (ht, wt) = field.size, tuple(size)
    hb, wb = -(-ht // block), -(-wt // block)
    cy = np.minimum(np.arange(hb) * block + block // 2, ht - 1)
    cx = np.minimum(np.arange(wb) * block + block // 2, wt - 1)
    sy = np.minimum(cy * hs // ht // field.block, field.inter.shape[0] - 1)
    sx = np.minimum(cx * ws // wt // field.block, field.inter.shape[1] - 1)
    mv = field.mv[sy[:, None], sx[None, :]]
    out = np.stack([_scale_q(mv[..., 0], wt, ws), _scale_q(mv[..., 1], ht, hs)], axis=-1)
    return MotionField(out, field.inter[sy[:, None], sx[None, :]].copy(), (ht, wt), block)


def warp(prev: np.ndarray, field: MotionField) -> np.ndarray:
    """Block motion compensation of ``prev`` (HxW or HxWxC, uint8 or uint16, H x W = ``field.size``):
    bilinear at quarter-pel positions, weights (4-f)(4-g)/16 ..., ``+8 >> 4`` rounding, positions
    outside the picture clamped to its edge. Integer arithmetic only: exact on every machine."""
    if prev.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"warp takes uint8 or uint16 pictures, not {prev.dtype}")
    h, w = prev.shape[:2]
    if (h, w) != tuple(field.size):
        raise ValueError(f"picture {w}x{h} does not match the field's {field.size[1]}x{field.size[0]}; rescale it")
    b = field.block
    ys = np.arange(h, dtype=np.int64)
    xs = np.arange(w, dtype=np.int64)
    mv = field.mv[(ys // b)[:, None], (xs // b)[None, :]].astype(np.int64)   # (h, w, 2)
    px = QPEL * xs[None, :] + mv[..., 0]
    py = QPEL * ys[:, None] + mv[..., 1]
    x0, fx = px >> 2, px & 3          # floor and fraction (arithmetic shift)
    y0, fy = py >> 2, py & 3
    xa, xb = np.clip(x0, 0, w - 1), np.clip(x0 + 1, 0, w - 1)
    ya, yb = np.clip(y0, 0, h - 1), np.clip(y0 + 1, 0, h - 1)
    p = prev.astype(np.int64)
    if p.ndim == 3:
        fx, fy = fx[..., None], fy[..., None]
    acc = ((4 - fx) * (4 - fy) * p[ya, xa] + fx * (4 - fy) * p[ya, xb]
           + (4 - fx) * fy * p[yb, xa] + fx * fy * p[yb, xb])
    return ((acc + 8) >> 4).astype(prev.dtype)


def block_classes(field: MotionField) -> np.ndarray:
    """(Hb, Wb) uint8: STATIC (a zero vector), MOVING (a non-zero vector) or INTRA (no vector)."""
    moving = np.any(field.mv != 0, axis=-1)
    return np.where(~field.inter, INTRA, np.where(moving, MOVING, STATIC)).astype(np.uint8)


def pixel_map(field: MotionField, values: np.ndarray | None = None) -> np.ndarray:
    """A per-block array (default: :func:`block_classes`) spread to the picture's pixels (H, W)."""
    v = block_classes(field) if values is None else values
    b = field.block
    return np.repeat(np.repeat(v, b, 0), b, 1)[:field.size[0], :field.size[1]]


class MotionDecoder(VideoDecoder):
    """Decodes one access unit into (picture, :class:`MotionField`), as ``VideoDecoder`` does, with
    libavcodec's motion-vector export on. For a codec whose decoder exports none (``h265``) the field
    is all intra."""

    options = {"flags2": "+export_mvs"}

    def decode(self, data: bytes, size: tuple[int, int], channels: int = 3) -> tuple[np.ndarray, MotionField]:
        """The picture (RGB or gray uint8 of ``size``, as ``VideoDecoder.decode``) and its field
        (``size``; all intra on a key frame)."""
        f = self._frame(data, size, "yuv420p")
        sd = f.side_data.get(av.sidedata.sidedata.Type.MOTION_VECTORS)
        vectors = sd.to_ndarray() if sd is not None else None
        return self._picture(f, size, channels), field_from_vectors(vectors, tuple(size))
