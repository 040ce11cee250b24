"""Sharded checkpoints of the one-shot GPU run (train/timed.py): the weights as safetensors files
small enough to come back from the device machine, plus ``checkpoint.json`` with each file's SHA-256.

``train/assemble.py`` reads them back (``mm-compress export``).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

MIB = 1 << 20
FILE_LIMIT = 16 * MIB        # the largest file that comes back from the device machine's $OUT
CHECKPOINT_FORMAT = "mm-compress sharded checkpoint 1"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(MIB), b""):
            h.update(chunk)
    return h.hexdigest()


def save_shards(tensors: dict[str, torch.Tensor], out: Path, meta: dict, shard_mib: float = 15.0) -> dict:
    """Writes ``tensors`` as ``weights-<i>.safetensors`` of at most ``shard_mib`` MiB each (greedy, in
    order) and then ``checkpoint.json`` (``meta`` plus the shards' names, sizes and SHA-256),
    each through a temporary file; removes shards of an earlier save beyond this one's count."""
    if shard_mib * MIB > FILE_LIMIT:
        raise ValueError(f"--shard-mib {shard_mib} is over the {FILE_LIMIT // MIB} MiB file limit")
    cap = int(shard_mib * MIB) - 256 * 1024  # room for the safetensors header (names and offsets)
    groups, cur, size = [], {}, 0
    for k, v in tensors.items():
        n = v.numel() * v.element_size()
        if n > cap:
            raise ValueError(f"tensor {k} ({n} bytes) does not fit a {shard_mib} MiB shard")
        if cur and size + n > cap:
            groups.append(cur)
            cur, size = {}, 0
        cur[k], size = v.detach().cpu().contiguous(), size + n
    groups.append(cur)
    out.mkdir(parents=True, exist_ok=True)
    shards = []
    for i, g in enumerate(groups):
        path = out / f"weights-{i}.safetensors"
        tmp = path.with_name(path.name + ".tmp")
        save_file(g, str(tmp), metadata={"shard": f"{i} of {len(groups)}"})
        if tmp.stat().st_size > FILE_LIMIT:
            raise ValueError(f"{path.name}: {tmp.stat().st_size} bytes, over the {FILE_LIMIT} byte limit")
        os.replace(tmp, path)
        shards.append({"file": path.name, "bytes": path.stat().st_size, "sha256": _sha256(path),
                       "tensors": len(g)})
    for old in out.glob("weights-*.safetensors"):
        if old.name not in {s["file"] for s in shards}:
            old.unlink()
    meta = {"format": CHECKPOINT_FORMAT, **meta, "shards": shards}
    tmp = out / "checkpoint.json.tmp"
    tmp.write_text(json.dumps(meta, indent=1))
    os.replace(tmp, out / "checkpoint.json")
    return meta


def load_shards(run: Path, meta: dict | None = None) -> dict[str, torch.Tensor]:
    """The tensors of a sharded checkpoint, each shard checked against its SHA-256 in the JSON."""
    run = Path(run)
    meta = meta or json.loads((run / "checkpoint.json").read_text())
    tensors: dict[str, torch.Tensor] = {}
    for s in meta["shards"]:
        path = run / s["file"]
        if not path.is_file():
            raise ValueError(f"{run}: shard {s['file']} is missing")
        if _sha256(path) != s["sha256"]:
            raise ValueError(f"{path}: SHA-256 does not match checkpoint.json (a save was cut off?)")
        tensors.update(load_file(str(path)))
    return tensors
