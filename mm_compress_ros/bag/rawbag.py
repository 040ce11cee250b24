"""Raw-image bags from frame pairs (for tests, benchmarks and trying the tools without a robot):
sensor_msgs/Image RGB and thermal topics with the stamps, frame_ids and encodings a camera driver
would publish."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Iterable

import numpy as np

from ..io.ros_image import from_rgb
from .bagio import DEFAULT_RGB_TOPIC, DEFAULT_THERMAL_TOPIC, bag_output, make_image
from .types import IMAGE


def write_raw_bag(out: str | Path, pairs: Iterable[tuple[np.ndarray, np.ndarray]], *,
                  rgb_topic: str = DEFAULT_RGB_TOPIC, thermal_topic: str = DEFAULT_THERMAL_TOPIC,
                  rgb_encoding: str = "rgb8", thermal_encoding: str | None = None,
                  rgb_frame_id: str = "rgb_optical_frame", thermal_frame_id: str = "thermal_optical_frame",
                  start_ns: int = 1_700_000_000_000_000_000, period_ns: int = 33_333_333,
                  thermal_offset_ns: int = 0, storage: str = "mcap",
                  extra: Callable | None = None) -> dict:
    """Writes one RGB and one thermal Image per pair (``rgb`` in RGB order, HxWx3 uint8;
    ``thermal`` HxW uint8 or uint16). Frame ``i`` is stamped ``start_ns + i * period_ns`` (RGB)
    and that plus ``thermal_offset_ns`` (thermal); record times equal the stamps.
    ``extra(writer)`` may add connections and messages of other topics. Returns the stamps."""
    rgb_stamps, th_stamps = [], []
    with bag_output(out, storage) as w:
        store = w.store
        rc = w.add_typed(rgb_topic, IMAGE)
        tc = w.add_typed(thermal_topic, IMAGE)
        for i, (rgb, th) in enumerate(pairs):
            t_rgb = start_ns + i * period_ns
            t_th = t_rgb + thermal_offset_ns
            tenc = thermal_encoding or ("mono16" if th.dtype == np.uint16 else "mono8")
            stamp = SimpleNamespace(sec=t_rgb // 1_000_000_000, nanosec=t_rgb % 1_000_000_000)
            tstamp = SimpleNamespace(sec=t_th // 1_000_000_000, nanosec=t_th % 1_000_000_000)
            w.write_msg(rc, t_rgb, make_image(store, from_rgb(rgb, rgb_encoding), rgb_encoding, stamp, rgb_frame_id))
            w.write_msg(tc, t_th, make_image(store, th, tenc, tstamp, thermal_frame_id))
            rgb_stamps.append(t_rgb)
            th_stamps.append(t_th)
        if extra is not None:
            extra(w)
    return {"rgb_stamps": rgb_stamps, "thermal_stamps": th_stamps}
