"""
Tests for L{sipstack.transport.dns}: L{DNSResolver} against a real DNS server
on loopback (L{sipstack.testing.dns}), over UDP and TCP, and L{DNSCache} on a
L{Clock}.
"""

from __future__ import annotations

from typing import Any

import dns.flags
import dns.message
import dns.rcode
import dns.rrset
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.defer import CancelledError
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase

from sipstack.errors import LookupFailed
from sipstack.routing.resolver import AddressFamily, AddressRecord, NAPTRRecord, Resolver, SRVRecord
from sipstack.testing.dns import SilentServer, ZoneServer, serve_zone, silent_server
from sipstack.transport.dns import DNSCache, DNSResolver, system_nameservers
from tests.transport._helpers import NO_IPV6, reactor

ZONE = """
@             NAPTR 20 10 "S" "SIP+D2T"  "" _sip._tcp
@             NAPTR 10 50 "s" "sips+d2t" "" _sips._tcp.example.test.
_sips._tcp    120 SRV 0 5 5061 sip
_sips._tcp    120 SRV 0 1 5061 sip2.example.test.
_sip._udp     SRV 0 0 0 .
sip           A    127.0.0.1
sip           A    127.0.0.2
sip           AAAA ::1
alias         60 CNAME alias2
alias2        30 CNAME sip
away          CNAME sip.other.test.
loop1         CNAME loop2
loop2         CNAME loop1
deep.empty    A    192.0.2.9
"""


def start(testcase: TestCase, records: str = ZONE, origin: str = "example.test", **kwargs: Any) -> ZoneServer:
    """A zone server for this test, stopped when it ends."""
    server = serve_zone(reactor, origin, records, **kwargs)
    testcase.addCleanup(server.stop)
    return server


def silent(testcase: TestCase, host: str = "127.0.0.1") -> SilentServer:
    """A nameserver that never answers, stopped when the test ends."""
    server = silent_server(reactor, host)
    testcase.addCleanup(server.stop)
    return server


def resolver_for(*servers: ZoneServer | SilentServer, **kwargs: Any) -> DNSResolver:
    """A resolver asking C{servers} in order, with timeouts that suit tests."""
    kwargs.setdefault("timeout", 1.0)
    return DNSResolver(reactor, nameservers=[server.nameserver for server in servers], **kwargs)


class RecordTests(TestCase):
    """
    Each record type, as the server gave it.
    """

    async def test_naptr(self) -> None:
        """
        NAPTR records come back in the server's order (sorting is the
        planner's job) with flags lower-cased, services upper-cased and the
        replacement without its trailing dot.
        """
        server = start(self)
        records = await resolver_for(server).naptr("example.test")
        self.assertEqual(
            records,
            (
                NAPTRRecord(20, 10, "s", "SIP+D2T", "", "_sip._tcp.example.test", 300),
                NAPTRRecord(10, 50, "s", "SIPS+D2T", "", "_sips._tcp.example.test", 300),
            ),
        )

    async def test_srv(self) -> None:
        """SRV records come back in order, with their TTL and dot-less targets."""
        server = start(self)
        records = await resolver_for(server).srv("_sips._tcp.example.test")
        self.assertEqual(
            records,
            (SRVRecord(0, 5, 5061, "sip.example.test", 120), SRVRecord(0, 1, 5061, "sip2.example.test", 120)),
        )

    async def test_srv_root_target(self) -> None:
        """The target C{.} ("decidedly not available", RFC 2782) is given as C{""}."""
        server = start(self)
        records = await resolver_for(server).srv("_sip._udp.example.test")
        self.assertEqual(records, (SRVRecord(0, 0, 0, "", 300),))

    async def test_a(self) -> None:
        """A records are IPv4 address records."""
        server = start(self)
        records = await resolver_for(server).addresses("sip.example.test", AddressFamily.IPV4)
        self.assertEqual(
            records,
            (
                AddressRecord(AddressFamily.IPV4, "127.0.0.1", 300),
                AddressRecord(AddressFamily.IPV4, "127.0.0.2", 300),
            ),
        )
        self.assertEqual(server.count("sip.example.test", "A", "udp"), 1)

    async def test_aaaa(self) -> None:
        """AAAA records are IPv6 address records."""
        server = start(self)
        records = await resolver_for(server).addresses("sip.example.test", AddressFamily.IPV6)
        self.assertEqual(records, (AddressRecord(AddressFamily.IPV6, "::1", 300),))

    async def test_name_with_trailing_dot_and_case(self) -> None:
        """A trailing dot and upper case name the same records (and the same cache entry)."""
        server = start(self)
        resolver = resolver_for(server)
        first = await resolver.addresses("SIP.Example.TEST.", AddressFamily.IPV4)
        second = await resolver.addresses("sip.example.test", AddressFamily.IPV4)
        self.assertEqual([r.address for r in first], ["127.0.0.1", "127.0.0.2"])
        self.assertEqual([r.address for r in second], ["127.0.0.1", "127.0.0.2"])
        self.assertEqual(server.count(), 1)

    async def test_is_a_resolver(self) -> None:
        """The adapter satisfies the core's L{Resolver} protocol."""
        server = start(self)
        resolver: Resolver = resolver_for(server)
        self.assertEqual(len(await resolver.srv("_sips._tcp.example.test")), 2)


