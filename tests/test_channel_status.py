"""Per-channel status and metrics of an interpreted event, and the floor's language options."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
from faster_whisper.audio import decode_audio
from prometheus_client.parser import text_string_to_metric_families

from relay.event import BoothInput
from relay.messages import Caption, SourceEvent, SourceState
from relay.pipeline import PipelineSettings
from relay.runner import floor_languages
from relay.source import SourceSettings
from relay.whisper_engine import Context, allowed_probs

SECRET = "s3cr3t-key"
EVENT_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "speech" / "interpretation"


def booth_service():
    from relay.service import RelayService

    floor = PipelineSettings(SourceSettings(url=f"rtmp://ingest/live/floor?key={SECRET}"))
    booth = PipelineSettings(SourceSettings(url=f"srt://ingest:9001?passphrase={SECRET}"), channel="booth-en",
                             languages=("en",))
    return RelayService(floor, booths=[BoothInput("en", booth)])


def labelled(text: str, family: str) -> dict[str, float]:
    for fam in text_string_to_metric_families(text):
        if fam.name == family:
            return {s.labels["channel"]: s.value for s in fam.samples if s.name.endswith(("_total", "_sum")) or
                    fam.type == "gauge"}
    return {}


async def test_status_and_metrics_report_every_channel_without_secrets():
    service = booth_service()
    await service.caption(Caption("final", "booth-en-u1", "en", "Press one.", 1.0, 3.5, 4.0, channel="booth-en"))
    await service.caption(Caption("final", "u1", "fr", "Appuyez sur un.", 0.5, 2.0, 3.0))
    await service._on_source_event("booth-en", SourceEvent(SourceState.RECONNECTING, f"lost srt://ingest:9001?passphrase={SECRET}"))
    status = service.status()
    assert set(status["channels"]) == {"floor", "booth-en"}
    booth = status["channels"]["booth-en"]
    assert booth["source"]["state"] == "reconnecting" and SECRET not in str(status)
    assert booth["source"]["url"].startswith("srt://ingest:9001")
    assert booth["speech_s"] == 2.5 and booth["finals"] == 1 and booth["caption_delay_s"] is not None
    assert status["channels"]["floor"]["finals"] == 1
    page = service.metrics.render()
    assert labelled(page, "relay_channel_speech_seconds") == {"booth-en": 2.5, "floor": 1.5}
    assert labelled(page, "relay_channel_source_up")["booth-en"] == 0.0
    assert service.hub.channels == {"floor": None, "booth-en": "en"}
    assert service.hub.tracks == ("en", "fr", "es", "original")


def test_languages_option():
    assert floor_languages(argparse.Namespace(languages=None)) == ("en", "fr", "es")
    assert floor_languages(argparse.Namespace(languages="any")) is None
    assert floor_languages(argparse.Namespace(languages="FR, de,fr")) == ("fr", "de")


def test_detection_keeps_the_most_probable_allowed_language():
    ranked = [("<|hi|>", 0.9), ("<|en|>", 0.06), ("<|es|>", 0.03), ("<|fr|>", 0.01)]
    assert allowed_probs(ranked, None)["hi"] == 0.9
    probs = allowed_probs(ranked, ("es", "fr"))
    assert set(probs) == {"es", "fr"} and probs["es"] == pytest.approx(0.75)


@pytest.mark.parametrize("only, expected", [(("es",), {"es"}), (("en", "es"), {"en", "es"})])
def test_the_real_model_decodes_in_the_allowed_languages(base_engine, only, expected):
    french = decode_audio(str(EVENT_DIR / "floor.flac"))[int(86.2 * 16000):int(89.5 * 16000)]
    decoded = base_engine.decode_blocking(french, True, Context(None, only=only))
    assert decoded.lang in expected and decoded.text
    free = base_engine.decode_blocking(french, True, Context(None))
    assert free.lang == "fr"
