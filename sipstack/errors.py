# -*- test-case-name: tests.test_errors -*-
"""
The exceptions sipstack raises.

The tree follows h11's split between faults of the local application (a bug:
L{LocalProtocolError}) and faults of the remote peer (L{RemoteProtocolError}),
and, like h11, every protocol error carries the status code that the stack
should answer with.  A remote fault also says what the transport must do with
the offending bytes (L{FaultAction}): answer, silently drop, or close the
stream because it can no longer be framed.

Only the standard library is imported here: this is a leaf module of the
sans-IO core.
"""

from __future__ import annotations

import enum

__all__ = [
    "SIPError",
    "ProtocolError",
    "LocalProtocolError",
    "RemoteProtocolError",
    "FaultAction",
    "MessageTooLarge",
    "BadExtension",
    "UnsupportedURIScheme",
    "TooManyHops",
    "UnsupportedMediaType",
    "VersionNotSupported",
    "TransactionError",
    "TimedOut",
    "TransportFailed",
    "RoutingError",
    "LookupFailed",
    "StoreError",
    "InvalidValue",
]


class SIPError(Exception):
    """
    Base class of every exception sipstack raises on purpose.
    """


class ProtocolError(SIPError):
    """
    A violation of the SIP protocol, by us or by the peer.

    @ivar reason: a short human-readable text naming the fault; it is used as
        the reason phrase of the error response, so it never contains CR or LF.
    @ivar status: the status code to answer with (RFC 3261 section 21).
    """

    default_status = 400

    def __init__(self, reason: str, status: int | None = None) -> None:
        reason = " ".join(reason.split())
        super().__init__(reason)
        self.reason = reason
        self.status = self.default_status if status is None else status

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.reason!r}, status={self.status})"


class LocalProtocolError(ProtocolError):
    """
    The application asked for something SIP does not allow (a bug in the caller).

    Never caught broadly by the stack: it should surface in tests.
    """

    default_status = 500


class FaultAction(enum.Enum):
    """
    What a transport does with bytes that produced a L{RemoteProtocolError}.
    """

    #: Answer with the error's status when the message is a request from which
    #: a response can be built (RFC 3261 section 8.2.6); otherwise drop it.
    RESPOND = "respond"
    #: Discard the message silently (for example a malformed response, which
    #: RFC 3261 section 18.1.2 says to drop, or a datagram with no usable Via).
    DROP = "drop"
    #: The byte stream cannot be framed any more: close the connection, after
    #: sending the error response if one can be built.
    CLOSE = "close"


class RemoteProtocolError(ProtocolError):
    """
    The peer sent something that breaks the protocol.

    @ivar action: what the transport must do (L{FaultAction}).
    @ivar request_fields: the header fields (name, value) of the offending
        request, when it was a request (not an ACK) whose header block could
        be split into fields, so that L{sipstack.message.build_error_response}
        can answer it (RFC 3261 section 8.2.6 copies Via, From, To, Call-ID
        and CSeq); otherwise L{None}.
    """

    def __init__(
        self,
        reason: str,
        status: int | None = None,
        *,
        action: FaultAction = FaultAction.RESPOND,
        request_fields: tuple[tuple[str, str], ...] | None = None,
    ) -> None:
        super().__init__(reason, status)
        self.action = action
        self.request_fields = request_fields


class MessageTooLarge(RemoteProtocolError):
    """A message exceeds a configured size limit (RFC 3261 section 21.5.14)."""

    default_status = 513


class BadExtension(RemoteProtocolError):
    """A required extension is not supported (RFC 3261 section 21.4.15)."""

    default_status = 420


class UnsupportedURIScheme(RemoteProtocolError):
    """The Request-URI scheme is not supported (RFC 3261 section 21.4.16)."""

    default_status = 416


class TooManyHops(RemoteProtocolError):
    """Max-Forwards reached zero (RFC 3261 section 21.4.20)."""

    default_status = 483


class UnsupportedMediaType(RemoteProtocolError):
    """The body's type or encoding is not supported (RFC 3261 section 21.4.13)."""

    default_status = 415


class VersionNotSupported(RemoteProtocolError):
    """The SIP version is not 2.0 (RFC 3261 section 21.5.6)."""

    default_status = 505


class TransactionError(SIPError):
    """A transaction ended without a final response from the peer."""


class TimedOut(TransactionError):
    """No final response came before Timer B or F fired (RFC 3261 section 17.1)."""


class TransportFailed(TransactionError):
    """
    A message could not be sent: no connection could be made, or it broke
    (RFC 3261 section 8.1.3.1 turns this into a 503 for the application).
    """


class RoutingError(SIPError):
    """No usable destination could be found for a request."""


class LookupFailed(RoutingError):
    """
    A DNS lookup failed (server failure, refusal, timeout): unlike NXDOMAIN or
    an empty answer, which are results, this says nothing about what exists,
    so RFC 3263 planning must not act as if the records were absent.
    """


class StoreError(SIPError):
    """A location store failed to read or write bindings."""


class InvalidValue(SIPError, ValueError):
    """
    A URI or header value does not match its grammar.

    Raised by the value parsers of L{sipstack.message}; the message layer turns
    it into a L{RemoteProtocolError} that names the header.
    """