class CNAMETests(TestCase):
    """
    CNAME chains, in the answer and across zones.
    """

    async def test_chain_in_answer(self) -> None:
        """
        A chain the server followed is followed in the answer; the records
        are those at its end, and one query was enough.
        """
        server = start(self)
        resolver = resolver_for(server)
        records = await resolver.addresses("alias.example.test", AddressFamily.IPV4)
        self.assertEqual([record.address for record in records], ["127.0.0.1", "127.0.0.2"])
        self.assertEqual(server.count(), 1)

    async def test_chain_ttl(self) -> None:
        """The answer is cached for the smallest TTL on the chain, CNAMEs included."""
        clock = Clock()
        server = start(self)
        resolver = resolver_for(server, cache=DNSCache(clock))
        await resolver.addresses("alias.example.test", AddressFamily.IPV4)
        (entry,) = resolver.cache.entries()
        self.assertEqual(entry.expires, 30)

    async def test_chain_into_another_zone(self) -> None:
        """
        When the server stops at a name in another zone, the resolver asks
        for that name itself.
        """
        server = start(self)
        server.set_zone("other.test", ["sip A 192.0.2.7"])
        records = await resolver_for(server).addresses("away.example.test", AddressFamily.IPV4)
        self.assertEqual(records, (AddressRecord(AddressFamily.IPV4, "192.0.2.7", 300),))
        self.assertEqual(server.count("away.example.test"), 1)
        self.assertEqual(server.count("sip.other.test"), 1)

    async def test_chain_to_nowhere(self) -> None:
        """A chain ending at a name that does not exist is an empty answer."""
        server = start(self)
        server.set_zone("other.test", [])
        self.assertEqual(await resolver_for(server).addresses("away.example.test", AddressFamily.IPV4), ())

    async def test_loop(self) -> None:
        """A CNAME loop is a failure, not an endless chase."""
        server = start(self)
        with self.assertRaises(LookupFailed) as caught:
            await resolver_for(server).srv("loop1.example.test")
        self.assertIn("loop", str(caught.exception))


