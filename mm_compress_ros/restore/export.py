"""Ships a trained restoration model: ``models/<name>.safetensors`` (the weights only, the network's
configuration in the metadata) and its card ``<name>.json`` (SHA-256 of the weights, configuration,
training data, steps, CPU hours from the training log, the command; measured points are added by
``benchmarks/restoration.py --update-card``).

    python -m mm_compress_ros.restore.export runs/restore/checkpoint.safetensors --name restore --data "..."
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import load_file, save_file

from ..codec.zoo import models_dir, sha256_file


def training_summary(run: Path) -> dict:
    """Steps, processes and compute of a training run, from its log.jsonl."""
    lines = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines() if x.strip()]
    steps = [x for x in lines if "sec_per_step" in x]
    if not steps:
        return {}
    seconds, last = 0.0, 0
    for x in steps:   # each line covers the steps since the previous one (resumed runs repeat a few)
        seconds += x["sec_per_step"] * max(0, x["step"] - last)
        last = x["step"]
    return {"steps": last, "processes": steps[-1].get("processes", 1), "wall_hours": round(seconds / 3600, 2),
            "last_logged_gain_db": {"rgb": steps[-1]["gain_rgb_db"], "thermal": steps[-1]["gain_thermal_db"]}}


def export(checkpoint: Path, name: str, out_dir: Path, data: str, threads: int) -> Path:
    with safe_open(str(checkpoint), "pt") as f:
        meta = f.metadata() or {}
    config = json.loads(meta["config"])
    weights = {k[6:]: v for k, v in load_file(str(checkpoint)).items() if k.startswith("model.")}
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.safetensors"
    save_file(weights, str(path), metadata={"config": json.dumps(config), "name": name})
    train = training_summary(checkpoint.parent)
    if train:
        train["cpu_hours"] = round(train["wall_hours"] * train["processes"] * threads, 2)
        train["threads_per_process"] = threads
    card_path = path.with_suffix(".json")
    old = json.loads(card_path.read_text()) if card_path.exists() else {}
    card = {
        "name": name, "kind": "joint restoration (decoder side, zero bits)",
        "sha256": sha256_file(path),
        "config": config, "parameters": sum(v.numel() for v in weights.values()),
        "exported": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "training": {"data": data, **train,
                     "command": f"python -m mm_compress_ros.restore.train <chains> {checkpoint.parent}"},
        "measured": old.get("measured", {}),
    }
    card_path.write_text(json.dumps(card, indent=1) + "\n")
    return path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m mm_compress_ros.restore.export", description=__doc__.split("\n")[0])
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--name", default="restore")
    p.add_argument("--out", type=Path, default=None, help="folder (default: the models folder)")
    p.add_argument("--threads", type=int, default=1, help="torch threads each training process used")
    p.add_argument("--data", required=True, help="what the chains were made from, for the card (e.g. the "
                                                  "restore.data command line)")
    a = p.parse_args(argv)
    if not a.checkpoint.exists():
        print(f"export: no such checkpoint {a.checkpoint}", file=sys.stderr)
        return 2
    print(export(a.checkpoint, a.name, a.out or models_dir(), a.data, a.threads))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
