# -*- test-case-name: tests.routing.test_locate -*-
"""
Locating SIP servers (RFC 3263 section 4, and section 5 for responses), with
the TLS-first preferences of docs/tls-first.md, as a planner that does no I/O
of its own.

L{locate_server} turns a URI into a L{Plan}: the targets to try, best first,
and every DNS lookup that produced them.  It is a coroutine that only awaits
what its L{Resolver} returns, so the same code runs under Twisted (wrapped in
C{Deferred.fromCoroutine}, with a resolver returning Deferreds) and in tests
driven by hand with a resolver built on dictionaries.  Randomness (RFC 2782
weights) and time (lookup durations) are injected, so a plan is reproducible.

The rules, and the reason for each decision the RFCs leave open, are in
docs/locating-servers.md; in short:

  - C{sips:} forces the strict policy (TLS targets only); the C{off} policy
    never lists TLS and refuses C{sips:}.
  - A numeric host (or C{maddr}) needs no DNS.  An explicit port means A/AAAA
    only; an explicit C{;transport} means SRV for that transport only.  In
    the opportunistic policy, C{override_explicit_transport} puts TLS on
    C{host:5061} before what the URI asked for.
  - Otherwise NAPTR, by order, and within one order TLS first (opportunistic)
    or by preference (C{rfc3263}); without usable NAPTR, C{_sips._tcp},
    C{_sip._tcp} and C{_sip._udp} together, TLS first (opportunistic) or UDP
    first (C{rfc3263}); without SRV, A/AAAA on the default ports, TLS on 5061
    first when C{probe_5061} is on (opportunistic).
  - A lookup that fails (L{LookupFailed}) is recorded with its error and
    planning goes on as RFC 3263 would on an empty answer; only when no
    target ends with an address does planning raise, and then
    L{NoTargetsLookupFailed} (a L{LookupFailed}) if a failure may be why.
"""

from __future__ import annotations

import inspect
import random
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeAlias, TypeVar

from sipstack.config import TLSFirstSettings, TLSPolicy
from sipstack.errors import LookupFailed, RoutingError
from sipstack.hop import TransportKind
from sipstack.message.message import Request
from sipstack.message.uri import SIPURI
from sipstack.message.via import Via
from sipstack.routing.plan import Lookup, Plan, Target, TargetSource
from sipstack.routing.resolver import AddressFamily, AddressRecord, NAPTRRecord, Resolver, SRVRecord
from sipstack.routing.via import default_port, host_literal, response_target

__all__ = [
    "Randomness",
    "SUPPORTED",
    "NoTargets",
    "NoTargetsLookupFailed",
    "locate_server",
    "locate_response",
    "next_hop_uri",
    "order_srv",
]

#: A source of randomness for RFC 2782: a L{random.Random}, or a function
#: that returns a uniformly chosen integer from 0 to its argument inclusive.
Randomness: TypeAlias = random.Random | Callable[[int], int]

#: The transports the planner knows how to plan for (RFC 3263 has NAPTR
#: services and SRV names for these three).
SUPPORTED: frozenset[TransportKind] = frozenset({TransportKind.UDP, TransportKind.TCP, TransportKind.TLS})

_UDP, _TCP, _TLS = TransportKind.UDP, TransportKind.TCP, TransportKind.TLS

#: NAPTR services (RFC 3263 section 4.1) the planner uses; SCTP ones and any
#: other service are ignored.
_SERVICES = {"SIPS+D2T": _TLS, "SIP+D2T": _TCP, "SIP+D2U": _UDP}

#: The SRV prefix of each transport (RFC 3263 sections 4.1 and 4.2: TLS is
#: C{_sips._tcp} whether the URI is C{sip:} or C{sips:}).
_SRV_PREFIX = {_TLS: "_sips._tcp", _TCP: "_sip._tcp", _UDP: "_sip._udp"}

#: Where each transport goes in the opportunistic ordering: TLS, TCP, UDP.
_STRENGTH = {_TLS: 0, _TCP: 1, _UDP: 2}

