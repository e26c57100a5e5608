"""
sipstack: a SIP protocol stack for Twisted.

The layers, bottom up: L{sipstack.message} (messages, parsing, framing; pure
Python, no I/O), transactions, TLS-first routing and transports, and services
(a registrar and proxy run by C{twistd sip}).  See C{docs/architecture.md}.
"""

from sipstack._version import __version__

__all__ = ["__version__"]
