"""
TLS first through L{SIPStack.request}: RFC 3263 planning on a real DNS
server on loopback (L{sipstack.testing.dns}), the TLS-first walk of the
plan over real TLS, TCP and UDP SIP stacks with certificates made in the
test, UDP fallback, and RFC 3263 section 4.3 failover.

Servers that must sit on default ports (no SRV: 5060 and 5061) bind a
random loopback address 127.0.0.N, which the zone's A record names, so that
tests running in parallel do not fight over those ports; a "closed" port is
a socket bound and not listening (refused, and reserved against other
tests).
"""

from __future__ import annotations

import random
import socket
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from sipstack.config import Limits, StackConfig, TimerValues, TLSFirstSettings, TLSPolicy
from sipstack.dialog import build_request
from sipstack.hop import CLEARTEXT, TLS_UNAUTHENTICATED, HopSecurity, Peer, SecurityState, TransportKind
from sipstack.message import Request, Response
from sipstack.routing import TargetSource
from sipstack.stack import UDP_FALLBACK_EVENT, IncomingRequest, RequestResult, SIPStack
from sipstack.testing.certs import CertificateAuthority, IssuedCertificate
from sipstack.testing.dns import ZoneServer, serve_zone
from sipstack.transport.dns import DNSResolver
from sipstack.transport.endpoint import DOWNGRADE_EVENT
from sipstack.transport.layer import AUTHENTICATED_VIA_PARAM
from sipstack.transport.report import Outcome
from sipstack.transport.tls_memory import MemoryKind
from tests.stack import make_stack
from tests.transport._helpers import description, reactor, wait_for, write_pem_files

DOMAIN = "example.test"
AUTHENTICATED = HopSecurity(SecurityState.TLS_AUTHENTICATED, DOMAIN)
TLS, TCP, UDP = TransportKind.TLS, TransportKind.TCP, TransportKind.UDP

#: T1 = 50 ms (Timer F after 3.2 s): no test here waits for a timeout but
#: the one that asks for shorter timers.
TIMERS = TimerValues(t1=0.05, t2=0.4, t4=0.5)


class Server:
    """
    A SIP stack that answers every request with C{status} (after a 180 for
    an INVITE when C{ring}), and keeps what it got.
    """

    def __init__(self, stack: SIPStack, status: int = 200, ring: bool = False) -> None:
        self.stack = stack
        self.status = status
        self.ring = ring
        self.requests: list[IncomingRequest] = []
        self.listening: dict[TransportKind, Peer] = {}
        stack.on_request(self)

    def __call__(self, incoming: IncomingRequest) -> Response:
        self.requests.append(incoming)
        if self.ring and incoming.request.method == "INVITE":
            incoming.respond(180)
        return incoming.response(self.status)

    def seen(self, transport: TransportKind | None = None) -> list[IncomingRequest]:
        """The requests received (over C{transport})."""
        return [each for each in self.requests if transport is None or each.received.flow.transport is transport]


class _Mute(Protocol):
    """Accepts TCP and answers the first bytes with C{answer}, or never."""

    def __init__(self, answer: bytes | None) -> None:
        self.answer = answer
        self.lost: Deferred[None] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        if self.answer is not None and self.transport is not None:
            self.transport.write(self.answer)
            self.answer = None

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.lost.callback(None)


class _MuteFactory(Factory):
    def __init__(self, answer: bytes | None) -> None:
        self.answer = answer
        self.accepted: list[_Mute] = []

    @property
    def connections(self) -> int:
        return len(self.accepted)

    def buildProtocol(self, addr: object) -> _Mute:
        protocol = _Mute(self.answer)
        self.accepted.append(protocol)
        return protocol


