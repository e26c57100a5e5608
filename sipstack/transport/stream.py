# -*- test-case-name: tests.transport.test_stream -*-
"""
SIP over a byte stream (TCP, or TLS through Twisted's TLS wrapper).

L{SIPStreamProtocol} frames bytes with the core's
L{StreamFramer<sipstack.message.StreamFramer>}, answers keep-alive pings,
answers or drops what cannot be parsed, and hands every message to its
L{StreamOwner} (the transport layer).  It also enforces the per-connection
limits: an idle timeout, a partial-message (slow-loris) timeout, a TLS
handshake timeout and a cap on output queued for a slow reader.

It catches everything at its boundary: a bug or a hostile peer closes this
connection and is logged, and never reaches the reactor or another peer.
"""

from __future__ import annotations

from typing import Protocol as TypingProtocol

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionAborted
from twisted.internet.interfaces import IDelayedCall, IHandshakeListener, IPushProducer, IReactorTime
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from sipstack.config import Limits
from sipstack.errors import FaultAction, RemoteProtocolError
from sipstack.hop import CLEARTEXT, TLS_UNAUTHENTICATED, Destination, FlowKey, HopSecurity, TransportKind
from sipstack.message import KeepAlive, StreamFramer, build_error_response, serialize
from sipstack.message.message import Message

__all__ = ["StreamOwner", "SIPStreamProtocol", "SIPStreamFactory", "ConnectionLimitExceeded", "HandshakeTimedOut"]


class ConnectionLimitExceeded(Exception):
    """A stream was refused because a connection limit was reached."""


class HandshakeTimedOut(ConnectionAborted):
    """
    The TLS handshake did not complete within C{Limits.handshake_timeout}.

    L{SIPStreamProtocol.ready} fails with it (rather than with the bare
    L{ConnectionAborted} of the abort), so that a caller such as the
    TLS-first endpoint can tell "the peer never answered the handshake", a
    reason to fall back, from other aborts.  It is a L{ConnectionAborted},
    so code that checked for that still does.
    """


class StreamOwner(TypingProtocol):
    """
    What a stream protocol reports to: the transport layer's flow table.
    """

    limits: Limits

    def stream_opened(self, stream: SIPStreamProtocol) -> FlowKey:
        """A connection is up (for TLS: TCP is up; the handshake may follow)."""

    def stream_ready(self, stream: SIPStreamProtocol) -> None:
        """The stream can carry messages (TLS: the handshake completed)."""

    def stream_message(self, stream: SIPStreamProtocol, message: Message) -> None:
        """A message arrived on the stream."""

    def stream_closed(self, stream: SIPStreamProtocol, reason: Failure) -> None:
        """The connection is gone."""

    def stream_security(self, stream: SIPStreamProtocol) -> HopSecurity:
        """The security state of a stream whose handshake just completed."""


