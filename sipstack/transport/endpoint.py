# -*- test-case-name: tests.transport.test_endpoint -*-
"""
TLS first: a client endpoint that walks the stream targets of an RFC 3263
plan, TLS before TCP, and says what it did.

L{TLSFirstEndpoint} is what docs/tls-first.md ("Opportunistic mode, in
order", steps 3 to 7) asks of a connection:

  - Every TLS target is tried before any TCP target (within one NAPTR order,
    whose ranking the plan keeps), one target at a time: a TLS attempt and a
    cleartext one never race, so an attacker who delays TLS cannot make
    plaintext win.
  - Within one target, the addresses (IPv6 and IPv4) do race, by Twisted's
    own happy eyeballs: a L{HostnameEndpoint} is given a reactor whose name
    resolver serves the addresses the plan already resolved.
  - TLS is "up" only once the handshake completed, and within
    C{Limits.handshake_timeout} (Twisted has no handshake timeout).  SNI is
    the SIP domain, not the SRV target nor the address.
  - TCP is used only when every TLS attempt failed by a I{definite} failure
    (refused, connect timeout, unreachable, a TLS alert or protocol error
    such as a plaintext answer, a handshake timeout).  Under the strict
    policy and at a target pinned by L{TLSMemory}, TLS failing is an error
    (L{DowngradeRefused}), never a downgrade.
  - Every connection comes with a L{ConnectReport}: each L{Attempt}, the
    resulting L{HopSecurity} and the reason for any fallback; each downgrade
    is also one structured log event (L{DOWNGRADE_EVENT}).

UDP is not this endpoint's job: when the stream plan is exhausted it fails
with L{StreamPlanExhausted}, carrying the attempts, and the stack decides
whether UDP may follow.

The contract with the protocol factory (docs/tls-first-endpoint.md):

  1. If the factory has a C{for_attempt(destination)} method
     (L{AttemptAwareFactory}), the endpoint calls it when the TCP
     connection to one address is made and builds the protocol with the
     factory it returns.  The L{Destination} says TLS or TCP, the address
     connected to, the SIP domain (SNI) and whether the peer must be
     authenticated.  Other factories are used as they are.
  2. The protocol must have a C{ready} L{Deferred} (L{ReadyProtocol}) that
     fires when it can carry data (for TLS: from C{handshakeCompleted}) and
     fails with the reason when the connection is lost before.
     L{SIPStreamProtocol <sipstack.transport.stream.SIPStreamProtocol>} and
     L{SIPStreamFactory <sipstack.transport.stream.SIPStreamFactory>} fit
     both.  The endpoint consumes a failure of C{ready}, and leaves its
     success result alone.
  3. C{connect()} fires with the protocol once it is ready;
     C{connect_with_report()} fires with a L{ConnectResult}.  On failure
     both fail with a L{ConnectFailed} that carries the report.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

from cryptography import x509
from OpenSSL import SSL
from twisted.internet import error
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import (
    IAddress,
    IConnector,
    IDelayedCall,
    IHostnameResolver,
    IHostResolution,
    IOpenSSLClientConnectionCreator,
    IProtocol,
    IProtocolFactory,
    IReactorPluggableNameResolver,
    IReactorTime,
    IResolutionReceiver,
    IStreamClientEndpoint,
    ISystemHandle,
)
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from sipstack.config import Limits, TLSFirstSettings, TLSPolicy
from sipstack.hop import CLEARTEXT, TLS_UNAUTHENTICATED, Destination, HopSecurity, SecurityState, TransportKind
from sipstack.routing.plan import Plan, Target
from sipstack.transport.identity import normalize_domain, sip_identities
from sipstack.transport.report import (
    Attempt,
    ConnectFailed,
    ConnectReport,
    ConnectResult,
    DowngradeRefused,
    Outcome,
    PeerCertificate,
    StreamPlanExhausted,
)
from sipstack.transport.stream import HandshakeTimedOut
from sipstack.transport.tls import (
    ClientOptionsCache,
    SIPIdentityMismatch,
    peer_certificate,
    peer_chain_verified,
)
from sipstack.transport.tls_memory import MemoryEntry, MemoryKind, TLSMemory

__all__ = [
    "DOWNGRADE_EVENT",
    "TLSFirstEndpoint",
    "AttemptAwareFactory",
    "ReadyProtocol",
    "hop_security",
    # Re-exported, so that the endpoint's callers find its results here.
    "Outcome",
    "PeerCertificate",
    "Attempt",
    "ConnectReport",
    "ConnectResult",
    "ConnectFailed",
    "StreamPlanExhausted",
    "DowngradeRefused",
    "TLSMemory",
    "MemoryKind",
    "MemoryEntry",
]

#: The value of the C{sipstack_event} field of the one log event emitted per
#: downgrade (TLS wanted, TCP used); its other fields are C{domain},
#: C{target}, C{reason}, C{attempts} (a list of L{Attempt.as_dict}),
#: C{uri} and C{policy}.
DOWNGRADE_EVENT = "tls-downgrade"


# The contract with the protocol factory


@runtime_checkable
class AttemptAwareFactory(Protocol):
    """
    A protocol factory that wants to know, per connection, what it runs
    over (see the module docstring, point 1).
    """

    def for_attempt(self, destination: Destination) -> IProtocolFactory:
        """The factory for one connection to C{destination}."""


class ReadyProtocol(Protocol):
    """
    What the endpoint needs of a protocol (the module docstring, point 2).
    """

    ready: Deferred[Any]


# Security of a connection


def hop_security(transport: object, destination: Destination) -> HopSecurity:
    """
    The security state of a connection just made to C{destination}.

    An authenticated destination is C{tls-authenticated} for its server
    name (its creator refused anything else); an opportunistic one is
    C{tls-authenticated} too when the chain verified and the certificate
    names the server name by RFC 5922, else C{tls-unauthenticated}.

    @param transport: the protocol's transport, after the handshake.
    """
    if destination.transport is not TransportKind.TLS:
        return CLEARTEXT
    name = destination.server_name
    if destination.authenticated and name is not None:
        return HopSecurity(SecurityState.TLS_AUTHENTICATED, name)
    certificate = peer_certificate(transport)
    if certificate is None or name is None or not peer_chain_verified(transport):
        return TLS_UNAUTHENTICATED
    if sip_identities(certificate).matches(name):
        return HopSecurity(SecurityState.TLS_AUTHENTICATED, name)
    return TLS_UNAUTHENTICATED


# Twisted plumbing: a reactor whose resolver serves the plan's addresses


@implementer(IHostResolution)
class _Resolution:
    def __init__(self, name: str) -> None:
        self.name = name

    def cancel(self) -> None:
        """Nothing to cancel: the answer is given at once."""


@implementer(IHostnameResolver)
class _PlannedResolver:
    """Answers every name with the addresses the plan resolved, in order."""

    def __init__(self, addresses: Sequence[str]) -> None:
        self._addresses = addresses

    def resolveHostName(
        self,
        resolutionReceiver: IResolutionReceiver,
        hostName: str,
        portNumber: int = 0,
        addressTypes: Sequence[type[IAddress]] | None = None,
        transportSemantics: str = "TCP",
    ) -> IHostResolution:
        resolution = _Resolution(hostName)
        resolutionReceiver.resolutionBegan(resolution)
        for address in self._addresses:
            kind = IPv6Address if ":" in address else IPv4Address
            if addressTypes is None or kind in addressTypes:
                resolutionReceiver.addressResolved(kind("TCP", address, portNumber))
        resolutionReceiver.resolutionComplete()
        return resolution


class _AddressTry:
    """The fate of one TCP connection attempt, as the reactor saw it."""

    def __init__(self, address: str, started: float) -> None:
        self.address = address
        self.started = started
        self.connected_at: float | None = None
        self.failure: Failure | None = None
        self.failed_at: float | None = None


@implementer(IProtocolFactory)
class _ObservingFactory:
    """
    Sits between the reactor and the factory of one C{TCP*ClientEndpoint}
    attempt, to see whether and when that one address connected or failed.
    """

    def __init__(
        self, wrapped: Any, record: _AddressTry, clock: IReactorTime, on_failure: Callable[[], object]
    ) -> None:
        self._wrapped = wrapped
        self._record = record
        self._clock = clock
        self._on_failure = on_failure

    def doStart(self) -> None:
        self._wrapped.doStart()

    def doStop(self) -> None:
        self._wrapped.doStop()

    def startedConnecting(self, connector: IConnector) -> None:
        self._wrapped.startedConnecting(connector)

    def buildProtocol(self, addr: IAddress) -> IProtocol | None:
        self._record.connected_at = self._clock.seconds()
        protocol: IProtocol | None = self._wrapped.buildProtocol(addr)
        return protocol

    def clientConnectionFailed(self, connector: IConnector, reason: Failure) -> None:
        self._record.failure = reason
        self._record.failed_at = self._clock.seconds()
        self._wrapped.clientConnectionFailed(connector, reason)
        self._on_failure()

    def clientConnectionLost(self, connector: IConnector, reason: Failure) -> None:
        self._wrapped.clientConnectionLost(connector, reason)


@implementer(IReactorPluggableNameResolver, IReactorTime)
class _PlannedReactor:
    """
    The reactor as one L{HostnameEndpoint} sees it: names resolve to the
    target's addresses, and every TCP attempt is observed.
    """

    def __init__(
        self,
        reactor: Any,
        addresses: Sequence[str],
        tries: list[_AddressTry],
        on_failure: Callable[[], object] = lambda: None,
    ) -> None:
        self._reactor = reactor
        self._tries = tries
        self._on_failure = on_failure
        self.nameResolver: IHostnameResolver = _PlannedResolver(addresses)

    def installNameResolver(self, resolver: IHostnameResolver) -> IHostnameResolver:
        raise NotImplementedError("the planned addresses are fixed")

    def connectTCP(
        self, host: str, port: int, factory: Any, timeout: float = 30, bindAddress: Any = None
    ) -> IConnector:
        record = _AddressTry(host, self._reactor.seconds())
        self._tries.append(record)
        observed = _ObservingFactory(factory, record, self._reactor, self._on_failure)
        connector: IConnector = self._reactor.connectTCP(host, port, observed, timeout=timeout, bindAddress=bindAddress)
        return connector

    def seconds(self) -> float:
        now: float = self._reactor.seconds()
        return now

    def callLater(self, delay: float, callable: Callable[..., Any], *args: object, **kwargs: object) -> IDelayedCall:
        call: IDelayedCall = self._reactor.callLater(delay, callable, *args, **kwargs)
        return call

    def getDelayedCalls(self) -> Sequence[IDelayedCall]:
        calls: Sequence[IDelayedCall] = self._reactor.getDelayedCalls()
        return calls


@implementer(IProtocolFactory)
class _AttemptFactory:
    """
    The factory under the TLS layer: asks an attempt-aware factory for the
    factory of each connection (the contract, point 1).
    """

    def __init__(self, factory: IProtocolFactory, destination_for: Callable[[str], Destination]) -> None:
        self._factory = factory
        self._destination_for = destination_for

    def doStart(self) -> None:
        self._factory.doStart()

    def doStop(self) -> None:
        self._factory.doStop()

    def buildProtocol(self, addr: IAddress) -> IProtocol | None:
        chosen = self._factory
        if isinstance(chosen, AttemptAwareFactory):
            assert isinstance(addr, IPv4Address | IPv6Address)
            chosen = chosen.for_attempt(self._destination_for(addr.host))
        return chosen.buildProtocol(addr)


# Classifying failures


def _ssl_reasons(value: SSL.Error) -> str:
    """OpenSSL's reasons, in words (its args are lists of (lib, func, reason))."""
    details = value.args[0] if value.args and isinstance(value.args[0], list) else []
    reasons = [str(part[-1]) for part in details if isinstance(part, tuple) and part]
    return "; ".join(reason for reason in reasons if reason) or str(value) or type(value).__name__


