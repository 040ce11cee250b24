"""Errors of the ``mm-compress`` command level, shared by :mod:`mm_compress_ros.cli` and the
modules that register sub-commands (``eval``, ``bag``), so that none of them imports another for
its errors. ``mm-compress`` ends with one line on stderr and exit status 2 on any of them.

Errors of the codec and of the readers stay where they are raised (``PacketError`` in
codec/packet.py, ``ModelError`` in codec/zoo.py, ``FrameSourceError`` in io/frames.py, ...).
"""


class CliError(Exception):
    """An expected failure of a command (bad argument, missing file), with a one-line message."""
