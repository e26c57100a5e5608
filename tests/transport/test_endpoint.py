"""
Tests for L{sipstack.transport.endpoint}, L{sipstack.transport.report} and
L{sipstack.transport.tls_memory}: the TLS-first endpoint over real
loopback sockets with certificates made in the test (TLS and TCP SIP
servers, a port that answers TLS in plaintext, one that never answers the
handshake, closed ports), its order of attempts on a L{MemoryReactorClock},
and L{TLSMemory} on a L{Clock}.
"""

from __future__ import annotations

import datetime
import socket
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import ConnectionAborted, ConnectionRefusedError, TimeoutError
from twisted.internet.interfaces import IHandshakeListener, IStreamClientEndpoint
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver, MemoryReactorClock, StringTransport
from twisted.logger import LogLevel, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from sipstack.config import Limits, TLSFirstSettings, TLSPolicy
from sipstack.hop import (
    CLEARTEXT,
    TLS_UNAUTHENTICATED,
    Destination,
    FlowKey,
    HopSecurity,
    Peer,
    SecurityState,
    TransportKind,
)
from sipstack.message.message import Message
from sipstack.routing.plan import Plan, Target, TargetSource
from sipstack.testing.certs import CertificateAuthority, IssuedCertificate, self_signed
from sipstack.transport.endpoint import DOWNGRADE_EVENT, TLSFirstEndpoint
from sipstack.transport.layer import TransportLayer
from sipstack.transport.report import (
    Attempt,
    ConnectFailed,
    ConnectResult,
    DowngradeRefused,
    Outcome,
    StreamPlanExhausted,
)
from sipstack.transport.stream import HandshakeTimedOut, SIPStreamFactory, SIPStreamProtocol
from sipstack.transport.tls import server_name_indication
from sipstack.transport.tls_memory import MemoryKind, TLSMemory
from tests.transport._helpers import (
    NO_IPV6,
    Inbox,
    description,
    fast_limits,
    make_layer,
    make_request,
    reactor,
    wait_for,
    write_pem_files,
)

DOMAIN = "example.com"
HOST = "sip.example.com"
AUTHENTICATED = HopSecurity(SecurityState.TLS_AUTHENTICATED, DOMAIN)
TLS = TransportKind.TLS
TCP = TransportKind.TCP


def make_target(kind: TransportKind, port: int, *addresses: str, host: str = HOST, order: int | None = None) -> Target:
    """A target on the loopback (127.0.0.1 unless C{addresses} are given)."""
    return Target(kind, host, port, addresses or ("127.0.0.1",), TargetSource.SRV, order)


def make_plan(*targets: Target, policy: TLSPolicy = TLSPolicy.OPPORTUNISTIC, domain: str | None = DOMAIN) -> Plan:
    scheme = "sips" if policy is TLSPolicy.STRICT else "sip"
    return Plan(f"{scheme}:{domain or '127.0.0.1'}", domain, policy, targets)


def outcomes(attempts: tuple[Attempt, ...]) -> list[tuple[TransportKind, Outcome]]:
    return [(attempt.transport, attempt.outcome) for attempt in attempts]


class _RawServer(Protocol):
    """
    A TCP server connection that either says nothing at all or answers the
    first bytes it gets with C{answer} (plaintext, whatever was sent).
    """

    def __init__(self, answer: bytes | None, close: bool) -> None:
        self.answer = answer
        self.close = close
        self.lost: Deferred[None] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        assert self.transport is not None
        if self.answer is not None:
            self.transport.write(self.answer)
            self.answer = None
            if self.close:
                self.transport.loseConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.lost.callback(None)


class _RawServerFactory(Factory):
    def __init__(self, answer: bytes | None, close: bool) -> None:
        self.answer = answer
        self.close = close
        self.connections: list[_RawServer] = []

    def buildProtocol(self, addr: object) -> _RawServer:
        server = _RawServer(self.answer, self.close)
        self.connections.append(server)
        return server


