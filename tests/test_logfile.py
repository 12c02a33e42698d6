"""The relay's log file: rotated by size, holding log records, stdout and stderr alike."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

RELAY = str(Path(sys.executable).with_name("relay"))

_CHATTY = """
import logging, os, sys
from pathlib import Path
from relay.logfile import LogFileSettings, log_to_file
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
log_to_file(LogFileSettings(Path(sys.argv[1]), max_bytes=2000, backups=2))
for n in range(300):
    logging.getLogger("chatty").info("line %03d of a long event", n)
print("a print, to stdout", flush=True)
os.write(2, b"relay: written straight to fd 2\\n")
"""


def test_the_log_rotates_and_keeps_only_its_backups(tmp_path):
    log = tmp_path / "relay.log"
    subprocess.run([sys.executable, "-c", _CHATTY, str(log)], check=True, timeout=60)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["relay.log", "relay.log.1", "relay.log.2"]
    for path in tmp_path.iterdir():
        assert path.stat().st_size <= 2000
    newest = log.read_text()
    assert "line 299 of a long event" in newest
    assert "a print, to stdout" in newest and "relay: written straight to fd 2" in newest
    assert "line 000" not in (log.read_text() + (tmp_path / "relay.log.1").read_text() + (tmp_path / "relay.log.2").read_text())


def test_start_reports_a_bad_source_from_a_log_that_just_rotated(tmp_path, unused_tcp_port):
    old = "".join(f"an earlier run, line {n:03d}\n" for n in range(100))[:1950]
    (tmp_path / "relay.log").write_text(old)
    url = f"http://127.0.0.1:{unused_tcp_port}/live.m3u8"
    result = subprocess.run(
        [RELAY, "start", url, "--data", str(tmp_path), "--port", "0", "--log-max-bytes", "2000", "--log-backups", "1"],
        capture_output=True, text=True, timeout=120,
    )
    reason = f"relay: cannot read source {url!r}: Connection refused"
    assert (result.returncode, result.stderr) == (1, reason + "\n")
    assert (tmp_path / "relay.log.1").read_text() == old  # the first record of this run pushed it past 2000 bytes
    assert reason in (tmp_path / "relay.log").read_text().splitlines()  # stderr followed the rotation
    assert not (tmp_path / "relay.log.2").exists()


def test_a_log_already_past_its_limit_is_rotated_at_start(tmp_path, unused_tcp_port):
    (tmp_path / "relay.log").write_text("x" * 5000 + "\n")
    url = f"http://127.0.0.1:{unused_tcp_port}/live.m3u8"
    result = subprocess.run([RELAY, "start", url, "--data", str(tmp_path), "--port", "0", "--log-max-bytes", "2000"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and result.stderr.startswith("relay: cannot read source")
    assert (tmp_path / "relay.log.1").stat().st_size == 5001
    assert (tmp_path / "relay.log").stat().st_size < 2000


def test_zero_backups_is_refused_in_one_line(tmp_path):
    result = subprocess.run([RELAY, "serve", "-", "--data", str(tmp_path), "--log-file", str(tmp_path / "x.log"),
                             "--log-backups", "0"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "--log-backups: must be at least 1" in result.stderr
