"""Reading and writing rosbag2 bags with rosbags: one-line errors, outputs written under a
temporary name and renamed when complete, sensor_msgs/Image <-> numpy for rosbags messages."""
from __future__ import annotations

import shutil
import struct
import sys
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Iterator

import numpy as np

from ..io.frames import FrameSourceError
from ..io.ros_image import numpy_to_image
from .types import IMAGE, BagTypeError, msgdef_and_hash, typestore

STORAGES = ("mcap", "sqlite3")
DEFAULT_RGB_TOPIC = "/rgb/image"          # the image topics of a raw bag and of bag decode's output
DEFAULT_THERMAL_TOPIC = "/thermal/image"
DEFAULT_ENCODED_TOPIC = "/encoded"        # bag encode's EncodedFrame topic
META = "mm_compress_ros."  # prefix of the custom_data keys written by bag encode (read back by bag decode)


class BagError(FrameSourceError):
    """A bag cannot be read or written as asked (one-line message). A FrameSourceError, so that
    ``mm-compress`` reports it in one line."""


_READ_ERRORS = (OSError, EOFError, struct.error, ValueError, KeyError, IndexError)


def _reader_errors():
    from rosbags.rosbag2 import ReaderError

    return (ReaderError, *_READ_ERRORS)


def progress(total, desc, quiet):
    """The progress bar of bag encode / bag decode (messages; none when ``quiet``)."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="msg", disable=quiet, leave=False)


def open_reader(path: str | Path):
    """An open ``rosbags.rosbag2.Reader`` of a bag directory, or of a bare .mcap / .db3 file."""
    from rosbags.rosbag2 import Reader

    path = Path(path)
    if not path.exists():
        raise BagError(f"no such bag: {path}")
    try:
        reader = Reader(path)
        reader.open()
    except FileNotFoundError as exc:
        raise BagError(f"{path} is not a rosbag2 bag: {exc}") from None
    except _reader_errors() as exc:
        raise BagError(f"cannot read bag {path}: {exc} (truncated or damaged? a bag whose recorder "
                       f"was killed may need `ros2 bag reindex`)") from None
    return reader


def iter_messages(reader, connections=(), path: str | Path = "") -> Iterator[tuple]:
    """``reader.messages()`` with read failures turned into a one-line :class:`BagError`."""
    n = 0
    it = reader.messages(connections=connections)
    while True:
        try:
            item = next(it)
        except StopIteration:
            return
        except _reader_errors() as exc:
            raise BagError(f"bag {path or reader.path} is truncated or damaged after {n} messages: "
                           f"{type(exc).__name__}: {exc}") from None
        n += 1
        yield item


def custom_data(reader) -> dict[str, str]:
    meta = getattr(reader.storage, "metadata", None)
    return dict(getattr(meta, "custom", None) or {})


def topics_of(reader) -> dict[str, list]:
    out: dict[str, list] = {}
    for c in reader.connections:
        out.setdefault(c.topic, []).append(c)
    return out


def describe_topics(reader) -> str:
    return ", ".join(f"{t} ({cs[0].msgtype})" for t, cs in sorted(topics_of(reader).items())) or "none"


def image_connection(reader, topic: str, what: str):
    """The connection of ``topic``, which must hold sensor_msgs/msg/Image messages."""
    conns = topics_of(reader).get(topic)
    if not conns:
        raise BagError(f"{what} topic {topic} is not in the bag (topics: {describe_topics(reader)})")
    types = {c.msgtype for c in conns}
    if types != {IMAGE}:
        raise BagError(f"{what} topic {topic} holds {', '.join(sorted(types))}, not {IMAGE}")
    return conns


def storage_plugin(name: str):
    from rosbags.rosbag2 import StoragePlugin

    try:
        return {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}[name]
    except KeyError:
        raise BagError(f"unknown storage {name!r} (use {' or '.join(STORAGES)})") from None


def _check_new(out: Path) -> None:
    if out.exists():
        raise BagError(f"{out} exists already; not overwriting")
    if not out.parent.is_dir():
        raise BagError(f"output folder {out.parent} does not exist")


@contextmanager
def staged_path(out: str | Path, is_dir: bool = False):
    """Yields a temporary path beside ``out`` (same name, inside a hidden ``.<name>.partial``
    folder); on success the result is renamed to ``out``; on any failure the partial output is
    removed, and the error (re-raised with the same type) says that nothing was written."""
    out = Path(out)
    _check_new(out)
    stage = out.parent / f".{out.name}.partial"
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir()
    tmp = stage / out.name
    if is_dir:
        tmp.mkdir()
    try:
        yield tmp
        if out.exists():
            raise BagError(f"{out} appeared while writing; result left in {tmp}")
        tmp.replace(out)
    except ValueError as exc:  # the expected, one-line errors (bags, packets, models, inputs)
        shutil.rmtree(stage, ignore_errors=True)
        try:
            amended = type(exc)(f"{exc}; nothing written to {out}")
        except Exception:  # noqa: BLE001  (an exception class with another signature)
            raise exc from None
        raise amended from None
    except BaseException as exc:
        shutil.rmtree(stage, ignore_errors=True)
        if isinstance(exc, KeyboardInterrupt):
            print(f"partial output removed: nothing written to {out}", file=sys.stderr)
        raise
    shutil.rmtree(stage, ignore_errors=True)


class BagWriter:
    """A rosbags rosbag2 writer (version 9) that knows this package's message types."""

    def __init__(self, path: Path, storage: str = "mcap"):
        from rosbags.rosbag2 import Writer

        self.writer = Writer(path, version=9, storage_plugin=storage_plugin(storage))
        self.writer.open()
        self.store = typestore()
        self._conns: dict = {}

    def add_typed(self, topic: str, msgtype: str, qos=()):
        try:
            msgdef, rihs01 = msgdef_and_hash(msgtype, self.store)
        except BagTypeError as exc:
            raise BagError(str(exc)) from None
        conn = self.writer.add_connection(topic, msgtype, msgdef=msgdef, rihs01=rihs01,
                                          offered_qos_profiles=list(qos))
        self._conns[topic] = conn
        return conn

    def add_copy(self, src):
        """A connection identical to ``src`` (a connection of a bag being read)."""
        msgdef, digest = src.msgdef.data, src.digest
        if not msgdef or not digest:  # bags of older distributions store no definition / hash
            if src.msgtype not in self.store.fielddefs:
                raise BagError(f"topic {src.topic}: the bag stores no definition of {src.msgtype}, "
                               "which this tool does not know either")
            msgdef, digest = msgdef_and_hash(src.msgtype, self.store)
        ext = src.ext
        return self.writer.add_connection(
            src.topic, src.msgtype, msgdef=msgdef, rihs01=digest,
            serialization_format=getattr(ext, "serialization_format", "cdr"),
            offered_qos_profiles=list(getattr(ext, "offered_qos_profiles", []) or []))

    def write(self, conn, timestamp: int, data) -> None:
        self.writer.write(conn, int(timestamp), data)

    def write_msg(self, conn, timestamp: int, msg) -> None:
        self.writer.write(conn, int(timestamp), self.store.serialize_cdr(msg, conn.msgtype))

    def set_custom(self, key: str, value: str) -> None:
        self.writer.set_custom_data(key, str(value))

    def close(self) -> None:
        self.writer.close()

    def abort(self) -> None:
        self.writer.abort()


