"""`relay probe`: a source's audio tracks and the channels `--booths auto` would make of them."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TextIO

import av

from relay.channels import AudioTrack, ChannelError, TrackMapping, map_tracks
from relay.redact import redact_url
from relay.source import SourceSettings, open_container


def audio_tracks(container: av.container.InputContainer) -> list[AudioTrack]:
    """The audio streams of an open container, with their language tags and disposition."""
    return [_track(stream) for stream in container.streams.audio]


def _track(stream: av.audio.stream.AudioStream) -> AudioTrack:
    metadata = stream.metadata
    # HLS renditions carry their NAME as "comment"; Matroska and MPEG-TS use "title".
    title = metadata.get("title") or metadata.get("comment") or ""
    context = stream.codec_context
    return AudioTrack(
        index=stream.index,
        language=(metadata.get("language") or "").strip(),
        title=title,
        codec=context.name if context is not None else "",
        sample_rate_hz=int(context.sample_rate or 0) if context is not None else 0,
        channels=int(context.channels or 0) if context is not None else 0,
        default=bool(stream.disposition & av.stream.Disposition.default),
    )


def probe(settings: SourceSettings) -> tuple[list[AudioTrack], TrackMapping | None, str]:
    """Open the source (raises SourceError), list its tracks and try the auto mapping."""
    container = open_container(settings)
    try:
        tracks = audio_tracks(container)
    finally:
        container.close()
    try:
        return tracks, map_tracks(settings, tracks), ""
    except ChannelError as exc:
        return tracks, None, str(exc)


def run_probe(settings: SourceSettings, as_json: bool, out: TextIO) -> int:
    """Print the tracks and mapping; exit status 0, or 1 when --booths auto would fail."""
    tracks, mapping, problem = probe(settings)
    if as_json:
        json.dump(_as_dict(settings, tracks, mapping, problem), out, indent=2)
        out.write("\n")
    else:
        out.write(_as_text(settings, tracks, mapping, problem))
    return 0 if mapping is not None else 1


def _as_dict(settings: SourceSettings, tracks: list[AudioTrack], mapping: TrackMapping | None,
             problem: str) -> dict:
    channels = [] if mapping is None else [
        {"name": spec.name, "lang": spec.lang, "stream_index": spec.stream_index} for spec in mapping.channels
    ]
    ignored = [] if mapping is None else [{"index": t.index, "reason": why} for t, why in mapping.ignored]
    return {
        "source": redact_url(settings.url),
        "tracks": [asdict(track) for track in tracks],
        "channels": channels,
        "ignored": ignored,
        "error": problem or None,
    }


def _as_text(settings: SourceSettings, tracks: list[AudioTrack], mapping: TrackMapping | None,
             problem: str) -> str:
    lines = [f"{redact_url(settings.url)}: {len(tracks)} audio track(s)",
             f"  {'index':>5}  {'lang':5}  {'codec':8}  {'rate':>6}  {'ch':>2}  {'default':7}  title"]
    for t in tracks:
        lines.append(f"  {t.index:>5}  {t.language or '-':5}  {t.codec:8}  {t.sample_rate_hz:>6}  "
                     f"{t.channels:>2}  {'yes' if t.default else 'no':7}  {t.title}")
    lines.append("--booths auto:")
    if mapping is None:
        lines.append(f"  error: {problem}")
    else:
        lines += [f"  {spec.name:10s} track {spec.stream_index}" for spec in mapping.channels]
        lines += [f"  ignored    track {t.index}: {why}" for t, why in mapping.ignored]
    return "\n".join(lines) + "\n"
