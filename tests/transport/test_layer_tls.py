"""
Tests for L{sipstack.transport.layer.TransportLayer} over real TLS
connections on 127.0.0.1 and ::1, with certificates made in the test: the
security state of every message, authenticated destinations that never fall
back, and the handshake timeout.
"""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import TestCase

from sipstack.errors import TransportFailed
from sipstack.hop import TLS_UNAUTHENTICATED, Destination, HopSecurity, Peer, SecurityState, TransportKind
from sipstack.message import Request, Response, build_response
from sipstack.testing.certs import CertificateAuthority, IssuedCertificate, self_signed
from sipstack.transport.layer import TransportLayer
from tests.transport._helpers import (
    NO_IPV6,
    Inbox,
    MixinBase,
    connect_raw,
    description,
    fast_limits,
    make_layer,
    make_request,
    reactor,
    stays_false,
    wait_for,
    write_pem_files,
)

DOMAIN = "example.com"
AUTHENTICATED = HopSecurity(SecurityState.TLS_AUTHENTICATED, DOMAIN)


class _TLSTests(MixinBase):
    """
    The TLS transport over one address family.
    """

    host: str
    ca: CertificateAuthority

    def setUp(self) -> None:
        self.ca = CertificateAuthority.generate("sipstack test CA")

    async def server(
        self, certificate: IssuedCertificate, inbox: Inbox | None = None, **limits: Any
    ) -> tuple[TransportLayer, Peer, Inbox]:
        """A layer listening on TLS with C{certificate}."""
        inbox = inbox if inbox is not None else Inbox()
        layer = make_layer(self, inbox, limits=fast_limits(**limits))
        files = write_pem_files(self, certificate)
        return layer, await layer.listen(description("tls", self.host, options=files)), inbox

    def client(self, inbox: Inbox | None = None, **kwargs: Any) -> tuple[TransportLayer, Inbox]:
        """A client layer trusting the test CA."""
        inbox = inbox if inbox is not None else Inbox()
        kwargs.setdefault("trust_root", self.ca.cert_pem)
        kwargs.setdefault("limits", fast_limits())
        return make_layer(self, inbox, **kwargs), inbox

    async def test_opportunistic_to_self_signed(self) -> None:
        """
        Opportunistic TLS to a server with a self-signed certificate comes
        up C{tls-unauthenticated} on both sides; the request carries a TLS
        Via with C{received}/C{rport}, and the response comes back on the
        same connection.
        """
        b, peer_b, inbox_b = await self.server(self_signed("server.invalid"))
        a, inbox_a = self.client(trust_root=None)
        sent = await a.send_request(make_request(), Destination(TransportKind.TLS, peer_b))
        self.assertEqual(sent.security, TLS_UNAUTHENTICATED)
        self.assertEqual(sent.message.top_via.transport, "TLS")
        received = await inbox_b.wait()
        request = received.message
        assert isinstance(request, Request)
        self.assertEqual(received.flow.transport, TransportKind.TLS)
        self.assertEqual(received.security, TLS_UNAUTHENTICATED)
        self.assertEqual(request.top_via.transport, "TLS")
        self.assertEqual(request.top_via.received, self.host)
        self.assertEqual(request.top_via.rport, sent.flow.local.port)

        await b.send_response(build_response(request, 200), received.flow)
        answer = await inbox_a.wait()
        assert isinstance(answer.message, Response)
        self.assertEqual(answer.flow, sent.flow)
        self.assertEqual(answer.security, TLS_UNAUTHENTICATED)
        self.assertEqual(list(a.flows.items()), [(sent.flow, TLS_UNAUTHENTICATED)])
        self.assertEqual(list(b.flows), [received.flow])

    async def test_authenticated(self) -> None:
        """
        An authenticated destination against a server whose certificate the
        trusted CA issued with a C{sip:example.com} SubjectAltName comes up
        C{tls-authenticated} for example.com; the server, which saw no client
        certificate, records C{tls-unauthenticated}.
        """
        b, peer_b, inbox_b = await self.server(self.ca.issue(DOMAIN, sip_uris=[f"sip:{DOMAIN}"]))
        a, inbox_a = self.client()
        destination = Destination(TransportKind.TLS, peer_b, server_name=DOMAIN, authenticated=True)
        sent = await a.send_request(make_request(), destination)
        self.assertEqual(sent.security, AUTHENTICATED)
        received = await inbox_b.wait()
        assert isinstance(received.message, Request)
        self.assertEqual(received.security, TLS_UNAUTHENTICATED)
        await b.send_response(build_response(received.message, 200), received.flow)
        answer = await inbox_a.wait()
        self.assertEqual(answer.security, AUTHENTICATED)
        self.assertEqual(answer.security.identity, DOMAIN)
        self.assertEqual(answer.flow, sent.flow)
        self.assertEqual(a.flows, {sent.flow: AUTHENTICATED})

    async def test_opportunistic_that_verifies(self) -> None:
        """
        Opportunistic TLS whose certificate does verify for the SIP domain is
        recorded as C{tls-authenticated} for it.
        """
        _, peer_b, inbox_b = await self.server(self.ca.issue(DOMAIN, sip_uris=[f"sip:{DOMAIN}"]))
        a, _ = self.client()
        sent = await a.send_request(make_request(), Destination(TransportKind.TLS, peer_b, server_name=DOMAIN))
        self.assertEqual(sent.security, AUTHENTICATED)
        await inbox_b.wait()

    async def test_wrong_name_fails_without_fallback(self) -> None:
        """
        An authenticated destination whose server presents a trusted
        certificate for another name fails with L{TransportFailed}: no
        message is delivered and no connection is kept.
        """
        _, peer_b, inbox_b = await self.server(self.ca.issue("other.example.org"))
        a, _ = self.client()
        destination = Destination(TransportKind.TLS, peer_b, server_name=DOMAIN, authenticated=True)
        with self.assertRaises(TransportFailed):
            await a.send_request(make_request(), destination)
        self.assertEqual(a.flows, {})
        await stays_false(lambda: inbox_b.messages, "a message delivered after all")

    async def test_untrusted_fails(self) -> None:
        """
        An authenticated destination whose server's certificate names the
        domain but is self-signed fails with L{TransportFailed}.
        """
        _, peer_b, inbox_b = await self.server(self_signed(DOMAIN, sip_uris=[f"sip:{DOMAIN}"]))
        a, _ = self.client()
        destination = Destination(TransportKind.TLS, peer_b, server_name=DOMAIN, authenticated=True)
        with self.assertRaises(TransportFailed):
            await a.send_request(make_request(), destination)
        self.assertEqual(a.flows, {})
        self.assertEqual(inbox_b.messages, [])

    async def test_authenticated_and_opportunistic_never_share(self) -> None:
        """
        An authenticated destination does not reuse an opportunistic
        connection, nor the other way round (docs/tls-first.md).
        """
        _, peer_b, inbox_b = await self.server(self.ca.issue(DOMAIN, sip_uris=[f"sip:{DOMAIN}"]))
        a, _ = self.client()
        opportunistic = Destination(TransportKind.TLS, peer_b)
        authenticated = Destination(TransportKind.TLS, peer_b, server_name=DOMAIN, authenticated=True)
        first = await a.send_request(make_request(), opportunistic)
        strict = await a.send_request(make_request(), authenticated)
        again = await a.send_request(make_request(), opportunistic)
        strict_again = await a.send_request(make_request(), authenticated)
        self.assertNotEqual(first.flow, strict.flow)
        self.assertEqual(again.flow, first.flow)
        self.assertEqual(strict_again.flow, strict.flow)
        self.assertEqual(first.security, TLS_UNAUTHENTICATED)
        self.assertEqual(strict.security, AUTHENTICATED)
        await inbox_b.wait(4)

    async def test_client_certificate_requested_but_optional(self) -> None:
        """
        A listener that requests client certificates (against its CA) still
        accepts a client that has none, as C{tls-unauthenticated}.
        """
        server_cert = self.ca.issue(DOMAIN, sip_uris=[f"sip:{DOMAIN}"])
        files = write_pem_files(self, server_cert, extra_pem=self.ca.cert_pem)
        files["requestClientCertificate"] = "yes"
        b = make_layer(self, inbox_b := Inbox(), limits=fast_limits())
        peer_b = await b.listen(description("tls", self.host, options=files))
        a, _ = self.client()
        await a.send_request(make_request(), Destination(TransportKind.TLS, peer_b, server_name=DOMAIN))
        self.assertEqual((await inbox_b.wait()).security, TLS_UNAUTHENTICATED)

    async def test_keepalive_ping_pong(self) -> None:
        """
        Keep-alive pings over TLS are answered with pongs.
        """
        _, peer_b, _ = await self.server(self_signed("server.invalid"))
        a, _ = self.client(trust_root=None, keepalive_interval=0.05)
        sent = await a.send_request(make_request(), Destination(TransportKind.TLS, peer_b))
        stream = a.stream(sent.flow)
        assert stream is not None
        await wait_for(lambda: stream.pongs_received >= 2, "two pongs")

    async def test_handshake_never_started(self) -> None:
        """
        A TCP connection to the TLS port that never starts a handshake is
        closed after C{handshake_timeout}.
        """
        b, peer_b, _ = await self.server(self_signed("server.invalid"), handshake_timeout=0.2)
        client = await connect_raw(self, peer_b)
        started = reactor.seconds()
        await wait_for(lambda: len(b.flows) == 1, "the flow")
        self.assertEqual(list(b.flows.values()), [TLS_UNAUTHENTICATED])
        await client.lost
        self.assertGreater(reactor.seconds() - started, 0.15)
        await wait_for(lambda: not b.flows, "the flow to go")

    async def test_client_handshake_timeout(self) -> None:
        """
        TLS to a peer that never answers the handshake (here a plain TCP SIP
        listener) fails with L{TransportFailed} after C{handshake_timeout}.
        """
        b = make_layer(self, inbox_b := Inbox(), limits=fast_limits())
        peer_b = await b.listen(description("tcp", self.host))
        a, _ = self.client(limits=fast_limits(handshake_timeout=0.2))
        started = reactor.seconds()
        with self.assertRaises(TransportFailed):
            await a.send_request(make_request(), Destination(TransportKind.TLS, peer_b))
        self.assertGreater(reactor.seconds() - started, 0.15)
        self.assertEqual(a.flows, {})
        self.assertEqual(inbox_b.messages, [])

    async def test_close_during_handshake(self) -> None:
        """
        Closing the layer while a TLS handshake is in progress fails the
        waiting send with L{TransportFailed} and leaves nothing behind.
        """
        b = make_layer(self, limits=fast_limits())
        peer_b = await b.listen(description("tcp", self.host))
        a = TransportLayer(reactor, Inbox(), limits=fast_limits())
        sending = a.send_request(make_request(), Destination(TransportKind.TLS, peer_b))
        await wait_for(lambda: a.flows, "the TCP connection")
        await a.close()
        self.failureResultOf(sending, TransportFailed)
        self.assertEqual(a.flows, {})

    async def test_connection_over_the_limit_fails(self) -> None:
        """
        A TLS connection over C{max_connections_per_peer} is closed before
        its handshake: the client gets L{TransportFailed}; the existing
        connection keeps working.
        """
        _, peer_b, inbox_b = await self.server(self_signed("server.invalid"), max_connections_per_peer=1)
        first, _ = self.client(trust_root=None)
        second, _ = self.client(trust_root=None)
        destination = Destination(TransportKind.TLS, peer_b)
        await first.send_request(make_request(), destination)
        with self.assertRaises(TransportFailed):
            await second.send_request(make_request(), destination)
        await first.send_request(make_request(), destination)
        await inbox_b.wait(2)
        self.assertEqual(len(first.flows), 1)


class TLSOverIPv4Tests(_TLSTests, TestCase):
    host = "127.0.0.1"


class TLSOverIPv6Tests(_TLSTests, TestCase):
    host = "::1"
    skip = NO_IPV6
