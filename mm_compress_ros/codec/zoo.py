"""Named models: ``models/<name>-<direction>.safetensors`` with a model card ``.json`` beside it.

Weights are read with safetensors only (nothing is unpickled). The card records the SHA-256 of
the weights file; a file whose hash does not match its card is refused. The first 8 bytes of that
hash travel in every packet, so a decoder refuses a stream made with other weights.

The entropy coder's integer CDF tables are part of the weights file, so that an encoder and a
decoder on different machines use the very same tables.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .device import resolve_device
from .api import DIRECTIONS, LearnedReferenceCodec
from .multimodal import ModelConfig, MultiModalCodec
from .rtcodec import RTConfig, RTDependentCodec

from .profiles import DEFAULT_DIRECTION, DEFAULT_HYBRID_MODEL, DEFAULT_MODEL, default_model, thermal_for  # noqa: E402,F401


class ModelError(ValueError):
    """A model cannot be found, is damaged, or does not match its card (one-line message)."""


def models_dir() -> Path:
    """``$MM_COMPRESS_MODELS``, else ``models/`` of a source checkout, else the ROS share dir."""
    env = os.environ.get("MM_COMPRESS_MODELS")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parents[2] / "models"
    if here.is_dir():
        return here
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory("mm_compress_ros")) / "models"
    except Exception:
        return here


@dataclass
class LoadedModel:
    name: str
    direction: str
    net: MultiModalCodec | RTDependentCodec
    sha256: str
    card: dict
    device: torch.device

    @property
    def model_id(self) -> str:
        return self.name

    @property
    def hash8(self) -> bytes:
        return bytes.fromhex(self.sha256[:16])

    @property
    def levels(self) -> int:
        return self.net.cfg.levels

    @property
    def default_quality(self) -> int:
        """The level used when none is given: the card's ``default_quality``, else the middle one."""
        return int(self.card.get("default_quality") or (self.levels + 1) // 2)


ARCHS = {
    # card "config" "arch" -> (config class, network class); cards without one are the first design
    "mmvc": (ModelConfig, MultiModalCodec),
    "rt": (RTConfig, RTDependentCodec),
}


def build_net(config: dict) -> MultiModalCodec | RTDependentCodec:
    """The (untrained) network a model card's or checkpoint's ``config`` describes."""
    arch = config.get("arch", "mmvc")
    if arch not in ARCHS:
        raise ModelError(f"unknown model architecture {arch!r} (this version knows {', '.join(ARCHS)})")
    cfg_cls, net_cls = ARCHS[arch]
    return net_cls(cfg_cls(**config))


def has_learned_reference(net) -> bool:
    """Whether ``net`` has its own reference codec (the fully learned profile)."""
    return isinstance(net, LearnedReferenceCodec)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _resize_buffers(net: torch.nn.Module, state: dict) -> None:
    """CompressAI's CDF buffers change shape on update(); make the module's fit the file's."""
    for name, buf in list(net.named_buffers()):
        if name in state and state[name].shape != buf.shape:
            mod_name, _, attr = name.rpartition(".")
            mod = net.get_submodule(mod_name) if mod_name else net
            getattr(mod, attr).resize_(state[name].shape)


def load_weights_file(path: Path | str) -> dict:
    """The network weights stored in a model file or a training checkpoint."""
    state = load_file(str(path))
    if any(k.startswith("model/") for k in state):
        state = {k[6:]: v for k, v in state.items() if k.startswith("model/")}
    return state


def export_model(net: MultiModalCodec | RTDependentCodec, path: Path, card: dict) -> dict:
    """Writes ``path`` (.safetensors) and its card (.json, with the file's SHA-256)."""
    net = net.cpu().eval()
    net.update(force=True)   # CDF tables (and for the real-time codec: integer weights, quality bank)
    # learned weights are stored as float16 (half the size; no measurable RD change); buffers as
    # they are: integer CDF tables, and float constants (the 1e-9 likelihood bound, GDN pedestals,
    # the scale table) that float16 would round to zero or move off the CDF tables
    params = {k for k, _ in net.named_parameters()}
    state = {k: (v.half() if k in params else v).detach().contiguous()
             for k, v in net.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata={"config": json.dumps(net.cfg.to_dict())})
    card = {**card, "config": net.cfg.to_dict(), "sha256": sha256_file(path),
            "file_bytes": path.stat().st_size}
    path.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
    return card


def list_models() -> list[dict]:
    out = []
    for card_path in sorted(models_dir().glob("*.json")):
        try:
            card = json.loads(card_path.read_text())
        except json.JSONDecodeError:
            continue
        if "sha256" in card and card_path.with_suffix(".safetensors").exists():
            out.append({**card, "file": str(card_path.with_suffix(".safetensors"))})
    return out


def load_model(name: str = DEFAULT_MODEL, direction: str = DEFAULT_DIRECTION,
               device: str | torch.device = "auto", path: Path | str | None = None,
               baseline_ok: bool = False) -> LoadedModel:
    """Loads a named model (or an explicit ``path``) for inference on ``device``.

    A single-modality baseline (card ``"reference_input": "blank"``) was trained without the other
    camera and only serves evaluation: it loads only with ``baseline_ok``."""
    if direction not in DIRECTIONS:
        raise ModelError(f"unknown direction {direction!r}; use one of {', '.join(DIRECTIONS)}")
    weights = Path(path) if path else models_dir() / f"{name}-{direction}.safetensors"
    card_path = weights.with_suffix(".json")
    if not weights.is_file():
        known = ", ".join(sorted({m["name"] + " (" + m["config"]["direction"] + ")" for m in list_models()})) or "none"
        raise ModelError(f"model {name!r} for direction {direction!r} not found at {weights} (shipped: {known})")
    if not card_path.is_file():
        raise ModelError(f"model card {card_path} is missing")
    card = json.loads(card_path.read_text())
    digest = sha256_file(weights)
    if digest != card.get("sha256"):
        raise ModelError(f"{weights.name}: SHA-256 {digest[:16]}... does not match its card "
                         f"({str(card.get('sha256'))[:16]}...); refusing to load")
    if card.get("reference_input") == "blank" and not baseline_ok:
        raise ModelError(f"{weights.name} is a single-modality evaluation baseline (trained with a blank "
                         "reference), not a streaming model; use the cross-modal model (e.g. mmvc)")
    net = build_net(card["config"])
    cfg = net.cfg
    if cfg.direction != direction and not path:
        raise ModelError(f"{weights.name} is a {cfg.direction} model, not {direction}")
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in load_file(str(weights)).items()}
    _resize_buffers(net, state)
    net.load_state_dict(state)
    dev = resolve_device(device) if isinstance(device, str) else device
    net.to(dev).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return LoadedModel(card.get("name", name), cfg.direction, net, digest, card, dev)


