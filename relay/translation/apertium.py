"""Apertium engine: one long-running null-flush pipeline process chain per direction."""

from __future__ import annotations

import logging
import os
import re
import selectors
import shlex
import shutil
import subprocess
import threading
import time
from pathlib import Path

from relay.translation.types import (
    APERTIUM,
    EngineSpec,
    EngineUnavailable,
    TranslationError,
    TranslationTimeout,
)

_LOGGER = logging.getLogger(__name__)

INSTALL_HINT = "apt-get install apertium apertium-eng-spa apertium-fr-es"
_ISO3_TO_ISO1 = {
    "eng": "en", "spa": "es", "fra": "fr", "fre": "fr", "cat": "ca", "por": "pt",
    "ita": "it", "deu": "de", "ger": "de", "glg": "gl", "eus": "eu", "oci": "oc",
    "nob": "nb", "nno": "nn", "ron": "ro", "epo": "eo", "arg": "an", "ast": "ast",
}
_MODE_NAME = re.compile(r"^([a-z]{2,3})-([a-z]{2,3})$")
# Characters with a meaning in the Apertium stream format, escaped with a backslash.
_RESERVED = frozenset("\\[]^$@/<>{}")
# Post-generation consumes every '~' (escaped or not): carry it through as a private-use stand-in.
_TILDE, _TILDE_STAND_IN = "~", "\ue07e"
_WHITESPACE = re.compile(r"[\s\x00]+")
_READ_BYTES = 65536


def datadir() -> Path:
    """Return the Apertium data directory (APERTIUM_DATADIR or the Debian default)."""
    return Path(os.environ.get("APERTIUM_DATADIR", "/usr/share/apertium"))


def apertium_installed() -> bool:
    """True when the Apertium programs are on PATH."""
    return shutil.which("lt-proc") is not None and shutil.which("apertium-transfer") is not None


def discover_modes(data_dir: Path | None = None) -> list[EngineSpec]:
    """List the installed Apertium directions as engine specs (ISO 639-1 codes)."""
    modes_dir = (data_dir or datadir()) / "modes"
    if not apertium_installed() or not modes_dir.is_dir():
        _LOGGER.info("Apertium is not installed (%s): no offline translation", INSTALL_HINT)
        return []
    specs: dict[tuple[str, str], EngineSpec] = {}
    for mode_file in sorted(modes_dir.glob("*.mode")):
        match = _MODE_NAME.match(mode_file.stem)
        if match is None:
            continue
        source, target = (_ISO3_TO_ISO1.get(code, code) for code in match.groups())
        specs.setdefault((source, target), EngineSpec(APERTIUM, source, target, str(mode_file)))
    return list(specs.values())


def pipeline_commands(mode_file: Path) -> list[list[str]]:
    """Return the argv of every program of a mode, each in null-flush mode."""
    if shutil.which("apertium-wblank-mode"):
        script = subprocess.run(
            ["apertium-wblank-mode", "-z", str(mode_file)],
            capture_output=True, text=True, check=True, timeout=10,
        ).stdout
    else:
        script = re.sub(r"(^|\|)\s*(\S+)", r"\1 \2 -z", mode_file.read_text())
    # $1 is the generator flag (-n: no '*' marks on unknown words), $2 the tagger option.
    tokens = shlex.split(script.replace("$1", "-n").replace("$2", ""))
    commands: list[list[str]] = [[]]
    for token in tokens:
        if token == "|":
            commands.append([])
        else:
            commands[-1].append(token)
    return [command for command in commands if command]


def encode(text: str) -> bytes:
    """Turn plain text into one null-terminated Apertium stream request."""
    flat = _WHITESPACE.sub(" ", text).strip().replace(_TILDE, _TILDE_STAND_IN)
    escaped = "".join("\\" + char if char in _RESERVED else char for char in flat)
    # The trailing blank lets lt-proc close the last word before the flush.
    return (escaped + "[]").encode("utf-8") + b"\0"


def decode(raw: bytes, source_text: str) -> str:
    """Turn an Apertium stream answer back into plain text, dropping marks and blanks."""
    stream = raw.decode("utf-8", errors="replace")
    out: list[str] = []
    index = 0
    while index < len(stream):
        char = stream[index]
        if char == "\\" and index + 1 < len(stream):
            out.append(stream[index + 1])
            index += 2
            continue
        if char == "[":
            closing = stream.find("]", index)
            index = len(stream) if closing < 0 else closing + 1
            out.append(" ")
            continue
        if char != "@" and not (char in "*#" and char not in source_text):
            out.append(char)
        index += 1
    return _WHITESPACE.sub(" ", "".join(out)).strip().replace(_TILDE_STAND_IN, _TILDE)


