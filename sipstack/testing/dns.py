# -*- test-case-name: tests.transport.test_dns -*-
"""
A real authoritative DNS server on loopback, for tests.

RFC 3263 planning, the TLS-first endpoint and the C{probe} command all start
with DNS, and their tests should exercise the same bytes and sockets as
production: a resolver talking UDP (and TCP after truncation) to a server.
L{serve_zone} starts such a server on an ephemeral port of C{127.0.0.1} (or
C{::1}) serving zones written in the test, in zone-file syntax, and
L{ZoneServer} lets the test make it misbehave in the ways that matter to a
SIP client: a server failure or refusal for one name, silence for one name,
an answer too large for UDP.  L{silent_server} is a nameserver that never
answers at all.  Every query received is recorded, so a test can assert that
a cache hit did not reach the network.

Example, in a trial test::

    from twisted.internet import reactor
    from sipstack.testing.dns import serve_zone
    from sipstack.transport.dns import DNSResolver

    server = serve_zone(reactor, "example.test", '''
        @          NAPTR 10 50 "s" "SIPS+D2T" "" _sips._tcp
        _sips._tcp SRV   0 1 5061 sip
        sip        A     127.0.0.1
        sip        AAAA  ::1
    ''')
    self.addCleanup(server.stop)
    resolver = DNSResolver(reactor, nameservers=[server.nameserver], timeout=0.5)
    records = await resolver.srv("_sips._tcp.example.test")
    self.assertEqual(server.count("_sips._tcp.example.test", "SRV"), 1)

Each line starts with its owner name (leading blanks are ignored, so the
zone-file shorthand of a blank owner is not available); names are relative to
the zone's origin unless they end in a dot, and C{@} is the origin itself.  A
line may give a TTL before the type (the default is 300 s); the class C{IN}
is optional.  Records of one name and type are served in the order given
(not shuffled), so tests can check that order is kept.  An SOA is added at the
origin unless the records have one; its TTL (C{soa_ttl}) and its MINIMUM
field (C{negative_ttl}) are served as given (not clamped the RFC 2308 way),
so that a test can make either of the two the smaller one.

The server is written on dnspython and Twisted rather than on
C{twisted.names}, whose server neither truncates UDP answers nor sends an
SOA with NXDOMAIN, and cannot fail one name on purpose.  It is authoritative
only: CNAME chains are followed within a zone (the answer then holds the
chain, as RFC 1034 section 4.3.2 says) but not into another zone, even one
it serves, as NSD and Knot do, so that the client has to ask again; a name
outside every zone is REFUSED; NXDOMAIN and NODATA carry the zone's SOA in
the authority section.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.zone
from twisted.internet.defer import Deferred, gatherResults, maybeDeferred, succeed
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import DatagramProtocol, Factory, Protocol, connectionDone
from twisted.python.failure import Failure

__all__ = ["ReceivedQuery", "ZoneServer", "SilentServer", "serve_zone", "silent_server"]

#: The largest answer sent over UDP to a query without EDNS (RFC 1035 section 4.2.1).
_CLASSIC_UDP_SIZE = 512

#: How many CNAMEs the server follows before giving up (a loop in the zone).
_MAX_CHAIN = 16


@dataclass(frozen=True, slots=True)
class ReceivedQuery:
    """
    One query the server received.

    @ivar name: the queried name, lower-cased, without the trailing dot.
    @ivar type: the queried type as text (C{"SRV"}, C{"A"}, ...).
    @ivar transport: C{"udp"} or C{"tcp"}.
    """

    name: str
    type: str
    transport: str


def _name(text: str) -> dns.name.Name:
    return dns.name.from_text(text.rstrip(".") + ".")


def _key(name: dns.name.Name) -> str:
    return name.to_text(omit_final_dot=True).lower()


class _Zone:
    """One zone's records, indexed by owner name and type."""

    def __init__(self, origin: dns.name.Name, text: str, soa_ttl: int, negative_ttl: int) -> None:
        self.origin = origin
        source = f"$TTL 300\n{text}"
        zone = dns.zone.from_text(source, origin=origin, relativize=False, check_origin=False)
        self.rrsets: dict[tuple[dns.name.Name, int], dns.rrset.RRset] = {}
        for name, rdataset in zone.iterate_rdatasets():
            rrset = dns.rrset.from_rdata_list(name, rdataset.ttl, list(rdataset))
            self.rrsets[(name, rdataset.rdtype)] = rrset
        if (origin, dns.rdatatype.SOA) not in self.rrsets:
            soa = f"ns.{origin} hostmaster.{origin} 1 3600 600 86400 {negative_ttl}"
            self.rrsets[(origin, dns.rdatatype.SOA)] = dns.rrset.from_text(origin, soa_ttl, "IN", "SOA", soa)
        self.names = {name for name, _ in self.rrsets}

    def exists(self, name: dns.name.Name) -> bool:
        """Whether C{name} owns records or is an empty non-terminal (so: NODATA, not NXDOMAIN)."""
        return any(owner == name or owner.is_subdomain(name) for owner in self.names)


