"""Source addresses shown in logs and status carry no credentials, tokens or stream keys."""

import pytest

from relay.redact import redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("rtmp://user:secret@ingest.example.org/live/floor", "rtmp://***@ingest.example.org/live/***"),
        ("https://cdn.example.org/event/live.m3u8?token=secret", "https://cdn.example.org/event/live.m3u8?***"),
        ("srt://0.0.0.0:9000?mode=listener&passphrase=secret", "srt://0.0.0.0:9000?***"),
        ("http://[::1]:8080/live.m3u8#secret", "http://[::1]:8080/live.m3u8#***"),
        ("rtmp://127.0.0.1/live", "rtmp://127.0.0.1/live"),
        ("http://127.0.0.1:8080/live.m3u8", "http://127.0.0.1:8080/live.m3u8"),
        ("/srv/rehearsal.mp4", "/srv/rehearsal.mp4"),
        ("-", "-"),
    ],
)
def test_redact_url_hides_secrets_and_keeps_the_rest(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_unparseable_url_keeps_only_its_scheme() -> None:
    assert redact_url("http://user:secret@[::1:bad/x?token=secret") == "http://***"
