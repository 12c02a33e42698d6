"""The durable transcript: SQLite in WAL mode, exactly once, surviving kill -9; the hub backlog over it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from relay.hub import CaptionHub
from relay.messages import Caption
from relay.protocol import Frame, encode_caption
from relay.store import SqliteBacklog, TranscriptError, TranscriptStore, transcript_path

ROOT = Path(__file__).resolve().parent.parent

# Lines of the multilingual meeting in tests/../shared/speech, with real Apertium-style translations.
MEETING_LINES = (
    ("en", "And so my fellow Americans, ask not what your country can do for you.",
     "Et ainsi mes compatriotes américains, ne demandez pas ce que votre pays peut faire pour vous.",
     "Y así mis compatriotas americanos, no preguntéis qué puede hacer vuestro país por vosotros."),
    ("fr", "La conférence débutera dès l'arrivée du responsable.",
     "The conference will begin as soon as the manager arrives.",
     "La conferencia empezará en cuanto llegue el responsable."),
    ("es", "Clave incorrecta. Por favor, ingrese su número de agente.",
     "Incorrect password. Please, enter your agent number.",
     "Mot de passe incorrect. S'il vous plaît, entrez votre numéro d'agent."),
    ("en", "Type <script>alert(1)</script> & press enter — \"quotes\" too.",
     "Tapez <script>alert(1)</script> & appuyez sur entrée — « guillemets » aussi.",
     "Escriba <script>alert(1)</script> & pulse intro — «comillas» también."),
)  # fmt: skip


def meeting_caption(n: int, *, kind: str = "final") -> Caption:
    """The n-th final (n from 1) of an endless meeting cycling through MEETING_LINES."""
    lang, text, first, second = MEETING_LINES[(n - 1) % len(MEETING_LINES)]
    others = [code for code in ("en", "fr", "es") if code != lang]
    translations = {lang: text, others[0]: first, others[1]: second}
    start = 3.0 * (n - 1) + 0.25
    return Caption(
        kind=kind, id=f"u{n}", lang=lang, text=text, start=start, end=start + 2.5, wall=start + 3.1,
        translations=translations, mt={code: "apertium" for code in others}, mt_ms=4.2,
    )  # fmt: skip


def fill(store: TranscriptStore, count: int) -> list[Frame]:
    """Append finals 1..count as the hub would, returning their frames."""
    frames = []
    for seq in range(store.last_seq() + 1, store.last_seq() + count + 1):
        caption = meeting_caption(seq)
        frame = encode_caption(caption, seq)
        store.append(seq, caption, frame.text.decode())
        frames.append(frame)
    return frames


@pytest.fixture
def store(tmp_path: Path) -> Iterator[TranscriptStore]:
    with TranscriptStore(transcript_path(tmp_path)) as opened:
        yield opened


def test_round_trip_keeps_caption_and_exact_frame(store: TranscriptStore) -> None:
    frames = fill(store, 6)
    stored = store.all_finals()
    assert [final.seq for final in stored] == [1, 2, 3, 4, 5, 6]
    assert [final.caption for final in stored] == [meeting_caption(n) for n in range(1, 7)]
    assert [final.frame_json.encode() for final in stored] == [frame.text for frame in frames]
    assert store.frames_since(0) == frames


def test_database_is_in_wal_mode(store: TranscriptStore) -> None:
    fill(store, 1)
    assert store.journal_mode() == "wal"
    assert store.path.with_name(store.path.name + "-wal").exists()


def test_last_seq_and_session_survive_reopening(tmp_path: Path) -> None:
    path = transcript_path(tmp_path / "data")
    with TranscriptStore(path) as first:
        assert first.last_seq() == 0
        fill(first, 3)
        session = first.meta.session
    with TranscriptStore(path) as second:
        assert second.last_seq() == 3
        assert second.meta.session == session
        fill(second, 2)
        assert [final.seq for final in second.all_finals()] == [1, 2, 3, 4, 5]


def test_same_final_twice_is_stored_once(store: TranscriptStore) -> None:
    frames = fill(store, 3)
    store.append(2, meeting_caption(2), frames[1].text.decode())
    assert [final.seq for final in store.all_finals()] == [1, 2, 3]


def test_different_final_under_a_stored_seq_raises(store: TranscriptStore) -> None:
    fill(store, 3)
    other = meeting_caption(7)
    with pytest.raises(TranscriptError, match="different content"):
        store.append(2, other, encode_caption(other, 2).text.decode())
    assert store.all_finals()[1].caption == meeting_caption(2)


def test_gaps_and_partials_are_refused(store: TranscriptStore) -> None:
    fill(store, 2)
    with pytest.raises(TranscriptError, match="gap"):
        store.append(4, meeting_caption(4), encode_caption(meeting_caption(4), 4).text.decode())
    partial = meeting_caption(3, kind="partial")
    with pytest.raises(ValueError, match="partial"):
        store.append(3, partial, encode_caption(partial, 3).text.decode())
    assert store.last_seq() == 2


def test_finals_since_is_ordered_without_gaps(store: TranscriptStore) -> None:
    fill(store, 40)
    assert [final.seq for final in store.finals_since(25)] == list(range(26, 41))
    assert [final.seq for final in store.finals_since(10, limit=5)] == [11, 12, 13, 14, 15]
    assert store.finals_since(40) == []
    assert {final.caption.lang for final in store.all_finals("fr")} == {"fr"}


def test_reader_sees_finals_while_the_writer_runs(store: TranscriptStore) -> None:
    fill(store, 2)
    with TranscriptStore(store.path, readonly=True) as reader:
        fill(store, 3)
        assert reader.last_seq() == 5
        assert [final.seq for final in reader.finals_since(0)] == [1, 2, 3, 4, 5]
        with pytest.raises(TranscriptError, match="read-only"):
            reader.append(6, meeting_caption(6), "{}")


_WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from relay.protocol import encode_caption
    from relay.store import TranscriptStore
    from tests.test_store import meeting_caption

    store = TranscriptStore(Path(sys.argv[1]))
    seq = store.last_seq()
    while True:
        seq += 1
        caption = meeting_caption(seq)
        store.append(seq, caption, encode_caption(caption, seq).text.decode())
        print(seq, flush=True)
    """
)