#: The no-NAPTR SRV ordering of the plain RFC 3263 policies: RFC 3263 lets
#: the client choose, and its own default for a C{sip:} URI is UDP.
_RFC3263_ORDER = (_UDP, _TCP, _TLS)

_default_random = random.Random()


class NoTargets(RoutingError):
    """
    Planning ended without any target that has an address.

    @ivar plan: what planning found (targets without addresses, and every
        lookup made), so that a report can show why.
    """

    def __init__(self, message: str, plan: Plan) -> None:
        super().__init__(message)
        self.plan = plan


class NoTargetsLookupFailed(NoTargets, LookupFailed):
    """
    Planning ended without any usable target, and at least one lookup failed:
    the failure, not the DNS data, may be the reason (so it is a
    L{LookupFailed}, which callers may treat as temporary).
    """


def _uniform(rng: Randomness, upper: int) -> int:
    """A uniformly chosen integer in C{[0, upper]}."""
    if isinstance(rng, random.Random):
        return rng.randint(0, upper)
    value = rng(upper)
    if not 0 <= value <= upper:
        raise ValueError(f"random source returned {value}, outside [0, {upper}]")
    return value


def order_srv(records: Iterable[SRVRecord], rng: Randomness | None = None) -> tuple[SRVRecord, ...]:
    """
    The order in which to try SRV records (RFC 2782, "Usage rules").

    Records are taken by ascending priority.  Within one priority they are
    chosen one at a time: the remaining records are arranged with the
    zero-weight ones first (the rest in a random arrangement, the RFC's "any
    order"), a number is drawn uniformly from 0 to the sum of their weights
    inclusive, and the first record whose running sum of weights reaches it
    is next.  So a record's chance of coming first is proportional to its
    weight, and a zero-weight record comes first only when 0 is drawn: a
    very small chance among weighted records, an even one among zero-weight
    records alone.

    @param rng: the source of randomness (a seeded L{random.Random} makes the
        order reproducible); a module-wide generator by default.
    """
    rng = _default_random if rng is None else rng
    by_priority: dict[int, list[SRVRecord]] = {}
    for record in records:
        by_priority.setdefault(record.priority, []).append(record)
    ordered: list[SRVRecord] = []
    for priority in sorted(by_priority):
        group = by_priority[priority]
        # Fisher-Yates, so the arrangement among equal weights is random too.
        for index in range(len(group) - 1, 0, -1):
            swap = _uniform(rng, index)
            group[index], group[swap] = group[swap], group[index]
        group.sort(key=lambda record: record.weight != 0)
        while group:
            pick = _uniform(rng, sum(record.weight for record in group))
            running = 0
            for index, record in enumerate(group):
                running += record.weight
                if running >= pick:
                    ordered.append(group.pop(index))
                    break
    return tuple(ordered)


def next_hop_uri(request: Request) -> SIPURI:
    """
    The URI whose server a request is sent to: the first Route when it is a
    loose router, else the Request-URI (RFC 3261 sections 8.1.2 and 16.12;
    with a strict-routing first hop, the UAC has already put that hop in the
    Request-URI, section 12.2.1.1).

    @raise RoutingError: that URI is not a C{sip:} or C{sips:} URI.
    """
    target = request.uri
    routes = request.routes
    if routes and isinstance(routes[0].uri, SIPURI) and routes[0].uri.lr:
        target = routes[0].uri
    if not isinstance(target, SIPURI):
        raise RoutingError(f"cannot locate a server for {target}")
    return target


# Zone-file text of the records, for Lookup.answers.


def _name_text(name: str) -> str:
    return name or "."


def _naptr_text(record: NAPTRRecord) -> str:
    return (
        f'{record.order} {record.preference} "{record.flags}" "{record.service}" "{record.regexp}" '
        f"{_name_text(record.replacement)}"
    )


def _srv_text(record: SRVRecord) -> str:
    return f"{record.priority} {record.weight} {record.port} {_name_text(record.target)}"


def _address_text(record: AddressRecord) -> str:
    return record.address


