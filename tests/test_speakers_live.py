"""Speakers on a real relay: `relay serve --agenda`, `relay speaker --next` / NAME while it captions the meeting.

Each final of the export must carry exactly the speaker in effect where its speech began, by
the stream times the relay answered for each change (no timing is assumed about when they land).
"""

from __future__ import annotations

import re
import subprocess

from relay.speakers import SpeakerLog
from tests.support.live_hls_master import trim_audio
from tests.support.media import MEETING_FLAC
from tests.test_source_lifecycle import RELAY, Serve, export

SECONDS = 32.0
CHANGED_TO = 'Mr. Jean "JJ" Dupont <b>&'  # set by name, after the agenda's first


def speaker(data, *args: str) -> tuple[str, float]:
    result = subprocess.run([RELAY, "speaker", *args, "--data", str(data)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    match = re.fullmatch(r"speaker from ([0-9.]+) s of the stream: (.*)\n", result.stdout)
    assert match, result.stdout
    return match.group(2), float(match.group(1))


def test_every_final_carries_the_speaker_who_had_the_floor_when_it_began(tmp_path):
    agenda = tmp_path / "agenda.csv"
    agenda.write_text("name,affiliation,language\nAna Pérez,\"Minister for Foreign Affairs, Chile\",es\n",
                      encoding="utf-8")
    clip = trim_audio(MEETING_FLAC, SECONDS, tmp_path)
    data = tmp_path / "data"
    relay = Serve(str(clip), data, "--realtime", "--agenda", str(agenda), "--no-translate")
    try:
        relay.wait_for(lambda s: s["captions_published"] >= 1, 120, "a first final")
        first = speaker(data, "--next")
        assert first[0] == "Ana Pérez, Minister for Foreign Affairs, Chile"
        relay.wait_for(lambda s: s["captions_published"] >= 2, 120, "a second final")
        second = speaker(data, CHANGED_TO)
        assert second[0] == CHANGED_TO and second[1] >= first[1]
        nobody = subprocess.run([RELAY, "speaker", "--next", "--data", str(data)], capture_output=True, text=True,
                                timeout=30)
        assert nobody.returncode == 1 and "all been called" in nobody.stderr.strip().splitlines()[-1]
        relay.wait_for(lambda s: s["source"]["state"] == "ended", SECONDS + 120, "the clip's end")
        assert relay.status()["speaker"] == CHANGED_TO
    finally:
        subprocess.run([RELAY, "stop", "--data", str(data)], capture_output=True, timeout=60)
        relay.proc.wait(60)
        relay.kill()
    log = SpeakerLog()
    log.set(first[0], first[1])
    log.set(second[0], second[1])
    finals = [f for f in export(data) if f.get("text")]
    assert len(finals) >= 4
    assert [f.get("speaker", "") for f in finals] == [log.at(f["start"]) for f in finals]
    named = [f["speaker"] for f in finals if f.get("speaker")]
    assert named  # speech went on after the first change (which turn it falls in depends on timing)
    vtt = subprocess.run([RELAY, "export", "--format", "vtt", "--data", str(data)], capture_output=True, text=True,
                         timeout=60).stdout
    voices = {CHANGED_TO: "<v Mr. Jean \"JJ\" Dupont &lt;b&gt;&amp;>", first[0]: f"<v {first[0]}>"}
    for name in set(named):
        assert voices[name] in vtt
