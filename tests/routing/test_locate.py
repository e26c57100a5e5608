"""
Tests for L{sipstack.routing.locate}: RFC 3263 server location with the
TLS-first preferences of docs/tls-first.md, planned against a resolver built
on dictionaries (the end-to-end tests against a DNS server on loopback live
with the DNS adapter).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Coroutine, Iterable
from typing import Any, TypeVar

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from sipstack.config import TLSFirstSettings, TLSPolicy
from sipstack.errors import LookupFailed, RoutingError
from sipstack.hop import TransportKind
from sipstack.message import Request, parse_datagram, parse_uri
from sipstack.message.uri import SIPURI
from sipstack.message.via import parse_via
from sipstack.routing import (
    AddressFamily,
    AddressRecord,
    NAPTRRecord,
    NoTargets,
    NoTargetsLookupFailed,
    Plan,
    SRVRecord,
    TargetSource,
    locate_response,
    locate_server,
    next_hop_uri,
    order_srv,
)
from sipstack.routing.via import host_literal

UDP, TCP, TLS = TransportKind.UDP, TransportKind.TCP, TransportKind.TLS
OPPORTUNISTIC, STRICT, RFC3263, OFF = TLSPolicy.OPPORTUNISTIC, TLSPolicy.STRICT, TLSPolicy.RFC3263, TLSPolicy.OFF

T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine whose awaitables never suspend (the fake resolver's)."""
    try:
        coroutine.send(None)
    except StopIteration as stop:
        result: T = stop.value
        return result
    coroutine.close()
    raise AssertionError("the planner suspended on a resolver that never does")


def _text(token: str) -> str:
    return token[1:-1] if token.startswith('"') and token.endswith('"') else token


class FakeResolver:
    """
    A L{Resolver} on dictionaries, written as zone lines::

        example.com NAPTR 10 50 "s" "SIPS+D2T" "" _sips._tcp.example.com
        _sips._tcp.example.com SRV 0 5 5061 sip1.example.com
        sip1.example.com A 192.0.2.1
        example.com FAIL NAPTR

    Every query is logged (when awaited) in C{queries}.
    """

    def __init__(self, *lines: str) -> None:
        self.records: dict[tuple[str, str], list[object]] = {}
        self.failing: set[tuple[str, str]] = set()
        self.queries: list[tuple[str, str]] = []
        for line in lines:
            self.add(line)

    def add(self, line: str) -> None:
        name, rdtype, *data = line.split()
        if rdtype == "FAIL":
            self.failing.add((data[0], name))
            return
        record: object
        if rdtype == "NAPTR":
            order, preference, flags, service, regexp, replacement = data
            record = NAPTRRecord(
                int(order), int(preference), _text(flags), _text(service), _text(regexp), replacement.rstrip(".")
            )
        elif rdtype == "SRV":
            priority, weight, port, target = data
            record = SRVRecord(int(priority), int(weight), int(port), "" if target == "." else target)
        else:
            record = AddressRecord(AddressFamily(rdtype), data[0])
        self.records.setdefault((rdtype, name), []).append(record)

    def _answer(self, rdtype: str, name: str) -> tuple[Any, ...]:
        self.queries.append((rdtype, name))
        if (rdtype, name) in self.failing:
            raise LookupFailed(f"SERVFAIL for {rdtype} {name}")
        return tuple(self.records.get((rdtype, name), ()))

    async def naptr(self, name: str) -> tuple[NAPTRRecord, ...]:
        return self._answer("NAPTR", name)

    async def srv(self, name: str) -> tuple[SRVRecord, ...]:
        return self._answer("SRV", name)

    async def addresses(self, name: str, family: AddressFamily) -> tuple[AddressRecord, ...]:
        return self._answer(family.value, name)


#: Two hosts with both families, for the zones below.
HOSTS = (
    "sip1.example.com A 192.0.2.1",
    "sip1.example.com AAAA 2001:db8::1",
    "sip2.example.com A 192.0.2.2",
    "example.com A 192.0.2.10",
    "example.com AAAA 2001:db8::10",
)


def uri(text: str) -> SIPURI:
    parsed = parse_uri(text)
    assert isinstance(parsed, SIPURI)
    return parsed


def plan(
    text: str,
    resolver: FakeResolver,
    policy: TLSPolicy = OPPORTUNISTIC,
    seed: int = 0,
    supported: Iterable[TransportKind] = (UDP, TCP, TLS),
    **settings: Any,
) -> Plan:
    return run(
        locate_server(
            uri(text),
            resolver,
            policy=policy,
            settings=TLSFirstSettings(**settings),
            supported=frozenset(supported),
            rng=random.Random(seed),
        )
    )


def summary(result: Plan) -> list[tuple[TransportKind, str, int]]:
    return [(target.transport, target.host, target.port) for target in result.targets]


