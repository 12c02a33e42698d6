"""Reading a relay's HLS subtitle rendition over HTTP, as a CDN or player would."""

from __future__ import annotations

import urllib.error
import urllib.request

import m3u8


def fetch_rendition(base_url: str, lang: str) -> dict[str, bytes]:
    """The media playlist of `lang` (key "playlist") and every segment it lists (keyed by URI); {} if none yet."""
    try:
        with urllib.request.urlopen(f"{base_url}/hls/{lang}.m3u8", timeout=10) as response:
            text = response.read()
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return {}
        raise
    files = {"playlist": text}
    for segment in m3u8.loads(text.decode(), uri=f"{base_url}/hls/{lang}.m3u8").segments:
        with urllib.request.urlopen(segment.absolute_uri, timeout=10) as response:
            files[segment.uri] = response.read()
    return files


def listed(files: dict[str, bytes]) -> list[str]:
    """The segment URIs a fetched rendition lists, in order."""
    return [name for name in files if name != "playlist"]
