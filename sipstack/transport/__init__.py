"""
The Twisted adapters of sipstack: stream and datagram protocols, TLS options
and certificates, the TLS-first endpoint and the DNS resolver.

This is the adapter layer (docs/architecture.md section 1.3): it may import
Twisted, pyOpenSSL, C{cryptography}, C{service_identity} and dnspython, and the
sans-IO core never imports it.
"""

__all__: list[str] = []
