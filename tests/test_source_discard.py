"""A single-channel source reads one audio stream and fetches nothing else of an HLS master."""

from __future__ import annotations

import asyncio

from relay.messages import AudioChunk
from relay.source import AudioSource, SourceSettings, open_container
from tests.support.live_hls_master import live_hls_master  # noqa: F401


async def test_other_renditions_of_an_hls_master_are_not_fetched(live_hls_master):  # noqa: F811
    server = live_hls_master(seconds=16.0, speed=2.0)
    settings = SourceSettings(server.url, stall_timeout_s=5.0)
    source = AudioSource(settings)
    container = await asyncio.to_thread(open_container, settings)
    heard_s = 0.0
    async with asyncio.timeout(60):
        async for item in source.stream(container):
            if isinstance(item, AudioChunk):
                heard_s = item.end_s
                if heard_s >= 10.0:
                    source.stop()
    requests = server.rendition_segment_requests
    read = max(requests, key=requests.get)
    others = {name: count for name, count in requests.items() if name != read}
    # The stream read is fetched segment by segment; every other rendition at most once (the probe).
    assert requests[read] >= 4, requests
    assert all(count <= 1 for count in others.values()), requests
