# -*- test-case-name: tests.transport.test_layer -*-
"""
The transport layer: listeners, the flow table, and sending.

L{TransportLayer} owns every socket of a stack.  It listens on UDP, TCP and
TLS descriptions, keeps a table of stream connections (flows) that requests
and responses reuse (RFC 3261 section 18, RFC 5626 style), enforces the
connection limits, stamps Vias on the way in and out, and hands each received
message up as a L{Received} envelope carrying its flow and security state.

What to send where is decided above (RFC 3263 planning, transactions); this
layer carries messages to a L{Destination} or back along a flow, and turns
a L{Plan} into one stream connection (L{TransportLayer.connect_plan}): an
open flow when one is as secure as a fresh connect would be, else a walk of
the TLS-first endpoint over the plan, TLS before TCP.
"""

from __future__ import annotations

import itertools
import socket
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, DeferredList, fail, succeed
from twisted.internet.endpoints import (
    SSL4ServerEndpoint,
    TCP4ClientEndpoint,
    TCP4ServerEndpoint,
    TCP6ClientEndpoint,
    TCP6ServerEndpoint,
    wrapClientTLS,
)
from twisted.internet.interfaces import IListeningPort, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from sipstack.config import Limits, TLSFirstSettings, TLSPolicy
from sipstack.errors import LocalProtocolError, TransportFailed
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
from sipstack.message import Request, Response, serialize
from sipstack.message.envelope import Received, Sent
from sipstack.message.message import Message
from sipstack.routing import ResponseTarget, outgoing_via, response_target, stamp_received, transport_for_size
from sipstack.routing.plan import Plan, Target
from sipstack.transport.datagram import SIPDatagramProtocol
from sipstack.transport.descriptions import ListenerDescription, parse_listener
from sipstack.transport.endpoint import TLSFirstEndpoint
from sipstack.transport.identity import matches_sip_domain, sip_identities
from sipstack.transport.report import ConnectReport, ConnectResult
from sipstack.transport.stream import ConnectionLimitExceeded, SIPStreamFactory, SIPStreamProtocol
from sipstack.transport.tls import (
    ClientOptionsCache,
    peer_certificate,
    peer_chain_verified,
    server_tls_options,
)
from sipstack.transport.tls_memory import TLSMemory

__all__ = ["TransportLayer", "AUTHENTICATED_VIA_PARAM", "Finalize"]

#: A last change to a request once its transport is chosen (see
#: L{TransportLayer.send_request}): given the request, the transport, our
#: sent-by on it and the hop's security, the request to send.
Finalize = Callable[[Request, TransportKind, Peer, HopSecurity], Request]

#: The Via parameter (name, value) that says a hop's TLS peer was
#: authenticated, added when C{TLSFirstSettings.via_authenticated_param} is
#: on (docs/tls-first.md, "The Via answer": off by default).
AUTHENTICATED_VIA_PARAM = ("x-sipstack-tls", "authenticated")

_T = TypeVar("_T")

#: A receive buffer with room for any UDP payload (at most 65,507 bytes over
#: IPv4 and 65,527 over IPv6 without jumbograms).
_MAX_DATAGRAM = 65_535


def _run(coroutine: Coroutine[Deferred[Any], Any, _T]) -> Deferred[_T]:
    return Deferred.fromCoroutine(coroutine)


def _is_wildcard(host: str) -> bool:
    return host in ("0.0.0.0", "::")


class _OutboundStreamFactory(SIPStreamFactory):
    """Builds the protocol of one outgoing connection and remembers its TLS target."""

    def __init__(self, layer: TransportLayer, kind: TransportKind, destination: Destination | None) -> None:
        super().__init__(layer, layer.reactor, kind, outbound=True)
        self.destination = destination

    def buildProtocol(self, addr: object) -> SIPStreamProtocol:
        protocol = super().buildProtocol(addr)
        protocol.destination = self.destination
        return protocol


