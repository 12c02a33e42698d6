"""A transcribing relay's side for bench.edge_throughput: a hub whose frames a real `RedisPublisher` writes.

Synthetic captions (four growing partials, then the final, in English with French and Spanish
translations, encoded by the hub as the relay encodes them) published at a given rate; the
publisher XADDs every frame to the event's stream and keeps its meta, as `relay serve --redis` does.
"""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from relay.bus.publisher import RedisPublisher
from relay.bus.stream import EventMeta
from relay.hub import CaptionHub, MemoryBacklog
from relay.messages import Caption, SourceState

_EN = "we now turn to item four on the agenda the report of the budget committee on next year's accounts".split()
_FR = "nous passons au point quatre de l'ordre du jour le rapport de la commission du budget sur les comptes".split()
_ES = "pasamos al punto cuatro del orden del día el informe de la comisión de presupuestos sobre las cuentas".split()


def synthetic_caption(n: int) -> Caption:
    """The n-th caption: utterance n // 5, its partials growing, every fifth a final."""
    utterance, step = divmod(n, 5)
    kind = "final" if step == 4 else "partial"
    share = (step + 2) / 6

    def words(all_words: list[str]) -> str:
        return " ".join(all_words[: max(3, round(len(all_words) * share))])

    return Caption(kind=kind, id=f"u{utterance}", lang="en", text=words(_EN), start=utterance * 4.0,
                   end=utterance * 4.0 + 3.5, wall=utterance * 4.0 + 4.5,
                   translations={"fr": words(_FR), "es": words(_ES)}, mt={"fr": "apertium", "es": "apertium"})


class SyntheticRelay:
    """A relay's hub and its real `RedisPublisher`, publishing synthetic captions at a given rate."""

    def __init__(self, url: str, event: str) -> None:
        finals = MemoryBacklog(10**7)  # every final, as the relay's SQLite would keep them
        self.hub = CaptionHub(store=finals, channels=[("floor", None)])
        meta = EventMeta(self.hub.session, list(self.hub.channels.items()), self.hub.tracks, self.hub.languages,
                         self.hub.label, self.hub.states)
        self.redis = Redis.from_url(url, socket_timeout=10)
        self.publisher = RedisPublisher(self.redis, event, meta, finals, url)
        self.hub.taps.append(self.publisher.offer)
        self.task = asyncio.create_task(self.publisher.run())
        self.hub.source_state(SourceState.CONNECTED)
        self.published = 0
        self.frame_bytes = 0

    async def ready(self) -> None:
        await self.publisher.drained()  # connected, meta written, nothing queued

    async def publish_for(self, rate: float, seconds: float) -> int:
        """Publish `rate` captions a second, evenly spaced, for `seconds`; return how many."""
        loop = asyncio.get_running_loop()
        start, n = loop.time(), 0
        while (due := start + n / rate) < start + seconds:
            await asyncio.sleep(due - loop.time())
            caption = synthetic_caption(self.published)
            self.hub.publish(caption)
            self.published += 1
            n += 1
        await self.publisher.drained()
        return n

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.redis.aclose()
