"""
The proxy forwarding to a domain it does not serve: the Request-URI is
planned by RFC 3263 through the TLS-first endpoint (issue 6, item 4),
against a real DNS server and a real TLS server on loopback.
"""

from __future__ import annotations

import random
from pathlib import Path

from twisted.trial.unittest import TestCase

from sipstack.dialog import build_request
from sipstack.hop import HopSecurity, SecurityState, TransportKind
from sipstack.message import Request, Response
from sipstack.services.location import MemoryLocationStore
from sipstack.services.proxy import Proxy
from sipstack.services.registrar import Registrar, RegistrarPolicy
from sipstack.services.server import build_core
from sipstack.stack import IncomingRequest, SIPStack
from sipstack.testing.certs import CertificateAuthority
from sipstack.testing.dns import serve_zone
from sipstack.transport.dns import DNSResolver
from tests.stack import make_stack
from tests.transport._helpers import reactor


class ForeignDomainTests(TestCase):
    """
    A request for C{biloxi.test} reaching the proxy of C{atlanta.test} goes
    to biloxi's server over TLS, found by NAPTR/SRV, authenticated for the
    domain; without TLS there, over TCP.
    """

    async def _setup(self, *, tls: bool) -> tuple[list[tuple[Request, SecurityState]], str, SIPStack]:
        host = f"127.{random.randint(1, 254)}.{random.randint(0, 255)}.{random.randint(2, 254)}"
        ca = CertificateAuthority.generate()
        issued = ca.issue("biloxi.test", sip_uris=["sip:biloxi.test"])
        directory = Path(self.mktemp())
        directory.mkdir(parents=True)
        (directory / "cert.pem").write_bytes(issued.fullchain_pem)
        (directory / "key.pem").write_bytes(issued.key_pem)

        # Biloxi's server: answers 200 and records how each request came.
        biloxi = make_stack(self)
        seen: list[tuple[Request, SecurityState]] = []

        def answer(incoming: IncomingRequest) -> Response:
            seen.append((incoming.request, incoming.security.state))
            return incoming.response(200)

        biloxi.on_request(answer)
        records = []
        if tls:
            files = f"certKey={directory / 'cert.pem'}:privateKey={directory / 'key.pem'}"
            tls_port = (await biloxi.listen(f"tls:0:interface={host}:{files}")).port
            records += ['@ NAPTR 10 50 "s" "SIPS+D2T" "" _sips._tcp', f"_sips._tcp SRV 0 1 {tls_port} sip"]
        tcp_port = (await biloxi.listen(f"tcp:0:interface={host}")).port
        records += ['@ NAPTR 20 50 "s" "SIP+D2T" "" _sip._tcp', f"_sip._tcp SRV 0 1 {tcp_port} sip", f"sip A {host}"]
        zone = serve_zone(reactor, "biloxi.test", records)
        self.addCleanup(zone.stop)

        # Atlanta's proxy, resolving with that DNS server and trusting the CA.
        resolver = DNSResolver(reactor, [zone.nameserver], timeout=1.0)
        atlanta = make_stack(self, proxy=True, trust_root=ca.cert_pem, resolver=resolver)
        registrar = Registrar(
            MemoryLocationStore(reactor), reactor, RegistrarPolicy(domains=frozenset({"atlanta.test"}))
        )
        proxy = Proxy(atlanta, registrar)
        proxy.install(build_core(atlanta, registrar, proxy))
        proxy_udp = await atlanta.listen("udp:0:interface=127.0.0.1")
        await atlanta.listen("tcp:0:interface=127.0.0.1")
        return seen, f"<sip:127.0.0.1:{proxy_udp.port};lr>", atlanta

    async def _send(self, route: str) -> int:
        alice = make_stack(self)
        await alice.listen("udp:0:interface=127.0.0.1")
        request = build_request(
            "MESSAGE",
            "sip:carol@biloxi.test",
            from_="<sip:alice@atlanta.test>",
            to="<sip:carol@biloxi.test>",
            headers=(("Route", route),),
            body=b"hello",
            content_type="text/plain",
        )
        result = await alice.request(request)
        return result.status

    async def test_tls_found_in_dns(self) -> None:
        """
        Biloxi publishes SIPS+D2T: the proxy forwards over TLS, and its flow
        to biloxi is authenticated for the domain (the server, which asked
        no client certificate, sees an unauthenticated TLS peer).
        """
        seen, route, proxy = await self._setup(tls=True)
        self.assertEqual(await self._send(route), 200)
        [(request, security)] = seen
        self.assertEqual(security, SecurityState.TLS_UNAUTHENTICATED)
        self.assertEqual(request.top_via.transport, TransportKind.TLS.value)
        outbound = [state for flow, state in proxy.flows.items() if flow.transport is TransportKind.TLS]
        self.assertEqual(outbound, [HopSecurity(SecurityState.TLS_AUTHENTICATED, "biloxi.test")])
        self.assertEqual(str(request.uri), "sip:carol@biloxi.test")
        self.assertEqual(request.max_forwards, 69)

    async def test_tcp_without_tls(self) -> None:
        """Biloxi offers only TCP: the proxy forwards over TCP, in cleartext."""
        seen, route, _ = await self._setup(tls=False)
        self.assertEqual(await self._send(route), 200)
        [(request, security)] = seen
        self.assertEqual(security, SecurityState.CLEARTEXT)
        self.assertEqual(request.top_via.transport, TransportKind.TCP.value)
