"""One WebVTT segment of a subtitle rendition, its cues on the video's timeline (RFC 8216 §3.5).

A segment's header maps its local cue times onto the source's presentation timestamps:
`X-TIMESTAMP-MAP=MPEGTS:<tick>,LOCAL:<time>` says that local time `LOCAL` plays at presentation
tick `MPEGTS`. Local times here are stream seconds (the relay's own clock), and LOCAL is the
segment's start; each cue's local time is moved by how the presentation clock ran between the
segment's start and the cue (the same amount, unless the source's timestamps jumped in between),
so a player puts each cue where its words are heard in the video, whatever its own delay.

Cue text, line breaks, escaping and the speaker's voice span are those of `relay export`
(`relay.export.vtt_lines`), and each cue's identifier is its seq, the same in every segment that
repeats it: players drop the repeats.
"""

from __future__ import annotations

from collections.abc import Sequence

from relay.export import Cue, vtt_lines, vtt_timestamp
from relay.hls.pts import TICK_HZ, PtsMap, seconds_to_ticks, signed_ticks


def segment_body(start_s: float, cues: Sequence[Cue], pts: PtsMap) -> bytes:
    """The WebVTT file of a segment starting at stream time `start_s` holding `cues` (laid out, in ms)."""
    local_s = max(0.0, start_s)  # before the first sample there is no stream time to name
    local_ms = round(local_s * 1000)
    mpegts = pts.tick_at(local_s)
    lines = ["WEBVTT", f"X-TIMESTAMP-MAP=MPEGTS:{mpegts},LOCAL:{vtt_timestamp(local_ms)}", ""]
    for cue in cues:
        shift_ms = _presentation_shift_ms(cue.start_ms, local_ms, mpegts, pts)
        start_ms = max(0, cue.start_ms + shift_ms)
        end_ms = max(start_ms + 1, cue.end_ms + shift_ms)
        lines += [str(cue.seq), f"{vtt_timestamp(start_ms)} --> {vtt_timestamp(end_ms)}", *vtt_lines(cue), ""]
    return "\n".join(lines).encode("utf-8", errors="replace")


def _presentation_shift_ms(cue_ms: int, local_ms: int, mpegts: int, pts: PtsMap) -> int:
    """How much further the presentation clock ran than stream time from LOCAL to the cue (0 unless it jumped)."""
    ran_ticks = signed_ticks(pts.tick_at(cue_ms / 1000) - mpegts)
    return round((ran_ticks - seconds_to_ticks((cue_ms - local_ms) / 1000)) * 1000 / TICK_HZ)
