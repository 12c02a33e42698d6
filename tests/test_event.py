"""The event's plumbing with real audio and VAD, a scripted model: channels, composer, outages."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from faster_whisper.audio import decode_audio

from relay.event import BoothInput, Event
from relay.messages import AudioChunk, Caption, SourceEvent, SourceState
from relay.pipeline import PipelineSettings
from relay.source import SourceSettings
from relay.tracks import TrackCaption
from relay.whisper_engine import Decoded

EVENT_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "speech" / "interpretation"
WINDOW_S = (86.2, 96.0)  # the floor speaks French twice; the booths interpret


class ScriptedEngine:
    """Says which channel's language it decoded in; instant."""

    async def decode(self, samples, *, final, context=None) -> Decoded:
        lang = context.only[0] if context and context.only and len(context.only) == 1 else "fr"
        return Decoded(f"{lang} words {len(samples)}", lang, 0.9, 0.0, -0.1, 0.0)


@dataclass
class Translated:
    translations: dict
    mt: dict


class FakeTranslator:
    async def translate_async(self, text: str, lang: str) -> Translated:
        others = {"en": f"EN({text})", "es": f"ES({text})"}
        return Translated({lang: text, **others}, {k: "scripted" for k in others})


class FileInput:
    """A channel input over real audio; `outage`: drops at once, comes back when `back` is set."""

    def __init__(self, samples: np.ndarray, back: asyncio.Event | None = None) -> None:
        self._samples = samples
        self._back = back
        self._stopped = False
        self.opened_at = time.monotonic()

    async def stream(self):
        yield SourceEvent(SourceState.CONNECTED)
        if self._back is not None:
            yield SourceEvent(SourceState.RECONNECTING)
            await self._back.wait()
            yield SourceEvent(SourceState.CONNECTED)
        for start in range(0, len(self._samples), 1600):
            if self._stopped:
                break
            yield AudioChunk(self._samples[start:start + 1600], start / 16000)
            await asyncio.sleep(0)
        yield SourceEvent(SourceState.ENDED)

    def stop(self) -> None:
        self._stopped = True


@dataclass
class Recorder:
    captions: list[Caption] = field(default_factory=list)
    tracks: list[TrackCaption] = field(default_factory=list)
    floor_finals: asyncio.Event = field(default_factory=asyncio.Event)

    async def caption(self, caption: Caption) -> None:
        self.captions.append(caption)
        if caption.channel == "floor" and caption.is_final and len(self.finals("floor")) >= 2:
            self.floor_finals.set()

    async def track(self, track: TrackCaption) -> None:
        self.tracks.append(track)

    def finals(self, channel: str) -> list[Caption]:
        return [c for c in self.captions if c.channel == channel and c.is_final and c.text]


def audio(name: str) -> np.ndarray:
    samples = decode_audio(str(EVENT_DIR / f"{name}.flac"))
    return samples[int(WINDOW_S[0] * 16000):int(WINDOW_S[1] * 16000)]


def settings(channel: str, languages: tuple[str, ...] | None) -> PipelineSettings:
    return PipelineSettings(SourceSettings(url=f"{channel}.flac", realtime=True), channel=channel, languages=languages)


async def test_a_booth_that_drops_gets_mt_while_the_floor_and_other_booths_go_on():
    recorder = Recorder()
    back = asyncio.Event()
    booths = [
        BoothInput("en", settings("booth-en", ("en",)), FileInput(audio("booth-en"), back)),
        BoothInput("es", settings("booth-es", ("es",)), FileInput(audio("booth-es"))),
    ]
    event = Event(recorder, ("en", "fr", "es"), booths, paced=True)
    floor = event.floor_pipeline(settings("floor", ("en", "fr", "es")), channel_input=FileInput(audio("floor")))

    before_back: list[TrackCaption] = []

    async def floor_then_back() -> None:
        floor_done = asyncio.create_task(floor.run(ScriptedEngine(), FakeTranslator()))
        await asyncio.wait_for(recorder.floor_finals.wait(), 60)
        await asyncio.sleep(0.1)  # (far below the 4 s a silent booth that is up would be given)
        before_back.extend(t for t in recorder.tracks if t.lang == "en")
        back.set()  # the English booth reconnects once the floor has spoken
        await floor_done

    await asyncio.wait_for(event.run(ScriptedEngine(), FakeTranslator(), floor_then_back), 120)
    floor_ids = [c.id for c in recorder.finals("floor")]
    assert len(floor_ids) >= 2
    en = [t for t in recorder.tracks if t.lang == "en"]
    assert [(t.source, t.covers) for t in before_back] == [("mt", (i,)) for i in floor_ids[:2]]  # MT at once
    assert all(t.text.startswith("EN(") for t in en if t.source == "mt")
    es = [t for t in recorder.tracks if t.lang == "es"]
    assert {t.source for t in es} == {"interpretation"}  # the other booth went on
    assert all(c.lang == "es" and not c.translations for c in recorder.finals("booth-es"))
    assert recorder.finals("booth-en"), "the booth is captioned again once back"
    fr = [t for t in recorder.tracks if t.lang == "fr"]
    assert [t.covers for t in fr] == [(i,) for i in floor_ids] and {t.source for t in fr} == {"floor"}


