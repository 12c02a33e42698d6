"""Run `relay serve` (and `relay edge`) for a benchmark and watch what it and its Apertium processes use.

`ResourceSampler` reads, with psutil, the relay process and its children (recursively) every
0.5 s: the peak of their summed RSS (shared pages, e.g. libraries, counted once per process) and
of their summed PSS (shared pages split between the processes sharing them: the memory the
whole really takes), and their CPU time between `start()` and `stop()`,
split between the relay process itself (Whisper, VAD, the event loop, the translation client
threads) and its Apertium children (lt-proc, apertium-*, cg-proc...).
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

RELAY = Path(sys.executable).with_name("relay")
SAMPLE_EVERY_S = 0.5


def start_relay(data: Path, source: Path, extra: list[str] | None = None) -> tuple[subprocess.Popen, str]:
    """Start `relay serve SOURCE --realtime` on a free port; return it and its base URL once viewers may connect."""
    proc = subprocess.Popen(
        [str(RELAY), "serve", str(source), "--realtime", "--port", "0", "--data", str(data), *(extra or [])],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    return proc, serving_url(proc)


def start_edge(redis_url: str, event: str, port: int, extra: list[str] | None = None) -> subprocess.Popen:
    """Start `relay edge` on `port` (it serves once the event is on Redis: see `serving_url`)."""
    return subprocess.Popen(
        [str(RELAY), "edge", "--redis", redis_url, "--event", event, "--port", str(port), *(extra or [])],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )


def serving_url(proc: subprocess.Popen) -> str:
    """The base URL a relay or edge prints once viewers may connect (it is killed if it prints something else)."""
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "viewers open" not in line:
        proc.kill()
        raise RuntimeError(f"relay did not start: {line!r}")
    return line.split("viewers open ", 1)[1].strip().rstrip("/")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def rss_mb(pid: int) -> float:
    """Resident memory of a process, in MiB."""
    return round(psutil.Process(pid).memory_info().rss / 2**20, 1)


def _get(url: str, data: Path, path: str) -> bytes:
    token = (data / "operator.token").read_text().strip()
    request = urllib.request.Request(url + path, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return bytes(response.read())


def source_state(url: str, data: Path) -> str:
    """The relay's source state from its control API."""
    return str(json.loads(_get(url, data, "/api/status"))["source"]["state"])