def _connect_outcome(reason: Failure) -> Outcome:
    value = reason.value
    if isinstance(value, error.TimeoutError | error.TCPTimedOutError):
        return Outcome.TIMEOUT
    if isinstance(value, error.UserError | error.ConnectingCancelledError | CancelledError):
        return Outcome.CANCELLED
    if isinstance(value, error.ConnectionRefusedError):
        return Outcome.REFUSED
    if isinstance(value, error.ConnectError | error.DNSLookupError):
        return Outcome.UNREACHABLE
    return Outcome.ERROR


def _ready_outcome(reason: Failure, tls: bool) -> Outcome:
    value = reason.value
    if isinstance(value, HandshakeTimedOut):
        return Outcome.HANDSHAKE_TIMEOUT
    if isinstance(value, CancelledError):
        return Outcome.CANCELLED
    if isinstance(value, SIPIdentityMismatch):
        return Outcome.CERTIFICATE_MISMATCH
    if isinstance(value, SSL.Error):
        if "certificate verify failed" in _ssl_reasons(value):
            return Outcome.CERTIFICATE_INVALID
        return Outcome.HANDSHAKE_FAILED
    if isinstance(value, error.ConnectionClosed):
        return Outcome.HANDSHAKE_FAILED if tls else Outcome.CLOSED
    return Outcome.ERROR


