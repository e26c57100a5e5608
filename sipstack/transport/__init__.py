"""
The Twisted adapters of sipstack: stream and datagram protocols, the flow
table, TLS options and certificates (and, later, the TLS-first endpoint and
the DNS resolver).

This is the adapter layer (docs/architecture.md): it may import Twisted,
pyOpenSSL, C{cryptography}, C{service_identity} and dnspython, and the sans-IO
core never imports it.
"""

from sipstack.transport.certificates import ensure_certificate, generate_self_signed
from sipstack.transport.descriptions import ListenerDescription, parse_listener
from sipstack.transport.dns import DNSCache, DNSResolver
from sipstack.transport.identity import matches_sip_domain, sip_identities
from sipstack.transport.layer import TransportLayer
from sipstack.transport.stream import ConnectionLimitExceeded

__all__ = [
    "TransportLayer",
    "ListenerDescription",
    "parse_listener",
    "ConnectionLimitExceeded",
    "generate_self_signed",
    "ensure_certificate",
    "sip_identities",
    "matches_sip_domain",
    "DNSResolver",
    "DNSCache",
]
