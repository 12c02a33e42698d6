"""Secrets in the source address (tokens, passwords, stream keys) reach no viewer, log line, metric or report.

A real `relay serve` (real Whisper, real Apertium) reads a real live HLS stream over 127.0.0.1
whose address carries `?token=secret`; a `websockets` viewer takes everything it is sent while
the stream drops and comes back; the page, /metrics, /api/status, `relay status` and the
relay's whole -vv log are read too. None may contain the word.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from tests.support.live_hls import LiveHlsServer
from tests.support.media import MEETING_FLAC

SECRET = "secret"
RELAY = str(Path(sys.executable).with_name("relay"))
READY_TIMEOUT_S = 180.0
STEP_TIMEOUT_S = 90.0


def run_relay(*args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run([RELAY, *args], capture_output=True, text=True, timeout=timeout_s)


@pytest.mark.parametrize("command", ["transcribe", "serve"])
def test_unreachable_source_error_names_it_without_credentials_or_key(tmp_path: Path, command: str) -> None:
    url = f"rtmp://user:{SECRET}@127.0.0.1:1/live/key"
    extra = ("--data", str(tmp_path), "--port", "0") if command == "serve" else ()
    result = run_relay("-vv", command, url, *extra)
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("relay: ")]
    assert errors == [f"relay: cannot read source 'rtmp://***@127.0.0.1:1/live/***': {errors[0].split(': ', 2)[2]}"]
    assert SECRET not in result.stderr + result.stdout
    assert "live/key" not in result.stderr


def http_get(url: str, token: str | None = None) -> str:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as response:
        return response.read().decode()


async def watch_through_an_outage(ws_url: str, server: LiveHlsServer) -> list[str]:
    """Every frame a viewer gets: captions, then the source dropping and coming back."""
    frames: list[str] = []

    async def until(predicate) -> None:
        async with asyncio.timeout(STEP_TIMEOUT_S):
            while not predicate(json.loads(frames[-1]) if frames else {}):
                frames.append(str(await ws.recv()))

    async with connect(ws_url) as ws:
        await until(lambda m: m.get("type") == "final" and m.get("text"))
        await asyncio.to_thread(server.stop)
        await until(lambda m: m.get("type") == "status" and m.get("state") == "reconnecting")
        await asyncio.to_thread(server.start)
        await until(lambda m: m.get("type") == "status" and m.get("state") == "connected")
        await until(lambda m: m.get("type") == "final" and m.get("text"))
    return frames


@pytest.fixture(scope="module")
def secret_event(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run the whole relay on a tokenised HLS address; record what anyone could see."""
    data = tmp_path_factory.mktemp("tokenised-event")
    log_path = data.parent / "serve.log"
    record: dict[str, Any] = {}
    with LiveHlsServer(MEETING_FLAC) as server, open(log_path, "w") as log:
        source = f"{server.url}?token={SECRET}"
        proc = subprocess.Popen(
            [RELAY, "-vv", "serve", source, "--port", "0", "--data", str(data), "--stall-timeout", "3"],
            stdout=subprocess.PIPE, stderr=log, text=True,
        )  # fmt: skip
        try:
            line = first_stdout_line(proc, READY_TIMEOUT_S)
            assert "viewers open" in line, line
            url = line.split("viewers open ", 1)[1].strip().rstrip("/")
            token = (data / "operator.token").read_text().strip()
            record["frames"] = asyncio.run(watch_through_an_outage(url.replace("http", "ws") + "/ws", server))
            record["page"] = http_get(url + "/")
            record["metrics"] = http_get(url + "/metrics")
            record["api_status"] = http_get(url + "/api/status", token)
            record["status"] = run_relay("status", "--data", str(data)).stdout
            record["status_json"] = run_relay("status", "--data", str(data), "--json").stdout
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
    record["log"] = log_path.read_text()
    return record


def first_stdout_line(proc: subprocess.Popen[str], timeout_s: float) -> str:
    """The relay's first stdout line, or fail after `timeout_s` (killing it)."""
    assert proc.stdout is not None
    os.set_blocking(proc.stdout.fileno(), False)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line:
            return line
        if proc.poll() is not None:
            return f"exited with {proc.returncode}"
        time.sleep(0.1)
    proc.kill()
    return "not ready in time"


def test_viewers_get_captions_and_source_states_but_never_the_address(secret_event) -> None:
    frames = secret_event["frames"]
    messages = [json.loads(frame) for frame in frames]
    hello = messages[0]
    assert hello["type"] == "hello" and set(hello["source"]) == {"state", "label"}
    assert hello["source"]["label"] == "floor"
    states = [m["state"] for m in messages if m["type"] == "status"]
    assert "reconnecting" in states and "connected" in states
    assert sum(1 for m in messages if m["type"] == "final" and m["text"]) >= 2
    leaks = [frame for frame in frames if SECRET in frame or "live.m3u8" in frame or "127.0.0.1" in frame]
    assert leaks == []


def test_page_metrics_and_status_show_no_secret(secret_event) -> None:
    status = json.loads(secret_event["status_json"])
    assert status["source"]["url"].endswith("/live.m3u8?***") and status["source"]["state"] == "connected"
    assert "live.m3u8?***" in secret_event["status"]
    assert "relay_source_reconnects_total 1.0" in secret_event["metrics"].splitlines()
    for name in ("page", "metrics", "api_status", "status", "status_json"):
        assert SECRET not in secret_event[name], name


def test_the_relay_log_shows_no_secret(secret_event) -> None:
    log = secret_event["log"]
    assert "DEBUG" in log and "reconnecting" in log  # -vv did log, the outage included
    leaks = [line for line in log.splitlines() if SECRET in line]
    assert leaks == []


def test_ffmpeg_own_log_output_stays_off() -> None:
    import av.logging

    import relay.source  # noqa: F401  (what the relay imports before opening any source)

    assert av.logging.get_level() is None  # PyAV's default: FFmpeg's messages (which quote addresses) dropped