_R = TypeVar("_R")


class _Pending(Generic[_R]):
    """
    One lookup, started when made (a Deferred runs from creation, so several
    made before the first is awaited run together) and awaited at most once.
    """

    def __init__(
        self,
        planner: _Planner,
        name: str,
        rdtype: str,
        awaitable: Awaitable[tuple[_R, ...]],
        render: Callable[[_R], str],
    ) -> None:
        self._planner = planner
        self._name = name
        self._rdtype = rdtype
        self._awaitable: Awaitable[tuple[_R, ...]] | None = awaitable
        self._render = render
        self._started = planner.now()
        self._slot = planner.reserve()
        self._result: tuple[_R, ...] | None = None

    async def wait(self) -> tuple[_R, ...] | None:
        """The records, or L{None} when the lookup failed."""
        awaitable, self._awaitable = self._awaitable, None
        if awaitable is None:
            return self._result
        error = None
        try:
            self._result = tuple(await awaitable)
        except LookupFailed as failure:
            error = str(failure) or type(failure).__name__
        answers = () if self._result is None else tuple(self._render(record) for record in self._result)
        elapsed = max(0.0, self._planner.now() - self._started)
        self._planner.record(self._slot, Lookup(self._name, self._rdtype, answers, error, elapsed))
        return self._result

    def abandon(self) -> None:
        """Close a lookup that will never be awaited (planning stopped on an unexpected error)."""
        awaitable, self._awaitable = self._awaitable, None
        if inspect.iscoroutine(awaitable):
            awaitable.close()


@dataclass(frozen=True, slots=True)
class _Context:
    """What one planning run is allowed to do."""

    policy: TLSPolicy
    settings: TLSFirstSettings
    allowed: frozenset[TransportKind]

    @property
    def opportunistic(self) -> bool:
        return self.policy is TLSPolicy.OPPORTUNISTIC

    def default_transport(self) -> TransportKind:
        """
        RFC 3263 section 4.1's transport when nothing chooses one: TLS for
        C{sips:} (and the strict policy), UDP for C{sip:}, or the next
        transport the stack has when it lacks that one.
        """
        preferred = (_TLS,) if self.policy is TLSPolicy.STRICT else (_UDP, _TCP, _TLS)
        for transport in preferred:
            if transport in self.allowed:
                return transport
        raise RoutingError("no transport is both supported and allowed by the TLS policy")

    def overrides(self, transport: TransportKind) -> bool:
        """Whether TLS on port 5061 goes before the URI's explicit C{transport} or port."""
        return (
            self.opportunistic
            and self.settings.override_explicit_transport
            and transport is not _TLS
            and _TLS in self.allowed
        )

    def fallback(self, refused: frozenset[TransportKind]) -> list[tuple[TransportKind, bool]]:
        """
        The transports to use on default ports when DNS named none (no SRV,
        or a numeric host), best first, each with whether it is the 5061
        probe; C{refused} are transports whose SRV said "decidedly not
        available" (RFC 2782 target C{.}).
        """
        if self.opportunistic:
            choices = [(_TLS, True)] if self.settings.probe_5061 else []
            choices += [(_TCP, False), (_UDP, False)]
        else:
            choices = [(self.default_transport(), False)]
        return [(t, probe) for t, probe in choices if t in self.allowed and t not in refused]


def _context(
    uri_secure: bool, policy: TLSPolicy, settings: TLSFirstSettings, supported: frozenset[TransportKind]
) -> _Context:
    if uri_secure:
        if policy is TLSPolicy.OFF:
            raise RoutingError("a sips: URI needs TLS, and the TLS policy is off")
        policy = TLSPolicy.STRICT
    allowed = supported & SUPPORTED
    if policy is TLSPolicy.STRICT:
        allowed &= {_TLS}
    elif policy is TLSPolicy.OFF:
        allowed -= {_TLS}
    if not allowed:
        raise RoutingError(f"no transport is both supported and allowed by the {policy.value} TLS policy")
    return _Context(policy, settings, frozenset(allowed))


