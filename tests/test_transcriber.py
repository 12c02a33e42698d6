"""Decode scheduling, isolated from the model with a scripted engine (the real one is in e2e)."""

from __future__ import annotations

import asyncio

import numpy as np

from relay.messages import Caption, Utterance
from relay.transcriber import Transcriber
from relay.whisper_engine import Decoded


class ScriptedEngine:
    """Answers each decode with the audio length as text; can be held to simulate a slow model."""

    def __init__(self, texts: dict[int, str] | None = None) -> None:
        self.calls: list[tuple[int, bool]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.texts = texts or {}

    async def decode(self, samples, *, final, context=None) -> Decoded:
        self.calls.append((len(samples), final))
        await self.gate.wait()
        text = self.texts.get(len(samples), f"n{len(samples)}")
        return Decoded(text, "en", 0.9, 0.0, -0.1, 0.0)


def utt(uid: str, n: int, *, final=False, settled=False) -> Utterance:
    return Utterance(uid, np.zeros(n, dtype=np.float32), 0.0, 0.1, n / 16000, final, settled)


async def run(engine, feed):
    captions: list[Caption] = []

    async def sink(caption: Caption) -> None:
        captions.append(caption)

    transcriber = Transcriber(engine, sink, clock=lambda: 0.0)
    task = asyncio.create_task(transcriber.run())
    await feed(transcriber)
    transcriber.close()
    await asyncio.wait_for(task, 5)
    return captions


async def test_a_settled_decode_is_reused_as_the_final():
    engine = ScriptedEngine()

    async def feed(t):
        await t.offer(utt("u1", 1600, settled=True))
        await asyncio.sleep(0.01)  # the settled snapshot is decoded
        await t.offer(utt("u1", 1600, final=True, settled=True))

    captions = await run(engine, feed)
    assert engine.calls == [(1600, True)]
    assert [(c.kind, c.text) for c in captions][-1] == ("final", "n1600")


async def test_a_final_with_other_audio_is_decoded_again():
    engine = ScriptedEngine()

    async def feed(t):
        await t.offer(utt("u1", 1600, settled=True))
        await asyncio.sleep(0.01)
        await t.offer(utt("u1", 3200, final=True))

    captions = await run(engine, feed)
    assert engine.calls == [(1600, True), (3200, True)]
    assert captions[-1].text == "n3200" and captions[-1].kind == "final"


async def test_stale_partials_are_skipped_while_the_model_is_busy():
    engine = ScriptedEngine()
    engine.gate.clear()

    async def feed(t):
        await t.offer(utt("u1", 100))
        await asyncio.sleep(0.01)  # the first partial is now being decoded
        for n in (200, 300, 400):
            await t.offer(utt("u1", n))
        engine.gate.set()

    await run(engine, feed)
    assert [n for n, _ in engine.calls] == [100, 400]


async def test_finals_go_before_partials_and_stay_in_order():
    engine = ScriptedEngine()
    engine.gate.clear()

    async def feed(t):
        await t.offer(utt("u1", 100))
        await asyncio.sleep(0.01)
        await t.offer(utt("u2", 500))
        await t.offer(utt("u1", 1000, final=True))
        await t.offer(utt("u2", 2000, final=True))
        engine.gate.set()

    captions = await run(engine, feed)
    finals = [c.id for c in captions if c.kind == "final"]
    assert finals == ["u1", "u2"]
    assert (500, False) not in engine.calls  # u2's partial was overtaken by u2's final


async def test_no_partial_is_published_after_its_final():
    engine = ScriptedEngine()

    async def feed(t):
        await t.offer(utt("u1", 1000, final=True))
        await t.offer(utt("u1", 500))

    captions = await run(engine, feed)
    assert [c.kind for c in captions] == ["final"]


async def test_an_empty_final_retracts_a_partial_and_silent_ones_publish_nothing():
    engine = ScriptedEngine(texts={1000: "", 3000: ""})

    async def feed(t):
        await t.offer(utt("u1", 500))
        await asyncio.sleep(0.01)
        await t.offer(utt("u1", 1000, final=True))
        await t.offer(utt("u2", 3000, final=True))

    captions = await run(engine, feed)
    assert [(c.id, c.kind, c.text) for c in captions] == [("u1", "partial", "n500"), ("u1", "final", "")]


async def test_every_queued_final_is_published_before_run_returns():
    engine = ScriptedEngine()

    async def feed(t):
        for i in range(100):  # more than the queue holds: offer() waits, nothing is dropped
            await t.offer(utt(f"u{i}", 1000 + i, final=True))

    captions = await run(engine, feed)
    assert [c.id for c in captions] == [f"u{i}" for i in range(100)]
