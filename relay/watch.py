"""`relay watch URL`: print a relay's captions live in a terminal, resuming after drops.

With a relay that sends language tracks (protocol 2), `--lang L` follows the L track as a
viewer page does (docs/protocol.md, "What a viewer of each language shows"): its captions
as finals, each labelled "(interpretation)" or "(machine translation)" unless they are the
speaker's own words; without `--lang`, the original track. Older relays: the finals in L.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import shutil
import unicodedata
from typing import Any, TextIO
from urllib.parse import urlencode, urlsplit, urlunsplit

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI

from relay.tracks.model import labelled

_LOGGER = logging.getLogger(__name__)

_BASE_DELAY_S = 0.5
_MAX_DELAY_S = 30.0


def socket_url(url: str) -> str:
    """Turn a viewer page URL (http://host:port/) into its caption socket URL (ws://host:port/ws)."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    path = parts.path if parts.path.endswith("/ws") else parts.path.rstrip("/") + "/ws"
    return urlunsplit((scheme, parts.netloc, path, "", ""))


def _clean(text: str) -> str:
    """Drop control characters so caption text cannot drive the terminal."""
    return "".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in text)


def caption_text(msg: dict[str, Any], lang: str | None) -> str:
    """The caption's text in `lang` (original when None or untranslated); a track caption's labelled words."""
    if msg.get("type") == "track":
        return labelled(str(msg.get("source", "")), _clean(str(msg.get("text", ""))))
    translations = msg.get("translations") or {}
    if lang is not None and lang != msg.get("lang") and translations.get(lang):
        return _clean(str(translations[lang]))
    return _clean(str(msg.get("text", "")))


class Printer:
    """Writes captions: on a terminal the partial is redrawn in place, elsewhere only finals."""

    def __init__(self, out: TextIO, lang: str | None) -> None:
        self._out = out
        self._lang = lang
        self._tty = out.isatty()
        self._partial_shown = False
        self._speaker = ""

    def partial(self, msg: dict[str, Any]) -> None:
        if not self._tty:
            return
        width = max(10, shutil.get_terminal_size().columns - 1)
        text = caption_text(msg, self._lang)
        if len(text) > width:
            text = "…" + text[-(width - 1) :]
        self._out.write(f"\r\x1b[2K\x1b[2m{text}\x1b[0m")
        self._out.flush()
        self._partial_shown = True

    def clear(self) -> None:
        """Remove a partial left on screen (its final will not come)."""
        if self._partial_shown:
            self._out.write("\r\x1b[2K")
            self._out.flush()
            self._partial_shown = False

    def final(self, msg: dict[str, Any]) -> None:
        prefix = "\r\x1b[2K" if self._partial_shown else ""
        speaker = _clean(str(msg.get("speaker") or ""))
        if speaker and speaker != self._speaker:  # a new turn: the name on a line of its own
            prefix += f"[{speaker}]\n"
        self._speaker = speaker
        self._out.write(f"{prefix}{caption_text(msg, self._lang)}\n")
        self._out.flush()
        self._partial_shown = False


class TrackView:
    """Which messages a viewer of one track shows (the rules of web/tracks.js)."""

    def __init__(self, lang: str | None) -> None:
        self.track = "original" if lang in (None, "orig", "original") else lang
        self.enabled = False
        self.floor = "floor"
        self.booths: dict[str, str] = {}
        self.floor_lang: str | None = None

    def hello(self, msg: dict[str, Any]) -> None:
        """Learn the event's channels and tracks."""
        tracks = msg.get("tracks")
        self.enabled = isinstance(tracks, list) and self.track in tracks
        self.floor = str(msg.get("channel", "floor"))
        channels = msg.get("channels") if isinstance(msg.get("channels"), list) else []
        self.booths = {str(c.get("name")): str(c["lang"]) for c in channels if isinstance(c, dict) and c.get("lang")}

    def note(self, msg: dict[str, Any]) -> None:
        """A floor caption tells which language the floor speaks."""
        if msg.get("channel") == self.floor and msg.get("text"):
            self.floor_lang = msg.get("lang")

    def is_floor(self, msg: dict[str, Any]) -> bool:
        """A message of the floor (a booth's captions are shown only through its track)."""
        return msg.get("channel", self.floor) == self.floor

    def partial_wanted(self, msg: dict[str, Any]) -> bool:
        """The floor's partials in this language; the booth's while the floor does not speak it."""
        if msg.get("channel") == self.floor:
            return self.track == "original" or msg.get("lang") == self.track
        return self.booths.get(str(msg.get("channel"))) == self.track and self.floor_lang != self.track


