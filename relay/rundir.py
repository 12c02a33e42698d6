"""The data directory of one relay: pid, state, log, operator token and transcript."""

from __future__ import annotations

import json
import os
import secrets
import time
from pathlib import Path
from typing import Any


class AlreadyRunning(Exception):
    """Another relay owns this data directory."""


def default_data_dir() -> Path:
    """Per-user data directory (XDG), so relays of different users never collide."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "relay"


class RunDirectory:
    """Files through which `relay start/status/stop/export` find a running relay."""

    def __init__(self, path: Path | str | None) -> None:
        self.path = Path(path).expanduser().resolve() if path else default_data_dir()
        self.pid_file = self.path / "relay.pid"
        self.state_file = self.path / "state.json"
        self.log_file = self.path / "relay.log"
        self.token_file = self.path / "operator.token"
        self.stop_marker = self.path / "stopping"

    def ensure(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)

    def running_pid(self) -> int | None:
        """The pid of a live relay owning this directory, if any."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _is_relay(pid) else None

    def claim(self) -> None:
        """Record this process as the owner, or raise AlreadyRunning."""
        self.ensure()
        other = self.running_pid()
        if other is not None and other != os.getpid():
            raise AlreadyRunning(f"a relay is already running on {self.path} (pid {other})")
        self.stop_marker.unlink(missing_ok=True)
        _write_atomic(self.pid_file, f"{os.getpid()}\n")

    def release(self) -> None:
        """Forget ownership at exit (only if it is still ours)."""
        if self.running_pid() in (None, os.getpid()):
            self.pid_file.unlink(missing_ok=True)
            self.stop_marker.unlink(missing_ok=True)
        self.update_state(ready=False, stopped_at=time.time())

    def read_state(self) -> dict[str, Any]:
        try:
            return json.loads(self.state_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def update_state(self, **fields: Any) -> None:
        state = self.read_state()
        state.update(fields)
        _write_atomic(self.state_file, json.dumps(state, indent=2))

    def operator_token(self, env: str = "RELAY_OPERATOR_TOKEN", token_file: Path | None = None) -> str:
        """The operator token: from the environment, a given file, or this directory's (created once)."""
        if os.environ.get(env):
            return os.environ[env].strip()
        path = token_file or self.token_file
        if token_file is None and not path.exists():
            self.ensure()
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(32) + "\n")
        return path.read_text(encoding="utf-8").strip()


def _is_relay(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True
    if Path(f"/proc/{pid}/stat").read_text().split(") ")[-1].startswith("Z"):
        return False  # a zombie is not running
    return b"relay" in cmdline


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
