"""Who has the floor: speaker names set by the operator, on the stream's timeline.

The operator names the speaker (`relay speaker NAME`, `POST /api/speaker`) or steps through the
agenda loaded with `--agenda FILE` (`relay speaker --next`). Each change is kept with the stream
time being captioned at that moment; a final carries the name in effect where its speech began,
so a sentence still being decoded when the name changes keeps the speaker who said it.
"""

from __future__ import annotations

import bisect
import csv
import unicodedata
from dataclasses import dataclass
from pathlib import Path

MAX_NAME_CHARS = 200


class SpeakerError(ValueError):
    """A name or an agenda the relay cannot use (the message is one line, for the operator)."""


@dataclass(frozen=True, slots=True)
class AgendaEntry:
    """One speaker of the agenda, as the CSV gives it."""

    name: str
    affiliation: str = ""
    language: str = ""

    @property
    def display(self) -> str:
        """What viewers and the transcript show: "name, affiliation"."""
        return f"{self.name}, {self.affiliation}" if self.affiliation else self.name


_DIRECTION_OVERRIDES = set("\u202a\u202b\u202c\u202d\u202e")  # would reorder the text after the name


def checked_name(text: str) -> str:
    """`text` as a speaker name: spaces trimmed, 1-200 characters, something visible, no control
    characters nor bidi overrides ("" clears)."""
    name = " ".join(text.split())
    if len(name) > MAX_NAME_CHARS:
        raise SpeakerError(f"a speaker name is at most {MAX_NAME_CHARS} characters")
    if any(unicodedata.category(ch) == "Cc" or ch in _DIRECTION_OVERRIDES for ch in name):
        raise SpeakerError("a speaker name cannot hold control characters")
    if name and all(unicodedata.category(ch) in ("Cf", "Zs") for ch in name):
        raise SpeakerError("a speaker name needs a visible character")
    return name


def load_agenda(path: Path) -> list[AgendaEntry]:
    """The agenda CSV: `name,affiliation,language` per row (a header row with `name` first is skipped)."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = [row for row in csv.reader(handle) if any(cell.strip() for cell in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise SpeakerError(f"cannot read the agenda {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if rows and rows[0] and rows[0][0].strip().lower() == "name":
        rows = rows[1:]
    entries = []
    for number, row in enumerate(rows, start=1):
        cells = [cell.strip() for cell in row] + ["", ""]
        try:
            entry = AgendaEntry(checked_name(cells[0]), checked_name(cells[1]), cells[2])
            checked_name(entry.display)  # name and affiliation together: what will be set
        except SpeakerError as exc:
            raise SpeakerError(f"agenda {path}, speaker {number}: {exc}") from None
        if not entry.name:
            raise SpeakerError(f"agenda {path}, speaker {number}: no name")
        entries.append(entry)
    if not entries:
        raise SpeakerError(f"the agenda {path} names no speaker")
    return entries


class SpeakerLog:
    """The speaker changes of the event, in stream time, and the agenda being stepped through."""

    def __init__(self, agenda: list[AgendaEntry] | None = None) -> None:
        self._times: list[float] = []
        self._names: list[str] = []
        self._agenda = agenda or []
        self._next = 0

    @property
    def current(self) -> str:
        return self._names[-1] if self._names else ""

    @property
    def since(self) -> float:
        """The stream time the current speaker has had the floor from (0 before anyone)."""
        return self._times[-1] if self._times else 0.0

    def set(self, text: str, at_s: float) -> str:
        """`text` has the floor from stream time `at_s` on ("" : nobody named); return the name."""
        name = checked_name(text)
        at_s = max(at_s, self._times[-1]) if self._times else at_s  # the timeline only moves forward
        self._times.append(at_s)
        self._names.append(name)
        return name

    def next(self, at_s: float) -> str:
        """The agenda's next speaker has the floor from `at_s` on."""
        if not self._agenda:
            raise SpeakerError("no agenda: start the relay with --agenda FILE, or name the speaker")
        if self._next >= len(self._agenda):
            raise SpeakerError(f"the agenda's {len(self._agenda)} speakers have all been called")
        name = self.set(self._agenda[self._next].display, at_s)
        self._next += 1
        return name

    def resume(self, name: str, at_s: float) -> None:
        """A continued event: `name` still has the floor, and the agenda goes on after them."""
        self.set(name, at_s)
        called = [index for index, entry in enumerate(self._agenda) if entry.display == name]
        if called:
            self._next = called[0] + 1

    def at(self, stream_s: float) -> str:
        """Who had the floor at `stream_s` ("" before anyone was named)."""
        index = bisect.bisect_right(self._times, stream_s) - 1
        return self._names[index] if index >= 0 else ""