class ZoneServer:
    """
    An authoritative DNS server on one loopback address, UDP and TCP on the
    same ephemeral port.  Make one with L{serve_zone}.

    @ivar host: the address it listens on.
    @ivar port: the port, the same for UDP and TCP.
    @ivar queries: every query received, in order of arrival.
    @ivar max_udp_size: when set, UDP answers larger than this are truncated
        even if the query's EDNS payload size would allow them.
    """

    def __init__(self, *, soa_ttl: int = 3600, negative_ttl: int = 60, max_udp_size: int | None = None) -> None:
        self._soa_ttl = soa_ttl
        self._negative_ttl = negative_ttl
        self.max_udp_size = max_udp_size
        self._zones: dict[dns.name.Name, _Zone] = {}
        self._rcodes: dict[str, dns.rcode.Rcode] = {}
        self._dropped: set[tuple[str, str]] = set()
        self.queries: list[ReceivedQuery] = []
        self.host = ""
        self.port = 0
        self._listening: list[Any] = []
        self._streams: set[_StreamServer] = set()

    @property
    def nameserver(self) -> tuple[str, int]:
        """C{(host, port)}, as C{DNSResolver(nameservers=[...])} takes it."""
        return (self.host, self.port)

    def set_zone(self, origin: str, records: str | Iterable[str] = ()) -> None:
        """
        Serve the zone C{origin} with C{records} (zone-file lines), replacing
        any zone of that origin this server already had.
        """
        text = records if isinstance(records, str) else "\n".join(records)
        lines = "\n".join(line.strip() for line in text.splitlines())
        name = _name(origin)
        self._zones[name] = _Zone(name, lines, self._soa_ttl, self._negative_ttl)

    def fail(self, name: str, rcode: str = "SERVFAIL") -> None:
        """Answer every query for C{name} with C{rcode} (C{"SERVFAIL"}, C{"REFUSED"}, ...) and no records."""
        self._rcodes[_key(_name(name))] = dns.rcode.from_text(rcode)

    def drop(self, name: str, transport: str | None = None) -> None:
        """
        Never answer queries for C{name} (the client times out): over
        C{transport} (C{"udp"} or C{"tcp"}) only, or over both.
        """
        key = _key(_name(name))
        for kind in ("udp", "tcp") if transport is None else (transport,):
            self._dropped.add((key, kind))

    def heal(self, name: str) -> None:
        """Undo L{fail} and L{drop} for C{name}."""
        key = _key(_name(name))
        self._rcodes.pop(key, None)
        self._dropped -= {(key, "udp"), (key, "tcp")}

    def count(self, name: str | None = None, type: str | None = None, transport: str | None = None) -> int:
        """How many queries were received, of C{name}, C{type} and C{transport} when given."""
        key = None if name is None else _key(_name(name))
        return sum(
            1
            for query in self.queries
            if (key is None or query.name == key)
            and (type is None or query.type == type.upper())
            and (transport is None or query.transport == transport)
        )

    def stop(self) -> Deferred[None]:
        """Stop listening and close open TCP connections; fires when done."""
        for stream in list(self._streams):
            if stream.transport is not None:
                stream.transport.abortConnection()  # type: ignore[attr-defined]  # ITCPTransport
        ports, self._listening = self._listening, []
        done: Deferred[Any] = gatherResults([maybeDeferred(port.stopListening) for port in ports])
        return done.addCallback(lambda _: None)

    def answer(self, wire: bytes, transport: str) -> dns.message.Message | None:
        """
        The response to the query C{wire}, or L{None} to send nothing (a
        dropped name, or bytes that are not a query).
        """
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None
        if query.flags & dns.flags.QR:
            return None
        response = dns.message.make_response(query)
        if dns.opcode.from_flags(query.flags) != dns.opcode.QUERY:
            response.set_rcode(dns.rcode.NOTIMP)
            return response
        if len(query.question) != 1:
            response.set_rcode(dns.rcode.FORMERR)
            return response
        question = query.question[0]
        key = _key(question.name)
        self.queries.append(ReceivedQuery(key, dns.rdatatype.to_text(question.rdtype), transport))
        if (key, transport) in self._dropped:
            return None
        rcode = self._rcodes.get(key)
        if rcode is not None:
            response.set_rcode(rcode)
            return response
        self._resolve(question.name, question.rdtype, response)
        return response

    def _zone_of(self, name: dns.name.Name) -> _Zone | None:
        candidates = [zone for origin, zone in self._zones.items() if name.is_subdomain(origin)]
        return max(candidates, key=lambda zone: len(zone.origin), default=None)

    def _resolve(self, qname: dns.name.Name, rdtype: int, response: dns.message.Message) -> None:
        zone = self._zone_of(qname)
        if zone is None:
            response.set_rcode(dns.rcode.REFUSED)
            return
        response.flags |= dns.flags.AA
        name = qname
        for _ in range(_MAX_CHAIN):
            rrset = zone.rrsets.get((name, rdtype))
            if rrset is not None:
                response.answer.append(rrset)
                return
            cname = zone.rrsets.get((name, dns.rdatatype.CNAME))
            if cname is None or rdtype == dns.rdatatype.CNAME:
                break
            response.answer.append(cname)
            name = cname[0].target
            if not name.is_subdomain(zone.origin) or self._zone_of(name) is not zone:
                # Another zone: the client asks again for the rest.
                return
        if not zone.exists(name):
            response.set_rcode(dns.rcode.NXDOMAIN)
        response.authority.append(zone.rrsets[(zone.origin, dns.rdatatype.SOA)])

    def udp_wire(self, query_wire: bytes, response: dns.message.Message) -> bytes:
        """C{response} as bytes for UDP: truncated (TC set, no records) if too large."""
        try:
            query = dns.message.from_wire(query_wire)
        except dns.exception.DNSException:
            limit = _CLASSIC_UDP_SIZE
        else:
            limit = max(query.payload, _CLASSIC_UDP_SIZE) if query.edns >= 0 else _CLASSIC_UDP_SIZE
        if self.max_udp_size is not None:
            limit = min(limit, self.max_udp_size)
        wire = response.to_wire(max_size=65535, want_shuffle=False)
        if len(wire) <= limit:
            return wire
        # Like most servers, send no partial RRset: the header, TC and the question.
        stub = dns.message.Message(id=response.id)
        stub.flags = response.flags | dns.flags.TC
        stub.question = list(response.question)
        if response.edns >= 0:
            stub.use_edns(response.edns, payload=response.payload)
        return stub.to_wire()

    def _listen(self, reactor: Any, host: str) -> None:
        for _ in range(20):
            udp = reactor.listenUDP(0, _DatagramServer(self), interface=host)
            port = udp.getHost().port
            try:
                tcp = reactor.listenTCP(port, _StreamFactory(self), interface=host)
            except CannotListenError:
                udp.stopListening()
                continue
            self._listening = [udp, tcp]
            self.host, self.port = host, port
            return
        raise CannotListenError(host, 0, OSError("no port free for both UDP and TCP"))  # type: ignore[no-untyped-call]


