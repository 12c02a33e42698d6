"""Playlists: a subtitle rendition's live media playlist, and the source's master with the renditions added.

Media playlist (RFC 8216 §4.3.3): the window's segments with the source's media sequence
numbers, durations, discontinuities and program date-times, so a player lines the subtitle
segments up with the video's; `#EXT-X-ENDLIST` once the presentation has ended.

Master (RFC 8216 §4.3.4): the source's own master, line for line, with every URI made absolute
(video and audio still come from the origin or its CDN), one `EXT-X-MEDIA TYPE=SUBTITLES`
rendition per caption language in the group `relay`, and every variant pointing at that group.
A source subtitle group would no longer be referenced by any variant, so its renditions are left
out. A media playlist as source gets a master of its own: one variant, that playlist.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

GROUP_ID = "relay"
LANGUAGE_NAMES = {
    "en": "English", "fr": "Français", "es": "Español", "de": "Deutsch", "it": "Italiano",
    "pt": "Português", "ru": "Русский", "zh": "中文", "ar": "العربية", "ja": "日本語",
    "original": "Original (as spoken)",
}  # fmt: skip
ORIGINAL_TAG = "mul"  # the floor as spoken may be any language: ISO 639-2 "multiple languages"
_ATTRIBUTE = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^",]*)')
_URI_ATTRIBUTES = ("URI", "SERVER-URI")
_DEFAULT_BANDWIDTH = 1_000_000  # a media playlist as source: BANDWIDTH is required, and not known


class MasterError(ValueError):
    """The source's master playlist cannot be republished (the reason says why)."""


@dataclass(frozen=True, slots=True)
class SegmentEntry:
    """What a media playlist says of one segment."""

    sn: int
    duration_s: float
    cc: int = 0
    program_date_time: str | None = None


def media_playlist(
    segments: Sequence[SegmentEntry], uri_of, target_duration_s: int, ended: bool
) -> str:
    """The media playlist of `segments` (consecutive sequence numbers, oldest first); `uri_of(sn)` names each."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", f"#EXT-X-TARGETDURATION:{max(1, target_duration_s)}"]
    if segments:
        lines.append(f"#EXT-X-MEDIA-SEQUENCE:{segments[0].sn}")
        if segments[0].cc:
            lines.append(f"#EXT-X-DISCONTINUITY-SEQUENCE:{segments[0].cc}")
    previous_cc = segments[0].cc if segments else 0
    for segment in segments:
        if segment.cc != previous_cc:
            lines.append("#EXT-X-DISCONTINUITY")
            previous_cc = segment.cc
        if segment.program_date_time:
            lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{segment.program_date_time}")
        lines += [f"#EXTINF:{segment.duration_s:.3f},", uri_of(segment.sn)]
    if ended:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def rendition_name(lang: str) -> str:
    return LANGUAGE_NAMES.get(lang, lang)


def subtitle_media_lines(langs: Sequence[str], uri_of) -> list[str]:
    """One `EXT-X-MEDIA TYPE=SUBTITLES` line per language; `uri_of(lang)` names its playlist."""
    lines = []
    for lang in langs:
        tag = ORIGINAL_TAG if lang == "original" else lang
        # DEFAULT=NO: captions stay off until the viewer picks a language, or the player picks the
        # viewer's own (AUTOSELECT), rather than English for everybody.
        lines.append(
            f'#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="{GROUP_ID}",NAME="{_quoted(rendition_name(lang))}",'
            f'LANGUAGE="{tag}",DEFAULT=NO,AUTOSELECT=YES,FORCED=NO,URI="{_quoted(uri_of(lang))}"'
        )
    return lines


def check_public(url: str) -> None:
    """Raise MasterError if the address holds what a viewer must not get (credentials, a token)."""
    parts = urlsplit(url)
    if parts.username or parts.password or parts.query:
        raise MasterError("the source address holds credentials or a token; give the public master with --hls-master URL")


def decorate_master(text: str, base_url: str, langs: Sequence[str], uri_of) -> str:
    """The master at `base_url` with the subtitle renditions added (a media playlist: wrapped in a master)."""
    lines = [line.strip() for line in text.lstrip("\ufeff").splitlines() if line.strip()]
    if not lines or lines[0] != "#EXTM3U":
        raise MasterError("the source is not an HLS playlist (no #EXTM3U)")
    if not any(line.startswith("#EXT-X-STREAM-INF:") for line in lines):
        if any(line.startswith("#EXTINF") for line in lines):
            return _master_of_media(base_url, langs, uri_of)
        raise MasterError("the source playlist has neither variants nor segments")
    out: list[str] = []
    ours = subtitle_media_lines(langs, uri_of)
    for line in lines:
        if not line:
            continue
        if line.startswith("#EXT-X-MEDIA:") and _attributes(line).get("TYPE") == "SUBTITLES":
            continue  # its group is replaced by ours on every variant
        if line.startswith("#EXT-X-STREAM-INF:"):
            out += ours
            ours = []
            line = _with_attribute(_absolute_attributes(line, base_url), "SUBTITLES", f'"{GROUP_ID}"')
        elif line.startswith("#"):
            line = _absolute_attributes(line, base_url)
        else:
            line = urljoin(base_url, line)
        out.append(line)
    return "\n".join(out) + "\n"


def _master_of_media(media_url: str, langs: Sequence[str], uri_of) -> str:
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", *subtitle_media_lines(langs, uri_of),
             f'#EXT-X-STREAM-INF:BANDWIDTH={_DEFAULT_BANDWIDTH},SUBTITLES="{GROUP_ID}"', media_url]
    return "\n".join(lines) + "\n"


def _attributes(line: str) -> dict[str, str]:
    """A tag's attribute list (quoted values unquoted)."""
    _, _, rest = line.partition(":")
    return {name: value.strip('"') for name, value in _ATTRIBUTE.findall(rest)}


def _absolute_attributes(line: str, base_url: str) -> str:
    """The tag with its URI attributes resolved against `base_url`."""
    tag, colon, rest = line.partition(":")
    if not colon:
        return line

    def absolute(match: re.Match[str]) -> str:
        name, value = match.group(1), match.group(2)
        if name in _URI_ATTRIBUTES and value.startswith('"'):
            return f'{name}="{urljoin(base_url, value.strip(chr(34)))}"'
        return match.group(0)

    return f"{tag}:{_ATTRIBUTE.sub(absolute, rest)}"


def _with_attribute(line: str, name: str, value: str) -> str:
    """The tag with attribute `name` set to `value` (replaced if present, appended if not)."""
    tag, _, rest = line.partition(":")
    pairs = [(n, v) for n, v in _ATTRIBUTE.findall(rest) if n != name] + [(name, value)]
    return f"{tag}:" + ",".join(f"{n}={v}" for n, v in pairs)


def _quoted(text: str) -> str:
    """A quoted-string value: no double quote or line break may appear in it (RFC 8216 §4.2)."""
    return text.replace('"', "'").replace("\n", " ").replace("\r", " ")
