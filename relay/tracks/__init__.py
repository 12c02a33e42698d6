"""Interpretation tracks: for each language, the floor, its booth or MT, each passage once."""

from relay.tracks.composer import TrackComposer, TrackEvent
from relay.tracks.model import (
    FLOOR, ORIGINAL, ChannelState, Progress, Speech, TrackCaption, TrackSettings,
)
from relay.tracks.track import BOOTH_SOURCE, FLOOR_SOURCE, MT_SOURCE

__all__ = [
    "BOOTH_SOURCE", "FLOOR", "FLOOR_SOURCE", "MT_SOURCE", "ORIGINAL", "ChannelState",
    "Progress", "Speech", "TrackCaption", "TrackComposer", "TrackEvent", "TrackSettings",
]
