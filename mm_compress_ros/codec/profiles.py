"""The profiles and THE defaults: one place for every decision about what codes each camera.

A profile is a pair of layer codecs (RGB, thermal):

* ``standard``: both standard low-delay streams (RGB h264 / h265, thermal h264 / h265 / lossless,
  or ``auto``: h264 for 8-bit thermal, h265 at 12 bits for 16-bit), no model; the default, the
  measured winner on m3svd_seq (docs/results.md, "Profiles");
* ``hybrid``: RGB standard, thermal by a learned model given the decoded RGB (``mmrt`` by default);
* ``learned``: both by a learned model (``mmvc``).

One quality knob, level 1..L (64 without a model, the model's levels with one), gives the standard
layers their QP (:func:`reference_qp`) and a learned layer its level. This module imports nothing
else of the package (the packet format, the stream, the command line and the nodes import it).
"""

from __future__ import annotations

# wire order: a codec's index here is its code in the packet header (docs/bitstream.md)
REFERENCE_CODEC_NAMES = ("learned", "h264", "h265")
THERMAL_CODEC_NAMES = ("learned", "h264", "h265", "lossless")
AUTO = "auto"   # thermal: h264 for 8-bit, h265 (12-bit) for 16-bit (codec/thermal.py, resolve)

DEFAULT_REFERENCE_CODEC = "h264"
DEFAULT_THERMAL_CODEC = AUTO
DEFAULT_MODEL = "mmvc"          # the learned profile's model (both modalities learned)
DEFAULT_HYBRID_MODEL = "mmrt"   # the hybrid profile's: the real-time dependent codec
DEFAULT_DIRECTION = "thermal_given_rgb"
DEFAULT_GOP = 10                # a key frame every N frames (the stream, the nodes, the commands)

# quality levels of a stream coded without a learned model (the standard profile): the same knob as
# the decoder-side joint restoration (mm_compress_ros/restore): on by default only when the shipped
# model measures better than plain decoding on both rigs (docs/results.md, "Joint restoration")
DEFAULT_RESTORE = False

# the real-time model's 64 levels, so that a level means the same QPs in every profile
STANDARD_LEVELS = 64
# quality level (1 = smallest stream) -> QP of a standard layer, from level 1 to the top level
QP_FIRST, QP_LAST = 37, 22


def reference_qp(level: float, levels: int) -> int:
    """QP of the standard layers at quality ``level`` (1..levels; the rate controller's
    continuous knob goes past both ends, its caller bounds the QP)."""
    if levels <= 1:
        return QP_LAST
    return round(QP_FIRST + (QP_LAST - QP_FIRST) * (level - 1) / (levels - 1))


def profile_name(reference_codec: str, thermal_codec: str = "learned") -> str:
    """``learned`` (both by the model), ``hybrid`` (RGB standard, thermal by the model given it) or
    ``standard`` (both standard streams: no model at all)."""
    if reference_codec == "learned":
        return "learned"
    return "hybrid" if thermal_codec == "learned" else "standard"


def thermal_for(reference_codec: str, thermal_codec: str, with_model: bool = False) -> str:
    """The thermal codec a choice means: ``auto`` with a learned RGB layer, or with a model named,
    is the learned thermal layer (a model is asked for only to code thermal); else as given."""
    if thermal_codec == AUTO and (reference_codec == "learned" or with_model):
        return "learned"
    return thermal_codec


def check_profile(reference_codec: str, thermal_codec: str) -> None:
    """Raises ValueError (one line) for a combination of layers that is not a profile."""
    if reference_codec not in REFERENCE_CODEC_NAMES:
        raise ValueError(f"unknown reference codec {reference_codec!r}; use one of {', '.join(REFERENCE_CODEC_NAMES)}")
    if thermal_codec not in (*THERMAL_CODEC_NAMES, AUTO):
        raise ValueError(f"unknown thermal codec {thermal_codec!r}; use one of "
                         f"{', '.join((*THERMAL_CODEC_NAMES, AUTO))}")
    if reference_codec == "learned" and thermal_codec != "learned":
        raise ValueError(f"thermal codec {thermal_codec} needs a standard RGB layer: use reference codec h264 or h265 "
                         "(the learned profile codes both cameras with the model)")


def default_model(reference_codec: str, thermal_codec: str = "learned") -> str | None:
    """The model a profile uses unless one is named: None for the standard profile (no model),
    ``mmvc`` for the learned profile, ``mmrt`` for the hybrid one."""
    if thermal_codec != "learned":
        return None
    return DEFAULT_MODEL if reference_codec == "learned" else DEFAULT_HYBRID_MODEL
