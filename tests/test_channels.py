"""Channel options: `--booth L=SOURCE` parsing and the `--booths auto` mapping of tagged tracks."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pytest

from relay import cli
from relay.channels import (
    AudioTrack,
    BoothOption,
    ChannelError,
    iso639_1,
    map_tracks,
    parse_booth,
    separate_channels,
)
from relay.source import SourceSettings

SOURCE = SourceSettings("http://127.0.0.1:9/master.m3u8", realtime=True, stall_timeout_s=4.0)


def track(index: int, language: str, default: bool = False) -> AudioTrack:
    return AudioTrack(index, language, "", "aac", 48000, 1, default)


def mapped(tracks: list[AudioTrack]) -> dict[str, int | None]:
    return {spec.name: spec.stream_index for spec in map_tracks(SOURCE, tracks).channels}


@pytest.mark.parametrize("text, lang, url", [
    ("en=srt://host:9000", "en", "srt://host:9000"),
    ("FR=/media/booth fr.flac", "fr", "/media/booth fr.flac"),
    ("es=http://h/x.m3u8?a=b", "es", "http://h/x.m3u8?a=b"),  # only the first = splits
])
def test_booth_option_is_language_and_source(text, lang, url):
    assert parse_booth(text) == BoothOption(lang, url)


@pytest.mark.parametrize("text, needle", [
    ("en", "expected LANG=SOURCE"),
    ("en=", "expected LANG=SOURCE"),
    ("eng=x.flac", "did you mean 'en'"),
    ("e1=x.flac", "2-letter code"),
    ("=x.flac", "2-letter code"),
])
def test_bad_booth_option_is_a_clear_usage_error(text, needle, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.build_parser().parse_args(["transcribe", "floor.flac", "--booth", text])
    assert exit_info.value.code == 2
    assert needle in capsys.readouterr().err


def test_two_booths_of_one_language_are_refused(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["transcribe", "floor.flac", "--booth", "en=a.flac", "--booth", "en=b.flac"])
    assert exit_info.value.code == 2
    assert "--booth en given twice" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["transcribe", "serve", "start"])
def test_booth_options_exist_on_every_pipeline_command(command):
    args = cli.build_parser().parse_args([command, "f.flac", "--booth", "en=e.flac", "--booths", "auto"])
    assert args.booth == [BoothOption("en", "e.flac")] and args.booths == "auto"


def test_booths_accepts_only_auto(capsys):
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["serve", "f.flac", "--booths", "all"])
    assert "invalid choice: 'all'" in capsys.readouterr().err


def test_separate_booths_share_the_floor_settings():
    specs = separate_channels(SOURCE, [BoothOption("fr", "srt://h:1"), BoothOption("en", "e.flac")])
    assert [(s.name, s.lang, s.source.url, s.stream_index) for s in specs] == [
        ("floor", None, SOURCE.url, None), ("booth-fr", "fr", "srt://h:1", None), ("booth-en", "en", "e.flac", None)]
    assert all(s.source.realtime and s.source.stall_timeout_s == 4.0 for s in specs)


def test_separate_booths_refuse_a_repeated_language():
    with pytest.raises(ChannelError, match="given twice"):
        separate_channels(SOURCE, [BoothOption("fr", "a"), BoothOption("fr", "b")])


@pytest.mark.parametrize("tag, code", [
    ("eng", "en"), ("fra", "fr"), ("fre", "fr"), ("spa", "es"), ("deu", "de"), ("ger", "de"), ("ita", "it"),
    ("por", "pt"), ("rus", "ru"), ("zho", "zh"), ("chi", "zh"), ("ara", "ar"), ("jpn", "ja"),
    ("en", "en"), ("fr-CA", "fr"), ("pt_BR", "pt"), ("ESP", None), ("xyz", None), ("", None),
])
def test_language_tags_map_to_iso639_1(tag, code):
    assert iso639_1(tag) == code


def test_event_tracks_map_to_floor_and_three_booths():
    tracks = [track(0, "mul", default=True), track(1, "eng"), track(2, "fra"), track(3, "spa")]
    assert mapped(tracks) == {"floor": 0, "booth-en": 1, "booth-fr": 2, "booth-es": 3}
    assert [s.lang for s in map_tracks(SOURCE, tracks).channels] == [None, "en", "fr", "es"]


def test_untagged_and_und_tracks_are_floor_candidates():
    assert mapped([track(0, "fra"), track(1, ""), track(2, "eng")]) == {"floor": 1, "booth-fr": 0, "booth-en": 2}
    assert mapped([track(0, "und"), track(1, "spa")]) == {"floor": 0, "booth-es": 1}


def test_of_several_floor_candidates_the_default_one_wins(caplog):
    # What FFmpeg shows for an HLS master: the renditions, then the variant stream (untagged).
    tracks = [track(0, "en"), track(1, "mul", default=True), track(2, "fr"), track(3, "")]
    with caplog.at_level(logging.INFO, logger="relay.channels"):
        mapping = map_tracks(SOURCE, tracks)
    assert {s.name: s.stream_index for s in mapping.channels} == {"floor": 1, "booth-en": 0, "booth-fr": 2}
    assert [t.index for t, _ in mapping.ignored] == [3]


def test_without_a_default_the_first_floor_candidate_wins():
    assert mapped([track(0, "eng"), track(1, "und"), track(2, "mul")])["floor"] == 1


def test_a_default_track_tagged_with_its_language_is_the_floor():
    assert mapped([track(0, "eng", default=True), track(1, "fra"), track(2, "spa")]) == {
        "floor": 0, "booth-fr": 1, "booth-es": 2}


def test_a_lone_track_is_the_floor_whatever_its_tag():
    assert mapped([track(4, "eng")]) == {"floor": 4}


def test_unknown_languages_and_second_tracks_of_a_language_are_ignored_with_a_warning(caplog):
    tracks = [track(0, "mul"), track(1, "eng"), track(2, "qaa"), track(3, "en")]
    with caplog.at_level(logging.WARNING, logger="relay.channels"):
        mapping = map_tracks(SOURCE, tracks)
    assert mapped(tracks) == {"floor": 0, "booth-en": 1}
    assert {t.index: why for t, why in mapping.ignored} == {
        2: "language 'qaa' is not one relay knows", 3: "a second en track (booth-en is track 1)"}
    warned = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "track 2" in warned and "track 3" in warned


def test_no_floor_track_is_an_error():
    with pytest.raises(ChannelError, match="no floor track"):
        map_tracks(SOURCE, [track(0, "eng"), track(1, "fra")])


def test_start_replays_booth_paths_as_absolute_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("floor.flac").touch()
    Path("en.flac").touch()
    Path("8080").touch()  # a file named like an option's value is left alone
    raw = ["start", "floor.flac", "--booth", "en=en.flac", "--booth", "fr=srt://h:9001?mode=caller",
           "--booth=es=en.flac", "--port=8080"]
    args = argparse.Namespace(raw_argv=raw)
    assert cli._raw_args_after("start", args) == [
        str(tmp_path / "floor.flac"), "--booth", f"en={tmp_path / 'en.flac'}", "--booth", "fr=srt://h:9001?mode=caller",
        f"--booth=es={tmp_path / 'en.flac'}", "--port=8080"]
