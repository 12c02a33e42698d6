"""Stream time to presentation ticks and back: anchors, jumps, the 33-bit wrap and a restarted clock."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.hls.pts import TICK_HZ, TICK_WRAP, Anchor, PtsMap, signed_ticks

MS = TICK_HZ // 1000  # ticks per millisecond


def observed(*samples: tuple[float, int]) -> PtsMap:
    """A map that saw `samples` (stream second, tick) in order."""
    pts = PtsMap()
    for stream_s, tick in samples:
        pts.observe(stream_s, tick)
    return pts


def test_timestamps_running_with_stream_time_make_one_anchor() -> None:
    pts = observed(*((n * 0.02, 1_000 + n * 20 * MS) for n in range(500)))
    assert pts.anchors == [Anchor(0.0, 1_000)]


def test_timestamps_off_by_20_ms_or_less_make_no_new_anchor() -> None:
    pts = observed((0.0, 0), (1.0, TICK_HZ + 20 * MS), (2.0, 2 * TICK_HZ - 20 * MS))
    assert pts.anchors == [Anchor(0.0, 0)]


def test_timestamps_that_jump_more_than_20_ms_make_a_new_anchor() -> None:
    pts = observed((0.0, 0), (1.0, TICK_HZ + 21 * MS), (2.0, 2 * TICK_HZ + 21 * MS), (3.0, 3 * TICK_HZ))
    assert pts.anchors == [Anchor(0.0, 0), Anchor(1.0, TICK_HZ + 21 * MS), Anchor(3.0, 3 * TICK_HZ)]


def test_samples_without_timestamps_or_older_than_the_last_anchor_are_ignored() -> None:
    pts = observed((5.0, 450_000), (6.0, None), (4.0, 9_999_999))  # type: ignore[arg-type]
    assert pts.anchors == [Anchor(5.0, 450_000)]


def test_ticks_are_kept_modulo_the_wrap() -> None:
    assert observed((0.0, TICK_WRAP + 77)).anchors == [Anchor(0.0, 77)]


def test_tick_at_and_stream_at_round_trip_within_a_run() -> None:
    pts = observed((2.0, 5_000_000))
    for stream_s in (2.0, 2.5, 10.125, 3600.0):
        tick = pts.tick_at(stream_s)
        assert tick == 5_000_000 + round((stream_s - 2.0) * TICK_HZ)
        assert pts.stream_at(tick) == pytest.approx(stream_s, abs=1e-9)


def test_each_run_maps_through_its_own_anchor() -> None:
    pts = observed((0.0, 0), (10.0, 15 * TICK_HZ))  # 5 s of the source's timeline skipped at stream 10 s
    assert pts.tick_at(9.0) == 9 * TICK_HZ
    assert pts.tick_at(11.0) == 16 * TICK_HZ
    assert pts.stream_at(9 * TICK_HZ) == pytest.approx(9.0)
    assert pts.stream_at(16 * TICK_HZ) == pytest.approx(11.0)


def test_a_clock_wrapping_past_2_to_the_33_maps_on_without_a_seam() -> None:
    wrap_s = 20.0  # stream second at which the presentation clock passes 2**33
    first_tick = TICK_WRAP - round(wrap_s * TICK_HZ)
    pts = observed(*((n * 0.5, (first_tick + n * TICK_HZ // 2) % TICK_WRAP) for n in range(80)))
    assert pts.anchors == [Anchor(0.0, first_tick)]  # the wrap is no jump
    assert pts.tick_at(wrap_s - 1.0) == TICK_WRAP - TICK_HZ
    assert pts.tick_at(wrap_s) == 0
    assert pts.tick_at(wrap_s + 1.0) == TICK_HZ
    assert pts.stream_at(TICK_WRAP - TICK_HZ) == pytest.approx(wrap_s - 1.0)
    assert pts.stream_at(TICK_HZ) == pytest.approx(wrap_s + 1.0)
    steps = [signed_ticks(pts.tick_at(s + 0.01) - pts.tick_at(s)) for s in (wrap_s - 0.02, wrap_s - 0.01, wrap_s)]
    assert steps == [10 * MS] * 3


def test_a_restarted_clock_maps_new_ticks_through_the_newest_anchor() -> None:
    old_tick = 3_000_000_000  # about 9 hours into the source's timeline
    pts = observed((0.0, old_tick), (30.0, old_tick + 30 * TICK_HZ), (31.0, 0), (32.0, TICK_HZ))
    assert pts.anchors == [Anchor(0.0, old_tick), Anchor(31.0, 0)]
    assert pts.stream_at(TICK_HZ) == pytest.approx(32.0)
    assert pts.stream_at(10 * TICK_HZ) == pytest.approx(41.0)
    assert pts.tick_at(32.0) == TICK_HZ
    assert pts.tick_at(15.0) == old_tick + 15 * TICK_HZ


def test_a_tick_just_before_a_run_belongs_to_it_within_the_slack() -> None:
    pts = observed((0.0, 0), (10.0, 100 * TICK_HZ))
    assert pts.stream_at(100 * TICK_HZ - TICK_HZ // 2) == pytest.approx(9.5)  # video before its audio
    assert pts.stream_at(100 * TICK_HZ - TICK_HZ // 2, slack_s=0.0) == pytest.approx(99.5)  # first run extended


def test_stream_at_before_any_anchor_is_none() -> None:
    assert PtsMap().stream_at(123_456) is None


def test_tick_at_before_any_anchor_is_stream_time_itself() -> None:
    assert PtsMap().tick_at(2.5) == round(2.5 * TICK_HZ)


def test_times_before_the_first_anchor_extrapolate_backwards() -> None:
    pts = observed((5.0, 900_000))
    assert pts.stream_at(900_000 - 9 * TICK_HZ) == pytest.approx(-4.0)
    assert pts.tick_at(1.0) == 900_000 - 4 * TICK_HZ


def test_a_source_that_jumps_all_the_time_keeps_the_newest_anchors() -> None:
    pts = observed(*((float(n), n * 2 * TICK_HZ) for n in range(5_000)))
    assert len(pts.anchors) == 4_096
    assert pts.anchors[-1] == Anchor(4_999.0, 4_999 * 2 * TICK_HZ)


@given(
    first_tick=st.integers(0, TICK_WRAP - 1),
    runs=st.lists(st.tuples(st.floats(1.0, 600.0), st.floats(1.5, 120.0)), min_size=1, max_size=8),
    where=st.floats(0.0, 1.0, exclude_max=True),
    run_index=st.integers(0, 7),
)
def test_round_trip_across_forward_jumps_and_the_wrap(
    first_tick: int, runs: list[tuple[float, float]], where: float, run_index: int
) -> None:
    """Runs of audio separated by forward jumps (audio skipped) map there and back, wherever the wrap falls."""
    pts, stream_s, tick, bounds = PtsMap(), 0.0, first_tick, []
    for duration_s, jump_s in runs:
        pts.observe(stream_s, tick)
        bounds.append((stream_s, stream_s + duration_s))
        stream_s += duration_s
        tick = (tick + round((duration_s + jump_s) * TICK_HZ)) % TICK_WRAP
    assert len(pts.anchors) == len(runs)
    start, end = bounds[run_index % len(bounds)]
    inside = start + where * (end - start)
    assert pts.stream_at(pts.tick_at(inside)) == pytest.approx(inside, abs=1e-5)