class TransportLayer:
    """
    Every socket of one SIP stack.

    @ivar limits: the limits enforced on every flow.
    @ivar reactor: the reactor (also the clock of every timer here).
    """

    _log = Logger()

    def __init__(
        self,
        reactor: Any,
        on_received: Callable[[Received], None],
        *,
        limits: Limits | None = None,
        trust_root: bytes | None = None,
        keepalive_interval: float | None = None,
        tls_first: TLSFirstSettings | None = None,
        tls_memory: TLSMemory | None = None,
    ) -> None:
        """
        @param reactor: provides C{IReactorTCP}, C{IReactorUDP},
            C{IReactorSSL} and C{IReactorTime}.
        @param on_received: called with every message received.
        @param limits: the limits; the defaults if L{None}.
        @param trust_root: PEM CA certificates that authenticate TLS peers
            (servers we connect to, and clients that present a certificate);
            L{None} for the platform's trust store.
        @param keepalive_interval: seconds between RFC 5626 pings on the
            streams we open; L{None} for no pings.
        @param tls_first: the TLS-first settings L{connect_plan} walks plans
            with (and C{via_authenticated_param}); the defaults if L{None}.
        @param tls_memory: what TLS-first connects remember between plans;
            a new one on the reactor's clock if L{None}.
        """
        self.reactor = reactor
        self.limits = limits if limits is not None else Limits()
        self.tls_first = tls_first if tls_first is not None else TLSFirstSettings()
        #: "No TLS here" and "TLS worked here", shared by every plan this
        #: layer walks: inspect it with C{entries()}, reset it with C{reset()}.
        self.tls_memory = tls_memory if tls_memory is not None else TLSMemory(reactor, self.tls_first)
        self._mark_authenticated_hops = self.tls_first.via_authenticated_param
        self._on_received = on_received
        self._clock: IReactorTime = reactor
        self._streams: dict[FlowKey, SIPStreamProtocol] = {}
        self._per_ip: Counter[str] = Counter()
        # Connection attempts in progress, and who waits for each.
        self._connecting: dict[Destination, tuple[Deferred[SIPStreamProtocol], list[Deferred[SIPStreamProtocol]]]] = {}
        # Plan walks in progress (one per policy, domain and set of stream
        # targets), and who waits for each.
        self._walking: dict[_WalkKey, tuple[Deferred[ConnectResult], list[Deferred[ConnectResult]]]] = {}
        # The open streams by (transport, remote address), for reuse.
        self._by_remote: dict[tuple[TransportKind, Peer], list[SIPStreamProtocol]] = {}
        self._udp: list[SIPDatagramProtocol] = []
        # The same sockets by the address they are bound to, for answers.
        self._udp_by_local: dict[Peer, SIPDatagramProtocol] = {}
        self._ports: list[IListeningPort] = []
        self._stream_listeners: list[tuple[TransportKind, Peer]] = []
        self._connection_ids = itertools.count(1)
        self._creator = ClientOptionsCache(trust_root)
        self._towards: dict[str, str] = {}
        self._pinger: LoopingCall | None = None
        if keepalive_interval is not None:
            self._pinger = LoopingCall(self._ping_outbound)
            self._pinger.clock = self._clock
            self._pinger.start(keepalive_interval, now=False)

    # Listening

    def listen(self, description: str | ListenerDescription) -> Deferred[Peer]:
        """
        Start a listener (C{udp:5060}, C{tcp:5060:interface=::1},
        C{tls:5061:certKey=cert.pem:privateKey=key.pem}...).

        @return: a Deferred firing with the address actually bound.
        @raise ValueError: a malformed description.
        """
        if isinstance(description, str):
            description = parse_listener(description)
        return _run(self._listen(description))

    async def _listen(self, description: ListenerDescription) -> Peer:
        if description.transport is TransportKind.UDP:
            protocol = SIPDatagramProtocol(self.limits, self._datagram_message)
            # Twisted reads at most 8192 bytes per datagram by default and
            # silently truncates the rest; read whole datagrams, so that
            # max_message_bytes (513) is what bounds them.
            port = self.reactor.listenUDP(
                description.port, protocol, interface=description.interface, maxPacketSize=_MAX_DATAGRAM
            )
            self._udp.append(protocol)
            if protocol.local is not None:
                self._udp_by_local.setdefault(protocol.local, protocol)
            self._enlarge_receive_buffer(port)
        else:
            factory = SIPStreamFactory(self, self._clock, description.transport, outbound=False)
            port = await self._stream_endpoint(description).listen(factory)
        self._ports.append(port)
        address = port.getHost()
        bound = Peer(address.host, address.port)
        if description.transport is not TransportKind.UDP:
            self._stream_listeners.append((description.transport, bound))
        self._log.info(
            "Listening for SIP over {transport} on {address}", transport=description.transport.value, address=bound
        )
        return bound

    def _enlarge_receive_buffer(self, port: Any) -> None:
        try:
            port.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.limits.udp_receive_buffer_bytes)
        except OSError as error:
            self._log.warn("Could not enlarge the UDP receive buffer: {error}", error=str(error))

    def _stream_endpoint(self, description: ListenerDescription) -> Any:
        ipv6 = ":" in description.interface
        if description.transport is TransportKind.TCP:
            endpoint_class = TCP6ServerEndpoint if ipv6 else TCP4ServerEndpoint
            return endpoint_class(self.reactor, description.port, description.backlog, description.interface)
        assert description.cert_key is not None and description.private_key is not None
        options = server_tls_options(
            Path(description.cert_key).read_bytes(),
            Path(description.private_key).read_bytes(),
            request_client_certificate=description.request_client_certificate or description.ca_certs is not None,
            trust_root_pem=Path(description.ca_certs).read_bytes() if description.ca_certs else None,
        )
        return SSL4ServerEndpoint(  # type: ignore[no-untyped-call]  # unannotated in Twisted 26.10
            self.reactor, description.port, options, description.backlog, description.interface
        )

    # Receiving

    def _datagram_message(self, message: Message, flow: FlowKey) -> None:
        self._deliver(message, flow, CLEARTEXT)

    def _deliver(self, message: Message, flow: FlowKey, security: HopSecurity) -> None:
        if isinstance(message, Request):
            message = stamp_received(message, flow.remote)
        try:
            self._on_received(Received(message, flow, security, self._clock.seconds()))
        except Exception:
            self._log.failure("The message handler failed on a message from {flow}", flow=flow)

    # StreamOwner

    def stream_opened(self, stream: SIPStreamProtocol) -> FlowKey:
        assert stream.transport is not None
        remote, local = stream.transport.getPeer(), stream.transport.getHost()
        remote_peer = Peer(remote.host, remote.port)  # type: ignore[attr-defined]  # IPv4Address/IPv6Address
        if len(self._streams) >= self.limits.max_connections:
            raise ConnectionLimitExceeded(f"{len(self._streams)} connections open (max_connections)")
        if not stream.outbound and self._per_ip[remote_peer.host] >= self.limits.max_connections_per_peer:
            raise ConnectionLimitExceeded(f"{remote_peer.host} has too many connections (max_connections_per_peer)")
        flow = FlowKey(stream.kind, remote_peer, Peer(local.host, local.port), next(self._connection_ids))  # type: ignore[attr-defined]
        self._streams[flow] = stream
        self._by_remote.setdefault((stream.kind, remote_peer), []).append(stream)
        if not stream.outbound:
            # Only connections *from* a peer count against its quota.
            self._per_ip[remote_peer.host] += 1
        return flow

    def stream_ready(self, stream: SIPStreamProtocol) -> None:
        self._log.debug("{flow} ready ({security})", flow=stream.flow, security=stream.security.state.value)

    def stream_message(self, stream: SIPStreamProtocol, message: Message) -> None:
        assert stream.flow is not None
        self._deliver(message, stream.flow, stream.security)

    def stream_closed(self, stream: SIPStreamProtocol, reason: Failure) -> None:
        assert stream.flow is not None
        same = self._by_remote.get((stream.flow.transport, stream.flow.remote))
        if same is not None and stream in same:
            same.remove(stream)
            if not same:
                del self._by_remote[(stream.flow.transport, stream.flow.remote)]
        if self._streams.pop(stream.flow, None) is not None and not stream.outbound:
            host = stream.flow.remote.host
            self._per_ip[host] -= 1
            if self._per_ip[host] <= 0:
                del self._per_ip[host]

    def stream_security(self, stream: SIPStreamProtocol) -> HopSecurity:
        destination: Destination | None = getattr(stream, "destination", None)
        if destination is not None and destination.authenticated:
            # The creator refused any certificate that did not verify.
            assert destination.server_name is not None
            return HopSecurity(SecurityState.TLS_AUTHENTICATED, destination.server_name)
        certificate = peer_certificate(stream.transport)
        if certificate is None or not peer_chain_verified(stream.transport):
            return TLS_UNAUTHENTICATED
        if destination is not None:
            if destination.server_name and matches_sip_domain(certificate, destination.server_name):
                return HopSecurity(SecurityState.TLS_AUTHENTICATED, destination.server_name)
            return TLS_UNAUTHENTICATED
        identities = sip_identities(certificate).domains
        if identities:
            return HopSecurity(SecurityState.TLS_AUTHENTICATED, identities[0])
        return TLS_UNAUTHENTICATED

    # Flows

    @property
    def flows(self) -> dict[FlowKey, HopSecurity]:
        """Every open stream flow and its security state."""
        return {flow: stream.security for flow, stream in self._streams.items()}

    def stream(self, flow: FlowKey) -> SIPStreamProtocol | None:
        """The open stream of a flow, or L{None}."""
        stream = self._streams.get(flow)
        return stream if stream is not None and not stream.closed else None

    def _reusable(self, destination: Destination) -> SIPStreamProtocol | None:
        for stream in self._by_remote.get((destination.transport, destination.peer), ()):
            if not stream.is_ready or stream.closed:
                continue
            if destination.transport is TransportKind.TLS:
                # Strict and opportunistic traffic never share a connection
                # (docs/tls-first.md): an authenticated destination needs a
                # stream authenticated for its very name.
                if destination.authenticated and stream.security != HopSecurity(
                    SecurityState.TLS_AUTHENTICATED, destination.server_name
                ):
                    continue
                opened_for: Destination | None = getattr(stream, "destination", None)
                if not destination.authenticated and opened_for is not None and opened_for.authenticated:
                    continue
            return stream
        return None

    def connect(self, destination: Destination) -> Deferred[SIPStreamProtocol]:
        """
        A ready stream to C{destination}: an open one if there is one, else a
        new connection (for TLS, ready once the handshake completed).

        @raise TransportFailed: (in the Deferred) the connection failed.
        """
        stream = self._reusable(destination)
        if stream is not None:
            return succeed(stream)
        waiter: Deferred[SIPStreamProtocol] = Deferred()
        if destination in self._connecting:
            self._connecting[destination][1].append(waiter)
            return waiter
        # Every caller waiting for this connection gets its own Deferred; the
        # attempt's result goes to each of them, and is consumed there.
        waiters = [waiter]
        attempt = _run(self._connect(destination))
        self._connecting[destination] = (attempt, waiters)

        def settle(result: SIPStreamProtocol | Failure) -> None:
            self._connecting.pop(destination, None)
            for each in waiters:
                if isinstance(result, Failure):
                    each.errback(result)
                else:
                    each.callback(result)

        attempt.addBoth(settle)
        return waiter

    async def _connect(self, destination: Destination) -> SIPStreamProtocol:
        if destination.transport not in (TransportKind.TCP, TransportKind.TLS):
            raise LocalProtocolError(f"cannot open a {destination.transport.value} stream")
        peer = destination.peer
        endpoint_class = TCP6ClientEndpoint if ":" in peer.host else TCP4ClientEndpoint
        endpoint: Any = endpoint_class(self.reactor, peer.host, peer.port, timeout=self.limits.connect_timeout)
        if destination.transport is TransportKind.TLS:
            endpoint = wrapClientTLS(self._creator(destination), endpoint)
        factory = _OutboundStreamFactory(self, destination.transport, destination)
        try:
            stream: SIPStreamProtocol = await endpoint.connect(factory)
            return await stream.ready
        except Exception as error:
            raise TransportFailed(f"no {destination.transport.value} connection to {peer}: {error}") from error

    # Plans (RFC 3263, TLS first)

    def connect_plan(
        self, plan: Plan, *, memory: TLSMemory | None = None, settings: TLSFirstSettings | None = None
    ) -> Deferred[ConnectResult]:
        """
        A ready stream to one of C{plan}'s TLS and TCP targets, and the
        report of how it was reached (docs/tls-first.md; UDP targets are
        left to the caller).

        An open flow is reused when it is as secure as a fresh connect
        would be (L{_reusable_in_plan}); otherwise a L{TLSFirstEndpoint}
        walks the plan with this layer's TLS client options and registers
        the connection it makes as a flow, as L{connect} does.  Concurrent
        calls for one policy, domain and set of stream targets share one
        walk.

        @param memory: the TLS memory to consult and update; the layer's
            own (L{tls_memory}) if L{None}.
        @param settings: the TLS-first settings; the layer's if L{None}.
        @raise ConnectFailed: (in the Deferred) no stream: the endpoint's
            L{StreamPlanExhausted} (every stream target failed, so UDP may
            follow where the policy allows) or L{DowngradeRefused} (strict,
            or a pinned target: no cleartext at all).
        """
        memory = memory if memory is not None else self.tls_memory
        reused = self._reusable_in_plan(plan, memory)
        if reused is not None:
            return succeed(reused)
        key = _walk_key(plan)
        waiter: Deferred[ConnectResult] = Deferred()
        walking = self._walking.get(key)
        if walking is not None:
            walking[1].append(waiter)
            return waiter
        waiters = [waiter]
        endpoint = TLSFirstEndpoint(
            self.reactor,
            plan,
            memory=memory,
            settings=settings if settings is not None else self.tls_first,
            limits=self.limits,
            creator_for=self._creator,
        )
        # for_attempt() gives each connection a protocol of the right kind
        # that carries its destination, which stream_security reads.
        attempt = endpoint.connect_with_report(SIPStreamFactory(self, self._clock, TransportKind.TCP, outbound=True))
        self._walking[key] = (attempt, waiters)

        def settle(result: ConnectResult | Failure) -> None:
            if self._walking.get(key, (None,))[0] is attempt:
                del self._walking[key]
            for each in waiters:
                if isinstance(result, Failure):
                    each.errback(result)
                else:
                    each.callback(result)

        attempt.addBoth(settle)
        return waiter

    def _reusable_in_plan(self, plan: Plan, memory: TLSMemory) -> ConnectResult | None:
        """
        An open, ready flow to one of C{plan}'s stream targets that is at
        least as secure as what a fresh walk would reach, as a result; or
        L{None}.

        The targets are taken in the endpoint's order.  A TLS flow qualifies
        when it was opened for the same SIP domain (any, for an IP-literal
        URI) and verification mode (an authenticated one must be
        authenticated for that domain, as L{_reusable} says): strict and
        opportunistic traffic, or traffic for two domains, never share a
        connection.  A TCP flow qualifies only
        when no TLS target before it would be tried now (under the
        opportunistic policy: each is remembered as having no TLS, and is
        not pinned), so a TCP flow is never used where TLS would be tried.
        """
        policy = plan.policy
        opportunistic = policy is TLSPolicy.OPPORTUNISTIC
        tls_would_be_tried = False
        remembered: list[str] = []
        for target in _schedule(plan):
            if target.transport is TransportKind.TLS:
                if policy is TLSPolicy.OFF:
                    continue
                stream = self._open_stream(plan, target)
                if stream is not None:
                    return self._reused(plan, stream, None)
                entry = None
                if opportunistic and memory.pinned(target.host, target.port) is None:
                    entry = memory.no_tls(target.host, target.port)
                if entry is None:
                    tls_would_be_tried = True
                else:
                    remembered.append(f"no TLS at {target.host}:{target.port} (remembered: {entry.reason})")
            elif policy is not TLSPolicy.STRICT and not tls_would_be_tried:
                stream = self._open_stream(plan, target)
                if stream is not None:
                    return self._reused(plan, stream, "; ".join(remembered) or None)
        return None

    def _open_stream(self, plan: Plan, target: Target) -> SIPStreamProtocol | None:
        """A ready flow to one of C{target}'s addresses that may carry C{plan}'s traffic."""
        for address in target.addresses:
            destination = _plan_destination(plan, target, address)
            for stream in self._by_remote.get((target.transport, destination.peer), ()):
                if not stream.is_ready or stream.closed:
                    continue
                if target.transport is TransportKind.TLS:
                    opened_for = stream.destination
                    if opened_for is None or opened_for.authenticated != destination.authenticated:
                        continue
                    if plan.domain is not None and opened_for.server_name != destination.server_name:
                        # An IP-literal URI names no domain to check: any
                        # flow of the same verification mode to the address
                        # is as good as a fresh one.
                        continue
                    if destination.authenticated and stream.security != HopSecurity(
                        SecurityState.TLS_AUTHENTICATED, destination.server_name
                    ):
                        continue
                return stream
        return None

    def _reused(self, plan: Plan, stream: SIPStreamProtocol, fallback_reason: str | None) -> ConnectResult:
        assert stream.flow is not None
        destination = stream.destination or Destination(stream.kind, stream.flow.remote)
        report = ConnectReport(
            plan.uri, plan.domain, plan.policy, (), stream.kind, stream.security, destination, fallback_reason
        )
        return ConnectResult(stream, report)

    @property
    def has_udp(self) -> bool:
        """Whether a UDP socket is open (requests can go over UDP)."""
        return bool(self._udp)

    def can_send_udp(self, host: str) -> bool:
        """Whether a UDP socket of C{host}'s address family is open to send to it from."""
        ipv6 = ":" in host
        return any(protocol.local is not None and (":" in protocol.local.host) == ipv6 for protocol in self._udp)

    # Sending

    def send_request(
        self,
        request: Request,
        destination: Destination,
        *,
        flow: FlowKey | None = None,
        finalize: Finalize | None = None,
    ) -> Deferred[Sent]:
        """
        Send a request to C{destination}, or on C{flow} when that is open.

        The top Via is rewritten with the transport used, our sent-by and
        C{rport} (RFC 3261 section 18.1.1, RFC 3581); a request over 1300
        bytes planned over UDP goes over TCP, and back to UDP if TCP fails.

        @param finalize: called once the transport is chosen, with the
            request, that transport, our sent-by on it and the hop's
            security; what it returns is sent instead (a proxy adds the
            Record-Route of the interface the request leaves on, RFC 5658).
            Its top Via is rewritten as above.
        @raise LocalProtocolError: the request has no Via.
        @raise TransportFailed: (in the Deferred) it could not be sent.
        """
        if not request.vias:
            raise LocalProtocolError("a request needs a Via (with a branch) before it is sent")
        # The common cases (an open flow, a datagram small enough for UDP)
        # need no waiting: send them without a coroutine.
        try:
            stream = self.stream(flow) if flow is not None else None
            if stream is not None:
                return succeed(self._send_on_stream(request, stream, finalize))
            if destination.transport is TransportKind.UDP:
                sent = self._udp_sent(request, destination.peer, finalize)
                if transport_for_size(TransportKind.UDP, len(sent.data)) is TransportKind.UDP:
                    return succeed(self._write_datagram(sent))
                return _run(self._send_large(request, destination, sent, finalize))
        except Exception:
            return fail()
        return _run(self._send_request(request, destination, flow, finalize))

    async def _send_large(
        self, request: Request, destination: Destination, sent: Sent, finalize: Finalize | None
    ) -> Sent:
        """A request too large for UDP (RFC 3261 section 18.1.1): over TCP, else over UDP after all."""
        try:
            stream = await self.connect(replace(destination, transport=TransportKind.TCP))
        except TransportFailed as error:
            self._log.info("Large request goes over UDP after all: {error}", error=str(error))
            return self._write_datagram(sent)
        return self._send_on_stream(request, stream, finalize)

    async def _send_request(
        self, request: Request, destination: Destination, flow: FlowKey | None, finalize: Finalize | None
    ) -> Sent:
        stream = self.stream(flow) if flow is not None else None
        if stream is not None:
            return self._send_on_stream(request, stream, finalize)
        return self._send_on_stream(request, await self.connect(destination), finalize)

    def _send_on_stream(self, message: Message, stream: SIPStreamProtocol, finalize: Finalize | None = None) -> Sent:
        assert stream.flow is not None
        if isinstance(message, Request):
            sent_by = self._stream_sent_by(stream.kind, stream.flow.local)
            if finalize is not None:
                message = finalize(message, stream.kind, sent_by, stream.security)
            via = outgoing_via(message.top_via, stream.kind, sent_by)
            if self._mark_authenticated_hops:
                name, value = AUTHENTICATED_VIA_PARAM
                via = via.with_param(name, value) if stream.security.authenticated else via.without_param(name)
            message = message.with_top_via(via)
        data = stream.send_message(message)
        return Sent(message, stream.flow, stream.security, data)

    def _stream_sent_by(self, kind: TransportKind, local: Peer) -> Peer:
        """
        The sent-by for a request on a C{kind} connection from C{local}: our
        listener on that address (or on the wildcard of its family, with the
        connection's own address), so that a new connection can reach us;
        without one, the connection's own address.
        """
        ipv6 = ":" in local.host
        same_family = [bound for each, bound in self._stream_listeners if each is kind and (":" in bound.host) == ipv6]
        for bound in same_family:
            if bound.host == local.host:
                return bound
        for bound in same_family:
            if _is_wildcard(bound.host):
                return Peer(local.host, bound.port)
        return same_family[0] if same_family else local

    def _udp_socket(self, peer: Peer) -> SIPDatagramProtocol:
        ipv6 = ":" in peer.host
        for protocol in self._udp:
            if protocol.local is not None and (":" in protocol.local.host) == ipv6:
                return protocol
        raise TransportFailed(f"no UDP listener for {'IPv6' if ipv6 else 'IPv4'} to reach {peer}")

    def _udp_sent(self, request: Request, peer: Peer, finalize: Finalize | None = None) -> Sent:
        protocol = self._udp_socket(peer)
        assert protocol.local is not None
        host = protocol.local.host
        if _is_wildcard(host):
            host = self._local_address_towards(peer.host)
        if finalize is not None:
            request = finalize(request, TransportKind.UDP, Peer(host, protocol.local.port), CLEARTEXT)
        via = outgoing_via(request.top_via, TransportKind.UDP, (host, protocol.local.port))
        if self._mark_authenticated_hops:
            via = via.without_param(AUTHENTICATED_VIA_PARAM[0])
        request = request.with_top_via(via)
        flow = FlowKey(TransportKind.UDP, peer, protocol.local)
        return Sent(request, flow, CLEARTEXT, serialize(request))

    def _write_datagram(self, sent: Sent) -> Sent:
        self.resend_datagram(sent.flow, sent.data)
        return sent

    def resend_datagram(self, flow: FlowKey, data: bytes) -> None:
        """
        Write C{data} from the UDP socket C{flow.local} to C{flow.remote}
        (what L{resend} does, for a caller that kept only the bytes and the
        flow).

        @raise TransportFailed: that socket is closed.
        """
        protocol = self._udp_by_local.get(flow.local)
        if protocol is None:
            raise TransportFailed(f"the UDP socket {flow.local} is closed")
        protocol.send(data, flow.remote)

    def _local_address_towards(self, host: str) -> str:
        """Our address on the route to C{host} (for a sent-by when bound to a wildcard)."""
        address = self._towards.get(host)
        if address is None:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            with socket.socket(family, socket.SOCK_DGRAM) as probe:
                probe.connect((host, 9))
                address = str(probe.getsockname()[0])
            self._towards[host] = address
        return address

    def resend(self, sent: Sent) -> None:
        """Retransmit a message sent over UDP (the transaction layer's timers call this)."""
        if sent.flow.transport is TransportKind.UDP:
            self._write_datagram(sent)

    def send_response(self, response: Response, flow: FlowKey) -> Deferred[Sent]:
        """
        Send a response to a request that arrived on C{flow}: on the same
        connection while it is open, else where the top Via says (RFC 3261
        section 18.2.2, RFC 3581).

        @raise TransportFailed: (in the Deferred) it could not be sent.
        """
        # The common cases (an open connection, a UDP answer to an address)
        # need no waiting: answer them without a coroutine.
        try:
            sent = self.send_response_now(response, flow)
            if sent is not None:
                return succeed(sent)
            target = response_target(response.top_via)
        except Exception:
            return fail()
        return _run(self._send_response(response, flow, target))

    def send_response_now(self, response: Response, flow: FlowKey) -> Sent | None:
        """
        L{send_response} for the cases that need no waiting: a response on
        an open connection, or over UDP to an IP address (the usual
        C{received}/C{rport}).  Returns what was sent, or L{None} when it
        needs a name resolved or a connection made (use L{send_response}).

        @raise TransportFailed: it could not be sent.
        @raise sipstack.errors.RemoteProtocolError: the top Via is missing
            or malformed.
        """
        if flow.transport is TransportKind.UDP:
            target = response_target(response.top_via)
            if not target.resolved:
                return None
            return self._send_datagram_response(response, flow, Peer(target.host, target.port))
        stream = self.stream(flow)
        if stream is not None:
            return self._send_on_stream(response, stream)
        return None

    async def _send_response(self, response: Response, flow: FlowKey, target: ResponseTarget) -> Sent:
        host = target.host
        if not target.resolved:
            host = await self.reactor.resolve(host)
        peer = Peer(host, target.port)
        if flow.transport is TransportKind.UDP:
            return self._send_datagram_response(response, flow, peer)
        stream = await self.connect(Destination(flow.transport, peer))
        return self._send_on_stream(response, stream)

    def _send_datagram_response(self, response: Response, flow: FlowKey, peer: Peer) -> Sent:
        # From the socket the request arrived on (RFC 3581 section 4:
        # symmetric NATs only let the answer through from there).
        protocol = self._udp_by_local.get(flow.local)
        if protocol is None:
            protocol = self._udp_socket(peer)
        local = protocol.local
        assert local is not None
        data = serialize(response)
        protocol.send(data, peer)
        if peer == flow.remote and local is flow.local:
            # The usual answer, to where the request came from: reuse its flow.
            return Sent(response, flow, CLEARTEXT, data)
        return Sent(response, FlowKey(TransportKind.UDP, peer, local), CLEARTEXT, data)

    # Keep-alives and shutdown

    def _ping_outbound(self) -> None:
        for stream in list(self._streams.values()):
            if stream.outbound and stream.is_ready and not stream.closed:
                try:
                    stream.ping()
                except Exception:
                    # One broken stream must neither stop the timer for the
                    # others nor leave a failure in the LoopingCall.
                    self._log.failure("Could not ping {flow}", flow=stream.flow)
                    stream.abort()

    def close(self) -> Deferred[None]:
        """Stop every listener and close every connection."""
        if self._pinger is not None and self._pinger.running:
            self._pinger.stop()
        waits: list[Deferred[Any]] = [Deferred.fromCoroutine(_stop(port)) for port in self._ports]
        self._ports.clear()
        self._udp.clear()
        self._udp_by_local.clear()
        for attempt, _ in list(self._connecting.values()):
            attempt.cancel()
        for walk, _ in list(self._walking.values()):
            walk.cancel()
        for stream in list(self._streams.values()):
            waits.append(stream.lost)
            stream.abort()
        return DeferredList(waits, consumeErrors=True).addCallback(lambda _: None)