class _TLSFirstBase(TestCase):
    def setUp(self) -> None:
        self.ca = CertificateAuthority.generate("sipstack test CA")
        self.good = self.ca.issue(DOMAIN, sip_uris=[f"sip:{DOMAIN}"])
        self.events = EventLoggingObserver()
        globalLogPublisher.addObserver(self.events)
        self.addCleanup(globalLogPublisher.removeObserver, self.events)
        self.zone: ZoneServer | None = None

    def events_of(self, name: str) -> list[Any]:
        return [event for event in self.events if event.get("sipstack_event") == name]

    # DNS

    def serve(self, records: str) -> ZoneServer:
        """Serve the zone C{example.test} (replacing its records on a second call)."""
        if self.zone is None:
            self.zone = serve_zone(reactor, DOMAIN, records)
            self.addCleanup(self.zone.stop)
        else:
            self.zone.set_zone(DOMAIN, records)
        return self.zone

    # Client

    async def client(
        self,
        *,
        policy: TLSPolicy = TLSPolicy.OPPORTUNISTIC,
        handshake_timeout: float = 2.0,
        timers: TimerValues = TIMERS,
        udp: bool = True,
        **settings: Any,
    ) -> SIPStack:
        """The stack under test: its resolver asks the test's zone server."""
        assert self.zone is not None
        settings.setdefault("attempt_delay", 0.05)
        config = StackConfig(
            timers=timers,
            limits=Limits(handshake_timeout=handshake_timeout, connect_timeout=2.0),
            tls_policy=policy,
            tls_first=TLSFirstSettings(**settings),
        )
        resolver = DNSResolver(reactor, [self.zone.nameserver], timeout=0.5)
        stack = make_stack(self, config=config, trust_root=self.ca.cert_pem, resolver=resolver)
        if udp:
            await stack.listen("udp:0:interface=127.0.0.1")
        return stack

    @staticmethod
    def options(uri: str = f"sip:{DOMAIN}") -> Request:
        return build_request("OPTIONS", uri, from_="<sip:alice@example.org>", to=f"<{uri}>")

    # Servers

    async def server(
        self,
        host: str = "127.0.0.1",
        *,
        tls: int | None = None,
        tcp: int | None = None,
        udp: int | None = None,
        certificate: IssuedCertificate | None = None,
        status: int = 200,
        ring: bool = False,
    ) -> Server:
        """A server stack listening on the transports given a port (0: any)."""
        server = Server(make_stack(self, config=StackConfig(timers=TIMERS)), status, ring)
        if tls is not None:
            options = write_pem_files(self, certificate or self.good)
            server.listening[TLS] = await server.stack.listen(description("tls", host, tls, options))
        if tcp is not None:
            server.listening[TCP] = await server.stack.listen(description("tcp", host, tcp))
        if udp is not None:
            server.listening[UDP] = await server.stack.listen(description("udp", host, udp))
        return server

    async def on_fresh_address(self, setup: Callable[[str], Any]) -> str:
        """
        Run C{setup(host)} on a random 127.0.0.N that no other test holds;
        return the address.  A clash (the default ports taken there) makes
        it try another address.
        """
        for _ in range(20):
            host = f"127.0.0.{random.randint(2, 250)}"
            try:
                await setup(host)
            except (CannotListenError, OSError):
                continue
            return host
        raise AssertionError("no free loopback address")

    async def on_default_ports(
        self, *, closed: tuple[int, ...] = (), tls: int | None = None, tcp: int | None = None, udp: int | None = None
    ) -> Server:
        """
        A server on the default ports (C{tls=5061}, C{tcp=5060}, ...) of a
        fresh loopback address, C{closed} ports refusing there, and the
        domain's A record naming it (no NAPTR, no SRV).
        """
        servers: list[Server] = []

        async def setup(host: str) -> None:
            for port in closed:
                self.closed_port(host, port)
            servers.append(await self.server(host, tls=tls, tcp=tcp, udp=udp))

        host = await self.on_fresh_address(setup)
        self.serve(f"@ A {host}")
        return servers[-1]

    def closed_port(self, host: str, port: int = 0) -> int:
        """A port bound and not listening: connections are refused."""
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        try:
            sock.bind((host, port))
        except OSError:
            sock.close()
            raise
        self.addCleanup(sock.close)
        bound: int = sock.getsockname()[1]
        return bound

    def mute(self, answer: bytes | None) -> tuple[_MuteFactory, int]:
        """A TCP port that answers in plaintext, or never."""
        factory = _MuteFactory(answer)
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")

        async def stop() -> None:
            await port.stopListening()
            for connection in factory.accepted:
                if not connection.lost.called and connection.transport is not None:
                    connection.transport.abortConnection()  # type: ignore[attr-defined]  # ITCPTransport
                await connection.lost

        self.addCleanup(lambda: Deferred.fromCoroutine(stop()))
        return factory, port.getHost().port

    # Checks

    def assert_over(self, result: RequestResult, transport: TransportKind, security: HopSecurity) -> None:
        self.assertEqual(result.status, 200, result.error)
        self.assertIsNone(result.synthesized)
        assert result.flow is not None
        self.assertEqual(result.flow.transport, transport)
        self.assertEqual(result.security, security)
        self.assertEqual(result.request.top_via.transport, transport.value)