def _describe(reason: Failure, outcome: Outcome) -> str:
    if isinstance(reason.value, SIPIdentityMismatch):
        return str(reason.value)
    if isinstance(reason.value, SSL.Error):
        return f"TLS error: {_ssl_reasons(reason.value)}"
    if outcome is Outcome.HANDSHAKE_FAILED and isinstance(reason.value, error.ConnectionClosed):
        return f"the peer closed the connection during the TLS handshake ({reason.getErrorMessage()})"
    message = reason.getErrorMessage()
    return message if message else type(reason.value).__name__


def _usable_address(address: str) -> bool:
    try:
        ipaddress.ip_address(address.partition("%")[0])
    except ValueError:
        return False
    return True


@dataclass
class _Tried:
    """The result of trying one target."""

    attempts: list[Attempt]
    outcome: Outcome
    reason: str = ""
    protocol: IProtocol | None = None
    destination: Destination | None = None
    security: HopSecurity | None = None
    failure: Failure | None = None


@dataclass
class _Handshake:
    """What was seen of a connection when its C{ready} settled."""

    at: float = 0.0
    certificate: PeerCertificate | None = None
    security: HopSecurity | None = None
    failure: Failure | None = None
    timed_out: bool = False


@dataclass
class _Walk:
    """The state of one connect as it walks the plan."""

    attempts: list[Attempt] = field(default_factory=list)
    tls_wanted: bool = False
    tls_failures: list[str] = field(default_factory=list)
    failed_tls: list[tuple[Target, str]] = field(default_factory=list)
    refusal: str | None = None
    fresh_tls_attempt: bool = False