class _PipelineDied(Exception):
    """The process chain closed its output or input."""


class ApertiumTranslator:
    """Translate one direction through a long-running Apertium process chain."""

    def __init__(self, spec: EngineSpec, *, timeout_s: float = 10.0) -> None:
        if not apertium_installed():
            raise EngineUnavailable(f"Apertium is not installed; run: {INSTALL_HINT}")
        mode_file = Path(spec.location)
        if not mode_file.is_file():
            raise EngineUnavailable(f"Apertium mode {mode_file} not found; run: {INSTALL_HINT}")
        self.spec = spec
        self._timeout_s = timeout_s
        self._commands = pipeline_commands(mode_file)
        self._lock = threading.Lock()
        self._procs: list[subprocess.Popen[bytes]] = []

    @property
    def pids(self) -> list[int]:
        """Process ids of the running chain (empty before first use)."""
        return [proc.pid for proc in self._procs]

    def translate(self, text: str) -> str:
        """Translate `text`; restart the chain once if it died, raise on timeout."""
        payload = encode(text)
        if payload == b"[]\0":
            return ""
        with self._lock:
            for attempt in (1, 2):
                self._ensure_running()
                try:
                    raw = self._exchange(payload, time.monotonic() + self._timeout_s)
                except _PipelineDied:
                    _LOGGER.warning("Apertium %s died (attempt %d); restarting", self.spec.direction, attempt)
                    self._stop()
                    continue
                except TranslationTimeout:
                    self._stop()
                    raise
                return decode(raw, text)
        raise TranslationError(f"Apertium {self.spec.direction} keeps dying")

    def close(self) -> None:
        """Stop the process chain; safe to call twice."""
        with self._lock:
            self._stop()

    def _ensure_running(self) -> None:
        """Start the chain when it is not running or any of its programs exited."""
        if self._procs and all(proc.poll() is None for proc in self._procs):
            return
        self._stop()
        env = {**os.environ, "LC_ALL": "C.UTF-8"}
        previous: subprocess.Popen[bytes] | None = None
        for argv in self._commands:
            try:
                proc = subprocess.Popen(
                    argv,
                    stdin=previous.stdout if previous else subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    env=env,
                )
            except OSError as err:
                self._stop()
                raise EngineUnavailable(f"cannot start {argv[0]} ({err}); run: {INSTALL_HINT}") from err
            if previous is not None and previous.stdout is not None:
                previous.stdout.close()  # only the next program keeps the read end
            self._procs.append(proc)
            previous = proc
        _LOGGER.info("Started Apertium %s (%d programs)", self.spec.direction, len(self._procs))

    def _exchange(self, payload: bytes, deadline: float) -> bytes:
        """Write the request while reading the answer up to its NUL, without deadlock."""
        stdin, stdout = self._procs[0].stdin, self._procs[-1].stdout
        assert stdin is not None and stdout is not None
        os.set_blocking(stdin.fileno(), False)
        os.set_blocking(stdout.fileno(), False)
        answer = bytearray()
        sent = 0
        with selectors.DefaultSelector() as selector:
            selector.register(stdin.fileno(), selectors.EVENT_WRITE)
            selector.register(stdout.fileno(), selectors.EVENT_READ)
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TranslationTimeout(f"Apertium {self.spec.direction} timed out")
                for key, _ in selector.select(remaining):
                    if key.fd == stdin.fileno():
                        sent += _write(key.fd, payload[sent:])
                        if sent == len(payload):
                            selector.unregister(key.fd)
                        continue
                    chunk = _read(key.fd)
                    answer += chunk
                    if b"\0" in chunk:
                        return _complete_answer(bytes(answer[: answer.index(b"\0")]))

    def _stop(self) -> None:
        """Kill and reap every program of the chain."""
        for proc in self._procs:
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    stream.close()
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        self._procs = []


def _complete_answer(raw: bytes) -> bytes:
    """Return `raw` if it carries the request's closing blank, else the chain flushed on exit."""
    if b"[]" not in raw:
        raise _PipelineDied()
    return raw


def _write(fd: int, data: bytes) -> int:
    """Write what the pipe accepts now; a closed pipe means the chain died."""
    try:
        return os.write(fd, data)
    except BlockingIOError:
        return 0
    except (BrokenPipeError, OSError) as err:
        raise _PipelineDied() from err


def _read(fd: int) -> bytes:
    """Read what is available now; end of file means the chain died."""
    try:
        chunk = os.read(fd, _READ_BYTES)
    except BlockingIOError:
        return b""
    if not chunk:
        raise _PipelineDied()
    return chunk
