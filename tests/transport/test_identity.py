"""
Tests for L{sipstack.transport.identity}: the RFC 5922 section 7.1-7.2
rules for which SIP domains a certificate names.
"""

from __future__ import annotations

from cryptography import x509
from twisted.trial.unittest import SynchronousTestCase

from sipstack.testing.certs import self_signed
from sipstack.transport.identity import (
    IdentitySource,
    SubjectIdentities,
    matches_sip_domain,
    normalize_domain,
    sip_identities,
)


def _cert(
    name: str = "subject",
    *,
    dns: tuple[str, ...] = (),
    sip_uris: tuple[str, ...] = (),
    ips: tuple[str, ...] = (),
    cn: str | None = None,
    no_san: bool = False,
) -> x509.Certificate:
    return self_signed(name, dns=dns, sip_uris=sip_uris, ips=ips, cn=cn, no_san=no_san).certificate


class FindingIdentitiesTests(SynchronousTestCase):
    """
    L{sip_identities} follows RFC 5922 section 7.1.
    """

    def test_sip_uri_host_is_identity(self) -> None:
        """
        A C{sip:} URI without a user part contributes its host part.
        """
        identities = sip_identities(_cert(sip_uris=("sip:example.com",)))
        self.assertEqual(identities, SubjectIdentities(IdentitySource.SIP_URI, ("example.com",)))

    def test_sip_uri_port_and_parameters_ignored(self) -> None:
        """
        A port, URI parameters and headers are not part of the identity:
        only the DNS name component is compared (section 7.2).
        """
        identities = sip_identities(
            _cert(sip_uris=("sip:a.example.com:5061", "sip:b.example.com;transport=tls", "sip:c.example.com?x=y"))
        )
        self.assertEqual(identities.domains, ("a.example.com", "b.example.com", "c.example.com"))

    def test_scheme_case_insensitive(self) -> None:
        """
        The URI scheme is case-insensitive: C{SIP:} is the C{sip} scheme.
        """
        self.assertEqual(sip_identities(_cert(sip_uris=("SIP:Example.COM",))).domains, ("example.com",))

    def test_ipv6_sip_uri(self) -> None:
        """
        A bracketed IPv6 host is an identity, in canonical form, even with a
        port.
        """
        identities = sip_identities(_cert(sip_uris=("sip:[2001:DB8:0::1]:5061",)))
        self.assertEqual(identities.domains, ("2001:db8::1",))

    def test_user_part_not_identity(self) -> None:
        """
        A C{sip:} URI with a user part names a user, not a domain: it is not
        an identity, and so does not hide the DNS SubjectAltNames.
        """
        identities = sip_identities(_cert(sip_uris=("sip:alice@example.com",), dns=("example.net",)))
        self.assertEqual(identities, SubjectIdentities(IdentitySource.DNS, ("example.net",)))

    def test_other_schemes_not_identity(self) -> None:
        """
        URIs with another scheme, C{sips:} included, are not SIP domain
        identities.
        """
        identities = sip_identities(
            _cert(sip_uris=("sips:example.com", "http://example.com/", "urn:example"), dns=("example.net",))
        )
        self.assertEqual(identities, SubjectIdentities(IdentitySource.DNS, ("example.net",)))

    def test_sip_uri_hides_dns(self) -> None:
        """
        When a C{sip:} URI identity exists, dNSName values are not
        identities at all ("if and only if no other identity is found").
        """
        cert = _cert(sip_uris=("sip:example.com",), dns=("example.net",))
        self.assertEqual(sip_identities(cert), SubjectIdentities(IdentitySource.SIP_URI, ("example.com",)))
        self.assertFalse(matches_sip_domain(cert, "example.net"))

    def test_dns_when_no_sip_uri(self) -> None:
        """
        Without a C{sip:} URI identity, every dNSName is an identity, in
        certificate order.
        """
        identities = sip_identities(_cert(dns=("b.example.com", "a.example.com")))
        self.assertEqual(identities, SubjectIdentities(IdentitySource.DNS, ("b.example.com", "a.example.com")))

    def test_duplicates_removed(self) -> None:
        """
        Values that normalize to the same name are listed once.
        """
        identities = sip_identities(_cert(sip_uris=("sip:example.com", "sip:EXAMPLE.com:5061")))
        self.assertEqual(identities.domains, ("example.com",))

    def test_common_name_without_san(self) -> None:
        """
        With no SubjectAltName extension, a CN that is a valid DNS name is an
        identity (section 7.1 step 2, for backward compatibility).
        """
        identities = sip_identities(_cert("Example.com", no_san=True))
        self.assertEqual(identities, SubjectIdentities(IdentitySource.COMMON_NAME, ("example.com",)))

    def test_common_name_ignored_with_san(self) -> None:
        """
        A SubjectAltName extension, even one with no SIP-usable value (here
        only an iPAddress), means the CN is never consulted.
        """
        identities = sip_identities(_cert("example.com", ips=("192.0.2.1",)))
        self.assertEqual(identities, SubjectIdentities(IdentitySource.NONE, ()))

    def test_common_name_must_be_dns_name(self) -> None:
        """
        A CN that is not a valid DNS name (a wildcard, free text, an IP
        address) is not an identity.
        """
        for cn in ("*.example.com", "Example Corp SIP server", "192.0.2.1"):
            with self.subTest(cn=cn):
                identities = sip_identities(_cert(cn=cn, no_san=True))
                self.assertEqual(identities, SubjectIdentities(IdentitySource.NONE, ()))

    def test_ip_address_san_not_identity(self) -> None:
        """
        iPAddress SubjectAltNames are not SIP domain identities: only URI and
        DNS values are.
        """
        cert = _cert(ips=("192.0.2.1",))
        self.assertEqual(sip_identities(cert).source, IdentitySource.NONE)
        self.assertFalse(matches_sip_domain(cert, "192.0.2.1"))

    def test_wildcard_not_identity(self) -> None:
        """
        A wildcard dNSName is not an identity: alone, it leaves the
        certificate with none.
        """
        self.assertEqual(sip_identities(_cert(dns=("*.example.com",))), SubjectIdentities(IdentitySource.NONE, ()))
        self.assertEqual(sip_identities(_cert(dns=("*.example.com", "example.com"))).domains, ("example.com",))

    def test_ip_address_in_dns_name_not_identity(self) -> None:
        """
        An IP address written as a dNSName is not a host name, so it is not
        an identity and does not match the address.
        """
        cert = _cert(dns=("192.0.2.1",))
        self.assertEqual(sip_identities(cert).source, IdentitySource.NONE)
        self.assertFalse(matches_sip_domain(cert, "192.0.2.1"))

    def test_idn_dns_name(self) -> None:
        """
        IDNs are kept as A-labels, the form certificates carry.
        """
        self.assertEqual(sip_identities(_cert(dns=("xn--bcher-kva.example",))).domains, ("xn--bcher-kva.example",))