class DNSPlanTests(_TLSFirstBase):
    """
    A C{sip:} request goes out over TLS when the domain's DNS offers it,
    without the application asking.
    """

    async def test_naptr_only_sips(self) -> None:
        """
        NAPTR with only C{SIPS+D2T}: the request goes over TLS, the result
        says C{tls-authenticated(example.test)} and carries the plan and the
        one attempt, and the server saw it over authenticated-at-our-end TLS.
        """
        server = await self.server(tls=0)
        self.serve(f"""
            @          NAPTR 10 50 "s" "SIPS+D2T" "" _sips._tcp
            _sips._tcp SRV   0 1 {server.listening[TLS].port} sip
            sip        A     127.0.0.1
        """)
        client = await self.client()
        result = await client.request(self.options())
        self.assert_over(result, TLS, AUTHENTICATED)
        assert result.plan is not None
        self.assertEqual([target.source for target in result.plan.targets], [TargetSource.NAPTR])
        self.assertEqual([(a.transport, a.outcome) for a in result.attempts], [(TLS, Outcome.CONNECTED)])
        self.assertIsNone(result.fallback_reason)
        self.assertEqual(result.failovers, ())
        [seen] = server.seen(TLS)
        self.assertEqual(seen.request.top_via.transport, "TLS")
        assert result.flow is not None
        self.assertEqual(client.flows[result.flow], AUTHENTICATED)

    async def test_naptr_tcp_and_tls(self) -> None:
        """NAPTR with TCP preferred over TLS in one order: TLS still goes first (opportunistic)."""
        server = await self.server(tls=0, tcp=0)
        self.serve(f"""
            @          NAPTR 10 10 "s" "SIP+D2T" "" _sip._tcp
            @          NAPTR 10 20 "s" "SIPS+D2T" "" _sips._tcp
            _sip._tcp  SRV   0 1 {server.listening[TCP].port} sip
            _sips._tcp SRV   0 1 {server.listening[TLS].port} sip
            sip        A     127.0.0.1
        """)
        client = await self.client()
        result = await client.request(self.options())
        self.assert_over(result, TLS, AUTHENTICATED)
        self.assertEqual(server.seen(TCP), [])

    async def test_srv_only(self) -> None:
        """No NAPTR, SRV for the three transports: TLS first."""
        server = await self.server(tls=0, tcp=0, udp=0)
        self.serve(f"""
            _sip._udp  SRV   0 1 {server.listening[UDP].port} sip
            _sip._tcp  SRV   0 1 {server.listening[TCP].port} sip
            _sips._tcp SRV   0 1 {server.listening[TLS].port} sip
            sip        A     127.0.0.1
        """)
        client = await self.client()
        result = await client.request(self.options())
        self.assert_over(result, TLS, AUTHENTICATED)
        assert result.plan is not None
        self.assertEqual([t.transport for t in result.plan.targets], [TLS, TCP, UDP])
        self.assertEqual(len(server.requests), 1)

    async def test_no_srv_probe_5061(self) -> None:
        """No NAPTR nor SRV, C{probe_5061} on: TLS on 5061 of the A record's address."""
        server = await self.on_default_ports(tls=5061, tcp=5060, udp=5060)
        client = await self.client()
        result = await client.request(self.options())
        self.assert_over(result, TLS, AUTHENTICATED)
        self.assertEqual(result.attempts[0].source, TargetSource.PROBE_5061)
        self.assertEqual(server.seen(TCP) + server.seen(UDP), [])

    async def test_no_srv_without_probe(self) -> None:
        """
        With C{probe_5061} off, no TLS is tried: TCP on 5060 (opportunistic
        puts TCP before UDP), and no fallback is reported (none was wanted).
        """
        server = await self.on_default_ports(tls=5061, tcp=5060, udp=5060)
        client = await self.client(probe_5061=False)
        result = await client.request(self.options())
        self.assert_over(result, TCP, CLEARTEXT)
        self.assertIsNone(result.fallback_reason)
        self.assertEqual(server.seen(TLS), [])

    async def test_ipv6_unreachable_ipv4_used(self) -> None:
        """
        A TLS target listed with an AAAA (::1, refused) and an A record: the
        happy-eyeballs race reaches it over IPv4, both attempts reported.
        """
        server = await self.server(tls=0)
        port = server.listening[TLS].port
        self.closed_port("::1", port)
        self.serve(f"""
            _sips._tcp SRV   0 1 {port} sip
            sip        AAAA  ::1
            sip        A     127.0.0.1
        """)
        client = await self.client()
        result = await client.request(self.options())
        self.assert_over(result, TLS, AUTHENTICATED)
        self.assertEqual(
            [(a.address, a.outcome) for a in result.attempts],
            [("::1", Outcome.REFUSED), ("127.0.0.1", Outcome.CONNECTED)],
        )

    async def test_ipv4_unreachable_ipv6_used(self) -> None:
        """The other way round: the A address refuses, the AAAA (::1, tried first) answers."""
        server = await self.server("::1", tcp=0)
        port = server.listening[TCP].port
        self.closed_port("127.0.0.1", port)
        self.serve(f"""
            _sip._tcp  SRV   0 1 {port} sip
            sip        A     127.0.0.1
            sip        AAAA  ::1
        """)
        client = await self.client()
        result = await client.request(self.options())
        self.assert_over(result, TCP, CLEARTEXT)
        connected = [a.address for a in result.attempts if a.outcome is Outcome.CONNECTED]
        self.assertEqual(connected, ["::1"])
        others = {(a.address, a.outcome) for a in result.attempts if a.outcome is not Outcome.CONNECTED}
        self.assertLessEqual(others, {("127.0.0.1", Outcome.REFUSED), ("127.0.0.1", Outcome.ABANDONED)})
        self.assertEqual(len(server.requests), 1)

    async def test_no_target(self) -> None:
        """A domain the DNS knows nothing of: a synthesized 503 that says why, and nothing sent."""
        self.serve("other A 127.0.0.1")
        client = await self.client()
        result = await client.request(self.options(f"sip:nowhere.{DOMAIN}"))
        self.assertEqual((result.status, result.synthesized), (503, "transport"))
        self.assertIn("no address", result.error or "")
        assert result.plan is not None
        self.assertEqual({lookup.rdtype for lookup in result.plan.lookups}, {"NAPTR", "SRV", "A", "AAAA"})
        self.assertIsNone(result.flow)

    async def test_udp_only_plan(self) -> None:
        """C{;transport=udp} under C{rfc3263}: straight to UDP, no stream attempt, no fallback."""
        server = await self.server(udp=0)
        self.serve(f"""
            _sip._udp  SRV   0 1 {server.listening[UDP].port} sip
            sip        A     127.0.0.1
        """)
        client = await self.client(policy=TLSPolicy.RFC3263)
        result = await client.request(self.options(f"sip:{DOMAIN};transport=udp"))
        self.assert_over(result, UDP, CLEARTEXT)
        self.assertEqual((result.attempts, result.fallback_reason), ((), None))
        self.assertEqual(client.flows, {})

    async def test_numeric_needs_no_dns(self) -> None:
        """A numeric host with a port and transport makes no DNS query at all."""
        server = await self.server(tcp=0)
        zone = self.serve("@ A 127.0.0.1")
        client = await self.client()
        result = await client.request(self.options(f"sip:{server.listening[TCP]};transport=tcp"))
        self.assert_over(result, TCP, CLEARTEXT)
        self.assertEqual(zone.queries, [])