class NAPTRTests(SynchronousTestCase):
    """
    With NAPTR records (RFC 3263 section 4.1), their order rules, and within
    one order TLS comes first in the opportunistic policy.
    """

    def test_only_sips(self) -> None:
        """A domain whose NAPTR offers only SIPS+D2T gets TLS targets only, from its SRV."""
        resolver = FakeResolver(
            'example.com NAPTR 10 50 "s" "SIPS+D2T" "" _sips._tcp.example.com.',
            "_sips._tcp.example.com SRV 0 5 5061 sip1.example.com",
            *HOSTS,
        )
        result = plan("sip:alice@example.com", resolver)
        self.assertEqual(summary(result), [(TLS, "sip1.example.com", 5061)])
        [target] = result.targets
        self.assertEqual(target.addresses, ("2001:db8::1", "192.0.2.1"))
        self.assertEqual(target.source, TargetSource.NAPTR)
        self.assertEqual(target.order, 10)
        self.assertEqual(result.domain, "example.com")
        self.assertEqual(result.policy, OPPORTUNISTIC)
        self.assertFalse(result.explicit_transport)
        self.assertEqual(
            [(lookup.rdtype, lookup.name, lookup.answers) for lookup in result.lookups],
            [
                ("NAPTR", "example.com", ('10 50 "s" "SIPS+D2T" "" _sips._tcp.example.com',)),
                ("SRV", "_sips._tcp.example.com", ("0 5 5061 sip1.example.com",)),
                ("AAAA", "sip1.example.com", ("2001:db8::1",)),
                ("A", "sip1.example.com", ("192.0.2.1",)),
            ],
        )
        destination = result.destination(target, target.addresses[0])
        self.assertEqual(destination.server_name, "example.com")
        self.assertFalse(destination.authenticated)

    def _tcp_and_tls(self) -> FakeResolver:
        return FakeResolver(
            'example.com NAPTR 10 10 "s" "SIP+D2T" "" _sip._tcp.example.com',
            'example.com NAPTR 10 20 "s" "SIPS+D2T" "" _sips._tcp.example.com',
            'example.com NAPTR 10 30 "s" "SIP+D2U" "" _sip._udp.example.com',
            "_sip._tcp.example.com SRV 0 0 5060 sip1.example.com",
            "_sips._tcp.example.com SRV 0 0 5061 sip1.example.com",
            "_sip._udp.example.com SRV 0 0 5060 sip2.example.com",
            *HOSTS,
        )

    def test_tcp_and_tls_opportunistic(self) -> None:
        """Within the best order, SIPS+D2T goes first although its preference is worse; then TCP, then UDP."""
        result = plan("sip:example.com", self._tcp_and_tls())
        self.assertEqual(
            summary(result),
            [(TLS, "sip1.example.com", 5061), (TCP, "sip1.example.com", 5060), (UDP, "sip2.example.com", 5060)],
        )

    def test_tcp_and_tls_rfc3263(self) -> None:
        """The rfc3263 policy keeps the pure order and preference."""
        result = plan("sip:example.com", self._tcp_and_tls(), RFC3263)
        self.assertEqual(
            summary(result),
            [(TCP, "sip1.example.com", 5060), (TLS, "sip1.example.com", 5061), (UDP, "sip2.example.com", 5060)],
        )

    def test_order_wins_over_tls(self) -> None:
        """A lower order is used first even when it is UDP: the operator's order is kept."""
        resolver = FakeResolver(
            'example.com NAPTR 10 10 "s" "SIP+D2U" "" _sip._udp.example.com',
            'example.com NAPTR 20 10 "s" "SIPS+D2T" "" _sips._tcp.example.com',
            "_sip._udp.example.com SRV 0 0 5060 sip2.example.com",
            "_sips._tcp.example.com SRV 0 0 5061 sip1.example.com",
            *HOSTS,
        )
        result = plan("sip:example.com", resolver)
        self.assertEqual([(t.transport, t.order) for t in result.targets], [(UDP, 10), (TLS, 20)])

    def test_unusable_records_ignored(self) -> None:
        """Records with other flags, a regexp, an unknown service or no replacement are skipped; case is ignored."""
        resolver = FakeResolver(
            'example.com NAPTR 1 1 "a" "SIPS+D2T" "" bad1.example.com',
            'example.com NAPTR 1 1 "s" "SIPS+D2T" "!^.*$!sip:x!" bad2.example.com',
            'example.com NAPTR 1 1 "s" "SIP+D2S" "" bad3.example.com',
            'example.com NAPTR 1 1 "s" "E2U+sip" "" bad4.example.com',
            'example.com NAPTR 1 1 "s" "SIP+D2T" "" .',
            'example.com NAPTR 5 1 "S" "sip+d2t" "" _sip._tcp.example.com',
            "_sip._tcp.example.com SRV 0 0 5060 sip1.example.com",
            *HOSTS,
        )
        result = plan("sip:example.com", resolver)
        self.assertEqual(summary(result), [(TCP, "sip1.example.com", 5060)])
        self.assertNotIn(("SRV", "bad1.example.com"), resolver.queries)
        self.assertEqual([q for q in resolver.queries if q[0] == "SRV"], [("SRV", "_sip._tcp.example.com")])

    def test_unsupported_transports_filtered(self) -> None:
        """A stack without TLS never plans the SIPS+D2T record, nor asks for its SRV."""
        result = plan("sip:example.com", self._tcp_and_tls(), supported=(UDP, TCP))
        self.assertEqual(summary(result), [(TCP, "sip1.example.com", 5060), (UDP, "sip2.example.com", 5060)])
        self.assertNotIn("_sips._tcp.example.com", [lookup.name for lookup in result.lookups])

    def test_no_usable_record_falls_back_to_srv(self) -> None:
        """NAPTR records of which none is usable are treated as no NAPTR: SRV comes next."""
        resolver = FakeResolver(
            'example.com NAPTR 1 1 "s" "SIP+D2S" "" _sip._sctp.example.com',
            "_sip._tcp.example.com SRV 0 0 5060 sip1.example.com",
            *HOSTS,
        )
        result = plan("sip:example.com", resolver)
        self.assertEqual(summary(result), [(TCP, "sip1.example.com", 5060)])
        self.assertEqual(result.targets[0].source, TargetSource.SRV)

    def test_naptr_without_srv_falls_through(self) -> None:
        """A NAPTR whose SRV names no target leads on to the SRV step (each SRV name asked once) and A/AAAA."""
        resolver = FakeResolver('example.com NAPTR 1 1 "s" "SIPS+D2T" "" _sips._tcp.example.com', *HOSTS)
        result = plan("sip:example.com", resolver)
        self.assertEqual(
            summary(result), [(TLS, "example.com", 5061), (TCP, "example.com", 5060), (UDP, "example.com", 5060)]
        )
        self.assertEqual(resolver.queries.count(("SRV", "_sips._tcp.example.com")), 1)

    def test_lookup_failed_is_recorded_and_srv_follows(self) -> None:
        """
        A failed NAPTR lookup is not silently "no NAPTR": the plan records it
        with its error, and planning goes on with the SRV step.
        """
        resolver = FakeResolver(
            "example.com FAIL NAPTR",
            "_sips._tcp.example.com SRV 0 0 5061 sip1.example.com",
            "_sip._udp.example.com SRV 0 0 5060 sip2.example.com",
            *HOSTS,
        )
        for policy in (OPPORTUNISTIC, STRICT):
            result = plan("sip:example.com", resolver, policy)
            [failed] = result.failed_lookups
            self.assertEqual((failed.rdtype, failed.name), ("NAPTR", "example.com"))
            self.assertEqual(failed.error, "SERVFAIL for NAPTR example.com")
            self.assertEqual(result.targets[0].transport, TLS)
        self.assertEqual(summary(plan("sip:example.com", resolver, STRICT)), [(TLS, "sip1.example.com", 5061)])

    def test_failure_on_every_path(self) -> None:
        """When every lookup fails, planning raises a LookupFailed carrying the lookups made."""
        resolver = FakeResolver(
            "example.com FAIL NAPTR",
            "_sips._tcp.example.com FAIL SRV",
            "_sip._tcp.example.com FAIL SRV",
            "_sip._udp.example.com FAIL SRV",
            "example.com FAIL A",
            "example.com FAIL AAAA",
        )
        error = self.assertRaises(NoTargetsLookupFailed, plan, "sip:example.com", resolver)
        self.assertIsInstance(error, LookupFailed)
        self.assertEqual(len(error.plan.failed_lookups), 6)
        self.assertEqual(len(error.plan.lookups), 6)
        self.assertEqual([t.addresses for t in error.plan.targets], [(), (), ()])