class NegativeTests(TestCase):
    """
    NXDOMAIN and NODATA are empty answers; failures are errors.
    """

    async def test_nxdomain(self) -> None:
        """A name that does not exist has no records."""
        server = start(self)
        self.assertEqual(await resolver_for(server).naptr("nothing.example.test"), ())

    async def test_nodata(self) -> None:
        """A name without records of the type asked has none of them."""
        server = start(self)
        self.assertEqual(await resolver_for(server).naptr("sip.example.test"), ())

    async def test_empty_non_terminal(self) -> None:
        """A name that exists only as the parent of others has no records."""
        server = start(self)
        self.assertEqual(await resolver_for(server).addresses("empty.example.test", AddressFamily.IPV4), ())

    async def test_servfail(self) -> None:
        """A server failure raises L{LookupFailed} naming it."""
        server = start(self)
        server.fail("_sips._tcp.example.test")
        with self.assertRaises(LookupFailed) as caught:
            await resolver_for(server).srv("_sips._tcp.example.test")
        self.assertIn("SERVFAIL", str(caught.exception))
        self.assertIn("_sips._tcp.example.test SRV", str(caught.exception))
        # A server that answered is not asked again in the next round.
        self.assertEqual(server.count(), 1)

    async def test_refused(self) -> None:
        """A refusal (here: a name outside every zone of the server) raises L{LookupFailed}."""
        server = start(self)
        with self.assertRaises(LookupFailed) as caught:
            await resolver_for(server).naptr("example.org")
        self.assertIn("REFUSED", str(caught.exception))

    async def test_timeout(self) -> None:
        """
        A server that never answers is asked C{attempts} times, each for
        C{timeout} seconds, and then the lookup fails.
        """
        server = silent(self)
        resolver = resolver_for(server, timeout=0.05, attempts=3)
        started = reactor.seconds()
        with self.assertRaises(LookupFailed) as caught:
            await resolver.naptr("example.test")
        self.assertGreaterEqual(reactor.seconds() - started, 0.15)
        self.assertEqual(server.received, 3)
        self.assertIn("timed out", str(caught.exception))

    async def test_dropped_name(self) -> None:
        """A name the server ignores times out while other names are answered."""
        server = start(self)
        server.drop("_sip._tcp.example.test")
        resolver = resolver_for(server, timeout=0.05, attempts=2)
        with self.assertRaises(LookupFailed):
            await resolver.srv("_sip._tcp.example.test")
        self.assertEqual(server.count("_sip._tcp.example.test"), 2)
        self.assertEqual(len(await resolver.srv("_sips._tcp.example.test")), 2)

    async def test_invalid_name(self) -> None:
        """A name DNS cannot carry fails without a query."""
        server = start(self)
        with self.assertRaises(LookupFailed):
            await resolver_for(server).srv("a" * 64 + ".example.test")
        self.assertEqual(server.count(), 0)

    async def test_no_nameservers(self) -> None:
        """A resolver without nameservers fails every lookup."""
        with self.assertRaises(LookupFailed) as caught:
            await DNSResolver(reactor, nameservers=[]).srv("_sip._tcp.example.test")
        self.assertIn("no nameservers", str(caught.exception))

    async def test_failure_not_cached(self) -> None:
        """After a failure the next lookup asks again."""
        server = start(self)
        server.fail("example.test")
        resolver = resolver_for(server)
        with self.assertRaises(LookupFailed):
            await resolver.naptr("example.test")
        server.heal("example.test")
        self.assertEqual(len(await resolver.naptr("example.test")), 2)
        self.assertEqual(server.count(), 2)


class FailoverTests(TestCase):
    """
    Several nameservers, asked in turn.
    """

    async def test_silent_then_good(self) -> None:
        """A server that does not answer is passed over for the next one."""
        dead, good = silent(self), start(self)
        records = await resolver_for(dead, good, timeout=0.05).srv("_sips._tcp.example.test")
        self.assertEqual(len(records), 2)
        self.assertEqual(dead.received, 1)

    async def test_failing_then_good(self) -> None:
        """A server failure moves on to the next server."""
        bad, good = start(self), start(self)
        bad.fail("example.test")
        records = await resolver_for(bad, good).naptr("example.test")
        self.assertEqual(len(records), 2)
        self.assertEqual((bad.count(), good.count()), (1, 1))

    async def test_nxdomain_is_final(self) -> None:
        """NXDOMAIN is an answer: the next server is not asked."""
        first, second = start(self), start(self)
        self.assertEqual(await resolver_for(first, second).naptr("nothing.example.test"), ())
        self.assertEqual((first.count(), second.count()), (1, 0))

    async def test_closed_port(self) -> None:
        """
        A nameserver port with nobody behind it fails its try at once
        (ICMP port unreachable), not after the timeout.
        """
        closed = silent(self)
        await closed.stop()
        good = start(self)
        started = reactor.seconds()
        records = await resolver_for(closed, good, timeout=5.0).srv("_sips._tcp.example.test")
        self.assertEqual(len(records), 2)
        self.assertLess(reactor.seconds() - started, 2.0)

    async def test_all_fail(self) -> None:
        """When every server fails, the error names each of them."""
        dead, bad = silent(self), start(self)
        bad.fail("example.test", "REFUSED")
        with self.assertRaises(LookupFailed) as caught:
            await resolver_for(dead, bad, timeout=0.05, attempts=2).naptr("example.test")
        message = str(caught.exception)
        self.assertIn(f"127.0.0.1:{dead.port} timed out", message)
        self.assertIn(f"127.0.0.1:{bad.port} answered REFUSED", message)
        self.assertEqual((dead.received, bad.count()), (2, 1))


