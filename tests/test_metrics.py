"""/metrics: prometheus_client's exposition of a relay's own registry, served by the control routes."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from relay.control import add_control_routes
from relay.pipeline import PipelineSettings
from relay.server import create_app, serve
from relay.service import RelayService
from relay.source import SourceSettings
from tests.test_hub import FakeViewer
from tests.test_store import meeting_caption

TOKEN = "operator-token"


def new_service(data_dir: Path | None = None) -> RelayService:
    return RelayService(PipelineSettings(source=SourceSettings(url="unused.flac")), data_dir=data_dir)


def families(text: str) -> dict[str, tuple[str, dict[str, float]]]:
    """Metric family name -> (type, {sample name: value}) for unlabelled samples."""
    return {
        family.name: (family.type, {s.name: s.value for s in family.samples if not s.labels})
        for family in text_string_to_metric_families(text)
    }


async def test_metrics_page_has_the_documented_names_and_process_metrics(tmp_path: Path) -> None:
    service = new_service(tmp_path)
    service.hub.publish(meeting_caption(1))
    await service.caption(meeting_caption(2))
    app = create_app(service.hub)
    add_control_routes(app, service, TOKEN)
    async with serve(app) as url, aiohttp.ClientSession() as session:
        async with session.get(url + "/metrics") as response:
            assert response.status == 200 and response.content_type == "text/plain"
            text = await response.text()
        async with session.get(url + "/metrics", headers={"Accept": "application/openmetrics-text"}) as response:
            assert response.content_type == "application/openmetrics-text"
            assert (await response.text()).rstrip().endswith("# EOF")
    found = families(text)
    expected = {
        "relay_caption_delay_seconds": "histogram", "relay_decode_seconds": "histogram",
        "relay_translation_seconds": "histogram", "relay_realtime_lag_seconds": "gauge", "relay_viewers": "gauge",
        "relay_viewers_dropped": "counter", "relay_source_reconnects": "counter",
        "relay_captions_published": "counter", "relay_store_ok": "gauge", "relay_store_pending_finals": "gauge",
        "relay_store_failures": "counter", "process_resident_memory_bytes": "gauge",
    }  # fmt: skip
    assert {name: found[name][0] for name in expected} == expected
    assert found["relay_captions_published"][1]["relay_captions_published_total"] == 1.0
    assert found["relay_store_ok"][1]["relay_store_ok"] == 1.0
    service.close()


async def test_dropped_viewers_are_counted_as_a_counter() -> None:
    service = new_service()
    for _ in range(3):
        slow = FakeViewer(capacity=1)  # takes the hello, refuses the next caption
        await service.hub.attach(slow)
        service.hub.publish(meeting_caption(1, kind="partial"))
        assert slow.dropped is not None
    kind, samples = families(service.metrics.render())["relay_viewers_dropped"]
    assert (kind, samples["relay_viewers_dropped_total"]) == ("counter", 3.0)


def test_two_relays_in_one_process_keep_their_own_metrics() -> None:
    first, second = new_service(), new_service()
    first.metrics.captions_published.inc(5)
    assert families(first.metrics.render())["relay_captions_published"][1]["relay_captions_published_total"] == 5.0
    assert families(second.metrics.render())["relay_captions_published"][1]["relay_captions_published_total"] == 0.0
