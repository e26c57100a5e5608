"""
Tests for L{sipstack.transport.certificates} (the quick start's self-signed
certificate) and L{sipstack.testing.certs} (the test CA).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import stat
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase

from sipstack.testing.certs import CertificateAuthority, IssuedCertificate, self_signed
from sipstack.transport.certificates import ensure_certificate, generate_self_signed
from sipstack.transport.identity import IdentitySource, SubjectIdentities, sip_identities
from sipstack.transport.tls import server_tls_options


def _load(cert_pem: bytes, key_pem: bytes) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert = x509.load_pem_x509_certificate(cert_pem)
    key = serialization.load_pem_private_key(key_pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return cert, key


def _sans(cert: x509.Certificate) -> x509.SubjectAlternativeName:
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value


class GenerateSelfSignedTests(SynchronousTestCase):
    """
    L{generate_self_signed} makes an RFC 5922 section 6 certificate.
    """

    def test_key(self) -> None:
        """
        The key is EC P-256 and belongs to the certificate.
        """
        cert, key = _load(*generate_self_signed("example.com"))
        self.assertIsInstance(key.curve, ec.SECP256R1)
        self.assertEqual(cert.public_key(), key.public_key())

    def test_self_signed(self) -> None:
        """
        Subject and issuer are the name, and the certificate signs itself.
        """
        cert, _ = _load(*generate_self_signed("example.com"))
        self.assertEqual(cert.subject, cert.issuer)
        self.assertEqual(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value, "example.com")
        cert.verify_directly_issued_by(cert)

    def test_subject_alt_names(self) -> None:
        """
        The SubjectAltName holds C{sip:name}, the DNS name, the extra DNS
        names and the IP addresses, so RFC 5922 finds the name by its
        C{sip:} URI.
        """
        cert, _ = _load(
            *generate_self_signed("example.com", extra_dns=["sip.example.com"], ip_addresses=["192.0.2.1", "::1"])
        )
        sans = _sans(cert)
        self.assertEqual(sans.get_values_for_type(x509.UniformResourceIdentifier), ["sip:example.com"])
        self.assertEqual(sans.get_values_for_type(x509.DNSName), ["example.com", "sip.example.com"])
        self.assertEqual(
            sans.get_values_for_type(x509.IPAddress), [ipaddress.ip_address("192.0.2.1"), ipaddress.ip_address("::1")]
        )
        self.assertEqual(sip_identities(cert), SubjectIdentities(IdentitySource.SIP_URI, ("example.com",)))

    def test_ip_name(self) -> None:
        """
        An IP literal name becomes an iPAddress and a C{sip:} URI (bracketed
        for IPv6), not a dNSName.
        """
        cert, _ = _load(*generate_self_signed("2001:db8::1"))
        sans = _sans(cert)
        self.assertEqual(sans.get_values_for_type(x509.UniformResourceIdentifier), ["sip:[2001:db8::1]"])
        self.assertEqual(sans.get_values_for_type(x509.IPAddress), [ipaddress.ip_address("2001:db8::1")])
        self.assertEqual(sans.get_values_for_type(x509.DNSName), [])

    def test_idn_name(self) -> None:
        """
        An internationalized name is stored as its A-label.
        """
        cert, _ = _load(*generate_self_signed("bücher.example"))
        self.assertEqual(_sans(cert).get_values_for_type(x509.DNSName), ["xn--bcher-kva.example"])

    def test_not_a_ca(self) -> None:
        """
        basicConstraints says CA=false (critical), and the key may serve as
        TLS server and client.
        """
        cert, _ = _load(*generate_self_signed("example.com"))
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
        self.assertTrue(constraints.critical)
        self.assertFalse(constraints.value.ca)
        usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        self.assertEqual(list(usage), [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH])

    def test_validity(self) -> None:
        """
        The certificate is valid now and for C{days} days.
        """
        before = datetime.datetime.now(datetime.UTC)
        cert, _ = _load(*generate_self_signed("example.com", days=10))
        self.assertLess(cert.not_valid_before_utc, before)
        lifetime = cert.not_valid_after_utc - before
        self.assertLess(abs(lifetime - datetime.timedelta(days=10)), datetime.timedelta(minutes=1))

    def test_default_validity(self) -> None:
        """
        By default the certificate lasts 825 days.
        """
        cert, _ = _load(*generate_self_signed("example.com"))
        self.assertEqual((cert.not_valid_after_utc - cert.not_valid_before_utc).days, 825)

    def test_fresh_key_each_time(self) -> None:
        """
        Each call makes a new key.
        """
        self.assertNotEqual(generate_self_signed("example.com")[1], generate_self_signed("example.com")[1])

    def test_invalid_arguments(self) -> None:
        """
        An empty name, a non-positive lifetime or a bad IP address is
        refused.
        """
        with self.assertRaises(ValueError):
            generate_self_signed(" ")
        with self.assertRaises(ValueError):
            generate_self_signed("example.com", days=0)
        with self.assertRaises(ValueError):
            generate_self_signed("example.com", ip_addresses=["example.net"])

    def test_usable_by_server(self) -> None:
        """
        The pair loads into server TLS options.
        """
        cert_pem, key_pem = generate_self_signed("example.com")
        server_tls_options(cert_pem, key_pem).getContext()


class EnsureCertificateTests(SynchronousTestCase):
    """
    L{ensure_certificate} creates the quick start's certificate once.
    """

    def setUp(self) -> None:
        self.directory = FilePath(self.mktemp())

    def test_creates_files(self) -> None:
        """
        The first call writes a certificate and its key, named after the
        domain, in a new private directory, and logs where.
        """
        events = EventLoggingObserver()
        globalLogPublisher.addObserver(events)
        self.addCleanup(globalLogPublisher.removeObserver, events)
        cert_path, key_path = ensure_certificate(self.directory, "example.com")
        self.assertEqual(cert_path, self.directory.child("example.com.cert.pem"))
        self.assertEqual(key_path, self.directory.child("example.com.key.pem"))
        cert, key = _load(cert_path.getContent(), key_path.getContent())
        self.assertEqual(cert.public_key(), key.public_key())
        self.assertEqual(_mode(self.directory), 0o700)
        self.assertEqual(len(events), 1)
        self.assertEqual(events[0]["name"], "example.com")
        self.assertEqual(events[0]["path"], cert_path.path)

    def test_key_private(self) -> None:
        """
        The key file is readable by its owner only.
        """
        _, key_path = ensure_certificate(self.directory, "example.com")
        self.assertEqual(_mode(key_path), 0o600)

    def test_reused(self) -> None:
        """
        Later calls return the same files, unchanged.
        """
        cert_path, key_path = ensure_certificate(self.directory, "example.com")
        contents = cert_path.getContent(), key_path.getContent()
        again = ensure_certificate(self.directory.path, "example.com")
        self.assertEqual(again, (cert_path, key_path))
        self.assertEqual((again[0].getContent(), again[1].getContent()), contents)

    def test_operator_files_kept(self) -> None:
        """
        Files an operator put under those names are used as they are.
        """
        self.directory.makedirs()
        self.directory.child("example.com.cert.pem").setContent(b"operator cert")
        self.directory.child("example.com.key.pem").setContent(b"operator key")
        cert_path, key_path = ensure_certificate(self.directory, "example.com")
        self.assertEqual(cert_path.getContent(), b"operator cert")
        self.assertEqual(key_path.getContent(), b"operator key")

    def test_half_pair_replaced(self) -> None:
        """
        If only one of the two files exists, a matching pair is made anew.
        """
        self.directory.makedirs()
        self.directory.child("example.com.cert.pem").setContent(b"stale")
        cert_path, key_path = ensure_certificate(self.directory, "example.com")
        cert, key = _load(cert_path.getContent(), key_path.getContent())
        self.assertEqual(cert.public_key(), key.public_key())

    def test_unsafe_name(self) -> None:
        """
        Characters that do not belong in a file name are replaced.
        """
        cert_path, _ = ensure_certificate(self.directory, "../evil/::1")
        self.assertEqual(cert_path.parent(), self.directory)
        self.assertEqual(cert_path.basename(), ".._evil___1.cert.pem")

    def test_no_temporary_files_left(self) -> None:
        """
        Only the two files remain in the directory.
        """
        ensure_certificate(self.directory, "example.com")
        self.assertEqual(sorted(self.directory.listdir()), ["example.com.cert.pem", "example.com.key.pem"])

    def test_failed_write_leaves_nothing(self) -> None:
        """
        If writing fails, the error propagates and no file, temporary or
        final, is left behind.
        """

        def failing_fsync(fd: int) -> None:
            raise OSError("disk full")

        self.patch(os, "fsync", failing_fsync)
        with self.assertRaises(OSError):
            ensure_certificate(self.directory, "example.com")
        self.assertEqual(self.directory.listdir(), [])


def _mode(path: FilePath[str]) -> int:
    return stat.S_IMODE(os.stat(path.path).st_mode)


class CertificateAuthorityTests(SynchronousTestCase):
    """
    L{CertificateAuthority} makes every certificate the TLS tests need.
    """

    def setUp(self) -> None:
        self.ca = CertificateAuthority.generate("Test CA")

    def issue(self, name: str = "example.com", **kwargs: Any) -> x509.Certificate:
        issued = self.ca.issue(name, **kwargs)
        self.assertIsInstance(issued, IssuedCertificate)
        return issued.certificate

    def test_ca_certificate(self) -> None:
        """
        The CA certificate is a self-signed CA that may sign certificates.
        """
        cert = self.ca.certificate
        self.assertTrue(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
        self.assertTrue(cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign)
        cert.verify_directly_issued_by(cert)
        self.assertEqual(x509.load_pem_x509_certificate(self.ca.cert_pem), cert)

    def test_issued_by_ca(self) -> None:
        """
        Issued certificates are signed by the CA and carry its name.
        """
        cert = self.issue()
        cert.verify_directly_issued_by(self.ca.certificate)
        self.assertEqual(cert.issuer, self.ca.certificate.subject)

    def test_key_matches(self) -> None:
        """
        The issued key belongs to the issued certificate.
        """
        issued = self.ca.issue("example.com")
        cert, key = _load(issued.cert_pem, issued.key_pem)
        self.assertEqual(cert.public_key(), key.public_key())

    def test_default_names(self) -> None:
        """
        Without explicit names, the certificate has C{sip:name} and the DNS
        name, and the CN is the name.
        """
        cert = self.issue()
        self.assertEqual(_sans(cert).get_values_for_type(x509.UniformResourceIdentifier), ["sip:example.com"])
        self.assertEqual(_sans(cert).get_values_for_type(x509.DNSName), ["example.com"])
        self.assertEqual(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value, "example.com")

    def test_explicit_names(self) -> None:
        """
        Explicit names replace the default, verbatim: wildcards, user parts
        and other schemes included.
        """
        cert = self.issue(
            "x", dns=["*.example.com"], sip_uris=["sips:alice@example.com"], ips=["192.0.2.7"], cn="Custom CN"
        )
        sans = _sans(cert)
        self.assertEqual(sans.get_values_for_type(x509.DNSName), ["*.example.com"])
        self.assertEqual(sans.get_values_for_type(x509.UniformResourceIdentifier), ["sips:alice@example.com"])
        self.assertEqual(sans.get_values_for_type(x509.IPAddress), [ipaddress.ip_address("192.0.2.7")])
        self.assertEqual(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value, "Custom CN")

    def test_dns_only(self) -> None:
        """
        A DNS-only certificate has no URI SubjectAltName.
        """
        cert = self.issue(dns=["example.com"])
        self.assertEqual(_sans(cert).get_values_for_type(x509.UniformResourceIdentifier), [])

    def test_no_san(self) -> None:
        """
        C{no_san} leaves out the extension: a CN-only certificate.
        """
        cert = self.issue(no_san=True)
        with self.assertRaises(x509.ExtensionNotFound):
            _sans(cert)

    def test_expired(self) -> None:
        """
        A C{not_after} in the past makes an expired certificate that was once
        valid.
        """
        yesterday = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)
        cert = self.issue(not_after=yesterday)
        self.assertEqual(cert.not_valid_after_utc, yesterday.replace(microsecond=0))
        self.assertLess(cert.not_valid_before_utc, cert.not_valid_after_utc)

    def test_not_yet_valid(self) -> None:
        """
        A C{not_before} in the future makes a certificate not yet valid.
        """
        tomorrow = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1)
        cert = self.issue(not_before=tomorrow)
        self.assertEqual(cert.not_valid_before_utc, tomorrow.replace(microsecond=0))
        self.assertGreater(cert.not_valid_after_utc, tomorrow)

    def test_default_validity(self) -> None:
        """
        By default a certificate is valid now.
        """
        now = datetime.datetime.now(datetime.UTC)
        cert = self.issue()
        self.assertLess(cert.not_valid_before_utc, now)
        self.assertGreater(cert.not_valid_after_utc, now)

    def test_end_entity(self) -> None:
        """
        Issued certificates are not CAs and allow server and client use.
        """
        cert = self.issue()
        self.assertFalse(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
        usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        self.assertEqual(list(usage), [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH])

    def test_intermediate(self) -> None:
        """
        An intermediate CA is signed by its parent, and its certificates
        carry it as their chain.
        """
        intermediate = self.ca.intermediate("Intermediate")
        intermediate.certificate.verify_directly_issued_by(self.ca.certificate)
        constraints = intermediate.certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
        self.assertEqual((constraints.ca, constraints.path_length), (True, 0))
        issued = intermediate.issue("example.com")
        issued.certificate.verify_directly_issued_by(intermediate.certificate)
        self.assertEqual(issued.chain_pem, intermediate.cert_pem)
        self.assertEqual(issued.fullchain_pem, issued.cert_pem + intermediate.cert_pem)

    def test_root_has_no_chain(self) -> None:
        """
        Certificates from a root carry no chain.
        """
        issued = self.ca.issue("example.com")
        self.assertEqual((self.ca.chain_pem, issued.chain_pem), (b"", b""))
        self.assertEqual(issued.fullchain_pem, issued.cert_pem)

    def test_self_signed(self) -> None:
        """
        L{self_signed} makes a certificate that is its own issuer, with the
        same options.
        """
        cert = self_signed("example.com", dns=["example.com"]).certificate
        cert.verify_directly_issued_by(cert)
        self.assertEqual(_sans(cert).get_values_for_type(x509.DNSName), ["example.com"])