#: What makes two plan walks the same walk: the policy, the SIP domain and
#: the stream targets (in any order: SRV weights may order them differently
#: for two requests).
_WalkKey = tuple[TLSPolicy, str | None, frozenset[Target]]


def _walk_key(plan: Plan) -> _WalkKey:
    return plan.policy, plan.domain, frozenset(target for target in plan.targets if target.transport in _STREAM)


_STREAM = (TransportKind.TLS, TransportKind.TCP)


def _schedule(plan: Plan) -> list[Target]:
    """
    The stream targets in the order the TLS-first endpoint tries them:
    under the opportunistic policy, TLS before TCP within each run of
    targets of one NAPTR order; otherwise the plan's order.
    """
    stream = [target for target in plan.targets if target.transport in _STREAM]
    if plan.policy is not TLSPolicy.OPPORTUNISTIC:
        return stream
    ordered: list[Target] = []
    run: list[Target] = []
    for target in [*stream, None]:
        if run and (target is None or target.order != run[0].order):
            ordered += [t for t in run if t.transport is TransportKind.TLS]
            ordered += [t for t in run if t.transport is not TransportKind.TLS]
            run = []
        if target is not None:
            run.append(target)
    return ordered


def _plan_destination(plan: Plan, target: Target, address: str) -> Destination:
    """
    The destination the endpoint connects to for one address of a target:
    under the strict policy an IP-literal URI's TLS target is authenticated
    against the address itself.
    """
    destination = plan.destination(target, address)
    if target.transport is TransportKind.TLS and plan.authenticated and not destination.authenticated:
        destination = replace(destination, authenticated=True)
    return destination


async def _stop(port: IListeningPort) -> None:
    stopped = port.stopListening()
    if stopped is not None:
        await stopped