async def test_track_captions_are_published_right_after_the_final_that_decides_them():
    recorder = Recorder()
    event = Event(recorder, ("en", "fr", "es"), paced=True)
    floor = event.floor_pipeline(settings("floor", ("en", "fr", "es")), channel_input=FileInput(audio("floor")))
    order: list[str] = []
    original_caption, original_track = recorder.caption, recorder.track

    async def caption(c: Caption) -> None:
        if c.is_final and c.text:
            order.append(f"final:{c.id}")
        await original_caption(c)

    async def track(t: TrackCaption) -> None:
        order.append(f"{t.lang}:{t.covers[0]}")
        await original_track(t)

    recorder.caption, recorder.track = caption, track  # type: ignore[method-assign]
    await asyncio.wait_for(event.run_floor(ScriptedEngine(), FakeTranslator(), floor), 60)
    ids = [c.id for c in recorder.finals("floor")]
    assert ids
    expected = [f"{k}:{i}" if k != "final" else f"final:{i}" for i in ids for k in ("final", "original", "en", "fr", "es")]
    assert order == expected  # no booth: every language at once, in floor order


async def test_a_booth_longer_than_the_floor_is_captioned_to_its_end():
    recorder = Recorder()
    booth_audio = audio("booth-en")
    booths = [BoothInput("en", settings("booth-en", ("en",)), FileInput(booth_audio))]
    event = Event(recorder, ("en", "fr", "es"), booths, paced=False)
    floor = event.floor_pipeline(settings("floor", ("en", "fr", "es")), channel_input=FileInput(audio("floor")[:16000]))
    await asyncio.wait_for(event.run_floor(ScriptedEngine(), FakeTranslator(), floor), 60)
    booth = recorder.finals("booth-en")
    assert booth and max(c.end for c in booth) > 5.0  # the booth went on after the floor's end (1 s)


def _utt(uid: str, start: float, end: float, final: bool = False):
    from relay.messages import Utterance

    return Utterance(uid, np.zeros(int((end - start) * 16000), dtype=np.float32), start, start, end, final)


def test_channel_watch_speech_runs_and_progress_follow_the_contract():
    from relay.event import ChannelWatch
    from relay.tracks import Progress, Speech

    watch = ChannelWatch("booth-en")
    assert watch.cut([], 1.0, None) == [Progress("booth-en", 1.0)]
    # speech opens at 1.2 (no snapshot yet): progress must not pass it
    assert watch.cut([], 1.6, 1.2) == [Progress("booth-en", 1.2)]
    assert watch.cut([_utt("b1", 1.2, 1.5)], 2.0, 1.2) == [Speech("booth-en", 1.2, True)]
    # b1 was too short and dropped; b2 opens: b1's run ends before b2's starts
    assert watch.cut([_utt("b2", 2.5, 2.9)], 3.0, 2.5) == [
        Speech("booth-en", 1.5, False), Speech("booth-en", 2.5, True), Progress("booth-en", 2.5)]
    # b2 is final: its speech stopped, but progress waits for its caption
    assert watch.cut([_utt("b2", 2.5, 3.4, final=True)], 4.0, None) == [Speech("booth-en", 3.4, False)]
    piece = Caption("final", "b2", "en", "Hello.", 2.5, 3.0, 5.0, channel="booth-en")
    assert watch.published(piece) == []  # the first piece of a split final: not yet all out
    last = Caption("final", "b2.2", "en", "World.", 3.0, 3.4, 5.0, channel="booth-en")
    assert watch.published(last) == [Progress("booth-en", 4.0)]