@implementer(IHandshakeListener, IPushProducer)
class SIPStreamProtocol(Protocol):
    """
    One SIP connection over TCP or TLS.

    @ivar kind: L{TransportKind.TCP} or L{TransportKind.TLS}.
    @ivar outbound: whether we opened the connection (then a single CRLF
        from the peer is a pong to our ping, RFC 5626 section 3.5.1).
    @ivar destination: for an outgoing stream, the destination it was opened
        for (its SNI and whether the peer must be authenticated), which the
        owner reads to judge the handshake; L{None} for an inbound stream.
    @ivar flow: the flow key, once connected.
    @ivar security: the hop's security state; for TLS, C{tls-unauthenticated}
        until the handshake completed.
    @ivar ready: fires with this protocol when it can carry messages (after
        the TLS handshake), or fails if the connection is lost before.
    @ivar lost: fires when the connection is gone.
    """

    _log = Logger()

    def __init__(
        self,
        owner: StreamOwner,
        clock: IReactorTime,
        kind: TransportKind,
        *,
        outbound: bool,
        destination: Destination | None = None,
    ) -> None:
        self._owner = owner
        self._clock = clock
        self.kind = kind
        self.outbound = outbound
        self.destination = destination
        self.flow: FlowKey | None = None
        # Until the handshake says more, a TLS stream is at best unauthenticated
        # (it must never be listed as cleartext, nor as authenticated).
        self.security: HopSecurity = CLEARTEXT if kind is TransportKind.TCP else TLS_UNAUTHENTICATED
        self.ready: Deferred[SIPStreamProtocol] = Deferred()
        self.lost: Deferred[None] = Deferred()
        self.is_ready = False
        self.closed = False
        self.pongs_received = 0
        self._framer = StreamFramer(owner.limits, pongs_expected=outbound)
        self._idle: IDelayedCall | None = None
        self._partial: IDelayedCall | None = None
        self._handshake: IDelayedCall | None = None
        self._paused = False
        self._queued_while_paused = 0
        self._handshake_timed_out = False

    # Connection life cycle

    def connectionMade(self) -> None:
        try:
            self.flow = self._owner.stream_opened(self)
        except ConnectionLimitExceeded as error:
            self._log.warn("Refused a connection: {reason}", reason=str(error))
            assert self.transport is not None
            self.transport.abortConnection()  # type: ignore[attr-defined]  # ITCPTransport
            return
        assert self.transport is not None
        self.transport.registerProducer(self, True)  # type: ignore[attr-defined]  # IConsumer
        self._restart_idle()
        if self.kind is TransportKind.TLS:
            self._handshake = self._clock.callLater(self._owner.limits.handshake_timeout, self._timed_out, "handshake")
        else:
            self._become_ready(CLEARTEXT)

    def handshakeCompleted(self) -> None:
        """The TLS handshake is done: only now is the flow usable (docs/tls-first.md)."""
        self._cancel("_handshake")
        try:
            security = self._owner.stream_security(self)
        except Exception:
            self._log.failure("Could not determine the security of {flow}", flow=self.flow)
            self.abort()
            return
        self._become_ready(security)

    def _become_ready(self, security: HopSecurity) -> None:
        self.security = security
        self.is_ready = True
        self._owner.stream_ready(self)
        self.ready.callback(self)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.closed = True
        for name in ("_idle", "_partial", "_handshake"):
            self._cancel(name)
        # The owner forgets the flow first, so that whoever C{ready} or
        # C{lost} wakes up finds the flow table already without it.
        if self.flow is not None:
            self._owner.stream_closed(self, reason)
        if not self.ready.called:
            if self._handshake_timed_out:
                timed_out = HandshakeTimedOut(f"no TLS handshake within {self._owner.limits.handshake_timeout} s")
                reason = Failure(timed_out)  # type: ignore[no-untyped-call]  # unannotated in Twisted 26.10
            self.ready.errback(reason)
            if not self.outbound:
                # Nobody waits for an inbound stream to become ready: do not
                # leave an unhandled failure behind.
                self.ready.addErrback(lambda _: None)
        self.lost.callback(None)

    # Receiving

    def dataReceived(self, data: bytes) -> None:
        try:
            self._restart_idle()
            self._framer.feed(data)
            while not self.closed:
                try:
                    event = self._framer.next_event()
                except RemoteProtocolError as error:
                    self._refuse(error)
                    continue
                if event is None:
                    break
                if event is KeepAlive.PING:
                    self.write(b"\r\n")
                elif event is KeepAlive.PONG:
                    self.pongs_received += 1
                elif not isinstance(event, KeepAlive):
                    self._owner.stream_message(self, event)
            self._watch_partial()
        except Exception:
            self._log.failure("Closing {flow} after an unexpected error", flow=self.flow)
            self.abort()

    def _refuse(self, error: RemoteProtocolError) -> None:
        response = build_error_response(error)
        self._log.warn(
            "Bad message from {flow}: {status} {reason} ({action})",
            flow=self.flow,
            status=error.status,
            reason=error.reason,
            action=error.action.value,
        )
        if response is not None:
            self.write(serialize(response))
        if error.action is FaultAction.CLOSE:
            self.close()

    def _watch_partial(self) -> None:
        if self._framer.in_message:
            if self._partial is None and not self.closed:
                self._partial = self._clock.callLater(
                    self._owner.limits.partial_message_timeout, self._timed_out, "partial message"
                )
        else:
            self._cancel("_partial")

    # Sending

    def write(self, data: bytes) -> None:
        """Send bytes, enforcing the cap on output queued for a slow reader."""
        if self.closed or self.transport is None:
            return
        if self._paused:
            self._queued_while_paused += len(data)
            if self._queued_while_paused > self._owner.limits.max_output_buffer_bytes:
                self._log.warn("Dropping {flow}: the peer does not read its data", flow=self.flow)
                self.abort()
                return
        self.transport.write(data)
        self._restart_idle()

    def send_message(self, message: Message) -> bytes:
        """Serialize and send a message; returns the bytes sent."""
        data = serialize(message)
        self.write(data)
        return data

    def ping(self) -> None:
        """Send an RFC 5626 keep-alive ping (a double CRLF)."""
        self.write(b"\r\n\r\n")

    def close(self) -> None:
        """Close after pending output is written."""
        if not self.closed and self.transport is not None:
            self.closed = True
            self.transport.loseConnection()

    def abort(self) -> None:
        """Close at once, dropping pending output."""
        if self.transport is not None:
            self.closed = True
            self.transport.abortConnection()  # type: ignore[attr-defined]  # ITCPTransport

    # IPushProducer: the transport tells us when its buffer fills up.

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        self._queued_while_paused = 0

    def stopProducing(self) -> None:
        self._paused = False

    # Timers

    def _restart_idle(self) -> None:
        if self._idle is not None and self._idle.active():
            self._idle.reset(self._owner.limits.idle_timeout)
        elif not self.closed:
            self._idle = self._clock.callLater(self._owner.limits.idle_timeout, self._timed_out, "idle")

    def _cancel(self, name: str) -> None:
        call: IDelayedCall | None = getattr(self, name)
        if call is not None and call.active():
            call.cancel()
        setattr(self, name, None)

    def _timed_out(self, what: str) -> None:
        setattr(self, {"idle": "_idle", "partial message": "_partial", "handshake": "_handshake"}[what], None)
        self._handshake_timed_out = what == "handshake"
        self._log.info("Closing {flow}: {what} timeout", flow=self.flow, what=what)
        self.abort()


