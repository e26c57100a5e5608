# -*- test-case-name: tests.transaction.test_states -*-
"""
Transaction states, and the keys that tell which transaction a message
belongs to (RFC 3261 sections 17.1.3 and 17.2.3).

The key functions are pure: the transaction manager builds a key for every
message it receives and looks it up in a dictionary.

Matching rules
==============

  | side   | message  | RFC 3261 branch (magic cookie)        | no cookie (RFC 2543 fallback)            |
  |--------|----------|---------------------------------------|------------------------------------------|
  | server | request  | branch, sent-by, method; ACK counts   | Request-URI, From tag, To tag (not for   |
  |        |          | as INVITE, CANCEL keeps its own       | INVITE/ACK), Call-ID, CSeq number,       |
  |        |          | method (section 17.2.3)               | method (ACK as INVITE), top Via          |
  | client | response | branch, CSeq method (section 17.1.3)  | (never: our requests always carry one)   |

Decisions where the RFC leaves room:

  - The magic cookie C{z9hG4bK} is compared case-sensitively, and so is the
    branch itself (section 8.1.1.7 spells the cookie exactly; a branch is an
    opaque token).  A branch that is the bare cookie is not unique, so it
    falls back to RFC 2543 matching.
  - sent-by compares its host case-insensitively and its port as written: an
    absent port is not the same as 5060, since a retransmission repeats the
    Via exactly.
  - In an RFC 2543 key the To tag is left out for INVITE and ACK: the ACK
    carries the tag of our response while the INVITE usually has none.
    Whoever matches an ACK that way compares its To tag with the one of the
    transaction's last response (L{sipstack.transaction.server.
    InviteServerTransaction.last_response}), as section 17.2.3 asks.
  - In an RFC 2543 key the Request-URI is compared as written, and the top
    Via by the rules of section 20.42 (sent-protocol, sent-by, and the same
    parameters in any order, names case-insensitive).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

from sipstack.errors import LocalProtocolError
from sipstack.message.message import Request, Response
from sipstack.message.via import Via

__all__ = [
    "BRANCH_COOKIE",
    "TransactionState",
    "TransactionKey",
    "server_key",
    "cancel_target_key",
    "client_key",
    "client_key_for_response",
]

#: The magic cookie that marks an RFC 3261 branch (section 8.1.1.7).  The
#: same value as L{sipstack.routing.via.BRANCH_COOKIE}, repeated here because
#: the transaction layer may not import its routing sibling.
BRANCH_COOKIE = "z9hG4bK"


class TransactionState(enum.Enum):
    """
    The states of the four transaction state machines of RFC 3261 section 17,
    with the C{Accepted} state RFC 6026 adds to both INVITE machines.

    Which machine uses which state is written in each machine's docstring.
    """

    #: INVITE client: the INVITE was sent, no response yet.
    CALLING = "Calling"
    #: Non-INVITE client: the request was sent, no response yet; non-INVITE
    #: server: the request was passed to the TU, no response yet.
    TRYING = "Trying"
    #: A provisional response was received (client) or sent (server).
    PROCEEDING = "Proceeding"
    #: A final response (300-699 for INVITE, any for non-INVITE) was received
    #: or sent; retransmissions are absorbed or answered.
    COMPLETED = "Completed"
    #: INVITE server: the ACK for a 300-699 response arrived.
    CONFIRMED = "Confirmed"
    #: INVITE client and server: a 2xx response was received or sent (RFC 6026).
    ACCEPTED = "Accepted"
    #: The transaction is over: nothing is sent and no callback fires any more.
    TERMINATED = "Terminated"


@dataclass(frozen=True, slots=True, kw_only=True)
class TransactionKey:
    """
    What identifies a transaction, as a hashable value.

    An RFC 3261 key has a C{branch} (and on the server side a C{sent_by});
    an RFC 2543 key, built for requests whose branch lacks the magic cookie,
    has C{branch=None} and the fields of section 17.2.3 instead.

    @ivar method: the method of the transaction: the request's, or C{"INVITE"}
        for an ACK (which belongs to the INVITE transaction it acknowledges);
        on the client side the CSeq method of the response.
    @ivar branch: the top Via branch of an RFC 3261 key, else L{None}.
    @ivar sent_by: the top Via sent-by as (lower-cased host, port or L{None})
        in an RFC 3261 server key, else L{None}.
    @ivar request_uri: the Request-URI as written (RFC 2543 keys only).
    @ivar from_tag: the From tag (RFC 2543 keys only; L{None} when absent).
    @ivar to_tag: the To tag, except for INVITE and ACK (RFC 2543 keys only).
    @ivar call_id: the Call-ID (RFC 2543 keys only).
    @ivar cseq_number: the CSeq sequence number (RFC 2543 keys only).
    @ivar top_via: the top Via normalised for comparison (RFC 2543 keys only).
    """

    method: str
    branch: str | None = None
    sent_by: tuple[str, int | None] | None = None
    request_uri: str | None = None
    from_tag: str | None = None
    to_tag: str | None = None
    call_id: str | None = None
    cseq_number: int | None = None
    top_via: Via | None = None

    @property
    def rfc3261(self) -> bool:
        """Whether this key comes from an RFC 3261 branch (not the RFC 2543 fallback)."""
        return self.branch is not None


def _is_rfc3261(branch: str | None) -> bool:
    return branch is not None and branch.startswith(BRANCH_COOKIE) and len(branch) > len(BRANCH_COOKIE)


def _via_identity(via: Via) -> Via:
    """C{via} with what section 20.42 ignores taken out: host case, parameter order and name case."""
    params = tuple(sorted((name.lower(), value) for name, value in via.params))
    return via.replace(host=via.host.lower(), params=params)


def server_key(request: Request) -> TransactionKey:
    """
    The key of the server transaction C{request} belongs to (RFC 3261
    section 17.2.3).

    An INVITE and the ACK of a non-2xx response to it get the same key; the
    ACK of a 2xx carries a new branch, so its key matches no INVITE
    transaction and it goes to the TU (RFC 3261 section 17.2.3).  A CANCEL gets
    its own key; L{cancel_target_key} finds the transaction it cancels.

    @raise sipstack.errors.RemoteProtocolError: a header the key needs is
        missing or malformed.
    """
    via = request.top_via
    method = "INVITE" if request.method == "ACK" else request.method
    branch = via.branch
    if _is_rfc3261(branch):
        return TransactionKey(method=method, branch=branch, sent_by=(via.host.lower(), via.port))
    return TransactionKey(
        method=method,
        request_uri=str(request.uri),
        from_tag=request.from_.tag,
        to_tag=None if method == "INVITE" else request.to.tag,
        call_id=request.call_id,
        cseq_number=request.cseq.number,
        top_via=_via_identity(via),
    )


def cancel_target_key(cancel: Request) -> TransactionKey:
    """
    The key of the server transaction a CANCEL cancels: the CANCEL's own key
    with the method of the cancelled request, INVITE (RFC 3261 section 9.2).

    @raise LocalProtocolError: C{cancel} is not a CANCEL.
    @raise sipstack.errors.RemoteProtocolError: as L{server_key}.
    """
    if cancel.method != "CANCEL":
        raise LocalProtocolError(f"a {cancel.method} cancels nothing")
    return replace(server_key(cancel), method="INVITE", to_tag=None)


def client_key(request: Request) -> TransactionKey:
    """
    The key of the client transaction that sends C{request}: its top Via
    branch and its method (RFC 3261 section 17.1.3).

    @raise LocalProtocolError: the request has no RFC 3261 branch; a client
        transaction must create one (section 8.1.1.7).
    @raise sipstack.errors.RemoteProtocolError: the top Via is missing or
        malformed.
    """
    branch = request.top_via.branch
    if not _is_rfc3261(branch):
        raise LocalProtocolError(f"a client transaction needs an RFC 3261 branch, not {branch!r}")
    return TransactionKey(method=request.method, branch=branch)


def client_key_for_response(response: Response) -> TransactionKey | None:
    """
    The key of the client transaction C{response} answers: its top Via
    branch and CSeq method (RFC 3261 section 17.1.3), or L{None} when the top
    Via has no RFC 3261 branch, so no client transaction of ours can match.

    @raise sipstack.errors.RemoteProtocolError: the top Via or the CSeq is
        missing or malformed.
    """
    branch = response.top_via.branch
    if not _is_rfc3261(branch):
        return None
    return TransactionKey(method=response.cseq.method, branch=branch)