class SRVTests(SynchronousTestCase):
    """
    Without NAPTR, SRV for the three transports, asked together.
    """

    def _all_three(self, *extra: str) -> FakeResolver:
        return FakeResolver(
            "_sips._tcp.example.com SRV 0 0 5061 sip1.example.com",
            "_sip._tcp.example.com SRV 0 0 5060 sip1.example.com",
            "_sip._udp.example.com SRV 0 0 5060 sip2.example.com",
            *extra,
            *HOSTS,
        )

    def test_tls_first(self) -> None:
        """The opportunistic policy lists TLS first when _sips._tcp exists, then TCP, then UDP."""
        result = plan("sip:example.com", self._all_three())
        self.assertEqual(
            summary(result),
            [(TLS, "sip1.example.com", 5061), (TCP, "sip1.example.com", 5060), (UDP, "sip2.example.com", 5060)],
        )
        self.assertEqual({t.source for t in result.targets}, {TargetSource.SRV})

    def test_rfc3263_order(self) -> None:
        """The rfc3263 policy lists UDP, TCP, then TLS (RFC 3263's own default transport first)."""
        result = plan("sip:example.com", self._all_three(), RFC3263)
        self.assertEqual([t.transport for t in result.targets], [UDP, TCP, TLS])

    def test_only_sip_srv(self) -> None:
        """No _sips._tcp: no TLS target (no 5061 probe when SRV exists)."""
        resolver = FakeResolver("_sip._udp.example.com SRV 0 0 5060 sip2.example.com", *HOSTS)
        self.assertEqual(summary(plan("sip:example.com", resolver)), [(UDP, "sip2.example.com", 5060)])

    def test_priorities(self) -> None:
        """Lower priorities come first, whatever the weights (failover order)."""
        resolver = FakeResolver(
            "_sips._tcp.example.com SRV 1 100 5061 sip2.example.com",
            "_sips._tcp.example.com SRV 0 1 5061 sip1.example.com",
            *HOSTS,
        )
        for seed in range(10):
            result = plan("sips:example.com", resolver, seed=seed)
            self.assertEqual([t.host for t in result.targets], ["sip1.example.com", "sip2.example.com"])

    def test_service_refused(self) -> None:
        """An SRV target of "." says TLS is decidedly not available: no 5061 probe either."""
        resolver = FakeResolver("_sips._tcp.example.com SRV 0 0 0 .", *HOSTS)
        result = plan("sip:example.com", resolver)
        self.assertEqual(summary(result), [(TCP, "example.com", 5060), (UDP, "example.com", 5060)])
        self.assertRaises(NoTargets, plan, "sips:example.com", resolver)

    def test_partial_failure(self) -> None:
        """One failed SRV lookup is recorded; the others' answers are used."""
        resolver = FakeResolver(
            "_sips._tcp.example.com FAIL SRV", "_sip._tcp.example.com SRV 0 0 5060 sip1.example.com", *HOSTS
        )
        result = plan("sip:example.com", resolver)
        self.assertEqual(summary(result), [(TCP, "sip1.example.com", 5060)])
        self.assertEqual([lookup.name for lookup in result.failed_lookups], ["_sips._tcp.example.com"])

    def test_same_host_resolved_once(self) -> None:
        """A host named by several SRV records is looked up once per family."""
        resolver = self._all_three()
        plan("sip:example.com", resolver)
        self.assertEqual(resolver.queries.count(("A", "sip1.example.com")), 1)
        self.assertEqual(resolver.queries.count(("AAAA", "sip1.example.com")), 1)

    def test_sips_only_queries_sips(self) -> None:
        """A sips: URI asks only for _sips._tcp, and never yields TCP or UDP."""
        resolver = self._all_three()
        result = plan("sips:example.com", resolver)
        self.assertEqual(summary(result), [(TLS, "sip1.example.com", 5061)])
        self.assertEqual(result.policy, STRICT)
        self.assertEqual([q for q in resolver.queries if q[0] == "SRV"], [("SRV", "_sips._tcp.example.com")])
        target = result.targets[0]
        destination = result.destination(target, target.addresses[0])
        self.assertTrue(destination.authenticated)
        self.assertEqual(destination.server_name, "example.com")


