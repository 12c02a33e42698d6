"""Where a final's delay goes, stage by stage: a diagnostic for the latency benchmark.

With `RELAY_TIMINGS=FILE` in the environment, every published final of every channel adds one
JSON line to FILE: the utterance's speech end (stream seconds), and the `time.monotonic()` of
each stage it went through (the settled snapshot offered, its decode started and ended, the
final offered, its decode started and ended or the settled decode reused, handed to the caption
stage, translated, published), what the decode workers were doing when the final was offered,
and `realtime_minus_monotonic` to put the stamps on the Unix clock. Without the variable nothing
is recorded (each call is one dictionary lookup). Everything runs on the event loop.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

ENV = "RELAY_TIMINGS"
_KEPT = 256  # utterances in flight at most: older ones (never published) are forgotten


class StageTimes:
    """Marks per (channel, utterance id); `publish` writes them out as one line."""

    def __init__(self, path: str | None) -> None:
        self._file = open(path, "a", buffering=1, encoding="utf-8") if path else None  # noqa: SIM115
        self._open: dict[tuple[str, str], dict[str, Any]] = {}

    @property
    def enabled(self) -> bool:
        return self._file is not None

    def mark(self, channel: str, utt_id: str, stage: str, *, latest: bool = False, **fields: Any) -> None:
        """Stamp `stage` now for the utterance (the first stamp of a stage wins, or with `latest` the
        last: an utterance may be settled, resume and settle again), with extra fields."""
        if self._file is None:
            return
        record = self._open.setdefault((channel, utt_id.split(".")[0]), {})
        if latest:
            record[stage] = time.monotonic()
        else:
            record.setdefault(stage, time.monotonic())
        record.update(fields)
        if len(self._open) > _KEPT:
            del self._open[next(iter(self._open))]

    def publish(self, channel: str, utt_id: str, **fields: Any) -> None:
        """The utterance's final is out: write its line."""
        if self._file is None:
            return
        base = utt_id.split(".")[0]
        record = self._open.pop((channel, base), {})
        record.setdefault("published", time.monotonic())
        line = {"channel": channel, "id": base, **record, **fields,
                "realtime_minus_monotonic": time.time() - time.monotonic()}
        self._file.write(json.dumps(line) + "\n")


TIMINGS = StageTimes(os.environ.get(ENV))