class SIPStreamFactory(Factory):
    """
    Builds L{SIPStreamProtocol}s for one listener or one outgoing connection.

    It fits the contract of L{TLSFirstEndpoint
    <sipstack.transport.endpoint.TLSFirstEndpoint>}: the endpoint asks
    L{for_attempt} for the factory of each connection it makes, so every
    protocol knows whether it runs over TLS or TCP and for which
    destination, and waits for L{SIPStreamProtocol.ready}.
    """

    def __init__(
        self,
        owner: StreamOwner,
        clock: IReactorTime,
        kind: TransportKind,
        *,
        outbound: bool,
        destination: Destination | None = None,
    ) -> None:
        self._owner = owner
        self._clock = clock
        self._kind = kind
        self._outbound = outbound
        self._destination = destination

    def for_attempt(self, destination: Destination) -> SIPStreamFactory:
        """
        A factory like this one for one connection to C{destination}: its
        protocols run over C{destination.transport} and carry it.
        """
        return SIPStreamFactory(
            self._owner, self._clock, destination.transport, outbound=self._outbound, destination=destination
        )

    def buildProtocol(self, addr: object) -> SIPStreamProtocol:
        protocol = SIPStreamProtocol(
            self._owner, self._clock, self._kind, outbound=self._outbound, destination=self._destination
        )
        protocol.factory = self
        return protocol
