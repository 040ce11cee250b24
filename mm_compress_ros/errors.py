"""Errors of the ``mm-compress`` command level, shared by :mod:`mm_compress_ros.cli` and the
modules that register sub-commands (``eval``, ``bag``), so that none of them imports another for
its errors. ``mm-compress`` ends with one line on stderr and exit status 2 on any of them.

Errors of the codec and of the readers stay where they are raised (``PacketError`` in
codec/packet.py, ``ModelError`` in codec/zoo.py, ``FrameSourceError`` in io/frames.py, ...).
"""


class CliError(Exception):
    """An expected failure of a command (bad argument, missing file), with a one-line message."""


class OutputExists(CliError):
    """An output that exists already, and no ``--force``."""


def claim_output(path, force: bool, what: str = "output") -> None:
    """The one overwrite rule of every command that writes: an existing ``path`` (a file, or a
    folder that is not empty) is refused unless ``force``; with ``force`` it is removed first, so
    nothing of an earlier run is left beside the new output."""
    import shutil
    from pathlib import Path

    path = Path(path)
    if not (path.exists() or path.is_symlink()):
        return
    if path.is_dir() and not path.is_symlink() and not any(path.iterdir()):
        return
    if not force:
        raise OutputExists(f"{what} {path} exists already; not overwriting (use --force to replace it)")
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()
