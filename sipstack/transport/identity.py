# -*- test-case-name: tests.transport.test_identity -*-
"""
Which SIP domains a certificate speaks for, by the rules of RFC 5922.

RFC 5922 differs from the HTTPS rules (RFC 6125, RFC 2818) that
C{service_identity} and L{twisted.internet.ssl.optionsForClientTLS}
implement, in three ways that matter for security:

  1. A C{sip:} URI SubjectAltName takes precedence: when the certificate
     holds one (without a user part), its DNS SubjectAltNames are I{not}
     SIP domain identities at all (section 7.1).
  2. The Common Name is consulted only when the certificate has no
     SubjectAltName extension at all (section 7.1, step 2).
  3. There are no wildcards: C{*.example.com} does not match
     C{sip.example.com} (section 7.2).

C{service_identity.hazmat.URIPattern} cannot express rule 1, applies
wildcards, and splits C{sip:example.com:5061} wrongly, so this module is the
matcher.  It is a pure function of a C{cryptography} certificate: chain
validation, expiry and key usage are OpenSSL's job during the handshake.

@see: RFC 5922 section 7.1 (finding identities), section 7.2 (comparing
    them), section 7.3 (client behaviour).
"""

from __future__ import annotations

import enum
import ipaddress
import re
from dataclasses import dataclass

import idna
from cryptography import x509
from cryptography.x509.oid import NameOID

__all__ = ["IdentitySource", "SubjectIdentities", "sip_identities", "matches_sip_domain", "normalize_domain"]

#: One LDH label of a host name (RFC 1123 section 2.1), in A-label form.
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)\Z")


class IdentitySource(enum.Enum):
    """
    Where the identities of a certificate were found (RFC 5922 section 7.1).
    """

    #: C{sip:} URIs without a user part in the SubjectAltName.
    SIP_URI = "sip-uri"
    #: dNSName SubjectAltNames, used because no C{sip:} URI identity exists.
    DNS = "dns"
    #: The subject Common Name, used because there is no SubjectAltName.
    COMMON_NAME = "common-name"
    #: The certificate names no SIP domain.
    NONE = "none"


@dataclass(frozen=True, slots=True)
class SubjectIdentities:
    """
    The SIP domain identities a certificate asserts.

    @ivar source: which part of the certificate they came from; exactly one
        part counts, by the precedence of RFC 5922 section 7.1.
    @ivar domains: the identities, in certificate order without duplicates,
        lower-cased, IDNA A-labels, without a trailing dot; IP literals (only
        from C{sip:} URIs) in canonical form.  Values that are not valid host
        names, such as a wildcard C{*.example.com}, are not identities: RFC
        5922 section 7.2 lets them match only their own literal text, which
        is never a valid SIP domain.
    """

    source: IdentitySource
    domains: tuple[str, ...]

    def matches(self, domain: str) -> bool:
        """
        Whether C{domain} is one of these identities.

        The comparison is of whole DNS names, case-insensitive, with no
        suffix and no wildcard matching (RFC 5922 section 7.2).

        @param domain: the SIP domain the peer must be authoritative for: the
            host part of the URI being resolved, before any RFC 3263 lookup.
        """
        wanted = normalize_domain(domain)
        return wanted is not None and wanted in self.domains


def normalize_domain(domain: str) -> str | None:
    """
    Put a SIP domain in the form identities are compared in.

    DNS names are compared case-insensitively (RFC 4343) and IDNs as A-labels
    (RFC 5280 section 7.2, which RFC 5922 section 7.2 refers to); a trailing
    dot names the same domain.  An IP literal (bracketed or not) becomes its
    canonical text, so C{[2001:DB8::1]} equals C{2001:db8:0::1}.

    @return: the normalized name, or L{None} if C{domain} is neither a valid
        host name nor an IP literal: such a value (C{*.example.com},
        C{.example.com}, C{a..b}) never matches anything.
    """
    text = domain.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        return ipaddress.ip_address(text).compressed
    except ValueError:
        pass
    return _normalize_host_name(text)


