# -*- test-case-name: tests.stack.test_probe -*-
"""
What an operator asks of a SIP domain: how would a TLS-first client reach
it, and how secure would the hop be?

L{probe} runs the very steps the stack runs for a request (RFC 3263 planning
with L{locate_server}, then the L{TLSFirstEndpoint} walk) and, once a stream
is up, sends one OPTIONS over it to see that a SIP server answers.  The
result is a L{ProbeReport} of plain values, which C{sipstack probe} prints
as a table or as JSON.  Nothing here is a second implementation: a probe
that took a different path from real traffic would tell the operator
nothing.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IHandshakeListener, IProtocolFactory
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.python.failure import Failure
from zope.interface import implementer

from sipstack.config import Limits, TLSFirstSettings, TLSPolicy
from sipstack.errors import RemoteProtocolError, RoutingError
from sipstack.hop import Destination, TransportKind
from sipstack.message import Request, Response, serialize
from sipstack.message.headers import Headers
from sipstack.message.parser import StreamFramer
from sipstack.message.uri import SIPURI
from sipstack.routing.locate import NoTargets, locate_server
from sipstack.routing.plan import Plan
from sipstack.routing.resolver import Resolver
from sipstack.transport.endpoint import TLSFirstEndpoint
from sipstack.transport.report import ConnectFailed, ConnectReport
from sipstack.transport.tls_memory import TLSMemory

__all__ = ["ProbeReport", "OptionsAnswer", "probe"]


@dataclass(frozen=True, slots=True)
class OptionsAnswer:
    """
    How the server answered the probe's OPTIONS over the stream.

    @ivar status: the status code, or L{None} when nothing came in time.
    @ivar reason: the reason phrase, or what went wrong.
    @ivar elapsed: seconds from sending to the answer.
    @ivar server: the C{Server} or C{User-Agent} header, if any.
    """

    status: int | None
    reason: str
    elapsed: float
    server: str | None = None


@dataclass(frozen=True, slots=True)
class ProbeReport:
    """
    Everything one probe learnt.

    @ivar uri: the URI probed.
    @ivar plan: the RFC 3263 plan (with every DNS lookup), or L{None} when
        planning failed before any lookup.
    @ivar planning_error: why planning found no target, or L{None}.
    @ivar connection: the endpoint's report (attempts, certificates,
        security, fallback reason), or L{None} when no stream was tried.
    @ivar connect_error: why no stream could be used, or L{None}.
    @ivar options: the answer to the OPTIONS sent over the stream, or
        L{None} when none was sent.
    @ivar udp_fallback: the UDP target the stack would use next, as
        C{"host:port"}, when the stream plan failed and policy allows UDP.
    """

    uri: str
    plan: Plan | None
    planning_error: str | None = None
    connection: ConnectReport | None = None
    connect_error: str | None = None
    options: OptionsAnswer | None = None
    udp_fallback: str | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def succeeded(self) -> bool:
        """Whether a stream came up (and, if an OPTIONS was sent, any answer came)."""
        if self.connection is None or self.connection.security is None:
            return False
        return self.options is None or self.options.status is not None


@implementer(IHandshakeListener)
class _ProbeProtocol(Protocol):
    """
    Just enough of a SIP stream for the probe: C{ready} for the endpoint, and
    one request/response exchange.
    """

    def __init__(self, destination: Destination | None) -> None:
        self.destination = destination
        self.ready: Deferred[None] = Deferred()
        self.answered: Deferred[Response] | None = None
        self._framer = StreamFramer()

    def connectionMade(self) -> None:
        if self.destination is None or self.destination.transport is not TransportKind.TLS:
            self.ready.callback(None)

    def handshakeCompleted(self) -> None:
        if not self.ready.called:
            self.ready.callback(None)

    def dataReceived(self, data: bytes) -> None:
        self._framer.feed(data)
        answered = self.answered
        try:
            while (event := self._framer.next_event()) is not None:
                if isinstance(event, Response) and event.status >= 200 and answered and not answered.called:
                    answered.callback(event)
        except RemoteProtocolError as error:
            if answered is not None and not answered.called:
                answered.errback(error)
            if self.transport is not None:
                self.transport.loseConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        for waiter in (self.ready, self.answered):
            if waiter is not None and not waiter.called:
                waiter.errback(reason)


class _ProbeFactory(Factory):
    """Builds probe protocols, told per attempt which transport they run over."""

    def __init__(self, destination: Destination | None = None) -> None:
        self.destination = destination

    def for_attempt(self, destination: Destination) -> IProtocolFactory:
        return _ProbeFactory(destination)

    def buildProtocol(self, addr: object) -> _ProbeProtocol:
        protocol = _ProbeProtocol(self.destination)
        protocol.factory = self
        return protocol


def _options_request(uri: SIPURI, protocol: _ProbeProtocol) -> Request:
    """An OPTIONS for C{uri} with a Via naming the connection's own address."""
    assert protocol.transport is not None
    local: Any = protocol.transport.getHost()
    host = f"[{local.host}]" if ":" in local.host else local.host
    kind = protocol.destination.transport.value if protocol.destination is not None else "TCP"
    target = SIPURI(uri.scheme, uri.host, port=uri.port)
    headers = Headers(
        [
            ("Via", f"SIP/2.0/{kind} {host}:{local.port};branch=z9hG4bK{secrets.token_hex(8)};rport"),
            ("Max-Forwards", "70"),
            ("From", f"<sip:probe@{host}>;tag={secrets.token_hex(6)}"),
            ("To", f"<{target}>"),
            ("Call-ID", f"{secrets.token_hex(12)}@sipstack-probe"),
            ("CSeq", "1 OPTIONS"),
            ("Accept", "application/sdp"),
            ("User-Agent", "sipstack-probe"),
            ("Content-Length", "0"),
        ]
    )
    return Request(method="OPTIONS", uri=target, headers=headers)


