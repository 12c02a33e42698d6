"""Viewer connection limits: viewers in all and per client address, refused before the upgrade."""

from __future__ import annotations

import collections
import logging

from aiohttp import web

_LOGGER = logging.getLogger(__name__)


def client_address(request: web.BaseRequest, trust_forwarded_for: bool) -> str:
    """The viewer's address: the peer, or behind a trusted proxy the one it appended to X-Forwarded-For."""
    if trust_forwarded_for:
        # The last address of the last line: some proxies (HAProxy's `option forwardfor`) add a
        # line of their own after the client's instead of appending to it.
        forwarded = ",".join(request.headers.getall("X-Forwarded-For", []))
        last = forwarded.rsplit(",", 1)[-1].strip()
        if last:
            return last[:64]
    return request.remote or "unknown"


class ViewerSlots:
    """Counts attached viewers, in all and per address; `max_per_address` 0 means no per-address cap."""

    def __init__(self, max_total: int, max_per_address: int) -> None:
        self.max_total = max_total
        self.max_per_address = max_per_address
        self._by_address: collections.Counter[str] = collections.Counter()
        self._total = 0
        self.refused = 0  # connections refused since start, for /metrics and tests

    @property
    def total(self) -> int:
        """Viewer connections holding a slot."""
        return self._total

    def claim(self, address: str) -> None:
        """Take a slot for `address`, or raise 503 (relay full) / 429 (this address has too many)."""
        if self._total >= self.max_total:
            self.refused += 1
            _LOGGER.warning("Refused a viewer from %s: %d viewers already (--max-viewers)", address, self._total)
            raise web.HTTPServiceUnavailable(
                text=f"relay full: {self.max_total} viewers connected; try again later\n", headers={"Retry-After": "30"}
            )
        if self.max_per_address and self._by_address[address] >= self.max_per_address:
            self.refused += 1
            _LOGGER.info("Refused a viewer from %s: %d from that address (--max-viewers-per-address)", address,
                         self.max_per_address)  # fmt: skip
            raise web.HTTPTooManyRequests(
                text=f"too many viewers from your address (at most {self.max_per_address})\n",
                headers={"Retry-After": "10"},
            )
        self._total += 1
        self._by_address[address] += 1

    def release(self, address: str) -> None:
        """Give back the slot `claim` took."""
        self._total -= 1
        self._by_address[address] -= 1
        if self._by_address[address] <= 0:
            del self._by_address[address]