class AddressFallbackTests(SynchronousTestCase):
    """
    Without NAPTR and SRV, A/AAAA on the default ports (RFC 3263 section 4.2),
    with TLS on 5061 first when probe_5061 is on.
    """

    def test_probe_on(self) -> None:
        result = plan("sip:example.com", FakeResolver(*HOSTS))
        self.assertEqual(
            summary(result), [(TLS, "example.com", 5061), (TCP, "example.com", 5060), (UDP, "example.com", 5060)]
        )
        self.assertEqual(
            [t.source for t in result.targets], [TargetSource.PROBE_5061, TargetSource.ADDRESS, TargetSource.ADDRESS]
        )
        self.assertEqual(result.targets[0].addresses, ("2001:db8::10", "192.0.2.10"))

    def test_probe_off(self) -> None:
        """Without the probe, no TLS: stream before datagram."""
        result = plan("sip:example.com", FakeResolver(*HOSTS), probe_5061=False)
        self.assertEqual(summary(result), [(TCP, "example.com", 5060), (UDP, "example.com", 5060)])

    def test_rfc3263(self) -> None:
        """The rfc3263 policy uses UDP for a sip: URI, and probes nothing."""
        result = plan("sip:example.com", FakeResolver(*HOSTS), RFC3263)
        self.assertEqual(summary(result), [(UDP, "example.com", 5060)])
        result = plan("sip:example.com", FakeResolver(*HOSTS), RFC3263, supported=(TCP, TLS))
        self.assertEqual(summary(result), [(TCP, "example.com", 5060)])

    def test_sips(self) -> None:
        result = plan("sips:example.com", FakeResolver(*HOSTS))
        self.assertEqual(summary(result), [(TLS, "example.com", 5061)])
        self.assertEqual(result.targets[0].source, TargetSource.ADDRESS)

    def test_interleaved(self) -> None:
        """Addresses alternate by family, IPv6 first, each once."""
        resolver = FakeResolver(
            "example.com AAAA 2001:db8::1",
            "example.com AAAA 2001:db8::2",
            "example.com AAAA 2001:db8::1",
            "example.com A 192.0.2.1",
        )
        result = plan("sip:example.com", resolver, RFC3263)
        self.assertEqual(result.targets[0].addresses, ("2001:db8::1", "192.0.2.1", "2001:db8::2"))

    def test_addresses_canonical(self) -> None:
        """Addresses come out in one textual form; records that hold no address of their family are dropped."""
        resolver = FakeResolver(
            "example.com AAAA 2001:DB8:0::1", "example.com AAAA 192.0.2.3", "example.com A not-an-address"
        )
        result = plan("sip:alice:secret@example.com", resolver, RFC3263)
        self.assertEqual(result.targets[0].addresses, ("2001:db8::1",))
        self.assertEqual(result.uri, "sip:alice@example.com")

    def test_one_family_fails(self) -> None:
        """A failed AAAA lookup is recorded, and the A answer is used."""
        resolver = FakeResolver("example.com FAIL AAAA", "example.com A 192.0.2.1")
        result = plan("sip:example.com", resolver, RFC3263)
        self.assertEqual(result.targets[0].addresses, ("192.0.2.1",))
        self.assertEqual([(x.rdtype, x.name) for x in result.failed_lookups], [("AAAA", "example.com")])

    def test_unresolvable_targets_kept(self) -> None:
        """A target whose host has no address stays in the plan with none, after the ones that have some."""
        resolver = FakeResolver(
            "_sip._tcp.example.com SRV 0 0 5060 gone.example.com",
            "_sip._tcp.example.com SRV 1 0 5060 sip1.example.com",
            *HOSTS,
        )
        result = plan("sip:example.com", resolver)
        first = result.targets[0]
        self.assertEqual((first.host, first.addresses), ("gone.example.com", ()))
        self.assertEqual([t.host for t in result.usable], ["sip1.example.com"])

    def test_nothing_resolves(self) -> None:
        """No address anywhere, with no failure: a NoTargets that is not a LookupFailed."""
        error = self.assertRaises(NoTargets, plan, "sip:nowhere.example.com", FakeResolver())
        self.assertNotIsInstance(error, LookupFailed)
        self.assertIsInstance(error, RoutingError)
        self.assertEqual(len(error.plan.targets), 3)


