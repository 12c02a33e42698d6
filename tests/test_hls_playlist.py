"""Subtitle media playlists and the decorated master, read back strictly by the `m3u8` library."""

from __future__ import annotations

import m3u8
import pytest

from relay.hls.playlist import MasterError, SegmentEntry, check_public, decorate_master, media_playlist

BASE = "https://origin.example.com/live/event/master.m3u8"
MASTER = """#EXTM3U
#EXT-X-VERSION:6
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-SESSION-DATA:DATA-ID="com.example.title",URI="meta/title.json"
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="English",LANGUAGE="en",DEFAULT=YES,AUTOSELECT=YES,URI="audio/en.m3u8"
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="Floor",LANGUAGE="mul",DEFAULT=NO,URI="../floor/audio.m3u8"
#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",NAME="English CC",LANGUAGE="en",DEFAULT=YES,URI="subs/en.m3u8"

#EXT-X-STREAM-INF:BANDWIDTH=2500000,AVERAGE-BANDWIDTH=2200000,CODECS="avc1.4d401f,mp4a.40.2",RESOLUTION=1280x720,FRAME-RATE=30.000,AUDIO="aud",SUBTITLES="subs"
video/720p.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=800000,CODECS="avc1.42e01e,mp4a.40.2",RESOLUTION=640x360,AUDIO="aud"
/cdn/video/360p.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=5000000,CODECS="avc1.640028,mp4a.40.2",RESOLUTION=1920x1080,AUDIO="aud",SUBTITLES="subs"
https://cdn.example.net/live/1080p.m3u8
#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=200000,CODECS="avc1.4d401f",RESOLUTION=1280x720,URI="video/720p-iframes.m3u8"
"""
MEDIA = """#EXTM3U
#EXT-X-VERSION:3
#EXT-X-TARGETDURATION:6
#EXT-X-MEDIA-SEQUENCE:100
#EXTINF:6.000,
seg100.ts
"""
LANGS = ("en", "fr", "original")


def our_uri(lang: str) -> str:
    return f"{lang}.m3u8"


def decorated(text: str = MASTER, base: str = BASE) -> m3u8.M3U8:
    return m3u8.M3U8(decorate_master(text, base, LANGS, our_uri), strict=True)


def entries() -> list[SegmentEntry]:
    return [
        SegmentEntry(41, 6.0, 3, "2024-05-01T09:00:00.000Z"),
        SegmentEntry(42, 5.5, 3, "2024-05-01T09:00:06.000Z"),
        SegmentEntry(43, 4.004, 4, "2024-05-01T10:12:00.000Z"),
        SegmentEntry(44, 6.0, 4, None),
    ]


def test_media_playlist_gives_sequence_numbers_durations_and_uris() -> None:
    playlist = m3u8.M3U8(media_playlist(entries(), lambda sn: f"fr/p-{sn}.vtt", 6, ended=False), strict=True)
    assert playlist.media_sequence == 41 and playlist.target_duration == 6
    assert [s.uri for s in playlist.segments] == [f"fr/p-{sn}.vtt" for sn in (41, 42, 43, 44)]
    assert [s.duration for s in playlist.segments] == [6.0, 5.5, 4.004, 6.0]
    assert not playlist.is_endlist


def test_media_playlist_keeps_the_discontinuity_sequence_and_marks_each_discontinuity() -> None:
    playlist = m3u8.M3U8(media_playlist(entries(), str, 6, ended=False), strict=True)
    assert playlist.discontinuity_sequence == 3
    assert [s.discontinuity for s in playlist.segments] == [False, False, True, False]


def test_media_playlist_without_discontinuities_has_no_discontinuity_tags() -> None:
    text = media_playlist([SegmentEntry(0, 6.0), SegmentEntry(1, 6.0)], str, 6, ended=False)
    assert "DISCONTINUITY" not in text
    assert m3u8.M3U8(text, strict=True).discontinuity_sequence is None


def test_media_playlist_keeps_the_program_date_times() -> None:
    playlist = m3u8.M3U8(media_playlist(entries(), str, 6, ended=False), strict=True)
    stamps = [s.program_date_time for s in playlist.segments]
    assert [t.isoformat() if t else None for t in stamps] == [
        "2024-05-01T09:00:00+00:00", "2024-05-01T09:00:06+00:00", "2024-05-01T10:12:00+00:00", None,
    ]


def test_an_ended_media_playlist_says_so() -> None:
    text = media_playlist(entries(), str, 6, ended=True)
    assert m3u8.M3U8(text, strict=True).is_endlist
    assert text.endswith("#EXT-X-ENDLIST\n")


def test_an_empty_media_playlist_is_still_a_playlist() -> None:
    playlist = m3u8.M3U8(media_playlist([], str, 0, ended=False), strict=True)
    assert playlist.segments == [] and playlist.target_duration == 1


