"""One decode worker for every channel: finals first across channels, booth partials thinned first."""

from __future__ import annotations

import asyncio

import numpy as np

from relay.messages import Caption, Utterance
from relay.transcriber import DecodeScheduler, Transcriber
from relay.whisper_engine import Decoded


class ScriptedEngine:
    """Answers each decode with the audio length as text; held until the gate opens."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, bool, tuple[str, ...] | None]] = []
        self.gate = asyncio.Event()

    async def decode(self, samples, *, final, context=None) -> Decoded:
        self.calls.append((len(samples), final, context.only if context else None))
        await self.gate.wait()
        lang = context.only[0] if context and context.only else "en"
        return Decoded(f"n{len(samples)}", lang, 0.9, 0.0, -0.1, 0.0)


def utt(uid: str, n: int, *, final=False) -> Utterance:
    return Utterance(uid, np.zeros(n, dtype=np.float32), 0.0, 0.1, n / 16000, final)


class Event:
    """A floor and two booths sharing one scheduler, recording what each publishes."""

    def __init__(self, engine: ScriptedEngine, pending: int = 64) -> None:
        self.scheduler = DecodeScheduler(engine)
        self.captions: list[Caption] = []
        self.lanes = {
            name: Transcriber(engine, self._sink, lambda: 0.0, None, pending, scheduler=self.scheduler,
                              channel=name, languages=langs)
            for name, langs in (("floor", ("en", "fr")), ("booth-fr", ("fr",)), ("booth-es", ("es",)))
        }
        self.task = asyncio.create_task(self.scheduler.run())

    async def _sink(self, caption: Caption) -> None:
        self.captions.append(caption)

    async def finish(self) -> None:
        for lane in self.lanes.values():
            lane.close()
        self.scheduler.close()
        await asyncio.wait_for(asyncio.gather(self.task, *(l.run() for l in self.lanes.values())), 5)


async def test_finals_of_every_channel_go_before_any_partial_floor_first():
    engine = ScriptedEngine()
    event = Event(engine)
    lanes = event.lanes
    await lanes["booth-fr"].offer(utt("b1", 100))  # being decoded when the rest arrives
    await asyncio.sleep(0.01)
    await lanes["floor"].offer(utt("f1", 200))
    await lanes["booth-es"].offer(utt("e1", 300, final=True))
    await lanes["booth-fr"].offer(utt("b2", 400, final=True))
    await lanes["floor"].offer(utt("f0", 500, final=True))
    engine.gate.set()
    await event.finish()
    order = [n for n, _, _ in engine.calls]
    assert order == [100, 500, 300, 400, 200]  # floor final, booth finals oldest first, then partials


async def test_booth_partials_are_dropped_first_while_finals_wait():
    engine = ScriptedEngine()
    event = Event(engine)
    lanes = event.lanes
    await lanes["floor"].offer(utt("f1", 100, final=True))
    await asyncio.sleep(0.01)
    await lanes["booth-fr"].offer(utt("b1", 200))
    await lanes["booth-es"].offer(utt("e1", 300))
    await lanes["floor"].offer(utt("f2", 400))
    await lanes["booth-es"].offer(utt("e0", 500, final=True))
    engine.gate.set()
    await event.finish()
    decoded = [n for n, _, _ in engine.calls]
    assert decoded == [100, 500, 400]  # the floor's partial deferred, the booths' dropped
    assert event.scheduler.partials_dropped == 2


async def test_only_the_newest_partial_per_channel_is_kept():
    engine = ScriptedEngine()
    event = Event(engine)
    lanes = event.lanes
    await lanes["floor"].offer(utt("f1", 100))
    await asyncio.sleep(0.01)
    for n in (201, 202, 203):
        await lanes["booth-fr"].offer(utt("b1", n))
        await lanes["floor"].offer(utt("f1", n + 100))
    engine.gate.set()
    await event.finish()
    assert [n for n, _, _ in engine.calls] == [100, 303, 203]


async def test_booths_decode_in_their_language_and_the_floor_within_its_languages():
    engine = ScriptedEngine()
    engine.gate.set()
    event = Event(engine)
    await event.lanes["booth-es"].offer(utt("e1", 100, final=True))
    await event.lanes["floor"].offer(utt("f1", 200, final=True))
    await event.finish()
    assert sorted(engine.calls) == [(100, True, ("es",)), (200, True, ("en", "fr"))]
    by_channel = {c.channel: c.lang for c in event.captions}
    assert by_channel == {"booth-es": "es", "floor": "en"}


async def test_no_final_is_lost_when_every_channel_piles_up():
    engine = ScriptedEngine()
    engine.gate.set()
    event = Event(engine, pending=2)  # offer() waits: backpressure, never a drop

    async def feed(name: str) -> None:
        for i in range(30):
            await event.lanes[name].offer(utt(f"{name}-{i}", 1000 + i))
            await event.lanes[name].offer(utt(f"{name}-{i}", 2000 + i, final=True))

    await asyncio.gather(*(feed(name) for name in event.lanes))
    await event.finish()
    for name in event.lanes:
        finals = [c.id for c in event.captions if c.kind == "final" and c.channel == name]
        assert finals == [f"{name}-{i}" for i in range(30)]


class GatedEngine:
    """Two workers; each decode is held until its own audio length is released."""

    workers = 2

    def __init__(self) -> None:
        self.started: list[int] = []
        self.gates: dict[int, asyncio.Event] = {}
        self.running = 0
        self.most_running = 0

    def release(self, n: int) -> None:
        self.gates.setdefault(n, asyncio.Event()).set()

    async def decode(self, samples, *, final, context=None) -> Decoded:
        n = len(samples)
        self.started.append(n)
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await self.gates.setdefault(n, asyncio.Event()).wait()
        finally:
            self.running -= 1
        lang = context.only[0] if context and context.only else "en"
        return Decoded(f"n{n}", lang, 0.9, 0.0, -0.1, 0.0)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_two_workers_decode_two_channels_finals_side_by_side():
    engine = GatedEngine()
    event = Event(engine)  # type: ignore[arg-type]
    await event.lanes["floor"].offer(utt("f1", 100, final=True))
    await event.lanes["booth-fr"].offer(utt("b1", 200, final=True))
    await event.lanes["booth-es"].offer(utt("e1", 300, final=True))
    await settle()
    assert engine.started == [100, 200]  # both workers busy; the third waits
    engine.release(200)
    await settle()
    assert engine.started == [100, 200, 300]
    engine.release(300)
    engine.release(100)
    await event.finish()
    assert engine.most_running == 2
    assert sorted(c.id for c in event.captions) == ["b1", "e1", "f1"]


async def test_a_channels_finals_stay_in_order_one_at_a_time():
    engine = GatedEngine()
    event = Event(engine)  # type: ignore[arg-type]
    floor = event.lanes["floor"]
    await floor.offer(utt("f1", 100, final=True))
    await floor.offer(utt("f2", 200, final=True))
    await settle()
    assert engine.started == [100]  # the second worker is free, but f2 must follow f1
    engine.release(200)
    engine.release(100)
    await event.finish()
    assert [c.id for c in event.captions] == ["f1", "f2"]


async def test_a_final_starts_beside_its_channels_partial_which_is_then_not_shown():
    engine = GatedEngine()
    event = Event(engine)  # type: ignore[arg-type]
    floor = event.lanes["floor"]
    await floor.offer(utt("f1", 100))
    await settle()
    await floor.offer(utt("f1", 200, final=True))
    await settle()
    assert engine.started == [100, 200]  # the final does not wait for the partial
    engine.release(200)
    await settle()
    engine.release(100)
    await event.finish()
    assert [(c.id, c.kind) for c in event.captions] == [("f1", "final")]


async def test_a_final_waits_for_its_settled_decode_without_holding_a_worker():
    engine = GatedEngine()
    event = Event(engine)  # type: ignore[arg-type]
    floor = event.lanes["floor"]
    settled = Utterance("f1", np.zeros(100, dtype=np.float32), 0.0, 0.1, 100 / 16000, False, True)
    await floor.offer(settled)
    await settle()
    await floor.offer(Utterance("f1", np.zeros(100, dtype=np.float32), 0.0, 0.1, 100 / 16000, True, True))
    await event.lanes["booth-fr"].offer(utt("b1", 200, final=True))
    await settle()
    assert engine.started == [100, 200]  # the booth's final took the second worker
    engine.release(100)
    engine.release(200)
    await event.finish()
    assert engine.started == [100, 200]  # the floor's final reused the settled decode
    assert [(c.id, c.kind) for c in event.captions if c.channel == "floor"][-1] == ("f1", "final")


def settled_snapshot(uid: str, n: int, *, final: bool = False) -> Utterance:
    return Utterance(uid, np.zeros(n, dtype=np.float32), 0.0, 0.1, n / 16000, final, True)


async def test_a_newer_settled_snapshot_starts_beside_an_outdated_one_and_its_final_reuses_it():
    engine = GatedEngine()
    event = Event(engine)  # type: ignore[arg-type]
    floor = event.lanes["floor"]
    await floor.offer(settled_snapshot("f1", 100))  # a pause...
    await settle()
    await floor.offer(settled_snapshot("f1", 300))  # ...the speaker went on, and paused again
    await settle()
    assert engine.started == [100, 300]  # no waiting for a result nobody will use
    await floor.offer(settled_snapshot("f1", 300, final=True))
    engine.release(300)
    await settle()
    assert [(c.id, c.kind, c.text) for c in event.captions][-1] == ("f1", "final", "n300")
    engine.release(100)
    await event.finish()
    assert engine.started == [100, 300]  # the final decoded nothing again
    assert [c.kind for c in event.captions].count("final") == 1


async def test_a_third_settled_snapshot_waits_while_two_are_decoded():
    engine = GatedEngine()
    event = Event(engine)  # type: ignore[arg-type]
    floor = event.lanes["floor"]
    for n in (100, 200, 300):
        await floor.offer(settled_snapshot("f1", n))
        await settle()
    assert engine.started == [100, 200]
    engine.release(100)
    await settle()
    assert engine.started == [100, 200, 300]
    engine.release(200)
    engine.release(300)
    await event.finish()


async def test_a_failing_decode_ends_the_scheduler_with_its_error():
    class Broken(GatedEngine):
        async def decode(self, samples, *, final, context=None) -> Decoded:
            raise RuntimeError("model exploded")

    event = Event(Broken())  # type: ignore[arg-type]
    await event.lanes["floor"].offer(utt("f1", 100, final=True))
    try:
        await asyncio.wait_for(event.task, 5)
    except RuntimeError as error:
        assert "model exploded" in str(error)
    else:
        raise AssertionError("the scheduler swallowed the failure")


async def test_one_worker_is_kept_for_finals_while_partials_wait():
    engine = GatedEngine()
    event = Event(engine)  # type: ignore[arg-type]
    await event.lanes["floor"].offer(utt("f1", 100))
    await event.lanes["booth-fr"].offer(utt("b1", 200))
    await settle()
    assert engine.started == [100]  # the booth's partial waits: the other worker is for finals
    await event.lanes["booth-es"].offer(utt("e1", 300, final=True))
    await settle()
    assert engine.started == [100, 300]  # the final starts at once
    for n in (100, 200, 300):
        engine.release(n)
    await event.finish()
    assert engine.started == [100, 300]  # b1's partial was dropped for the waiting final


def settled(uid: str, n: int) -> Utterance:
    return Utterance(uid, np.zeros(n, dtype=np.float32), 0.0, 0.1, n / 16000, False, True)


async def test_a_settled_snapshot_goes_before_partials_and_is_never_thinned():
    engine = GatedEngine()
    event = Event(engine)  # type: ignore[arg-type]
    await event.lanes["floor"].offer(utt("f1", 100, final=True))
    await event.lanes["booth-es"].offer(utt("e1", 200, final=True))
    await settle()
    await event.lanes["floor"].offer(utt("f2", 300))
    await event.lanes["booth-fr"].offer(settled("b1", 400))  # a booth's: kept while finals run
    await event.lanes["floor"].offer(utt("f0", 500, final=True))
    engine.release(100)
    await settle()
    assert engine.started == [100, 200, 500]  # the final first
    engine.release(500)
    await settle()
    assert engine.started == [100, 200, 500, 400]  # then the settled snapshot, before f2's partial
    for n in (200, 300, 400):
        engine.release(n)
    await event.finish()
    assert engine.started == [100, 200, 500, 400, 300]


async def test_a_settled_snapshot_starts_beside_its_channels_partial_on_the_kept_worker():
    engine = GatedEngine()
    event = Event(engine)  # type: ignore[arg-type]
    await event.lanes["floor"].offer(utt("f1", 100))
    await settle()
    await event.lanes["floor"].offer(settled("f1", 200))
    await settle()
    assert engine.started == [100, 200]
    engine.release(200)
    engine.release(100)
    await event.finish()


async def test_a_final_arriving_right_after_its_settled_snapshot_was_picked_waits_for_it():
    engine = GatedEngine()
    event = Event(engine)  # type: ignore[arg-type]
    floor = event.lanes["floor"]
    await floor.offer(settled("f1", 100))
    await asyncio.sleep(0)  # the scheduler picks the settled snapshot; its task has not run yet
    await floor.offer(Utterance("f1", np.zeros(100, dtype=np.float32), 0.0, 0.1, 100 / 16000, True, True))
    await settle()
    engine.release(100)
    await event.finish()
    assert engine.started == [100]  # decoded once, for both
    assert [(c.id, c.kind) for c in event.captions][-1] == ("f1", "final")


async def test_other_channels_partials_use_the_worker_a_channels_second_final_cannot():
    engine = GatedEngine()
    event = Event(engine)  # type: ignore[arg-type]
    floor = event.lanes["floor"]
    await floor.offer(utt("f1", 100, final=True))
    await floor.offer(utt("f2", 200, final=True))  # waits for f1: its lane's finals go in order
    await settle()
    await event.lanes["booth-fr"].offer(utt("b1", 300))
    await settle()
    assert engine.started == [100, 300]  # the idle worker takes the booth's partial
    for n in (100, 200, 300):
        engine.release(n)
    await event.finish()
    assert [c.id for c in event.captions if c.kind == "final"] == ["f1", "f2"]


async def test_a_failed_decode_ends_every_channels_run_with_the_error():
    class Broken(GatedEngine):
        async def decode(self, samples, *, final, context=None) -> Decoded:
            raise RuntimeError("model exploded")

    event = Event(Broken())  # type: ignore[arg-type]
    await event.lanes["floor"].offer(utt("f1", 100, final=True))
    for lane in event.lanes.values():
        try:
            await asyncio.wait_for(lane.run(), 5)
        except RuntimeError as error:
            assert "model exploded" in str(error)
        else:
            raise AssertionError("a lane's run() returned as if drained")


async def test_the_worker_is_free_while_a_caption_waits_to_be_published():
    engine = GatedEngine()
    event = Event(engine)  # type: ignore[arg-type]
    held = asyncio.Event()

    async def slow_sink(caption: Caption) -> None:
        if caption.channel == "floor":
            await held.wait()  # e.g. the caption stage's queue is full
        event.captions.append(caption)

    event.lanes["floor"]._sink = slow_sink  # type: ignore[method-assign]
    event.lanes["booth-fr"]._sink = slow_sink  # type: ignore[method-assign]
    event.lanes["booth-es"]._sink = slow_sink  # type: ignore[method-assign]
    await event.lanes["floor"].offer(utt("f1", 100, final=True))
    await event.lanes["booth-fr"].offer(utt("b1", 200, final=True))
    engine.release(100)
    engine.release(200)
    await settle()
    await event.lanes["booth-es"].offer(utt("e1", 300, final=True))
    await settle()
    assert engine.started == [100, 200, 300]  # f1's worker came back before f1 was published
    engine.release(300)
    held.set()
    await event.finish()
