"""CLI entry points: stdin→stdout translation, direction listing, package installs."""

from __future__ import annotations

import io
import socket
from pathlib import Path

import pytest

from relay.translation import apertium
from relay.translation.commands import (
    TranslationInstallError,
    install_translation_file,
    install_translation_from_index,
    installed_directions,
    run_translate,
)
from tests.argos_fixture import build_argos_package

needs_apertium = pytest.mark.skipif(not apertium.apertium_installed(), reason="apertium not installed")


class FlushCounter(io.StringIO):
    """A text stream that records how many lines were written at each flush."""

    def __init__(self) -> None:
        super().__init__()
        self.flushed_lines: list[int] = []

    def flush(self) -> None:
        self.flushed_lines.append(self.getvalue().count("\n"))
        super().flush()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@needs_apertium
def test_translate_writes_one_line_per_input_line() -> None:
    stdout = io.StringIO()
    code = run_translate("en", "es", io.StringIO("Good morning, my friends.\nThank you.\n"), stdout)
    assert (code, stdout.getvalue()) == (0, "Buenos días, mis amigos.\nGracias.\n")


@needs_apertium
def test_translate_flushes_after_every_line() -> None:
    stdout = FlushCounter()
    run_translate("en", "fr", io.StringIO("Hello.\nThank you.\nGood bye.\n"), stdout)
    assert stdout.flushed_lines == [1, 2, 3]


def test_translate_without_route_fails_with_a_message() -> None:
    stderr = io.StringIO()
    code = run_translate("ja", "xx", io.StringIO("こんにちは\n"), io.StringIO(), stderr)
    assert code == 2 and "no translation route ja→xx" in stderr.getvalue()


@needs_apertium
def test_directions_list_the_six_caption_directions(tmp_path: Path) -> None:
    rows = {row.direction: (row.engine, row.route) for row in installed_directions(tmp_path)}
    assert rows == {
        "en-fr": ("apertium+apertium", "en→es→fr"),
        "en-es": ("apertium", "en→es"),
        "fr-en": ("apertium+apertium", "fr→es→en"),
        "fr-es": ("apertium", "fr→es"),
        "es-en": ("apertium", "es→en"),
        "es-fr": ("apertium", "es→fr"),
    }


@needs_apertium
def test_directions_show_an_installed_package(tmp_path: Path) -> None:
    install_translation_file(build_argos_package(tmp_path, "en", "es"), tmp_path / "dir")
    rows = {row.direction: row.engine for row in installed_directions(tmp_path / "dir")}
    assert (rows["en-es"], rows["en-fr"]) == ("argos", "argos+apertium")


def test_install_file_reports_the_direction(tmp_path: Path) -> None:
    message = install_translation_file(build_argos_package(tmp_path, "en", "es"), tmp_path / "dir")
    assert "en→es" in message and "\n" not in message


def test_install_file_rejects_garbage_with_one_line(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.argosmodel"
    bogus.write_bytes(b"\x00" * 100)
    with pytest.raises(TranslationInstallError) as caught:
        install_translation_file(bogus, tmp_path / "dir")
    assert "\n" not in str(caught.value)


def test_install_missing_file_raises_install_error(tmp_path: Path) -> None:
    with pytest.raises(TranslationInstallError, match="does not exist"):
        install_translation_file(tmp_path / "missing.argosmodel", tmp_path / "dir")


def test_install_from_index_offline_fails_with_one_line(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}/index.json"
    with pytest.raises(TranslationInstallError, match="cannot reach the Argos package index") as caught:
        install_translation_from_index("en", "fr", tmp_path, url=url)
    assert "\n" not in str(caught.value)
    assert not any(tmp_path.iterdir())
