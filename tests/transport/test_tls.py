"""
Tests for L{sipstack.transport.tls}: real TLS handshakes over loopback, IPv4
and IPv6, with certificates made in the test.
"""

from __future__ import annotations

import datetime
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from OpenSSL import SSL
from twisted.internet import reactor
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import (
    TCP4ClientEndpoint,
    TCP4ServerEndpoint,
    TCP6ClientEndpoint,
    TCP6ServerEndpoint,
    wrapClientTLS,
)
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import (
    IHandshakeListener,
    IOpenSSLClientConnectionCreator,
    IOpenSSLServerConnectionCreator,
    IReactorTCP,
    IStreamClientEndpoint,
    IStreamServerEndpoint,
)
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.internet.ssl import CertificateOptions, TLSVersion
from twisted.internet.testing import StringTransport
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from sipstack.testing.certs import CertificateAuthority, IssuedCertificate, self_signed
from sipstack.transport import tls
from sipstack.transport.identity import IdentitySource, SubjectIdentities, matches_sip_domain
from sipstack.transport.tls import (
    SIPIdentityMismatch,
    authenticated_client_options,
    opportunistic_client_options,
    peer_certificate,
    peer_chain_verified,
    server_name_indication,
    server_tls_options,
    tls_version,
)

DOMAIN = "example.com"
_reactor = IReactorTCP(reactor)


@dataclass(frozen=True)
class Seen:
    """
    What one side of a connection could tell about the other after the
    handshake.
    """

    peer: x509.Certificate | None
    chain_verified: bool
    sni: str | None
    version: str | None


def _observe(transport: object) -> Seen:
    return Seen(
        peer_certificate(transport),
        peer_chain_verified(transport),
        server_name_indication(transport),
        tls_version(transport),
    )


