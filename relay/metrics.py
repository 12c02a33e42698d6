"""The relay's Prometheus metrics, on a registry of its own (prometheus_client renders /metrics)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from relay.messages import Caption, SourceState

DELAY_BUCKETS_S = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
DECODE_BUCKETS_S = (0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 5.0)
TRANSLATE_BUCKETS_S = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0)


class _CountersReadAtScrape(Collector):
    """Counters kept by live objects (e.g. the hub's dropped viewers), read when scraped."""

    def __init__(self) -> None:
        self._counters: list[tuple[str, str, Callable[[], float]]] = []

    def add(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        self._counters.append((name, help_text, read))

    def collect(self) -> Iterator[CounterMetricFamily]:
        for name, help_text, read in self._counters:
            yield CounterMetricFamily(name, help_text, value=read())


class ScrapedMetrics:
    """A registry of its own (several servers in one process never collide), the process's own
    metrics, and values read from live objects when scraped."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        for collector in (ProcessCollector, PlatformCollector, GCCollector):
            collector(registry=self.registry)
        self._read_counters = _CountersReadAtScrape()
        self.registry.register(self._read_counters)

    def gauge(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        """Register a value read at scrape time (viewers, lag...)."""
        Gauge(name, help_text, registry=self.registry).set_function(read)

    def counter(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        """Register a count kept elsewhere, read at scrape time; `name` without `_total`."""
        self._read_counters.add(name, help_text, read)

    def render(self) -> str:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry).decode()


class Metrics(ScrapedMetrics):
    """One relay's metrics: captions, decoding, translation and each channel's source."""

    def __init__(self) -> None:
        super().__init__()
        self.caption_delay = Histogram(
            "relay_caption_delay_seconds", "Final caption published after the speaker stopped.",
            buckets=DELAY_BUCKETS_S, registry=self.registry,
        )  # fmt: skip
        self.decode = Histogram(
            "relay_decode_seconds", "Whisper decode time per utterance.",
            buckets=DECODE_BUCKETS_S, registry=self.registry,
        )  # fmt: skip
        self.translation = Histogram(
            "relay_translation_seconds", "Translation time per final caption (all languages).",
            buckets=TRANSLATE_BUCKETS_S, registry=self.registry,
        )  # fmt: skip
        # Exposed as relay_..._total (the client adds the suffix).
        self.captions_published = Counter(
            "relay_captions_published", "Final captions published.", registry=self.registry
        )
        self.source_reconnects = Counter(
            "relay_source_reconnects", "Times the source dropped and was reopened.", registry=self.registry
        )
        # Per channel of the event (floor, booth-en...): label `channel`.
        self.channel_delay = Histogram(
            "relay_channel_caption_delay_seconds", "Final caption published after the speaker stopped, per channel.",
            ["channel"], buckets=DELAY_BUCKETS_S, registry=self.registry,
        )  # fmt: skip
        self.channel_speech = Counter(
            "relay_channel_speech_seconds", "Seconds of speech captioned (finals' spans), per channel.",
            ["channel"], registry=self.registry,
        )  # fmt: skip
        self.channel_finals = Counter(
            "relay_channel_finals", "Final captions published, per channel.", ["channel"], registry=self.registry
        )
        self.channel_up = Gauge(
            "relay_channel_source_up", "1 while the channel's source delivers, else 0.", ["channel"],
            registry=self.registry,
        )  # fmt: skip


class ChannelMetrics:
    """One channel's share of the metrics, and what `status` reports of it."""

    def __init__(self, metrics: Metrics, channel: str) -> None:
        self._delay = metrics.channel_delay.labels(channel=channel)
        self._speech = metrics.channel_speech.labels(channel=channel)
        self._finals = metrics.channel_finals.labels(channel=channel)
        self._up = metrics.channel_up.labels(channel=channel)
        self.last_delay_s: float | None = None
        self.speech_s = 0.0
        self.finals = 0

    def final(self, caption: Caption, delay_s: float) -> None:
        """A final with text was published."""
        self.last_delay_s = round(delay_s, 2)
        self.speech_s += max(0.0, caption.end - caption.start)
        self.finals += 1
        self._delay.observe(delay_s)
        self._speech.inc(max(0.0, caption.end - caption.start))
        self._finals.inc()

    def state(self, state: SourceState) -> None:
        self._up.set(1.0 if state is SourceState.CONNECTED else 0.0)
