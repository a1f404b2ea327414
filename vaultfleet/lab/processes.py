"""Start, check and stop the lab's server processes, always by PID.

A PID alone can be reused by the kernel once the process is gone, so each tracked process also
records its start time (field 22 of /proc/PID/stat); `stop` only signals a PID whose start time
still matches, so `lab down` never touches a process it did not start.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from vaultfleet.lab.files import open_append


@dataclass(frozen=True)
class Tracked:
    """A process the lab started: enough to find it again, and only it."""

    name: str
    pid: int
    start_ticks: int
    log: str

    def to_json(self) -> dict:
        return asdict(self)


def _start_ticks(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its closing ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[19])


def is_running(proc: Tracked) -> bool:
    ticks = _start_ticks(proc.pid)
    if ticks is None or ticks != proc.start_ticks:
        return False
    state = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state != "Z"


def start(name: str, argv: list[str], log: Path, env: dict[str, str] | None = None) -> Tracked:
    """Start argv detached from this CLI (its own session), output appended to `log`."""
    with open_append(log) as out:
        popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # survives `lab up` returning; not in our terminal's job group
            env=env,
            close_fds=True,
        )
    ticks = _start_ticks(popen.pid)
    if ticks is None:
        raise RuntimeError(f"{name} exited at once; see {log}")
    return Tracked(name=name, pid=popen.pid, start_ticks=ticks, log=str(log))


def stop(proc: Tracked, timeout: float = 15.0) -> None:
    """SIGTERM, then SIGKILL after `timeout`; no-op when the tracked process is already gone."""
    if not is_running(proc):
        _reap(proc.pid)
        return
    os.kill(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(proc.pid)
        if not is_running(proc):
            return
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    while is_running(proc):
        _reap(proc.pid)
        time.sleep(0.05)


def stop_all(procs: list[Tracked], timeout: float = 15.0) -> None:
    """`stop` for several at once: SIGTERM to all first, so their shutdowns (a kube-apiserver takes
    a second) overlap instead of adding up."""
    for proc in procs:
        if is_running(proc):
            os.kill(proc.pid, signal.SIGTERM)
    for proc in procs:
        stop(proc, timeout)


def kill(proc: Tracked) -> None:
    """SIGKILL at once (a machine lost, no shutdown), then wait until it is gone."""
    if is_running(proc):
        os.kill(proc.pid, signal.SIGKILL)
    while is_running(proc):
        _reap(proc.pid)
        time.sleep(0.05)
    _reap(proc.pid)


def _reap(pid: int) -> None:
    # Only our own children can be reaped (when `lab up` and `down` run in one process, as in tests).
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def wait_until(check, timeout: float, what: str, proc: Tracked | None = None, interval: float = 0.2):
    """Poll `check()` until it returns a truthy value; fail early if `proc` died meanwhile."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and not is_running(proc):
            raise RuntimeError(f"{what}: {proc.name} exited; last lines of {proc.log}:\n{tail(proc.log)}")
        try:
            result = check()
            if result:
                return result
        except Exception as exc:  # noqa: BLE001 - any failure here just means "not ready yet"
            last_error = exc
        time.sleep(interval)
    detail = f" (last error: {last_error})" if last_error else ""
    log_hint = f"; last lines of {proc.log}:\n{tail(proc.log)}" if proc else ""
    raise TimeoutError(f"{what} not ready after {timeout:.0f}s{detail}{log_hint}")


def tail(path: str | Path, lines: int = 15) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