class _Resume:
    """Where to resume: the session and the last final seen."""

    def __init__(self) -> None:
        self.session: str | None = None
        self.last_seq = 0
        self.ended = False

    def query(self) -> str:
        if self.session is None:
            return ""
        return "?" + urlencode({"since": self.last_seq, "session": self.session})


async def _follow(url: str, resume: _Resume, printer: Printer, view: TrackView) -> None:
    """Print captions from one connection until it closes."""
    ended_at: int | None = None  # a session already over when we came: its last seq
    async with connect(url + resume.query(), max_size=1 << 20) as ws:
        async for raw in ws:
            msg = json.loads(raw)
            kind = msg.get("type")
            if kind == "hello":
                _LOGGER.info("Connected to %s (final %s)", url, msg.get("seq"))
                view.hello(msg)
                if msg.get("session") != resume.session:
                    resume.session, resume.last_seq = msg.get("session"), 0
                if msg.get("ended") is not None:
                    ended_at = int(msg.get("seq") or 0)
            elif kind in ("final", "track") and msg["seq"] > resume.last_seq:
                resume.last_seq = msg["seq"]  # finals and tracks share one seq
                view.note(msg)
                if view.enabled and kind == "track" and msg.get("lang") == view.track:
                    printer.final(msg)
                elif not view.enabled and kind == "final" and view.is_floor(msg):
                    printer.final(msg)
            elif kind == "partial" and msg["seq"] > resume.last_seq:
                view.note(msg)
                if view.partial_wanted(msg) if view.enabled else view.is_floor(msg):
                    printer.partial(msg)
            elif kind == "status":
                _LOGGER.info("Source %s: %s", msg.get("label", ""), msg.get("state"))
            elif kind == "end":
                _LOGGER.info("Session ended: %s", msg.get("reason", ""))
                printer.clear()
                resume.ended = True
                return
            if ended_at is not None and resume.last_seq >= ended_at:
                _LOGGER.info("The session had ended; its captions are printed")
                printer.clear()
                resume.ended = True
                return


async def watch(url: str, lang: str | None, out: TextIO) -> int:
    """Print captions from the relay at `url` until the session ends (returns 0) or is refused (2)."""
    ws_url = socket_url(url)
    resume = _Resume()
    printer = Printer(out, lang)
    view = TrackView(lang)
    attempt = 0
    while True:
        try:
            await _follow(ws_url, resume, printer, view)
            attempt = 0
        except InvalidStatus as exc:
            _LOGGER.error("Relay refused the connection: HTTP %d", exc.response.status_code)
            return 2
        except InvalidURI as exc:
            _LOGGER.error("Not a relay URL: %s", exc)
            return 2
        except (ConnectionClosed, OSError, json.JSONDecodeError, TimeoutError) as exc:
            _LOGGER.warning("Connection lost: %s", exc)
        if resume.ended:
            return 0
        ceiling = min(_MAX_DELAY_S, _BASE_DELAY_S * 2**attempt)
        delay = random.uniform(ceiling / 2, ceiling)  # jitter spreads reconnects after a restart
        attempt = min(attempt + 1, 10)
        _LOGGER.info("Reconnecting in %.1f s", delay)
        await asyncio.sleep(delay)
