"""bench.edge_viewers: the lean viewers' own frame reading, checked against relay's frames and a real edge hub."""

from __future__ import annotations

import asyncio
import time

from websockets.frames import Frame as WsFrame
from websockets.frames import Opcode
from websockets.streams import StreamReader

from bench.edge_viewers import OP_PING, OP_TEXT, Crowd, pong, split_frames
from relay.hub import CaptionHub
from relay.messages import Caption, SourceState
from relay.protocol import websocket_text_frame
from relay.server import create_app, serve


def test_frames_of_every_length_class_come_out_whole_however_the_bytes_are_cut() -> None:
    payloads = [b"x" * 5, b"y" * 300, b"z" * 70_000, b'{"type":"partial"}']
    stream = b"".join(websocket_text_frame(p) for p in payloads) + bytes((0x89, 2)) + b"hi"
    for cut in (1, 2, 3, 7, 126, 4096, len(stream)):
        got, carry = [], b""
        for start in range(0, len(stream), cut):
            frames, carry = split_frames(carry + stream[start : start + cut])
            got += frames
        assert got == [(OP_TEXT, p) for p in payloads] + [(OP_PING, b"hi")] and carry == b""


def test_a_pong_is_a_masked_client_frame_carrying_the_pings_payload() -> None:
    reader = StreamReader()
    reader.feed_data(pong(b"abc"))
    parser = WsFrame.parse(reader.read_exact, mask=True)  # as a server reads a client's frame
    try:
        next(parser)
    except StopIteration as done:
        frame = done.value
    assert (frame.opcode, frame.data) == (Opcode.PONG, b"abc")


async def test_every_viewer_counts_each_caption_published_after_the_point_began() -> None:
    hub = CaptionHub()
    hub.source_state(SourceState.CONNECTED)
    async with serve(create_app(hub), "127.0.0.1", 0) as url:
        crowd = await asyncio.to_thread(Crowd, url.replace("http", "ws", 1) + "/ws", 3)
        hub.publish(Caption("final", "u0", "en", "before the point", 0.0, 1.0, 1.5))
        await asyncio.to_thread(crowd.step, 0.5)
        crowd.begin(time.time())
        await asyncio.sleep(0.01)  # `sent` is rounded to 0.1 ms: a caption stamped at once could fall before
        for n in range(1, 6):
            hub.publish(Caption("partial" if n % 2 else "final", f"u{n}", "en", f"caption {n}", n, n + 1.0, n + 1.5))
        summary = await asyncio.to_thread(crowd.finish, 5)
    assert all(viewer.hello for viewer in crowd.viewers)
    assert summary["frames"] == 15 and summary["viewers_complete"] == 3 and summary["closed"] == 0
    assert summary["delay_ms"]["samples"] >= 3
