# -*- test-case-name: tests.routing.test_locate -*-
"""
The result of RFC 3263 planning: an ordered list of targets to try, and a
record of the DNS lookups that produced it.

A L{Plan} is a value: the planner (L{sipstack.routing.locate}) makes it, the
TLS-first endpoint and the stack walk it, and C{sipstack probe} prints it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from sipstack.config import TLSPolicy
from sipstack.hop import Destination, Peer, TransportKind

__all__ = ["TargetSource", "Target", "Lookup", "Plan"]


class TargetSource(enum.Enum):
    """Which step of RFC 3263 section 4 produced a target."""

    #: The URI's host is an IP address (section 4.2, first paragraph).
    NUMERIC = "numeric"
    #: The URI named a port: A/AAAA on it, no SRV (section 4.2).
    EXPLICIT_PORT = "explicit-port"
    #: From a NAPTR record and the SRV records it pointed to (section 4.1).
    NAPTR = "naptr"
    #: From SRV records found without NAPTR (section 4.1, last paragraphs).
    SRV = "srv"
    #: A/AAAA on the transport's default port, with no SRV (section 4.2).
    ADDRESS = "address"
    #: TLS on port 5061 of the A/AAAA addresses, tried first because
    #: C{probe_5061} is on (docs/tls-first.md, step 2) or because
    #: C{override_explicit_transport} is on.
    PROBE_5061 = "probe-5061"


@dataclass(frozen=True, slots=True)
class Target:
    """
    One place to try: a transport, a host and port, and the addresses the
    host resolved to, in the order to try them (happy eyeballs races them,
    RFC 8305, so IPv6 and IPv4 alternate, IPv6 first).

    @ivar transport: UDP, TCP or TLS.
    @ivar host: the name that was resolved (a SRV target, or the URI's host
        or C{maddr}), or the IP literal itself.
    @ivar port: the port.
    @ivar addresses: IP addresses as text; empty when the host resolved to
        nothing (the target is then skipped, and reported as such).
    @ivar source: the planning step it came from.
    @ivar order: for a target from NAPTR, the order of its record (RFC 3403):
        targets of a lower order come first, and the TLS-first preference
        applies only among targets of one order.  L{None} otherwise.
    """

    transport: TransportKind
    host: str
    port: int
    addresses: tuple[str, ...]
    source: TargetSource
    order: int | None = None

    def peers(self) -> tuple[Peer, ...]:
        """Each address with the port."""
        return tuple(Peer(address, self.port) for address in self.addresses)


@dataclass(frozen=True, slots=True)
class Lookup:
    """
    One DNS lookup made while planning, for reports (C{sipstack probe}).

    @ivar name: the name queried.
    @ivar rdtype: C{"NAPTR"}, C{"SRV"}, C{"A"} or C{"AAAA"}.
    @ivar answers: the records, each as its zone-file text, in the order
        given; empty for NXDOMAIN or no records.
    @ivar error: why the lookup failed (server failure, timeout), or
        L{None} when it answered.
    @ivar elapsed: seconds the lookup took.
    """

    name: str
    rdtype: str
    answers: tuple[str, ...] = ()
    error: str | None = None
    elapsed: float = 0.0


@dataclass(frozen=True, slots=True)
class Plan:
    """
    Where a request to one URI should go, in order.

    @ivar uri: the URI that was planned for, as text.
    @ivar domain: the SIP domain: the URI's host (or C{maddr}) when it is a
        name, before any SRV indirection (RFC 5922 section 4.1): sent as SNI
        and matched against the certificate.  L{None} for an IP literal.
    @ivar policy: the policy in force (L{TLSPolicy.STRICT} for C{sips:}).
    @ivar targets: what to try, best first.  Stream targets come before UDP
        ones of the same rank; TLS before TCP wherever the policy says so.
    @ivar lookups: every DNS lookup made, in order.
    @ivar explicit_transport: the URI fixed the transport (C{;transport=})
        or the port, so RFC 3263 allows no other choice unless
        C{override_explicit_transport} is on.
    """

    uri: str
    domain: str | None
    policy: TLSPolicy
    targets: tuple[Target, ...]
    lookups: tuple[Lookup, ...] = ()
    explicit_transport: bool = False

    @property
    def failed_lookups(self) -> tuple[Lookup, ...]:
        """
        The lookups that got no answer (L{Lookup.error} set).  Planning went
        on without them (docs/locating-servers.md says when), so a non-empty
        value means the plan may lack targets the DNS would have given.
        """
        return tuple(lookup for lookup in self.lookups if lookup.error is not None)

    @property
    def usable(self) -> tuple[Target, ...]:
        """The targets that have at least one address, in order."""
        return tuple(target for target in self.targets if target.addresses)

    @property
    def authenticated(self) -> bool:
        """Whether TLS must authenticate the server (strict: no fallback, certificate errors are errors)."""
        return self.policy is TLSPolicy.STRICT

    def destination(self, target: Target, address: str) -> Destination:
        """The L{Destination} for one address of one target (SNI and identity are the SIP domain)."""
        tls = target.transport is TransportKind.TLS
        server_name = (self.domain or address) if tls else None
        authenticated = tls and self.authenticated and self.domain is not None
        return Destination(target.transport, Peer(address, target.port), server_name, authenticated)
