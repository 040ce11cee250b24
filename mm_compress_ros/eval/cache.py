"""The cache of measured points of ``mm-compress eval`` (``--cache``).

A point is stored under a key made of everything that determines it: the codec and its setting
(for the model: the weights' SHA-256; for a profile other than the learned one: its two layers and
a digest of the code and PyAV build behind the standard layers), the GOP / key-frame interval,
whether MS-SSIM was measured, and a hash of the exact input frames. A later run with the same
inputs reuses it, so that a long evaluation can be interrupted and resumed, and the anchors are not
re-coded when only the model changed. CACHE_VERSION changes whenever the measurement code changes
what a point holds. What a point is and how it is measured: eval/engine.py.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from . import anchors as anc

CACHE_VERSION = 1


def frames_digest(seqs) -> str:
    h = hashlib.sha256()
    for s in seqs:
        h.update(s.name.encode())
        for a in (*s.rgb, *s.thermal):
            h.update(str((a.shape, a.dtype.str)).encode())
            h.update(np.ascontiguousarray(a).data)
    return h.hexdigest()


def standard_layers_digest() -> str:
    """What a standard layer's bits depend on beyond its settings: the source of the modules that
    set up libx264/libx265 and the thermal layers, and the PyAV (FFmpeg, x264, x265) build."""
    import av

    from ..codec import lossless, reference, thermal, videocodec

    h = hashlib.sha256(str(av.__version__).encode())
    for mod in (videocodec, thermal, reference, lossless):
        h.update(Path(mod.__file__).read_bytes())
    return h.hexdigest()[:16]


def cache_key(job, data_digest: str, keyint: int, with_msssim: bool, model=None) -> str:
    ident = {"v": CACHE_VERSION, "kind": job.kind, "setting": job.setting, "gop": job.gop,
             "msssim": with_msssim, "data": data_digest}
    if job.kind == "anchor":
        ident.update(codec=job.codec, keyint=keyint if anc.anchor(job.codec).uses_keyint else None)
    else:
        ident.update(model=model.sha256 if model is not None else None,
                     direction=model.direction if model is not None else None)
        if (job.reference_codec, job.thermal_codec) != ("learned", "learned"):   # (learned: keys as before)
            ident.update(profile=[job.reference_codec, job.thermal_codec], layers=standard_layers_digest())
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:24]



def load_point(path: Path) -> dict | None:
    """The point stored at ``path``; None when there is none (or a damaged one, measured again)."""
    if path.is_file():
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError:
            pass
    return None


def store_point(path: Path, point: dict) -> None:
    """Writes ``point`` (JSON-ready) at ``path`` atomically (a half-written entry is never read)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part")
    tmp.write_text(json.dumps(point))
    tmp.replace(path)