async def _ask_options(reactor: Any, uri: SIPURI, protocol: _ProbeProtocol, timeout: float) -> OptionsAnswer:
    started = reactor.seconds()
    assert protocol.transport is not None
    answered: Deferred[Response] = Deferred()
    protocol.answered = answered
    protocol.transport.write(serialize(_options_request(uri, protocol)))
    answered.addTimeout(timeout, reactor)
    try:
        response = await answered
    except Exception as error:  # a timeout, a closed stream or an unframable answer
        reason = "no answer in time" if "TimeoutError" in type(error).__name__ else str(error) or type(error).__name__
        return OptionsAnswer(None, reason, reactor.seconds() - started)
    server = response.headers.get("server") or response.headers.get("user-agent")
    return OptionsAnswer(response.status, response.reason, reactor.seconds() - started, server)


async def probe(
    reactor: Any,
    uri: SIPURI,
    resolver: Resolver,
    *,
    policy: TLSPolicy = TLSPolicy.OPPORTUNISTIC,
    settings: TLSFirstSettings | None = None,
    limits: Limits | None = None,
    trust_root: bytes | None = None,
    send_options: bool = True,
    options_timeout: float = 5.0,
) -> ProbeReport:
    """
    Plan and connect to C{uri} as the stack would, and report each step.

    Never raises for a network reason: every failure is in the report.

    @param trust_root: PEM CA certificates that authenticate servers;
        L{None} for the platform's trust store.
    @param send_options: send one OPTIONS over the stream once it is up.
    """
    settings = settings if settings is not None else TLSFirstSettings()
    text = str(uri)
    try:
        plan = await locate_server(uri, resolver, policy=policy, settings=settings, clock=reactor.seconds)
    except NoTargets as error:
        return ProbeReport(text, error.plan, planning_error=str(error))
    except RoutingError as error:
        return ProbeReport(text, None, planning_error=str(error))
    endpoint = TLSFirstEndpoint(
        reactor, plan, memory=TLSMemory(reactor, settings), settings=settings, limits=limits, trust_root=trust_root
    )
    udp = next((target for target in plan.usable if target.transport is TransportKind.UDP), None)
    udp_text = f"{udp.addresses[0]}:{udp.port}" if udp is not None else None
    if not any(target.transport is not TransportKind.UDP for target in plan.targets):
        return ProbeReport(text, plan, udp_fallback=udp_text, notes=("the plan has no stream target",))
    try:
        result = await endpoint.connect_with_report(_ProbeFactory())
    except ConnectFailed as error:
        allowed = plan.policy is not TLSPolicy.STRICT and settings.allow_udp_fallback
        return ProbeReport(
            text, plan, connection=error.report, connect_error=str(error), udp_fallback=udp_text if allowed else None
        )
    protocol = result.protocol
    assert isinstance(protocol, _ProbeProtocol)
    options = None
    try:
        if send_options:
            options = await _ask_options(reactor, uri, protocol, options_timeout)
    finally:
        if protocol.transport is not None:
            protocol.transport.loseConnection()
    return ProbeReport(text, plan, connection=result.report, options=options)


def report_as_dict(report: ProbeReport) -> dict[str, Any]:
    """A probe report as plain data (C{sipstack probe --json})."""
    plan = report.plan
    connection = report.connection
    options = report.options
    return {
        "uri": report.uri,
        "succeeded": report.succeeded,
        "policy": plan.policy.value if plan is not None else None,
        "domain": plan.domain if plan is not None else None,
        "lookups": [
            {
                "name": lookup.name,
                "type": lookup.rdtype,
                "answers": list(lookup.answers),
                "error": lookup.error,
                "elapsed": lookup.elapsed,
            }
            for lookup in (plan.lookups if plan is not None else ())
        ],
        "plan": [
            {
                "transport": target.transport.value,
                "host": target.host,
                "port": target.port,
                "addresses": list(target.addresses),
                "source": target.source.value,
            }
            for target in (plan.targets if plan is not None else ())
        ],
        "planning_error": report.planning_error,
        "attempts": [attempt.as_dict() for attempt in (connection.attempts if connection is not None else ())],
        "transport": connection.transport.value if connection is not None and connection.transport else None,
        "security": connection.security.state.value if connection is not None and connection.security else None,
        "authenticated_identity": connection.security.identity
        if connection is not None and connection.security is not None
        else None,
        "fallback_reason": connection.fallback_reason if connection is not None else None,
        "connect_error": report.connect_error,
        "udp_fallback": report.udp_fallback,
        "options": None
        if options is None
        else {"status": options.status, "reason": options.reason, "elapsed": options.elapsed, "server": options.server},
        "notes": list(report.notes),
    }
