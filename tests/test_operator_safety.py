"""Operator commands in real subprocesses: one owner per data directory, strangers left alone,
restart continuing the event, status that only reads, and a log that rotates."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from relay.process import identify
from tests.support.media import SPEECH_DIR

RELAY = str(Path(sys.executable).with_name("relay"))
CLIP = SPEECH_DIR / "clips" / "en-jfk.flac"
TOKEN = "operator-secret-for-tests"


def relay(*args: str, env: dict[str, str] | None = None, timeout: float = 150) -> subprocess.CompletedProcess:
    return subprocess.run([RELAY, *args], capture_output=True, text=True, timeout=timeout, env=env)


def without_token() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("RELAY_OPERATOR_TOKEN", None)
    return env


def with_token() -> dict[str, str]:
    return {**without_token(), "RELAY_OPERATOR_TOKEN": TOKEN}


def test_two_relays_racing_for_one_data_directory_one_wins(tmp_path):
    # stdin as the source: the winner holds the directory while it waits for audio that never comes.
    racers = [
        subprocess.Popen([RELAY, "serve", "-", "--data", str(tmp_path), "--port", "0", "--no-translate"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    try:
        deadline = time.monotonic() + 60
        while sum(r.poll() is not None for r in racers) < len(racers) - 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        losers = [r for r in racers if r.poll() is not None]
        (winner,) = [r for r in racers if r not in losers]
        for loser in losers:
            assert loser.returncode == 4
            error = loser.stderr.read()
            assert error == f"relay: a relay is already running on {tmp_path} (pid {winner.pid})\n"
        assert int((tmp_path / "relay.pid").read_text()) == winner.pid
    finally:
        for racer in racers:
            racer.kill()
            racer.communicate()


@pytest.fixture
def stranger(tmp_path):
    """A process whose command line says "relay", recorded as the owner the way a recycled pid would be."""
    child = subprocess.Popen([sys.executable, "-c", "import time; print(flush=True); time.sleep(60)", "relay", "serve"],
                             stdout=subprocess.PIPE)
    child.stdout.readline()
    identity = identify(child.pid)
    (tmp_path / "relay.pid").write_text(f"{child.pid}\n")
    record = {"pid": child.pid, "start_ticks": identity.start_ticks - 1, "boot_id": identity.boot_id}
    (tmp_path / "relay.lock").write_text(json.dumps(record))
    (tmp_path / "stopping").write_text("1")  # a stop in progress: the next stop would kill
    yield child
    child.kill()
    child.wait()


def test_stop_force_never_kills_a_stranger_with_the_recorded_pid(tmp_path, stranger):
    result = relay("stop", "--data", str(tmp_path), "--force")
    assert (result.returncode, result.stdout) == (0, "not running\n")
    assert stranger.poll() is None


def test_a_second_stop_never_kills_a_stranger_with_the_recorded_pid(tmp_path, stranger):
    result = relay("stop", "--data", str(tmp_path))
    assert (result.returncode, result.stdout) == (0, "not running\n")
    assert stranger.poll() is None


def test_status_does_not_take_a_stranger_for_the_relay(tmp_path, stranger):
    assert relay("status", "--data", str(tmp_path)).returncode == 3
    assert stranger.poll() is None


@pytest.fixture(scope="module")
def restarted(tmp_path_factory):
    """start --new-event (token from the environment), status without the token, restart, stop."""
    data = tmp_path_factory.mktemp("event")
    record: dict = {"data": data}
    args = ("start", str(CLIP), "--data", str(data), "--port", "0", "--model", "tiny.en", "--no-translate")
    try:
        record["start"] = relay(*args, "--new-event", env=with_token())
        record["finals_before"] = _wait_for_finals(data)
        record["status_no_token"] = relay("status", "--data", str(data), env=without_token())
        record["status_token"] = relay("status", "--data", str(data), "--json", env=with_token())
        record["restart"] = relay("restart", "--data", str(data), env=with_token())
        record["finals_after"] = _wait_for_finals(data)
        record["files"] = sorted(p.name for p in data.iterdir())
        record["stop"] = relay("stop", "--data", str(data), env=with_token())
    finally:
        relay("stop", "--data", str(data), "--force")
    return record


def _wait_for_finals(data: Path) -> list[dict]:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        export = relay("export", "--data", str(data), "--format", "json")
        finals = json.loads(export.stdout) if export.returncode == 0 else []
        if finals:
            return finals
        time.sleep(0.5)
    return []


def test_restart_after_start_new_event_keeps_the_transcript(restarted):
    assert restarted["start"].returncode == 0, restarted["start"].stderr
    assert restarted["restart"].returncode == 0, restarted["restart"].stderr
    assert restarted["finals_before"], "the first run captioned nothing"
    assert not [name for name in restarted["files"] if name.startswith("transcript-")]
    before = [f["id"] for f in restarted["finals_before"]]
    assert [f["id"] for f in restarted["finals_after"]][: len(before)] == before


def test_status_without_the_token_creates_no_token_file(restarted):
    result = restarted["status_no_token"]
    assert result.returncode == 1
    assert "no operator token" in result.stdout and "RELAY_OPERATOR_TOKEN" in result.stdout
    assert "operator.token" not in restarted["files"]


def test_status_with_the_token_reports_the_relay(restarted):
    assert restarted["status_token"].returncode == 0, restarted["status_token"].stdout
    assert json.loads(restarted["status_token"].stdout)["running"]
    assert restarted["stop"].returncode == 0 and "stopped" in restarted["stop"].stdout


def test_status_and_stop_of_a_relay_still_starting(tmp_path):
    starting = subprocess.Popen([RELAY, "serve", "-", "--data", str(tmp_path), "--port", "0", "--no-translate"],
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "relay.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        status = relay("status", "--data", str(tmp_path))
        assert (status.returncode, status.stdout) == (1, f"running (pid {starting.pid}) but not answering: starting\n")
        stop = relay("stop", "--data", str(tmp_path))
        assert (stop.returncode, stop.stdout) == (0, f"stopped (pid {starting.pid})\n")
        assert starting.wait(timeout=10) is not None
    finally:
        starting.kill()
        starting.wait()
