"""A bad booth source fails the command like a bad floor: one line naming the booth, exit 1."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.media import SPEECH_DIR

RELAY = str(Path(sys.executable).with_name("relay"))
FLOOR = str(SPEECH_DIR / "interpretation" / "floor.flac")


def relay(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([RELAY, *args], capture_output=True, timeout=timeout, text=True)


def only_error_line(proc: subprocess.CompletedProcess) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


@pytest.mark.parametrize("command", ["transcribe", "serve", "start"])
def test_unreachable_booth_is_one_line_naming_it(command, tmp_path, unused_tcp_port):
    booth = f"http://127.0.0.1:{unused_tcp_port}/en.m3u8?token=SECRET"
    extra = [] if command == "transcribe" else ["--data", str(tmp_path / "data"), "--port", "0"]
    # A model that does not exist: reaching the model would fail with exit 3 instead.
    proc = relay(command, FLOOR, "--booth", f"en={booth}", "--model", str(tmp_path / "no-model"), *extra)
    assert proc.returncode == 1
    line = only_error_line(proc)
    shown = f"http://127.0.0.1:{unused_tcp_port}/en.m3u8?***"
    assert line == f"relay: cannot read booth-en source '{shown}': Connection refused"
    assert "SECRET" not in proc.stdout + proc.stderr


def test_missing_booth_file_is_named_among_good_booths(tmp_path):
    proc = relay("transcribe", FLOOR, "--booth", f"en={SPEECH_DIR / 'interpretation' / 'booth-en.flac'}",
                 "--booth", f"fr={tmp_path / 'fr.flac'}", "--model", str(tmp_path / "no-model"))
    assert proc.returncode == 1
    missing = tmp_path / "fr.flac"
    assert only_error_line(proc) == f"relay: cannot read booth-fr source '{missing}': No such file or directory"


def test_good_booths_go_on_to_the_model(tmp_path):
    proc = relay("transcribe", FLOOR, "--booth", f"es={SPEECH_DIR / 'interpretation' / 'booth-es.flac'}",
                 "--model", str(tmp_path / "no-model"), "--no-translate")
    assert proc.returncode == 3  # the sources were fine: the (missing) model is what fails
    errors = [line for line in proc.stderr.splitlines() if line.startswith("relay:")]
    assert len(errors) == 1 and errors[0].startswith("relay: unknown model"), proc.stderr
