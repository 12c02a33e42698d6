"""The data directory: who owns it (an flock plus the owner's exact identity), the operator token, the state."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from relay.process import identify
from relay.rundir import AlreadyRunning, NoOperatorToken, RunDirectory

_HOLDER = "import sys, time; from relay.rundir import RunDirectory; RunDirectory(sys.argv[1]).claim(); print(flush=True); time.sleep(60)"
_STRANGER = "import time; print(flush=True); time.sleep(60)"


def _spawn(code: str, *args: str) -> subprocess.Popen:
    """A child that has printed a line: it is running its own program, not still the forked test."""
    child = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE)
    child.stdout.readline()
    return child


@pytest.fixture
def holder(tmp_path):
    child = _spawn(_HOLDER, str(tmp_path))
    yield child
    child.kill()
    child.wait()


@pytest.fixture
def stranger():
    """Not a relay, though its command line says "relay"."""
    child = _spawn(_STRANGER, "relay", "serve")
    yield child
    child.kill()
    child.wait()


def test_claim_records_this_process_and_release_forgets_it(tmp_path):
    rundir = RunDirectory(tmp_path)
    rundir.claim()
    assert rundir.running_pid() == os.getpid()
    assert int(rundir.pid_file.read_text()) == os.getpid()
    rundir.release()
    assert rundir.running_pid() is None and rundir.read_state()["ready"] is False
    assert not rundir.pid_file.exists()


def test_a_relay_holding_the_directory_refuses_a_second_claim(tmp_path, holder):
    with pytest.raises(AlreadyRunning, match=f"already running on {tmp_path} \\(pid {holder.pid}\\)"):
        RunDirectory(tmp_path).claim()
    assert RunDirectory(tmp_path).running_pid() == holder.pid


def test_the_lock_is_refused_even_when_its_record_is_gone(tmp_path, holder):
    (tmp_path / "relay.lock").write_text("")  # the flock, not the file's content, decides
    with pytest.raises(AlreadyRunning):
        RunDirectory(tmp_path).claim()


def test_the_lock_dies_with_its_owner_even_by_sigkill(tmp_path, holder):
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    rundir = RunDirectory(tmp_path)
    assert rundir.running_pid() is None
    rundir.claim()
    assert rundir.running_pid() == os.getpid()
    rundir.release()


def test_a_stranger_named_in_the_pid_file_is_not_the_relay(tmp_path, stranger):
    (tmp_path / "relay.pid").write_text(f"{stranger.pid}\n")
    rundir = RunDirectory(tmp_path)
    assert rundir.running_pid() is None
    rundir.claim()
    assert rundir.running_pid() == os.getpid()
    rundir.release()


def test_a_recycled_pid_is_not_the_relay(tmp_path, stranger):
    recorded = identify(stranger.pid)
    assert recorded is not None
    forged = {"pid": stranger.pid, "start_ticks": recorded.start_ticks - 1, "boot_id": recorded.boot_id}
    (tmp_path / "relay.lock").write_text(json.dumps(forged))
    assert RunDirectory(tmp_path).running_pid() is None


def test_a_stale_record_does_not_block_a_start(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "relay.pid").write_text(f"{dead.pid}\n")
    (tmp_path / "relay.lock").write_text(json.dumps({"pid": dead.pid, "start_ticks": 1, "boot_id": "x"}))
    rundir = RunDirectory(tmp_path)
    rundir.claim()
    assert RunDirectory(tmp_path).running_pid() == os.getpid()
    rundir.release()


def test_looking_does_not_create_the_directory(tmp_path):
    rundir = RunDirectory(tmp_path / "never")
    assert rundir.running_pid() is None and rundir.owner() is None
    assert not rundir.path.exists()


def test_the_operator_token_is_created_once_and_private(tmp_path, monkeypatch):
    monkeypatch.delenv("RELAY_OPERATOR_TOKEN", raising=False)
    rundir = RunDirectory(tmp_path)
    token = rundir.operator_token()
    assert len(token) >= 32 and rundir.operator_token() == token
    assert stat.S_IMODE(rundir.token_file.stat().st_mode) == 0o600
    assert rundir.read_operator_token() == token


def test_reading_the_operator_token_never_creates_one(tmp_path, monkeypatch):
    monkeypatch.delenv("RELAY_OPERATOR_TOKEN", raising=False)
    with pytest.raises(NoOperatorToken, match="RELAY_OPERATOR_TOKEN"):
        RunDirectory(tmp_path).read_operator_token()
    assert list(Path(tmp_path).iterdir()) == []


def test_the_environment_token_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("RELAY_OPERATOR_TOKEN", "from-env")
    assert RunDirectory(tmp_path).operator_token() == "from-env"
    assert RunDirectory(tmp_path).read_operator_token() == "from-env"
    assert not (tmp_path / "operator.token").exists()
