"""A channel of an event stamps `wall` on the event's clock, not from when its pipeline was built."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from relay.channel_input import open_event_channels
from relay.pipeline import Pipeline, PipelineSettings
from relay.source import SourceSettings

FLOOR = Path(__file__).resolve().parent.parent.parent / "shared" / "speech" / "interpretation" / "floor.flac"


async def _ignore(caption) -> None:
    return None


async def test_an_event_channel_measures_wall_from_the_event_clock():
    settings = SourceSettings(str(FLOOR))
    inputs = await asyncio.to_thread(open_event_channels, settings)
    floor = inputs["floor"]
    try:
        pipeline = Pipeline(PipelineSettings(source=settings), _ignore, channel_input=floor)
        await asyncio.sleep(0.3)  # the event's clock starts now, well after the pipeline was built
        started = floor.epoch.mark()
        assert pipeline.source_opened_at == started
        assert pipeline._since_opened() < time.monotonic() - started + 0.05
        assert pipeline._since_opened() < 0.2
    finally:
        floor.close()