class ExplicitTests(SynchronousTestCase):
    """
    A port or ;transport in the URI is obeyed (RFC 3263 sections 4.1 and
    4.2), unless override_explicit_transport puts TLS on 5061 first.
    """

    def test_port(self) -> None:
        """A port with a name: A/AAAA only, no NAPTR or SRV, UDP by default."""
        resolver = FakeResolver("_sips._tcp.example.com SRV 0 0 5061 sip1.example.com", *HOSTS)
        result = plan("sip:example.com:5070", resolver)
        self.assertEqual(summary(result), [(UDP, "example.com", 5070)])
        self.assertEqual(result.targets[0].source, TargetSource.EXPLICIT_PORT)
        self.assertTrue(result.explicit_transport)
        self.assertEqual({q[0] for q in resolver.queries}, {"A", "AAAA"})

    def test_port_override(self) -> None:
        result = plan("sip:example.com:5070", FakeResolver(*HOSTS), override_explicit_transport=True)
        self.assertEqual(summary(result), [(TLS, "example.com", 5061), (UDP, "example.com", 5070)])
        self.assertEqual(result.targets[0].source, TargetSource.PROBE_5061)

    def test_port_and_transport(self) -> None:
        result = plan("sip:example.com:5070;transport=TCP", FakeResolver(*HOSTS))
        self.assertEqual(summary(result), [(TCP, "example.com", 5070)])

    def test_transport(self) -> None:
        """;transport=tcp without a port: SRV for TCP only, no NAPTR."""
        resolver = FakeResolver(
            'example.com NAPTR 1 1 "s" "SIPS+D2T" "" _sips._tcp.example.com',
            "_sips._tcp.example.com SRV 0 0 5061 sip1.example.com",
            "_sip._tcp.example.com SRV 0 0 5080 sip2.example.com",
            *HOSTS,
        )
        result = plan("sip:example.com;transport=tcp", resolver)
        self.assertEqual(summary(result), [(TCP, "sip2.example.com", 5080)])
        self.assertEqual(resolver.queries[0], ("SRV", "_sip._tcp.example.com"))
        self.assertNotIn("NAPTR", [q[0] for q in resolver.queries])

    def test_transport_override(self) -> None:
        resolver = FakeResolver("_sip._tcp.example.com SRV 0 0 5080 sip2.example.com", *HOSTS)
        result = plan("sip:example.com;transport=tcp", resolver, override_explicit_transport=True)
        self.assertEqual(summary(result), [(TLS, "example.com", 5061), (TCP, "sip2.example.com", 5080)])

    def test_override_only_opportunistic(self) -> None:
        """The override is a TLS-first knob: the rfc3263 policy ignores it."""
        result = plan("sip:example.com:5070", FakeResolver(*HOSTS), RFC3263, override_explicit_transport=True)
        self.assertEqual(summary(result), [(UDP, "example.com", 5070)])

    def test_transport_without_srv(self) -> None:
        result = plan("sip:example.com;transport=udp", FakeResolver(*HOSTS), override_explicit_transport=False)
        self.assertEqual(summary(result), [(UDP, "example.com", 5060)])
        self.assertEqual(result.targets[0].source, TargetSource.ADDRESS)

    def test_transport_tls(self) -> None:
        """;transport=tls in a sip: URI uses _sips._tcp (RFC 3263 section 4.2)."""
        resolver = FakeResolver("_sips._tcp.example.com SRV 0 0 5062 sip1.example.com", *HOSTS)
        result = plan("sip:example.com;transport=tls", resolver)
        self.assertEqual(summary(result), [(TLS, "sip1.example.com", 5062)])
        self.assertEqual(result.policy, OPPORTUNISTIC)

    def test_sips_transport_tcp_is_tls(self) -> None:
        result = plan("sips:example.com;transport=tcp", FakeResolver(*HOSTS))
        self.assertEqual(summary(result), [(TLS, "example.com", 5061)])

    def test_impossible(self) -> None:
        """Transports that cannot be used raise RoutingError before any lookup."""
        cases = [
            ("sips:example.com;transport=udp", OPPORTUNISTIC, (UDP, TCP, TLS)),
            ("sip:example.com;transport=udp", STRICT, (UDP, TCP, TLS)),
            ("sip:example.com;transport=sctp", OPPORTUNISTIC, (UDP, TCP, TLS)),
            ("sip:example.com;transport=tls", OFF, (UDP, TCP, TLS)),
            ("sip:example.com;transport=tcp", OPPORTUNISTIC, (UDP, TLS)),
            ("sips:example.com", OPPORTUNISTIC, (UDP, TCP)),
            ("sip:example.com", OPPORTUNISTIC, ()),
        ]
        for text, policy, supported in cases:
            resolver = FakeResolver(*HOSTS)
            self.assertRaises(RoutingError, plan, text, resolver, policy, supported=supported)
            self.assertEqual(resolver.queries, [], text)


class NumericTests(SynchronousTestCase):
    """
    A numeric host needs no DNS (RFC 3263 section 4.1).
    """

    def test_ipv4_probe(self) -> None:
        resolver = FakeResolver()
        result = plan("sip:192.0.2.7", resolver)
        self.assertEqual(
            summary(result), [(TLS, "192.0.2.7", 5061), (TCP, "192.0.2.7", 5060), (UDP, "192.0.2.7", 5060)]
        )
        self.assertEqual([t.addresses for t in result.targets], [("192.0.2.7",)] * 3)
        self.assertEqual(result.targets[1].source, TargetSource.NUMERIC)
        self.assertIsNone(result.domain)
        self.assertEqual((resolver.queries, result.lookups), ([], ()))

    def test_ipv6(self) -> None:
        result = plan("sip:[2001:DB8:0::7]:5070", FakeResolver())
        self.assertEqual(summary(result), [(UDP, "2001:db8::7", 5070)])

    def test_probe_off_and_rfc3263(self) -> None:
        self.assertEqual(
            [t.transport for t in plan("sip:192.0.2.7", FakeResolver(), probe_5061=False).targets], [TCP, UDP]
        )
        self.assertEqual(summary(plan("sip:192.0.2.7", FakeResolver(), RFC3263)), [(UDP, "192.0.2.7", 5060)])
        self.assertEqual(summary(plan("sip:192.0.2.7", FakeResolver(), OFF)), [(UDP, "192.0.2.7", 5060)])

    def test_sips(self) -> None:
        self.assertEqual(summary(plan("sips:192.0.2.7", FakeResolver())), [(TLS, "192.0.2.7", 5061)])

    def test_transport(self) -> None:
        self.assertEqual(summary(plan("sip:192.0.2.7;transport=tcp", FakeResolver())), [(TCP, "192.0.2.7", 5060)])
        result = plan("sip:192.0.2.7;transport=tcp", FakeResolver(), override_explicit_transport=True)
        self.assertEqual(summary(result), [(TLS, "192.0.2.7", 5061), (TCP, "192.0.2.7", 5060)])


class MaddrTests(SynchronousTestCase):
    """
    maddr replaces the host as the target (RFC 3263 section 4).
    """

    def test_name(self) -> None:
        resolver = FakeResolver(*HOSTS)
        result = plan("sip:alice@example.org;maddr=sip1.example.com", resolver, RFC3263)
        self.assertEqual(summary(result), [(UDP, "sip1.example.com", 5060)])
        self.assertEqual(result.domain, "sip1.example.com")
        names = {"sip1.example.com", "_sip._udp.sip1.example.com", "_sip._tcp.sip1.example.com"}
        self.assertEqual({q[1] for q in resolver.queries}, names | {"_sips._tcp.sip1.example.com"})

    def test_numeric(self) -> None:
        """A numeric maddr needs no DNS; the SIP domain for TLS stays the URI's host."""
        resolver = FakeResolver()
        result = plan("sips:example.org;maddr=192.0.2.9", resolver)
        self.assertEqual(summary(result), [(TLS, "192.0.2.9", 5061)])
        self.assertEqual(result.domain, "example.org")
        self.assertEqual(resolver.queries, [])
        self.assertTrue(result.destination(result.targets[0], "192.0.2.9").authenticated)


