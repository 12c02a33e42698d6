"""Counters and histograms for /metrics, rendered in the Prometheus text format."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence

DELAY_BUCKETS_S = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
DECODE_BUCKETS_S = (0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 5.0)
TRANSLATE_BUCKETS_S = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0)


class Histogram:
    """Cumulative buckets, a sum and a count: constant memory for a whole event."""

    def __init__(self, name: str, help_text: str, buckets: Sequence[float]) -> None:
        self.name = name
        self.help_text = help_text
        self.buckets = tuple(buckets)
        self._counts = [0] * (len(self.buckets) + 1)
        self.total = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self._counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value
        self.count += 1

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help_text}", f"# TYPE {self.name} histogram"]
        running = 0
        for bound, count in zip(self.buckets, self._counts):
            running += count
            lines.append(f'{self.name}_bucket{{le="{bound}"}} {running}')
        lines.append(f'{self.name}_bucket{{le="+Inf"}} {self.count}')
        lines.append(f"{self.name}_sum {self.total:.6f}")
        lines.append(f"{self.name}_count {self.count}")
        return lines


class Metrics:
    """The relay's metrics; gauges are read from live objects when rendered."""

    def __init__(self) -> None:
        self.caption_delay = Histogram(
            "relay_caption_delay_seconds", "Final caption published after the speaker stopped.", DELAY_BUCKETS_S
        )
        self.decode = Histogram("relay_decode_seconds", "Whisper decode time per utterance.", DECODE_BUCKETS_S)
        self.translation = Histogram(
            "relay_translation_seconds", "Translation time per final caption (all languages).", TRANSLATE_BUCKETS_S
        )
        self.counters: dict[str, tuple[str, float]] = {
            "relay_source_reconnects_total": ("Times the source dropped and was reopened.", 0),
            "relay_captions_published_total": ("Final captions published.", 0),
        }
        self.gauges: dict[str, tuple[str, Callable[[], float]]] = {}

    def inc(self, name: str, amount: float = 1) -> None:
        help_text, value = self.counters[name]
        self.counters[name] = (help_text, value + amount)

    def gauge(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        """Register a value read at scrape time (viewers, lag...)."""
        self.gauges[name] = (help_text, read)

    def render(self) -> str:
        lines: list[str] = []
        for name, (help_text, value) in self.counters.items():
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter", f"{name} {value:g}"]
        for name, (help_text, read) in self.gauges.items():
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {read():g}"]
        for histogram in (self.caption_delay, self.decode, self.translation):
            lines += histogram.render()
        return "\n".join(lines) + "\n"