@implementer(IHandshakeListener)
class _EchoServer(Protocol):
    """
    Echoes bytes back, and records what it saw of the client.  Its outcome
    is kept in attributes and C{lost} always fires with L{None}, so a failed
    handshake never leaves an unhandled errback behind.
    """

    def __init__(self) -> None:
        self.seen: Seen | None = None
        self.lost: Deferred[None] = Deferred()

    def handshakeCompleted(self) -> None:
        self.seen = _observe(self.transport)

    def dataReceived(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.lost.callback(None)


class _EchoServerFactory(Factory):
    def __init__(self) -> None:
        self.servers: list[_EchoServer] = []

    def buildProtocol(self, addr: object) -> _EchoServer:
        server = _EchoServer()
        self.servers.append(server)
        return server


@implementer(IHandshakeListener)
class _PingClient(Protocol):
    """
    Sends C{ping} once the handshake is done, closes when it comes back, and
    fires C{finished} (with L{None}: a L{Failure} result would be an
    errback) when the connection is lost, keeping the reason.
    """

    def __init__(self) -> None:
        self.seen: Seen | None = None
        self.received = b""
        self.reason: Failure | None = None
        self.finished: Deferred[None] = Deferred()

    def handshakeCompleted(self) -> None:
        assert self.transport is not None
        self.seen = _observe(self.transport)
        self.transport.write(b"ping")

    def dataReceived(self, data: bytes) -> None:
        assert self.transport is not None
        self.received += data
        if self.received == b"ping":
            self.transport.loseConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.reason = reason
        self.finished.callback(None)


@dataclass(frozen=True)
class Outcome:
    """
    How one connection attempt ended.
    """

    client: _PingClient
    server: _EchoServer
    reason: Failure

    @property
    def echoed(self) -> bool:
        """Whether TLS came up and carried data both ways, then closed cleanly."""
        return self.client.received == b"ping" and self.reason.check(ConnectionDone) is not None


@implementer(IOpenSSLClientConnectionCreator, IOpenSSLServerConnectionCreator)
class _LegacyTLS:
    """
    A TLS 1.1-only peer, as an old device would be, built directly on
    pyOpenSSL (Twisted's options refuse to go this low with its ciphers).
    """

    def __init__(self, certificate: IssuedCertificate | None = None) -> None:
        context = SSL.Context(SSL.TLS_METHOD)
        context.set_min_proto_version(SSL.TLS1_1_VERSION)
        context.set_max_proto_version(SSL.TLS1_1_VERSION)
        context.set_cipher_list(b"ALL:@SECLEVEL=0")
        if certificate is not None:
            context.use_certificate(certificate.certificate)
            context.use_privatekey(_private_key(certificate))
        self._context = context

    def clientConnectionForTLS(self, tlsProtocol: object) -> SSL.Connection:
        return SSL.Connection(self._context)

    def serverConnectionForTLS(self, tlsProtocol: object) -> SSL.Connection:
        return SSL.Connection(self._context)


def _private_key(issued: IssuedCertificate) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(issued.key_pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def _ipv6_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


if TYPE_CHECKING:
    _MixinBase = TestCase
else:
    _MixinBase = object


class _TLSTestsMixin(_MixinBase):
    """
    Handshakes between sipstack's options over one address family.
    """

    host: str

    def server_endpoint(self) -> IStreamServerEndpoint:
        raise NotImplementedError

    def client_endpoint(self, port: int) -> IStreamClientEndpoint:
        raise NotImplementedError

    def setUp(self) -> None:
        self.ca = CertificateAuthority.generate("sipstack test CA")
        self.server_cert = self.ca.issue(DOMAIN, sip_uris=[f"sip:{DOMAIN}"])

    async def connect(
        self, server_options: IOpenSSLServerConnectionCreator, client_creator: IOpenSSLClientConnectionCreator
    ) -> Outcome:
        """
        Listen with C{server_options}, connect once with C{client_creator},
        wait until both sides have closed and the port has stopped.
        """
        factory = _EchoServerFactory()
        port = await self.server_endpoint().listen(TLSMemoryBIOFactory(server_options, False, factory))
        client = _PingClient()
        try:
            address = port.getHost()
            assert isinstance(address, IPv4Address | IPv6Address)
            endpoint = wrapClientTLS(client_creator, self.client_endpoint(address.port))
            await endpoint.connect(Factory.forProtocol(lambda: client))
            await client.finished
            for server in factory.servers:
                await server.lost
        finally:
            stopped = port.stopListening()
            if stopped is not None:
                await stopped
        [server] = factory.servers
        assert client.reason is not None
        return Outcome(client, server, client.reason)

    def default_server(
        self, *, request_client_certificate: bool = False, trust_root_pem: bytes | None = None
    ) -> CertificateOptions:
        return server_tls_options(
            self.server_cert.cert_pem,
            self.server_cert.key_pem,
            request_client_certificate=request_client_certificate,
            trust_root_pem=trust_root_pem,
        )

    # TLS versions

    async def test_tls13_by_default(self) -> None:
        """
        sipstack's server and client negotiate TLS 1.3.
        """
        outcome = await self.connect(self.default_server(), opportunistic_client_options(DOMAIN))
        self.assertTrue(outcome.echoed)
        assert outcome.client.seen is not None and outcome.server.seen is not None
        self.assertEqual(outcome.client.seen.version, "TLSv1.3")
        self.assertEqual(outcome.server.seen.version, "TLSv1.3")

    async def test_tls12_accepted(self) -> None:
        """
        A client that stops at TLS 1.2 is served with TLS 1.2.
        """
        client = CertificateOptions(lowerMaximumSecurityTo=TLSVersion.TLSv1_2)
        outcome = await self.connect(self.default_server(), client)
        self.assertTrue(outcome.echoed)
        assert outcome.server.seen is not None
        self.assertEqual(outcome.server.seen.version, "TLSv1.2")

    async def test_tls11_refused(self) -> None:
        """
        A TLS 1.1-only client is refused by sipstack's server, and by
        sipstack's clients; the same client does get TLS 1.1 from a server
        that allows it, so the refusal is the configured minimum.
        """
        control = await self.connect(_LegacyTLS(self.server_cert), _LegacyTLS())
        if not control.echoed:
            self.skipTest("this OpenSSL cannot negotiate TLS 1.1 at all")
        assert control.client.seen is not None
        self.assertEqual(control.client.seen.version, "TLSv1.1")

        refused = await self.connect(self.default_server(), _LegacyTLS())
        self.assertIsNone(refused.server.seen)
        self.assertIsNotNone(refused.reason.check(SSL.Error))
        refused = await self.connect(_LegacyTLS(self.server_cert), opportunistic_client_options(DOMAIN))
        self.assertIsNone(refused.client.seen)
        self.assertIsNotNone(refused.reason.check(SSL.Error))

    # Opportunistic client

    async def test_opportunistic_self_signed_wrong_name(self) -> None:
        """
        The opportunistic client encrypts to a self-signed certificate for
        another name; afterwards it holds the certificate and can tell that
        it would not have authenticated.
        """
        issued = self_signed("other.example.org")
        server = server_tls_options(issued.cert_pem, issued.key_pem)
        outcome = await self.connect(server, opportunistic_client_options(DOMAIN))
        self.assertTrue(outcome.echoed)
        seen = outcome.client.seen
        assert seen is not None and seen.peer is not None
        self.assertEqual(seen.peer, issued.certificate)
        self.assertFalse(seen.chain_verified)
        self.assertFalse(matches_sip_domain(seen.peer, DOMAIN))

    async def test_opportunistic_expired(self) -> None:
        """
        An expired certificate still gives an encrypted hop, with a chain
        that does not verify.
        """
        yesterday = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)
        issued = self.ca.issue(DOMAIN, not_after=yesterday)
        server = server_tls_options(issued.cert_pem, issued.key_pem)
        outcome = await self.connect(server, opportunistic_client_options(DOMAIN, trust_root=self.ca.cert_pem))
        self.assertTrue(outcome.echoed)
        assert outcome.client.seen is not None
        self.assertFalse(outcome.client.seen.chain_verified)

    async def test_opportunistic_would_have_authenticated(self) -> None:
        """
        Given the trust root, the opportunistic client records that the
        chain verified, and the certificate matches the domain.
        """
        client = opportunistic_client_options(DOMAIN, trust_root=self.ca.cert_pem)
        outcome = await self.connect(self.default_server(), client)
        self.assertTrue(outcome.echoed)
        seen = outcome.client.seen
        assert seen is not None and seen.peer is not None
        self.assertTrue(seen.chain_verified)
        self.assertTrue(matches_sip_domain(seen.peer, DOMAIN))

    async def test_sni_opportunistic(self) -> None:
        """
        The opportunistic client sends the SIP domain as SNI.
        """
        outcome = await self.connect(self.default_server(), opportunistic_client_options("Sip.Example.com"))
        assert outcome.server.seen is not None
        self.assertEqual(outcome.server.seen.sni, "sip.example.com")

    # Authenticated client

    async def assert_authenticated(self, issued: IssuedCertificate, domain: str = DOMAIN) -> Outcome:
        server = server_tls_options(issued.cert_pem, issued.key_pem)
        outcome = await self.connect(server, authenticated_client_options(domain, self.ca.cert_pem))
        self.assertTrue(outcome.echoed, outcome.reason)
        assert outcome.client.seen is not None
        self.assertTrue(outcome.client.seen.chain_verified)
        self.assertEqual(outcome.client.seen.peer, issued.certificate)
        return outcome

    async def assert_refused(self, issued: IssuedCertificate, domain: str = DOMAIN) -> Failure:
        server = server_tls_options(issued.cert_pem, issued.key_pem)
        outcome = await self.connect(server, authenticated_client_options(domain, self.ca.cert_pem))
        self.assertIsNone(outcome.client.seen)
        self.assertEqual(outcome.client.received, b"")
        self.assertIsNotNone(outcome.reason.check(SSL.Error), outcome.reason)
        return outcome.reason

    async def test_authenticated_sip_uri(self) -> None:
        """
        A CA-issued certificate with a C{sip:} URI SubjectAltName for the
        domain authenticates, and SNI names the domain.
        """
        outcome = await self.assert_authenticated(self.server_cert)
        assert outcome.server.seen is not None
        self.assertEqual(outcome.server.seen.sni, DOMAIN)

    async def test_authenticated_dns_only(self) -> None:
        """
        A dNSName for the domain authenticates when there is no C{sip:} URI.
        """
        await self.assert_authenticated(self.ca.issue("x", dns=[DOMAIN]))

    async def test_authenticated_common_name_only(self) -> None:
        """
        A certificate without SubjectAltName authenticates by its CN, which
        C{service_identity} alone would refuse.
        """
        await self.assert_authenticated(self.ca.issue(DOMAIN, no_san=True))

    async def test_refused_wrong_name(self) -> None:
        """
        A trusted certificate for another domain fails the handshake with
        L{SIPIdentityMismatch}.
        """
        reason = await self.assert_refused(self.ca.issue("other.example.org"))
        mismatch = reason.value
        assert isinstance(mismatch, SIPIdentityMismatch)
        self.assertEqual(mismatch.domain, DOMAIN)
        self.assertEqual(mismatch.identities.domains, ("other.example.org",))

    async def test_refused_wildcard_only(self) -> None:
        """
        A wildcard dNSName does not authenticate a subdomain, although
        HTTPS rules would accept it.
        """
        reason = await self.assert_refused(self.ca.issue("wild", dns=["*.example.com"]), "sip.example.com")
        self.assertIsNotNone(reason.check(SIPIdentityMismatch))

    async def test_refused_dns_hidden_by_sip_uri(self) -> None:
        """
        A dNSName for the domain does not count when the certificate has a
        C{sip:} URI for another domain (RFC 5922 section 7.1), although
        HTTPS rules would accept it.
        """
        issued = self.ca.issue("x", sip_uris=["sip:other.example.org"], dns=[DOMAIN])
        reason = await self.assert_refused(issued)
        mismatch = reason.value
        assert isinstance(mismatch, SIPIdentityMismatch)
        self.assertEqual(mismatch.identities.source, IdentitySource.SIP_URI)

    async def test_refused_expired(self) -> None:
        """
        An expired certificate fails the handshake with an OpenSSL error,
        even for the right name.
        """
        yesterday = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)
        reason = await self.assert_refused(self.ca.issue(DOMAIN, not_after=yesterday))
        self.assertIsNone(reason.check(SIPIdentityMismatch))

    async def test_refused_untrusted(self) -> None:
        """
        A certificate from an unknown issuer fails, whether self-signed or
        from another CA, even for the right name.
        """
        for issued in (self_signed(DOMAIN), CertificateAuthority.generate("other CA").issue(DOMAIN)):
            reason = await self.assert_refused(issued)
            self.assertIsNone(reason.check(SIPIdentityMismatch))

    async def test_authenticated_through_intermediate(self) -> None:
        """
        A certificate from an intermediate CA authenticates when the server
        sends the intermediate after its certificate, and fails when it
        does not.
        """
        issued = self.ca.intermediate("sipstack intermediate").issue(DOMAIN)
        client = authenticated_client_options(DOMAIN, self.ca.cert_pem)
        outcome = await self.connect(server_tls_options(issued.fullchain_pem, issued.key_pem), client)
        self.assertTrue(outcome.echoed, outcome.reason)
        outcome = await self.connect(server_tls_options(issued.cert_pem, issued.key_pem), client)
        self.assertIsNone(outcome.client.seen)
        self.assertIsNotNone(outcome.reason.check(SSL.Error))

    async def test_identity_check_error_fails_closed(self) -> None:
        """
        If the identity check itself raises, the handshake fails (never
        succeeds) and the error is logged.
        """

        def broken(cert: x509.Certificate) -> SubjectIdentities:
            raise RuntimeError("broken matcher")

        self.patch(tls, "sip_identities", broken)
        outcome = await self.connect(self.default_server(), authenticated_client_options(DOMAIN, self.ca.cert_pem))
        self.assertIsNone(outcome.client.seen)
        self.assertIsNotNone(outcome.reason.check(RuntimeError))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    # Client certificates

    async def test_client_certificate_presented(self) -> None:
        """
        A server that requests a client certificate receives it, and records
        that its chain verified against the server's trust root.
        """
        client_cert = self.ca.issue("client.example.net")
        server = self.default_server(request_client_certificate=True, trust_root_pem=self.ca.cert_pem)
        client = authenticated_client_options(
            DOMAIN, self.ca.cert_pem, client_cert_pem=client_cert.cert_pem, client_key_pem=client_cert.key_pem
        )
        outcome = await self.connect(server, client)
        self.assertTrue(outcome.echoed)
        seen = outcome.server.seen
        assert seen is not None and seen.peer is not None
        self.assertEqual(seen.peer, client_cert.certificate)
        self.assertTrue(seen.chain_verified)
        self.assertTrue(matches_sip_domain(seen.peer, "client.example.net"))

    async def test_client_certificate_absent(self) -> None:
        """
        A client without a certificate still connects to a server that
        requests one; the server sees no certificate.
        """
        server = self.default_server(request_client_certificate=True, trust_root_pem=self.ca.cert_pem)
        outcome = await self.connect(server, opportunistic_client_options(DOMAIN))
        self.assertTrue(outcome.echoed)
        self.assertEqual(outcome.server.seen, Seen(None, False, DOMAIN, "TLSv1.3"))

    async def test_client_certificate_untrusted_accepted(self) -> None:
        """
        An untrusted client certificate does not fail the handshake: the
        server gets it, marked as not verified, and decides later.
        """
        client_cert = self_signed("client.example.net")
        server = self.default_server(request_client_certificate=True, trust_root_pem=self.ca.cert_pem)
        client = opportunistic_client_options(
            DOMAIN, client_cert_pem=client_cert.cert_pem, client_key_pem=client_cert.key_pem
        )
        outcome = await self.connect(server, client)
        self.assertTrue(outcome.echoed)
        seen = outcome.server.seen
        assert seen is not None
        self.assertEqual(seen.peer, client_cert.certificate)
        self.assertFalse(seen.chain_verified)

    async def test_client_certificate_without_trust_root(self) -> None:
        """
        Without a trust root the server still requests and receives a
        client certificate, which it cannot verify.
        """
        client_cert = self.ca.issue("client.example.net")
        server = self.default_server(request_client_certificate=True)
        client = opportunistic_client_options(
            DOMAIN, client_cert_pem=client_cert.cert_pem, client_key_pem=client_cert.key_pem
        )
        outcome = await self.connect(server, client)
        self.assertTrue(outcome.echoed)
        seen = outcome.server.seen
        assert seen is not None
        self.assertEqual(seen.peer, client_cert.certificate)
        self.assertFalse(seen.chain_verified)

    async def test_client_certificate_not_requested(self) -> None:
        """
        By default the server does not ask, so a client's certificate is not
        sent.
        """
        client_cert = self.ca.issue("client.example.net")
        client = opportunistic_client_options(
            DOMAIN, client_cert_pem=client_cert.cert_pem, client_key_pem=client_cert.key_pem
        )
        outcome = await self.connect(self.default_server(), client)
        self.assertTrue(outcome.echoed)
        assert outcome.server.seen is not None
        self.assertIsNone(outcome.server.seen.peer)


