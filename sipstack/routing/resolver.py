# -*- test-case-name: tests.routing.test_locate -*-
"""
What RFC 3263 planning asks of DNS, as values and one interface.

The core does no I/O, so planning is written against L{Resolver}: four
asynchronous lookups returning plain records.  The Twisted adapter on
dnspython (L{sipstack.transport.dns}) implements it for real; tests of the
planner implement it with dictionaries.

The contract every implementation keeps:

  - NXDOMAIN and "no records of this type" are an empty tuple: they are
    answers, and RFC 3263 moves on to the next step on them.
  - A server failure, a refusal or a timeout raises L{LookupFailed}: that is
    no answer at all, and the planner must not treat it as absence (a
    resolver that cannot reach its server must not turn NAPTR-advertised TLS
    into "no TLS here").
  - Records come back in the order the server gave them; sorting (NAPTR
    order/preference, RFC 2782 SRV selection) is the planner's job.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Protocol

__all__ = ["AddressFamily", "NAPTRRecord", "SRVRecord", "AddressRecord", "Resolver"]


class AddressFamily(enum.Enum):
    """The family of an address record."""

    IPV4 = "A"
    IPV6 = "AAAA"


@dataclass(frozen=True, slots=True)
class NAPTRRecord:
    """
    One NAPTR record (RFC 3403) as RFC 3263 section 4.1 reads it.

    @ivar order: lower first; records of a higher order are used only when
        every record of the lower order failed.
    @ivar preference: lower first within an order.
    @ivar flags: C{"s"} for SIP (a SRV lookup follows), lower-cased.
    @ivar service: for example C{"SIPS+D2T"}, C{"SIP+D2T"}, C{"SIP+D2U"}.
    @ivar regexp: must be empty for SIP (RFC 3263 uses replacement only).
    @ivar replacement: the SRV name to look up, without the trailing dot.
    @ivar ttl: seconds the record may be cached.
    """

    order: int
    preference: int
    flags: str
    service: str
    regexp: str
    replacement: str
    ttl: int = 0


@dataclass(frozen=True, slots=True)
class SRVRecord:
    """
    One SRV record (RFC 2782).

    @ivar priority: lower first.
    @ivar weight: relative chance among records of one priority.
    @ivar port: the port to connect to.
    @ivar target: the host name, without the trailing dot; C{"."} in DNS
        (service decidedly not available) is given as the empty string.
    @ivar ttl: seconds the record may be cached.
    """

    priority: int
    weight: int
    port: int
    target: str
    ttl: int = 0


@dataclass(frozen=True, slots=True)
class AddressRecord:
    """
    One A or AAAA record.

    @ivar family: which of the two.
    @ivar address: the address as text (C{"192.0.2.1"}, C{"2001:db8::1"}).
    @ivar ttl: seconds the record may be cached.
    """

    family: AddressFamily
    address: str
    ttl: int = 0


class Resolver(Protocol):
    """
    The DNS lookups RFC 3263 needs.  Names are given without a trailing dot.
    Each method returns an awaitable (a coroutine, or a Twisted Deferred in
    the adapter) and keeps the contract in this module's docstring.
    """

    def naptr(self, name: str) -> Awaitable[tuple[NAPTRRecord, ...]]:
        """The NAPTR records of C{name}."""

    def srv(self, name: str) -> Awaitable[tuple[SRVRecord, ...]]:
        """The SRV records of C{name} (for example C{_sips._tcp.example.com})."""

    def addresses(self, name: str, family: AddressFamily) -> Awaitable[tuple[AddressRecord, ...]]:
        """The A (L{AddressFamily.IPV4}) or AAAA (L{AddressFamily.IPV6}) records of C{name}."""
