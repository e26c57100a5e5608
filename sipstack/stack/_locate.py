# -*- test-case-name: tests.stack.test_tls_first -*-
"""
Where the stack sends a request: RFC 3263 planning (L{locate_server}) and
the walk of the plan, TLS first (docs/tls-first.md), across the failovers
of RFC 3263 section 4.3.

L{Locator} plans for a request's next hop (L{next_hop_uri}) with the
stack's resolver, policy and settings; a L{PlanWalk} then hands out one
L{Hop} at a time:

  - Under the opportunistic and strict policies every stream target is
    walked first (the transport layer's L{connect_plan
    <sipstack.transport.layer.TransportLayer.connect_plan>}: an open flow
    as secure as a fresh connect, or the TLS-first endpoint).  Under
    C{rfc3263} and C{off} the plan's order is kept: a UDP target first in
    the plan is used at once, and a run of stream targets is walked
    together.  A plan with only UDP targets never touches a stream.
  - When the stream targets are exhausted (L{StreamPlanExhausted}), UDP
    follows only where the policy allows it (not strict,
    C{allow_udp_fallback}, and the plan has UDP targets); that is a
    downgrade, logged as one event (L{UDP_FALLBACK_EVENT}).  Under the
    opportunistic policy a failover from a stream hop (after a 503, say)
    reaches UDP targets on the same condition.
  - Each later hop (a failover) skips every target already used or
    failed.  Once a hop was TLS under the opportunistic or strict policy,
    later hops are TLS only: a server that answered over TLS told us the
    domain has TLS, so an overload (503) or a timeout, which an active
    attacker can cause, must not move the request to cleartext.

A numeric host with a port needs no DNS and no coroutine round trip: the
whole path is synchronous, so the fast path stays fast.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger

from sipstack.config import StackConfig, TLSPolicy
from sipstack.errors import RoutingError, TransportFailed
from sipstack.hop import CLEARTEXT, Destination, FlowKey, HopSecurity, Peer, TransportKind
from sipstack.message import Request
from sipstack.message.uri import SIPURI
from sipstack.routing import Plan, Resolver, Target, locate_server, next_hop_uri
from sipstack.routing.resolver import AddressFamily, AddressRecord, NAPTRRecord, SRVRecord
from sipstack.routing.via import host_literal
from sipstack.transport.report import Attempt, ConnectFailed, ConnectResult, StreamPlanExhausted
from sipstack.transport.stream import SIPStreamProtocol

__all__ = ["UDP_FALLBACK_EVENT", "Hop", "PlanWalk", "Locator", "HostsFileResolver"]

#: The value of the C{sipstack_event} field of the one log event emitted
#: when a request goes over UDP because no stream target worked; its other
#: fields are those of the endpoint's C{tls-downgrade} event: C{domain},
#: C{target}, C{reason}, C{attempts}, C{uri} and C{policy}.
UDP_FALLBACK_EVENT = "udp-fallback"

_UDP, _TCP, _TLS = TransportKind.UDP, TransportKind.TCP, TransportKind.TLS
_STREAM = (_TLS, _TCP)

_WITH_UDP = frozenset({_UDP, _TCP, _TLS})
_WITHOUT_UDP = frozenset({_TCP, _TLS})

#: How many plans of numeric URIs a stack keeps (all are dropped when full:
#: they are cheap to make again).
_NUMERIC_PLANS = 1024

_log = Logger()


@dataclass(frozen=True, slots=True)
class Hop:
    """
    Where one client transaction sends: a target of the plan, the address
    chosen, and for a stream the ready flow.

    @ivar target: the plan's target.
    @ivar destination: the transport, address and port (and for TLS the SIP
        domain and verification mode).
    @ivar flow: the stream's flow, or L{None} for UDP.
    @ivar security: the hop's security state.
    """

    target: Target
    destination: Destination
    flow: FlowKey | None
    security: HopSecurity


# A target, or one address of a UDP target, already used or failed.
_Key = tuple[TransportKind, str, int, str | None]


def _key(target: Target, address: str | None = None) -> _Key:
    return (target.transport, target.host, target.port, address)


class PlanWalk:
    """
    The hops of one request across its failovers (the module docstring says
    in which order).

    @ivar plan: the plan walked.
    @ivar attempts: every stream connection attempt made, across hops.
    @ivar fallback_reason: why TLS was not used although wanted (the
        endpoint's reason, or the TLS memory's), or why UDP was; L{None}
        when nothing was given up.
    """

    __slots__ = (
        "_config",
        "_done",
        "_layer",
        "_no_udp",
        "_stream_first",
        "_tls_only",
        "attempts",
        "fallback_reason",
        "plan",
    )

    def __init__(self, plan: Plan, layer: Any, config: StackConfig) -> None:
        self.plan = plan
        self.attempts: tuple[Attempt, ...] = ()
        self.fallback_reason: str | None = None
        self._layer = layer
        self._config = config
        # Few targets are ever tried: a tuple allocates less than a set.
        self._done: tuple[_Key, ...] = ()
        self._tls_only = False
        self._stream_first = plan.policy in (TLSPolicy.OPPORTUNISTIC, TLSPolicy.STRICT)
        # Stream first: UDP after stream targets is a fallback, which the
        # policy may forbid (a plan of UDP targets only is no fallback).
        self._no_udp = (
            self._stream_first
            and any(target.transport in _STREAM for target in plan.targets)
            and (plan.policy is TLSPolicy.STRICT or not config.tls_first.allow_udp_fallback)
        )

    def _remaining(self) -> list[Target]:
        targets = []
        for target in self.plan.targets:
            if not target.addresses or (self._tls_only and target.transport is not _TLS):
                continue
            if self._no_udp and target.transport is _UDP:
                continue
            if target.transport is _UDP:
                if any(_key(target, address) not in self._done for address in target.addresses):
                    targets.append(target)
            elif _key(target) not in self._done:
                targets.append(target)
        return targets

    @property
    def exhausted(self) -> bool:
        """Whether no target is left to try."""
        return not self._remaining()

    def next_hop(self) -> Hop | Deferred[Hop]:
        """
        The next hop: at once when it is UDP (the fast path makes no
        Deferred), else a Deferred of the walk of the stream targets.

        @raise TransportFailed: no target is left.
        @raise ConnectFailed: (in the Deferred) no stream could be used and
            UDP may not follow (L{DowngradeRefused}, or
            L{StreamPlanExhausted} without UDP).
        """
        remaining = self._remaining()
        if not remaining:
            raise TransportFailed(f"every target of {self.plan.uri} was tried")
        if self._stream_first:
            streams = [target for target in remaining if target.transport in _STREAM]
        else:
            # RFC 3263 order: the run of stream targets at the head, if any.
            streams = []
            for target in remaining:
                if target.transport not in _STREAM:
                    break
                streams.append(target)
        if not streams:
            return self._udp_hop(remaining)
        return Deferred.fromCoroutine(self._walk(streams, remaining))

    async def _walk(self, streams: list[Target], remaining: list[Target]) -> Hop:
        plan = replace(self.plan, targets=tuple(streams))
        try:
            result: ConnectResult = await self._layer.connect_plan(plan)
        except StreamPlanExhausted as error:
            self._failed(streams, error.attempts)
            udp = [target for target in remaining if target.transport is _UDP]
            if self.plan.policy is TLSPolicy.STRICT or not self._config.tls_first.allow_udp_fallback or not udp:
                raise
            # The UDP that follows a stream walk is a fallback (and logged as one).
            return self._udp_fallback(error.attempts, remaining)
        except ConnectFailed as error:
            self._failed(streams, error.attempts)
            raise
        report = result.report
        self.attempts += report.attempts
        self._done += tuple((attempt.transport, attempt.host, attempt.port, None) for attempt in report.attempts)
        destination = report.destination
        stream = result.protocol
        assert destination is not None and report.security is not None and isinstance(stream, SIPStreamProtocol)
        target = _target_of(streams, destination)
        self._done += (_key(target),)
        if report.fallback_reason is not None:
            self.fallback_reason = report.fallback_reason
        if destination.transport is _TLS and self._stream_first:
            self._tls_only = True
        return Hop(target, destination, stream.flow, report.security)

    def _failed(self, streams: list[Target], attempts: tuple[Attempt, ...]) -> None:
        self.attempts += attempts
        self._done += tuple(_key(target) for target in streams)

    def _udp_fallback(self, attempts: Sequence[Attempt], remaining: list[Target]) -> Hop:
        hop = self._udp_hop(remaining)
        summary = "; ".join(
            f"{attempt.transport.value} {attempt.host}:{attempt.port} {attempt.outcome.value}"
            + (f" ({attempt.error})" if attempt.error else "")
            for attempt in attempts
        )
        reason = f"no stream target could be used: {summary or 'none planned'}"
        self.fallback_reason = reason
        fresh = any(attempt.address is not None for attempt in attempts)
        emit = _log.warn if fresh else _log.info
        emit(
            "No stream connection for {domain}, UDP used to {target}: {reason}",
            sipstack_event=UDP_FALLBACK_EVENT,
            domain=self.plan.domain,
            target=f"{hop.target.host}:{hop.target.port}",
            reason=reason,
            attempts=[attempt.as_dict() for attempt in attempts],
            uri=self.plan.uri,
            policy=self.plan.policy.value,
        )
        return hop

    def _udp_hop(self, remaining: list[Target]) -> Hop:
        """The first UDP address not tried yet, preferring a family we have a socket for."""
        candidates = [
            (target, address)
            for target in remaining
            if target.transport is _UDP
            for address in target.addresses
            if _key(target, address) not in self._done
        ]
        if not candidates:
            raise TransportFailed(f"no UDP target left for {self.plan.uri}")
        sendable = [pair for pair in candidates if self._layer.can_send_udp(pair[1])]
        target, address = (sendable or candidates)[0]
        self._done += (_key(target, address),)
        return Hop(target, Destination(_UDP, Peer(address, target.port)), None, CLEARTEXT)


def _target_of(targets: list[Target], destination: Destination) -> Target:
    """The target C{destination} is an address of."""
    for target in targets:
        if (
            target.transport is destination.transport
            and target.port == destination.peer.port
            and destination.peer.host in target.addresses
        ):
            return target
    raise AssertionError(f"{destination} is none of the planned targets")


class Locator:
    """
    Plans for the requests of one stack and starts their walks.

    @ivar resolver: the DNS lookups planning makes.
    """

    def __init__(self, reactor: Any, layer: Any, resolver: Resolver, config: StackConfig) -> None:
        self._reactor = reactor
        self._layer = layer
        self.resolver = resolver
        self._config = config
        # Plans of numeric URIs: they need no DNS, so they never change.
        self._numeric: dict[tuple[SIPURI, frozenset[TransportKind]], Plan] = {}

    def known_plan(self, request: Request) -> Plan | None:
        """
        The plan for C{request}'s next hop when it is known without waiting
        (a numeric URI planned before), else L{None}.

        @raise RoutingError: the next hop is not a SIP URI.
        """
        uri = next_hop_uri(request)
        if host_literal(uri.maddr or uri.host) is None:
            return None
        return self._numeric.get((uri, _WITH_UDP if self._layer.has_udp else _WITHOUT_UDP))

    def plan(self, request: Request) -> Deferred[Plan]:
        """
        The plan for C{request}'s next hop (L{next_hop_uri}), with the
        stack's policy and settings, over the transports it can send on
        (UDP only with a UDP socket).

        @raise RoutingError: (in the Deferred) no plan: see L{locate_server}.
        """
        try:
            uri = next_hop_uri(request)
        except RoutingError:
            return fail()
        supported = _WITH_UDP if self._layer.has_udp else _WITHOUT_UDP
        numeric = host_literal(uri.maddr or uri.host) is not None
        if numeric:
            known = self._numeric.get((uri, supported))
            if known is not None:
                return succeed(known)
        config = self._config
        planning = Deferred.fromCoroutine(
            locate_server(
                uri,
                self.resolver,
                policy=config.tls_policy,
                settings=config.tls_first,
                supported=supported,
                clock=self._reactor.seconds,
            )
        )
        if numeric:
            planning.addCallback(self._remember, (uri, supported))
        return planning

    def _remember(self, plan: Plan, key: tuple[SIPURI, frozenset[TransportKind]]) -> Plan:
        if len(self._numeric) >= _NUMERIC_PLANS:
            self._numeric.clear()
        self._numeric[key] = plan
        return plan

    def walk(self, plan: Plan) -> PlanWalk:
        """A walk of C{plan}."""
        return PlanWalk(plan, self._layer, self._config)

    def hop(self, request: Request) -> Deferred[Hop]:
        """The first hop for a request that has no transaction (an ACK of a 2xx)."""
        try:
            plan = self.known_plan(request)
            if plan is not None:
                hop = self.walk(plan).next_hop()
                return hop if isinstance(hop, Deferred) else succeed(hop)
        except Exception:
            return fail()
        return self.plan(request).addCallback(lambda plan: self.walk(plan).next_hop())


# The hosts file in front of DNS


def _is_localhost(name: str) -> bool:
    """RFC 6761 section 6.3: C{localhost} and the names under it."""
    name = name.rstrip(".").lower()
    return name == "localhost" or name.endswith(".localhost")


class HostsFileResolver:
    """
    The stack's default resolver: the hosts file in front of DNS, as the
    system's own name lookup does (C{files dns}).

    A and AAAA lookups of a name the hosts file lists (for that family)
    are answered from it; C{localhost} and the names under it never reach
    DNS (RFC 6761 section 6.3): no NAPTR or SRV, and the loopback
    addresses when the file does not list them.  Everything else goes to
    the wrapped resolver.  The file is read again when it changes.
    """

    def __init__(self, resolver: Resolver, path: str = "/etc/hosts") -> None:
        self.resolver = resolver
        self._path = path
        self._stamp: tuple[float, int] | None = None
        self._hosts: dict[str, dict[AddressFamily, tuple[str, ...]]] = {}

    def _entries(self, name: str) -> dict[AddressFamily, tuple[str, ...]]:
        try:
            status = os.stat(self._path)
        except OSError:
            self._stamp, self._hosts = None, {}
        else:
            stamp = (status.st_mtime, status.st_size)
            if stamp != self._stamp:
                self._stamp, self._hosts = stamp, _read_hosts(self._path)
        return self._hosts.get(name.rstrip(".").lower(), {})

    def naptr(self, name: str) -> Awaitable[tuple[NAPTRRecord, ...]]:
        if _is_localhost(name):
            empty: tuple[NAPTRRecord, ...] = ()
            return succeed(empty)
        return self.resolver.naptr(name)

    def srv(self, name: str) -> Awaitable[tuple[SRVRecord, ...]]:
        if _is_localhost(name.split(".", 2)[-1]) or _is_localhost(name):
            empty: tuple[SRVRecord, ...] = ()
            return succeed(empty)
        return self.resolver.srv(name)

    def addresses(self, name: str, family: AddressFamily) -> Awaitable[tuple[AddressRecord, ...]]:
        listed = self._entries(name).get(family)
        if listed is None and _is_localhost(name):
            listed = ("::1",) if family is AddressFamily.IPV6 else ("127.0.0.1",)
        if listed is not None:
            found = tuple(AddressRecord(family, address) for address in listed)
            return succeed(found)
        return self.resolver.addresses(name, family)


def _read_hosts(path: str) -> dict[str, dict[AddressFamily, tuple[str, ...]]]:
    """The names of a hosts(5) file, each with its addresses by family, in file order."""
    found: dict[str, dict[AddressFamily, list[str]]] = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as lines:
            for line in lines:
                fields = line.partition("#")[0].split()
                if len(fields) < 2:
                    continue
                address = host_literal(fields[0].partition("%")[0])
                if address is None:
                    continue
                family = AddressFamily.IPV6 if ":" in address else AddressFamily.IPV4
                for name in fields[1:]:
                    addresses = found.setdefault(name.lower().rstrip("."), {}).setdefault(family, [])
                    if address not in addresses:
                        addresses.append(address)
    except OSError:
        return {}
    return {name: {family: tuple(each) for family, each in families.items()} for name, families in found.items()}