class TruncationTests(TestCase):
    """
    An answer too large for UDP is asked for again over TCP.
    """

    async def test_large_rrset(self) -> None:
        """
        An RRset larger than the EDNS payload size comes back truncated over
        UDP, and complete, in order, over TCP.
        """
        addresses = [f"10.0.{i // 200}.{i % 200 + 1}" for i in range(150)]
        server = start(self, "\n".join(f"big A {address}" for address in addresses))
        records = await resolver_for(server).addresses("big.example.test", AddressFamily.IPV4)
        self.assertEqual([record.address for record in records], addresses)
        self.assertEqual(server.count("big.example.test", "A", "udp"), 1)
        self.assertEqual(server.count("big.example.test", "A", "tcp"), 1)

    async def test_server_limit(self) -> None:
        """A server that caps UDP answers at a small size forces TCP for a modest NAPTR set."""
        server = start(self, max_udp_size=100)
        records = await resolver_for(server).naptr("example.test")
        self.assertEqual(len(records), 2)
        self.assertEqual((server.count(transport="udp"), server.count(transport="tcp")), (1, 1))

    async def test_small_answer_stays_on_udp(self) -> None:
        """An answer that fits is not asked for over TCP."""
        server = start(self)
        await resolver_for(server).naptr("example.test")
        self.assertEqual(server.count(transport="tcp"), 0)

    async def test_tcp_failure(self) -> None:
        """A truncated answer from a server whose TCP side never answers is a failure."""
        server = start(self, max_udp_size=100)
        server.drop("example.test", transport="tcp")
        with self.assertRaises(LookupFailed) as caught:
            await resolver_for(server, timeout=0.1, attempts=1).naptr("example.test")
        self.assertIn("TCP", str(caught.exception))
        self.assertEqual((server.count(transport="udp"), server.count(transport="tcp")), (1, 1))