def test_decorated_master_is_a_variant_playlist_with_every_variant_kept() -> None:
    playlist = decorated()
    assert playlist.is_variant
    assert [(p.stream_info.bandwidth, p.stream_info.resolution, p.stream_info.codecs) for p in playlist.playlists] == [
        (2500000, (1280, 720), "avc1.4d401f,mp4a.40.2"),
        (800000, (640, 360), "avc1.42e01e,mp4a.40.2"),
        (5000000, (1920, 1080), "avc1.640028,mp4a.40.2"),
    ]
    assert [p.stream_info.audio for p in playlist.playlists] == ["aud"] * 3
    assert playlist.playlists[0].stream_info.frame_rate == 30.0


def test_decorated_master_makes_every_source_uri_absolute() -> None:
    playlist = decorated()
    assert [p.uri for p in playlist.playlists] == [
        "https://origin.example.com/live/event/video/720p.m3u8",
        "https://origin.example.com/cdn/video/360p.m3u8",
        "https://cdn.example.net/live/1080p.m3u8",
    ]
    assert [m.uri for m in playlist.media if m.type == "AUDIO"] == [
        "https://origin.example.com/live/event/audio/en.m3u8",
        "https://origin.example.com/live/floor/audio.m3u8",
    ]
    (iframes,) = playlist.iframe_playlists
    assert iframes.uri == "https://origin.example.com/live/event/video/720p-iframes.m3u8"
    assert [d.uri for d in playlist.session_data] == ["https://origin.example.com/live/event/meta/title.json"]


def test_every_variant_uses_the_relay_subtitle_group_and_the_old_group_is_gone() -> None:
    playlist = decorated()
    assert [p.stream_info.subtitles for p in playlist.playlists] == ["relay"] * 3
    subtitles = [m for m in playlist.media if m.type == "SUBTITLES"]
    assert {m.group_id for m in subtitles} == {"relay"}
    assert "subs/en.m3u8" not in playlist.dumps() and '"subs"' not in playlist.dumps()


def test_decorated_master_has_one_subtitle_rendition_per_language() -> None:
    subtitles = [m for m in decorated().media if m.type == "SUBTITLES"]
    assert [(m.name, m.language, m.uri) for m in subtitles] == [
        ("English", "en", "en.m3u8"), ("Français", "fr", "fr.m3u8"), ("Original (as spoken)", "mul", "original.m3u8"),
    ]
    assert [(m.default, m.autoselect, m.forced) for m in subtitles] == [("NO", "YES", "NO")] * 3


def test_an_unknown_language_is_named_by_its_code() -> None:
    text = decorate_master(MASTER, BASE, ["sw"], our_uri)
    (rendition,) = [m for m in m3u8.M3U8(text, strict=True).media if m.type == "SUBTITLES"]
    assert (rendition.name, rendition.language) == ("sw", "sw")


def test_the_iframe_stream_gets_no_subtitle_group() -> None:
    text = decorate_master(MASTER, BASE, LANGS, our_uri)
    (iframe,) = [line for line in text.splitlines() if line.startswith("#EXT-X-I-FRAME-STREAM-INF:")]
    assert "SUBTITLES" not in iframe


def test_a_media_playlist_as_source_becomes_a_one_variant_master() -> None:
    base = "https://origin.example.com/live/index.m3u8"
    playlist = decorated(MEDIA, base)
    assert playlist.is_variant
    (variant,) = playlist.playlists
    assert (variant.uri, variant.stream_info.subtitles) == (base, "relay")
    assert variant.stream_info.bandwidth > 0
    assert [m.language for m in playlist.media if m.type == "SUBTITLES"] == ["en", "fr", "mul"]


@pytest.mark.parametrize("text", ["<html><body>Not found</body></html>", "", "#EXTM3U\n#EXT-X-VERSION:3\n",
                                  "WEBVTT\n\n00:01.000 --> 00:02.000\nHi\n"])
def test_what_is_not_a_playlist_raises_master_error(text: str) -> None:
    with pytest.raises(MasterError):
        decorate_master(text, BASE, LANGS, our_uri)


@pytest.mark.parametrize("url", ["https://user:secret@origin.example.com/live/master.m3u8",
                                 "https://user@origin.example.com/live/master.m3u8",
                                 "https://origin.example.com/live/master.m3u8?token=abc",
                                 "https://:secret@origin.example.com/live/master.m3u8"])
def test_check_public_refuses_credentials_and_tokens(url: str) -> None:
    with pytest.raises(MasterError, match="--hls-master"):
        check_public(url)


def test_check_public_accepts_a_plain_address() -> None:
    check_public(BASE)  # does not raise
    check_public("http://192.0.2.7:8080/hls/index.m3u8#start")