class _EndpointTestsBase(TestCase):
    """
    Real servers on 127.0.0.1 (and ::1), a client transport layer whose
    protocols the endpoint builds, and a shared L{TLSMemory}.
    """

    def setUp(self) -> None:
        self.ca = CertificateAuthority.generate("sipstack test CA")
        self.memory_clock = Clock()
        self.memory = TLSMemory(self.memory_clock, TLSFirstSettings(negative_ttl=60, pin_ttl=120))
        self.client_inbox = Inbox()
        self.client = make_layer(self, self.client_inbox, limits=fast_limits(), trust_root=self.ca.cert_pem)
        self.events = EventLoggingObserver()
        globalLogPublisher.addObserver(self.events)
        self.addCleanup(globalLogPublisher.removeObserver, self.events)

    @property
    def downgrades(self) -> list[Any]:
        """The downgrade events logged so far."""
        return [event for event in self.events if event.get("sipstack_event") == DOWNGRADE_EVENT]

    # Servers

    async def tls_server(self, certificate: IssuedCertificate, host: str = "127.0.0.1") -> tuple[TransportLayer, int]:
        """A TLS SIP server presenting C{certificate}."""
        server = make_layer(self, Inbox(), limits=fast_limits())
        peer = await server.listen(description("tls", host, options=write_pem_files(self, certificate)))
        return server, peer.port

    async def tcp_server(self, host: str = "127.0.0.1") -> tuple[TransportLayer, Inbox, int]:
        """A TCP SIP server."""
        inbox = Inbox()
        server = make_layer(self, inbox, limits=fast_limits())
        peer = await server.listen(description("tcp", host))
        return server, inbox, peer.port

    def raw_server(self, answer: bytes | None, *, close: bool = False) -> tuple[_RawServerFactory, int]:
        """A TCP server that answers in plaintext, or never answers."""
        factory = _RawServerFactory(answer, close)
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")

        async def stop() -> None:
            await port.stopListening()
            for connection in factory.connections:
                if not connection.lost.called:
                    assert connection.transport is not None
                    connection.transport.abortConnection()  # type: ignore[attr-defined]  # ITCPTransport
                await connection.lost

        self.addCleanup(lambda: Deferred.fromCoroutine(stop()))
        return factory, port.getHost().port

    def closed_port(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """A port bound but not listening: connections to it are refused."""
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self.addCleanup(sock.close)
        sock.bind((host, port))
        bound: int = sock.getsockname()[1]
        return bound

    # Connecting

    def endpoint(self, plan: Plan, *, handshake_timeout: float = 3.0) -> TLSFirstEndpoint:
        return TLSFirstEndpoint(
            reactor,
            plan,
            memory=self.memory,
            settings=TLSFirstSettings(attempt_delay=0.05),
            limits=Limits(handshake_timeout=handshake_timeout, connect_timeout=2.0),
            trust_root=self.ca.cert_pem,
        )

    def factory(self) -> SIPStreamFactory:
        """The client layer's protocols, of whichever kind the endpoint asks for."""
        return SIPStreamFactory(self.client, reactor, TCP, outbound=True)

    async def connect(self, plan: Plan, **kwargs: Any) -> ConnectResult:
        result = await self.endpoint(plan, **kwargs).connect_with_report(self.factory())
        protocol = result.protocol
        assert isinstance(protocol, SIPStreamProtocol)
        # The protocol agrees with the report.
        self.assertTrue(protocol.is_ready)
        self.assertEqual(protocol.kind, result.report.transport)
        self.assertEqual(protocol.security, result.report.security)
        self.assertEqual(protocol.destination, result.report.destination)
        self.assertIn(protocol.flow, self.client.flows)
        return result

    async def refused(self, plan: Plan, exception: type[Exception], **kwargs: Any) -> Any:
        with self.assertRaises(exception) as caught:
            await self.endpoint(plan, **kwargs).connect_with_report(self.factory())
        return caught.exception


class AuthenticationTests(_EndpointTestsBase):
    """
    TLS comes up, and its security state follows the certificate and the
    policy (RFC 5922).
    """

    async def test_sip_uri_san_authenticated(self) -> None:
        """
        A certificate from the trusted CA with a C{sip:example.com} URI
        SubjectAltName gives C{tls-authenticated} even in opportunistic
        mode; SNI is the SIP domain (not the SRV target); the attempt
        records the certificate; a request goes out on the connection; the
        target is pinned.
        """
        server, tls_port = await self.tls_server(self.ca.issue(DOMAIN, sip_uris=[f"sip:{DOMAIN}"]))
        _, _, tcp_port = await self.tcp_server()
        result = await self.connect(make_plan(make_target(TLS, tls_port), make_target(TCP, tcp_port)))
        report = result.report
        self.assertEqual(report.transport, TLS)
        self.assertEqual(report.security, AUTHENTICATED)
        self.assertIsNone(report.fallback_reason)
        self.assertFalse(report.downgraded)
        [attempt] = report.attempts
        self.assertEqual((attempt.transport, attempt.address, attempt.port), (TLS, "127.0.0.1", tls_port))
        self.assertEqual(attempt.outcome, Outcome.CONNECTED)
        self.assertEqual(attempt.security, AUTHENTICATED)
        assert attempt.certificate is not None and attempt.connect_elapsed is not None
        self.assertEqual(attempt.certificate.identities, (DOMAIN,))
        self.assertIn(f"URI:sip:{DOMAIN}", attempt.certificate.alt_names)
        self.assertTrue(attempt.certificate.chain_verified)
        self.assertTrue(attempt.certificate.matched)
        self.assertGreaterEqual(attempt.elapsed, attempt.connect_elapsed)
        self.assertEqual(self.downgrades, [])

        await wait_for(lambda: server.flows, "the server's flow")
        [flow] = server.flows
        stream = server.stream(flow)
        assert stream is not None
        self.assertEqual(server_name_indication(stream.transport), DOMAIN)

        protocol = result.protocol
        assert isinstance(protocol, SIPStreamProtocol) and protocol.destination is not None
        sent = await self.client.send_request(make_request(), protocol.destination, flow=protocol.flow)
        self.assertEqual(sent.security, AUTHENTICATED)
        self.assertEqual(sent.message.top_via.transport, "TLS")

        [pin] = self.memory.entries()
        self.assertEqual((pin.kind, pin.host, pin.port), (MemoryKind.PIN, HOST, tls_port))

    async def test_dns_san_only_authenticated_strict(self) -> None:
        """
        Under the strict policy, a certificate with only a DNS
        SubjectAltName for the domain authenticates it.
        """
        _, tls_port = await self.tls_server(self.ca.issue(DOMAIN, dns=[DOMAIN]))
        result = await self.connect(make_plan(make_target(TLS, tls_port), policy=TLSPolicy.STRICT))
        self.assertEqual(result.report.security, AUTHENTICATED)
        assert result.report.destination is not None
        self.assertTrue(result.report.destination.authenticated)
        [attempt] = result.report.attempts
        assert attempt.certificate is not None
        self.assertEqual(attempt.certificate.alt_names, (f"DNS:{DOMAIN}",))

    async def test_wrong_name_opportunistic(self) -> None:
        """
        Opportunistic mode keeps a connection whose certificate names
        another domain, as C{tls-unauthenticated}: not a fallback.
        """
        _, tls_port = await self.tls_server(self.ca.issue("other.example.org"))
        tcp, _, tcp_port = await self.tcp_server()
        result = await self.connect(make_plan(make_target(TLS, tls_port), make_target(TCP, tcp_port)))
        self.assertEqual(result.report.security, TLS_UNAUTHENTICATED)
        self.assertIsNone(result.report.fallback_reason)
        [attempt] = result.report.attempts
        assert attempt.certificate is not None
        self.assertTrue(attempt.certificate.chain_verified)
        self.assertFalse(attempt.certificate.matched)
        self.assertEqual(attempt.certificate.identities, ("other.example.org",))
        self.assertEqual(tcp.flows, {})

    async def test_wrong_name_strict(self) -> None:
        """
        Under the strict policy the same certificate is an error: no TCP
        attempt is made (the TCP server sees no connection).
        """
        _, tls_port = await self.tls_server(self.ca.issue("other.example.org"))
        tcp, tcp_port = self.raw_server(None)
        plan = make_plan(make_target(TLS, tls_port), make_target(TCP, tcp_port), policy=TLSPolicy.STRICT)
        failure = await self.refused(plan, DowngradeRefused)
        self.assertEqual(
            outcomes(failure.attempts), [(TLS, Outcome.CERTIFICATE_MISMATCH), (TCP, Outcome.SKIPPED_POLICY)]
        )
        self.assertIn("other.example.org", failure.attempts[0].error)
        certificate = failure.attempts[0].certificate
        assert certificate is not None
        self.assertEqual((certificate.identities, certificate.matched), (("other.example.org",), False))
        self.assertIsNone(failure.report.security)
        self.assertEqual(tcp.connections, [])
        self.assertEqual(self.client.flows, {})
        self.assertEqual(self.memory.entries(), [])

    async def test_expired(self) -> None:
        """
        An expired certificate: C{tls-unauthenticated} in opportunistic
        mode (its chain recorded as not verified), an invalid certificate
        under the strict policy.
        """
        yesterday = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)
        _, tls_port = await self.tls_server(self.ca.issue(DOMAIN, not_after=yesterday))
        result = await self.connect(make_plan(make_target(TLS, tls_port)))
        self.assertEqual(result.report.security, TLS_UNAUTHENTICATED)
        certificate = result.report.attempts[0].certificate
        assert certificate is not None
        self.assertFalse(certificate.chain_verified)
        self.assertTrue(certificate.matched)

        failure = await self.refused(make_plan(make_target(TLS, tls_port), policy=TLSPolicy.STRICT), DowngradeRefused)
        self.assertEqual(outcomes(failure.attempts), [(TLS, Outcome.CERTIFICATE_INVALID)])

    async def test_self_signed(self) -> None:
        """
        A self-signed certificate: C{tls-unauthenticated} in opportunistic
        mode, an invalid certificate under the strict policy.
        """
        _, tls_port = await self.tls_server(self_signed(DOMAIN))
        result = await self.connect(make_plan(make_target(TLS, tls_port)))
        self.assertEqual(result.report.security, TLS_UNAUTHENTICATED)
        failure = await self.refused(make_plan(make_target(TLS, tls_port), policy=TLSPolicy.STRICT), DowngradeRefused)
        self.assertEqual(outcomes(failure.attempts), [(TLS, Outcome.CERTIFICATE_INVALID)])
        self.assertIn("certificate verify failed", failure.attempts[0].error)
        certificate = failure.attempts[0].certificate
        assert certificate is not None
        self.assertEqual((certificate.chain_verified, certificate.matched), (False, True))

    async def test_strict_tries_every_tls_target(self) -> None:
        """
        Under the strict policy a certificate failure at one TLS target
        moves on to the next TLS target (never to TCP).
        """
        _, bad_port = await self.tls_server(self_signed(DOMAIN))
        _, good_port = await self.tls_server(self.ca.issue(DOMAIN))
        plan = make_plan(make_target(TLS, bad_port), make_target(TLS, good_port), policy=TLSPolicy.STRICT)
        result = await self.connect(plan)
        self.assertEqual(
            outcomes(result.report.attempts), [(TLS, Outcome.CERTIFICATE_INVALID), (TLS, Outcome.CONNECTED)]
        )
        self.assertEqual(result.report.security, AUTHENTICATED)


