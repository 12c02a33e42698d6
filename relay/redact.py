"""Source addresses as they may be shown: no credentials, tokens or stream keys.

Used for every log line, status report and error message that names a source. Viewers
never see even this: they get a neutral label (e.g. "floor").
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

HIDDEN = "***"
# Schemes whose path ends in a stream key (rtmp://host/app/KEY, as ingest services issue them).
_KEYED_PATH_SCHEMES = frozenset({"rtmp", "rtmps", "rtmpt", "rtmpe", "rtmpte", "rtmpts"})


def redact_url(url: str) -> str:
    """`url` without userinfo, query, fragment, or (RTMP) the stream key; local paths as given."""
    if "://" not in url:
        return url
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return f"{url.split('://', 1)[0]}://{HIDDEN}"
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{HIDDEN}@" if (parts.username or parts.password) else ""
    netloc += host + (f":{port}" if port is not None else "")
    path = parts.path
    if parts.scheme.lower() in _KEYED_PATH_SCHEMES:
        segments = path.split("/")
        if len(segments) > 2 and segments[-1]:
            path = "/".join([*segments[:2], HIDDEN])
    query = HIDDEN if parts.query else ""
    fragment = HIDDEN if parts.fragment else ""
    return urlunsplit((parts.scheme, netloc, path, query, fragment))