@implementer(IStreamClientEndpoint)
class TLSFirstEndpoint:
    """
    Connects to the first usable stream target of an RFC 3263 plan, TLS
    first (the module docstring says how).

    Built per plan, like L{HostnameEndpoint} per host name; what it learns
    goes into the stack's shared L{TLSMemory}.
    """

    _log = Logger()

    def __init__(
        self,
        reactor: Any,
        plan: Plan,
        *,
        memory: TLSMemory | None = None,
        settings: TLSFirstSettings | None = None,
        limits: Limits | None = None,
        trust_root: bytes | None = None,
        creator_for: Callable[[Destination], IOpenSSLClientConnectionCreator] | None = None,
    ) -> None:
        """
        @param reactor: provides C{IReactorTCP} and C{IReactorTime}.
        @param plan: what to try; its policy decides how.
        @param memory: the stack's memory of targets; a private one if
            L{None} (then nothing is remembered between endpoints).
        @param settings: C{attempt_delay} (and the memory's sizes, for a
            private memory).
        @param limits: C{connect_timeout} and C{handshake_timeout}.
        @param trust_root: PEM CA certificates that authenticate servers;
            L{None} for the platform's.  Unused with C{creator_for}.
        @param creator_for: the TLS client options for a destination (the
            transport layer shares its own); by default built here from
            C{trust_root}: authenticated for an authenticated destination,
            opportunistic otherwise.
        """
        self._reactor = reactor
        self._plan = plan
        self._settings = settings if settings is not None else TLSFirstSettings()
        self._memory = memory if memory is not None else TLSMemory(reactor, self._settings)
        self._limits = limits if limits is not None else Limits()
        self._creator_for = creator_for if creator_for is not None else ClientOptionsCache(trust_root)

    def __repr__(self) -> str:
        return f"<TLSFirstEndpoint {self._plan.uri} ({self._plan.policy.value})>"

    @property
    def plan(self) -> Plan:
        """The plan this endpoint walks."""
        return self._plan

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[IProtocol]:
        """
        Connect, and fire with the protocol once it is ready.

        @raise ConnectFailed: (in the Deferred) nothing usable;
            L{StreamPlanExhausted} or L{DowngradeRefused} say which kind.
        """
        return self.connect_with_report(protocolFactory).addCallback(lambda result: result.protocol)

    def connect_with_report(self, protocolFactory: IProtocolFactory) -> Deferred[ConnectResult]:
        """
        Connect, and fire with the ready protocol and the L{ConnectReport}.

        Cancelling the Deferred stops the attempt in progress (it then fails
        with L{CancelledError}).
        """
        return Deferred.fromCoroutine(self._connect(protocolFactory))

    # The walk

    def _schedule(self) -> list[Target]:
        """
        The stream targets in the order to try them.  Opportunistic: TLS
        before TCP within each run of targets of one NAPTR order (the plan's
        ranking across orders stands, docs/tls-first.md step 2); otherwise
        the plan's order.
        """
        stream = [target for target in self._plan.targets if target.transport in _STREAM]
        if self._plan.policy is not TLSPolicy.OPPORTUNISTIC:
            return stream
        ordered: list[Target] = []
        run: list[Target] = []
        for target in stream:
            if run and target.order != run[0].order:
                ordered += _tls_first(run)
                run = []
            run.append(target)
        return ordered + _tls_first(run)

    async def _connect(self, factory: IProtocolFactory) -> ConnectResult:
        plan = self._plan
        policy = plan.policy
        walk = _Walk(refusal="the strict policy allows authenticated TLS only" if policy is TLSPolicy.STRICT else None)
        for target in self._schedule():
            if target.transport is TransportKind.TLS:
                tried = await self._tls_target(target, factory, walk)
            else:
                tried = await self._tcp_target(target, factory, walk)
            if tried is None:
                continue
            walk.attempts += tried.attempts
            if tried.protocol is not None:
                return self._connected(target, tried, walk)
            if tried.outcome is Outcome.CANCELLED:
                raise CancelledError()
            if tried.outcome.definite or tried.outcome.certificate:
                self._note_failure(target, tried, walk)
                continue
            raise ConnectFailed(
                f"connecting to {target.host}:{target.port} for {plan.uri} failed: {tried.reason}",
                self._report(walk),
            ) from (tried.failure.value if tried.failure is not None else None)
        report = self._report(walk)
        if walk.refusal is not None:
            raise DowngradeRefused(f"no TLS connection for {plan.uri}, and {walk.refusal}", report)
        raise StreamPlanExhausted(f"no stream connection for {plan.uri}: every target failed", report)

    async def _tls_target(self, target: Target, factory: IProtocolFactory, walk: _Walk) -> _Tried | None:
        policy = self._plan.policy
        if policy is TLSPolicy.OFF:
            walk.attempts.append(self._skipped(target, Outcome.SKIPPED_POLICY, "the TLS policy is off"))
            return None
        walk.tls_wanted = True
        pinned = policy is TLSPolicy.OPPORTUNISTIC and self._memory.pinned(target.host, target.port) is not None
        if policy is TLSPolicy.OPPORTUNISTIC and not pinned:
            entry = self._memory.no_tls(target.host, target.port)
            if entry is not None:
                remembered = f"no TLS at {target.host}:{target.port} (remembered: {entry.reason})"
                walk.attempts.append(self._skipped(target, Outcome.SKIPPED_NEGATIVE_CACHE, remembered))
                walk.tls_failures.append(remembered)
                return None
        walk.fresh_tls_attempt = True
        tried = await self._try_target(target, factory)
        if pinned and tried.protocol is None and tried.outcome.definite:
            walk.refusal = f"TLS worked at {target.host}:{target.port} before (pinned), so its failure is an error"
        return tried

    async def _tcp_target(self, target: Target, factory: IProtocolFactory, walk: _Walk) -> _Tried | None:
        if self._plan.policy is TLSPolicy.STRICT:
            walk.attempts.append(self._skipped(target, Outcome.SKIPPED_POLICY, walk.refusal or "strict policy"))
            return None
        if walk.refusal is not None:
            walk.attempts.append(self._skipped(target, Outcome.SKIPPED_DOWNGRADE_REFUSED, walk.refusal))
            return None
        return await self._try_target(target, factory)

    def _note_failure(self, target: Target, tried: _Tried, walk: _Walk) -> None:
        if target.transport is TransportKind.TLS:
            text = f"TLS to {target.host}:{target.port}: {tried.reason}"
            walk.tls_failures.append(text)
            if tried.outcome.definite:
                walk.failed_tls.append((target, tried.reason))

    def _connected(self, target: Target, tried: _Tried, walk: _Walk) -> ConnectResult:
        assert tried.protocol is not None
        reason: str | None = None
        if target.transport is TransportKind.TLS:
            self._memory.remember_tls(target.host, target.port)
        elif walk.tls_wanted and walk.tls_failures:
            reason = "; ".join(walk.tls_failures)
            for failed, why in walk.failed_tls:
                self._memory.remember_no_tls(failed.host, failed.port, why)
        report = self._report(walk, tried, target.transport, reason)
        if reason is not None:
            self._log_downgrade(target, report, fresh=walk.fresh_tls_attempt)
        return ConnectResult(tried.protocol, report)

    def _report(
        self,
        walk: _Walk,
        tried: _Tried | None = None,
        transport: TransportKind | None = None,
        reason: str | None = None,
    ) -> ConnectReport:
        plan = self._plan
        return ConnectReport(
            plan.uri,
            plan.domain,
            plan.policy,
            tuple(walk.attempts),
            transport,
            tried.security if tried is not None else None,
            tried.destination if tried is not None else None,
            reason,
        )

    def _log_downgrade(self, target: Target, report: ConnectReport, *, fresh: bool) -> None:
        emit = self._log.warn if fresh else self._log.info
        emit(
            "TLS wanted for {domain}, TCP used to {target}: {reason}",
            sipstack_event=DOWNGRADE_EVENT,
            domain=report.domain,
            target=f"{target.host}:{target.port}",
            reason=report.fallback_reason,
            attempts=[attempt.as_dict() for attempt in report.attempts],
            uri=report.uri,
            policy=report.policy.value,
        )

    def _skipped(self, target: Target, outcome: Outcome, why: str) -> Attempt:
        return Attempt(
            target.transport, target.host, target.port, None, target.source, outcome, self._reactor.seconds(), error=why
        )

    # One target

    def _destination(self, target: Target, address: str) -> Destination:
        destination = self._plan.destination(target, address)
        if target.transport is TransportKind.TLS and self._plan.authenticated and not destination.authenticated:
            # An IP-literal URI under the strict policy: the certificate must
            # name the address (RFC 5922 allows IP literals in sip: URIs).
            destination = replace(destination, authenticated=True)
        return destination

    async def _try_target(self, target: Target, factory: IProtocolFactory) -> _Tried:
        """
        Connect to one target: race its addresses (happy eyeballs), then, for
        TLS, wait for the handshake.
        """
        clock = self._reactor
        tls = target.transport is TransportKind.TLS
        addresses = [address for address in target.addresses if _usable_address(address)]
        if not addresses:
            nothing = "the host resolved to no usable address"
            return _Tried([self._skipped(target, Outcome.NO_ADDRESSES, nothing)], Outcome.NO_ADDRESSES, nothing)
        tries: list[_AddressTry] = []
        connecting: list[Deferred[IProtocol]] = []
        every_address_failed = False
        settled = False

        def check_exhausted() -> None:
            # HostnameEndpoint notices that its last address failed only at
            # its next attempt-delay tick (250 ms by default): a refused TLS
            # port would cost a quarter second before TCP.  Each address is
            # tried once, so when all have failed the target has failed.
            # (Not .called: the Deferred is "called" while it waits on the
            # one HostnameEndpoint chains to it.)
            nonlocal every_address_failed
            all_tried = len(tries) == len(addresses) and all(each.failure is not None for each in tries)
            if all_tried and connecting and not settled:
                every_address_failed = True
                connecting[0].cancel()

        def on_failure() -> None:
            clock.callLater(0, check_exhausted)

        endpoint: IStreamClientEndpoint = HostnameEndpoint(
            _PlannedReactor(clock, addresses, tries, on_failure),
            # Only the planned resolver sees the name; a target name Twisted
            # would find invalid (not IDNA) must not fail the attempt.
            normalize_domain(target.host) or addresses[0],
            target.port,
            timeout=self._limits.connect_timeout,
            attemptDelay=self._settings.attempt_delay,
        )
        destinations: dict[str, Destination] = {}

        def destination_for(address: str) -> Destination:
            destination = destinations[address] = self._destination(target, address)
            return destination

        if tls:
            endpoint = wrapClientTLS(self._creator_for(self._destination(target, addresses[0])), endpoint)
        connecting.append(endpoint.connect(_AttemptFactory(factory, destination_for)))
        try:
            protocol = await connecting[0]
        except Exception as exc:
            settled = True
            failure = Failure(exc)  # type: ignore[no-untyped-call]  # unannotated in Twisted 26.10
            if every_address_failed and tries[-1].failure is not None:
                failure = tries[-1].failure
            outcome = _connect_outcome(failure)
            attempts = self._tcp_attempts(target, tries, None, failure)
            if attempts and outcome is not Outcome.CANCELLED and outcome is not Outcome.ERROR:
                outcome = attempts[-1].outcome
            return _Tried(attempts, outcome, _summary(attempts) or _describe(failure, outcome), failure=failure)
        settled = True
        address = _peer_host(protocol) or addresses[0]
        connected = [each for each in tries if each.connected_at is not None and each.failure is None]
        winner = next((each for each in connected if each.address == address), connected[0] if connected else None)
        destination = destinations.get(address) or self._destination(target, address)
        handshake = await self._ready(protocol, destination, tls)
        attempts = self._tcp_attempts(target, tries, winner, None)
        started = winner.started if winner is not None else handshake.at
        connect_elapsed = (
            winner.connected_at - winner.started if winner is not None and winner.connected_at is not None else None
        )
        why: str | None = None
        if handshake.failure is None:
            outcome = Outcome.CONNECTED
        elif handshake.timed_out:
            outcome, why = Outcome.HANDSHAKE_TIMEOUT, f"no TLS handshake within {self._limits.handshake_timeout} s"
        else:
            outcome = _ready_outcome(handshake.failure, tls)
            why = _describe(handshake.failure, outcome)
        attempts.append(
            Attempt(
                target.transport,
                target.host,
                target.port,
                address,
                target.source,
                outcome,
                started,
                handshake.at - started,
                connect_elapsed,
                why,
                handshake.certificate,
                handshake.security,
            )
        )
        attempts.sort(key=lambda attempt: attempt.started)
        if outcome is not Outcome.CONNECTED:
            return _Tried(attempts, outcome, f"{address} {outcome.value}: {why}", failure=handshake.failure)
        return _Tried(attempts, outcome, "", protocol, destination, handshake.security)

    def _tcp_attempts(
        self, target: Target, tries: list[_AddressTry], winner: _AddressTry | None, overall: Failure | None
    ) -> list[Attempt]:
        """
        The addresses that did not win, as attempts.

        @param overall: why the whole target failed, if it did.
        """
        attempts = []
        now = self._reactor.seconds()
        cancelled = overall is not None and _connect_outcome(overall) is Outcome.CANCELLED
        for each in tries:
            if each is winner:
                continue
            ended = each.failed_at if each.failed_at is not None else now
            if each.failure is not None:
                outcome = _connect_outcome(each.failure)
                why = _describe(each.failure, outcome)
                if outcome is Outcome.CANCELLED and not cancelled:
                    outcome, why = Outcome.ABANDONED, "another address connected first"
            elif overall is None:
                outcome, why = Outcome.ABANDONED, "another address connected first"
            elif cancelled:
                outcome, why = Outcome.CANCELLED, _describe(overall, Outcome.CANCELLED)
            else:
                outcome, why = Outcome.ERROR, _describe(overall, Outcome.ERROR)
            attempts.append(
                Attempt(
                    target.transport,
                    target.host,
                    target.port,
                    each.address,
                    target.source,
                    outcome,
                    each.started,
                    ended - each.started,
                    error=why,
                )
            )
        return attempts

    async def _ready(self, protocol: IProtocol, destination: Destination, tls: bool) -> _Handshake:
        """
        Wait until C{protocol} is ready (for TLS: the handshake completed),
        within the handshake timeout; never raises except on cancellation.
        """
        ready = getattr(protocol, "ready", None)
        seen = _Handshake()
        if not isinstance(ready, Deferred):
            _abort(protocol)
            seen.at = self._reactor.seconds()
            missing = TypeError(f"{protocol!r} has no ready Deferred (see TLSFirstEndpoint)")
            seen.failure = Failure(missing)  # type: ignore[no-untyped-call]  # unannotated in Twisted 26.10
            return seen
        waiter: Deferred[None] = Deferred(lambda _: _abort(protocol))
        timer: IDelayedCall | None = None

        def timed_out() -> None:
            nonlocal timer
            timer = None
            if not waiter.called:
                seen.at = self._reactor.seconds()
                seen.timed_out = True
                timeout = HandshakeTimedOut(f"no TLS handshake within {self._limits.handshake_timeout} s")
                seen.failure = Failure(timeout)  # type: ignore[no-untyped-call]  # unannotated in Twisted 26.10
                waiter.callback(None)
            _abort(protocol)

        def settle(result: object) -> object:
            if timer is not None and timer.active():
                timer.cancel()
            if waiter.called:
                return None if isinstance(result, Failure) else result
            seen.at = self._reactor.seconds()
            transport = protocol.transport  # type: ignore[attr-defined]  # IProtocol has no transport attribute
            if tls:
                seen.certificate = self._certificate(transport, destination)
            if isinstance(result, Failure):
                seen.failure = result
                waiter.callback(None)
                return None
            try:
                seen.security = hop_security(transport, destination)
            except Exception:
                seen.failure = Failure()  # type: ignore[no-untyped-call]  # unannotated in Twisted 26.10
                _abort(protocol)
            waiter.callback(None)
            return result

        if tls:
            timer = self._reactor.callLater(self._limits.handshake_timeout, timed_out)
        ready.addBoth(settle)
        await waiter
        return seen

    def _certificate(self, transport: object, destination: Destination) -> PeerCertificate | None:
        certificate = peer_certificate(transport) or _presented_leaf(transport)
        if certificate is None:
            return None
        return PeerCertificate.from_certificate(certificate, destination.server_name, peer_chain_verified(transport))