@contextmanager
def bag_output(out: str | Path, storage: str = "mcap"):
    """A :class:`BagWriter` on a staged path: the bag appears at ``out`` only when complete."""
    with staged_path(out) as tmp:
        w = BagWriter(tmp, storage)
        try:
            yield w
        except BaseException:
            w.abort()
            raise
        w.close()


# -- sensor_msgs/Image (rosbags) <-> numpy --------------------------------------------------------



def make_header(store, stamp, frame_id: str):
    T = store.types
    return T["std_msgs/msg/Header"](
        stamp=T["builtin_interfaces/msg/Time"](sec=int(stamp.sec), nanosec=int(stamp.nanosec)),
        frame_id=str(frame_id))


def make_image(store, array: np.ndarray, encoding: str, stamp, frame_id: str):
    """A rosbags sensor_msgs/msg/Image; the pixel layout is computed by
    :func:`mm_compress_ros.io.ros_image.numpy_to_image` (the one place that defines it)."""
    fields = numpy_to_image(array, encoding, msg=SimpleNamespace())
    return store.types[IMAGE](
        header=make_header(store, stamp, frame_id), height=fields.height, width=fields.width,
        encoding=fields.encoding, is_bigendian=fields.is_bigendian, step=fields.step,
        data=np.frombuffer(fields.data, dtype=np.uint8))
