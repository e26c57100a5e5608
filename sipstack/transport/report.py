# -*- test-case-name: tests.transport.test_endpoint -*-
"""
What a TLS-first connect did: each attempt, the security state reached and
the reason for any fallback (docs/tls-first.md, "Security states").

These values are what L{TLSFirstEndpoint
<sipstack.transport.endpoint.TLSFirstEndpoint>} returns and raises, what the
stack hands on to the application with a flow, and what C{sipstack probe}
prints; L{Attempt.as_dict} gives their plain form for structured logs and
JSON.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from cryptography import x509
from twisted.internet.interfaces import IProtocol

from sipstack.config import TLSPolicy
from sipstack.errors import TransportFailed
from sipstack.hop import Destination, HopSecurity, TransportKind
from sipstack.routing.plan import TargetSource
from sipstack.transport.identity import sip_identities

__all__ = [
    "Outcome",
    "PeerCertificate",
    "Attempt",
    "ConnectReport",
    "ConnectResult",
    "ConnectFailed",
    "StreamPlanExhausted",
    "DowngradeRefused",
]


class Outcome(enum.Enum):
    """
    How one attempt ended.  A I{definite} failure allows the next target
    (docs/tls-first.md, step 5); any other failure ends the walk.
    """

    CONNECTED = "connected"
    #: The peer refused the TCP connection (RST).
    REFUSED = "refused"
    #: The TCP connection was not made within C{Limits.connect_timeout}.
    TIMEOUT = "timeout"
    #: No route, host unreachable, or another failure to connect.
    UNREACHABLE = "unreachable"
    #: The target has no (usable) address.
    NO_ADDRESSES = "no-addresses"
    #: The connection closed before it was usable (TCP).
    CLOSED = "closed"
    #: A TLS alert or protocol error, a plaintext answer, or the peer closing
    #: during the handshake.
    HANDSHAKE_FAILED = "handshake-failed"
    #: The handshake did not complete within C{Limits.handshake_timeout}.
    HANDSHAKE_TIMEOUT = "handshake-timeout"
    #: Authenticated TLS: the certificate does not name the SIP domain.
    CERTIFICATE_MISMATCH = "certificate-mismatch"
    #: Authenticated TLS: the chain did not verify (untrusted, self-signed,
    #: expired, wrong key usage).
    CERTIFICATE_INVALID = "certificate-invalid"
    #: This address lost the happy-eyeballs race to another one.
    ABANDONED = "abandoned"
    #: The caller cancelled the connection.
    CANCELLED = "cancelled"
    #: Anything else (a bug, a protocol without C{ready}): ends the walk.
    ERROR = "error"
    #: TLS not tried: L{TLSMemory} says there is no TLS at this target.
    SKIPPED_NEGATIVE_CACHE = "skipped-negative-cache"
    #: Not tried because of the policy (no TLS under C{off}, no TCP under
    #: C{strict}).
    SKIPPED_POLICY = "skipped-policy"
    #: TCP not tried because TLS failed where a downgrade is refused (a
    #: pinned target).
    SKIPPED_DOWNGRADE_REFUSED = "skipped-downgrade-refused"

    @property
    def definite(self) -> bool:
        """Whether this failure lets the walk go on to the next target."""
        return self in _DEFINITE

    @property
    def certificate(self) -> bool:
        """Whether this is a certificate failure (authenticated TLS only)."""
        return self in (Outcome.CERTIFICATE_MISMATCH, Outcome.CERTIFICATE_INVALID)


_DEFINITE = frozenset(
    {
        Outcome.REFUSED,
        Outcome.TIMEOUT,
        Outcome.UNREACHABLE,
        Outcome.NO_ADDRESSES,
        Outcome.CLOSED,
        Outcome.HANDSHAKE_FAILED,
        Outcome.HANDSHAKE_TIMEOUT,
        Outcome.SKIPPED_NEGATIVE_CACHE,
        Outcome.SKIPPED_POLICY,
        Outcome.SKIPPED_DOWNGRADE_REFUSED,
    }
)


@dataclass(frozen=True, slots=True)
class PeerCertificate:
    """
    What a TLS peer's certificate said, for reports (C{sipstack probe}).

    @ivar subject: the subject, RFC 4514 text.
    @ivar alt_names: the SubjectAltNames, each as C{URI:...}, C{DNS:...} or
        C{IP:...}.
    @ivar identities: the SIP domain identities by RFC 5922 section 7.1.
    @ivar chain_verified: whether the chain verified against the trust root.
    @ivar matched: whether the identities include the SIP domain.
    """

    subject: str
    alt_names: tuple[str, ...]
    identities: tuple[str, ...]
    chain_verified: bool
    matched: bool

    @classmethod
    def from_certificate(cls, cert: x509.Certificate, domain: str | None, chain_verified: bool) -> PeerCertificate:
        """Describe C{cert} as presented for C{domain}."""
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            alt_names: tuple[str, ...] = ()
        else:
            alt_names = (
                *(f"URI:{value}" for value in san.get_values_for_type(x509.UniformResourceIdentifier)),
                *(f"DNS:{value}" for value in san.get_values_for_type(x509.DNSName)),
                *(f"IP:{value}" for value in san.get_values_for_type(x509.IPAddress)),
            )
        identities = sip_identities(cert)
        matched = domain is not None and identities.matches(domain)
        return cls(cert.subject.rfc4514_string(), alt_names, identities.domains, chain_verified, matched)


@dataclass(frozen=True, slots=True)
class Attempt:
    """
    One connection attempt to one address of one target, or a target that
    was skipped (then C{address} is L{None}).

    @ivar transport: TLS or TCP.
    @ivar host: the target's host name (or IP literal).
    @ivar port: the target's port.
    @ivar address: the address connected to, or L{None}.
    @ivar source: the planning step the target came from.
    @ivar outcome: how it ended.
    @ivar started: when it started (the endpoint's clock).
    @ivar elapsed: seconds until it ended (for TLS: until the handshake
        completed or failed).
    @ivar connect_elapsed: seconds until the TCP connection was made, if it
        was.
    @ivar error: what went wrong, in words; L{None} on success.
    @ivar certificate: for TLS, what the peer's certificate said, when one
        was seen.
    @ivar security: the resulting security state, on success.
    """

    transport: TransportKind
    host: str
    port: int
    address: str | None
    source: TargetSource
    outcome: Outcome
    started: float
    elapsed: float = 0.0
    connect_elapsed: float | None = None
    error: str | None = None
    certificate: PeerCertificate | None = None
    security: HopSecurity | None = None

    def as_dict(self) -> dict[str, object]:
        """Plain values, for structured logs and C{--json}."""
        certificate = self.certificate
        return {
            "transport": self.transport.value,
            "host": self.host,
            "port": self.port,
            "address": self.address,
            "source": self.source.value,
            "outcome": self.outcome.value,
            "started": self.started,
            "elapsed": self.elapsed,
            "connect_elapsed": self.connect_elapsed,
            "error": self.error,
            "certificate": None
            if certificate is None
            else {
                "subject": certificate.subject,
                "alt_names": list(certificate.alt_names),
                "identities": list(certificate.identities),
                "chain_verified": certificate.chain_verified,
                "matched": certificate.matched,
            },
            "security": None if self.security is None else self.security.state.value,
        }


@dataclass(frozen=True, slots=True)
class ConnectReport:
    """
    What one connect did.

    @ivar uri: the URI planned for.
    @ivar domain: the SIP domain (SNI, the identity checked), or L{None}.
    @ivar policy: the policy in force.
    @ivar attempts: every attempt and skipped target, in order.
    @ivar transport: the transport of the connection made, or L{None}.
    @ivar security: its security state, or L{None}.
    @ivar destination: the destination connected to, or L{None}.
    @ivar fallback_reason: when TLS was wanted and TCP used (a downgrade),
        why; otherwise L{None}.
    """

    uri: str
    domain: str | None
    policy: TLSPolicy
    attempts: tuple[Attempt, ...]
    transport: TransportKind | None = None
    security: HopSecurity | None = None
    destination: Destination | None = None
    fallback_reason: str | None = None

    @property
    def downgraded(self) -> bool:
        """Whether TLS was wanted and TCP used."""
        return self.fallback_reason is not None


@dataclass(frozen=True, slots=True)
class ConnectResult:
    """
    A ready protocol and the report of how it was reached.
    """

    protocol: IProtocol
    report: ConnectReport


class ConnectFailed(TransportFailed):
    """
    No usable connection: the base of the endpoint's failures.

    @ivar report: what was tried.
    """

    def __init__(self, message: str, report: ConnectReport) -> None:
        super().__init__(message)
        self.report = report

    @property
    def attempts(self) -> tuple[Attempt, ...]:
        """Every attempt made."""
        return self.report.attempts


class StreamPlanExhausted(ConnectFailed):
    """
    Every stream target failed by a definite failure: the stack may go on
    with UDP, where the policy allows it.
    """


class DowngradeRefused(ConnectFailed):
    """
    TLS failed where going on without it is refused: under the strict
    policy (a C{sips:} URI), or at a target L{TLSMemory} has pinned.  No
    cleartext may follow, UDP included.
    """
