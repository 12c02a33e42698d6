"""Shared fixtures: the real speech data and the real Whisper model, loaded once."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from faster_whisper.audio import decode_audio

from relay.modelstore import resolve_model
from relay.whisper_engine import DecodeSettings, WhisperEngine

pytest_plugins = ["tests.support.fixtures"]

SPEECH_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "speech"
MEETING = SPEECH_DIR / "meeting.flac"


def load_audio(path: Path) -> np.ndarray:
    """16 kHz mono float32, as the pipeline sees it."""
    return decode_audio(str(path))


@pytest.fixture(scope="session")
def speech_dir() -> Path:
    if not SPEECH_DIR.is_dir():
        pytest.fail(f"real speech data missing: {SPEECH_DIR}")
    return SPEECH_DIR


@pytest.fixture(scope="session")
def clips(speech_dir: Path) -> list[dict]:
    return json.loads((speech_dir / "clips.json").read_text(encoding="utf-8"))["clips"]


@pytest.fixture(scope="session")
def meeting_events(speech_dir: Path) -> list[dict]:
    return json.loads((speech_dir / "meeting.json").read_text(encoding="utf-8"))["events"]


@pytest.fixture(scope="session")
def meeting_audio(speech_dir: Path) -> np.ndarray:
    return load_audio(speech_dir / "meeting.flac")


@pytest.fixture(scope="session")
def base_engine() -> WhisperEngine:
    engine = WhisperEngine(resolve_model("base"), DecodeSettings())
    yield engine
    engine.close()