def run_and_kill(path: Path, after: int) -> list[int]:
    """Run a writer process, SIGKILL it once it reported `after` finals; return every seq it reported."""
    command = [sys.executable, "-c", _WRITER, str(path)]
    with subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True) as writer:
        assert writer.stdout is not None
        reported = [int(writer.stdout.readline()) for _ in range(after)]
        os.kill(writer.pid, signal.SIGKILL)
        reported += [int(line) for line in writer.stdout.read().split()]
        assert writer.wait(timeout=10) == -signal.SIGKILL
    return reported


def test_every_reported_final_survives_kill_9_exactly_once(tmp_path: Path) -> None:
    path = transcript_path(tmp_path)
    # 700 finals: the WAL is checkpointed (every 500) while the writer keeps going.
    reported = run_and_kill(path, after=700)
    with TranscriptStore(path) as reopened:
        seqs = [final.seq for final in reopened.all_finals()]
        assert seqs == list(range(1, len(seqs) + 1))
        assert set(reported) <= set(seqs)
        assert reopened.last_seq() == len(seqs)
    # The event continues on the same data directory, numbering after the last final.
    resumed = run_and_kill(path, after=50)
    assert resumed[0] == len(seqs) + 1
    with TranscriptStore(path) as reopened:
        final_seqs = [final.seq for final in reopened.all_finals()]
        assert final_seqs == list(range(1, len(final_seqs) + 1))
        assert set(resumed) <= set(final_seqs)
        assert [final.caption for final in reopened.all_finals()[:4]] == [meeting_caption(n) for n in range(1, 5)]


class RecordingViewer:
    """Keeps every frame the hub sends."""

    def __init__(self) -> None:
        self.frames: list[Frame] = []

    def send(self, frame: Frame, replay: bool = False) -> bool:
        self.frames.append(frame)
        return True

    async def drained(self) -> bool:
        return True

    def drop(self, code: int, reason: str) -> None:
        raise AssertionError(f"dropped: {code} {reason}")


async def test_backlog_replays_what_the_hub_sent_from_memory_and_sqlite(store: TranscriptStore) -> None:
    backlog = SqliteBacklog(store, recent=10, max_replay=100)
    hub = CaptionHub(store=backlog)
    viewer = RecordingViewer()
    await hub.attach(viewer)
    for n in range(1, 31):
        hub.publish(meeting_caption(n, kind="partial"))
        hub.publish(meeting_caption(n))
    sent = [frame for frame in viewer.frames if frame.final]
    from_memory = await backlog.finals_since(22)
    from_sqlite = await backlog.finals_since(5)
    assert from_memory == sent[22:]
    assert from_sqlite == sent[5:]
    assert [final.frame_json.encode() for final in store.all_finals()] == [frame.text for frame in sent]
    backlog.close()


class CommittedCheckingViewer(RecordingViewer):
    """Checks, through a connection of its own, that each final is committed before it arrives."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.reader = TranscriptStore(path, readonly=True)

    def send(self, frame: Frame, replay: bool = False) -> bool:
        if frame.final:
            assert frame.seq is not None
            assert [final.frame_json.encode() for final in self.reader.finals_since(frame.seq - 1)] == [frame.text]
        return super().send(frame)


async def test_hub_commits_each_final_before_a_viewer_gets_it(store: TranscriptStore) -> None:
    backlog = SqliteBacklog(store)
    hub = CaptionHub(store=backlog)
    viewer = CommittedCheckingViewer(store.path)
    await hub.attach(viewer)
    for n in range(1, 6):
        hub.publish(meeting_caption(n))
    assert len(viewer.frames) == 6  # hello and five finals
    viewer.reader.close()
    backlog.close()


async def test_backlog_after_restart_resumes_numbering_and_session(tmp_path: Path) -> None:
    path = transcript_path(tmp_path)
    with TranscriptStore(path) as first:
        sent = fill(first, 12)
        session = first.meta.session
    with TranscriptStore(path) as second:
        backlog = SqliteBacklog(second, recent=5, max_replay=8)
        assert (backlog.last_seq, backlog.session, len(backlog)) == (12, session, 5)
        assert await asyncio.wait_for(backlog.finals_since(9), 5) == sent[9:]
        assert await asyncio.wait_for(backlog.finals_since(0), 5) == sent[4:]  # capped to max_replay
        backlog.close()



async def test_translation_time_of_a_published_final_is_kept_in_frame_and_transcript(store: TranscriptStore) -> None:
    backlog = SqliteBacklog(store)
    hub = CaptionHub(store=backlog)
    viewer = RecordingViewer()
    await hub.attach(viewer)
    hub.publish(meeting_caption(1))
    assert json.loads(viewer.frames[-1].text)["mt_ms"] == 4.2
    assert store.all_finals()[0].caption == meeting_caption(1)  # mt_ms included
    backlog.close()
