"""The track composer driven by the interpreted event's real timings (event.json)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from relay.messages import Caption
from relay.tracks import (
    ChannelState, Progress, Speech, TrackCaption, TrackComposer, TrackEvent, TrackSettings,
)

EVENT_JSON = Path("/work/shared/speech/interpretation/event.json")
LANGS = ("en", "fr", "es")
BOOTHS = {f"booth-{lang}": lang for lang in LANGS}


@dataclass(frozen=True)
class Timing:
    """How a channel's pipeline lags the stream (wall clock = stream time + these)."""

    latency_s: float = 1.0  # speech end -> its final is published
    hangover_s: float = 0.3  # speech end -> the VAD says so
    progress_lag_s: float = 1.2  # processed position behind the stream
    step_s: float = 0.25


@dataclass
class Script:
    """A timed list of events for the composer: (wall, order, event)."""

    items: list[tuple[float, int, TrackEvent]] = field(default_factory=list)

    def add(self, wall: float, event: TrackEvent, order: int = 0) -> None:
        self.items.append((wall, order, event))


def floor_final(n: int, lang: str, start: float, end: float, text: str,
                refs: dict[str, str], wall: float = 0.0) -> Caption:
    """A floor final whose translations are 'MT:' + the reference in each language."""
    return Caption("final", f"f{n}", lang, text, start, end, wall, channel="floor",
                   translations={k: f"MT:{v}" for k, v in refs.items() if k != lang},
                   mt={k: "apertium" for k in refs if k != lang})


def booth_final(lang: str, n: int, start: float, end: float, text: str) -> Caption:
    return Caption("final", f"b{lang}{n}", lang, text, start, end, 0.0, channel=f"booth-{lang}")


def speak(script: Script, channel: str, spans: list[tuple[float, float]], t: Timing) -> None:
    """VAD events for speech spans; a pause shorter than the hangover is no pause to a VAD."""
    runs: list[list[float]] = []
    for start, end in sorted(spans):
        if runs and start - runs[-1][1] < t.hangover_s:
            runs[-1][1] = max(runs[-1][1], end)
        else:
            runs.append([start, end])
    for start, end in runs:
        script.add(start, Speech(channel, start, True))
        script.add(end + t.hangover_s, Speech(channel, end, False))


def event_script(data: dict, t: Timing = Timing()) -> Script:
    """Floor and booth events of event.json as the pipelines would deliver them."""
    script = Script()
    speak(script, "floor", [(u["start"], u["end"]) for u in data["utterances"]], t)
    for u in data["utterances"]:
        final = floor_final(u["n"], u["lang"], u["start"], u["end"], u["refs"][u["lang"]], u["refs"])
        script.add(u["end"] + t.latency_s, final)
    for lang, entries in data["booths"].items():
        speak(script, f"booth-{lang}", [(b["start"], b["end"]) for b in entries], t)
        for b in entries:
            script.add(b["end"] + t.latency_s, booth_final(lang, b["n"], b["start"], b["end"], b["text"]))
    add_progress(script, ("floor", *BOOTHS), data["seconds"] + 30, t)
    return script


def add_progress(script: Script, channels: tuple[str, ...], until: float, t: Timing) -> None:
    """Processed positions every step, after the other events of the same instant."""
    steps = int(until / t.step_s) + 1
    for i in range(steps):
        wall = i * t.step_s
        for channel in channels:
            script.add(wall, Progress(channel, wall - t.progress_lag_s), order=1)


def run(script: Script, composer: TrackComposer) -> list[tuple[float, TrackCaption]]:
    """Feed the script in wall-clock order; every caption with the wall time it came out."""
    out: list[tuple[float, TrackCaption]] = []
    for wall, _, event in sorted(script.items, key=lambda item: (item[0], item[1])):
        out.extend((wall, c) for c in composer.feed(event, wall))
    return out


def delayed(script: Script, delays: dict[str, float]) -> Script:
    """Shift each channel's events by its own delay: same order per channel, new interleaving."""
    out = Script()
    for wall, order, event in script.items:
        out.add(wall + delays[event.channel], event, order)
    return out


@pytest.fixture(scope="module")
def event() -> dict:
    return json.loads(EVENT_JSON.read_text())


@pytest.fixture(scope="module")
def shown(event: dict) -> list[tuple[float, TrackCaption]]:
    return run(event_script(event), TrackComposer(LANGS, BOOTHS))


def track(shown: list[tuple[float, TrackCaption]], lang: str) -> list[TrackCaption]:
    return [c for _, c in shown if c.lang == lang]


