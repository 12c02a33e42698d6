"""Viewer downloads of the transcript: a real relay service, its SQLite transcript and a real server."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import srt
import webvtt
from aiohttp import web

from relay.control import add_control_routes
from relay.export import export
from relay.pipeline import PipelineSettings
from relay.server import create_app, serve
from relay.service import RelayService
from relay.source import SourceSettings
from relay.store import TranscriptStore, transcript_path
from relay.transcript_routes import FILES_KEY, add_transcript_routes
from tests.test_store import meeting_caption

TOKEN = "operator-secret"
VIEWER_KEY = "viewer-key"
REPO = Path(__file__).resolve().parent.parent


@dataclass
class Served:
    service: RelayService
    app: web.Application
    url: str
    data_dir: Path
    session: aiohttp.ClientSession


async def served(data_dir: Path, viewer_key: str = "") -> AsyncIterator[Served]:
    """A relay service on `data_dir` (nothing transcribing), served as `relay serve` wires it."""
    service = RelayService(PipelineSettings(source=SourceSettings(url="unused.flac")), data_dir=data_dir)
    app = create_app(service.hub)
    add_control_routes(app, service, TOKEN, viewer_key)
    add_transcript_routes(app, transcript_path(data_dir))
    jar = aiohttp.CookieJar(unsafe=True)  # accept cookies from 127.0.0.1, as browsers do
    try:
        async with serve(app, shutdown_timeout_s=2.0) as url, aiohttp.ClientSession(cookie_jar=jar) as session:
            yield Served(service, app, url, data_dir, session)
    finally:
        service.close()


@pytest.fixture
async def relay(tmp_path: Path) -> AsyncIterator[Served]:
    async for running in served(tmp_path):
        yield running


@pytest.fixture
async def private_relay(tmp_path: Path) -> AsyncIterator[Served]:
    async for running in served(tmp_path, VIEWER_KEY):
        yield running


def publish_meeting(relay: Served, first: int, last: int) -> None:
    for n in range(first, last + 1):
        relay.service.hub.publish(meeting_caption(n))


def exported(data_dir: Path, fmt: str, lang: str | None) -> str:
    with TranscriptStore(transcript_path(data_dir), readonly=True) as store:
        return export(store, fmt, lang)  # type: ignore[arg-type]


async def download(relay: Served, path: str) -> tuple[int, str, Mapping[str, str]]:
    async with relay.session.get(relay.url + path, allow_redirects=False) as response:
        return response.status, await response.text(encoding="utf-8"), response.headers


@pytest.mark.parametrize("fmt", ["txt", "srt", "vtt"])
async def test_a_download_is_the_export_of_the_stored_transcript(relay: Served, fmt: str) -> None:
    publish_meeting(relay, 1, 8)
    status, body, headers = await download(relay, f"/transcript.{fmt}?lang=fr")
    assert status == 200
    assert body == exported(relay.data_dir, fmt, "fr")
    assert "La conférence débutera dès" in body  # spoken in French: a cue in every format
    assert meeting_caption(1).translations["fr"].split()[0] in body
    assert headers["Content-Disposition"].startswith('attachment; filename="captions-')
    assert headers["Content-Disposition"].endswith(f'-fr.{fmt}"')
    assert headers["Content-Type"].endswith("charset=utf-8")
    assert "Content-Security-Policy" in headers


async def test_spoken_language_is_orig_or_no_lang(relay: Served) -> None:
    publish_meeting(relay, 1, 4)
    _, plain, headers = await download(relay, "/transcript.srt")
    _, orig, _ = await download(relay, "/transcript.srt?lang=orig")
    assert plain == orig == exported(relay.data_dir, "srt", None)
    assert headers["Content-Disposition"].endswith('-original.srt"')


async def test_a_download_holds_the_finals_published_since_the_last_one(relay: Served) -> None:
    publish_meeting(relay, 1, 3)
    _, before, _ = await download(relay, "/transcript.vtt?lang=es")
    publish_meeting(relay, 4, 5)
    _, after, _ = await download(relay, "/transcript.vtt?lang=es")
    assert len(webvtt.from_string(before, strict=True).captions) == 3
    assert len(webvtt.from_string(after, strict=True).captions) == 5
    assert after == exported(relay.data_dir, "vtt", "es")


async def test_markup_and_empty_finals_follow_the_export_rules(relay: Served) -> None:
    publish_meeting(relay, 1, 4)  # the fourth says <script>
    relay.service.hub.publish(dataclasses.replace(meeting_caption(5), text="", translations={}))
    _, body, _ = await download(relay, "/transcript.vtt")
    cues = webvtt.from_string(body, strict=True).captions
    assert len(cues) == 4
    assert "<script>" not in body and "&lt;script&gt;" in body
    _, subrip, _ = await download(relay, "/transcript.srt")
    assert "<script>alert(1)</script>" in list(srt.parse(subrip))[3].content


async def test_an_empty_transcript_gives_valid_empty_files(relay: Served) -> None:
    _, vtt, _ = await download(relay, "/transcript.vtt?lang=fr")
    assert webvtt.from_string(vtt, strict=True).captions == []
    status, subrip, _ = await download(relay, "/transcript.srt")
    assert (status, subrip) == (200, "")


async def test_a_bad_language_or_format_is_refused(relay: Served) -> None:
    status, body, _ = await download(relay, "/transcript.srt?lang=<script>")
    assert status == 400 and "lang must be a language code" in body and "\n" not in body.strip()
    assert (await download(relay, "/transcript.docx"))[0] == 404
    assert (await download(relay, "/transcript.json"))[0] == 404


async def test_a_private_event_needs_the_viewer_key_to_download(private_relay: Served) -> None:
    publish_meeting(private_relay, 1, 2)
    status, body, _ = await download(private_relay, "/transcript.srt?lang=fr")
    assert status == 401 and "private" in body
    status, body, _ = await download(private_relay, f"/transcript.srt?lang=fr&key={VIEWER_KEY}")
    assert status == 200 and len(list(srt.parse(body))) == 2
    assert (await download(private_relay, "/transcript.srt?lang=fr&key=wrong"))[0] == 401
    assert (await download(private_relay, f"/?key={VIEWER_KEY}"))[0] == 302  # sets the viewer cookie
    status, body, _ = await download(private_relay, "/transcript.txt?lang=fr")
    assert status == 200 and body == exported(private_relay.data_dir, "txt", "fr")


async def test_relay_export_on_the_command_line_gives_the_same_file(relay: Served) -> None:
    publish_meeting(relay, 1, 6)
    _, body, _ = await download(relay, "/transcript.srt?lang=es")
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONIOENCODING": "utf-8"}
    command = [sys.executable, "-m", "relay", "export", "--data", str(relay.data_dir), "--format", "srt", "--lang", "es"]
    result = subprocess.run(command, capture_output=True, env=env, timeout=60, check=True)
    assert result.stdout.decode("utf-8") == body


async def test_many_languages_asked_keep_the_file_cache_bounded(relay: Served) -> None:
    publish_meeting(relay, 1, 2)
    for lang in ("aa", "ab", "ac", "ad", "ae", "af", "ag", "ah", "ai", "aj", "ak", "al", "am", "an"):
        status, body, _ = await download(relay, f"/transcript.txt?lang={lang}")
        assert status == 200 and body == exported(relay.data_dir, "txt", None)  # unknown: as spoken
    assert relay.app[FILES_KEY].cached_files == 12