class CacheTests(TestCase):
    """
    The TTL cache, against the real server (counting its queries) and a
    L{Clock} for time.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.server = start(self, soa_ttl=3600, negative_ttl=20)
        self.resolver = resolver_for(self.server, cache=DNSCache(self.clock))

    async def test_hit(self) -> None:
        """A second lookup within the TTL does not reach the server."""
        first = await self.resolver.srv("_sips._tcp.example.test")
        self.clock.advance(119)
        second = await self.resolver.srv("_sips._tcp.example.test")
        self.assertEqual(self.server.count(), 1)
        self.assertEqual([record.target for record in second], [record.target for record in first])
        # The TTLs given out count down.
        self.assertEqual([record.ttl for record in second], [1, 1])

    async def test_expiry(self) -> None:
        """Once the TTL has passed, the server is asked again."""
        await self.resolver.srv("_sips._tcp.example.test")
        self.clock.advance(120)
        await self.resolver.srv("_sips._tcp.example.test")
        self.assertEqual(self.server.count(), 2)

    async def test_new_answer_after_expiry(self) -> None:
        """After expiry the answer reflects the zone as it is now."""
        self.assertEqual(len(await self.resolver.addresses("sip.example.test", AddressFamily.IPV4)), 2)
        self.server.set_zone("example.test", ["sip 10 A 192.0.2.1"])
        self.assertEqual(len(await self.resolver.addresses("sip.example.test", AddressFamily.IPV4)), 2)
        self.clock.advance(300)
        records = await self.resolver.addresses("sip.example.test", AddressFamily.IPV4)
        self.assertEqual(records, (AddressRecord(AddressFamily.IPV4, "192.0.2.1", 10),))

    async def test_types_are_separate(self) -> None:
        """A and AAAA of one name are separate entries."""
        await self.resolver.addresses("sip.example.test", AddressFamily.IPV4)
        await self.resolver.addresses("sip.example.test", AddressFamily.IPV6)
        self.assertEqual(self.server.count(), 2)
        self.assertEqual(sorted(entry.type for entry in self.resolver.cache.entries()), ["A", "AAAA"])

    async def test_negative_ttl_from_soa_minimum(self) -> None:
        """NXDOMAIN is kept for the SOA MINIMUM when that is below the SOA's TTL."""
        self.assertEqual(await self.resolver.naptr("nothing.example.test"), ())
        (entry,) = self.resolver.cache.entries()
        self.assertTrue(entry.negative)
        self.assertEqual(entry.expires, 20)
        self.clock.advance(19)
        await self.resolver.naptr("nothing.example.test")
        self.assertEqual(self.server.count(), 1)
        self.clock.advance(1)
        await self.resolver.naptr("nothing.example.test")
        self.assertEqual(self.server.count(), 2)

    async def test_negative_ttl_from_soa_ttl(self) -> None:
        """NODATA is kept for the SOA's TTL when that is below its MINIMUM."""
        server = start(self, soa_ttl=15, negative_ttl=600)
        resolver = resolver_for(server, cache=DNSCache(self.clock))
        self.assertEqual(await resolver.naptr("sip.example.test"), ())
        (entry,) = resolver.cache.entries()
        self.assertEqual(entry.expires, 15)

    async def test_negative_cap(self) -> None:
        """A long negative TTL is capped, so new records are noticed soon."""
        server = start(self, negative_ttl=86400, soa_ttl=86400)
        resolver = resolver_for(server, cache=DNSCache(self.clock, max_negative_ttl=60))
        await resolver.naptr("nothing.example.test")
        (entry,) = resolver.cache.entries()
        self.assertEqual(entry.expires, 60)

    async def test_zero_ttl(self) -> None:
        """A TTL of zero is not cached."""
        server = start(self, "sip 0 A 192.0.2.1")
        resolver = resolver_for(server, cache=DNSCache(self.clock))
        await resolver.addresses("sip.example.test", AddressFamily.IPV4)
        await resolver.addresses("sip.example.test", AddressFamily.IPV4)
        self.assertEqual(server.count(), 2)
        self.assertEqual(resolver.cache.entries(), ())

    async def test_clear(self) -> None:
        """After L{DNSResolver.cache_clear} the server is asked again."""
        await self.resolver.srv("_sips._tcp.example.test")
        self.assertEqual(len(self.resolver.cache), 1)
        self.resolver.cache_clear()
        self.assertEqual(len(self.resolver.cache), 0)
        await self.resolver.srv("_sips._tcp.example.test")
        self.assertEqual(self.server.count(), 2)


class CoalescingTests(TestCase):
    """
    Concurrent lookups of one name and type share one query.
    """

    async def test_one_query(self) -> None:
        """Three concurrent lookups make one query and all get the answer."""
        server = start(self)
        resolver = resolver_for(server)
        lookups = [resolver.srv("_sips._tcp.example.test") for _ in range(3)]
        results = [await lookup for lookup in lookups]
        self.assertEqual(server.count(), 1)
        self.assertEqual(len({result for result in results}), 1)
        self.assertEqual(len(results[0]), 2)

    async def test_failure_shared(self) -> None:
        """A failure reaches every waiter."""
        server = start(self)
        server.fail("example.test")
        resolver = resolver_for(server)
        lookups = [resolver.naptr("example.test") for _ in range(2)]
        for lookup in lookups:
            with self.assertRaises(LookupFailed):
                await lookup
        self.assertEqual(server.count(), 1)

    async def test_cancel_one(self) -> None:
        """Cancelling one waiter leaves the others their answer."""
        server = start(self)
        resolver = resolver_for(server)
        first = resolver.srv("_sips._tcp.example.test")
        second = resolver.srv("_sips._tcp.example.test")
        first.cancel()
        with self.assertRaises(CancelledError):
            await first
        self.assertEqual(len(await second), 2)
        self.assertEqual(server.count(), 1)

    async def test_cancel_all(self) -> None:
        """
        When every waiter is gone the query is abandoned, and a later lookup
        makes a new one rather than joining it.
        """
        server = start(self)
        resolver = resolver_for(server)
        lookup = resolver.srv("_sips._tcp.example.test")
        lookup.cancel()
        with self.assertRaises(CancelledError):
            await lookup
        self.assertEqual(len(await resolver.srv("_sips._tcp.example.test")), 2)
        # Both queries left (the first one before it was abandoned).
        self.assertEqual(server.count(), 2)

    async def test_different_types_not_coalesced(self) -> None:
        """Lookups of different types are different queries."""
        server = start(self)
        resolver = resolver_for(server)
        a = resolver.addresses("sip.example.test", AddressFamily.IPV4)
        aaaa = resolver.addresses("sip.example.test", AddressFamily.IPV6)
        self.assertEqual(len(await a), 2)
        self.assertEqual(len(await aaaa), 1)
        self.assertEqual(server.count(), 2)


