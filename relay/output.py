"""Caption writers for the terminal: JSON lines for machines, live text for people."""

from __future__ import annotations

import json
from typing import Any, TextIO

from relay.messages import Caption
from relay.tracks import TrackCaption


def caption_record(caption: Caption) -> dict[str, Any]:
    """The JSONL output contract; later fields are added, these stay."""
    record: dict[str, Any] = {
        "type": caption.kind,
        "id": caption.id,
        "lang": caption.lang,
        "text": caption.text,
        "start": caption.start,
        "end": caption.end,
        "wall": caption.wall,
        "channel": caption.channel,
    }
    if caption.translations:
        record["translations"] = dict(caption.translations)
        record["mt"] = dict(caption.mt)
    if caption.mt_ms is not None:
        record["mt_ms"] = caption.mt_ms
    if caption.speaker:
        record["speaker"] = caption.speaker
    return record


def track_record(track: TrackCaption) -> dict[str, Any]:
    """A track caption as a `{"type": "track"}` JSONL line."""
    record: dict[str, Any] = {
        "type": "track",
        "lang": track.lang,
        "id": track.id,
        "source": track.source,
        "channel": track.channel,
        "text": track.text,
        "start": track.start,
        "end": track.end,
        "covers": list(track.covers),
        "floor_lang": track.floor_lang,
    }
    if track.mt_engine:
        record["mt_engine"] = track.mt_engine
    return record


class JsonlWriter:
    """One JSON object per line, flushed as emitted: channel captions and track captions."""

    def __init__(self, out: TextIO) -> None:
        self._out = out

    async def __call__(self, caption: Caption) -> None:
        self._write(caption_record(caption))

    async def caption(self, caption: Caption) -> None:
        self._write(caption_record(caption))

    async def track(self, track: TrackCaption) -> None:
        self._write(track_record(track))

    def _write(self, record: dict[str, Any]) -> None:
        self._out.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._out.flush()


class TextWriter:
    """Human-readable live captions; on a terminal a partial is redrawn in place."""

    def __init__(self, out: TextIO, interactive: bool) -> None:
        self._out = out
        self._interactive = interactive
        self._partial_shown = False

    async def caption(self, caption: Caption) -> None:
        await self(caption)

    async def track(self, track: TrackCaption) -> None:
        """Tracks are for viewers and --jsonl; the live text shows what each channel says."""

    async def __call__(self, caption: Caption) -> None:
        where = "" if caption.channel == "floor" else f"{caption.channel} "
        line = f"[{_clock(caption.start)} {where}{caption.lang}] {caption.text}"
        if caption.is_final:
            if caption.text or self._partial_shown:
                self._write(line if caption.text else "", end="\n" if caption.text else "")
            self._partial_shown = False
        elif self._interactive and caption.channel == "floor":
            self._write(f"\x1b[2m{line}\x1b[0m", end="")
            self._partial_shown = True

    def _write(self, text: str, end: str) -> None:
        prefix = "\r\x1b[2K" if self._interactive else ""
        self._out.write(prefix + text + end)
        self._out.flush()


def _clock(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600:02d}:{whole // 60 % 60:02d}:{whole % 60:02d}"
