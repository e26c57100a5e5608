# -*- test-case-name: tests.transport.test_dns -*-
"""
The DNS lookups of RFC 3263, on dnspython and Twisted.

L{DNSResolver} implements L{sipstack.routing.resolver.Resolver}.  dnspython
builds and parses the messages; Twisted carries them, so no lookup blocks the
reactor (dnspython's own resolver would, and its asyncio one needs another
event loop).  A lookup is a stub resolver's exchange: one UDP query per try
to each configured nameserver in turn, the same query again over TCP when
the answer comes back truncated, and a clear verdict at the end:

  - NOERROR with the records, in the server's order, following the CNAME
    chain in the answer (and asking again for the chain's end when the
    server stopped at a name outside its data);
  - NXDOMAIN, or NOERROR without records of the type (NODATA): an empty
    tuple, which RFC 3263 reads as "move on to the next step";
  - SERVFAIL, REFUSED and other error codes, an unreachable server, a
    timeout: L{LookupFailed}, which RFC 3263 must not read as absence (a
    resolver that cannot reach its server must not turn NAPTR-advertised TLS
    into "no TLS here").

Each lookup uses a fresh UDP socket per nameserver, C{connect()}ed to it:
the kernel then drops datagrams from other addresses, the ephemeral source
port and dnspython's random query id are the two secrets an off-path spoofer
has to guess, and an ICMP "port unreachable" fails the try at once instead
of after the timeout.  A reply must also match the query (id, QR bit, opcode
and question) or it is ignored.

L{DNSCache} keeps answers for their TTL: positive ones for the smallest TTL
in the answer (the records and any CNAMEs leading to them), negative ones for
the RFC 2308 negative TTL (the smaller of the SOA's TTL and its MINIMUM
field, from the authority section; an answer without SOA is not cached), both
capped.  Failures are I{not} cached: a stub sits behind a recursive resolver
that already caches failures (RFC 9520), so caching them again here would
only prolong an outage, and concurrent lookups of one name are coalesced
into one query anyway, so a burst of requests to a broken domain does not
become a burst of queries.
"""

from __future__ import annotations

import ipaddress
import math
import struct
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeAlias, cast

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.nameserver
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.resolver
import dns.rrset
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.defer import TimeoutError as DeferredTimeout
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint, connectProtocol
from twisted.internet.error import ConnectError, ConnectionRefusedError
from twisted.internet.error import TimeoutError as ConnectTimeout
from twisted.internet.protocol import DatagramProtocol, Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from sipstack.clock import Clock
from sipstack.errors import LookupFailed
from sipstack.routing.resolver import AddressFamily, AddressRecord, NAPTRRecord, SRVRecord

__all__ = ["DNSResolver", "DNSCache", "CacheEntry", "system_nameservers"]

#: A record of any of the types this module returns.
Record: TypeAlias = NAPTRRecord | SRVRecord | AddressRecord

#: The EDNS UDP payload size we advertise (the DNS Flag Day 2020 value, which
#: avoids IP fragmentation on any usual path).
_EDNS_PAYLOAD = 1232

#: How many CNAMEs one lookup follows, in answers and by asking again.
_MAX_CHAIN = 8

#: How many queries one lookup may make while chasing a CNAME chain.
_MAX_REQUERIES = 4

_log = Logger()


def system_nameservers() -> list[tuple[str, int]]:
    """
    The plain-DNS nameservers of the system configuration (C{/etc/resolv.conf}
    on Unix), as dnspython reads it; empty when there is none.  Only the
    configuration is read: dnspython's blocking query path is not used.
    """
    try:
        config = dns.resolver.Resolver(configure=True)
    except dns.resolver.NoResolverConfiguration:
        return []
    servers: list[tuple[str, int]] = []
    for server in config.nameservers:
        if isinstance(server, str):
            servers.append((server, config.nameserver_ports.get(server, config.port)))
        elif isinstance(server, dns.nameserver.Do53Nameserver):
            servers.append((server.address, server.port))
    return servers


