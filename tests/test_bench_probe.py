"""bench.probe and bench.relay_run: the measuring viewer and the resource sampler, on real components."""

from __future__ import annotations

import asyncio
import os
import shutil

import pytest

from bench.probe import MeasuringViewer
from bench.relay_run import ResourceSampler, cpu_kind, is_apertium
from bench.transcription import clock_zero
from relay.hub import CaptionHub
from relay.messages import Caption, SourceState
from relay.server import create_app, serve


def _final(n: int) -> Caption:
    return Caption(kind="final", id=f"u{n}", lang="en", text=f"caption {n}", start=n, end=n + 1.0, wall=n + 1.5)


async def test_measuring_viewer_stamps_every_caption_with_the_kernel_receive_time() -> None:
    hub = CaptionHub()
    hub.source_state(SourceState.CONNECTED)
    async with serve(create_app(hub), "127.0.0.1", 0) as url:
        probe = MeasuringViewer(url.replace("http", "ws", 1) + "/ws")
        probe.start()
        loop = asyncio.get_running_loop()
        while hub.viewer_count == 0:
            await asyncio.sleep(0.02)
        for n in range(1, 4):
            hub.publish(_final(n))
            await asyncio.sleep(0.05)
        hub.end_session("done")
        assert await loop.run_in_executor(None, probe.ended.wait, 10.0)
        result = probe.stop()
    kinds = [a.message["type"] for a in result.arrivals]
    assert kinds == ["hello", "final", "final", "final", "end"]
    assert [a.message["seq"] for a in result.arrivals[1:4]] == [1, 2, 3]
    assert result.reads_without_timestamp == 0
    assert all(0 < a.kernel_s <= a.read_s for a in result.arrivals)


def test_clock_zero_is_the_smallest_sent_minus_wall() -> None:
    captions = [{"sent": 100.5, "wall": 0.4}, {"sent": 103.0, "wall": 2.95}, {"sent": 101.2, "wall": 1.0}]
    assert clock_zero(captions) == pytest.approx(100.05)


def test_a_result_names_the_cpu_and_its_int8_instruction_sets(tmp_path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: AMD EPYC 9R14\nflags\t\t: fpu sse avx2 avx512f avx512_vnni\n\n")
    assert cpu_kind(info) == {"cpu_model": "AMD EPYC 9R14", "cpu_int8_flags": ["avx2", "avx512f", "avx512_vnni"]}
    assert cpu_kind(tmp_path / "missing") == {}


def test_apertium_programs_are_told_from_other_children() -> None:
    assert all(map(is_apertium, ("lt-proc", "apertium-transfer", "apertium-pretransfer", "cg-proc", "lrx-proc")))
    assert not any(map(is_apertium, ("ffmpeg", "python3", "sleep")))


@pytest.mark.skipif(shutil.which("lt-proc") is None, reason="Apertium not installed")
def test_sampler_counts_the_apertium_processes_and_their_cpu() -> None:
    from relay.translation import CaptionTranslator

    translator = CaptionTranslator()
    try:
        translator.warm_up()
        sampler = ResourceSampler(os.getpid())
        sampler.start()
        for _ in range(20):
            translator.translate("The meeting will start as soon as the chair arrives.", "en")
        figures = sampler.stop()
    finally:
        translator.close()
    assert figures["apertium_processes"] > 0
    assert figures["cpu_s"]["apertium"] > 0
    assert figures["peak_rss_mb"]["relay_and_apertium"] > figures["peak_rss_mb"]["relay_process"]


async def test_a_reconnecting_measuring_viewer_resumes_after_its_server_restarts() -> None:
    hub = CaptionHub()
    hub.source_state(SourceState.CONNECTED)
    loop = asyncio.get_running_loop()
    async with serve(create_app(hub), "127.0.0.1", 0, shutdown_timeout_s=1.0) as url:
        probe = MeasuringViewer(url.replace("http", "ws", 1) + "/ws", reconnect_after_s=0.2)
        probe.start()
        while hub.viewer_count == 0:
            await asyncio.sleep(0.02)
        for n in range(1, 4):
            hub.publish(_final(n))
        await asyncio.sleep(0.3)
    for n in range(4, 6):  # while the server is away
        hub.publish(_final(n))
    await asyncio.sleep(0.5)
    async with serve(create_app(hub), "127.0.0.1", int(url.rsplit(":", 1)[1]), shutdown_timeout_s=1.0):
        while hub.viewer_count == 0:
            await asyncio.sleep(0.02)
        hub.publish(_final(6))
        hub.end_session("done")
        assert await loop.run_in_executor(None, probe.ended.wait, 10.0)
        result = probe.stop()
    messages = [a.message for a in result.arrivals]
    assert [m["seq"] for m in messages if m["type"] == "final"] == [1, 2, 3, 4, 5, 6]
    assert [m["resumed"] for m in messages if m["type"] == "hello"] == [False, True]
    assert result.reconnections >= 1
