"""HlsService's placing of followed segments on stream time, and its fixed segmentation.

The follower's updates are handed in directly (what PlaylistFollower would call back with); the
real follower, on a real live HLS server, is in tests/test_hls_player.py and test_hls_restart.py.
"""

from __future__ import annotations

from relay.hls.follow import PlaylistUpdate, SourceSegment
from relay.hls.pts import TICK_HZ, PtsMap
from relay.hls.service import HlsService, HlsSettings
from relay.tracks.model import TrackCaption


async def _following(pts: PtsMap) -> HlsService:
    service = HlsService(("en",), pts, HlsSettings("pipe:0"))
    await service.start_presentation("pipe:0")
    service._fixed = None  # as if following a playlist: spans come from _on_update
    return service


async def test_segments_of_an_earlier_run_of_the_clock_are_left_out_and_captions_go_on() -> None:
    pts = PtsMap()
    service = await _following(pts)
    old = 2 * 3600 * TICK_HZ  # the encoder ran two hours, then restarted its clock at 0
    segments = [SourceSegment(sn, 6.0, 0, None, old + sn * 6 * TICK_HZ) for sn in range(3)]
    segments += [SourceSegment(3 + k, 6.0, 1, None, k * 6 * TICK_HZ) for k in range(3)]
    await service._on_update(PlaylistUpdate(segments, 0, 6, False))
    for n in range(200):  # the relay hears the new run from its second segment on
        pts.observe(n * 0.1, 6 * TICK_HZ + n * 9000)
        service.advance(n * 0.1, n * 0.1)
    assert service.window is not None
    assert [span.sn for span in service.window.segments] == [3, 4, 5]


async def test_without_a_playlist_segments_are_fixed_slices_and_the_end_closes_them_all() -> None:
    pts = PtsMap()
    now = [100.0]
    service = HlsService(("en",), pts, HlsSettings("rtmp://ingest.example/live/KEY", fixed_segment_s=6.0),
                         clock=lambda: now[0])
    await service.start_presentation("rtmp://ingest.example/live/KEY")
    service.track(1, TrackCaption("en", "floor", "floor", "en:u1", "Good morning.", 7.0, 8.5, ("u1",), "en"))
    service.advance(13.0, 14.0)
    window = service.window
    assert window is not None and [s.sn for s in window.segments] == [0, 1]
    assert b"Good morning." in (window.body("en", window.presentation, 1) or b"")
    service.source_ended()
    service.advance(14.0, 14.0)
    # The last segment is listed live first: players reloading the playlist load it before the end.
    assert [s.sn for s in window.segments] == [0, 1, 2] and not window.ended
    assert "#EXT-X-ENDLIST" not in window.playlist("en")
    now[0] += 5.9
    service.advance(14.0, 14.0)
    assert not window.ended
    now[0] += 0.1  # a target duration (6 s) after it was listed
    service.advance(14.0, 14.0)
    assert window.ended and [s.sn for s in window.segments] == [0, 1, 2]
    assert window.playlist("en").rstrip().endswith("#EXT-X-ENDLIST")
    assert window.master is None and "--hls-master" in window.master_error


async def test_a_stopping_relay_ends_the_presentation_at_once() -> None:
    service = HlsService(("en",), PtsMap(), HlsSettings("pipe:0", fixed_segment_s=6.0))
    await service.start_presentation("pipe:0")
    service.track(1, TrackCaption("en", "floor", "floor", "en:u1", "Thank you.", 1.0, 2.0, ("u1",), "en"))
    service.finish(3.0)
    window = service.window
    assert window is not None and window.ended and [s.sn for s in window.segments] == [0]
    assert b"Thank you." in (window.body("en", window.presentation, 0) or b"")