_STREAM = (TransportKind.TLS, TransportKind.TCP)


def _tls_first(targets: list[Target]) -> list[Target]:
    return [t for t in targets if t.transport is TransportKind.TLS] + [
        t for t in targets if t.transport is not TransportKind.TLS
    ]


def _summary(attempts: list[Attempt]) -> str:
    return ", ".join(f"{attempt.address} {attempt.outcome.value}" for attempt in attempts)


def _peer_host(protocol: IProtocol) -> str | None:
    transport = getattr(protocol, "transport", None)
    peer = transport.getPeer() if transport is not None else None
    return peer.host if isinstance(peer, IPv4Address | IPv6Address) else None


def _presented_leaf(transport: object) -> x509.Certificate | None:
    """
    The certificate the peer presented, even when the handshake failed on
    it (OpenSSL then keeps the chain it received, but no peer certificate).
    """
    handle = ISystemHandle(transport).getHandle() if ISystemHandle.providedBy(transport) else None
    if not isinstance(handle, SSL.Connection):
        return None
    chain = handle.get_peer_cert_chain(as_cryptography=True)
    return chain[0] if chain else None


def _abort(protocol: IProtocol) -> None:
    transport = getattr(protocol, "transport", None)
    if transport is not None:
        transport.abortConnection()
