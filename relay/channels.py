"""Which channels an event has: the floor and interpreter booths, from options or track tags."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

from relay.source import SourceSettings
from relay.tracks.model import FLOOR

_LOGGER = logging.getLogger(__name__)

AUTO = "auto"
# Tags that mean "no single language": the untranslated floor.
_FLOOR_TAGS = frozenset({"", "mul", "und", "zxx", "mis"})
# ISO 639-2 (bibliographic and terminology) and 639-1 codes of the languages booths use most.
_ISO639_2_TO_1 = {
    "eng": "en", "fra": "fr", "fre": "fr", "spa": "es", "deu": "de", "ger": "de",
    "ita": "it", "por": "pt", "rus": "ru", "zho": "zh", "chi": "zh", "ara": "ar",
    "jpn": "ja", "nld": "nl", "dut": "nl", "pol": "pl", "ukr": "uk", "tur": "tr",
    "kor": "ko", "hin": "hi", "swe": "sv", "ell": "el", "gre": "el", "ces": "cs",
    "cze": "cs", "ron": "ro", "rum": "ro", "hun": "hu", "fin": "fi", "dan": "da",
    "nor": "no", "nob": "nb", "heb": "he", "ind": "id", "vie": "vi", "tha": "th",
    "cat": "ca", "bul": "bg", "hrv": "hr", "slk": "sk", "slo": "sk", "slv": "sl",
    "srp": "sr", "lit": "lt", "lav": "lv", "est": "et", "fas": "fa", "per": "fa",
}
_ISO639_1 = frozenset(_ISO639_2_TO_1.values())


class ChannelError(Exception):
    """The channels asked for cannot be set up (e.g. no floor track in the source)."""


@dataclass(frozen=True, slots=True)
class ChannelSpec:
    """One channel of the event: where its audio comes from."""

    name: str  # "floor" or "booth-<lang>"
    lang: str | None  # the booth's language (ISO 639-1); None for the floor
    source: SourceSettings
    stream_index: int | None = None  # audio stream within the source; None: its first audio stream


@dataclass(frozen=True, slots=True)
class BoothOption:
    """One `--booth L=SOURCE` as given on the command line."""

    lang: str
    url: str


@dataclass(frozen=True, slots=True)
class AudioTrack:
    """What a source says about one of its audio streams."""

    index: int  # container stream index
    language: str  # as tagged ("" if untagged)
    title: str
    codec: str
    sample_rate_hz: int
    channels: int
    default: bool


def booth_name(lang: str) -> str:
    """The channel name of a booth, e.g. booth-fr."""
    return f"booth-{lang}"


def iso639_1(tag: str) -> str | None:
    """The 2-letter code of a language tag ("fra", "fr", "fr-CA"), or None if unknown."""
    base = tag.strip().lower().replace("_", "-").split("-")[0]
    if len(base) == 2 and base.isalpha():
        return base
    return _ISO639_2_TO_1.get(base)


def parse_booth(text: str) -> BoothOption:
    """argparse type of `--booth L=SOURCE`: L a 2-letter language code."""
    lang, sep, url = text.partition("=")
    lang = lang.strip().lower()
    if not sep or not url:
        raise argparse.ArgumentTypeError(f"expected LANG=SOURCE (e.g. en=srt://host:9000), got {text!r}")
    if len(lang) != 2 or not lang.isalpha():
        hint = f" (did you mean {iso639_1(lang)!r}?)" if iso639_1(lang) else ""
        raise argparse.ArgumentTypeError(f"booth language must be a 2-letter code like en, fr, es; got {lang!r}{hint}")
    return BoothOption(lang, url)


def check_booths(booths: Sequence[BoothOption]) -> None:
    """One booth per language; raises ChannelError naming the repeated one."""
    seen: set[str] = set()
    for booth in booths:
        if booth.lang in seen:
            raise ChannelError(f"--booth {booth.lang} given twice: one booth per language")
        seen.add(booth.lang)


def separate_channels(floor: SourceSettings, booths: Sequence[BoothOption]) -> list[ChannelSpec]:
    """The floor plus one channel per `--booth`, each source with the floor's settings."""
    check_booths(booths)
    specs = [ChannelSpec(FLOOR, None, floor)]
    specs += [ChannelSpec(booth_name(b.lang), b.lang, replace(floor, url=b.url)) for b in booths]
    return specs


@dataclass(frozen=True, slots=True)
class TrackMapping:
    """What `--booths auto` makes of a source's tracks."""

    channels: tuple[ChannelSpec, ...]
    ignored: tuple[tuple[AudioTrack, str], ...]  # (track, why)


def map_tracks(source: SourceSettings, tracks: Sequence[AudioTrack]) -> TrackMapping:
    """Floor = the untagged/`mul`/`und` track (the default one if several, else the first),
    booths = tracks tagged with a known language; raises ChannelError if no floor."""
    floor = _pick_floor(tracks)
    if floor is None:
        raise ChannelError("no floor track: none is tagged mul/und, untagged, or marked default")
    channels = [ChannelSpec(FLOOR, None, source, floor.index)]
    ignored: list[tuple[AudioTrack, str]] = []
    booths: dict[str, AudioTrack] = {}
    for track in tracks:
        if track is floor:
            continue
        lang = None if _is_floor_tag(track.language) else iso639_1(track.language)
        why = _why_ignored(track, lang, booths)
        if why:
            ignored.append((track, why))
            # An extra untagged track is routine (HLS lists the variant stream beside its renditions).
            level = logging.INFO if _is_floor_tag(track.language) else logging.WARNING
            _LOGGER.log(level, "Ignoring audio track %d: %s", track.index, why)
            continue
        booths[lang] = track
        channels.append(ChannelSpec(booth_name(lang), lang, source, track.index))
    return TrackMapping(tuple(channels), tuple(ignored))


def _why_ignored(track: AudioTrack, lang: str | None, booths: dict[str, AudioTrack]) -> str:
    if _is_floor_tag(track.language):
        return f"another floor candidate (tag {track.language or 'none'!s})"
    if lang is None:
        return f"language {track.language!r} is not one relay knows"
    if lang in booths:
        return f"a second {lang} track (booth-{lang} is track {booths[lang].index})"
    return ""


def _is_floor_tag(language: str) -> bool:
    return language.strip().lower() in _FLOOR_TAGS


def _pick_floor(tracks: Sequence[AudioTrack]) -> AudioTrack | None:
    # A floor tagged with its own language (e.g. an English-speaking floor) is told apart from
    # the booths by its default disposition; a lone track can only be the floor.
    candidates = [t for t in tracks if _is_floor_tag(t.language)] or [t for t in tracks if t.default]
    if not candidates:
        return tracks[0] if len(tracks) == 1 else None
    return next((t for t in candidates if t.default), candidates[0])
