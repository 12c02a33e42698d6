"""The layout of an event on Redis, shared by the publisher and the edges.

One stream per event and session, `relay:{event}:{session}:frames`, holds every frame the relay's
hub delivered, in order, each entry's field `m` the frame's JSON exactly as viewers get it. Entry
ids carry the numbering: a final numbered `seq` is entry `{seq}-0`; any other frame (partial,
status, end) after it is `{seq}-{k}`, k = 1, 2... So a final is read back by its seq (XRANGE), a
final added twice is refused by Redis itself (ids only grow), and the major part of the last entry
is the last final's seq. Partials and status stay in the stream (a two-hour event is a few MB).
The hash `relay:{event}:meta` names the current session and the event's channels, tracks, languages
and source states, for edges starting up or coming back.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from relay.protocol import Frame, websocket_text_frame

FIELD = b"m"  # the frame's JSON
SEQ_FIELD = b"s"  # a partial's seq (the next final's); absent for status and end
BEAT_FIELD = "beat"  # in the meta hash: the relay's clock, rewritten every BEAT_S while it publishes
BEAT_S = 2.0
_SENT = re.compile(rb'"sent":([0-9.]+)')


def meta_key(event: str) -> str:
    return f"relay:{event}:meta"


def frames_key(event: str, session: str) -> str:
    return f"relay:{event}:{session}:frames"


def parse_id(entry_id: bytes | str) -> tuple[int, int]:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    major, minor = text.split("-", 1)
    return int(major), int(minor)


def frame_of(entry_id: bytes | str, fields: dict[bytes, bytes]) -> Frame:
    """A frame read back from the stream (a final's seq from its entry id)."""
    major, minor = parse_id(entry_id)
    text = fields[FIELD]
    if minor == 0:
        return Frame(text, websocket_text_frame(text), major, True)
    seq = int(fields[SEQ_FIELD]) if SEQ_FIELD in fields else None
    return Frame(text, websocket_text_frame(text), seq, False)


def sent_of(text: bytes) -> float | None:
    """A caption's `sent` (found, not parsed: an edge reads every frame of the event)."""
    match = _SENT.search(text)
    return float(match.group(1)) if match else None


def entry_fields(frame: Frame) -> dict[bytes, bytes]:
    fields = {FIELD: frame.text}
    if not frame.final and frame.seq is not None:
        fields[SEQ_FIELD] = str(frame.seq).encode()
    return fields


@dataclass(frozen=True, slots=True)
class EventMeta:
    """What an edge needs to build a hub that speaks for the event."""

    session: str
    channels: list[tuple[str, str | None]]
    tracks: tuple[str, ...]
    languages: tuple[str, ...]
    label: str
    states: dict[str, str]
    beat: str = ""  # the relay's heartbeat, rewritten every couple of seconds (not part of to_hash)

    def to_hash(self) -> dict[str, str]:
        return {
            "session": self.session,
            "channels": json.dumps(self.channels),
            "tracks": json.dumps(list(self.tracks)),
            "languages": json.dumps(list(self.languages)),
            "label": self.label,
            "states": json.dumps(self.states),
        }

    @classmethod
    def from_hash(cls, raw: dict[Any, Any]) -> EventMeta | None:
        values = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
                  for k, v in raw.items()}
        if "session" not in values:
            return None
        return cls(
            session=values["session"],
            channels=[(name, lang) for name, lang in json.loads(values["channels"])],
            tracks=tuple(json.loads(values["tracks"])),
            languages=tuple(json.loads(values["languages"])),
            label=values["label"],
            states=dict(json.loads(values.get("states", "{}"))),
            beat=values.get(BEAT_FIELD, ""),
        )
