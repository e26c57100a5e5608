"""
Fast tests for L{sipstack.transport.stream}: the stream protocol's framing,
keep-alives, timers and output cap, on a L{StringTransport} and a
L{Clock}; and the transport layer's flow table driving such streams on a
L{MemoryReactorClock}.
"""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from sipstack.config import Limits
from sipstack.hop import (
    CLEARTEXT,
    TLS_UNAUTHENTICATED,
    FlowKey,
    HopSecurity,
    Peer,
    SecurityState,
    TransportKind,
)
from sipstack.message import Request
from sipstack.message.message import Message
from sipstack.transport.layer import TransportLayer
from sipstack.transport.stream import ConnectionLimitExceeded, SIPStreamFactory, SIPStreamProtocol
from tests.transport._helpers import request_bytes

LIMITS = Limits(
    idle_timeout=10.0,
    partial_message_timeout=4.0,
    handshake_timeout=2.0,
    max_message_bytes=2000,
    max_header_bytes=1000,
    max_output_buffer_bytes=1000,
)
AUTHENTICATED = HopSecurity(SecurityState.TLS_AUTHENTICATED, "example.com")


class FakeOwner:
    """
    A L{StreamOwner} that records what its streams report.
    """

    def __init__(self, limits: Limits = LIMITS) -> None:
        self.limits = limits
        self.messages: list[Message] = []
        self.ready: list[SIPStreamProtocol] = []
        self.closed: list[SIPStreamProtocol] = []
        self.refuse = False
        self.security = AUTHENTICATED
        self.fail_security = False
        self.fail_message = False

    def stream_opened(self, stream: SIPStreamProtocol) -> FlowKey:
        if self.refuse:
            raise ConnectionLimitExceeded("too many")
        return FlowKey(stream.kind, Peer("192.0.2.1", 5555), Peer("192.0.2.2", 5060), 1)

    def stream_ready(self, stream: SIPStreamProtocol) -> None:
        self.ready.append(stream)

    def stream_message(self, stream: SIPStreamProtocol, message: Message) -> None:
        if self.fail_message:
            raise RuntimeError("owner bug")
        self.messages.append(message)

    def stream_closed(self, stream: SIPStreamProtocol, reason: Failure) -> None:
        self.closed.append(stream)

    def stream_security(self, stream: SIPStreamProtocol) -> HopSecurity:
        if self.fail_security:
            raise RuntimeError("no certificate")
        return self.security


