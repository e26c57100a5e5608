# -*- test-case-name: tests.transport.test_certificates -*-
"""
Self-signed certificates, so that a fresh server speaks TLS at once.

The quick start promises that C{twistd -n sip} answers on TLS with nothing
configured: L{ensure_certificate} creates a key and a self-signed certificate
in the data directory on the first run and reuses them afterwards.  Peers
cannot authenticate such a certificate, but opportunistic TLS
(docs/tls-first.md, RFC 7435) still encrypts the hop, which beats cleartext.

The certificate follows RFC 5922 section 6 so that it is also a valid SIP
domain certificate once the operator trusts it explicitly: the domain appears
as a C{sip:} URI SubjectAltName and as a dNSName, and the extended key usage
allows both the server and the client role (a proxy is both, RFC 5922
section 7.5).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
from collections.abc import Sequence

import idna
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from twisted.logger import Logger
from twisted.python.filepath import FilePath

__all__ = ["generate_self_signed", "ensure_certificate"]

log = Logger()

#: Slack on C{notBefore}, so that a peer whose clock is a little behind ours
#: does not see a certificate from the future.
_CLOCK_SKEW = datetime.timedelta(minutes=5)

#: The longest Common Name X.520 allows (ub-common-name).
_MAX_COMMON_NAME = 64


def generate_self_signed(
    name: str,
    *,
    days: int = 825,
    extra_dns: Sequence[str] = (),
    ip_addresses: Sequence[str] = (),
) -> tuple[bytes, bytes]:
    """
    Make a new EC P-256 key and a self-signed certificate for C{name}.

    The certificate carries, as RFC 5922 section 6 asks, the SIP domain as a
    C{sip:} URI SubjectAltName (section 7.1 prefers it) and as a dNSName (for
    peers that only check DNS names), plus C{extra_dns} and C{ip_addresses}.
    If C{name} is itself an IP literal it becomes an iPAddress SubjectAltName
    and a C{sip:} URI instead of a dNSName.  It is not a CA
    (basicConstraints CA=false) and may be used as TLS server and client
    (extendedKeyUsage serverAuth, clientAuth).  825 days is the longest
    validity that common TLS clients accept.

    @param name: the SIP domain (or host name) the certificate is for.
    @param days: how long the certificate is valid from now.
    @param extra_dns: further dNSName SubjectAltNames.
    @param ip_addresses: iPAddress SubjectAltNames (IPv4 or IPv6 text).
    @return: the PEM certificate and the PEM (PKCS#8, unencrypted) key.
    @raise ValueError: if C{name} is empty, C{days} is not positive, or an
        address in C{ip_addresses} is not an IP address.
    """
    if not name.strip():
        raise ValueError("a certificate needs a name")
    if days <= 0:
        raise ValueError(f"days must be positive, not {days!r}")
    name = name.strip()
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name[:_MAX_COMMON_NAME])])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(_alt_names(name, extra_dns, ip_addresses)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert_pem, key_pem


def _alt_names(name: str, extra_dns: Sequence[str], ip_addresses: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    try:
        address = ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        dns_name = _a_label(name)
        names += [x509.UniformResourceIdentifier(f"sip:{dns_name}"), x509.DNSName(dns_name)]
    else:
        host = f"[{address.compressed}]" if address.version == 6 else address.compressed
        names += [x509.UniformResourceIdentifier(f"sip:{host}"), x509.IPAddress(address)]
    names += [x509.DNSName(_a_label(extra)) for extra in extra_dns]
    names += [x509.IPAddress(ipaddress.ip_address(text)) for text in ip_addresses]
    return list(dict.fromkeys(names))


def _a_label(name: str) -> str:
    """
    The ASCII form of a host name: certificates carry IDNs as A-labels (RFC
    5280 section 7.2).
    """
    if name.isascii():
        return name.lower()
    return idna.encode(name, uts46=True).decode("ascii")


def ensure_certificate(directory: FilePath[str] | str, name: str) -> tuple[FilePath[str], FilePath[str]]:
    """
    Return the certificate and key files for C{name} in C{directory},
    creating a self-signed pair on the first call.

    The files are C{<name>.cert.pem} and C{<name>.key.pem} (characters other
    than letters, digits, C{.}, C{-} and C{_} in C{name} become C{_}).  They
    are reused as long as both exist, so an operator may replace them with a
    CA-issued pair of the same names.  Otherwise both are (re)written: the
    key with mode 0600, each through a temporary file and a rename, so a
    crash never leaves a half-written file under the final name.  The
    directory is created (mode 0700) if missing.

    @param directory: the data directory.
    @param name: the SIP domain the certificate is for.
    @return: the certificate file and the key file.
    @raise OSError: if the directory or the files cannot be written.
    """
    base = directory if isinstance(directory, FilePath) else FilePath(directory)
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", name.strip()) or "sipstack"
    cert_path = base.child(f"{stem}.cert.pem")
    key_path = base.child(f"{stem}.key.pem")
    if cert_path.isfile() and key_path.isfile():
        return cert_path, key_path
    if not base.isdir():
        base.makedirs(ignoreExistingDirectory=True)
        base.chmod(0o700)
    cert_pem, key_pem = generate_self_signed(name)
    _write_atomically(key_path, key_pem, mode=0o600)
    _write_atomically(cert_path, cert_pem, mode=0o644)
    log.info(
        "Generated a self-signed certificate for {name} in {path}; peers can encrypt to it but not authenticate it",
        name=name,
        path=cert_path.path,
    )
    return cert_path, key_path


def _write_atomically(path: FilePath[str], data: bytes, *, mode: int) -> None:
    """
    Write C{data} to C{path} through a temporary sibling created with
    C{mode}, so the secret never exists with looser permissions.
    """
    temporary = path.temporarySibling(".tmp")
    fd = os.open(temporary.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as stream:
            fd = -1
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
    except BaseException:
        if fd != -1:
            os.close(fd)
        temporary.remove()
        raise
    os.replace(temporary.path, path.path)