class TLSOverIPv4Tests(_TLSTestsMixin, TestCase):
    """
    TLS over 127.0.0.1.
    """

    host = "127.0.0.1"

    def server_endpoint(self) -> IStreamServerEndpoint:
        return TCP4ServerEndpoint(_reactor, 0, interface=self.host)

    def client_endpoint(self, port: int) -> IStreamClientEndpoint:
        return TCP4ClientEndpoint(_reactor, self.host, port)


class TLSOverIPv6Tests(_TLSTestsMixin, TestCase):
    """
    TLS over ::1.
    """

    host = "::1"
    if not _ipv6_available():
        skip = "IPv6 loopback is not available"

    def server_endpoint(self) -> IStreamServerEndpoint:
        return TCP6ServerEndpoint(_reactor, 0, interface=self.host)

    def client_endpoint(self, port: int) -> IStreamClientEndpoint:
        return TCP6ClientEndpoint(_reactor, self.host, port)


class OptionsTests(SynchronousTestCase):
    """
    The option builders, without a network.
    """

    def setUp(self) -> None:
        self.issued = self_signed(DOMAIN)

    def test_minimum_version_configured(self) -> None:
        """
        Server options disable everything below TLS 1.2 and keep TLS 1.2
        and 1.3.
        """
        context = server_tls_options(self.issued.cert_pem, self.issued.key_pem).getContext()
        flags = context.set_options(0)
        for disabled in (SSL.OP_NO_SSLv3, SSL.OP_NO_TLSv1, SSL.OP_NO_TLSv1_1):
            self.assertTrue(flags & disabled, disabled)
        for enabled in (SSL.OP_NO_TLSv1_2, SSL.OP_NO_TLSv1_3):
            self.assertFalse(flags & enabled, enabled)

    def test_trust_root_needs_request(self) -> None:
        """
        A client trust root without requesting client certificates is a
        configuration mistake.
        """
        with self.assertRaises(ValueError):
            server_tls_options(self.issued.cert_pem, self.issued.key_pem, trust_root_pem=self.issued.cert_pem)

    def test_certificate_and_key_together(self) -> None:
        """
        A client certificate without its key (or the reverse) is refused.
        """
        with self.assertRaises(ValueError):
            opportunistic_client_options(DOMAIN, client_cert_pem=self.issued.cert_pem)
        with self.assertRaises(ValueError):
            authenticated_client_options(DOMAIN, None, client_key_pem=self.issued.key_pem)

    def test_bad_pem(self) -> None:
        """
        PEM input without a certificate is refused up front.
        """
        with self.assertRaises(ValueError):
            server_tls_options(b"not a certificate", self.issued.key_pem)
        with self.assertRaises(ValueError):
            authenticated_client_options(DOMAIN, b"")

    def test_bad_domain(self) -> None:
        """
        A domain that can never match a certificate is refused up front.
        """
        for domain in ("*.example.com", "", "a..b"):
            with self.subTest(domain=domain), self.assertRaises(ValueError):
                authenticated_client_options(domain, None)

    def test_creators_provide_interface(self) -> None:
        """
        Both client builders return L{IOpenSSLClientConnectionCreator}s.
        """
        self.assertTrue(verifyObject(IOpenSSLClientConnectionCreator, opportunistic_client_options(DOMAIN)))
        creator = authenticated_client_options(DOMAIN, self.issued.cert_pem)
        self.assertTrue(verifyObject(IOpenSSLClientConnectionCreator, creator))

    def test_identity_mismatch_is_ssl_error(self) -> None:
        """
        L{SIPIdentityMismatch} is an L{SSL.Error}, so generic TLS error
        handling sees it, and its message names the domain.
        """
        error = SIPIdentityMismatch(DOMAIN, SubjectIdentities(IdentitySource.NONE, ()))
        self.assertIsInstance(error, SSL.Error)
        self.assertIn(DOMAIN, str(error))

    def test_not_tls_transport(self) -> None:
        """
        The inspection functions answer "nothing" for a transport that is
        not TLS.
        """
        transport = StringTransport()
        self.assertEqual(_observe(transport), Seen(None, False, None, None))
        self.assertEqual(_observe(object()), Seen(None, False, None, None))
