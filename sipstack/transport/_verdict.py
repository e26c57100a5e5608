# -*- test-case-name: tests.transport.test_tls -*-
"""
OpenSSL's verdict on a peer's certificate chain, kept per connection.

Opportunistic clients and servers that request client certificates accept
any chain during the handshake (the decision belongs to the caller, with the
certificate in hand: docs/tls-first.md, RFC 5922 section 7.4), but the
caller still needs to know whether the chain I{did} verify.  pyOpenSSL does
not expose C{SSL_get_verify_result}, so the verify callback records what
OpenSSL reported, here, where L{sipstack.transport.tls.peer_chain_verified}
finds it again.
"""

from __future__ import annotations

from collections.abc import Callable
from weakref import WeakKeyDictionary

from OpenSSL import SSL, crypto

__all__ = ["ChainVerdict", "VerifyCallback", "accepting_verifier", "verdict_for"]

#: pyOpenSSL's verify callback: (connection, certificate, error number,
#: depth, OpenSSL's own verdict) to "continue the handshake?".
VerifyCallback = Callable[[SSL.Connection, crypto.X509, int, int, int], bool]


class ChainVerdict:
    """
    What OpenSSL said about each certificate of the peer's chain.

    @ivar presented: the peer sent a certificate (the callback ran).
    @ivar failed: OpenSSL found a fault at some depth (untrusted issuer,
        expired, wrong key usage, bad signature, ...).
    """

    def __init__(self) -> None:
        self.presented = False
        self.failed = False

    @classmethod
    def attach(cls, connection: SSL.Connection) -> ChainVerdict:
        """
        A new verdict for C{connection}, found again by L{verdict_for}.
        """
        verdict = _verdicts[connection] = cls()
        return verdict

    def record(self, ok: int) -> None:
        """
        Note OpenSSL's verdict on one certificate of the chain.
        """
        self.presented = True
        if not ok:
            self.failed = True

    @property
    def verified(self) -> bool:
        """Whether a chain was presented and OpenSSL found no fault in it."""
        return self.presented and not self.failed


#: The verdict per connection.  Weak keys: an entry lives exactly as long as
#: its L{SSL.Connection}, and the verdict does not refer back to it.
_verdicts: WeakKeyDictionary[SSL.Connection, ChainVerdict] = WeakKeyDictionary()


def verdict_for(connection: SSL.Connection) -> ChainVerdict | None:
    """
    The verdict attached to C{connection}, if any.
    """
    return _verdicts.get(connection)


def accepting_verifier(verdict: ChainVerdict) -> VerifyCallback:
    """
    A verify callback that records OpenSSL's verdict in C{verdict} and
    accepts any chain.
    """

    def verify(connection: SSL.Connection, cert: crypto.X509, errno: int, depth: int, ok: int) -> bool:
        verdict.record(ok)
        return True

    return verify