def _normalize_host_name(name: str) -> str | None:
    """
    Normalize a DNS host name; L{None} for anything else, IPv4 text included
    (a top-level label is never all digits, RFC 3696 section 2).
    """
    if name.endswith("."):
        name = name[:-1]
    if not name.isascii():
        try:
            name = idna.encode(name, uts46=True).decode("ascii")
        except ValueError:  # idna.IDNAError is a UnicodeError, hence a ValueError
            return None
    name = name.lower()
    labels = name.split(".")
    if len(name) > 253 or labels[-1].isdigit() or not all(_LABEL.match(label) for label in labels):
        return None
    return name


def _sip_uri_host(uri: str) -> str | None:
    """
    The host part of a C{sip:} URI SubjectAltName that is a SIP domain
    identity, or L{None} when the value is not one.

    RFC 5922 section 7.1: a scheme other than C{sip} is not a SIP domain
    identity (C{sips:} included), and neither is a URI with a user part ("a
    value with a userpart identifies an individual user, not a domain").  A
    port, parameters and headers are ignored: "an implementation MUST NOT use
    any scheme or parameters in the comparison" (section 7.2).
    """
    scheme, colon, rest = uri.strip().partition(":")
    if not colon or scheme.lower() != "sip" or "@" in rest:
        return None
    hostport = re.split(r"[;?]", rest, maxsplit=1)[0]
    if hostport.startswith("["):
        end = hostport.find("]")
        host = hostport[: end + 1] if end > 0 else ""
    else:
        host = hostport.partition(":")[0]
    return normalize_domain(host) if host else None


def sip_identities(cert: x509.Certificate) -> SubjectIdentities:
    """
    Find the SIP domain identities of a certificate.

    Follows RFC 5922 section 7.1:

      - "URI: If the scheme of the URI is not 'sip', then the implementation
        MUST NOT accept the value as a SIP domain identity."  With a user
        part ("there is an '@'") it MUST NOT either; otherwise it "MUST
        accept the hostpart as a SIP domain identity".
      - "DNS: An implementation MUST accept a domain name system (DNS)
        identifier as a SIP domain identity if and only if no other identity
        is found that matches the 'sip' URI type described above."
      - "If and only if the subjectAltName does not appear in the
        certificate, the implementation MAY examine the CN field of the
        certificate.  If a valid DNS name is found there, the implementation
        MAY accept this value as a SIP domain identity."  sipstack does, for
        the backward compatibility the RFC names; a CN that is not a valid
        DNS name (a wildcard, an IP address, free text) is ignored.

    Other SubjectAltName types (iPAddress, rfc822Name, ...) are never SIP
    domain identities.  A certificate with a SubjectAltName extension that
    holds none of the above has no identities: its CN is not consulted.

    @param cert: the peer's end-entity certificate.
    """
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        common_names = []
        for attribute in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME):
            value = attribute.value if isinstance(attribute.value, str) else attribute.value.decode("utf-8", "replace")
            name = _normalize_host_name(value.strip())
            if name is not None:
                common_names.append(name)
        return _identities(IdentitySource.COMMON_NAME, common_names)

    uri_hosts = [
        host for uri in san.get_values_for_type(x509.UniformResourceIdentifier) if (host := _sip_uri_host(uri))
    ]
    if uri_hosts:
        return _identities(IdentitySource.SIP_URI, uri_hosts)
    dns_names = [
        name for value in san.get_values_for_type(x509.DNSName) if (name := _normalize_host_name(value.strip()))
    ]
    return _identities(IdentitySource.DNS, dns_names)


def _identities(source: IdentitySource, domains: list[str]) -> SubjectIdentities:
    unique = tuple(dict.fromkeys(domains))
    return SubjectIdentities(source if unique else IdentitySource.NONE, unique)


def matches_sip_domain(cert: x509.Certificate, domain: str) -> bool:
    """
    Whether C{cert} authenticates its holder for the SIP domain C{domain}.

    This is the check of RFC 5922 section 7.3 ("the client MUST compare the
    original domain portion of the AUS used as input to the RFC 3263 server
    location procedures to the SIP domain identities obtained from the
    certificate"), done after, and in addition to, chain validation.

    @param cert: the peer's end-entity certificate.
    @param domain: the domain from the SIP or SIPS URI, not the SRV target
        or the address connected to.
    """
    return sip_identities(cert).matches(domain)
