# -*- test-case-name: tests.transport.test_tls -*-
"""
TLS settings for SIP: server options and the two client modes.

docs/tls-first.md keeps two client modes apart; they never share a
connection:

  - L{opportunistic_client_options} encrypts without authenticating (RFC
    7435, C{tls-unauthenticated}).  The peer certificate and OpenSSL's
    verdict on its chain stay available (L{peer_certificate},
    L{peer_chain_verified}), so the caller can learn whether it I{would}
    have authenticated.
  - L{authenticated_client_options} verifies the chain and the RFC 5922
    identity (L{sipstack.transport.identity}); a failure of either fails the
    handshake with an L{OpenSSL.SSL.Error} (L{SIPIdentityMismatch} for a
    wrong name), for C{sips:} and C{TLSPolicy.STRICT}, with no fallback.

Both wrap L{twisted.internet.ssl.optionsForClientTLS} (trust root, TLS
version floor, ciphers, SNI) and replace only its RFC 6125 identity check,
on the L{OpenSSL.SSL.Connection} it creates.  Everything allows TLS 1.2 and
1.3 and nothing older (RFC 9325 section 3.1.1).

@see: RFC 5922 sections 7.3 (client) and 7.4 (server).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL, crypto
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator, ISystemHandle
from twisted.internet.ssl import (
    Certificate,
    CertificateOptions,
    TLSVersion,
    optionsForClientTLS,
    trustRootFromCertificates,
)
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from sipstack.hop import Destination
from sipstack.transport._verdict import ChainVerdict, VerifyCallback, accepting_verifier, verdict_for
from sipstack.transport.identity import SubjectIdentities, normalize_domain, sip_identities

if TYPE_CHECKING:
    from twisted.protocols.tls import TLSMemoryBIOProtocol

__all__ = [
    "MINIMUM_TLS_VERSION",
    "server_tls_options",
    "opportunistic_client_options",
    "authenticated_client_options",
    "ClientOptionsCache",
    "SIPIdentityMismatch",
    "peer_certificate",
    "peer_chain_verified",
    "server_name_indication",
    "tls_version",
]

log = Logger()

#: The oldest TLS version sipstack negotiates (RFC 9325 section 3.1.1:
#: TLS 1.0 and 1.1 MUST NOT be negotiated).
MINIMUM_TLS_VERSION = TLSVersion.TLSv1_2


class SIPIdentityMismatch(SSL.Error):
    """
    The peer's certificate chain verified, but it does not name the SIP
    domain (RFC 5922 section 7.3: "the client MUST close the connection
    immediately").

    It subclasses L{OpenSSL.SSL.Error}, so code that treats any TLS failure
    alike still does; code that cares can tell a wrong name from a protocol
    error.

    @ivar domain: the SIP domain that was expected, normalized (see
        L{normalize_domain <sipstack.transport.identity.normalize_domain>}).
    @ivar identities: what the certificate does assert.
    """

    def __init__(self, domain: str, identities: SubjectIdentities) -> None:
        found = (
            f"it names {list(identities.domains)!r} (from {identities.source.value})"
            if identities.domains
            else "it names no SIP domain"
        )
        super().__init__(f"certificate is not for SIP domain {domain!r} by RFC 5922: {found}")
        self.domain = domain
        self.identities = identities


def _load_chain(pem: bytes) -> list[x509.Certificate]:
    """
    @raise ValueError: if C{pem} holds no certificate.
    """
    return x509.load_pem_x509_certificates(pem)


def _certificate_options(cert_pem: bytes | None, key_pem: bytes | None) -> dict[str, Any]:
    """
    The C{CertificateOptions} arguments for our own certificate: the leaf,
    then any intermediates that follow it in C{cert_pem}.

    The C{cryptography} objects go in as they are: C{CertificateOptions} is
    annotated with pyOpenSSL's C{X509} and C{PKey}, which pyOpenSSL deprecates
    in favour of these (it accepts both).
    """
    if (cert_pem is None) != (key_pem is None):
        raise ValueError("give both a certificate and its key, or neither")
    if cert_pem is None or key_pem is None:
        return {}
    chain = _load_chain(cert_pem)
    key = serialization.load_pem_private_key(key_pem, password=None)
    options: dict[str, Any] = {"privateKey": key, "certificate": chain[0]}
    if chain[1:]:
        options["extraCertChain"] = chain[1:]
    return options


def server_tls_options(
    cert_pem: bytes,
    key_pem: bytes,
    *,
    request_client_certificate: bool = False,
    trust_root_pem: bytes | None = None,
) -> CertificateOptions:
    """
    TLS options for a SIP server (a listener on C{sips}/TLS, usually 5061).

    TLS 1.2 is the floor and TLS 1.3 is on; ciphers are Twisted's defaults
    (forward secret AEAD suites first); session tickets and caching are off.

    With C{request_client_certificate}, the server asks for a certificate
    (mutual TLS between proxies, RFC 5922 section 7.4) without requiring
    one, which the RFC leaves to local policy.  Any certificate is accepted
    during the handshake; the policy decision comes later, from
    L{peer_chain_verified} (the verdict against C{trust_root_pem}) and the
    identities of L{peer_certificate}.  No certificate, no authentication.

    @param cert_pem: the server certificate, optionally followed by its
        intermediate CA certificates.
    @param key_pem: its unencrypted private key.
    @param request_client_certificate: whether to ask clients for a
        certificate.
    @param trust_root_pem: the CA certificates client chains are checked
        against; only with C{request_client_certificate}.
    @raise ValueError: if a PEM input holds no certificate or key, or
        C{trust_root_pem} is given without C{request_client_certificate}.
    """
    options = _certificate_options(cert_pem, key_pem)
    if not request_client_certificate:
        if trust_root_pem is not None:
            raise ValueError("trust_root_pem only applies with request_client_certificate")
        return CertificateOptions(raiseMinimumTo=MINIMUM_TLS_VERSION, **options)
    if trust_root_pem is None:
        return _ClientCertificateRequestingOptions(raiseMinimumTo=MINIMUM_TLS_VERSION, **options)
    authorities = [crypto.X509.from_cryptography(cert) for cert in _load_chain(trust_root_pem)]
    return _ClientCertificateRequestingOptions(
        raiseMinimumTo=MINIMUM_TLS_VERSION,
        verify=True,
        caCerts=authorities,
        requireCertificate=False,
        **options,
    )


class _ClientCertificateRequestingOptions(CertificateOptions):
    """
    Server options that ask for a client certificate, accept any (or none)
    and record OpenSSL's verdict on it.

    C{CertificateOptions(verify=True, requireCertificate=False)} would ask
    without requiring, but would fail the handshake on an untrusted
    certificate; the per-connection verify mode set here keeps the
    handshake going so that the policy decision happens later, with the
    certificate in hand.
    """

    def serverConnectionForTLS(self, protocol: TLSMemoryBIOProtocol) -> SSL.Connection:
        connection = super().serverConnectionForTLS(protocol)
        verdict = ChainVerdict.attach(connection)
        connection.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_CLIENT_ONCE, accepting_verifier(verdict))
        return connection


def _checked_domain(domain: str) -> str:
    normalized = normalize_domain(domain)
    if normalized is None:
        raise ValueError(f"not a host name or IP address: {domain!r}")
    return normalized


def _client_options(
    domain: str,
    trust_root: bytes | None,
    client_cert_pem: bytes | None,
    client_key_pem: bytes | None,
) -> IOpenSSLClientConnectionCreator:
    """
    L{optionsForClientTLS} for C{domain}: SNI, trust root (the platform's
    when C{trust_root} is L{None}), TLS 1.2 floor, optional client
    certificate.  The domain goes to Twisted normalized (lower case,
    A-labels, unbracketed IP), so SNI is canonical and an IP is not sent.
    """
    host = _checked_domain(domain)
    extra = _certificate_options(client_cert_pem, client_key_pem)
    extra["raiseMinimumTo"] = MINIMUM_TLS_VERSION
    if trust_root is None:
        return optionsForClientTLS(host, extraCertificateOptions=extra)
    roots = [Certificate.loadPEM(cert.public_bytes(serialization.Encoding.PEM)) for cert in _load_chain(trust_root)]
    trust = trustRootFromCertificates(roots)  # type: ignore[no-untyped-call]  # unannotated in Twisted 26.10
    return optionsForClientTLS(host, trust, extraCertificateOptions=extra)


def opportunistic_client_options(
    sni_domain: str,
    *,
    trust_root: bytes | None = None,
    client_cert_pem: bytes | None = None,
    client_key_pem: bytes | None = None,
) -> IOpenSSLClientConnectionCreator:
    """
    Client options that encrypt without authenticating the server.

    The handshake succeeds whatever certificate the server presents
    (self-signed, expired, another name).  SNI names the SIP domain (RFC
    5922 section 7.8); an IP literal is not sent (RFC 6066 section 3).  The
    chain is still checked against C{trust_root} and the verdict kept:
    L{peer_chain_verified} plus
    L{matches_sip_domain <sipstack.transport.identity.matches_sip_domain>}
    on L{peer_certificate} say whether authenticated TLS would have worked.
    Reuse a creator per (domain, trust root): each holds an OpenSSL context.

    @param sni_domain: the SIP domain being contacted (not the SRV target).
    @param trust_root: PEM CA certificates for the recorded verdict, or
        L{None} for the platform trust store.
    @param client_cert_pem: our certificate (and intermediates), if the
        server asks for one.
    @param client_key_pem: its key.
    @raise ValueError: if C{sni_domain} is not a host name or IP literal, or
        a PEM input is unusable.
    """
    return _OpportunisticCreator(_client_options(sni_domain, trust_root, client_cert_pem, client_key_pem))


@implementer(IOpenSSLClientConnectionCreator)
class _OpportunisticCreator:
    """
    Wraps the creator of L{optionsForClientTLS} and replaces its verify
    callback with one that records and accepts.
    """

    def __init__(self, inner: IOpenSSLClientConnectionCreator) -> None:
        self._inner = inner

    def clientConnectionForTLS(self, tlsProtocol: TLSMemoryBIOProtocol) -> SSL.Connection:
        connection = self._inner.clientConnectionForTLS(tlsProtocol)
        verdict = ChainVerdict.attach(connection)
        connection.set_verify(SSL.VERIFY_PEER, accepting_verifier(verdict))
        return connection


def authenticated_client_options(
    sip_domain: str,
    trust_root: bytes | None,
    *,
    client_cert_pem: bytes | None = None,
    client_key_pem: bytes | None = None,
) -> IOpenSSLClientConnectionCreator:
    """
    Client options that authenticate the server for C{sip_domain}.

    The chain must verify against C{trust_root} (expiry and key usage
    included, by OpenSSL), and the leaf must name C{sip_domain} by RFC 5922
    sections 7.1-7.2: C{sip:} URI SubjectAltNames first, else dNSNames, else
    (only without any SubjectAltName) the CN; no wildcards.  Either failure
    aborts the handshake (section 7.3: "the client MUST close the connection
    immediately"): C{connectionLost} receives an L{OpenSSL.SSL.Error}, a
    L{SIPIdentityMismatch} for a wrong name.  SNI is C{sip_domain}.

    @param sip_domain: the domain of the C{sips:} or C{sip:} URI, before any
        RFC 3263 lookup (not the SRV target nor the address).
    @param trust_root: PEM CA certificates to trust, or L{None} for the
        platform trust store; explicit so that no caller trusts the
        platform by accident.
    @param client_cert_pem: our certificate (and intermediates), for mutual
        authentication.
    @param client_key_pem: its key.
    @raise ValueError: if C{sip_domain} is not a host name or IP literal, or
        a PEM input is unusable.
    """
    inner = _client_options(sip_domain, trust_root, client_cert_pem, client_key_pem)
    return _AuthenticatingCreator(inner, _checked_domain(sip_domain))


@implementer(IOpenSSLClientConnectionCreator)
class _AuthenticatingCreator:
    """
    Wraps the creator of L{optionsForClientTLS} and replaces its RFC 6125
    identity check with RFC 5922's, failing verification the way
    L{twisted.internet._sslverify.ClientTLSOptions} does (through
    C{TLSMemoryBIOProtocol.failVerification}).
    """

    def __init__(self, inner: IOpenSSLClientConnectionCreator, sip_domain: str) -> None:
        self._inner = inner
        self._domain = sip_domain

    def clientConnectionForTLS(self, tlsProtocol: TLSMemoryBIOProtocol) -> SSL.Connection:
        connection = self._inner.clientConnectionForTLS(tlsProtocol)
        verdict = ChainVerdict.attach(connection)
        connection.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, self._verifier(tlsProtocol, verdict))
        return connection

    def _verifier(self, tlsProtocol: TLSMemoryBIOProtocol, verdict: ChainVerdict) -> VerifyCallback:
        domain = self._domain
        # Held only until the leaf has been judged, so the callback (owned by
        # the connection, owned by the protocol) does not keep a cycle alive.
        protocol: TLSMemoryBIOProtocol | None = tlsProtocol

        def verify(connection: SSL.Connection, cert: crypto.X509, errno: int, depth: int, ok: int) -> bool:
            nonlocal protocol
            verdict.record(ok)
            if not ok or depth != 0:
                return bool(ok)
            failing, protocol = protocol, None
            try:
                identities = sip_identities(cert.to_cryptography())
                if identities.matches(domain):
                    return True
                mismatch = SIPIdentityMismatch(domain, identities)
                reason = Failure(mismatch)  # type: ignore[no-untyped-call]  # Failure() is unannotated in Twisted 26.10
            except Exception:
                # An exception must not escape into OpenSSL; report it as a
                # verification failure rather than accept the certificate.
                reason = Failure()  # type: ignore[no-untyped-call]  # Failure() is unannotated in Twisted 26.10
                log.failure("While checking the RFC 5922 identity for {domain}", reason, domain=domain)
            if failing is not None:
                failing.failVerification(reason)  # type: ignore[no-untyped-call]  # unannotated in Twisted 26.10
            return False

        return verify


def _ssl_connection(transport: object) -> SSL.Connection | None:
    handle = ISystemHandle(transport).getHandle() if ISystemHandle.providedBy(transport) else None
    return handle if isinstance(handle, SSL.Connection) else None


def peer_certificate(transport: object) -> x509.Certificate | None:
    """
    The certificate the peer presented on a TLS transport.

    @param transport: the transport of a protocol (a
        C{TLSMemoryBIOProtocol}), after C{handshakeCompleted}.
    @return: the peer's end-entity certificate, or L{None} if the
        transport is not TLS, is closed, or the peer presented none (a
        client not asked for, or declining to send, a certificate).
    """
    connection = _ssl_connection(transport)
    if connection is None:
        return None
    return connection.get_peer_certificate(as_cryptography=True)


def peer_chain_verified(transport: object) -> bool:
    """
    Whether the peer presented a certificate whose chain OpenSSL verified
    against the trust root of these options, whatever the options then did
    with the verdict.

    This checks the chain (signatures, validity dates, key usage) and not
    the identity: combine it with
    L{matches_sip_domain <sipstack.transport.identity.matches_sip_domain>}.

    @return: L{False} also for connections not made with this module's
        options, for a peer without a certificate, and for a closed
        transport.
    """
    connection = _ssl_connection(transport)
    verdict = verdict_for(connection) if connection is not None else None
    return verdict is not None and verdict.verified


def server_name_indication(transport: object) -> str | None:
    """
    On the server side, the host name the client asked for with SNI (RFC
    6066 section 3): the SIP domain it wants to reach (RFC 5922 section 7.8).

    @return: the name, in lower-case ASCII (A-label) form, or L{None} if the
        client sent none or the transport is not TLS.
    """
    connection = _ssl_connection(transport)
    name = connection.get_servername() if connection is not None else None
    return name.decode("ascii", "replace").lower() if name is not None else None


def tls_version(transport: object) -> str | None:
    """
    The TLS version negotiated on C{transport}, such as C{"TLSv1.3"}, for
    logs and metrics.

    @return: L{None} if the transport is not TLS or is closed.
    """
    connection = _ssl_connection(transport)
    return connection.get_protocol_version_name() if connection is not None else None


class ClientOptionsCache:
    """
    The TLS client options for each destination, made once per (server
    name, verification mode) and shared: building them loads the trust
    store, which costs far more than a handshake.  Strict and opportunistic
    options are kept apart, as their connections are (docs/tls-first.md).
    """

    def __init__(self, trust_root: bytes | None) -> None:
        """
        @param trust_root: PEM CA certificates that authenticate servers;
            L{None} for the platform's trust store.
        """
        self._trust_root = trust_root
        self._made: dict[tuple[str, bool], IOpenSSLClientConnectionCreator] = {}

    def __call__(self, destination: Destination) -> IOpenSSLClientConnectionCreator:
        """The options for C{destination}: authenticated for its server name when it must be, else opportunistic."""
        name = destination.server_name or destination.peer.host
        key = (name, destination.authenticated)
        creator = self._made.get(key)
        if creator is None:
            if destination.authenticated:
                creator = authenticated_client_options(name, self._trust_root)
            else:
                creator = opportunistic_client_options(name, trust_root=self._trust_root)
            self._made[key] = creator
        return creator
