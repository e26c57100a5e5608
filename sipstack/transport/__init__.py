"""
The Twisted adapters of sipstack: stream and datagram protocols, the flow
table, TLS options and certificates, the TLS-first endpoint with its
reports and memory (and, later, the DNS resolver).

This is the adapter layer (docs/architecture.md): it may import Twisted,
pyOpenSSL, C{cryptography}, C{service_identity} and dnspython, and the sans-IO
core never imports it.
"""

from sipstack.transport.certificates import ensure_certificate, generate_self_signed
from sipstack.transport.descriptions import ListenerDescription, parse_listener
from sipstack.transport.dns import DNSCache, DNSResolver
from sipstack.transport.endpoint import DOWNGRADE_EVENT, TLSFirstEndpoint
from sipstack.transport.identity import matches_sip_domain, sip_identities
from sipstack.transport.layer import TransportLayer
from sipstack.transport.report import (
    Attempt,
    ConnectFailed,
    ConnectReport,
    ConnectResult,
    DowngradeRefused,
    Outcome,
    PeerCertificate,
    StreamPlanExhausted,
)
from sipstack.transport.stream import ConnectionLimitExceeded, HandshakeTimedOut
from sipstack.transport.tls_memory import MemoryEntry, MemoryKind, TLSMemory

__all__ = [
    "TransportLayer",
    "ListenerDescription",
    "parse_listener",
    "ConnectionLimitExceeded",
    "HandshakeTimedOut",
    "TLSFirstEndpoint",
    "DOWNGRADE_EVENT",
    "Attempt",
    "Outcome",
    "PeerCertificate",
    "ConnectReport",
    "ConnectResult",
    "ConnectFailed",
    "StreamPlanExhausted",
    "DowngradeRefused",
    "TLSMemory",
    "MemoryKind",
    "MemoryEntry",
    "generate_self_signed",
    "ensure_certificate",
    "sip_identities",
    "matches_sip_domain",
    "DNSResolver",
    "DNSCache",
]