class StreamProtocolTests(SynchronousTestCase):
    """
    L{SIPStreamProtocol} on a L{StringTransport} with a L{Clock}.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.owner = FakeOwner()

    def connect(
        self, kind: TransportKind = TransportKind.TCP, *, outbound: bool = False
    ) -> tuple[SIPStreamProtocol, StringTransport]:
        protocol = SIPStreamProtocol(self.owner, self.clock, kind, outbound=outbound)
        transport = StringTransport()
        protocol.makeConnection(transport)
        return protocol, transport

    def lose(self, protocol: SIPStreamProtocol) -> None:
        protocol.connectionLost(Failure(ConnectionDone()))

    def delays(self) -> list[float]:
        """When each pending call is due, from now, sorted."""
        return sorted(call.getTime() - self.clock.seconds() for call in self.clock.getDelayedCalls())

    # Life cycle

    def test_tcp_ready_at_once(self) -> None:
        """
        A TCP stream is ready as soon as it is connected, as cleartext, with
        only the idle timer running and itself registered as the producer.
        """
        protocol, transport = self.connect()
        self.assertIs(self.successResultOf(protocol.ready), protocol)
        self.assertTrue(protocol.is_ready)
        self.assertEqual(protocol.security, CLEARTEXT)
        self.assertEqual(self.owner.ready, [protocol])
        self.assertIs(transport.producer, protocol)
        self.assertEqual(self.delays(), [LIMITS.idle_timeout])

    def test_tls_waits_for_handshake(self) -> None:
        """
        A TLS stream is not ready before its handshake: the handshake and idle
        timers run, and its security reads C{tls-unauthenticated}, never
        cleartext.
        """
        protocol, _ = self.connect(TransportKind.TLS)
        self.assertNoResult(protocol.ready)
        self.assertFalse(protocol.is_ready)
        self.assertEqual(protocol.security, TLS_UNAUTHENTICATED)
        self.assertEqual(self.delays(), [LIMITS.handshake_timeout, LIMITS.idle_timeout])

    def test_handshake_completed(self) -> None:
        """
        C{handshakeCompleted} cancels the handshake timer and makes the stream
        ready with the security state its owner determined.
        """
        protocol, _ = self.connect(TransportKind.TLS)
        protocol.handshakeCompleted()
        self.assertIs(self.successResultOf(protocol.ready), protocol)
        self.assertEqual(protocol.security, AUTHENTICATED)
        self.assertEqual(self.delays(), [LIMITS.idle_timeout])

    def test_handshake_timeout(self) -> None:
        """
        A handshake that does not complete in C{handshake_timeout} aborts the
        connection.
        """
        _protocol, transport = self.connect(TransportKind.TLS)
        self.clock.advance(LIMITS.handshake_timeout - 0.01)
        self.assertFalse(transport.disconnected)
        self.clock.advance(0.01)
        self.assertTrue(transport.disconnected)

    def test_security_error_aborts(self) -> None:
        """
        If the owner cannot tell the security of a completed handshake, the
        connection is aborted and the error logged, never passed on.
        """
        self.owner.fail_security = True
        protocol, transport = self.connect(TransportKind.TLS, outbound=True)
        protocol.handshakeCompleted()
        self.assertTrue(transport.disconnected)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.lose(protocol)
        self.failureResultOf(protocol.ready, ConnectionDone)

    def test_outbound_lost_before_ready(self) -> None:
        """
        An outbound stream lost before it was ready fails C{ready} with the
        reason, after its owner has forgotten the flow.
        """
        protocol, _ = self.connect(TransportKind.TLS, outbound=True)
        closed_first: list[bool] = []

        def check(failure: Failure) -> Failure:
            closed_first.append(protocol in self.owner.closed)
            return failure

        protocol.ready.addErrback(check)
        self.lose(protocol)
        self.failureResultOf(protocol.ready, ConnectionDone)
        self.assertEqual(closed_first, [True])

    def test_inbound_lost_before_ready(self) -> None:
        """
        An inbound stream lost before its handshake leaves no unhandled
        failure behind (nobody waits for its readiness).
        """
        protocol, _ = self.connect(TransportKind.TLS)
        self.lose(protocol)
        self.assertIsNone(self.successResultOf(protocol.ready))
        self.assertIsNone(self.successResultOf(protocol.lost))

    def test_nothing_scheduled_after_connection_lost(self) -> None:
        """
        Losing the connection cancels every timer (idle, partial message,
        handshake), tells the owner, and fires C{lost}.
        """
        protocol, _ = self.connect(TransportKind.TLS)
        protocol.dataReceived(b"INVITE sip:")
        self.assertEqual(len(self.clock.getDelayedCalls()), 3)
        self.lose(protocol)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertTrue(protocol.closed)
        self.assertEqual(self.owner.closed, [protocol])
        self.successResultOf(protocol.lost)

    def test_refused_by_owner(self) -> None:
        """
        A stream its owner refuses (a connection limit) is aborted at once,
        with no timer and no flow; its loss is not reported to the owner.
        """
        self.owner.refuse = True
        protocol, transport = self.connect()
        self.assertTrue(transport.disconnected)
        self.assertIsNone(protocol.flow)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.lose(protocol)
        self.assertEqual(self.owner.closed, [])
        self.successResultOf(protocol.lost)

    # Idle timer

    def test_idle_timeout(self) -> None:
        """
        A connection with no traffic for C{idle_timeout} is aborted.
        """
        _, transport = self.connect()
        self.clock.advance(LIMITS.idle_timeout - 0.01)
        self.assertFalse(transport.disconnected)
        self.clock.advance(0.01)
        self.assertTrue(transport.disconnected)

    def test_idle_reset_by_received_traffic(self) -> None:
        """
        Every received byte restarts the idle timer.
        """
        protocol, transport = self.connect()
        self.clock.advance(LIMITS.idle_timeout * 0.6)
        protocol.dataReceived(b"\r\n\r\n")
        self.clock.advance(LIMITS.idle_timeout * 0.6)
        self.assertFalse(transport.disconnected)
        self.assertEqual(self.delays(), [LIMITS.idle_timeout * 0.4])
        self.clock.advance(LIMITS.idle_timeout * 0.4)
        self.assertTrue(transport.disconnected)

    def test_idle_reset_by_sent_traffic(self) -> None:
        """
        Every write restarts the idle timer too.
        """
        protocol, transport = self.connect(outbound=True)
        self.clock.advance(LIMITS.idle_timeout * 0.6)
        protocol.ping()
        self.clock.advance(LIMITS.idle_timeout * 0.6)
        self.assertFalse(transport.disconnected)

    # Partial-message timer

    def test_partial_timer_started_and_cancelled(self) -> None:
        """
        The first bytes of a message start the partial-message timer; the
        message's completion cancels it, and the message is handed over.
        """
        protocol, _ = self.connect()
        data = request_bytes()
        protocol.dataReceived(data[:30])
        self.assertEqual(self.delays(), [LIMITS.partial_message_timeout, LIMITS.idle_timeout])
        protocol.dataReceived(data[30:])
        self.assertEqual(self.delays(), [LIMITS.idle_timeout])
        [message] = self.owner.messages
        assert isinstance(message, Request)
        self.assertEqual(message.method, "OPTIONS")

    def test_partial_timer_not_reset_by_dribbling(self) -> None:
        """
        A peer dribbling a message byte by byte keeps the idle timer fresh
        but not the partial-message timer: it is aborted C{partial_message_timeout}
        after the message began (slow-loris defence).
        """
        protocol, transport = self.connect()
        data = request_bytes()
        for index in range(int(LIMITS.partial_message_timeout / 0.5) - 1):
            protocol.dataReceived(data[index : index + 1])
            self.clock.advance(0.5)
        self.assertFalse(transport.disconnected)
        self.clock.advance(0.5)
        self.assertTrue(transport.disconnected)
        self.assertEqual(self.owner.messages, [])

    def test_keepalive_starts_no_partial_timer(self) -> None:
        """
        CRLF keep-alives between messages are not a partial message.
        """
        protocol, _ = self.connect()
        protocol.dataReceived(b"\r\n\r\n")
        protocol.dataReceived(b"\r\n")
        self.assertEqual(self.delays(), [LIMITS.idle_timeout])

    # Keep-alives

    def test_ping_answered_with_pong(self) -> None:
        """
        A double CRLF from the peer is answered with a single CRLF.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(b"\r\n\r\n")
        self.assertEqual(transport.value(), b"\r\n")

    def test_ping_and_pong_counted(self) -> None:
        """
        L{SIPStreamProtocol.ping} sends a double CRLF; a single CRLF back on
        a stream we opened counts as a pong.
        """
        protocol, transport = self.connect(outbound=True)
        protocol.ping()
        self.assertEqual(transport.value(), b"\r\n\r\n")
        protocol.dataReceived(b"\r\n")
        protocol.dataReceived(b"\r")
        protocol.dataReceived(b"\n")
        self.assertEqual(protocol.pongs_received, 2)
        self.assertEqual(transport.value(), b"\r\n\r\n")

    # Faults

    def test_bad_request_answered_stream_kept(self) -> None:
        """
        A well-framed invalid request is answered with 400 and the stream
        goes on to the next message.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(request_bytes().replace(b"CSeq: ", b"CSeq: abc ") + request_bytes())
        self.assertTrue(transport.value().startswith(b"SIP/2.0 400 Bad CSeq"))
        self.assertFalse(transport.disconnecting)
        self.assertEqual(len(self.owner.messages), 1)
        self.assertEqual(len(self.flushLoggedErrors()), 0)

    def test_malformed_response_dropped(self) -> None:
        """
        A well-framed but malformed response is dropped silently: no answer,
        nothing handed over, and the stream goes on.
        """
        protocol, transport = self.connect(outbound=True)
        protocol.dataReceived(b"SIP/2.0 2x0 OK\r\nContent-Length: 0\r\n\r\n" + request_bytes())
        self.assertEqual(transport.value(), b"")
        self.assertFalse(transport.disconnecting)
        self.assertEqual(len(self.owner.messages), 1)

    def test_oversize_answered_513_then_closed(self) -> None:
        """
        A message over C{max_message_bytes} is answered with 513, then the
        connection is closed (after the answer is written); what follows is
        ignored.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(request_bytes(body=b"x" * 3000))
        self.assertTrue(transport.value().startswith(b"SIP/2.0 513 "))
        self.assertTrue(transport.disconnecting)
        self.assertFalse(transport.disconnected)
        protocol.dataReceived(request_bytes())
        self.assertEqual(self.owner.messages, [])

    def test_unframeable_closed(self) -> None:
        """
        A header section over C{max_header_bytes} with no end cannot be
        framed: the connection is closed without an answer.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(b"\x00garbage" * 200)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(transport.value(), b"")
        self.assertEqual(self.owner.messages, [])

    def test_owner_error_aborts(self) -> None:
        """
        An exception from the owner while handing over a message aborts this
        connection and is logged; it never reaches the reactor.
        """
        self.owner.fail_message = True
        protocol, transport = self.connect()
        protocol.dataReceived(request_bytes())
        self.assertTrue(transport.disconnected)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    # Output cap

    def test_output_cap_while_paused(self) -> None:
        """
        Output written while the transport has paused us is counted; past
        C{max_output_buffer_bytes} the connection is aborted.
        """
        protocol, transport = self.connect()
        protocol.pauseProducing()
        protocol.write(b"x" * 600)
        self.assertFalse(transport.disconnected)
        protocol.write(b"x" * 600)
        self.assertTrue(transport.disconnected)
        self.assertEqual(len(transport.value()), 600)

    def test_output_count_reset_on_resume(self) -> None:
        """
        Resuming (the peer caught up) resets the count.
        """
        protocol, transport = self.connect()
        for _ in range(3):
            protocol.pauseProducing()
            protocol.write(b"x" * 900)
            protocol.resumeProducing()
        self.assertFalse(transport.disconnected)

    def test_output_not_capped_when_not_paused(self) -> None:
        """
        A peer that reads (the transport never pauses us) may receive any
        amount.
        """
        protocol, transport = self.connect()
        for _ in range(10):
            protocol.write(b"x" * 900)
        self.assertFalse(transport.disconnected)

    def test_no_write_after_close(self) -> None:
        """
        Nothing is written once the stream is closing.
        """
        protocol, transport = self.connect()
        protocol.close()
        protocol.write(b"late")
        self.assertEqual(transport.value(), b"")
        self.assertTrue(transport.disconnecting)

    def test_factory(self) -> None:
        """
        L{SIPStreamFactory} builds protocols of its kind and direction.
        """
        factory = SIPStreamFactory(self.owner, self.clock, TransportKind.TLS, outbound=True)
        protocol = factory.buildProtocol(IPv4Address("TCP", "192.0.2.1", 5061))
        self.assertEqual((protocol.kind, protocol.outbound, protocol.factory), (TransportKind.TLS, True, factory))


class LayerFlowTableTests(SynchronousTestCase):
    """
    L{TransportLayer} as the owner of streams on fake transports, on a
    L{MemoryReactorClock}: its connection accounting and keep-alive timer.
    """

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.layer = TransportLayer(
            self.reactor,
            lambda received: None,
            limits=Limits(max_connections=3, max_connections_per_peer=2),
            keepalive_interval=30.0,
        )

    def attach(self, host: str, *, outbound: bool = False) -> tuple[SIPStreamProtocol, StringTransport]:
        protocol = SIPStreamProtocol(self.layer, self.reactor, TransportKind.TCP, outbound=outbound)
        transport = StringTransport(
            hostAddress=IPv4Address("TCP", "192.0.2.2", 5060), peerAddress=IPv4Address("TCP", host, 40000)
        )
        protocol.makeConnection(transport)
        return protocol, transport

    def test_per_peer_limit_counts_inbound_only(self) -> None:
        """
        C{max_connections_per_peer} refuses a third connection I{from} one
        address; connections we opened I{to} it are not counted.
        """
        self.attach("192.0.2.9", outbound=True)
        first, _ = self.attach("192.0.2.9")
        _second, _ = self.attach("192.0.2.9")
        _, third = self.attach("192.0.2.9")
        self.assertTrue(third.disconnected)
        self.assertEqual(len(self.layer.flows), 3)
        first.connectionLost(Failure(ConnectionDone()))
        _, again = self.attach("192.0.2.9")
        self.assertFalse(again.disconnected)

    def test_total_limit(self) -> None:
        """
        C{max_connections} refuses a connection once that many are open, from
        any address.
        """
        for host in ("192.0.2.1", "192.0.2.2", "192.0.2.3"):
            self.attach(host)
        _, extra = self.attach("192.0.2.4")
        self.assertTrue(extra.disconnected)
        self.assertEqual(len(self.layer.flows), 3)

    def test_keepalive_pings_outbound_streams_only(self) -> None:
        """
        Every C{keepalive_interval} the layer pings the streams it opened, not
        those it accepted.
        """
        _, outbound = self.attach("192.0.2.1", outbound=True)
        _, inbound = self.attach("192.0.2.2")
        self.reactor.advance(30.0)
        self.assertEqual(outbound.value(), b"\r\n\r\n")
        self.assertEqual(inbound.value(), b"")

    def test_close_stops_everything(self) -> None:
        """
        L{TransportLayer.close} aborts every stream and stops the keep-alive
        timer; once the streams are gone it fires and nothing is scheduled.
        """
        protocol, transport = self.attach("192.0.2.1", outbound=True)
        closed = self.layer.close()
        self.assertTrue(transport.disconnected)
        self.assertNoResult(closed)
        protocol.connectionLost(Failure(ConnectionDone()))
        self.successResultOf(closed)
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.assertEqual(self.layer.flows, {})