def expected(event: dict, lang: str) -> list[tuple[str, str, tuple[str, ...]]]:
    """What a viewer of `lang` should read, passage by passage: (source, text, covers)."""
    booth = {b["n"]: b for b in event["booths"].get(lang, []) if b["kind"] == "interpretation"}
    want = []
    for u in event["utterances"]:
        covers = (f"f{u['n']}",)
        if u["lang"] == lang:
            want.append(("floor", u["refs"][lang], covers))
        elif u["n"] in booth:
            want.append(("interpretation", booth[u["n"]]["text"], covers))
        else:
            want.append(("mt", "MT:" + u["refs"][lang], covers))
    return want


@pytest.mark.parametrize("lang", LANGS)
def test_each_track_reads_floor_booth_or_mt_once_per_passage(event, shown, lang) -> None:
    got = [(c.source, c.text, c.covers) for c in track(shown, lang)]
    assert got == expected(event, lang)


@pytest.mark.parametrize("lang", LANGS)
def test_mt_is_decided_within_the_bound_after_the_floor_final(event, shown, lang) -> None:
    published = {f"f{u['n']}": u["end"] + Timing().latency_s for u in event["utterances"]}
    mt = [(wall, c) for wall, c in shown if c.lang == lang and c.source == "mt"]
    assert all(wall - published[c.covers[0]] <= TrackSettings().mt_bound_s for wall, c in mt)


def test_english_viewers_get_mt_for_the_dropout_only(event, shown) -> None:
    mt = [c.covers for c in track(shown, "en") if c.source == "mt"]
    assert mt == [(f"f{n}",) for n in event["dropout"]["utterances"]]
    assert all(c.mt_engine == "apertium" for c in track(shown, "en") if c.source == "mt")


def test_relay_booth_never_doubles_the_floor_for_its_viewers(event, shown) -> None:
    relayed = {b["text"] for b in event["booths"]["es"] if b["kind"] == "relay"}
    es = track(shown, "es")
    assert not [c for c in es if c.source == "interpretation" and c.text in relayed]
    floor_es = [c for c in es if c.source == "floor"]
    assert len(floor_es) == len({c.covers for c in floor_es}) == sum(
        u["lang"] == "es" for u in event["utterances"])


def test_original_track_is_the_floor_as_spoken(event, shown) -> None:
    original = [c for _, c in shown if c.lang == "original"]
    assert [(c.text, c.floor_lang) for c in original] == [
        (u["text"], u["lang"]) for u in event["utterances"]]


def test_slow_pipelines_change_nothing_a_viewer_reads(event) -> None:
    slow = Timing(latency_s=2.5, hangover_s=0.6, progress_lag_s=2.8)
    shown = run(event_script(event, slow), TrackComposer(LANGS, BOOTHS))
    for lang in LANGS:
        assert [(c.source, c.text, c.covers) for c in track(shown, lang)] == expected(event, lang)


@dataclass
class Scenario:
    """A small event: floor passages (lang, start, end), booth speech (start, end, text)."""

    floor: list[tuple[str, float, float]]
    booths: dict[str, list[tuple[float, float, str]]] = field(default_factory=dict)
    outages: list[tuple[str, float, float]] = field(default_factory=list)  # channel, down, up
    stalled: tuple[str, ...] = ()  # channels whose processed position never advances
    langs: tuple[str, ...] = LANGS

    def script(self, t: Timing = Timing()) -> Script:
        script = Script()
        speak(script, "floor", [(s, e) for _, s, e in self.floor], t)
        for i, (lang, start, end) in enumerate(self.floor):
            refs = {k: f"{k}{i}" for k in {*self.langs, lang}}
            script.add(end + t.latency_s, floor_final(i, lang, start, end, refs[lang], refs))
        for lang, spans in self.booths.items():
            speak(script, f"booth-{lang}", [(s, e) for s, e, _ in spans], t)
            for j, (start, end, text) in enumerate(spans):
                script.add(end + t.latency_s, booth_final(lang, j, start, end, text))
        for channel, down, up in self.outages:
            script.add(down, ChannelState(channel, False))
            script.add(up, ChannelState(channel, True))
        channels = ("floor", *(f"booth-{lang}" for lang in self.booths))
        live = tuple(c for c in channels if c not in self.stalled)
        last = max([e for _, _, e in self.floor] + [e for v in self.booths.values() for _, e, _ in v])
        add_progress(script, live, last + 30, t)
        return script

    def run(self, t: Timing = Timing()) -> list[tuple[float, TrackCaption]]:
        booths = {f"booth-{lang}": lang for lang in self.booths}
        return run(self.script(t), TrackComposer(self.langs, booths))