def _explicit_transport(uri: SIPURI, context: _Context) -> TransportKind | None:
    """
    The transport the URI's C{;transport} parameter names, as RFC 3261
    reads it: C{tcp} in a C{sips:} URI (or under the strict policy) means TLS
    over TCP, and C{udp} there is a contradiction.
    """
    param = uri.transport
    if param is None:
        return None
    if param == "tls":
        transport = _TLS
    elif param == "tcp":
        transport = _TLS if context.policy is TLSPolicy.STRICT else _TCP
    elif param == "udp":
        if context.policy is TLSPolicy.STRICT:
            raise RoutingError(f"{uri} asks for UDP, which cannot carry TLS")
        transport = _UDP
    else:
        raise RoutingError(f"{uri} asks for transport {param!r}, which this planner does not support")
    if transport not in context.allowed:
        raise RoutingError(f"{uri} asks for {transport.value}, which is not supported or allowed by the TLS policy")
    return transport


def _normalize(name: str) -> str:
    return name.rstrip(".").lower()


def _interleave(ipv6: Sequence[str], ipv4: Sequence[str]) -> tuple[str, ...]:
    """Addresses alternating by family, IPv6 first (RFC 8305 section 4), without repeats."""
    merged: list[str] = []
    for index in range(max(len(ipv6), len(ipv4))):
        for family in (ipv6, ipv4):
            if index < len(family) and family[index] not in merged:
                merged.append(family[index])
    return tuple(merged)


def _addresses(records: Iterable[AddressRecord], *, ipv6: bool) -> list[str]:
    """The addresses of one family, in one textual form (what the endpoint and the reports compare)."""
    family = AddressFamily.IPV6 if ipv6 else AddressFamily.IPV4
    found = []
    for record in records:
        literal = host_literal(record.address)
        if record.family is family and literal is not None and (":" in literal) == ipv6:
            found.append(literal)
    return found


@dataclass(frozen=True, slots=True)
class _Draft:
    """A target before its host is resolved."""

    transport: TransportKind
    host: str
    port: int
    source: TargetSource
    order: int | None = None


