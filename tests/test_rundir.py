"""The data directory: who owns it, the operator token, the state file."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from relay.rundir import AlreadyRunning, RunDirectory


def test_claim_records_this_process_and_release_forgets_it(tmp_path):
    rundir = RunDirectory(tmp_path)
    rundir.claim()
    assert rundir.running_pid() == os.getpid()
    rundir.release()
    assert rundir.running_pid() is None and rundir.read_state()["ready"] is False


def test_a_live_relay_owning_the_directory_refuses_a_second_claim(tmp_path):
    other = subprocess.Popen([sys.executable, "-c", "import sys, time; print(flush=True); time.sleep(30)", "relay"],
                             stdout=subprocess.PIPE)
    try:
        other.stdout.readline()  # it is running its own program now, not still the forked test
        (tmp_path / "relay.pid").write_text(f"{other.pid}\n")
        with pytest.raises(AlreadyRunning, match=str(other.pid)):
            RunDirectory(tmp_path).claim()
    finally:
        other.kill()
        other.wait()


def test_a_stale_pid_file_does_not_block_a_start(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "relay.pid").write_text(f"{dead.pid}\n")
    RunDirectory(tmp_path).claim()
    assert RunDirectory(tmp_path).running_pid() == os.getpid()


def test_the_operator_token_is_created_once_and_private(tmp_path, monkeypatch):
    monkeypatch.delenv("RELAY_OPERATOR_TOKEN", raising=False)
    rundir = RunDirectory(tmp_path)
    token = rundir.operator_token()
    assert len(token) >= 32 and rundir.operator_token() == token
    assert stat.S_IMODE(rundir.token_file.stat().st_mode) == 0o600


def test_the_environment_token_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("RELAY_OPERATOR_TOKEN", "from-env")
    assert RunDirectory(tmp_path).operator_token() == "from-env"
    assert not (tmp_path / "operator.token").exists()