class FallbackTests(_EndpointTestsBase):
    """
    TCP after a definite TLS failure, with a reason and one log event.
    """

    def assert_one_downgrade(self, reason_part: str, tcp_port: int, level: LogLevel = LogLevel.warn) -> None:
        [event] = self.downgrades
        self.assertEqual(event["domain"], DOMAIN)
        self.assertEqual(event["target"], f"{HOST}:{tcp_port}")
        self.assertIn(reason_part, event["reason"])
        self.assertEqual([each["transport"] for each in event["attempts"]][-1], "TCP")
        self.assertEqual(event["log_level"], level)

    async def test_tls_port_closed(self) -> None:
        """
        A refused TLS port falls back to TCP: the report gives the reason,
        one downgrade event is logged, and "no TLS" is remembered.
        """
        tls_port = self.closed_port()
        _, inbox, tcp_port = await self.tcp_server()
        result = await self.connect(make_plan(make_target(TLS, tls_port), make_target(TCP, tcp_port)))
        report = result.report
        self.assertEqual(outcomes(report.attempts), [(TLS, Outcome.REFUSED), (TCP, Outcome.CONNECTED)])
        self.assertEqual((report.transport, report.security), (TCP, CLEARTEXT))
        self.assertTrue(report.downgraded)
        assert report.fallback_reason is not None
        self.assertIn(f"{HOST}:{tls_port}", report.fallback_reason)
        self.assertIn("refused", report.fallback_reason)
        self.assert_one_downgrade("refused", tcp_port)
        [entry] = self.memory.entries()
        self.assertEqual((entry.kind, entry.host, entry.port), (MemoryKind.NO_TLS, HOST, tls_port))
        self.assertEqual(entry.expires, 60)

        protocol = result.protocol
        assert isinstance(protocol, SIPStreamProtocol) and protocol.destination is not None
        await self.client.send_request(make_request(), protocol.destination, flow=protocol.flow)
        received = await inbox.wait()
        self.assertEqual(received.flow.transport, TCP)

    async def test_plaintext_sip_answer(self) -> None:
        """
        A TLS port that answers the ClientHello with a plaintext SIP 400 is
        a TLS protocol error: TCP follows, with the reason.
        """
        raw, tls_port = self.raw_server(b"SIP/2.0 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        _, _, tcp_port = await self.tcp_server()
        result = await self.connect(make_plan(make_target(TLS, tls_port), make_target(TCP, tcp_port)))
        self.assertEqual(outcomes(result.report.attempts), [(TLS, Outcome.HANDSHAKE_FAILED), (TCP, Outcome.CONNECTED)])
        self.assertIn("TLS", result.report.attempts[0].error)
        self.assertEqual(len(raw.connections), 1)
        self.assert_one_downgrade("handshake-failed", tcp_port)

    async def test_plaintext_http_answer_and_close(self) -> None:
        """
        A TLS port that answers in plaintext HTTP and closes is a handshake
        failure too.
        """
        _, tls_port = self.raw_server(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n", close=True)
        _, _, tcp_port = await self.tcp_server()
        result = await self.connect(make_plan(make_target(TLS, tls_port), make_target(TCP, tcp_port)))
        self.assertEqual(outcomes(result.report.attempts), [(TLS, Outcome.HANDSHAKE_FAILED), (TCP, Outcome.CONNECTED)])

    async def test_handshake_never_answered(self) -> None:
        """
        A TLS port that accepts TCP but never answers the handshake times
        out after C{handshake_timeout}, then TCP is used.
        """
        raw, tls_port = self.raw_server(None)
        _, _, tcp_port = await self.tcp_server()
        started = reactor.seconds()
        result = await self.connect(
            make_plan(make_target(TLS, tls_port), make_target(TCP, tcp_port)), handshake_timeout=0.2
        )
        self.assertGreaterEqual(reactor.seconds() - started, 0.2)
        tls_attempt = result.report.attempts[0]
        self.assertEqual(tls_attempt.outcome, Outcome.HANDSHAKE_TIMEOUT)
        self.assertGreaterEqual(tls_attempt.elapsed, 0.19)
        self.assertEqual(result.report.transport, TCP)
        self.assert_one_downgrade("handshake-timeout", tcp_port)
        await wait_for(lambda: all(each.lost.called for each in raw.connections), "the abandoned TLS attempt to close")

    async def test_strict_never_falls_back(self) -> None:
        """
        Under the strict policy a refused or silent TLS port is an error,
        and the TCP target is not tried.
        """
        tcp, tcp_port = self.raw_server(None)
        closed = self.closed_port()
        _, silent = self.raw_server(None)
        plan = make_plan(
            make_target(TLS, closed), make_target(TLS, silent), make_target(TCP, tcp_port), policy=TLSPolicy.STRICT
        )
        failure = await self.refused(plan, DowngradeRefused, handshake_timeout=0.2)
        self.assertEqual(
            outcomes(failure.attempts),
            [(TLS, Outcome.REFUSED), (TLS, Outcome.HANDSHAKE_TIMEOUT), (TCP, Outcome.SKIPPED_POLICY)],
        )
        self.assertEqual(tcp.connections, [])
        self.assertEqual(self.downgrades, [])

    async def test_negative_cache(self) -> None:
        """
        After a fallback, the next connect skips the TLS attempt (it is
        listed as skipped, and the TLS port sees no second connection) and
        the downgrade is logged at info level; once the entry expires, TLS
        is tried again.
        """
        raw, tls_port = self.raw_server(b"SIP/2.0 400 Bad Request\r\n\r\n")
        _, _, tcp_port = await self.tcp_server()
        plan = make_plan(make_target(TLS, tls_port), make_target(TCP, tcp_port))
        await self.connect(plan)
        self.assertEqual(len(raw.connections), 1)

        self.memory_clock.advance(59)
        second = await self.connect(plan)
        self.assertEqual(
            outcomes(second.report.attempts), [(TLS, Outcome.SKIPPED_NEGATIVE_CACHE), (TCP, Outcome.CONNECTED)]
        )
        self.assertIsNone(second.report.attempts[0].address)
        self.assertIn("remembered", second.report.fallback_reason or "")
        self.assertEqual(len(raw.connections), 1)
        self.assertEqual([event["log_level"] for event in self.downgrades], [LogLevel.warn, LogLevel.info])

        self.memory_clock.advance(1)
        third = await self.connect(plan)
        self.assertEqual(outcomes(third.report.attempts), [(TLS, Outcome.HANDSHAKE_FAILED), (TCP, Outcome.CONNECTED)])
        self.assertEqual(len(raw.connections), 2)

    async def test_pinned_target_failure_is_an_error(self) -> None:
        """
        A target where TLS worked is pinned: when its TLS later fails, the
        connect fails rather than downgrade, and no "no TLS" entry is made;
        once the pin is forgotten, TCP follows again.
        """
        server, tls_port = await self.tls_server(self.ca.issue(DOMAIN))
        tcp, _, tcp_port = await self.tcp_server()
        plan = make_plan(make_target(TLS, tls_port), make_target(TCP, tcp_port))
        first = await self.connect(plan)
        self.assertEqual(first.report.transport, TLS)
        await server.close()

        failure = await self.refused(plan, DowngradeRefused)
        self.assertEqual(outcomes(failure.attempts), [(TLS, Outcome.REFUSED), (TCP, Outcome.SKIPPED_DOWNGRADE_REFUSED)])
        self.assertIn("pinned", str(failure))
        self.assertEqual(tcp.flows, {})
        self.assertEqual([entry.kind for entry in self.memory.entries()], [MemoryKind.PIN])
        self.assertEqual(self.downgrades, [])

        self.memory.forget(HOST, tls_port)
        result = await self.connect(plan)
        self.assertEqual(result.report.transport, TCP)

    async def test_plan_exhausted(self) -> None:
        """
        When every stream target fails, L{StreamPlanExhausted} carries the
        attempts (the stack may then use UDP); nothing is remembered.
        """
        plan = make_plan(
            make_target(TLS, self.closed_port()),
            Target(TLS, "empty.example.com", 5061, (), TargetSource.SRV),
            make_target(TCP, self.closed_port()),
        )
        failure = await self.refused(plan, StreamPlanExhausted)
        self.assertEqual(
            outcomes(failure.attempts),
            [(TLS, Outcome.REFUSED), (TLS, Outcome.NO_ADDRESSES), (TCP, Outcome.REFUSED)],
        )
        self.assertEqual(self.memory.entries(), [])
        self.assertEqual(self.downgrades, [])


class PolicyTests(_EndpointTestsBase):
    """
    The off and rfc3263 policies.
    """

    async def test_off_makes_no_tls_attempt(self) -> None:
        """
        Under the off policy TLS targets are skipped (the TLS server sees
        nothing) and no downgrade is reported.
        """
        tls, tls_port = self.raw_server(None)
        _, _, tcp_port = await self.tcp_server()
        result = await self.connect(
            make_plan(make_target(TLS, tls_port), make_target(TCP, tcp_port), policy=TLSPolicy.OFF)
        )
        self.assertEqual(outcomes(result.report.attempts), [(TLS, Outcome.SKIPPED_POLICY), (TCP, Outcome.CONNECTED)])
        self.assertIsNone(result.report.fallback_reason)
        self.assertEqual(tls.connections, [])
        self.assertEqual(self.downgrades, [])

    async def test_rfc3263_follows_the_plan_order(self) -> None:
        """
        The rfc3263 policy takes a plan that lists TCP first as it is; the
        opportunistic policy tries TLS first with the same targets.
        """
        tls, tls_port = await self.tls_server(self.ca.issue(DOMAIN))
        _, _, tcp_port = await self.tcp_server()
        targets = (make_target(TCP, tcp_port), make_target(TLS, tls_port))
        plain = await self.connect(make_plan(*targets, policy=TLSPolicy.RFC3263))
        self.assertEqual(outcomes(plain.report.attempts), [(TCP, Outcome.CONNECTED)])
        self.assertEqual(tls.flows, {})
        first = await self.connect(make_plan(*targets))
        self.assertEqual(outcomes(first.report.attempts), [(TLS, Outcome.CONNECTED)])

    async def test_rfc3263_ignores_the_memory(self) -> None:
        """
        The rfc3263 policy neither skips a target remembered as without
        TLS nor refuses to go on after a pinned target failed.
        """
        raw, tls_port = self.raw_server(b"SIP/2.0 400 Bad Request\r\n\r\n")
        _, _, tcp_port = await self.tcp_server()
        self.memory.remember_no_tls(HOST, tls_port, "test")
        plan = make_plan(make_target(TLS, tls_port), make_target(TCP, tcp_port), policy=TLSPolicy.RFC3263)
        result = await self.connect(plan)
        self.assertEqual(outcomes(result.report.attempts), [(TLS, Outcome.HANDSHAKE_FAILED), (TCP, Outcome.CONNECTED)])
        self.assertEqual(len(raw.connections), 1)

    async def test_naptr_order_kept(self) -> None:
        """
        Opportunistic mode puts TLS first only among targets of one NAPTR
        order: a TCP target of a better order still comes first.
        """
        tls, tls_port = await self.tls_server(self.ca.issue(DOMAIN))
        _, _, tcp_port = await self.tcp_server()
        plan = make_plan(make_target(TCP, tcp_port, order=10), make_target(TLS, tls_port, order=20))
        result = await self.connect(plan)
        self.assertEqual(outcomes(result.report.attempts), [(TCP, Outcome.CONNECTED)])
        self.assertEqual(tls.flows, {})

    async def test_connect_fires_with_the_protocol(self) -> None:
        """
        As an C{IStreamClientEndpoint}, C{connect} fires with the ready
        protocol.
        """
        _, _, tcp_port = await self.tcp_server()
        endpoint = self.endpoint(make_plan(make_target(TCP, tcp_port)))
        self.assertTrue(verifyObject(IStreamClientEndpoint, endpoint))
        protocol = await endpoint.connect(self.factory())
        assert isinstance(protocol, SIPStreamProtocol)
        self.assertTrue(protocol.is_ready)
        self.assertEqual(protocol.kind, TCP)


class AddressFamilyTests(_EndpointTestsBase):
    """
    Happy eyeballs across the addresses of one target.
    """

    skip = NO_IPV6

    async def test_ipv6_unreachable_ipv4_connects(self) -> None:
        """
        A TLS target listing ::1 (refused) then 127.0.0.1 connects over
        IPv4; both attempts are reported.
        """
        _, tls_port = await self.tls_server(self.ca.issue(DOMAIN), host="127.0.0.1")
        self.closed_port("::1", tls_port)
        result = await self.connect(make_plan(make_target(TLS, tls_port, "::1", "127.0.0.1")))
        self.assertEqual(
            [(attempt.address, attempt.outcome) for attempt in result.report.attempts],
            [("::1", Outcome.REFUSED), ("127.0.0.1", Outcome.CONNECTED)],
        )
        self.assertEqual(result.report.security, AUTHENTICATED)
        assert result.report.destination is not None
        self.assertEqual(result.report.destination.peer, Peer("127.0.0.1", tls_port))

    async def test_ipv4_unreachable_ipv6_connects(self) -> None:
        """
        A TCP target listing 127.0.0.1 (refused) then ::1 connects over
        IPv6.
        """
        _, _, tcp_port = await self.tcp_server(host="::1")
        self.closed_port("127.0.0.1", tcp_port)
        result = await self.connect(make_plan(make_target(TCP, tcp_port, "127.0.0.1", "::1")))
        self.assertEqual(
            [(attempt.address, attempt.outcome) for attempt in result.report.attempts],
            [("127.0.0.1", Outcome.REFUSED), ("::1", Outcome.CONNECTED)],
        )


# Deterministic tests of the order of attempts


@implementer(IHandshakeListener)
class _ReadyProtocol(Protocol):
    """
    A protocol outside sipstack that fits the endpoint's contract: C{ready}
    fires on connection (TCP) or handshake (TLS).
    """

    def __init__(self, destination: Destination | None) -> None:
        self.destination = destination
        self.ready: Deferred[_ReadyProtocol] = Deferred()

    def connectionMade(self) -> None:
        if self.destination is None or self.destination.transport is TCP:
            self.ready.callback(self)

    def handshakeCompleted(self) -> None:
        self.ready.callback(self)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if not self.ready.called:
            self.ready.errback(reason)


class _ReadyFactory(Factory):
    def __init__(self, destination: Destination | None = None) -> None:
        self.destination = destination
        self.asked: list[Destination] = []

    def for_attempt(self, destination: Destination) -> _ReadyFactory:
        self.asked.append(destination)
        return _ReadyFactory(destination)

    def buildProtocol(self, addr: object) -> _ReadyProtocol:
        return _ReadyProtocol(self.destination)


class SequenceTests(SynchronousTestCase):
    """
    The endpoint on a L{MemoryReactorClock}: what is connected when.
    """

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.memory = TLSMemory(self.reactor)
        self.limits = Limits(connect_timeout=7.0, handshake_timeout=4.0)

    def connect(self, plan: Plan, factory: Factory | None = None) -> Deferred[ConnectResult]:
        endpoint = TLSFirstEndpoint(
            self.reactor,
            plan,
            memory=self.memory,
            settings=TLSFirstSettings(attempt_delay=0.25),
            limits=self.limits,
        )
        return endpoint.connect_with_report(factory if factory is not None else _ReadyFactory())

    def connecting(self) -> list[tuple[str, int]]:
        return [(host, port) for host, port, *_ in self.reactor.tcpClients]

    def fail_attempt(self, index: int, exception: Exception) -> None:
        factory = self.reactor.tcpClients[index][2]
        factory.clientConnectionFailed(self.reactor.connectors[index], Failure(exception))

    def succeed(self, index: int) -> StringTransport:
        host, port, factory, *_ = self.reactor.tcpClients[index]
        address = (IPv6Address if ":" in host else IPv4Address)("TCP", host, port)
        protocol = factory.buildProtocol(address)
        assert protocol is not None
        transport = StringTransport(peerAddress=address)
        protocol.makeConnection(transport)
        return transport

    def test_never_races_tls_against_tcp(self) -> None:
        """
        TLS targets are tried one at a time, and TCP only once both failed,
        however long each takes; the connect timeout is the limit's.
        """
        plan = make_plan(make_target(TLS, 5061), make_target(TLS, 5063), make_target(TCP, 5060))
        connecting = self.connect(plan)
        self.assertEqual(self.connecting(), [("127.0.0.1", 5061)])
        self.assertEqual(self.reactor.tcpClients[0][3], 7.0)
        self.reactor.advance(100)
        self.assertEqual(self.connecting(), [("127.0.0.1", 5061)])
        self.fail_attempt(0, ConnectionRefusedError())
        self.assertEqual(self.connecting()[1:], [("127.0.0.1", 5063)])
        self.reactor.advance(100)
        self.fail_attempt(1, TimeoutError())
        self.assertEqual(self.connecting()[2:], [("127.0.0.1", 5060)])
        self.assertNoResult(connecting)
        self.succeed(2)
        report = self.successResultOf(connecting).report
        self.assertEqual(
            outcomes(report.attempts), [(TLS, Outcome.REFUSED), (TLS, Outcome.TIMEOUT), (TCP, Outcome.CONNECTED)]
        )
        self.assertEqual(report.attempts[1].elapsed, 100)
        assert report.fallback_reason is not None
        self.assertIn("5063", report.fallback_reason)

    def test_failed_target_ends_at_once(self) -> None:
        """
        When every address of a target has failed, the next target is tried
        at once, not at L{HostnameEndpoint}'s next attempt-delay tick: a
        refused TLS port costs a round trip, not a quarter second.
        """
        plan = make_plan(make_target(TLS, 5061, "::1", "127.0.0.1"), make_target(TCP, 5060))
        connecting = self.connect(plan)
        self.fail_attempt(0, ConnectionRefusedError())
        self.reactor.advance(0.25)
        self.assertEqual(self.connecting(), [("::1", 5061), ("127.0.0.1", 5061)])
        self.fail_attempt(1, ConnectionRefusedError())
        self.reactor.advance(0)
        self.assertEqual(self.connecting()[2:], [("127.0.0.1", 5060)])
        self.succeed(2)
        report = self.successResultOf(connecting).report
        self.assertEqual(
            outcomes(report.attempts), [(TLS, Outcome.REFUSED), (TLS, Outcome.REFUSED), (TCP, Outcome.CONNECTED)]
        )

    def test_happy_eyeballs_within_a_target(self) -> None:
        """
        The addresses of one target race, C{attempt_delay} apart; the loser
        is abandoned and reported so; the factory learns the winner.
        """
        factory = _ReadyFactory()
        connecting = self.connect(make_plan(make_target(TCP, 5060, "::1", "127.0.0.1")), factory)
        self.assertEqual(self.connecting(), [("::1", 5060)])
        self.reactor.advance(0.25)
        self.assertEqual(self.connecting(), [("::1", 5060), ("127.0.0.1", 5060)])
        self.succeed(1)
        result = self.successResultOf(connecting)
        self.assertTrue(self.reactor.connectors[0].stoppedConnecting)
        self.assertEqual(
            [(attempt.address, attempt.outcome) for attempt in result.report.attempts],
            [("::1", Outcome.ABANDONED), ("127.0.0.1", Outcome.CONNECTED)],
        )
        self.assertEqual(factory.asked, [Destination(TCP, Peer("127.0.0.1", 5060))])

    def test_handshake_timeout(self) -> None:
        """
        A TLS connection whose handshake does not complete within the limit
        is aborted, and the next target is tried.
        """
        connecting = self.connect(make_plan(make_target(TLS, 5061), make_target(TCP, 5060)))
        transport = self.succeed(0)
        self.assertTrue(transport.value())  # the ClientHello went out
        self.reactor.advance(3.9)
        self.assertEqual(len(self.reactor.tcpClients), 1)
        self.reactor.advance(0.1)
        self.assertTrue(transport.disconnected)
        self.assertEqual(self.connecting()[1:], [("127.0.0.1", 5060)])
        self.succeed(1)
        report = self.successResultOf(connecting).report
        self.assertEqual(outcomes(report.attempts), [(TLS, Outcome.HANDSHAKE_TIMEOUT), (TCP, Outcome.CONNECTED)])

    def test_sni_and_destination(self) -> None:
        """
        The factory is asked per attempt with the TLS destination: the SIP
        domain as server name, authenticated under the strict policy.
        """
        factory = _ReadyFactory()
        self.connect(make_plan(make_target(TLS, 5061), policy=TLSPolicy.STRICT), factory)
        self.succeed(0)
        self.assertEqual(factory.asked, [Destination(TLS, Peer("127.0.0.1", 5061), DOMAIN, True)])

    def test_cancel(self) -> None:
        """
        Cancelling the connect stops the attempt in progress and fails with
        L{CancelledError}.
        """
        connecting = self.connect(make_plan(make_target(TLS, 5061), make_target(TCP, 5060)))
        connecting.cancel()
        self.failureResultOf(connecting, CancelledError)
        self.assertTrue(self.reactor.connectors[0].stoppedConnecting)
        self.assertEqual(len(self.reactor.tcpClients), 1)

    def test_cancel_during_handshake(self) -> None:
        """
        Cancelling during the handshake aborts that connection.
        """
        connecting = self.connect(make_plan(make_target(TLS, 5061), make_target(TCP, 5060)))
        transport = self.succeed(0)
        connecting.cancel()
        self.failureResultOf(connecting, CancelledError)
        self.assertTrue(transport.disconnected)
        self.assertEqual(len(self.reactor.tcpClients), 1)

    def test_protocol_without_ready(self) -> None:
        """
        A protocol that does not keep the contract (no C{ready}) is an
        error, not a reason to try the next target.
        """
        connecting = self.connect(
            make_plan(make_target(TCP, 5060), make_target(TCP, 5062)), Factory.forProtocol(Protocol)
        )
        self.succeed(0)
        failure = self.failureResultOf(connecting, ConnectFailed)
        self.assertEqual(outcomes(failure.value.attempts), [(TCP, Outcome.ERROR)])
        self.assertEqual(len(self.reactor.tcpClients), 1)

    def test_off_with_only_tls(self) -> None:
        """
        The off policy with only TLS targets exhausts the plan without a
        connection attempt.
        """
        connecting = self.connect(make_plan(make_target(TLS, 5061), policy=TLSPolicy.OFF))
        failure = self.failureResultOf(connecting, StreamPlanExhausted)
        self.assertEqual(outcomes(failure.value.attempts), [(TLS, Outcome.SKIPPED_POLICY)])
        self.assertEqual(self.reactor.tcpClients, [])


# The stream protocol's side of the contract


class _Owner:
    """A minimal L{StreamOwner <sipstack.transport.stream.StreamOwner>}."""

    limits = Limits(handshake_timeout=2.0)

    def stream_opened(self, stream: SIPStreamProtocol) -> FlowKey:
        return FlowKey(stream.kind, Peer("192.0.2.1", 5061), Peer("192.0.2.2", 40000), 1)

    def stream_ready(self, stream: SIPStreamProtocol) -> None:
        pass

    def stream_message(self, stream: SIPStreamProtocol, message: Message) -> None:
        pass

    def stream_closed(self, stream: SIPStreamProtocol, reason: Failure) -> None:
        pass

    def stream_security(self, stream: SIPStreamProtocol) -> HopSecurity:
        return TLS_UNAUTHENTICATED


class StreamContractTests(SynchronousTestCase):
    """
    L{SIPStreamFactory.for_attempt} and L{HandshakeTimedOut}.
    """

    def test_for_attempt(self) -> None:
        """
        The factory for an attempt builds protocols of the destination's
        transport that carry the destination.
        """
        clock = Clock()
        factory = SIPStreamFactory(_Owner(), clock, TCP, outbound=True)
        destination = Destination(TLS, Peer("192.0.2.1", 5061), DOMAIN, True)
        protocol = factory.for_attempt(destination).buildProtocol(None)
        self.assertEqual((protocol.kind, protocol.destination, protocol.outbound), (TLS, destination, True))
        self.assertEqual(factory.buildProtocol(None).kind, TCP)

    def test_handshake_timeout_reason(self) -> None:
        """
        When the protocol's own handshake timer fires, C{ready} fails with
        L{HandshakeTimedOut}, which is a L{ConnectionAborted}.
        """
        clock = Clock()
        protocol = SIPStreamProtocol(_Owner(), clock, TLS, outbound=True)
        transport = StringTransport()
        protocol.makeConnection(transport)
        clock.advance(2.0)
        self.assertTrue(transport.disconnected)
        protocol.connectionLost(Failure(ConnectionAborted()))
        failure = self.failureResultOf(protocol.ready, HandshakeTimedOut)
        self.assertIsInstance(failure.value, ConnectionAborted)


# The memory


class TLSMemoryTests(SynchronousTestCase):
    """
    L{TLSMemory}: TTLs, bounds, inspection and reset.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        settings = TLSFirstSettings(negative_ttl=10, negative_entries=3, pin_ttl=100, pin_entries=2)
        self.memory = TLSMemory(self.clock, settings)

    def test_no_tls_expires(self) -> None:
        """A "no TLS" entry lasts C{negative_ttl} seconds."""
        entry = self.memory.remember_no_tls("SIP.Example.com.", 5061, "refused")
        assert entry is not None
        self.assertEqual((entry.host, entry.port, entry.expires, entry.reason), (HOST, 5061, 10, "refused"))
        self.clock.advance(9.9)
        self.assertEqual(self.memory.no_tls(HOST, 5061), entry)
        self.assertIsNone(self.memory.no_tls(HOST, 5062))
        self.clock.advance(0.1)
        self.assertIsNone(self.memory.no_tls(HOST, 5061))
        self.assertEqual(self.memory.entries(), [])

    def test_pin_expires(self) -> None:
        """A pin lasts C{pin_ttl} seconds; pinning again renews it."""
        self.memory.remember_tls(HOST, 5061)
        self.clock.advance(60)
        self.memory.remember_tls(HOST, 5061)
        self.clock.advance(60)
        pin = self.memory.pinned(HOST, 5061)
        assert pin is not None
        self.assertEqual((pin.kind, pin.expires), (MemoryKind.PIN, 160))
        self.clock.advance(40)
        self.assertIsNone(self.memory.pinned(HOST, 5061))

    def test_bounded(self) -> None:
        """
        Each kind keeps at most its number of entries, dropping the oldest;
        remembering again makes an entry the newest.
        """
        for port in (1, 2, 3):
            self.memory.remember_no_tls(HOST, port, "x")
            self.clock.advance(1)
        self.memory.remember_no_tls(HOST, 1, "again")
        self.memory.remember_no_tls(HOST, 4, "x")
        self.assertEqual([entry.port for entry in self.memory.entries()], [3, 1, 4])
        for port in (1, 2, 3):
            self.memory.remember_tls(HOST, port)
        pins = [entry.port for entry in self.memory.entries() if entry.kind is MemoryKind.PIN]
        self.assertEqual(pins, [2, 3])

    def test_pin_and_no_tls_exclude_each_other(self) -> None:
        """
        A pin removes the "no TLS" entry of its target, and a pinned target
        is not marked "no TLS".
        """
        self.memory.remember_no_tls(HOST, 5061, "refused")
        self.memory.remember_tls(HOST, 5061)
        self.assertIsNone(self.memory.no_tls(HOST, 5061))
        self.assertIsNone(self.memory.remember_no_tls(HOST, 5061, "refused"))
        self.assertEqual([entry.kind for entry in self.memory.entries()], [MemoryKind.PIN])

    def test_forget_and_reset(self) -> None:
        """Entries are forgotten per target and kind, or all at once."""
        self.memory.remember_no_tls(HOST, 1, "x")
        self.memory.remember_tls(HOST, 2)
        self.memory.remember_tls(HOST, 3)
        self.memory.forget(HOST, 2, MemoryKind.NO_TLS)
        self.assertIsNotNone(self.memory.pinned(HOST, 2))
        self.memory.forget(HOST.upper(), 2)
        self.assertIsNone(self.memory.pinned(HOST, 2))
        self.memory.reset(MemoryKind.PIN)
        self.assertEqual([entry.port for entry in self.memory.entries()], [1])
        self.memory.reset()
        self.assertEqual(self.memory.entries(), [])

    @given(
        st.lists(
            st.tuples(st.booleans(), st.integers(1, 6), st.floats(0, 20, allow_nan=False)),
            max_size=40,
        )
    )
    def test_bounds_and_expiry_hold(self, operations: list[tuple[bool, int, float]]) -> None:
        """
        Whatever is remembered when, the memory never holds more than its
        bounds nor an expired entry, and the newest remembering is found.
        """
        clock = Clock()
        memory = TLSMemory(clock, TLSFirstSettings(negative_ttl=10, negative_entries=3, pin_ttl=15, pin_entries=2))
        for pin, port, wait in operations:
            clock.advance(wait)
            if pin:
                memory.remember_tls(HOST, port)
                self.assertIsNotNone(memory.pinned(HOST, port))
            elif memory.remember_no_tls(HOST, port, "x") is not None:
                self.assertIsNotNone(memory.no_tls(HOST, port))
            entries = memory.entries()
            self.assertLessEqual(len([e for e in entries if e.kind is MemoryKind.NO_TLS]), 3)
            self.assertLessEqual(len([e for e in entries if e.kind is MemoryKind.PIN]), 2)
            self.assertTrue(all(entry.expires > clock.seconds() for entry in entries))
            keys = [(entry.kind, entry.port) for entry in entries]
            self.assertEqual(len(keys), len(set(keys)))
