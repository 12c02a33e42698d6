"""`relay export --all DIR [--zip]`: every language of the event in every format, with a README, for the archive."""

from __future__ import annotations

import json
import subprocess
import zipfile

import pytest
import srt
import webvtt

from relay.export import FORMATS, export
from relay.store import TranscriptStore, transcript_path
from tests.test_export_tracks import record_event
from tests.test_source_lifecycle import RELAY

LANGUAGES = ("original", "en", "es", "fr")  # the event's tracks


@pytest.fixture
def data(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    with TranscriptStore(transcript_path(data)) as store:
        record_event(store)  # floor, booths, MT: three passages, four tracks
    return data


def relay(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([RELAY, *args], capture_output=True, text=True, timeout=60)


def test_the_archive_holds_every_language_in_every_format_as_export_gives_it(data, tmp_path):
    target = tmp_path / "ga2026-record"
    result = relay("export", "--all", str(target), "--zip", "--data", str(data))
    assert result.returncode == 0, result.stderr
    expected = {f"{lang}.{fmt}" for lang in LANGUAGES for fmt in FORMATS} | {"README.txt"}
    assert {path.name for path in target.iterdir()} == expected
    with TranscriptStore(transcript_path(data), readonly=True) as store:
        finals = store.all_finals()
    for lang in LANGUAGES:
        for fmt in FORMATS:
            assert (target / f"{lang}.{fmt}").read_text(encoding="utf-8") == export(finals, fmt, lang), (lang, fmt)
        cues = webvtt.from_string((target / f"{lang}.vtt").read_text(encoding="utf-8"))
        assert len(list(srt.parse((target / f"{lang}.srt").read_text(encoding="utf-8")))) == len(cues) == 3
        assert len(json.loads((target / f"{lang}.json").read_text(encoding="utf-8"))) == 3
    assert "Bonjour à tous." in (target / "fr.txt").read_text(encoding="utf-8")
    # the command line's own export of one of them, byte for byte
    printed = relay("export", "--format", "vtt", "--lang", "fr", "--data", str(data))
    assert (target / "fr.vtt").read_text(encoding="utf-8") == printed.stdout
    readme = (target / "README.txt").read_text(encoding="utf-8")
    for lang in LANGUAGES:
        assert f"{lang}.*" in readme
    for fmt in FORMATS:
        assert f".{fmt}" in readme
    with zipfile.ZipFile(tmp_path / "ga2026-record.zip") as packed:
        assert sorted(packed.namelist()) == sorted(f"ga2026-record/{name}" for name in expected)
        assert packed.read("ga2026-record/es.srt") == (target / "es.srt").read_bytes()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left behind


def test_an_existing_directory_with_files_is_never_overwritten(data, tmp_path):
    target = tmp_path / "record"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    result = relay("export", "--all", str(target), "--data", str(data))
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and "not an empty directory" in result.stderr  # before any log
    assert [p.name for p in target.iterdir()] == ["notes.txt"]


def test_an_unwritable_place_is_one_line_and_leaves_nothing(data, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = relay("export", "--all", str(blocker / "record"), "--data", str(data))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "cannot write the archive" in result.stderr.strip().splitlines()[-1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "data"]


@pytest.mark.parametrize("extra", [["--format", "srt"], ["--lang", "fr"]])
def test_all_with_one_format_or_language_is_a_usage_error(data, tmp_path, extra):
    result = relay("export", "--all", str(tmp_path / "record"), *extra, "--data", str(data))
    assert result.returncode == 2 and "leave out --format and --lang" in result.stderr
    assert not (tmp_path / "record").exists()


def test_an_event_without_tracks_archives_its_spoken_and_translated_languages(tmp_path):
    from relay.hub import CaptionHub
    from relay.messages import Caption
    from relay.store import SqliteBacklog

    data = tmp_path / "data"
    data.mkdir()
    with TranscriptStore(transcript_path(data)) as store:
        backlog = SqliteBacklog(store)
        hub = CaptionHub(store=backlog, last_seq=backlog.last_seq, session=backlog.session)
        hub.publish(Caption(kind="final", id="u1", lang="en", text="We agree <b>&", start=1.0, end=2.0, wall=2.5,
                            translations={"fr": "Nous sommes d'accord", "es": "Estamos de acuerdo"}))
        backlog.close()
    target = tmp_path / "record"
    assert relay("export", "--all", str(target), "--data", str(data)).returncode == 0
    assert {p.name.split(".")[0] for p in target.iterdir()} == {"original", "en", "fr", "es", "README"}
    assert "Estamos de acuerdo" in (target / "es.txt").read_text(encoding="utf-8")
    assert "We agree &lt;b&gt;&amp;" in (target / "original.vtt").read_text(encoding="utf-8")


def test_an_existing_zip_is_never_overwritten_and_the_archive_is_readable_by_others(data, tmp_path) -> None:
    (tmp_path / "record.zip").write_bytes(b"an older archive")
    result = relay("export", "--all", str(tmp_path / "record"), "--zip", "--data", str(data))
    assert result.returncode == 1 and "record.zip already exists" in result.stderr.strip().splitlines()[-1]
    assert (tmp_path / "record.zip").read_bytes() == b"an older archive" and not (tmp_path / "record").exists()
    assert relay("export", "--all", str(tmp_path / "other"), "--data", str(data)).returncode == 0
    mode = (tmp_path / "other").stat().st_mode & 0o777
    assert mode & 0o055 == 0o055  # umask 022 here: group and others may read and enter it (mkdtemp made it 0700)
