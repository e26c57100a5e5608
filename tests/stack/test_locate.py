"""
Tests for L{sipstack.stack._locate.HostsFileResolver}, the stack's default
resolver: the hosts file in front of a real L{DNSResolver} talking to a
zone server on loopback.
"""

from __future__ import annotations

import os
from pathlib import Path

from twisted.trial.unittest import TestCase

from sipstack.routing.resolver import AddressFamily
from sipstack.stack._locate import HostsFileResolver
from sipstack.testing.dns import ZoneServer, serve_zone
from sipstack.transport.dns import DNSResolver
from tests.transport._helpers import reactor

V4, V6 = AddressFamily.IPV4, AddressFamily.IPV6


class HostsFileResolverTests(TestCase):
    def setUp(self) -> None:
        self.zone: ZoneServer = serve_zone(
            reactor,
            "example.test",
            """
            sip        A     192.0.2.10
            sip        AAAA  2001:db8::10
            _sip._udp  SRV   0 1 5060 sip
            """,
        )
        self.addCleanup(self.zone.stop)
        self.hosts = Path(self.mktemp())
        self.hosts.write_text("# comment\n192.0.2.5  sip.example.test  alias  # trailing\n::1 ip6-localhost\n")
        self.resolver = HostsFileResolver(DNSResolver(reactor, [self.zone.nameserver], timeout=0.5), str(self.hosts))

    async def addresses(self, name: str, family: AddressFamily) -> list[str]:
        return [record.address for record in await self.resolver.addresses(name, family)]

    async def test_listed_name_and_family(self) -> None:
        """A name the file lists for a family is answered from the file, without DNS."""
        self.assertEqual(await self.addresses("sip.example.test", V4), ["192.0.2.5"])
        self.assertEqual(await self.addresses("SIP.example.test.", V4), ["192.0.2.5"])
        self.assertEqual(self.zone.count("sip.example.test", "A"), 0)

    async def test_other_family_asks_dns(self) -> None:
        """A family the file does not list for the name goes to DNS."""
        self.assertEqual(await self.addresses("sip.example.test", V6), ["2001:db8::10"])
        self.assertEqual(self.zone.count("sip.example.test", "AAAA"), 1)

    async def test_srv_and_naptr_ask_dns(self) -> None:
        """The file has no SRV or NAPTR: those go to DNS even for a listed name."""
        records = await self.resolver.srv("_sip._udp.example.test")
        self.assertEqual([record.port for record in records], [5060])
        self.assertEqual(await self.resolver.naptr("example.test"), ())
        self.assertEqual(self.zone.count(), 2)

    async def test_localhost_never_reaches_dns(self) -> None:
        """
        C{localhost} (RFC 6761): no NAPTR, no SRV, the loopback addresses
        when the file lists none; DNS is never asked.
        """
        self.assertEqual(await self.resolver.naptr("localhost"), ())
        self.assertEqual(await self.resolver.srv("_sips._tcp.localhost"), ())
        self.assertEqual(await self.addresses("localhost", V4), ["127.0.0.1"])
        self.assertEqual(await self.addresses("sip.localhost", V6), ["::1"])
        self.assertEqual(self.zone.queries, [])

    async def test_file_read_again_when_changed(self) -> None:
        """An edited file is read again; a missing one lists nothing."""
        self.assertEqual(await self.addresses("alias", V4), ["192.0.2.5"])
        self.hosts.write_text("192.0.2.6 alias\n192.0.2.7 alias\n")
        stat = self.hosts.stat()
        os.utime(self.hosts, (stat.st_atime, stat.st_mtime + 10))
        self.assertEqual(await self.addresses("alias", V4), ["192.0.2.6", "192.0.2.7"])
        self.hosts.unlink()
        self.assertEqual(await self.addresses("sip.example.test", V4), ["192.0.2.10"])
