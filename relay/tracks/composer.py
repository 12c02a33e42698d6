"""Turns per-channel events (floor, booths) into per-language track captions."""

from __future__ import annotations

import logging
from collections import deque
from typing import Mapping, Union

from relay.messages import Caption
from relay.tracks.model import (
    FLOOR, ORIGINAL, ChannelState, Progress, Speech, TrackCaption, TrackSettings,
)
from relay.tracks.rules import Passage, Timeline
from relay.tracks.track import FLOOR_SOURCE, Track

_LOGGER = logging.getLogger(__name__)

TrackEvent = Union[Caption, Speech, Progress, ChannelState]


class TrackComposer:
    """Plain synchronous decision logic; `now` is an injected monotonic wall clock (seconds).

    `langs`: the track languages; `booths`: booth channel name -> its language (at most one
    booth per language). Feed every event with `feed`, call `tick` regularly (e.g. every
    250 ms) so timeouts fire; both return the new captions in the order to show them.
    """

    def __init__(
        self, langs: tuple[str, ...], booths: Mapping[str, str],
        settings: TrackSettings = TrackSettings(),
    ) -> None:
        by_lang = list(booths.values())
        if len(set(by_lang)) != len(by_lang):
            raise ValueError(f"at most one booth per language, got {dict(booths)}")
        if FLOOR in booths:
            raise ValueError("'floor' cannot be a booth channel")
        self._booths = dict(booths)
        self._settings = settings
        self._timelines = {name: Timeline(settings.history) for name in (FLOOR, *booths)}
        self._passages: deque[Passage] = deque(maxlen=settings.history)
        booth_of = {lang: name for name, lang in booths.items()}
        self._tracks = [
            Track(lang, booth_of.get(lang), self._timelines, self._passages, settings)
            for lang in dict.fromkeys(langs)
        ]

    def feed(self, event: TrackEvent, now: float) -> list[TrackCaption]:
        """Apply one event; return the captions it lets the tracks show."""
        if isinstance(event, Caption):
            return self._caption(event, now) + self.tick(now)
        timeline = self._timeline(event.channel)
        if isinstance(event, Speech):
            timeline.speech(event.at, event.speaking)
        elif isinstance(event, Progress):
            timeline.progress(event.through)
        elif isinstance(event, ChannelState):
            _LOGGER.info("tracks: channel %s %s", event.channel, "up" if event.up else "down")
            timeline.set_up(event.up)
        else:
            raise TypeError(f"not a track event: {type(event).__name__}")
        return self.tick(now)

    def tick(self, now: float) -> list[TrackCaption]:
        """Fire timeouts and serve every passage that can be decided by `now`."""
        out: list[TrackCaption] = []
        for track in self._tracks:
            out.extend(track.advance(now))
        return out

    def _caption(self, caption: Caption, now: float) -> list[TrackCaption]:
        if not caption.is_final:
            return []
        if caption.channel == FLOOR:
            passage = Passage(caption, now)
            self._passages.append(passage)
            for track in self._tracks:
                track.add_passage(passage)
            return [TrackCaption(
                ORIGINAL, FLOOR_SOURCE, FLOOR, f"{ORIGINAL}:{caption.id}", caption.text,
                caption.start, caption.end, (caption.id,), caption.lang)]
        self._timeline(caption.channel)
        lang = self._booths[caption.channel]
        out: list[TrackCaption] = []
        for track in self._tracks:
            if track.lang == lang:
                out.extend(track.add_booth_final(caption, now))
        return out

    def _timeline(self, channel: str) -> Timeline:
        try:
            return self._timelines[channel]
        except KeyError:
            raise ValueError(
                f"unknown channel {channel!r}: expected 'floor' or one of {sorted(self._booths)}"
            ) from None