class _Planner:
    """
    One planning run: the lookups made (each name and type asked once), in
    the order they were made.
    """

    def __init__(self, resolver: Resolver, rng: Randomness, clock: Callable[[], float] | None) -> None:
        self._resolver = resolver
        self._rng = rng
        self._clock = clock
        self._lookups: list[Lookup | None] = []
        self._srv: dict[str, _Pending[SRVRecord]] = {}
        self._addresses: dict[str, tuple[_Pending[AddressRecord], _Pending[AddressRecord]]] = {}
        self._pending: list[_Pending[Any]] = []

    # Bookkeeping for _Pending.

    def now(self) -> float:
        return 0.0 if self._clock is None else self._clock()

    def reserve(self) -> int:
        self._lookups.append(None)
        return len(self._lookups) - 1

    def record(self, slot: int, lookup: Lookup) -> None:
        self._lookups[slot] = lookup

    def lookups(self) -> tuple[Lookup, ...]:
        return tuple(lookup for lookup in self._lookups if lookup is not None)

    def abandon(self) -> None:
        for pending in self._pending:
            pending.abandon()

    # Starting lookups.

    def naptr(self, name: str) -> _Pending[NAPTRRecord]:
        pending = _Pending(self, name, "NAPTR", self._resolver.naptr(name), _naptr_text)
        self._pending.append(pending)
        return pending

    def srv(self, name: str) -> _Pending[SRVRecord]:
        if name not in self._srv:
            self._srv[name] = pending = _Pending(self, name, "SRV", self._resolver.srv(name), _srv_text)
            self._pending.append(pending)
        return self._srv[name]

    def addresses(self, name: str) -> tuple[_Pending[AddressRecord], _Pending[AddressRecord]]:
        """Start the AAAA and A lookups of C{name} together (once per run)."""
        if name not in self._addresses:
            ipv6 = _Pending(self, name, "AAAA", self._resolver.addresses(name, AddressFamily.IPV6), _address_text)
            ipv4 = _Pending(self, name, "A", self._resolver.addresses(name, AddressFamily.IPV4), _address_text)
            self._addresses[name] = (ipv6, ipv4)
            self._pending += (ipv6, ipv4)
        return self._addresses[name]

    # The steps of RFC 3263.

    async def srv_drafts(
        self, name: str, transport: TransportKind, source: TargetSource, order: int | None = None
    ) -> tuple[list[_Draft], bool]:
        """
        The targets of one SRV name in RFC 2782 order, and whether the name
        said the service is decidedly not available (only C{.} targets).
        """
        records = await self.srv(name).wait() or ()
        usable = [record for record in records if record.target not in ("", ".")]
        drafts = [
            _Draft(transport, _normalize(record.target), record.port, source, order)
            for record in order_srv(usable, self._rng)
        ]
        return drafts, bool(records) and not usable

    async def from_naptr(self, name: str, context: _Context) -> list[_Draft] | None:
        """
        Section 4.1 with NAPTR: the targets of the usable records, or L{None}
        when there are none (no records, a failure, none this client can use,
        or none whose SRV gave a target), so that planning goes on without.
        """
        records = await self.naptr(name).wait()
        chosen: list[tuple[NAPTRRecord, TransportKind]] = []
        for record in records or ():
            transport = _SERVICES.get(record.service.upper())
            if (
                transport is not None
                and transport in context.allowed
                and record.flags.lower() == "s"
                and not record.regexp
                and record.replacement not in ("", ".")
            ):
                chosen.append((record, transport))
        if context.opportunistic:
            chosen.sort(key=lambda pair: (pair[0].order, _STRENGTH[pair[1]], pair[0].preference))
        else:
            chosen.sort(key=lambda pair: (pair[0].order, pair[0].preference))
        for record, _ in chosen:
            self.srv(_normalize(record.replacement))
        drafts: list[_Draft] = []
        for record, transport in chosen:
            found, _ = await self.srv_drafts(
                _normalize(record.replacement), transport, TargetSource.NAPTR, record.order
            )
            drafts += found
        return drafts or None

    async def from_srv(self, name: str, context: _Context) -> tuple[list[_Draft], frozenset[TransportKind]]:
        """
        Section 4.1 without NAPTR: C{_sips._tcp}, C{_sip._tcp} and
        C{_sip._udp} (those the stack may use) asked together; the targets,
        and the transports whose SRV refused service.
        """
        if context.policy in (TLSPolicy.OPPORTUNISTIC, TLSPolicy.STRICT):
            transports = [t for t in (_TLS, _TCP, _UDP) if t in context.allowed]
        else:
            transports = [t for t in _RFC3263_ORDER if t in context.allowed]
        for transport in transports:
            self.srv(f"{_SRV_PREFIX[transport]}.{name}")
        drafts: list[_Draft] = []
        refused: set[TransportKind] = set()
        for transport in transports:
            found, no_service = await self.srv_drafts(f"{_SRV_PREFIX[transport]}.{name}", transport, TargetSource.SRV)
            drafts += found
            if no_service:
                refused.add(transport)
        return drafts, frozenset(refused)

    async def resolve(self, drafts: Sequence[_Draft]) -> tuple[Target, ...]:
        """
        The targets with their addresses: every distinct host's AAAA and A
        lookups started before any is awaited.  Numeric hosts need none.
        Repeated (transport, host, port) targets are dropped.
        """
        unique: list[_Draft] = []
        seen: set[tuple[TransportKind, str, int]] = set()
        for draft in drafts:
            key = (draft.transport, draft.host, draft.port)
            if key not in seen:
                seen.add(key)
                unique.append(draft)
        for draft in unique:
            if host_literal(draft.host) is None:
                self.addresses(draft.host)
        resolved: dict[str, tuple[str, ...]] = {}
        targets = []
        for draft in unique:
            literal = host_literal(draft.host)
            if literal is not None:
                addresses: tuple[str, ...] = (literal,)
            elif draft.host in resolved:
                addresses = resolved[draft.host]
            else:
                ipv6, ipv4 = self.addresses(draft.host)
                v6 = await ipv6.wait() or ()
                v4 = await ipv4.wait() or ()
                addresses = resolved[draft.host] = _interleave(_addresses(v6, ipv6=True), _addresses(v4, ipv6=False))
            targets.append(Target(draft.transport, draft.host, draft.port, addresses, draft.source, draft.order))
        return tuple(targets)