class _DatagramServer(DatagramProtocol):
    def __init__(self, server: ZoneServer) -> None:
        self._server = server

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        response = self._server.answer(datagram, "udp")
        if response is not None and self.transport is not None:
            self.transport.write(self._server.udp_wire(datagram, response), addr)


class _StreamServer(Protocol):
    """DNS over TCP: two-byte length, then the message (RFC 1035 section 4.2.2)."""

    def __init__(self, server: ZoneServer) -> None:
        self._server = server
        self._buffer = b""

    def connectionMade(self) -> None:
        self._server._streams.add(self)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._server._streams.discard(self)

    def dataReceived(self, data: bytes) -> None:
        self._buffer += data
        while len(self._buffer) >= 2:
            (length,) = struct.unpack("!H", self._buffer[:2])
            if len(self._buffer) < 2 + length:
                return
            wire, self._buffer = self._buffer[2 : 2 + length], self._buffer[2 + length :]
            response = self._server.answer(wire, "tcp")
            if response is not None and self.transport is not None:
                self.transport.write(response.to_wire(prepend_length=True, max_size=65535, want_shuffle=False))


class _StreamFactory(Factory):
    def __init__(self, server: ZoneServer) -> None:
        self._server = server

    def buildProtocol(self, addr: Any) -> _StreamServer:
        return _StreamServer(self._server)