class FallbackTests(_TLSFirstBase):
    """
    When TLS is not there, the request falls back safely and says why.
    """

    async def test_tls_port_closed(self) -> None:
        """
        TLS on 5061 refused: TCP on 5060 carries the request, the result's
        C{fallback_reason} says why, one downgrade event is logged, and the
        next request reuses the TCP flow without a new TLS attempt.
        """
        server = await self.on_default_ports(closed=(5061,), tcp=5060)
        client = await self.client()
        result = await client.request(self.options())
        self.assert_over(result, TCP, CLEARTEXT)
        self.assertEqual(
            [(a.transport, a.outcome) for a in result.attempts], [(TLS, Outcome.REFUSED), (TCP, Outcome.CONNECTED)]
        )
        self.assertIn("refused", result.fallback_reason or "")
        [event] = self.events_of(DOWNGRADE_EVENT)
        self.assertEqual(event["domain"], DOMAIN)
        self.assertEqual([entry.kind for entry in client.tls_memory.entries()], [MemoryKind.NO_TLS])

        again = await client.request(self.options())
        self.assert_over(again, TCP, CLEARTEXT)
        self.assertEqual(again.flow, result.flow)
        self.assertEqual(again.attempts, ())
        self.assertIn("remembered", again.fallback_reason or "")
        self.assertEqual(len(self.events_of(DOWNGRADE_EVENT)), 1)
        self.assertEqual(len(server.requests), 2)

    async def test_plaintext_on_tls_port(self) -> None:
        """A TLS port that answers in plaintext SIP is a handshake failure: TCP follows."""
        raw, tls_port = self.mute(b"SIP/2.0 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        server = await self.server(tcp=0)
        self.serve(f"""
            _sips._tcp SRV   0 1 {tls_port} sip
            _sip._tcp  SRV   0 1 {server.listening[TCP].port} sip
            sip        A     127.0.0.1
        """)
        client = await self.client()
        result = await client.request(self.options())
        self.assert_over(result, TCP, CLEARTEXT)
        self.assertEqual(result.attempts[0].outcome, Outcome.HANDSHAKE_FAILED)
        self.assertEqual(raw.connections, 1)
        self.assertIn("handshake-failed", result.fallback_reason or "")

    async def test_handshake_never_answered(self) -> None:
        """A TLS port that accepts TCP and never answers: TCP after the handshake timeout."""
        _, tls_port = self.mute(None)
        server = await self.server(tcp=0)
        self.serve(f"""
            _sips._tcp SRV   0 1 {tls_port} sip
            _sip._tcp  SRV   0 1 {server.listening[TCP].port} sip
            sip        A     127.0.0.1
        """)
        client = await self.client(handshake_timeout=0.2)
        started = reactor.seconds()
        result = await client.request(self.options())
        self.assertGreaterEqual(reactor.seconds() - started, 0.2)
        self.assert_over(result, TCP, CLEARTEXT)
        self.assertEqual(result.attempts[0].outcome, Outcome.HANDSHAKE_TIMEOUT)
        self.assertIn("handshake", result.fallback_reason or "")

    async def test_bad_certificate_opportunistic(self) -> None:
        """A certificate for another name: TLS all the same, C{tls-unauthenticated}, no fallback."""
        server = await self.server(tls=0, tcp=0, certificate=self.ca.issue("other.example.org"))
        self.serve(f"""
            _sips._tcp SRV   0 1 {server.listening[TLS].port} sip
            _sip._tcp  SRV   0 1 {server.listening[TCP].port} sip
            sip        A     127.0.0.1
        """)
        client = await self.client()
        result = await client.request(self.options())
        self.assert_over(result, TLS, TLS_UNAUTHENTICATED)
        self.assertIsNone(result.fallback_reason)
        certificate = result.attempts[0].certificate
        assert certificate is not None
        self.assertFalse(certificate.matched)
        self.assertEqual(server.seen(TCP), [])

    async def test_udp_fallback(self) -> None:
        """
        No stream target works (TLS and TCP refused) for a C{sip:} URI:
        UDP carries it, with the reason and one C{udp-fallback} event.
        """
        server = await self.on_default_ports(closed=(5061, 5060), udp=5060)
        client = await self.client()
        result = await client.request(self.options())
        self.assert_over(result, UDP, CLEARTEXT)
        self.assertEqual(
            [(a.transport, a.outcome) for a in result.attempts], [(TLS, Outcome.REFUSED), (TCP, Outcome.REFUSED)]
        )
        self.assertIn("no stream target", result.fallback_reason or "")
        [event] = self.events_of(UDP_FALLBACK_EVENT)
        self.assertEqual((event["domain"], event["target"]), (DOMAIN, f"{DOMAIN}:5060"))
        self.assertEqual(len(event["attempts"]), 2)
        self.assertEqual(len(server.requests), 1)

    async def test_no_udp_fallback_when_disabled(self) -> None:
        """With C{allow_udp_fallback} off the same plan ends in a 503, and the UDP server sees nothing."""
        server = await self.on_default_ports(closed=(5061, 5060), udp=5060)
        client = await self.client(allow_udp_fallback=False)
        result = await client.request(self.options())
        self.assertEqual((result.status, result.synthesized), (503, "transport"))
        self.assertIn("every target failed", result.error or "")
        self.assertEqual(len(result.attempts), 2)
        self.assertEqual(server.requests, [])
        self.assertEqual(self.events_of(UDP_FALLBACK_EVENT), [])


class RefusedFallbackTests(_TLSFirstBase):
    """
    Where policy forbids a fallback, there is none: an error, said so.
    """

    async def test_bad_certificate_strict(self) -> None:
        """
        C{sips:} with a certificate for another name: a synthesized 503 with
        the reason, and no TCP or UDP attempt is ever made (the TCP and UDP
        servers the DNS names see nothing).
        """
        server = await self.server(tls=0, tcp=0, udp=0, certificate=self.ca.issue("other.example.org"))
        self.serve(f"""
            _sips._tcp SRV   0 1 {server.listening[TLS].port} sip
            _sip._tcp  SRV   0 1 {server.listening[TCP].port} sip
            _sip._udp  SRV   0 1 {server.listening[UDP].port} sip
            sip        A     127.0.0.1
        """)
        client = await self.client()
        result = await client.request(self.options(f"sips:{DOMAIN}"))
        self.assertEqual((result.status, result.synthesized), (503, "transport"))
        self.assertIn("strict", result.error or "")
        self.assertEqual([(a.transport, a.outcome) for a in result.attempts], [(TLS, Outcome.CERTIFICATE_MISMATCH)])
        assert result.plan is not None
        self.assertEqual({t.transport for t in result.plan.targets}, {TLS})
        self.assertEqual(server.requests, [])
        self.assertEqual(self.events_of(DOWNGRADE_EVENT) + self.events_of(UDP_FALLBACK_EVENT), [])

    async def test_strict_policy_never_uses_udp(self) -> None:
        """The strict policy on a C{sip:} URI: TLS refused, no TCP, no UDP: a 503."""
        server = await self.on_default_ports(closed=(5061,), tcp=5060, udp=5060)
        client = await self.client(policy=TLSPolicy.STRICT)
        result = await client.request(self.options())
        self.assertEqual((result.status, result.synthesized), (503, "transport"))
        self.assertEqual([(a.transport, a.outcome) for a in result.attempts], [(TLS, Outcome.REFUSED)])
        self.assertEqual(server.requests, [])

    async def test_pinned_target_fails(self) -> None:
        """
        TLS worked at a target (pinned); when it later fails, the request
        ends with a 503 saying so rather than going over TCP.
        """
        tls_server = await self.server(tls=0)
        tcp_server = await self.server(tcp=0)
        self.serve(f"""
            _sips._tcp SRV   0 1 {tls_server.listening[TLS].port} sip
            _sip._tcp  SRV   0 1 {tcp_server.listening[TCP].port} sip
            sip        A     127.0.0.1
        """)
        client = await self.client()
        first = await client.request(self.options())
        self.assert_over(first, TLS, AUTHENTICATED)
        self.assertEqual([entry.kind for entry in client.tls_memory.entries()], [MemoryKind.PIN])
        await tls_server.stack.close(0.0)
        await wait_for(lambda: not client.flows, "the client to see the TLS connection close")

        result = await client.request(self.options())
        self.assertEqual((result.status, result.synthesized), (503, "transport"))
        self.assertIn("pinned", result.error or "")
        self.assertEqual(
            [(a.transport, a.outcome) for a in result.attempts],
            [(TLS, Outcome.REFUSED), (TCP, Outcome.SKIPPED_DOWNGRADE_REFUSED)],
        )
        self.assertEqual(tcp_server.requests, [])
        self.assertEqual(self.events_of(DOWNGRADE_EVENT), [])


class FailoverTests(_TLSFirstBase):
    """
    RFC 3263 section 4.3: the next target on a connection failure, a
    timeout or a 503, with a new branch.
    """

    async def test_srv_priorities_on_connection_failure(self) -> None:
        """The priority-0 TLS target is refused: the priority-10 one carries the request, over TLS."""
        closed = self.closed_port("127.0.0.1")
        server = await self.server(tls=0)
        self.serve(f"""
            _sips._tcp SRV   0  1 {closed} sip1
            _sips._tcp SRV   10 1 {server.listening[TLS].port} sip2
            sip1       A     127.0.0.1
            sip2       A     127.0.0.1
        """)
        client = await self.client()
        result = await client.request(self.options())
        self.assert_over(result, TLS, AUTHENTICATED)
        self.assertEqual(
            [(a.host, a.outcome) for a in result.attempts],
            [(f"sip1.{DOMAIN}", Outcome.REFUSED), (f"sip2.{DOMAIN}", Outcome.CONNECTED)],
        )
        self.assertIsNone(result.fallback_reason)

    async def test_srv_weights_on_connection_failure(self) -> None:
        """Two targets of one priority, one refused: whichever the weights try first, the other answers."""
        closed = self.closed_port("127.0.0.1")
        server = await self.server(tls=0)
        self.serve(f"""
            _sips._tcp SRV   0 50 {closed} sip1
            _sips._tcp SRV   0 50 {server.listening[TLS].port} sip2
            sip1       A     127.0.0.1
            sip2       A     127.0.0.1
        """)
        client = await self.client()
        for _ in range(3):
            client.tls_memory.reset()
            result = await client.request(self.options())
            self.assert_over(result, TLS, AUTHENTICATED)
        self.assertEqual(len(server.requests), 3)

    async def test_503_fails_over(self) -> None:
        """
        A 503 from the priority-0 server: the request goes to the priority-10
        one with a new branch, over TLS again; the result lists the failover.
        """
        busy = await self.server(tls=0, status=503)
        good = await self.server(tls=0)
        self.serve(f"""
            _sips._tcp SRV   0  1 {busy.listening[TLS].port} sip1
            _sips._tcp SRV   10 1 {good.listening[TLS].port} sip2
            sip1       A     127.0.0.1
            sip2       A     127.0.0.1
        """)
        client = await self.client()
        result = await client.request(self.options())
        self.assert_over(result, TLS, AUTHENTICATED)
        [failover] = result.failovers
        self.assertEqual((failover.status, failover.synthesized, failover.target.host), (503, None, f"sip1.{DOMAIN}"))
        self.assertEqual(failover.security, AUTHENTICATED)
        [first], [second] = busy.requests, good.requests
        self.assertNotEqual(first.request.top_via.branch, second.request.top_via.branch)
        self.assertEqual(first.request.call_id, second.request.call_id)
        self.assertEqual(result.request.top_via.branch, second.request.top_via.branch)

    async def test_503_everywhere(self) -> None:
        """Every target answers 503: the last 503 is the result, each target was asked once."""
        first = await self.server(udp=0, status=503)
        second = await self.server(udp=0, status=503)
        self.serve(f"""
            _sip._udp  SRV   0  1 {first.listening[UDP].port} sip1
            _sip._udp  SRV   10 1 {second.listening[UDP].port} sip2
            sip1       A     127.0.0.1
            sip2       A     127.0.0.1
        """)
        client = await self.client(policy=TLSPolicy.RFC3263)
        result = await client.request(self.options())
        self.assertEqual((result.status, result.synthesized), (503, None))
        self.assertEqual(len(result.failovers), 1)
        self.assertEqual((len(first.requests), len(second.requests)), (1, 1))

    async def test_no_failover_from_tls_to_cleartext(self) -> None:
        """A 503 over TLS is not a reason to go on in cleartext: the TCP target is not tried."""
        busy = await self.server(tls=0, status=503)
        tcp = await self.server(tcp=0)
        self.serve(f"""
            _sips._tcp SRV   0 1 {busy.listening[TLS].port} sip1
            _sip._tcp  SRV   0 1 {tcp.listening[TCP].port} sip2
            sip1       A     127.0.0.1
            sip2       A     127.0.0.1
        """)
        client = await self.client()
        result = await client.request(self.options())
        self.assertEqual((result.status, result.synthesized, result.failovers), (503, None, ()))
        self.assertEqual(tcp.requests, [])

    async def cleartext_pair(self, **settings: Any) -> tuple[SIPStack, Server, Server]:
        """A domain whose TCP server answers 503 and whose UDP server answers 200."""
        busy = await self.server(tcp=0, status=503)
        udp = await self.server(udp=0)
        self.serve(f"""
            _sip._tcp  SRV   0 1 {busy.listening[TCP].port} sip1
            _sip._udp  SRV   0 1 {udp.listening[UDP].port} sip2
            sip1       A     127.0.0.1
            sip2       A     127.0.0.1
        """)
        return await self.client(**settings), busy, udp

    async def test_503_over_tcp_fails_over_to_udp(self) -> None:
        """A 503 over TCP moves the request to the UDP target: cleartext to cleartext."""
        client, busy, udp = await self.cleartext_pair()
        result = await client.request(self.options())
        self.assert_over(result, UDP, CLEARTEXT)
        self.assertEqual([failover.destination.transport for failover in result.failovers], [TCP])
        self.assertEqual((len(busy.requests), len(udp.requests)), (1, 1))

    async def test_no_failover_to_udp_when_fallback_off(self) -> None:
        """With C{allow_udp_fallback} off, the UDP target is never used, not even by failover."""
        client, busy, udp = await self.cleartext_pair(allow_udp_fallback=False)
        result = await client.request(self.options())
        self.assertEqual((result.status, result.synthesized, result.failovers), (503, None, ()))
        self.assertEqual((len(busy.requests), len(udp.requests)), (1, 0))

    async def test_no_failover_after_provisional(self) -> None:
        """An INVITE that got a 180 and then a 503 is not sent elsewhere."""
        busy = await self.server(tls=0, status=503, ring=True)
        good = await self.server(tls=0)
        self.serve(f"""
            _sips._tcp SRV   0  1 {busy.listening[TLS].port} sip1
            _sips._tcp SRV   10 1 {good.listening[TLS].port} sip2
            sip1       A     127.0.0.1
            sip2       A     127.0.0.1
        """)
        client = await self.client()
        invite = build_request(
            "INVITE",
            f"sip:bob@{DOMAIN}",
            from_="<sip:alice@example.org>",
            to=f"<sip:bob@{DOMAIN}>",
            contact=client.contact(),
        )
        result = await client.request(invite)
        self.assertEqual((result.status, [r.status for r in result.provisional]), (503, [180]))
        self.assertEqual(result.failovers, ())
        self.assertEqual(good.requests, [])

    async def test_timeout_fails_over(self) -> None:
        """
        A UDP target that never answers (Timer F, made short here): the
        next target gets the request, and the result lists the timeout.
        """
        silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(silent.close)
        silent.bind(("127.0.0.1", 0))
        good = await self.server(udp=0)
        self.serve(f"""
            _sip._udp  SRV   0  1 {silent.getsockname()[1]} sip1
            _sip._udp  SRV   10 1 {good.listening[UDP].port} sip2
            sip1       A     127.0.0.1
            sip2       A     127.0.0.1
        """)
        client = await self.client(policy=TLSPolicy.RFC3263, timers=TimerValues(t1=0.004, t2=0.032, t4=0.04))
        result = await client.request(self.options())
        self.assert_over(result, UDP, CLEARTEXT)
        [failover] = result.failovers
        self.assertEqual((failover.status, failover.synthesized), (408, "timeout"))
        self.assertEqual(len(good.requests), 1)


class ReuseTests(_TLSFirstBase):
    """
    Flows are reused when as secure as a fresh connect, and concurrent
    requests share one walk.
    """

    async def test_concurrent_requests_share_one_connection(self) -> None:
        """Three requests at once to a TLS domain: one TLS connection carries all three."""
        server = await self.server(tls=0)
        self.serve(f"""
            _sips._tcp SRV   0 1 {server.listening[TLS].port} sip
            sip        A     127.0.0.1
        """)
        client = await self.client()
        results = await gatherResults([client.request(self.options()) for _ in range(3)])
        for result in results:
            self.assert_over(result, TLS, AUTHENTICATED)
        self.assertEqual(len({result.flow for result in results}), 1)
        self.assertEqual(len(client.flows), 1)
        self.assertEqual(len({each.received.flow for each in server.requests}), 1)

    async def test_tcp_flow_not_reused_where_tls_would_be_tried(self) -> None:
        """
        An open TCP flow to the domain's TCP target is not used while its
        TLS target is not known to lack TLS: the request goes over TLS.
        """
        server = await self.server(tls=0, tcp=0)
        self.serve(f"""
            _sip._tcp  SRV   0 1 {server.listening[TCP].port} sip
            sip        A     127.0.0.1
        """)
        client = await self.client()
        first = await client.request(self.options())
        self.assert_over(first, TCP, CLEARTEXT)
        self.serve(f"""
            _sips._tcp SRV   0 1 {server.listening[TLS].port} sip
            _sip._tcp  SRV   0 1 {server.listening[TCP].port} sip
            sip        A     127.0.0.1
        """)
        client.resolver.cache_clear()  # type: ignore[attr-defined]  # a DNSResolver here
        second = await client.request(self.options())
        self.assert_over(second, TLS, AUTHENTICATED)

    async def test_strict_does_not_reuse_opportunistic(self) -> None:
        """A C{sips:} request does not ride a flow opened for opportunistic traffic."""
        server = await self.server(tls=0)
        self.serve(f"""
            _sips._tcp SRV   0 1 {server.listening[TLS].port} sip
            sip        A     127.0.0.1
        """)
        client = await self.client()
        opportunistic = await client.request(self.options())
        strict = await client.request(self.options(f"sips:{DOMAIN}"))
        self.assert_over(strict, TLS, AUTHENTICATED)
        self.assertNotEqual(opportunistic.flow, strict.flow)
        again = await client.request(self.options(f"sips:{DOMAIN}"))
        self.assertEqual(again.flow, strict.flow)


class FlagTests(_TLSFirstBase):
    """The authenticated-hop Via parameter, off by default."""

    async def via_params(self, certificate: IssuedCertificate | None, **settings: Any) -> Request:
        server = await self.server(tls=0, certificate=certificate)
        self.serve(f"""
            _sips._tcp SRV   0 1 {server.listening[TLS].port} sip
            sip        A     127.0.0.1
        """)
        client = await self.client(**settings)
        result = await client.request(self.options())
        self.assertEqual(result.status, 200)
        return server.requests[0].request

    async def test_off_by_default(self) -> None:
        seen = await self.via_params(None)
        self.assertFalse(seen.top_via.has_param(AUTHENTICATED_VIA_PARAM[0]))

    async def test_on_over_authenticated_tls(self) -> None:
        seen = await self.via_params(None, via_authenticated_param=True)
        self.assertEqual(seen.top_via.param(AUTHENTICATED_VIA_PARAM[0]), AUTHENTICATED_VIA_PARAM[1])
        self.assertEqual(seen.top_via.transport, "TLS")

    async def test_on_over_unauthenticated_tls(self) -> None:
        seen = await self.via_params(self.ca.issue("other.example.org"), via_authenticated_param=True)
        self.assertFalse(seen.top_via.has_param(AUTHENTICATED_VIA_PARAM[0]))
        self.assertEqual(seen.top_via.transport, "TLS")


class DialogTests(_TLSFirstBase):
    """In-dialog requests and the ACK of a 2xx use the same planning."""

    async def test_call_over_tls_found_in_dns(self) -> None:
        """
        An INVITE to a domain with TLS goes over TLS; its ACK and the BYE go
        to the callee's Contact, planned the same way.
        """
        server = await self.server(tls=0)
        self.serve(f"""
            _sips._tcp SRV   0 1 {server.listening[TLS].port} sip
            sip        A     127.0.0.1
        """)
        client = await self.client()
        invite = build_request(
            "INVITE",
            f"sip:bob@{DOMAIN}",
            from_="<sip:alice@example.org>",
            to=f"<sip:bob@{DOMAIN}>",
            contact=client.contact(),
        )
        result = await client.request(invite)
        self.assert_over(result, TLS, AUTHENTICATED)
        assert result.dialog is not None
        ack = await server.requests[0].acked
        assert ack is not None
        bye = await client.request(result.dialog.create_request("BYE"))
        self.assertEqual(bye.status, 200)
        self.assertEqual([each.request.method for each in server.requests], ["INVITE", "BYE"])
        self.assertEqual(bye.request.top_via.transport, "TLS")