class PolicyTests(SynchronousTestCase):
    """
    The off policy lists no TLS; sips: forces strict.
    """

    def test_off(self) -> None:
        resolver = FakeResolver(
            'example.com NAPTR 10 10 "s" "SIPS+D2T" "" _sips._tcp.example.com',
            'example.com NAPTR 10 20 "s" "SIP+D2T" "" _sip._tcp.example.com',
            "_sips._tcp.example.com SRV 0 0 5061 sip1.example.com",
            "_sip._tcp.example.com SRV 0 0 5060 sip1.example.com",
            *HOSTS,
        )
        result = plan("sip:example.com", resolver, OFF, override_explicit_transport=True)
        self.assertEqual(summary(result), [(TCP, "sip1.example.com", 5060)])
        self.assertNotIn(("SRV", "_sips._tcp.example.com"), resolver.queries)

    def test_off_no_naptr(self) -> None:
        resolver = FakeResolver(*HOSTS)
        self.assertEqual(summary(plan("sip:example.com", resolver, OFF)), [(UDP, "example.com", 5060)])
        self.assertNotIn(("SRV", "_sips._tcp.example.com"), resolver.queries)

    def test_sips_off(self) -> None:
        self.assertRaises(RoutingError, plan, "sips:example.com", FakeResolver(*HOSTS), OFF)

    def test_strict_sip(self) -> None:
        """The strict policy on a sip: URI plans TLS only, like sips:."""
        result = plan("sip:example.com", FakeResolver(*HOSTS), STRICT)
        self.assertEqual(summary(result), [(TLS, "example.com", 5061)])


class DeterminismTests(SynchronousTestCase):
    """
    Randomness and time are injected.
    """

    def _weighted(self) -> FakeResolver:
        return FakeResolver(
            *(f"_sips._tcp.example.com SRV 0 {w} 5061 h{w}.example.com" for w in (1, 2, 3, 4, 5)),
            *(f"h{w}.example.com A 192.0.2.{w}" for w in (1, 2, 3, 4, 5)),
        )

    def test_seeded(self) -> None:
        first = [plan("sips:example.com", self._weighted(), seed=seed) for seed in range(20)]
        again = [plan("sips:example.com", self._weighted(), seed=seed) for seed in range(20)]
        self.assertEqual(first, again)
        self.assertGreater(len({tuple(t.host for t in p.targets) for p in first}), 1)

    def test_callable_random(self) -> None:
        """A function can stand for the random source: always 0 picks zero-weight records, then the first."""
        result = run(locate_server(uri("sips:example.com"), self._weighted(), rng=lambda upper: upper))
        self.assertEqual(len(result.targets), 5)
        self.assertRaises(ValueError, run, locate_server(uri("sips:example.com"), self._weighted(), rng=lambda u: -1))

    def test_clock(self) -> None:
        """Each lookup's elapsed time is measured with the injected clock."""
        ticks = iter(range(100))
        result = run(locate_server(uri("sip:example.com"), FakeResolver(*HOSTS), clock=lambda: float(next(ticks))))
        self.assertTrue(all(lookup.elapsed > 0 for lookup in result.lookups))


_SRV = st.builds(
    SRVRecord,
    st.integers(0, 3),
    st.integers(0, 10),
    st.integers(1, 65535),
    st.sampled_from(["a.example.com", "b.example.com", "c.example.com"]),
)


class OrderSRVTests(SynchronousTestCase):
    """
    RFC 2782 selection: priority ascending, weighted random within one.
    """

    @given(st.lists(_SRV, max_size=8), st.integers(0, 2**32))
    def test_permutation_by_priority(self, records: list[SRVRecord], seed: int) -> None:
        ordered = order_srv(records, random.Random(seed))
        self.assertEqual(Counter(ordered), Counter(records))
        self.assertEqual([r.priority for r in ordered], sorted(r.priority for r in records))

    def test_weights_bias_first_pick(self) -> None:
        """With weights 90 and 10, the heavy record comes first about nine times in ten."""
        heavy, light = SRVRecord(0, 90, 1, "heavy"), SRVRecord(0, 10, 1, "light")
        rng = random.Random(1)
        firsts = Counter(order_srv([light, heavy], rng)[0].target for _ in range(2000))
        self.assertTrue(1700 < firsts["heavy"] < 1900, firsts)

    def test_zero_weight(self) -> None:
        """A zero-weight record is rarely first among weighted ones; among zero weights each gets its turn."""
        rng = random.Random(2)
        zero, weighted = SRVRecord(0, 0, 1, "zero"), SRVRecord(0, 50, 1, "weighted")
        firsts = Counter(order_srv([weighted, zero], rng)[0].target for _ in range(2000))
        self.assertLess(firsts["zero"], 100)
        self.assertGreater(firsts["zero"], 0)
        zeros = [SRVRecord(0, 0, 1, name) for name in "abc"]
        firsts = Counter(order_srv(zeros, rng)[0].target for _ in range(900))
        self.assertEqual(set(firsts), {"a", "b", "c"})
        self.assertTrue(all(firsts[name] > 200 for name in "abc"), firsts)