def serve_zone(
    reactor: Any,
    origin: str,
    records: str | Iterable[str] = (),
    *,
    host: str = "127.0.0.1",
    soa_ttl: int = 3600,
    negative_ttl: int = 60,
    max_udp_size: int | None = None,
) -> ZoneServer:
    """
    Start a L{ZoneServer} for the zone C{origin} on C{host}, UDP and TCP on
    one ephemeral port.  Add more zones with L{ZoneServer.set_zone}; stop it
    with L{ZoneServer.stop} (in trial: C{self.addCleanup(server.stop)}).

    @param reactor: provides C{IReactorUDP} and C{IReactorTCP}.
    @param records: zone-file lines (a string or one line per item).
    @param host: C{"127.0.0.1"} or C{"::1"}.
    @param soa_ttl: the TTL of the SOA added when C{records} has none.
    @param negative_ttl: the MINIMUM field of that SOA (RFC 2308 negative TTL).
    @param max_udp_size: truncate UDP answers above this size whatever the
        client's EDNS payload size (C{512} forces TCP for modest RRsets).
    """
    server = ZoneServer(soa_ttl=soa_ttl, negative_ttl=negative_ttl, max_udp_size=max_udp_size)
    server.set_zone(origin, records)
    server._listen(reactor, host)
    return server


class SilentServer(DatagramProtocol):
    """
    A UDP port that reads and counts every datagram and never answers: a
    nameserver that is down or firewalled.  Make one with L{silent_server}.

    @ivar host: the address it listens on.
    @ivar port: its port.
    @ivar received: how many datagrams arrived.
    """

    def __init__(self) -> None:
        self.host = ""
        self.port = 0
        self.received = 0
        self._port: Any = None

    @property
    def nameserver(self) -> tuple[str, int]:
        """C{(host, port)}, as C{DNSResolver(nameservers=[...])} takes it."""
        return (self.host, self.port)

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        self.received += 1

    def stop(self) -> Deferred[None]:
        """Stop listening."""
        port, self._port = self._port, None
        if port is None:
            return succeed(None)
        done: Deferred[Any] = maybeDeferred(port.stopListening)
        return done.addCallback(lambda _: None)


def silent_server(reactor: Any, host: str = "127.0.0.1") -> SilentServer:
    """
    Start a L{SilentServer} on an ephemeral UDP port of C{host}.  Stop it with
    L{SilentServer.stop}.
    """
    server = SilentServer()
    server._port = reactor.listenUDP(0, server, interface=host)
    server.host, server.port = host, server._port.getHost().port
    return server
