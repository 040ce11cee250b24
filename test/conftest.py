"""Shared fixtures and helpers for tests that start real ROS 2 processes over DDS.

The ROS environment comes from scripts/ros_env.sh (the one place that defines it): it is read
once by sourcing that script in bash, then every test gets its own ROS_DOMAIN_ID so that runs and
tests never see each other's traffic. Processes are started in their own session and stopped by
their PID (SIGINT, then SIGTERM, then SIGKILL), with bounded timeouts everywhere.
"""
from __future__ import annotations

import itertools
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

# One PyTorch/OpenMP thread per process in tests (inherited by the processes tests start): with
# several processes on 2 cores, multi-threaded PyTorch spends most of its time waiting in
# OpenMP barriers (measured here: a 64x64 frame pair took 2-4 s to encode with 2 threads while
# another process was busy, 0.1 s with 1 thread).
os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
INSTALL_PKG = REPO / "install" / "mm_compress_ros"
LIB_DIR = INSTALL_PKG / "lib" / "mm_compress_ros"
SHARE_DIR = INSTALL_PKG / "share" / "mm_compress_ros"
PROCS = Path(__file__).resolve().parent / "procs"
DATA_ROOT = Path(os.environ.get("MMC_DATA", REPO.parent / "shared" / "data"))

_BASE_ENV: dict[str, str] | None = None
# Fast DDS accepts domain ids 0..232. Start at a random point so that two concurrent test runs
# (or a demo running beside the tests) are unlikely to share a domain, then step per test.
_DOMAIN_IDS = itertools.count(random.Random(os.getpid() ^ time.time_ns()).randrange(0, 200))


def ros_base_env() -> dict[str, str]:
    """The environment that `source scripts/ros_env.sh` produces (computed once per session)."""
    global _BASE_ENV
    if _BASE_ENV is None:
        if not (SHARE_DIR / "package.xml").is_file():
            pytest.fail("the colcon build is missing (install/mm_compress_ros): run `make build` "
                        "or `make test`", pytrace=False)
        env = dict(os.environ)
        env.pop("ROS_DOMAIN_ID", None)
        if sys.prefix != sys.base_prefix:  # run from a venv: make ros_env.sh use that one
            env["MMC_VENV"] = sys.prefix
        out = subprocess.run(
            ["bash", "-c", 'set -euo pipefail; source "$1"; env -0', "bash",
             str(REPO / "scripts" / "ros_env.sh")],
            env=env, check=True, capture_output=True, timeout=60,
        ).stdout
        _BASE_ENV = dict(
            item.split("=", 1) for item in out.decode().split("\0") if "=" in item
        )
    return dict(_BASE_ENV)


def next_domain_id() -> int:
    return 1 + next(_DOMAIN_IDS) % 232


class RosProcess:
    """One process of a test, started in its own session, output captured to a log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path,
                 cwd: Path | None = None):
        self.name = name
        self.argv = argv
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            argv, env=env, cwd=str(cwd or log_dir), stdout=self._log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        self.pid = self.proc.pid

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def poll(self):
        return self.proc.poll()

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGINT (rclpy shuts down cleanly), then SIGTERM, then SIGKILL; by PID only."""
        if self.proc.poll() is None:
            for sig, wait_s in ((signal.SIGINT, timeout), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
                try:
                    os.kill(self.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(timeout=wait_s)
                    break
                except subprocess.TimeoutExpired:
                    continue
        self._log.close()
        return self.proc.poll()


class RosLauncher:
    """Starts ROS processes for one test on one fresh ROS_DOMAIN_ID; stops them all at the end."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.domain_id = next_domain_id()
        self.env = ros_base_env()
        self.env["ROS_DOMAIN_ID"] = str(self.domain_id)
        self.env["ROS_LOG_DIR"] = str(log_dir / "ros_log")
        self.procs: list[RosProcess] = []

    def start(self, name: str, argv: list[str], extra_env: dict[str, str] | None = None) -> RosProcess:
        env = dict(self.env)
        env.update(extra_env or {})
        proc = RosProcess(name, [str(a) for a in argv], env, self.log_dir)
        self.procs.append(proc)
        return proc

    def python(self, name: str, script: Path | str, *args, **kw) -> RosProcess:
        return self.start(name, [sys.executable, str(script), *map(str, args)], **kw)

    def node(self, name: str, executable: str, *args, **kw) -> RosProcess:
        """Start an installed node executable (lib/mm_compress_ros/<executable>) like ros2 run."""
        exe = LIB_DIR / executable
        assert exe.is_file(), f"{exe} is not installed: run `make build`"
        return self.start(name, [sys.executable, str(exe), *map(str, args)], **kw)

    def stop_all(self) -> None:
        for p in reversed(self.procs):
            if not p._log.closed:
                p.stop()

    def logs(self) -> str:
        return "\n".join(f"----- {p.name} (pid {p.pid}, rc {p.poll()}) -----\n{p.output()[-4000:]}"
                         for p in self.procs)


def start_launch(ros: "RosLauncher", launch_name: str, args: dict | None = None,
                 params: dict | None = None, only: tuple[str, ...] | None = None) -> dict[str, "RosProcess"]:
    """Start the nodes of launch/<launch_name> as ``ros2 launch`` would (same executables,
    parameter files, remappings and launch-argument defaults, read from the launch file's node
    table), each as its own process; ``params`` adds per-node parameter overrides."""
    from mm_compress_ros.ros.launch_table import node_commands

    procs = {}
    for cmd in node_commands(launch_name, args, params, share=SHARE_DIR, lib=LIB_DIR,
                             python=sys.executable):
        if only is None or cmd.name in only:
            procs[cmd.name] = ros.start(cmd.name, cmd.argv)
    return procs


def wait_for_log(proc: "RosProcess", text: str, timeout: float, ros: "RosLauncher" | None = None):
    """Wait until ``text`` appears in the process output; fail with all logs if it exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in proc.output():
            return
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    logs = ros.logs() if ros else proc.output()[-4000:]
    pytest.fail(f"{proc.name}: no {text!r} within {timeout:.0f}s (rc {proc.poll()})\n{logs}", pytrace=False)


@pytest.fixture
def ros(tmp_path):
    launcher = RosLauncher(tmp_path)
    try:
        yield launcher
    finally:
        launcher.stop_all()


def wait_for(predicate, timeout: float, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # a line being written right now
                pass
    return rows