class ConcurrencyTests(SynchronousTestCase):
    """
    Under Twisted, the planner runs in Deferred.fromCoroutine over a resolver
    returning Deferreds, and lookups that go together are all started before
    the first is awaited.
    """

    def test_deferreds(self) -> None:
        pending: dict[tuple[str, str], Deferred[Any]] = {}

        class DeferredResolver:
            def _start(self, rdtype: str, name: str) -> Deferred[Any]:
                d: Deferred[Any] = Deferred()
                pending[(rdtype, name)] = d
                return d

            def naptr(self, name: str) -> Deferred[tuple[NAPTRRecord, ...]]:
                return self._start("NAPTR", name)

            def srv(self, name: str) -> Deferred[tuple[SRVRecord, ...]]:
                return self._start("SRV", name)

            def addresses(self, name: str, family: AddressFamily) -> Deferred[tuple[AddressRecord, ...]]:
                return self._start(family.value, name)

        result = Deferred.fromCoroutine(locate_server(uri("sip:example.com"), DeferredResolver()))
        self.assertEqual(list(pending), [("NAPTR", "example.com")])
        pending.pop(("NAPTR", "example.com")).callback(())
        self.assertEqual(
            list(pending),
            [("SRV", "_sips._tcp.example.com"), ("SRV", "_sip._tcp.example.com"), ("SRV", "_sip._udp.example.com")],
        )
        # Answer out of order: the last first.
        pending.pop(("SRV", "_sip._udp.example.com")).callback((SRVRecord(0, 0, 5060, "u.example.com"),))
        pending.pop(("SRV", "_sip._tcp.example.com")).errback(LookupFailed("timeout"))
        pending.pop(("SRV", "_sips._tcp.example.com")).callback((SRVRecord(0, 0, 5061, "t.example.com"),))
        self.assertEqual(
            list(pending),
            [("AAAA", "t.example.com"), ("A", "t.example.com"), ("AAAA", "u.example.com"), ("A", "u.example.com")],
        )
        for (rdtype, _name), d in list(pending.items()):
            family = AddressFamily(rdtype)
            d.callback((AddressRecord(family, "2001:db8::1" if rdtype == "AAAA" else "192.0.2.1"),))
        done = self.successResultOf(result)
        self.assertEqual(summary(done), [(TLS, "t.example.com", 5061), (UDP, "u.example.com", 5060)])
        self.assertEqual([lookup.error for lookup in done.lookups if lookup.error], ["timeout"])
        self.assertEqual([lookup.rdtype for lookup in done.lookups], ["NAPTR", "SRV", "SRV", "SRV"] + ["AAAA", "A"] * 2)


