"""A real `relay serve` subprocess through a source's life: a stop mid-file, a source that ends
and the next source switched in, on the same event clock and numbering."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench.scoring import Event, assign_finals, wer
from tests.support.live_hls import LiveHlsServer
from tests.support.media import MEETING_FLAC, SPEECH_DIR
from tests.test_operator import Viewer, http

RELAY = str(Path(sys.executable).with_name("relay"))
SECRET = "s3cr3t-stream-key"


class Serve:
    """`relay serve SOURCE --data DIR --port 0` in a subprocess, its output collected."""

    def __init__(self, source: str, data: Path, *extra: str) -> None:
        args = [RELAY, "serve", source, "--data", str(data), "--port", "0", *extra]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.data = data
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self.ready = threading.Event()
        threading.Thread(target=self._read, args=(self.proc.stdout, self.stdout), daemon=True).start()
        threading.Thread(target=self._read, args=(self.proc.stderr, self.stderr), daemon=True).start()

    def _read(self, stream, lines: list[str]) -> None:
        for line in stream:
            lines.append(line)
            if "viewers open" in line:
                self.ready.set()

    @property
    def url(self) -> str:
        assert self.ready.wait(180), "".join(self.stderr)
        line = next(line for line in self.stdout if "viewers open" in line)
        return line.split("viewers open", 1)[1].strip().rstrip("/")

    @property
    def token(self) -> str:
        return (self.data / "operator.token").read_text().strip()

    def status(self) -> dict:
        code, body = http(self.url + "/api/status", token=self.token)
        assert code == 200, body
        return json.loads(body)

    def wait_for(self, check, timeout_s: float, what: str) -> dict:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            status = self.status()
            if check(status):
                return status
            time.sleep(0.3)
        raise AssertionError(f"never {what}: {self.status()}\n{''.join(self.stderr)[-3000:]}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def export(data: Path) -> list[dict]:
    result = subprocess.run([RELAY, "export", "--data", str(data), "--format", "json"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_a_stop_mid_file_exits_promptly_with_every_final_committed(tmp_path, meeting_events) -> None:
    """SIGTERM on a file read as fast as it decodes: exit 0 (not a hang), nothing lost before it."""
    relay = Serve(str(MEETING_FLAC), tmp_path, "--no-translate")
    try:
        relay.wait_for(lambda s: s["channels"]["floor"]["finals"] >= 5, 180, "published 5 finals")
        at_signal = relay.status()["channels"]["floor"]["finals"]
        relay.proc.send_signal(signal.SIGTERM)
        relay.proc.wait(timeout=30)  # generous: the old relay never exited
    finally:
        relay.kill()
    assert relay.proc.returncode == 0, "".join(relay.stderr)[-3000:]
    finals = export(tmp_path)
    seqs = [f["seq"] for f in finals]
    assert seqs == sorted(set(seqs))  # numbered in order; track messages take the numbers between
    assert len(finals) >= at_signal
    events = [Event(e["kind"], e["start"], e["end"], e.get("lang", ""), e.get("text", ""), e.get("id", ""))
              for e in meeting_events]
    last_end = max(f["end"] for f in finals)
    heard = assign_finals(events, [f for f in finals if f["text"]])
    for index, got in heard.items():
        if events[index].end <= last_end:
            assert got, f"speech before the stop never committed: {events[index].text!r}"
            assert wer([events[index].text], [" ".join(f["text"] for f in got)]) <= 0.5


def test_after_the_source_ends_the_next_source_carries_on_the_session(tmp_path) -> None:
    """The HLS stream ends: viewers see the source ended (not the session); a switch captions
    the next source on the same clock and numbering; only the operator's stop ends the session."""
    first_clip = SPEECH_DIR / "clips" / "en-jfk.flac"
    second_clip = SPEECH_DIR / "clips" / "en-ast-conf-usermenu.flac"
    with LiveHlsServer(first_clip, segment_s=1.0, speed=2.0) as server:
        relay = Serve(server.url + f"?token={SECRET}", tmp_path, "--no-translate")
        viewer = None
        try:
            viewer = Viewer(relay.url)
            ended = relay.wait_for(lambda s: s["source"]["state"] == "ended", 120, "saw the source end")
            first_finals = ended["channels"]["floor"]["finals"]
            assert first_finals >= 1
            time.sleep(1.0)  # the relay must keep waiting, the viewer keep its connection
            assert relay.proc.poll() is None
            code, body = http(relay.url + "/api/source", "POST", relay.token,
                              json.dumps({"url": str(second_clip)}).encode())
            assert code == 200, body
            relay.wait_for(lambda s: s["source"]["state"] == "ended" and s["channels"]["floor"]["finals"] > first_finals,
                           120, "captioned the next source")
            result = subprocess.run([RELAY, "stop", "--data", str(tmp_path)], capture_output=True, text=True,
                                    timeout=60)
            assert result.returncode == 0, result.stderr
            relay.proc.wait(timeout=30)
            time.sleep(0.5)  # the viewer's last frames
        finally:
            if viewer is not None:
                viewer.close()
            relay.kill()
    assert relay.proc.returncode == 0
    states = [f["state"] for f in viewer.frames if f["type"] == "status"]
    assert states.count("ended") >= 2
    ends = [i for i, f in enumerate(viewer.frames) if f["type"] == "end"]
    assert len(ends) == 1 and ends[0] > max(i for i, f in enumerate(viewer.frames) if f["type"] == "final")
    assert len(viewer.hellos) == 1, "the viewer lost its connection"
    finals = [f for f in export(tmp_path) if f["text"]]
    seqs = [f["seq"] for f in finals]
    assert seqs == sorted(set(seqs))  # numbered in order; track messages take the numbers between
    first, second = finals[:first_finals], finals[first_finals:]
    assert "country" in " ".join(f["text"] for f in first).lower()
    assert "mute" in " ".join(f["text"] for f in second).lower()
    assert min(f["start"] for f in second) > max(f["end"] for f in first)
    everything = "".join(relay.stderr) + json.dumps(viewer.frames) + json.dumps(viewer.hellos)
    assert SECRET not in everything
