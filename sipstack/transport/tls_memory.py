# -*- test-case-name: tests.transport.test_endpoint -*-
"""
What TLS-first connects remember about targets between connects
(docs/tls-first.md, step 7): "no TLS here" and "TLS worked here".

Without the first, every request to a domain without TLS would pay for the
TLS probe (a refused port costs a round trip; a port that drops packets
costs the whole connect timeout).  Without the second, an attacker who can
block TLS to a server that has it would get a silent downgrade.  Both are
bounded and expire, and both can be listed and reset by an operator.
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from dataclasses import dataclass

from sipstack.clock import Clock
from sipstack.config import TLSFirstSettings
from sipstack.transport.identity import normalize_domain

__all__ = ["MemoryKind", "MemoryEntry", "TLSMemory"]


class MemoryKind(enum.Enum):
    """The two things L{TLSMemory} remembers about a target."""

    #: "No TLS at this target": skip the TLS attempt while it lasts.
    NO_TLS = "no-tls"
    #: "TLS worked here": a TLS failure there is an error, not a downgrade.
    PIN = "pin"


@dataclass(frozen=True, slots=True)
class MemoryEntry:
    """
    One thing remembered about a target (host and port).

    @ivar kind: what is remembered.
    @ivar host: the target's host, normalized (lower case, no trailing dot).
    @ivar port: the target's port.
    @ivar expires: when it will be forgotten (the memory's clock).
    @ivar reason: for L{MemoryKind.NO_TLS}, why TLS failed.
    """

    kind: MemoryKind
    host: str
    port: int
    expires: float
    reason: str | None = None


class _TTLTable:
    """
    Entries of one kind: at most C{size}, each for C{ttl} seconds.  As every
    entry lives equally long, insertion order is expiry order: the oldest
    entry goes first, whether it expired or room is needed.
    """

    def __init__(self, kind: MemoryKind, ttl: float, size: int) -> None:
        self.kind = kind
        self.ttl = ttl
        self.size = size
        self.entries: OrderedDict[tuple[str, int], MemoryEntry] = OrderedDict()

    def get(self, key: tuple[str, int], now: float) -> MemoryEntry | None:
        self.expire(now)
        return self.entries.get(key)

    def put(self, key: tuple[str, int], now: float, reason: str | None) -> MemoryEntry:
        self.entries.pop(key, None)
        entry = self.entries[key] = MemoryEntry(self.kind, key[0], key[1], now + self.ttl, reason)
        self.expire(now)
        while len(self.entries) > self.size:
            self.entries.popitem(last=False)
        return entry

    def expire(self, now: float) -> None:
        while self.entries:
            key, entry = next(iter(self.entries.items()))
            if entry.expires > now:
                return
            del self.entries[key]


class TLSMemory:
    """
    What TLS-first connects learned about targets (docs/tls-first.md, step
    7): a bounded, TTL-limited negative cache ("no TLS at this target") and
    positive pins ("TLS worked here").  One per stack, shared by all its
    endpoints.

    The endpoint consults it under the opportunistic policy only (strict
    always tries TLS and never falls back; rfc3263 is plain RFC 3263; off
    makes no TLS attempt), and records into it under every policy that
    makes TLS attempts.  A "no TLS" entry is recorded only when TCP then
    worked, so a host that is down altogether does not lose its TLS for a
    whole TTL.  A pinned target is never skipped for a "no TLS" entry.

    @ivar clock: the source of time (a reactor, or a C{Clock} in tests).
    """

    def __init__(self, clock: Clock, settings: TLSFirstSettings | None = None) -> None:
        settings = settings if settings is not None else TLSFirstSettings()
        self.clock = clock
        self._no_tls = _TTLTable(MemoryKind.NO_TLS, settings.negative_ttl, settings.negative_entries)
        self._pins = _TTLTable(MemoryKind.PIN, settings.pin_ttl, settings.pin_entries)

    @staticmethod
    def _key(host: str, port: int) -> tuple[str, int]:
        return (normalize_domain(host) or host.lower().rstrip(".")), port

    def no_tls(self, host: str, port: int) -> MemoryEntry | None:
        """The live "no TLS" entry for a target, if any."""
        return self._no_tls.get(self._key(host, port), self.clock.seconds())

    def pinned(self, host: str, port: int) -> MemoryEntry | None:
        """The live pin of a target, if any."""
        return self._pins.get(self._key(host, port), self.clock.seconds())

    def remember_no_tls(self, host: str, port: int, reason: str) -> MemoryEntry | None:
        """
        Remember that TLS failed at a target; nothing is recorded for a
        pinned target (its pin says TLS is there).

        @return: the entry, or L{None} if the target is pinned.
        """
        if self.pinned(host, port) is not None:
            return None
        return self._no_tls.put(self._key(host, port), self.clock.seconds(), reason)

    def remember_tls(self, host: str, port: int) -> MemoryEntry:
        """Pin a target where TLS worked (and forget any "no TLS" for it)."""
        key = self._key(host, port)
        self._no_tls.entries.pop(key, None)
        return self._pins.put(key, self.clock.seconds(), None)

    def entries(self) -> list[MemoryEntry]:
        """Every live entry, "no TLS" ones first, each kind oldest first."""
        now = self.clock.seconds()
        for table in (self._no_tls, self._pins):
            table.expire(now)
        return [*self._no_tls.entries.values(), *self._pins.entries.values()]

    def forget(self, host: str, port: int, kind: MemoryKind | None = None) -> None:
        """Forget what is remembered about one target (of one kind, or both)."""
        key = self._key(host, port)
        for table in (self._no_tls, self._pins):
            if kind is None or table.kind is kind:
                table.entries.pop(key, None)

    def reset(self, kind: MemoryKind | None = None) -> None:
        """Forget everything (of one kind, or both)."""
        for table in (self._no_tls, self._pins):
            if kind is None or table.kind is kind:
                table.entries.clear()
