# -*- test-case-name: tests.transport.test_certificates -*-
"""
A tiny certificate authority for tests.

Every TLS test needs certificates that are good, or bad in exactly one way:
expired, for another name, DNS-only, with a C{sip:} URI SubjectAltName, a
wildcard, only a Common Name.  L{CertificateAuthority} makes them in memory,
in milliseconds (EC P-256 keys), so tests never depend on files or on the
clock of the machine that made a fixture.

    ca = CertificateAuthority.generate("Test CA")
    server = ca.issue("example.com", sip_uris=["sip:example.com"])
    options = server_tls_options(server.fullchain_pem, server.key_pem)
    client = authenticated_client_options("example.com", ca.cert_pem)

@see: RFC 5922 section 7.1 for what each kind of SubjectAltName means to SIP.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["IssuedCertificate", "CertificateAuthority", "self_signed"]

_ONE_HOUR = datetime.timedelta(hours=1)
_ONE_YEAR = datetime.timedelta(days=365)


@dataclass(frozen=True, slots=True)
class IssuedCertificate:
    """
    A certificate and its private key, both PEM.

    @ivar cert_pem: the certificate.
    @ivar key_pem: its unencrypted PKCS#8 private key.
    @ivar chain_pem: the intermediate CA certificates a server sends after
        its own, when issued by an intermediate; empty otherwise.
    """

    cert_pem: bytes
    key_pem: bytes
    chain_pem: bytes = b""

    @property
    def certificate(self) -> x509.Certificate:
        """The certificate, parsed."""
        return x509.load_pem_x509_certificate(self.cert_pem)

    @property
    def fullchain_pem(self) -> bytes:
        """The certificate followed by its intermediates, as servers load it."""
        return self.cert_pem + self.chain_pem


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _validity(
    not_before: datetime.datetime | None, not_after: datetime.datetime | None
) -> tuple[datetime.datetime, datetime.datetime]:
    """
    Default: valid from an hour ago for a year.  Only C{not_after} in the
    past (an expired certificate) moves the default start before it.
    """
    now = datetime.datetime.now(datetime.UTC)
    end = not_after if not_after is not None else now + _ONE_YEAR
    start = not_before if not_before is not None else min(now - _ONE_HOUR, end - _ONE_YEAR)
    return start, end


def _alt_names(dns: Sequence[str], sip_uris: Sequence[str], ips: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(uri) for uri in sip_uris]
    names += [x509.DNSName(name) for name in dns]
    names += [x509.IPAddress(ipaddress.ip_address(text)) for text in ips]
    return names


def _end_entity(
    name: str,
    issuer_name: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey | None,
    *,
    dns: Sequence[str],
    sip_uris: Sequence[str],
    ips: Sequence[str],
    cn: str | None,
    not_before: datetime.datetime | None,
    not_after: datetime.datetime | None,
    no_san: bool,
) -> IssuedCertificate:
    """
    Build a leaf certificate; self-signed when C{issuer_key} is L{None}.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn if cn is not None else name)])
    start, end = _validity(not_before, not_after)
    signer = issuer_key if issuer_key is not None else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name if issuer_key is not None else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()),
            critical=False,
        )
    )
    if not no_san:
        if not (dns or sip_uris or ips):
            dns, sip_uris = [name], [f"sip:{name}"]
        builder = builder.add_extension(x509.SubjectAlternativeName(_alt_names(dns, sip_uris, ips)), critical=False)
    cert = builder.sign(signer, hashes.SHA256())
    return IssuedCertificate(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


@dataclass(frozen=True, slots=True)
class CertificateAuthority:
    """
    A self-signed root CA that issues test certificates.

    @ivar name: the CA's Common Name.
    @ivar cert_pem: its certificate: the trust root to give clients.
    @ivar key_pem: its private key.
    @ivar chain_pem: for an intermediate, its own certificate and those of
        the CAs between it and the root; empty for a root.
    """

    name: str
    cert_pem: bytes
    key_pem: bytes
    chain_pem: bytes = b""

    @classmethod
    def generate(cls, name: str = "sipstack test CA") -> CertificateAuthority:
        """
        Make a new root CA, valid from a day ago for ten years.
        """
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _ca_certificate(name, key, None, None)
        return cls(name, cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))

    def intermediate(self, name: str) -> CertificateAuthority:
        """
        Make a CA signed by this one, whose certificates only verify if the
        server also sends the intermediates (L{IssuedCertificate.chain_pem}).
        """
        key = ec.generate_private_key(ec.SECP256R1())
        cert_pem = _ca_certificate(name, key, self.certificate.subject, self._key()).public_bytes(
            serialization.Encoding.PEM
        )
        return CertificateAuthority(name, cert_pem, _key_pem(key), cert_pem + self.chain_pem)

    def _key(self) -> ec.EllipticCurvePrivateKey:
        key = serialization.load_pem_private_key(self.key_pem, password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return key

    @property
    def certificate(self) -> x509.Certificate:
        """The CA certificate, parsed."""
        return x509.load_pem_x509_certificate(self.cert_pem)

    def issue(
        self,
        name: str,
        *,
        dns: Sequence[str] = (),
        sip_uris: Sequence[str] = (),
        ips: Sequence[str] = (),
        cn: str | None = None,
        not_before: datetime.datetime | None = None,
        not_after: datetime.datetime | None = None,
        no_san: bool = False,
    ) -> IssuedCertificate:
        """
        Issue an end-entity certificate (serverAuth and clientAuth).

        The SubjectAltName holds exactly C{sip_uris}, C{dns} and C{ips}; when
        all three are empty it defaults to C{sip:name} and C{name}, the
        layout RFC 5922 section 6 recommends.  So:

          - a C{sip:} URI certificate: C{issue("example.com",
            sip_uris=["sip:example.com"])};
          - DNS-only: C{issue("example.com", dns=["example.com"])};
          - wildcard: C{issue("wild", dns=["*.example.com"])};
          - CN-only: C{issue("example.com", no_san=True)};
          - expired: C{issue("example.com", not_after=yesterday)};
          - wrong name: C{issue("other.example.org")}.

        @param name: the subject Common Name, unless C{cn} is given.
        @param dns: dNSName SubjectAltNames, used verbatim (wildcards too).
        @param sip_uris: URI SubjectAltNames, used verbatim (so C{sips:},
            C{sip:user@host} and C{http:} values can be made as well).
        @param ips: iPAddress SubjectAltNames.
        @param cn: a Common Name other than C{name}.
        @param not_before: start of validity; default an hour ago.
        @param not_after: end of validity; default a year from now.
        @param no_san: leave out the SubjectAltName extension altogether.
        """
        issued = _end_entity(
            name,
            self.certificate.subject,
            self._key(),
            dns=dns,
            sip_uris=sip_uris,
            ips=ips,
            cn=cn,
            not_before=not_before,
            not_after=not_after,
            no_san=no_san,
        )
        return IssuedCertificate(issued.cert_pem, issued.key_pem, self.chain_pem)


def _ca_certificate(
    name: str,
    key: ec.EllipticCurvePrivateKey,
    issuer_name: x509.Name | None,
    issuer_key: ec.EllipticCurvePrivateKey | None,
) -> x509.Certificate:
    """
    A CA certificate valid from a day ago for ten years: a root when
    C{issuer_key} is L{None}, else an intermediate that may issue only
    end-entity certificates.
    """
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    signer = issuer_key if issuer_key is not None else key
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name if issuer_name is not None else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + 10 * _ONE_YEAR)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None if issuer_key is None else 0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer_key is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), critical=False
        )
    return builder.sign(signer, hashes.SHA256())


def self_signed(
    name: str,
    *,
    dns: Sequence[str] = (),
    sip_uris: Sequence[str] = (),
    ips: Sequence[str] = (),
    cn: str | None = None,
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
    no_san: bool = False,
) -> IssuedCertificate:
    """
    A self-signed end-entity certificate, with the same options as
    L{CertificateAuthority.issue}: what a peer that nobody vouches for
    presents (the case opportunistic TLS exists for).
    """
    return _end_entity(
        name,
        x509.Name([]),
        None,
        dns=dns,
        sip_uris=sip_uris,
        ips=ips,
        cn=cn,
        not_before=not_before,
        not_after=not_after,
        no_san=no_san,
    )