class ComparingIdentitiesTests(SynchronousTestCase):
    """
    L{matches_sip_domain} follows RFC 5922 section 7.2.
    """

    def test_exact_match(self) -> None:
        """
        A C{sip:} URI identity matches its domain.
        """
        self.assertTrue(matches_sip_domain(_cert(sip_uris=("sip:example.com",)), "example.com"))

    def test_case_insensitive(self) -> None:
        """
        Domains compare case-insensitively (RFC 4343), both ways round.
        """
        self.assertTrue(matches_sip_domain(_cert(sip_uris=("sip:Example.COM",)), "example.com"))
        self.assertTrue(matches_sip_domain(_cert(dns=("example.com",)), "EXAMPLE.com"))

    def test_trailing_dot(self) -> None:
        """
        A fully qualified name with a trailing dot is the same domain.
        """
        self.assertTrue(matches_sip_domain(_cert(dns=("example.com",)), "example.com."))

    def test_no_suffix_match(self) -> None:
        """
        Values must match in their entirety: neither a parent nor a child
        domain matches.
        """
        self.assertFalse(matches_sip_domain(_cert(dns=("example.com",)), "sip.example.com"))
        self.assertFalse(matches_sip_domain(_cert(dns=("sip.example.com",)), "example.com"))
        self.assertFalse(matches_sip_domain(_cert(dns=("example.com",)), "notexample.com"))

    def test_no_wildcards(self) -> None:
        """
        C{*.example.com} matches no SIP domain: not a child, not the parent,
        and not the literal text (which is not a valid domain to ask for).
        """
        cert = _cert(dns=("*.example.com",))
        for domain in ("sip.example.com", "example.com", "*.example.com", "a.b.example.com"):
            with self.subTest(domain=domain):
                self.assertFalse(matches_sip_domain(cert, domain))

    def test_no_wildcard_in_sip_uri(self) -> None:
        """
        A wildcard in a C{sip:} URI host does not match either.
        """
        self.assertFalse(matches_sip_domain(_cert(sip_uris=("sip:*.example.com",)), "sip.example.com"))

    def test_no_leading_dot(self) -> None:
        """
        C{.example.com} (another wildcard convention) matches nothing.
        """
        self.assertFalse(matches_sip_domain(_cert(dns=(".example.com",)), "sip.example.com"))

    def test_idn_domain(self) -> None:
        """
        An IDN given in Unicode matches its A-label in the certificate
        (RFC 5280 section 7.2).
        """
        self.assertTrue(matches_sip_domain(_cert(dns=("xn--bcher-kva.example",)), "bücher.example"))

    def test_common_name_match(self) -> None:
        """
        A CN-only certificate matches its CN.
        """
        self.assertTrue(matches_sip_domain(_cert("example.com", no_san=True), "example.com"))

    def test_common_name_not_matched_with_san(self) -> None:
        """
        A CN is not matched when the certificate has SubjectAltNames for
        other names.
        """
        self.assertFalse(matches_sip_domain(_cert("example.com", dns=("example.net",)), "example.com"))

    def test_ip_literal_in_sip_uri(self) -> None:
        """
        An IP literal domain matches the same address in a C{sip:} URI,
        however it is written.
        """
        cert = _cert(sip_uris=("sip:[2001:db8::1]",))
        self.assertTrue(matches_sip_domain(cert, "2001:DB8:0:0::1"))
        self.assertTrue(matches_sip_domain(cert, "[2001:db8::1]"))

    def test_no_identities_matches_nothing(self) -> None:
        """
        A certificate without identities authenticates no domain.
        """
        self.assertFalse(matches_sip_domain(_cert(ips=("192.0.2.1",)), "subject"))

    def test_invalid_domain_matches_nothing(self) -> None:
        """
        A domain that is not a host name never matches, even text that the
        certificate holds literally.
        """
        cert = _cert(dns=("a..b", "", "exa mple.com"))
        for domain in ("a..b", "", "exa mple.com"):
            with self.subTest(domain=domain):
                self.assertFalse(matches_sip_domain(cert, domain))

    def test_subject_identities_matches(self) -> None:
        """
        L{SubjectIdentities.matches} is the comparison L{matches_sip_domain}
        uses.
        """
        identities = SubjectIdentities(IdentitySource.DNS, ("example.com",))
        self.assertTrue(identities.matches("Example.Com."))
        self.assertFalse(identities.matches("example.org"))


class NormalizeDomainTests(SynchronousTestCase):
    """
    L{normalize_domain} puts names in comparable form.
    """

    def test_host_names(self) -> None:
        """
        Host names are lower-cased, lose a trailing dot, and become A-labels.
        """
        self.assertEqual(normalize_domain(" Example.COM. "), "example.com")
        self.assertEqual(normalize_domain("Bücher.example"), "xn--bcher-kva.example")

    def test_ip_literals(self) -> None:
        """
        IP literals, bracketed or not, become canonical text.
        """
        self.assertEqual(normalize_domain("[2001:DB8::0:1]"), "2001:db8::1")
        self.assertEqual(normalize_domain("192.0.2.1"), "192.0.2.1")

    def test_invalid(self) -> None:
        """
        Wildcards, empty labels, bad characters, over-long labels, numeric
        top-level labels and names IDNA forbids give L{None}.
        """
        bad_names = (
            "",
            ".",
            "*.example.com",
            ".example.com",
            "a..b",
            "-a.example",
            "a_b.example",
            "x" * 64 + ".com",
            "a.123",
            "☃.example",
        )
        for bad in bad_names:
            with self.subTest(bad=bad):
                self.assertIsNone(normalize_domain(bad))
