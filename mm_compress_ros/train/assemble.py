"""One model from the checkpoints of staged training runs, with its training history.

Staged training (Lu et al.; see docs/training.md) can run its stages one after the other or side
by side on different cores: a run of stage ``ref`` trains only the reference key-frame codec, a
run of stage ``video`` only the temporal codecs, and so on. :func:`assemble` takes the full weights
of the first run and, from each later run, the parts its stage trained (``all``: every part). The
model card lists every run (stage, steps, CPU seconds, batch, crop, learning rate, initial
weights) and, when the first run started from a shipped model, that model's own history, so the
card's CPU hours are the whole cost of the weights.

A run folder can also be the sharded checkpoint of a wall-clock-budget run (``train/timed.py``, the
one-shot GPU run: ``weights-<i>.safetensors`` + ``checkpoint.json``, as they come back from the
device machine): its stages (``ref+dep+video``) contribute their parts, and the card's history
entry records the device, the budget in minutes, the steps and steps/s of each stage; GPU time
is counted as ``gpu_minutes``, apart from the CPU hours.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..codec.multimodal import MultiModalCodec
from ..codec.zoo import build_net, load_weights_file
from .shards import CHECKPOINT_FORMAT, load_shards
from .trainer import PARTS, TrainConfig


class AssembleError(ValueError):
    """A run folder cannot be used (missing, or another model configuration)."""


def _read_run(run: Path) -> dict:
    meta_path = run / "checkpoint.json"
    if not meta_path.is_file():
        raise AssembleError(f"no checkpoint in {run}")
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != CHECKPOINT_FORMAT and not (run / "checkpoint.safetensors").is_file():
        raise AssembleError(f"no checkpoint in {run}")
    return meta


def _run_weights(run: Path, meta: dict) -> dict:
    """The network weights of a run: its checkpoint file, or its shards (each checked)."""
    if meta.get("format") != CHECKPOINT_FORMAT:
        return load_weights_file(run / "checkpoint.safetensors")
    try:
        state = load_shards(run, meta)
    except ValueError as exc:
        raise AssembleError(str(exc)) from None
    return {k[6:]: v for k, v in state.items() if k.startswith("model/")}


def _trained_by(stage: str) -> tuple[str, ...] | None:
    """The parameter prefixes a run of ``stage`` trained (``ref+dep``: both; None: everything)."""
    stages = stage.split("+")
    if "all" in stages:
        return None
    return tuple(p for s in stages for p in PARTS[s])


def _is_gpu(entry: dict) -> bool:
    return str(entry.get("device") or "cpu").startswith("cuda")


def _run_entry(run: Path, meta: dict) -> dict:
    t = meta["train"]
    entry = {"run": run.name, "stage": t["stage"], "steps": meta["step"],
             "seconds": round(meta.get("seconds", 0.0)), "batch": t["batch"], "crop": t["crop"],
             "lr": t["lr"], "decay_at": t.get("decay_at"), "chain": t.get("chain", 1),
             "still_every": t.get("still_every", TrainConfig.still_every),
             "downscale": t.get("downscale", TrainConfig.downscale), "device": meta.get("device", "cpu")}
    if t.get("blank_reference"):
        entry["blank_reference"] = True
    for k in ("blank_share", "coded_qps"):
        if k in t:
            entry[k] = t[k]
    if tuple(t.get("reference_codecs", ("learned",))) != ("learned",):
        entry["reference_codecs"] = list(t["reference_codecs"])
    if meta.get("init"):
        entry["init_sha256"] = meta["init"]["sha256"]
    if meta.get("format") == CHECKPOINT_FORMAT:  # a wall-clock-budget run (timed.py)
        entry.update({"device_name": meta.get("device_name"), "minutes": meta.get("minutes"),
                      "wall_seconds": meta.get("wall_seconds"), "amp": meta.get("amp"),
                      "schedule": t.get("schedule"), "torch": meta.get("torch"), "data": meta.get("data"),
                      "stages": [{k: g.get(k) for k in ("stage", "steps", "seconds", "steps_per_s", "skipped")}
                                 for g in meta.get("stages", [])]})
        if _is_gpu(entry):
            entry["gpu_minutes"] = round(meta.get("wall_seconds", 0.0) / 60, 2)
    return entry


def _earlier_card(meta: dict) -> dict:
    """The card of the shipped model a run started from (``{}`` when none or it does not match)."""
    init = meta.get("init")
    if not init:
        return {}
    card_path = Path(init["file"]).with_suffix(".json")
    try:
        card = json.loads(card_path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    if card.get("sha256") != init["sha256"]:
        return {}
    return card


def _earlier_history(card: dict) -> list[dict]:
    """The training history recorded in an earlier model's card."""
    if not card:
        return []
    t = card.get("training", {})
    if "history" in t:
        return list(t["history"])
    return [{"run": card.get("name", "earlier"), "stage": t.get("stage", "all"),
             "steps": t.get("steps", 0), "seconds": t.get("seconds", 0), "batch": t.get("batch"),
             "crop": t.get("crop"), "schedule": t.get("schedule")}]