def _probe(host: str) -> _Draft:
    return _Draft(_TLS, host, default_port(_TLS), TargetSource.PROBE_5061)


def _defaults(host: str, context: _Context, source: TargetSource, refused: frozenset[TransportKind]) -> list[_Draft]:
    """The targets on default ports when DNS named no transport (RFC 3263 section 4.2, last step)."""
    return [
        _probe(host) if probe else _Draft(transport, host, default_port(transport), source)
        for transport, probe in context.fallback(refused)
    ]


async def _drafts(uri: SIPURI, planner: _Planner, context: _Context) -> tuple[list[_Draft], bool]:
    """The targets before address lookups, and whether the URI fixed the transport or port."""
    explicit = _explicit_transport(uri, context)
    raw_host = uri.maddr or uri.host
    literal = host_literal(raw_host)
    host = literal if literal is not None else _normalize(raw_host)
    fixed = explicit is not None or uri.port is not None
    if fixed:
        transport = explicit or context.default_transport()
        if uri.port is not None:
            source = TargetSource.NUMERIC if literal is not None else TargetSource.EXPLICIT_PORT
            drafts = [_Draft(transport, host, uri.port, source)]
        elif literal is not None:
            drafts = [_Draft(transport, host, default_port(transport), TargetSource.NUMERIC)]
        else:
            # Section 4.2: SRV for that transport; without SRV, A/AAAA on its default port.
            drafts, no_service = await planner.srv_drafts(
                f"{_SRV_PREFIX[transport]}.{host}", transport, TargetSource.SRV
            )
            if not drafts and not no_service:
                drafts = [_Draft(transport, host, default_port(transport), TargetSource.ADDRESS)]
        if context.overrides(transport):
            drafts.insert(0, _probe(host))
        return drafts, True
    if literal is not None:
        return _defaults(host, context, TargetSource.NUMERIC, frozenset()), False
    from_naptr = await planner.from_naptr(host, context)
    if from_naptr is not None:
        return from_naptr, False
    drafts, refused = await planner.from_srv(host, context)
    if drafts:
        return drafts, False
    return _defaults(host, context, TargetSource.ADDRESS, refused), False


def _finish(plan: Plan) -> Plan:
    """The plan, or the error that says why it has nowhere to go."""
    if plan.usable:
        return plan
    if not plan.targets:
        message = f"no target for {plan.uri}: the DNS names no service this stack may use"
    else:
        message = f"no address for any target of {plan.uri}"
    if plan.failed_lookups:
        failed = ", ".join(f"{lookup.rdtype} {lookup.name}" for lookup in plan.failed_lookups)
        raise NoTargetsLookupFailed(f"{message} (lookups failed: {failed})", plan)
    raise NoTargets(message, plan)


