"""Typed inputs and outputs of the interpretation track composer."""

from __future__ import annotations

from dataclasses import dataclass

FLOOR = "floor"
ORIGINAL = "original"


@dataclass(frozen=True, slots=True)
class TrackSettings:
    """Timing rules for choosing between the floor, a booth and machine translation."""

    lead_s: float = 1.0  # an interpreter starts a passage at least this long after the floor
    lag_s: float = 3.0  # and starts it at most this long after the floor stopped
    chain_fraction: float = 0.8  # a booth stretch begun earlier covers this much of a passage
    relay_fraction: float = 0.5  # share of a booth final over own-language floor speech: relay
    relay_tolerance_s: float = 0.25  # booth speech starting this close to a floor onset: relay
    mt_bound_s: float = 4.0  # a silent booth: MT at most this long after the floor final
    booth_wait_max_s: float = 15.0  # a speaking booth: its text, or MT after this long
    hold_max_s: float = 20.0  # a booth final waits at most this long for its floor final
    history: int = 256  # passages and speech runs remembered per channel


@dataclass(frozen=True, slots=True)
class Speech:
    """The VAD of `channel` heard speech start (`speaking`) or stop at stream time `at`."""

    channel: str
    at: float
    speaking: bool


@dataclass(frozen=True, slots=True)
class Progress:
    """`channel` has processed audio through stream time `through`.

    Contract: every final of speech that ended before `through`, and every Speech event
    before `through`, has already been fed.
    """

    channel: str
    through: float


@dataclass(frozen=True, slots=True)
class ChannelState:
    """`channel`'s source is up (connected) or down (reconnecting, ended)."""

    channel: str
    up: bool


@dataclass(frozen=True, slots=True)
class TrackCaption:
    """One caption of one language track, in the order a viewer should show them.

    `source`: "floor" (the floor's own words), "interpretation" (a booth's words) or "mt"
    (machine translation of the floor, to be labelled). `covers`: ids of the floor finals
    this caption serves (empty for an interpretation with no floor passage).
    """

    lang: str
    source: str
    channel: str
    id: str
    text: str
    start: float
    end: float
    covers: tuple[str, ...]
    floor_lang: str
    mt_engine: str = ""
    speaker: str = ""  # who had the floor (the words may be an interpreter's)


# What a caption's `source` is called where it is shown: the speaker's own words carry no label.
SOURCE_LABELS = {"floor": "", "interpretation": "interpretation", "mt": "machine translation"}


def labelled(source: str, text: str) -> str:
    """`text` after "(interpretation) " or "(machine translation) " when it is not the speaker's own words."""
    label = SOURCE_LABELS.get(source, source)
    return f"({label}) {text}" if label and text.split() else text