def histogram_ms(url: str, data: Path, name: str) -> dict[str, Any]:
    """A seconds histogram from the relay's /metrics, in ms: count, mean, and the bucket bounds
    p50 and p95 fall under (the relay keeps buckets, not samples)."""
    bounds: list[tuple[float, float]] = []
    count = total = 0.0
    for line in _get(url, data, "/metrics").decode().splitlines():
        if line.startswith(name + "_bucket{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            bounds.append((float("inf") if le == "+Inf" else float(le), float(line.split()[-1])))
        elif line.startswith(name + "_count "):
            count = float(line.split()[1])
        elif line.startswith(name + "_sum "):
            total = float(line.split()[1])

    def at_most(q: float) -> float | None:
        bound = next((le for le, cumulative in sorted(bounds) if count and cumulative >= q * count), None)
        return None if bound is None else round(bound * 1000, 1)

    return {"n": int(count), "mean": round(1000 * total / count, 2) if count else None,
            "p50_at_most": at_most(0.5), "p95_at_most": at_most(0.95)}


def metric(url: str, data: Path, name: str) -> float | None:
    """One unlabelled value from the relay's /metrics."""
    for line in _get(url, data, "/metrics").decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def wait_for_end(url: str, data: Path, timeout_s: float) -> bool:
    """Until the relay reports its source ended (the transcript is then complete); False on timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if source_state(url, data) == "ended":
            return True
        time.sleep(0.5)
    return False


def stop_relay(proc: subprocess.Popen) -> None:
    """SIGTERM (graceful), then kill if it does not exit."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def is_apertium(name: str) -> bool:
    """Apertium's pipeline programs (lt-proc, apertium-transfer, cg-proc, lrx-proc...)."""
    return name.startswith(("apertium", "lt-", "cg-", "lrx-", "hfst", "vislcg"))


@dataclass(slots=True)
class _Cpu:
    relay_s: float = 0.0
    apertium: dict[int, float] = field(default_factory=dict)  # pid -> CPU seconds seen last


class ResourceSampler:
    """Peak RSS and CPU seconds of a relay process and its Apertium children, sampled on a thread."""

    def __init__(self, pid: int) -> None:
        self._relay = psutil.Process(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sampler", daemon=True)
        self._lock = threading.Lock()
        self._begin = _Cpu()
        self._last = _Cpu()
        self.peak_total_mb = self.peak_relay_mb = self.peak_apertium_mb = self.peak_pss_mb = 0.0
        self.apertium_processes = 0
        self.other_children: set[str] = set()
        self.rss_mb: list[tuple[float, float]] = []  # (seconds since start, relay + Apertium)
        self._started = 0.0

    def start(self) -> None:
        """Take the CPU baseline now and start sampling RSS."""
        self._started = time.monotonic()
        self._sample()
        with self._lock:
            self._begin = _Cpu(self._last.relay_s, dict(self._last.apertium))
        self._thread.start()

    def stop(self) -> dict[str, Any]:
        """Take the last sample and return the figures."""
        self._stop.set()
        self._thread.join(5)
        self._sample()
        with self._lock:
            relay_s = self._last.relay_s - self._begin.relay_s
            apertium_s = sum(s - self._begin.apertium.get(pid, 0.0) for pid, s in self._last.apertium.items())
        return {
            "seconds": round(time.monotonic() - self._started, 1),
            "cpu_s": {"relay_process": round(relay_s, 2), "apertium": round(apertium_s, 3)},
            "peak_rss_mb": {"relay_and_apertium": round(self.peak_total_mb, 1),
                            "relay_process": round(self.peak_relay_mb, 1),
                            "apertium": round(self.peak_apertium_mb, 1)},
            "peak_pss_mb_relay_and_apertium": round(self.peak_pss_mb, 1),
            "apertium_processes": self.apertium_processes,
            "other_children": sorted(self.other_children),
        }

    def _loop(self) -> None:
        while not self._stop.wait(SAMPLE_EVERY_S):
            self._sample()

    def _sample(self) -> None:
        try:
            relay_cpu = self._relay.cpu_times()
            relay_memory = self._relay.memory_full_info()
            children = self._relay.children(recursive=True)
        except psutil.Error:
            return  # the relay exited: keep the last sample
        relay_mb, pss_mb = relay_memory.rss / 2**20, relay_memory.pss / 2**20
        apertium_mb, seen = 0.0, 0
        with self._lock:
            self._last.relay_s = relay_cpu.user + relay_cpu.system
            for child in children:
                try:
                    name = child.name()
                    cpu, memory = child.cpu_times(), child.memory_full_info()
                except psutil.Error:
                    continue
                if not is_apertium(name):
                    self.other_children.add(name)
                    continue
                seen += 1
                apertium_mb += memory.rss / 2**20
                pss_mb += memory.pss / 2**20
                self._last.apertium[child.pid] = cpu.user + cpu.system
            self.apertium_processes = max(self.apertium_processes, seen)
            self.peak_relay_mb = max(self.peak_relay_mb, relay_mb)
            self.peak_apertium_mb = max(self.peak_apertium_mb, apertium_mb)
            self.peak_total_mb = max(self.peak_total_mb, relay_mb + apertium_mb)
            self.peak_pss_mb = max(self.peak_pss_mb, pss_mb)
            self.rss_mb.append((round(time.monotonic() - self._started, 1), round(relay_mb + apertium_mb, 1)))


def run_conditions() -> dict[str, Any]:
    """When and on what the run was taken, and how busy the machine was just before it."""
    processes = list(psutil.process_iter(["name"]))
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.cpu_percent(None)
    time.sleep(1.0)
    busy = []
    for process in processes:
        with contextlib.suppress(psutil.Error):
            busy.append((process.cpu_percent(None), process.info["name"] or "?"))
    busy.sort(reverse=True)
    return {
        "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu_cores": psutil.cpu_count(),
        **cpu_kind(),
        "loadavg_1_5_15": [round(x, 2) for x in psutil.getloadavg()],
        "busiest_processes_before": [f"{name} {pct:.0f} %" for pct, name in busy[:3]],
    }


_INT8_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")  # what CTranslate2's int8 kernels can use


def cpu_kind(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict[str, Any]:
    """The CPU's model name and its int8 instruction sets: "2 cores of AMD EPYC" covers hosts whose
    Whisper decodes differ by half (docs/benchmarks.md), so every result says which it ran on."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    flags = set(fields.get("flags", "").split())
    return {"cpu_model": fields.get("model name", "?"), "cpu_int8_flags": [f for f in _INT8_FLAGS if f in flags]}


def write_result(result: dict[str, Any], out: Path | None) -> None:
    """Print the result as JSON and, with `out`, write it there too."""
    text = json.dumps(result, indent=2, ensure_ascii=False)
    print(text)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n", encoding="utf-8")