def _request(*routes: str, uri_text: str = "sip:bob@example.com") -> Request:
    route_lines = "".join(f"Route: {route}\r\n" for route in routes)
    data = (
        f"OPTIONS {uri_text} SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n{route_lines}"
        "From: <sip:a@example.org>;tag=1\r\nTo: <sip:b@example.org>\r\nCall-ID: c@x\r\nCSeq: 1 OPTIONS\r\n"
        "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    request = parse_datagram(data)
    assert isinstance(request, Request)
    return request


class NextHopTests(SynchronousTestCase):
    """
    The URI to locate: the first Route when it is a loose router, else the Request-URI.
    """

    def test_loose_route(self) -> None:
        request = _request("<sip:proxy.example.net;lr>", "<sip:other.example.net;lr>")
        self.assertEqual(next_hop_uri(request).host, "proxy.example.net")

    def test_strict_route(self) -> None:
        self.assertEqual(next_hop_uri(_request("<sip:proxy.example.net>")).host, "example.com")

    def test_no_route(self) -> None:
        self.assertEqual(next_hop_uri(_request()).host, "example.com")

    def test_not_sip(self) -> None:
        self.assertRaises(RoutingError, next_hop_uri, _request(uri_text="tel:+15551234"))


def _response_plan(via: str, resolver: FakeResolver) -> Plan:
    [parsed] = parse_via(via)
    return run(locate_response(parsed, resolver, rng=random.Random(0)))


class ResponseTests(SynchronousTestCase):
    """
    RFC 3263 section 5: where a response goes when its connection is gone.
    """

    def test_received(self) -> None:
        resolver = FakeResolver()
        result = _response_plan("SIP/2.0/TCP pc.example.com;branch=z9hG4bK1;received=192.0.2.4", resolver)
        self.assertEqual(summary(result), [(TCP, "192.0.2.4", 5060)])
        self.assertEqual(resolver.queries, [])

    def test_name_with_port(self) -> None:
        resolver = FakeResolver(*HOSTS)
        result = _response_plan("SIP/2.0/UDP sip1.example.com:5070;branch=z9hG4bK1", resolver)
        self.assertEqual(summary(result), [(UDP, "sip1.example.com", 5070)])
        self.assertEqual({q[0] for q in resolver.queries}, {"A", "AAAA"})

    def test_name_srv(self) -> None:
        resolver = FakeResolver("_sips._tcp.example.com SRV 0 0 5063 sip1.example.com", *HOSTS)
        result = _response_plan("SIP/2.0/TLS example.com;branch=z9hG4bK1", resolver)
        self.assertEqual(summary(result), [(TLS, "sip1.example.com", 5063)])
        self.assertEqual(result.domain, "example.com")
        self.assertFalse(result.authenticated)

    def test_name_no_srv(self) -> None:
        result = _response_plan("SIP/2.0/TCP example.com;branch=z9hG4bK1", FakeResolver(*HOSTS))
        self.assertEqual(summary(result), [(TCP, "example.com", 5060)])
        self.assertEqual(result.targets[0].source, TargetSource.ADDRESS)

    def test_unsupported(self) -> None:
        self.assertRaises(RoutingError, _response_plan, "SIP/2.0/SCTP example.com;branch=z9hG4bK1", FakeResolver())


# The property: any zone, any URI, any policy.

_NAMES = ["example.com", "a.example.com", "b.example.com"]
_SRV_NAMES = [f"{prefix}.example.com" for prefix in ("_sips._tcp", "_sip._tcp", "_sip._udp")] + ["other.example.com"]


@st.composite
def zones(draw: st.DrawFn) -> FakeResolver:
    resolver = FakeResolver()
    outcome = st.sampled_from(["absent", "fail", "records", "records"])
    naptr = draw(outcome)
    if naptr == "fail":
        resolver.failing.add(("NAPTR", "example.com"))
    elif naptr == "records":
        for _ in range(draw(st.integers(1, 4))):
            resolver.records.setdefault(("NAPTR", "example.com"), []).append(
                NAPTRRecord(
                    draw(st.integers(0, 3)),
                    draw(st.integers(0, 3)),
                    draw(st.sampled_from(["s", "s", "S", "a", ""])),
                    draw(st.sampled_from(["SIPS+D2T", "SIP+D2T", "SIP+D2U", "sips+d2t", "SIP+D2S", "E2U+sip"])),
                    draw(st.sampled_from(["", "", "", "!^.*$!sip:x!"])),
                    draw(st.sampled_from([*_SRV_NAMES, ""])),
                )
            )
    for name in _SRV_NAMES:
        srv = draw(outcome)
        if srv == "fail":
            resolver.failing.add(("SRV", name))
        elif srv == "records":
            targets = st.sampled_from([*_NAMES, "", "192.0.2.99"])
            for _ in range(draw(st.integers(1, 3))):
                record = SRVRecord(draw(st.integers(0, 2)), draw(st.integers(0, 3)), draw(st.integers(1, 9)), "")
                resolver.records.setdefault(("SRV", name), []).append(
                    SRVRecord(record.priority, record.weight, 5000 + record.port, draw(targets))
                )
    for index, name in enumerate(_NAMES):
        for family, address in ((AddressFamily.IPV4, f"192.0.2.{index}"), (AddressFamily.IPV6, f"2001:db8::{index}")):
            state = draw(outcome)
            if state == "fail":
                resolver.failing.add((family.value, name))
            elif state == "records":
                resolver.records[(family.value, name)] = [AddressRecord(family, address)]
    return resolver


@st.composite
def uris(draw: st.DrawFn) -> SIPURI:
    scheme = draw(st.sampled_from(["sip", "sips"]))
    # Mostly the plain domain, so that the NAPTR and SRV steps get most examples.
    host = draw(st.sampled_from(["example.com"] * 6 + ["192.0.2.50", "[2001:db8::50]"]))
    port = draw(st.sampled_from([""] * 6 + [":5070"]))
    params = draw(st.sampled_from([""] * 8 + [";transport=udp", ";transport=tcp", ";transport=tls", ";transport=ws"]))
    maddr = draw(st.sampled_from([""] * 8 + [";maddr=a.example.com", ";maddr=192.0.2.60"]))
    return uri(f"{scheme}:alice@{host}{port}{params}{maddr}")


_STRENGTH = {TLS: 0, TCP: 1, UDP: 2}


class PlanningPropertyTests(SynchronousTestCase):
    """
    For any zone, URI, policy and settings, planning either gives a plan that
    keeps the rules of docs/tls-first.md or raises a RoutingError.
    """

    @given(zones(), uris(), st.data())
    def test_invariants(self, resolver: FakeResolver, target_uri: SIPURI, data: st.DataObject) -> None:
        policy = data.draw(st.sampled_from(list(TLSPolicy)), "policy")
        probe, override = data.draw(st.booleans(), "probe"), data.draw(st.booleans(), "override")
        supported = data.draw(st.sets(st.sampled_from([UDP, TCP, TLS])), "supported")
        seed = data.draw(st.integers(0, 2**16), "seed")
        settings = TLSFirstSettings(probe_5061=probe, override_explicit_transport=override)
        coroutine = locate_server(
            target_uri,
            resolver,
            policy=policy,
            settings=settings,
            supported=frozenset(supported),
            rng=random.Random(seed),
        )
        try:
            result = run(coroutine)
        except NoTargets as error:
            # Raised only when no target has an address, and carrying every lookup.
            self.assertEqual(error.plan.usable, ())
            self.assertEqual(isinstance(error, LookupFailed), bool(error.plan.failed_lookups))
            result = error.plan
        except RoutingError:
            # Refused before any lookup: the URI and policy allow no transport.
            self.assertEqual(resolver.queries, [])
            return
        strict = target_uri.secure or policy is STRICT
        transports = [target.transport for target in result.targets]
        # Only supported transports; strict means TLS only, off means no TLS.
        self.assertLessEqual(set(transports), supported)
        if strict:
            self.assertEqual(set(transports) - {TLS}, set())
            self.assertIs(result.policy, STRICT)
        if policy is OFF:
            self.assertNotIn(TLS, transports)
        # Probing only in the opportunistic policy, with its knobs on.
        if any(target.source is TargetSource.PROBE_5061 for target in result.targets):
            self.assertIs(policy, OPPORTUNISTIC)
            self.assertFalse(target_uri.secure)
            self.assertTrue(probe or override)
        # An explicit transport is obeyed unless the override put TLS first.
        if target_uri.transport is not None:
            self.assertTrue(result.explicit_transport)
            rest = [t for t in result.targets if t.source is not TargetSource.PROBE_5061]
            self.assertLessEqual(len({t.transport for t in rest}), 1)
        # The opportunistic policy puts stronger transports first among targets of one NAPTR order.
        if policy is OPPORTUNISTIC:
            for first, later in zip(result.targets, result.targets[1:], strict=False):
                if first.order == later.order:
                    self.assertLessEqual(_STRENGTH[first.transport], _STRENGTH[later.transport], result.targets)
        # NAPTR orders never go down.
        orders = [t.order for t in result.targets if t.order is not None]
        self.assertEqual(orders, sorted(orders))
        # Addresses are IP literals; no target is listed twice.
        for target in result.targets:
            for address in target.addresses:
                self.assertEqual(host_literal(address), address)
        keys = [(t.transport, t.host, t.port) for t in result.targets]
        self.assertEqual(len(keys), len(set(keys)))
        # Every query the resolver saw is in the plan, once, with its error if it failed.
        self.assertEqual(len(resolver.queries), len(set(resolver.queries)))
        self.assertEqual(sorted((lookup.rdtype, lookup.name) for lookup in result.lookups), sorted(resolver.queries))
        for lookup in result.lookups:
            self.assertEqual(lookup.error is not None, (lookup.rdtype, lookup.name) in resolver.failing)
        # A URI with a port, a transport or an IP target never asks for NAPTR.
        literal_target = host_literal(target_uri.maddr or target_uri.host) is not None
        if target_uri.port is not None or target_uri.transport is not None or literal_target:
            self.assertNotIn("NAPTR", [q[0] for q in resolver.queries])
        if literal_target:
            self.assertEqual(resolver.queries, [])