def _normal_address(host: str) -> str:
    """C{host} as a canonical IP address text (an IPv6 scope kept); L{ValueError} for a host name."""
    return str(ipaddress.ip_address(host))


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """
    One cached answer.

    @ivar name: the queried name, lower-cased, without the trailing dot.
    @ivar type: the queried type, C{"NAPTR"}, C{"SRV"}, C{"A"} or C{"AAAA"}.
    @ivar records: the records as the lookup returned them (with the TTLs
        they had when they were received); empty for a negative answer.
    @ivar expires: when the entry stops being used, in the cache clock's
        seconds.
    """

    name: str
    type: str
    records: tuple[Record, ...]
    expires: float

    @property
    def negative(self) -> bool:
        """Whether this is a cached NXDOMAIN or NODATA."""
        return not self.records


class DNSCache:
    """
    A bounded cache of DNS answers that keeps each for its TTL.

    Time comes from an injected clock (the reactor, or a
    C{twisted.internet.task.Clock} in tests).  When full, the least recently
    used entry goes; expired entries are dropped when met.

    @ivar max_entries: how many answers are kept at most.
    @ivar max_ttl: the longest a positive answer is kept, whatever its TTL.
    @ivar max_negative_ttl: the longest a negative answer is kept.  The
        default, five minutes, is shorter than RFC 2308's suggested hours on
        purpose: a domain that starts to publish C{_sips._tcp} should get TLS
        traffic soon, not tomorrow.
    """

    def __init__(
        self,
        clock: Clock,
        *,
        max_entries: int = 2048,
        max_ttl: float = 86400.0,
        max_negative_ttl: float = 300.0,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._clock = clock
        self.max_entries = max_entries
        self.max_ttl = max_ttl
        self.max_negative_ttl = max_negative_ttl
        self._entries: OrderedDict[tuple[str, str], CacheEntry] = OrderedDict()

    def get(self, name: str, type: str) -> CacheEntry | None:
        """The live entry for C{name} and C{type}, or L{None}."""
        key = (_cache_name(name), type)
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires <= self._clock.seconds():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry

    def records(self, name: str, type: str) -> tuple[Record, ...] | None:
        """
        The cached records for C{name} and C{type}, each with its TTL cut to
        the time the entry has left, or L{None} on a miss.
        """
        entry = self.get(name, type)
        if entry is None:
            return None
        left = int(entry.expires - self._clock.seconds())
        return tuple(replace(record, ttl=min(record.ttl, left)) for record in entry.records)

    def put(self, name: str, type: str, records: tuple[Record, ...], ttl: float) -> None:
        """
        Keep C{records} (empty: a negative answer) for C{ttl} seconds, capped;
        a TTL of zero or less keeps nothing (RFC 1035: zero means "do not
        cache").
        """
        cap = self.max_ttl if records else self.max_negative_ttl
        ttl = min(ttl, cap)
        key = (_cache_name(name), type)
        if ttl <= 0:
            self._entries.pop(key, None)
            return
        now = self._clock.seconds()
        self._entries[key] = CacheEntry(key[0], type, records, now + ttl)
        self._entries.move_to_end(key)
        if len(self._entries) > self.max_entries:
            # Expired entries go first, then the least recently used.
            for stale in [k for k, e in self._entries.items() if e.expires <= now]:
                del self._entries[stale]
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def entries(self) -> tuple[CacheEntry, ...]:
        """The live entries, least recently used first."""
        now = self._clock.seconds()
        return tuple(entry for entry in self._entries.values() if entry.expires > now)

    def clear(self) -> None:
        """Forget everything."""
        self._entries.clear()

    def __len__(self) -> int:
        return len(self.entries())


def _cache_name(name: str) -> str:
    return name.rstrip(".").lower()


def _text(name: dns.name.Name) -> str:
    """A name as records carry it: no trailing dot, and the root as C{""}."""
    return "" if name == dns.name.root else name.to_text(omit_final_dot=True)


def _naptr(rrset: dns.rrset.RRset) -> tuple[NAPTRRecord, ...]:
    return tuple(
        NAPTRRecord(
            order=rdata.order,
            preference=rdata.preference,
            flags=rdata.flags.decode("ascii", "replace").lower(),
            service=rdata.service.decode("ascii", "replace").upper(),
            regexp=rdata.regexp.decode("utf-8", "replace"),
            replacement=_text(rdata.replacement),
            ttl=rrset.ttl,
        )
        for rdata in rrset
    )


def _srv(rrset: dns.rrset.RRset) -> tuple[SRVRecord, ...]:
    return tuple(SRVRecord(rdata.priority, rdata.weight, rdata.port, _text(rdata.target), rrset.ttl) for rdata in rrset)


def _addresses(family: AddressFamily) -> Any:
    def convert(rrset: dns.rrset.RRset) -> tuple[AddressRecord, ...]:
        return tuple(AddressRecord(family, str(rdata.address), rrset.ttl) for rdata in rrset)

    return convert


class _NoAnswer(Exception):
    """One try at one nameserver gave nothing usable; the text says why."""


class _ServerFailed(Exception):
    """A nameserver answered, but with an error (it is not asked again)."""


class _DatagramExchange(DatagramProtocol):
    """
    A UDP socket connected to one nameserver, asking one query (perhaps
    several times) and taking the first reply that matches it.
    """

    def __init__(self, query: dns.message.Message, wire: bytes) -> None:
        self._query = query
        self._wire = wire
        self._waiting: Deferred[dns.message.Message] | None = None

    def ask(self) -> Deferred[dns.message.Message]:
        """Send the query; the result fires with the matching reply."""
        waiting: Deferred[dns.message.Message] = Deferred(self._forget)
        self._waiting = waiting
        assert self.transport is not None
        try:
            self.transport.write(self._wire, None)  # connected: no address
        except OSError as error:
            self._waiting = None
            waiting.errback(_NoAnswer(f"could not send: {error}"))
        return waiting

    def _forget(self, waiting: Deferred[dns.message.Message]) -> None:
        # Timed out or cancelled: a late reply is for the next try, if any.
        if self._waiting is waiting:
            self._waiting = None

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        waiting = self._waiting
        if waiting is None or datagram[:2] != self._wire[:2]:
            return
        try:
            response = dns.message.from_wire(datagram, raise_on_truncation=True)
        except dns.message.Truncated as truncated:
            response = cast(dns.message.Message, truncated.message())  # type: ignore[no-untyped-call]
        except dns.exception.DNSException:
            return
        if not self._query.is_response(response):
            return
        self._waiting = None
        waiting.callback(response)

    def connectionRefused(self) -> None:
        # The select reactor reads the ICMP error as ECONNREFUSED.
        self._refused()

    def stopProtocol(self) -> None:
        # The epoll reactor sees the ICMP error as POLLERR and closes the
        # port; our own close comes after the wait is over.
        self._refused()

    def _refused(self) -> None:
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            waiting.errback(_ServerFailed("port unreachable"))


class _StreamExchange(Protocol):
    """One query over TCP: two-byte length, then the message (RFC 1035 section 4.2.2)."""

    def __init__(self, query: dns.message.Message) -> None:
        self._query = query
        self._buffer = b""
        self.done: Deferred[dns.message.Message] = Deferred()

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(self._query.to_wire(prepend_length=True))

    def dataReceived(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) < 2 or self.done.called:
            return
        (length,) = struct.unpack("!H", self._buffer[:2])
        if len(self._buffer) < 2 + length:
            return
        try:
            response = dns.message.from_wire(self._buffer[2 : 2 + length])
        except dns.exception.DNSException as error:
            self.done.errback(_NoAnswer(f"malformed reply over TCP: {error}"))
            return
        if not self._query.is_response(response):
            self.done.errback(_NoAnswer("a reply over TCP that does not match the query"))
            return
        self.done.callback(response)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if not self.done.called:
            self.done.errback(_NoAnswer("the TCP connection closed before the reply"))


class _Pending:
    """A lookup on the network and the callers waiting for it."""

    def __init__(self) -> None:
        self.waiters: list[Deferred[tuple[Any, ...]]] = []
        self.work: Deferred[tuple[tuple[Record, ...], float]] | None = None


class DNSResolver:
    """
    The L{Resolver<sipstack.routing.resolver.Resolver>} of RFC 3263 on
    dnspython, asynchronous on a Twisted reactor, with a TTL cache.

    Concurrent lookups of the same name and type share one network query,
    and every caller gets its own L{Deferred}: cancelling one does not
    disturb the others (the query stops when nobody waits for it any more).

    @ivar cache: the answers kept for their TTL; inspect it with
        C{cache.entries()}, empty it with L{cache_clear}.
    """

    def __init__(
        self,
        reactor: Any,
        nameservers: Sequence[tuple[str, int]] | None = None,
        *,
        timeout: float = 2.0,
        attempts: int = 2,
        cache: DNSCache | None = None,
    ) -> None:
        """
        @param reactor: provides C{IReactorUDP}, C{IReactorTCP} and
            C{IReactorTime} (timeouts run on it).
        @param nameservers: C{(address, port)} of each nameserver, asked in
            this order; by default those of the system configuration.
            Addresses must be IP addresses, IPv4 or IPv6.
        @param timeout: how long one try at one nameserver may take, over
            UDP or (after a truncated answer) TCP.
        @param attempts: how many rounds through the nameservers a lookup
            makes before it fails; a server that answered with an error is
            not asked again.  The worst case is C{timeout * attempts *
            len(nameservers)} seconds.
        @param cache: the cache to use; by default a L{DNSCache} on the
            reactor's clock.
        """
        if timeout <= 0 or attempts < 1:
            raise ValueError("timeout must be positive and attempts at least 1")
        servers = system_nameservers() if nameservers is None else list(nameservers)
        self._nameservers = tuple((_normal_address(host), int(port)) for host, port in servers)
        self._reactor = reactor
        self._clock: Clock = reactor
        self._timeout = timeout
        self._attempts = attempts
        self.cache = cache if cache is not None else DNSCache(reactor)
        self._pending: dict[tuple[str, str], _Pending] = {}

    @property
    def nameservers(self) -> tuple[tuple[str, int], ...]:
        """The nameservers asked, in order."""
        return self._nameservers

    def naptr(self, name: str) -> Deferred[tuple[NAPTRRecord, ...]]:
        """The NAPTR records of C{name}."""
        return self._lookup(name, "NAPTR", _naptr)

    def srv(self, name: str) -> Deferred[tuple[SRVRecord, ...]]:
        """The SRV records of C{name} (for example C{_sips._tcp.example.com})."""
        return self._lookup(name, "SRV", _srv)

    def addresses(self, name: str, family: AddressFamily) -> Deferred[tuple[AddressRecord, ...]]:
        """The A (L{AddressFamily.IPV4}) or AAAA (L{AddressFamily.IPV6}) records of C{name}."""
        lookup: Deferred[tuple[AddressRecord, ...]] = self._lookup(name, family.value, _addresses(family))
        return lookup

    def cache_clear(self) -> None:
        """Forget every cached answer (lookups in progress are not affected)."""
        self.cache.clear()

    def _lookup(self, name: str, type: str, convert: Any) -> Deferred[Any]:
        cached = self.cache.records(name, type)
        if cached is not None:
            return succeed(cached)
        key = (_cache_name(name), type)
        pending = self._pending.get(key)
        fresh = pending is None
        if pending is None:
            pending = self._pending[key] = _Pending()
        waiter: Deferred[tuple[Any, ...]] = Deferred(lambda d: self._abandon(key, pending, d))
        pending.waiters.append(waiter)
        if fresh:
            work = Deferred.fromCoroutine(self._resolve(name, type, convert))
            pending.work = work
            work.addBoth(self._settle, key, pending)
        return waiter

    def _abandon(self, key: tuple[str, str], pending: _Pending, waiter: Deferred[tuple[Any, ...]]) -> None:
        if waiter in pending.waiters:
            pending.waiters.remove(waiter)
        if not pending.waiters and pending.work is not None and not pending.work.called:
            if self._pending.get(key) is pending:
                del self._pending[key]
            pending.work.cancel()

    def _settle(
        self, result: tuple[tuple[Record, ...], float] | Failure, key: tuple[str, str], pending: _Pending
    ) -> None:
        if self._pending.get(key) is pending:
            del self._pending[key]
        waiters, pending.waiters = pending.waiters, []
        if isinstance(result, Failure):
            error = result.value
            if not isinstance(error, LookupFailed):
                if not isinstance(error, CancelledError):
                    _log.failure("DNS lookup of {name} {type} went wrong", result, name=key[0], type=key[1])
                error = LookupFailed(f"{key[0]} {key[1]}: lookup failed: {result.getErrorMessage()}")
            for waiter in waiters:
                waiter.errback(error)
            return
        records, ttl = result
        self.cache.put(key[0], key[1], records, ttl)
        for waiter in waiters:
            waiter.callback(records)

    async def _resolve(self, name: str, type: str, convert: Any) -> tuple[tuple[Record, ...], float]:
        """
        The records of C{name} and the time they may be kept, asking again
        when a CNAME chain leaves the answer unfinished.
        """
        try:
            qname = dns.name.from_text(name.rstrip(".") + ".")
        except dns.exception.DNSException as error:
            raise LookupFailed(f"{name!r} is not a valid DNS name: {error}") from None
        rdtype = dns.rdatatype.from_text(type)
        ttl = math.inf
        seen: set[dns.name.Name] = set()
        for _ in range(_MAX_REQUERIES):
            response = await self._exchange(qname, rdtype)
            rrset, owner, chain_ttl, seen = _follow(response, qname, rdtype, seen)
            ttl = min(ttl, chain_ttl)
            if rrset is not None:
                records = convert(rrset)
                _log.debug("DNS {name} {type}: {count} record(s)", name=name, type=type, count=len(records))
                return records, min(ttl, rrset.ttl)
            rcode = response.rcode()
            negative_ttl = _negative_ttl(response)
            if rcode == dns.rcode.NXDOMAIN or owner == qname or negative_ttl is not None:
                _log.debug("DNS {name} {type}: {rcode}", name=name, type=type, rcode=dns.rcode.to_text(rcode))
                return (), min(ttl, negative_ttl if negative_ttl is not None else 0)
            # The chain ends at a name this server gave no verdict on: ask for it.
            qname = owner
        raise LookupFailed(f"{name} {type}: CNAME chain longer than {_MAX_REQUERIES} queries")

    async def _exchange(self, qname: dns.name.Name, rdtype: dns.rdatatype.RdataType) -> dns.message.Message:
        """One query, answered by the first nameserver that can, or L{LookupFailed}."""
        question = f"{_text(qname)} {dns.rdatatype.to_text(rdtype)}"
        if not self._nameservers:
            raise LookupFailed(f"{question}: no nameservers configured")
        query = dns.message.make_query(qname, rdtype, use_edns=0, payload=_EDNS_PAYLOAD)
        wire = query.to_wire()
        failures: list[str] = []
        servers = list(self._nameservers)
        sockets: dict[tuple[str, int], tuple[_DatagramExchange, Any]] = {}
        try:
            for _ in range(self._attempts):
                for server in list(servers):
                    where = f"[{server[0]}]:{server[1]}" if ":" in server[0] else f"{server[0]}:{server[1]}"
                    try:
                        response = await self._ask(query, wire, server, sockets)
                    except _NoAnswer as error:
                        failures.append(f"{where} {error}")
                        continue
                    except _ServerFailed as error:
                        failures.append(f"{where} {error}")
                        servers.remove(server)
                        continue
                    return response
                if not servers:
                    break
        finally:
            for _, port in sockets.values():
                port.stopListening()
        raise LookupFailed(f"{question}: no answer ({'; '.join(failures)})")

    async def _ask(
        self,
        query: dns.message.Message,
        wire: bytes,
        server: tuple[str, int],
        sockets: dict[tuple[str, int], tuple[_DatagramExchange, Any]],
    ) -> dns.message.Message:
        """One try at one nameserver: UDP, then TCP if the answer was truncated."""
        if server not in sockets:
            exchange = _DatagramExchange(query, wire)
            interface = "::" if ":" in server[0] else "0.0.0.0"
            try:
                port = self._reactor.listenUDP(0, exchange, interface=interface)
                port.connect(*server)
            except Exception as error:
                raise _NoAnswer(f"could not open a UDP socket: {error}") from None
            sockets[server] = (exchange, port)
        exchange = sockets[server][0]
        try:
            response = await exchange.ask().addTimeout(self._timeout, self._reactor)
        except DeferredTimeout:
            raise _NoAnswer(f"timed out after {self._timeout:g} s") from None
        if response.flags & dns.flags.TC:
            response = await self._ask_over_tcp(query, server)
        _check_rcode(response)
        return response

    async def _ask_over_tcp(self, query: dns.message.Message, server: tuple[str, int]) -> dns.message.Message:
        endpoint_class = TCP6ClientEndpoint if ":" in server[0] else TCP4ClientEndpoint
        endpoint = endpoint_class(self._reactor, server[0], server[1], timeout=self._timeout)
        exchange = _StreamExchange(query)
        start = self._clock.seconds()
        try:
            connecting: Deferred[Any] = connectProtocol(endpoint, exchange)  # type: ignore[no-untyped-call]
            await connecting.addTimeout(self._timeout, self._reactor)
        except ConnectionRefusedError:
            raise _NoAnswer("truncated over UDP and refused over TCP") from None
        except (ConnectError, ConnectTimeout, DeferredTimeout) as error:
            raise _NoAnswer(f"truncated over UDP and no TCP connection: {error}") from None
        try:
            left = max(self._timeout - (self._clock.seconds() - start), 0.001)
            return await exchange.done.addTimeout(left, self._reactor)
        except DeferredTimeout:
            raise _NoAnswer(f"truncated over UDP and timed out over TCP after {self._timeout:g} s") from None
        finally:
            if exchange.transport is not None:
                exchange.transport.loseConnection()


def _check_rcode(response: dns.message.Message) -> None:
    rcode = response.rcode()
    if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        raise _ServerFailed(f"answered {dns.rcode.to_text(rcode)}")


def _follow(
    response: dns.message.Message,
    qname: dns.name.Name,
    rdtype: dns.rdatatype.RdataType,
    seen: set[dns.name.Name],
) -> tuple[dns.rrset.RRset | None, dns.name.Name, float, set[dns.name.Name]]:
    """
    Follow the CNAME chain from C{qname} through the answer section.

    Only records owned by the names on the chain are used, so unrelated
    records a server adds are ignored.

    @return: the RRset found (or L{None}), the name the chain ended at, the
        smallest TTL of the CNAMEs on the way, and the names seen so far.
    """
    owner = qname
    ttl = math.inf
    seen = seen | {qname}
    for _ in range(_MAX_CHAIN):
        rrset = response.get_rrset(response.answer, owner, dns.rdataclass.IN, rdtype)
        if rrset is not None:
            return rrset, owner, ttl, seen
        cname = response.get_rrset(response.answer, owner, dns.rdataclass.IN, dns.rdatatype.CNAME)
        if cname is None:
            return None, owner, ttl, seen
        ttl = min(ttl, cname.ttl)
        owner = cname[0].target
        if owner in seen:
            raise LookupFailed(f"{_text(qname)}: CNAME loop at {_text(owner)}")
        seen.add(owner)
    raise LookupFailed(f"{_text(qname)}: CNAME chain longer than {_MAX_CHAIN}")


def _negative_ttl(response: dns.message.Message) -> float | None:
    """
    The RFC 2308 section 5 TTL of a negative answer: the smaller of the
    authority SOA's TTL and its MINIMUM field; L{None} without an SOA (such
    an answer is not cached).
    """
    for rrset in response.authority:
        if rrset.rdtype == dns.rdatatype.SOA and len(rrset):
            return float(min(rrset.ttl, rrset[0].minimum))
    return None