def encoding_model(reference_codec: str, thermal_codec: str = "learned", name: str | None = None,
                   direction: str = DEFAULT_DIRECTION, device: str | torch.device = "auto",
                   path: Path | str | None = None) -> LoadedModel | None:
    """The model an encoder of this profile loads (the one place that decides it for the command
    line, the bag tools and the encoder node): the one named (or ``path``), else the profile's
    default; None for the standard profile, which codes both cameras without a model."""
    thermal_codec = thermal_for(reference_codec, thermal_codec, bool(name or path))
    if thermal_codec != "learned":
        if name or path:
            raise ModelError(f"thermal codec {thermal_codec} codes both cameras as standard streams and takes "
                             f"no model (got {name or path}); drop the model or use thermal codec learned")
        return None
    return load_model(name or default_model(reference_codec, thermal_codec), direction=direction,
                      device=device, path=path)


def decoding_choice(header, name: str | None = None, direction: str | None = None,
                    path: Path | str | None = None) -> tuple[str, str, str | None] | None:
    """Which model decodes a stream whose packet has ``header`` (a PacketHeader, or None for a
    stream not seen yet), as (name, direction, path): the one named (or ``path``), else the one the
    stream names; None when the stream needs no model (standard profile) and none is named. The one
    rule of the command line, the bag tools and the decoder node (:func:`decoding_model` loads it)."""
    if header is not None and not header.needs_model and not (name or path):
        return None
    name = name or (header.model_id if header is not None else DEFAULT_HYBRID_MODEL)
    direction = direction or (header.direction if header is not None else DEFAULT_DIRECTION)
    return name, direction, None if path is None else str(path)


def decoding_model(header, name: str | None = None, direction: str | None = None,
                   device: str | torch.device = "auto", path: Path | str | None = None) -> LoadedModel | None:
    """The model :func:`decoding_choice` picks for ``header``, loaded (None: no model needed)."""
    choice = decoding_choice(header, name, direction, path)
    if choice is None:
        return None
    name, direction, path = choice
    return load_model(name, direction=direction, device=device, path=path)
