"""Viewer wire protocol: JSON messages, their WebSocket frames, close codes.

See docs/protocol.md. Every message is encoded once into a `Frame` that holds
both the JSON text and the complete unmasked WebSocket text frame, so the hub
can hand the very same bytes to every viewer.
"""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .messages import Caption
from .tracks.model import TrackCaption

# 2: booth channels in one hub, `track` messages (numbered with the finals), hello `channels`/`tracks`.
PROTOCOL_VERSION = 2

# Close codes the server sends (RFC 6455 section 7.4 plus our 4000-range).
CLOSE_GOING_AWAY = 1001  # server shutting down: reconnect with `since`
CLOSE_UNSUPPORTED_DATA = 1003  # viewer sent a binary message
CLOSE_INVALID_PAYLOAD = 1007  # viewer sent text that is not a JSON value
CLOSE_MESSAGE_TOO_BIG = 1009  # viewer message over the size limit
CLOSE_SERVICE_RESTART = 1012  # an edge moved to the event's new session: reconnect (a new hello)
CLOSE_TOO_SLOW = 4001  # viewer fell too far behind: reconnect with `since`

_OPCODE_TEXT = 0x1
_FIN = 0x80


@dataclass(frozen=True, slots=True)
class Frame:
    """One encoded message: its JSON `text` and its ready-to-write WebSocket `wire` frame.

    `seq` is the final's sequence number for finals, the next final's for partials,
    and None for messages that are not captions.
    """

    text: bytes
    wire: bytes
    seq: int | None = None
    final: bool = False
    # What a caption frame encodes, and its `sent`, as built: the store keeps a final without
    # decoding its JSON again. Not part of the frame's identity (a frame read back has neither).
    item: Caption | TrackCaption | None = field(default=None, compare=False)
    sent: float | None = field(default=None, compare=False)


def websocket_text_frame(payload: bytes) -> bytes:
    """Return an unmasked, unfragmented, uncompressed WebSocket text frame (server side)."""
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", _FIN | _OPCODE_TEXT, size)
    elif size < 65536:
        header = struct.pack("!BBH", _FIN | _OPCODE_TEXT, 126, size)
    else:
        header = struct.pack("!BBQ", _FIN | _OPCODE_TEXT, 127, size)
    return header + payload


def encode(
    message: Mapping[str, Any], *, seq: int | None = None, final: bool = False,
    item: Caption | TrackCaption | None = None,
) -> Frame:
    """Encode a JSON message once into a `Frame` (with the caption it encodes, if any)."""
    text = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode()
    return Frame(text=text, wire=websocket_text_frame(text), seq=seq, final=final, item=item, sent=message.get("sent"))


def caption_message(caption: Caption, seq: int) -> dict[str, Any]:
    """Return the wire form of a caption (`type` is "partial" or "final"; a final's `mt_ms` when known)."""
    message: dict[str, Any] = {
        "type": caption.kind,
        "channel": caption.channel,
        "id": caption.id,
        "seq": seq,
        "lang": caption.lang,
        "text": caption.text,
        "translations": dict(caption.translations),
        "mt": dict(caption.mt),
        "start": caption.start,
        "end": caption.end,
        "wall": caption.wall,
        "sent": round(time.time(), 4),  # publication time (Unix): lets a viewer measure delivery delay
    }
    if caption.mt_ms is not None:
        message["mt_ms"] = caption.mt_ms  # kept in the stored frame, so the transcript has it too
    if caption.speaker:
        message["speaker"] = caption.speaker
    return message


def encode_caption(caption: Caption, seq: int) -> Frame:
    """Encode a caption with its sequence number."""
    return encode(caption_message(caption, seq), seq=seq, final=caption.is_final, item=caption)


def track_message(track: TrackCaption, seq: int) -> dict[str, Any]:
    """Return the wire form of a track caption: what viewers of `track.lang` show as a final."""
    message = {
        "type": "track",
        "seq": seq,
        "lang": track.lang,
        "source": track.source,
        "channel": track.channel,
        "id": track.id,
        "text": track.text,
        "start": track.start,
        "end": track.end,
        "covers": list(track.covers),
        "floor_lang": track.floor_lang,
        "mt_engine": track.mt_engine,
        "sent": round(time.time(), 4),
    }
    if track.speaker:
        message["speaker"] = track.speaker
    return message


def encode_track(track: TrackCaption, seq: int) -> Frame:
    """Encode a track caption with its sequence number: a final (durable, replayed)."""
    return encode(track_message(track, seq), seq=seq, final=True, item=track)


def track_from_message(message: Mapping[str, Any]) -> TrackCaption:
    """Rebuild a track caption from its wire form (`track_message`)."""
    return TrackCaption(
        lang=message["lang"], source=message["source"], channel=message["channel"], id=message["id"],
        text=message["text"], start=message["start"], end=message["end"], covers=tuple(message["covers"]),
        floor_lang=message["floor_lang"], mt_engine=message.get("mt_engine", ""),
        speaker=message.get("speaker", ""),
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    """One caption channel of the event as hello lists it: its name, its booth language (None: the floor), its state."""

    name: str
    lang: str | None
    state: str


@dataclass(frozen=True, slots=True)
class Hello:
    """The first message each viewer gets: where the stream stands."""

    session: str
    channel: str
    languages: Sequence[str]
    seq: int
    since: int | None
    resumed: bool
    source_state: str
    source_label: str  # neutral (the channel's name), never the source's address
    ended: str | None
    now: float
    channels: Sequence[ChannelInfo] = ()
    tracks: Sequence[str] = ()

    def encode(self) -> Frame:
        """Encode this hello."""
        return encode(
            {
                "type": "hello",
                "protocol": PROTOCOL_VERSION,
                "session": self.session,
                "channel": self.channel,
                "languages": list(self.languages),
                "seq": self.seq,
                "since": self.since,
                "resumed": self.resumed,
                "source": {"state": self.source_state, "label": self.source_label},
                "ended": self.ended,
                "now": self.now,
                "channels": [{"name": c.name, "lang": c.lang, "state": c.state} for c in self.channels],
                "tracks": list(self.tracks),
            }
        )


def encode_status(channel: str, state: str, label: str) -> Frame:
    """Encode a source status change (e.g. the livestream is reconnecting) with a neutral label."""
    return encode({"type": "status", "channel": channel, "state": state, "label": label})


def encode_end(channel: str, reason: str, seq: int) -> Frame:
    """Encode the end of the session; `seq` is the last final's."""
    return encode({"type": "end", "channel": channel, "reason": reason, "seq": seq})


def parse_since(raw: str | None) -> int | None:
    """Parse the `since` query parameter; raise ValueError unless it is a non-negative integer."""
    if raw is None:
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise ValueError(f"since must be a non-negative integer, got {raw[:40]!r}")
    return int(raw)