class _Spoofer(DatagramProtocol):
    """
    A nameserver that answers each query first with forged replies (wrong
    id, wrong question, not a response, garbage) and then, last, with the
    right one unless told not to (from another socket, C{intruder}, if
    given).
    """

    def __init__(self, honest: bool, intruder: Any = None) -> None:
        self.honest = honest
        self.intruder = intruder

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        assert self.transport is not None
        query = dns.message.from_wire(datagram)

        def reply(address: str) -> dns.message.Message:
            response = dns.message.make_response(query)
            response.answer.append(dns.rrset.from_text(query.question[0].name, 300, "IN", "A", address))
            return response

        wrong_id = reply("192.0.2.66")
        wrong_id.id = (query.id + 1) % 65536
        other = dns.message.make_query("evil.example.test", "A")
        wrong_question = dns.message.make_response(other)
        wrong_question.id = query.id
        wrong_question.answer.append(dns.rrset.from_text("evil.example.test.", 300, "IN", "A", "192.0.2.66"))
        not_response = reply("192.0.2.66")
        not_response.flags &= ~dns.flags.QR
        for forged in (wrong_id, wrong_question, not_response):
            self.transport.write(forged.to_wire(), addr)
        self.transport.write(datagram[:2] + b"\x80garbage", addr)
        if self.honest:
            (self.intruder or self.transport).write(reply("192.0.2.1").to_wire(), addr)