def _earlier_schedules(card: dict) -> list[str]:
    """The ``--schedule`` notes of an earlier model and of the models it was trained from."""
    t = card.get("training", {})
    if "history" not in t:  # a single-run card: its schedule sits in its one history entry
        return list(t.get("earlier_schedules", []))
    return list(t.get("earlier_schedules", [])) + ([t["schedule"]] if t.get("schedule") else [])


def assemble(runs: list[Path], name: str, summary: str = "", data_note: str = "") -> tuple[MultiModalCodec, dict]:
    if not runs:
        raise AssembleError("no run folder given")
    metas = [_read_run(r) for r in runs]
    cfg_dict = metas[0]["train"]["model"]
    for r, m in zip(runs[1:], metas[1:]):
        if m["train"]["model"] != cfg_dict:
            raise AssembleError(f"{r} was trained with another model configuration than {runs[0]}")
    net = build_net(cfg_dict)
    state = _run_weights(runs[0], metas[0])
    for r, m in zip(runs[1:], metas[1:]):
        parts = _trained_by(m["train"]["stage"])
        theirs = _run_weights(r, m)
        state.update({k: v for k, v in theirs.items() if parts is None or k.startswith(parts)})
    net.load_state_dict(state)

    earlier = _earlier_card(metas[0])
    history = _earlier_history(earlier) + [_run_entry(r, m) for r, m in zip(runs, metas)]
    seconds = sum(h.get("seconds") or 0 for h in history)
    cpu_seconds = sum(h.get("seconds") or 0 for h in history if not _is_gpu(h))
    gpu_minutes = sum(h.get("gpu_minutes") or 0 for h in history if _is_gpu(h))
    card = {"name": name, "summary": summary,
            "training": {"steps": sum(h.get("steps") or 0 for h in history), "seconds": round(seconds),
                         "cpu_hours": round(cpu_seconds / 3600, 2), "device": metas[-1].get("device", "cpu"),
                         "batch": metas[-1]["train"]["batch"], "crop": metas[-1]["train"]["crop"],
                         "stage": "+".join(h["stage"] for h in history), "data": data_note,
                         "history": history}}
    if gpu_minutes:  # GPU time: the device machine's minutes (the whole run, data loading included)
        card["training"]["gpu_minutes"] = round(gpu_minutes, 2)
    schedules = _earlier_schedules(earlier)
    if schedules:  # how the earlier model's runs were scheduled (export --schedule)
        card["training"]["earlier_schedules"] = schedules
    if any(m["train"].get("blank_reference") for m in metas):
        # the dependent codec never saw the reference: evaluate it with a blank reference input
        card["reference_input"] = "blank"
    return net, card
