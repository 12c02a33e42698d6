"""`relay start`, `status`, `stop`, `restart`, `export`: operating a relay from scripts.

Exit codes (no terminal needed, so cron, systemd and shell scripts can rely on them):
start: 0 ready, 1 source error, 3 model error, 4 already running, 5 failed to become ready.
status: 0 running, 3 not running, 1 running but not answering. stop: 0 stopped (or was not
running), 1 still stopping (run it again, or --force, to kill).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, TextIO

from relay.archive import ArchiveError, check_target, write_archive
from relay.export import export
from relay.process import ProcessHandle
from relay.rundir import NoOperatorToken, RunDirectory
from relay.store import TranscriptError, TranscriptStore, transcript_path

EXIT_NOT_RUNNING = 3
EXIT_ALREADY_RUNNING = 4
EXIT_NOT_READY = 5
STOP_WAIT_S = 10.0


def start(
    child_args: list[str], rundir: RunDirectory, ready_timeout_s: float, out: TextIO,
    restart_args: list[str] | None = None, log_file: Path | None = None,
) -> int:
    """Launch `relay serve ...` in the background and wait until it is ready or fails.

    `restart_args` (default: `child_args`) is what `relay restart` runs later: without one-off flags.
    `log_file` (default: DATA/relay.log) is where the child logs, and where its last error is read.
    """
    log_file = log_file or rundir.log_file
    pid = rundir.running_pid()
    if pid is not None:
        print(f"relay: already running on {rundir.path} (pid {pid}): {rundir.read_state().get('url', '')}", file=sys.stderr)
        return EXIT_ALREADY_RUNNING
    rundir.ensure()
    rundir.update_state(ready=False, argv=child_args if restart_args is None else restart_args)
    # Until `serve` takes its log over (--log-file, rotated), early errors land here too.
    log = open(log_file, "ab")
    child = subprocess.Popen(
        [sys.executable, "-m", "relay", *child_args],
        stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, close_fds=True,
    )
    log.close()
    deadline = time.monotonic() + ready_timeout_s
    while time.monotonic() < deadline:
        state = rundir.read_state()
        if state.get("ready") and state.get("pid") == child.pid:
            print(state["url"] + "/", file=out, flush=True)
            return 0
        code = child.poll()
        if code is not None:
            print(_last_error(log_file) or f"relay: exited with code {code}; see {log_file}", file=sys.stderr)
            return code or EXIT_NOT_READY
        time.sleep(0.1)
    child.kill()
    print(f"relay: not ready after {ready_timeout_s:.0f} s; see {log_file}", file=sys.stderr)
    return EXIT_NOT_READY


def _last_error(log_file: Path) -> str | None:
    """The last one-line error the child wrote (in the log, or its newest backup if it just rotated)."""
    for path in (log_file, log_file.with_name(log_file.name + ".1")):
        try:
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
        found = next((line for line in reversed(lines) if line.startswith("relay: ")), None)
        if found:
            return found
    return None


def status(rundir: RunDirectory, as_json: bool, out: TextIO) -> int:
    """Report on the relay of this data directory."""
    pid = rundir.running_pid()
    if pid is None:
        _print_status({"running": False, "data": str(rundir.path)}, as_json, out)
        return EXIT_NOT_RUNNING
    state = rundir.read_state()
    if not state.get("ready") or state.get("pid") != pid:
        _print_status({"running": True, "pid": pid, "answering": False, "error": "starting"}, as_json, out)
        return 1
    try:
        report = api_call(state, rundir, "GET", "/api/status")
    except (OSError, ValueError, NoOperatorToken) as exc:
        _print_status({"running": True, "pid": pid, "answering": False, "error": str(exc)}, as_json, out)
        return 1
    report.update(pid=pid, url=state.get("url"), data=str(rundir.path))
    _print_status(report, as_json, out)
    return 0


def _print_status(report: dict[str, Any], as_json: bool, out: TextIO) -> None:
    if as_json:
        print(json.dumps(report, indent=2), file=out)
        return
    if not report.get("running"):
        print(f"not running ({report.get('data')})", file=out)
        return
    if report.get("answering") is False:
        print(f"running (pid {report['pid']}) but not answering: {report.get('error')}", file=out)
        return
    source = report["source"]
    since = time.strftime("%H:%M:%S", time.localtime(source["since"]))
    print(
        f"running (pid {report['pid']}) {report['url']}/  up {report['uptime_s']:.0f} s\n"
        f"source     {source['state']} since {since}: {source['url']}\n"
        f"viewers    {report['viewers']}\n"
        f"captions   {report['captions_published']} published, language {report['language']}, "
        f"delay {report['caption_delay_s']} s\n"
        f"transcript {_store_line(report.get('store') or {})}",
        file=out,
    )
    channels = report.get("channels") or {}
    if len(channels) > 1:  # an interpreted event: one line per channel
        for name, channel in channels.items():
            state = channel["source"]["state"]
            print(
                f"  {name:10s} {state:12s} {channel['finals']} finals, {channel['speech_s']} s of speech, "
                f"delay {channel['caption_delay_s']} s: {channel['source']['url']}",
                file=out,
            )


def _store_line(store: dict[str, Any]) -> str:
    """How the durable transcript is doing, in words."""
    if not store.get("durable", True):
        return "not kept (no data directory)"
    if store.get("ok", True):
        return "written"
    return f"FAILING: {store.get('pending', 0)} finals wait in memory ({store.get('error')})"


def api_call(
    state: dict[str, Any], rundir: RunDirectory, method: str, path: str, body: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Call the running relay's control API with the operator token (and a JSON `body`)."""
    url = state["url"].replace("0.0.0.0", "127.0.0.1") + path
    token = rundir.read_operator_token(token_file=Path(state["token_file"]) if state.get("token_file") else None)
    headers = {"Authorization": f"Bearer {token}"}
    data = None
    if body is not None:
        data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def stop(rundir: RunDirectory, force: bool, out: TextIO) -> int:
    """Graceful stop (SIGTERM: pending text committed, viewers told); kill on a second stop or --force.

    Signals go through a pidfd opened on the exact process that holds the directory, so a process
    that merely inherited a recorded pid is never signalled.
    """
    owner = rundir.owner()
    try:
        handle = ProcessHandle(owner) if owner else None
    except ProcessLookupError:
        handle = None
    if handle is None:
        rundir.stop_marker.unlink(missing_ok=True)
        print("not running", file=out)
        return 0
    with handle:
        return _stop(handle, rundir, force or rundir.stop_marker.exists(), out)


