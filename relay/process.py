"""Exact process identity (pid + start time + boot), and signalling without hitting a recycled pid."""

from __future__ import annotations

import os
import select
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


@dataclass(frozen=True, slots=True)
class ProcessId:
    """A process as the kernel knows it: a pid alone is reused, pid + start time is not."""

    pid: int
    start_ticks: int  # /proc/PID/stat field 22: clock ticks after boot
    boot_id: str

    def to_json(self) -> dict[str, Any]:
        return {"pid": self.pid, "start_ticks": self.start_ticks, "boot_id": self.boot_id}

    @classmethod
    def from_json(cls, data: Any) -> ProcessId | None:
        """Parse a recorded identity; None when it is missing or malformed."""
        try:
            return cls(int(data["pid"]), int(data["start_ticks"]), str(data["boot_id"]))
        except (KeyError, TypeError, ValueError):
            return None


def identify(pid: int) -> ProcessId | None:
    """The identity of a live (not zombie) process, or None when there is none with that pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may hold spaces and ")"
    if fields[0] in ("Z", "X"):
        return None  # exited, not yet reaped: not running
    return ProcessId(pid, int(fields[19]), _boot_id())


def myself() -> ProcessId:
    identity = identify(os.getpid())
    assert identity is not None
    return identity


def is_alive(recorded: ProcessId) -> bool:
    """Whether the very process recorded is still running (not a later one given the same pid)."""
    return identify(recorded.pid) == recorded


class ProcessHandle:
    """A pidfd on one exact process: signals reach it or nothing, never a stranger."""

    def __init__(self, recorded: ProcessId) -> None:
        self.pid = recorded.pid
        self._fd = os.pidfd_open(recorded.pid)  # raises ProcessLookupError when it is gone
        if identify(recorded.pid) != recorded:  # checked after opening: the fd pins this process
            os.close(self._fd)
            raise ProcessLookupError(f"pid {recorded.pid} is no longer that process")

    def send(self, sig: signal.Signals) -> None:
        try:
            signal.pidfd_send_signal(self._fd, sig)
        except ProcessLookupError:
            pass  # already exited

    def wait_gone(self, timeout_s: float) -> bool:
        """Wait until the process has exited; True if it has."""
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        return bool(poller.poll(timeout_s * 1000))

    def close(self) -> None:
        os.close(self._fd)

    def __enter__(self) -> ProcessHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _boot_id() -> str:
    try:
        return _BOOT_ID.read_text().strip()
    except OSError:
        return ""
