"""Transcript store benchmark: what a durable final costs the event loop, and what replay costs.

Appends realistic multilingual finals (text, three translations, MT labels, the hub's
JSON frame) back to back into a fresh database under synchronous=NORMAL and FULL, then
times reads of 2,000 finals, a WAL checkpoint of 500 finals and exports.

    python -m bench.store [--finals 2000] [--full-finals 400] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.relay_run import run_conditions, write_result
from relay.export import export
from relay.messages import Caption
from relay.protocol import encode_caption
from relay.store import CHECKPOINT_EVERY, SqliteBacklog, TranscriptStore, transcript_path

LINES = (
    ("en", "And so my fellow Americans, ask not what your country can do for you.",
     {"fr": "Et ainsi mes compatriotes américains, ne demandez pas ce que votre pays peut faire pour vous.",
      "es": "Y así mis compatriotas americanos, no preguntéis qué puede hacer vuestro país por vosotros."}),
    ("fr", "La conférence débutera dès l'arrivée du responsable.",
     {"en": "The conference will begin as soon as the manager arrives.",
      "es": "La conferencia empezará en cuanto llegue el responsable."}),
    ("es", "Clave incorrecta. Por favor, ingrese su número de agente.",
     {"en": "Incorrect password. Please, enter your agent number.",
      "fr": "Mot de passe incorrect. S'il vous plaît, entrez votre numéro d'agent."}),
)  # fmt: skip


def caption(n: int) -> Caption:
    """The n-th final of a meeting cycling through LINES."""
    lang, text, others = LINES[n % len(LINES)]
    start = 3.0 * n
    return Caption(
        kind="final", id=f"u{n}", lang=lang, text=text, start=start, end=start + 2.6, wall=start + 3.2,
        translations={lang: text, **others}, mt={code: "apertium" for code in others}, mt_ms=6.0,
    )  # fmt: skip


def summary_us(samples_s: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99/max of durations, in µs."""
    ordered = sorted(samples_s)
    cuts = statistics.quantiles(ordered, n=100, method="inclusive")
    return {
        "p50_us": round(cuts[49] * 1e6, 1),
        "p95_us": round(cuts[94] * 1e6, 1),
        "p99_us": round(cuts[98] * 1e6, 1),
        "max_us": round(ordered[-1] * 1e6, 1),
    }


def timed(call: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds a call took, and its result."""
    began = time.perf_counter()
    result = call()
    return time.perf_counter() - began, result


def append_costs(path: Path, count: int, synchronous: str) -> dict[str, Any]:
    """Append `count` finals as the hub does (encode, then store) and time each store.append."""
    samples = []
    with TranscriptStore(path, synchronous=synchronous) as store:
        for seq in range(1, count + 1):
            final = caption(seq)
            frame_json = encode_caption(final, seq).text.decode()
            samples.append(timed(lambda: store.append(seq, final, frame_json))[0])
    return {"synchronous": synchronous, "finals": count, **summary_us(samples)}


def backlog_append_costs(path: Path, count: int) -> dict[str, Any]:
    """Time SqliteBacklog.append, the call CaptionHub.publish makes (JSON decode included)."""
    store = TranscriptStore(path)
    backlog = SqliteBacklog(store)
    frames = [encode_caption(caption(seq), seq) for seq in range(1, count + 1)]
    samples = [timed(lambda: backlog.append(frame))[0] for frame in frames]
    backlog.close()
    store.close()
    return {"synchronous": "NORMAL", "finals": count, **summary_us(samples)}


def read_costs(path: Path) -> dict[str, Any]:
    """Time reading a filled transcript: decoded finals, raw frames, backlog replay, exports."""
    with TranscriptStore(path) as store:
        count = store.last_seq()
        backlog = SqliteBacklog(store, recent=500, max_replay=count)
        from_sqlite, frames = timed(lambda: asyncio.run(backlog.finals_since(0)))
        from_memory, tail = timed(lambda: asyncio.run(backlog.finals_since(count - 500)))
        backlog.close()
        figures = {
            "finals": count,
            "finals_since_0_ms": round(timed(lambda: store.finals_since(0))[0] * 1e3, 2),
            "frames_since_0_ms": round(timed(lambda: store.frames_since(0))[0] * 1e3, 2),
            "backlog_replay_sqlite_ms": round(from_sqlite * 1e3, 2),
            "backlog_replay_memory_500_ms": round(from_memory * 1e3, 2),
        }
        assert len(frames) == count and len(tail) == 500
        for fmt in ("srt", "vtt", "json"):
            figures[f"export_{fmt}_ms"] = round(timed(lambda: export(store, fmt, "fr"))[0] * 1e3, 1)
    figures["db_bytes"] = path.stat().st_size
    return figures


def checkpoint_cost(path: Path) -> dict[str, Any]:
    """Time the WAL checkpoint of CHECKPOINT_EVERY - 1 finals: what the writer no longer pays."""
    with TranscriptStore(path) as store:
        for seq in range(1, CHECKPOINT_EVERY):
            final = caption(seq)
            store.append(seq, final, encode_caption(final, seq).text.decode())
        wal_bytes = path.with_name(path.name + "-wal").stat().st_size
        seconds = timed(store.checkpoint)[0]
    return {"finals": CHECKPOINT_EVERY - 1, "wal_bytes": wal_bytes, "ms": round(seconds * 1e3, 1)}


def run(finals: int = 2000, full_finals: int = 400) -> dict[str, Any]:
    """Measure append costs (NORMAL and FULL), backlog appends, checkpoints and reads."""
    with tempfile.TemporaryDirectory(prefix="relay-bench-store-") as scratch:
        root = Path(scratch)
        normal = append_costs(transcript_path(root / "normal"), finals, "NORMAL")
        full = append_costs(transcript_path(root / "full"), full_finals, "FULL")
        return {
            "python": sys.version.split()[0],
            "loadavg_1min": round(os.getloadavg()[0], 2),
            "append": [normal, full],
            "backlog_append": backlog_append_costs(transcript_path(root / "backlog"), finals),
            "checkpoint": checkpoint_cost(transcript_path(root / "checkpoint")),
            "read": read_costs(transcript_path(root / "normal")),
        }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--finals", type=int, default=2000, help="finals appended with synchronous=NORMAL")
    parser.add_argument("--full-finals", type=int, default=400, help="finals appended with synchronous=FULL")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    conditions = run_conditions()
    write_result({**conditions, **run(args.finals, args.full_finals)}, args.out)


if __name__ == "__main__":
    main()