def _stop(handle: ProcessHandle, rundir: RunDirectory, kill: bool, out: TextIO) -> int:
    if kill:
        handle.send(signal.SIGKILL)
        handle.wait_gone(5.0)
        rundir.pid_file.unlink(missing_ok=True)
        rundir.stop_marker.unlink(missing_ok=True)
        print(f"killed (pid {handle.pid})", file=out)
        return 0
    rundir.stop_marker.write_text(str(time.time()))
    handle.send(signal.SIGTERM)
    if handle.wait_gone(STOP_WAIT_S):
        print(f"stopped (pid {handle.pid})", file=out)
        return 0
    print(f"relay: pid {handle.pid} still stopping after {STOP_WAIT_S:.0f} s; run stop again to kill it", file=sys.stderr)
    return 1


def restart(rundir: RunDirectory, ready_timeout_s: float, out: TextIO) -> int:
    """Stop (gracefully, then by force) and start again with the same arguments."""
    argv = rundir.read_state().get("argv")
    if not argv:
        print(f"relay: nothing to restart on {rundir.path} (never started there)", file=sys.stderr)
        return EXIT_NOT_RUNNING
    if stop(rundir, force=False, out=out) != 0:
        stop(rundir, force=True, out=out)
    log_file = Path(argv[argv.index("--log-file") + 1]) if "--log-file" in argv[:-1] else None
    return start(argv, rundir, ready_timeout_s, out, log_file=log_file)


def speaker(rundir: RunDirectory, name: str | None, out: TextIO) -> int:
    """Tell the running relay who has the floor (None: the agenda's next)."""
    pid = rundir.running_pid()
    state = rundir.read_state()
    if pid is None or not state.get("ready") or state.get("pid") != pid:
        print(f"relay: no relay is running on {rundir.path}", file=sys.stderr)
        return EXIT_NOT_RUNNING
    try:
        answer = api_call(state, rundir, "POST", "/api/speaker", {"next": True} if name is None else {"name": name})
    except urllib.error.HTTPError as exc:
        print(f"relay: {_api_error(exc)}", file=sys.stderr)
        return 1
    except (OSError, ValueError, NoOperatorToken) as exc:
        print(f"relay: the relay did not answer: {exc}", file=sys.stderr)
        return 1
    print(f"speaker from {answer['from_s']:.1f} s of the stream: {answer['speaker'] or '(none)'}", file=out)
    return 0


def _api_error(error: urllib.error.HTTPError) -> str:
    """The API's one-line error message."""
    try:
        return str(json.loads(error.read())["error"])
    except (ValueError, KeyError, TypeError, OSError):
        return f"HTTP {error.code}"


def export_archive(rundir: RunDirectory, target: Path, zipped: bool, out: TextIO) -> int:
    """Write every language of the event's transcript in every format to `target`; name the files on `out`."""
    try:
        check_target(target, zipped)
        with TranscriptStore(transcript_path(rundir.path), readonly=True) as store:
            files = write_archive(store, target, zipped=zipped)
    except (TranscriptError, ArchiveError) as exc:
        print(f"relay: {exc}", file=sys.stderr)
        return 1
    out.write(f"{target}: {', '.join(path.name for path in files)}\n")
    if zipped:
        out.write(f"{target.with_name(target.name + '.zip')}\n")
    return 0


def export_transcript(rundir: RunDirectory, fmt: str, lang: str | None, out: TextIO) -> int:
    """Write the event's transcript (during or after it) to `out`."""
    try:
        with TranscriptStore(transcript_path(rundir.path), readonly=True) as store:
            out.write(export(store, fmt, lang))
    except TranscriptError as exc:
        print(f"relay: {exc}", file=sys.stderr)
        return 1
    return 0