async def locate_server(
    uri: SIPURI,
    resolver: Resolver,
    *,
    policy: TLSPolicy = TLSPolicy.OPPORTUNISTIC,
    settings: TLSFirstSettings | None = None,
    supported: frozenset[TransportKind] = SUPPORTED,
    rng: Randomness | None = None,
    clock: Callable[[], float] | None = None,
) -> Plan:
    """
    Plan where a request for C{uri} goes (RFC 3263 section 4 and
    docs/tls-first.md): the targets to try in order, each with its
    addresses, and the lookups made.

    @param uri: the URI to locate a server for (see L{next_hop_uri}).
    @param resolver: the DNS lookups; only what its methods return is awaited.
    @param policy: the TLS policy in force; a C{sips:} URI makes it strict.
    @param settings: the TLS-first settings (C{probe_5061},
        C{override_explicit_transport}); the defaults when L{None}.
    @param supported: the transports the stack can send on; others are
        never planned.
    @param rng: the randomness for RFC 2782 weights (seed it in tests).
    @param clock: a function giving the time in seconds, to time lookups;
        without one, L{Lookup.elapsed} is 0.

    @return: a plan with at least one target that has an address.
    @raise RoutingError: the URI and policy allow no transport (C{sips:}
        with the C{off} policy, C{;transport=udp} under strict, an
        unsupported transport).
    @raise NoTargets: no target has an address (a L{RoutingError} carrying
        the plan); L{NoTargetsLookupFailed}, also a L{LookupFailed}, when a
        failed lookup may be the reason.
    """
    context = _context(uri.secure, policy, settings or TLSFirstSettings(), supported)
    planner = _Planner(resolver, _default_random if rng is None else rng, clock)
    raw_host = uri.maddr or uri.host
    literal = host_literal(raw_host)
    if literal is None:
        domain: str | None = _normalize(raw_host)
    else:
        # A numeric maddr still names the server by the URI's host, if that
        # is a name: the identity TLS checks is the SIP domain (RFC 5922).
        domain = _normalize(uri.host) if uri.maddr is not None and host_literal(uri.host) is None else None
    try:
        drafts, fixed = await _drafts(uri, planner, context)
        targets = await planner.resolve(drafts)
    except BaseException:
        planner.abandon()
        raise
    # A password (deprecated, RFC 3261 section 19.1.1) has no place in reports and logs.
    shown = str(uri if uri.password is None else uri.replace(password=None))
    plan = Plan(shown, domain, context.policy, targets, planner.lookups(), fixed)
    return _finish(plan)


async def locate_response(
    via: Via,
    resolver: Resolver,
    *,
    supported: frozenset[TransportKind] = SUPPORTED,
    rng: Randomness | None = None,
    clock: Callable[[], float] | None = None,
) -> Plan:
    """
    Plan where a response goes when it cannot follow its request's
    connection (RFC 3263 section 5, after RFC 3261 section 18.2.2 and RFC
    3581, L{response_target}): an address is used as it is; a name with a
    port is resolved with A/AAAA; a sent-by name without a port is looked up
    as SRV for the Via's transport (C{_sips._tcp} for TLS), then A/AAAA on
    the transport's default port.  The transport is always the Via's.

    The plan's policy is L{TLSPolicy.RFC3263}: a response goes back the way
    the request came, and is not the place to raise or lower security.

    @raise RoutingError: the Via names a transport the stack cannot send on.
    @raise NoTargets: as for L{locate_server}.
    """
    destination = response_target(via)
    transport = destination.transport
    if transport not in supported & SUPPORTED:
        raise RoutingError(f"cannot send a response over {transport.value}")
    planner = _Planner(resolver, _default_random if rng is None else rng, clock)
    literal = host_literal(destination.host)
    host = literal if literal is not None else _normalize(destination.host)
    description = f"{via.transport} {via.host if via.port is None else f'{via.host}:{via.port}'}"
    if literal is not None:
        drafts = [_Draft(transport, host, destination.port, TargetSource.NUMERIC)]
    elif via.port is None and via.maddr is None:
        drafts, no_service = await planner.srv_drafts(f"{_SRV_PREFIX[transport]}.{host}", transport, TargetSource.SRV)
        if not drafts and not no_service:
            drafts = [_Draft(transport, host, destination.port, TargetSource.ADDRESS)]
    else:
        source = TargetSource.ADDRESS if via.port is None else TargetSource.EXPLICIT_PORT
        drafts = [_Draft(transport, host, destination.port, source)]
    try:
        targets = await planner.resolve(drafts)
    except BaseException:
        planner.abandon()
        raise
    domain = None if literal is not None else host
    return _finish(Plan(description, domain, TLSPolicy.RFC3263, targets, planner.lookups(), True))
