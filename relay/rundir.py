"""The data directory of one relay: lock, pid, state, log, operator token and transcript."""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import time
from pathlib import Path
from typing import Any

from relay.process import ProcessId, is_alive, myself


class AlreadyRunning(Exception):
    """Another relay owns this data directory."""


class NoOperatorToken(Exception):
    """No operator token to call a running relay's control API with."""


def default_data_dir() -> Path:
    """Per-user data directory (XDG), so relays of different users never collide."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "relay"


class RunDirectory:
    """Files through which `relay start/status/stop/export` find a running relay.

    The owner holds an exclusive flock on relay.lock for its whole life (the kernel drops it when the
    process dies, however it dies), so claiming is atomic. relay.lock also records the owner's exact
    identity (pid + start time), which is how other commands tell the relay from a process that was
    later given the same pid. relay.pid holds the bare pid, for scripts.
    """

    def __init__(self, path: Path | str | None) -> None:
        self.path = Path(path).expanduser().resolve() if path else default_data_dir()
        self.lock_file = self.path / "relay.lock"
        self.pid_file = self.path / "relay.pid"
        self.state_file = self.path / "state.json"
        self.log_file = self.path / "relay.log"
        self.token_file = self.path / "operator.token"
        self.stop_marker = self.path / "stopping"
        self._lock_fd: int | None = None

    def ensure(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)

    def owner(self) -> ProcessId | None:
        """The exact identity of the live relay owning this directory, if any."""
        try:
            recorded = ProcessId.from_json(json.loads(self.lock_file.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            return None
        return recorded if recorded is not None and is_alive(recorded) else None

    def running_pid(self) -> int | None:
        """The pid of a live relay owning this directory, if any."""
        owner = self.owner()
        return owner.pid if owner else None

    def claim(self) -> None:
        """Lock the directory for this process's life, or raise AlreadyRunning."""
        if self._lock_fd is not None:
            return
        self.ensure()
        fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o600)  # not inherited by children
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            other = self.running_pid()
            raise AlreadyRunning(
                f"a relay is already running on {self.path}" + (f" (pid {other})" if other else "")
            ) from None
        self._lock_fd = fd
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(myself().to_json()) + "\n").encode(), 0)
        self.stop_marker.unlink(missing_ok=True)
        _write_atomic(self.pid_file, f"{os.getpid()}\n")

    def release(self) -> None:
        """Give the directory up at exit (a no-op unless this object claimed it)."""
        if self._lock_fd is None:
            return
        self.update_state(ready=False, stopped_at=time.time())
        self.pid_file.unlink(missing_ok=True)
        self.stop_marker.unlink(missing_ok=True)
        os.ftruncate(self._lock_fd, 0)
        os.close(self._lock_fd)  # never unlink the lock file: a waiter would lock a stale inode
        self._lock_fd = None

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
        """The relay's operator token: from the environment, a given file, or this directory's (created once)."""
        if os.environ.get(env):
            return os.environ[env].strip()
        path = token_file or self.token_file
        if token_file is None and not path.exists():
            self.ensure()
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(32) + "\n")
        return path.read_text(encoding="utf-8").strip()

    def read_operator_token(self, env: str = "RELAY_OPERATOR_TOKEN", token_file: Path | None = None) -> str:
        """The token a client calls the relay with; never creates one (a new token would not match)."""
        if os.environ.get(env):
            return os.environ[env].strip()
        path = token_file or self.token_file
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError:
            raise NoOperatorToken(f"no operator token: set ${env} (the relay's) or create {path}") from None


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