class SpoofingTests(TestCase):
    """
    Replies that do not match the query are ignored.
    """

    def spoofer(self, honest: bool, intruder: Any = None) -> tuple[str, int]:
        port = reactor.listenUDP(0, _Spoofer(honest, intruder), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return ("127.0.0.1", port.getHost().port)

    async def test_forged_replies_ignored(self) -> None:
        """Only the reply matching id, question and QR bit is taken."""
        resolver = DNSResolver(reactor, nameservers=[self.spoofer(True)], timeout=1.0)
        records = await resolver.addresses("sip.example.test", AddressFamily.IPV4)
        self.assertEqual([record.address for record in records], ["192.0.2.1"])

    async def test_only_forged_replies(self) -> None:
        """Forged replies alone are no answer: the lookup times out."""
        resolver = DNSResolver(reactor, nameservers=[self.spoofer(False)], timeout=0.1, attempts=1)
        with self.assertRaises(LookupFailed):
            await resolver.addresses("sip.example.test", AddressFamily.IPV4)

    async def test_other_source_ignored(self) -> None:
        """The right reply from another port of the server's host is ignored."""
        intruder = reactor.listenUDP(0, DatagramProtocol(), interface="127.0.0.1")
        self.addCleanup(intruder.stopListening)
        resolver = DNSResolver(reactor, nameservers=[self.spoofer(True, intruder)], timeout=0.1, attempts=1)
        with self.assertRaises(LookupFailed):
            await resolver.addresses("sip.example.test", AddressFamily.IPV4)


class IPv6Tests(TestCase):
    """
    A nameserver on ::1.
    """

    skip = NO_IPV6

    async def test_udp_and_tcp(self) -> None:
        """A nameserver on ::1 answers over UDP, and over TCP after truncation."""
        server = start(self, host="::1", max_udp_size=100)
        resolver = resolver_for(server)
        self.assertEqual(resolver.nameservers, (("::1", server.port),))
        self.assertEqual(len(await resolver.naptr("example.test")), 2)
        self.assertEqual((server.count(transport="udp"), server.count(transport="tcp")), (1, 1))


class ConfigurationTests(SynchronousTestCase):
    """
    Nameservers from the caller or from the system.
    """

    def test_system_default(self) -> None:
        """Without nameservers, the system's are used."""
        self.assertEqual(list(DNSResolver(Clock()).nameservers), system_nameservers())

    def test_addresses_normalized(self) -> None:
        """Addresses are kept in canonical form."""
        resolver = DNSResolver(Clock(), nameservers=[("0:0::1", 5353), ("127.0.0.1", 53)])
        self.assertEqual(resolver.nameservers, (("::1", 5353), ("127.0.0.1", 53)))

    def test_host_names_refused(self) -> None:
        """A nameserver must be an address: resolving its name would need DNS."""
        self.assertRaises(ValueError, DNSResolver, Clock(), nameservers=[("ns.example.test", 53)])

    def test_bad_timing(self) -> None:
        """The timeout must be positive and there must be an attempt."""
        self.assertRaises(ValueError, DNSResolver, Clock(), nameservers=[], timeout=0)
        self.assertRaises(ValueError, DNSResolver, Clock(), nameservers=[], attempts=0)


def _record(address: str, ttl: int = 300) -> AddressRecord:
    return AddressRecord(AddressFamily.IPV4, address, ttl)


class DNSCacheTests(SynchronousTestCase):
    """
    L{DNSCache} on a L{Clock}.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.cache = DNSCache(self.clock, max_entries=3, max_ttl=1000, max_negative_ttl=50)

    def test_miss(self) -> None:
        """An unknown name is a miss."""
        self.assertIsNone(self.cache.records("sip.example.test", "A"))

    def test_expiry(self) -> None:
        """An entry lives for its TTL and not a moment longer."""
        self.cache.put("sip.example.test", "A", (_record("192.0.2.1"),), 300)
        self.clock.advance(299.5)
        self.assertEqual(self.cache.records("sip.example.test", "A"), (_record("192.0.2.1", 0),))
        self.clock.advance(0.5)
        self.assertIsNone(self.cache.records("sip.example.test", "A"))
        self.assertEqual(self.cache.entries(), ())

    def test_ttl_counts_down(self) -> None:
        """Records from the cache carry the TTL they have left."""
        self.cache.put("sip.example.test", "A", (_record("192.0.2.1", 300),), 300)
        self.clock.advance(100)
        (record,) = self.cache.records("sip.example.test", "A") or ()
        self.assertEqual(record.ttl, 200)

    def test_caps(self) -> None:
        """Positive and negative TTLs are capped separately."""
        self.cache.put("a.example.test", "A", (_record("192.0.2.1"),), 10**6)
        self.cache.put("b.example.test", "A", (), 10**6)
        expires = {entry.name: entry.expires for entry in self.cache.entries()}
        self.assertEqual(expires, {"a.example.test": 1000, "b.example.test": 50})

    def test_negative(self) -> None:
        """An empty answer is cached as negative and read back as empty."""
        self.cache.put("nothing.example.test", "SRV", (), 30)
        self.assertEqual(self.cache.records("nothing.example.test", "SRV"), ())
        self.assertTrue(self.cache.entries()[0].negative)

    def test_least_recently_used_goes(self) -> None:
        """When full, the entry used longest ago is dropped."""
        for name in ("a", "b", "c"):
            self.cache.put(name, "A", (_record("192.0.2.1"),), 100)
        self.cache.get("a", "A")
        self.cache.put("d", "A", (_record("192.0.2.1"),), 100)
        self.assertEqual([entry.name for entry in self.cache.entries()], ["c", "a", "d"])

    def test_zero_ttl_replaces(self) -> None:
        """Putting a zero TTL removes what was there."""
        self.cache.put("a", "A", (_record("192.0.2.1"),), 100)
        self.cache.put("a", "A", (_record("192.0.2.2"),), 0)
        self.assertIsNone(self.cache.get("a", "A"))

    def test_clear(self) -> None:
        """L{DNSCache.clear} empties it."""
        self.cache.put("a", "A", (_record("192.0.2.1"),), 100)
        self.cache.clear()
        self.assertEqual(len(self.cache), 0)

    def test_keys_case_insensitive(self) -> None:
        """Names are keyed without case and trailing dot."""
        self.cache.put("SIP.Example.Test.", "A", (_record("192.0.2.1"),), 100)
        self.assertIsNotNone(self.cache.get("sip.example.test", "A"))

    def test_needs_room(self) -> None:
        """A cache must hold at least one entry."""
        self.assertRaises(ValueError, DNSCache, self.clock, max_entries=0)

    @given(st.lists(st.tuples(st.integers(0, 9), st.integers(0, 2000), st.integers(0, 500)), max_size=40))
    def test_bounded_and_never_stale(self, operations: list[tuple[int, int, int]]) -> None:
        """
        Whatever is put and whenever, the cache never holds more than its
        bound and never hands out an expired answer.
        """
        clock = Clock()
        cache = DNSCache(clock, max_entries=4, max_ttl=1000, max_negative_ttl=50)
        put_at: dict[str, tuple[float, float]] = {}
        for name_number, ttl, step in operations:
            name = f"n{name_number}"
            cache.put(name, "A", (_record("192.0.2.1", ttl),), ttl)
            put_at[name] = (clock.seconds(), min(ttl, 1000))
            clock.advance(step)
            self.assertLessEqual(len(cache.entries()), 4)
            for other, (when, kept) in put_at.items():
                if cache.get(other, "A") is not None:
                    self.assertLess(clock.seconds(), when + kept)


class ServerTests(SynchronousTestCase):
    """
    The test server's answers, without sockets.
    """

    def ask(self, server: ZoneServer, name: str, type: str) -> dns.message.Message:
        response = server.answer(dns.message.make_query(name, type).to_wire(), "udp")
        assert response is not None
        return response

    def test_negative_answers_carry_soa(self) -> None:
        """NXDOMAIN and NODATA carry the zone's SOA, with the TTL and MINIMUM asked for."""
        server = ZoneServer(soa_ttl=77, negative_ttl=11)
        server.set_zone("example.test", ZONE)
        for name, rcode in (("nothing.example.test", dns.rcode.NXDOMAIN), ("sip.example.test", dns.rcode.NOERROR)):
            response = self.ask(server, name, "NAPTR")
            self.assertEqual(response.rcode(), rcode)
            (soa,) = response.authority
            self.assertEqual((soa.ttl, soa[0].minimum), (77, 11))

    def test_authoritative(self) -> None:
        """Answers from a zone have the AA bit; names outside every zone are refused."""
        server = ZoneServer()
        server.set_zone("example.test", ZONE)
        self.assertTrue(self.ask(server, "sip.example.test", "A").flags & dns.flags.AA)
        self.assertEqual(self.ask(server, "example.org", "A").rcode(), dns.rcode.REFUSED)

    def test_counts(self) -> None:
        """Queries are recorded by name, type and transport."""
        server = ZoneServer()
        server.set_zone("example.test", ZONE)
        self.ask(server, "SIP.example.test.", "A")
        self.ask(server, "sip.example.test", "AAAA")
        self.assertEqual(server.count("sip.example.test"), 2)
        self.assertEqual(server.count(type="aaaa"), 1)
        self.assertEqual(server.count(transport="tcp"), 0)

    def test_truncation(self) -> None:
        """An answer above the size limit goes out over UDP as TC with no records."""
        server = ZoneServer(max_udp_size=100)
        server.set_zone("example.test", ZONE)
        wire = dns.message.make_query("example.test", "NAPTR").to_wire()
        response = server.answer(wire, "udp")
        assert response is not None
        truncated = dns.message.from_wire(server.udp_wire(wire, response))
        self.assertTrue(truncated.flags & dns.flags.TC)
        self.assertEqual(truncated.answer, [])
