# -*- test-case-name: tests.dialog.test_dialog -*-
"""
Dialogs (RFC 3261 section 12), and the requests a user agent builds outside
and inside them.

A L{Dialog} holds the state section 12 lists: the dialog ID (Call-ID, local
and remote tags), the local and remote sequence numbers, the local and
remote URIs, the remote target, the secure flag and the route set.  It is
created from the request and the 2xx that established it, on either side,
and builds the requests sent within it (section 12.2.1.1).

Rules
=====

  | state field   | UAC (section 12.1.2)                | UAS (section 12.1.1)                  |
  |---------------|-------------------------------------|---------------------------------------|
  | route set     | Record-Route of the 2xx, reversed   | Record-Route of the request, in order |
  | remote target | Contact of the 2xx                  | Contact of the request                |
  | local CSeq    | CSeq of the request                 | empty until the first request         |
  | remote CSeq   | empty                               | CSeq of the request                   |
  | local tag     | From tag of the request             | To tag of the 2xx                     |
  | remote tag    | To tag of the 2xx                   | From tag of the request               |
  | secure        | request over TLS with a sips: Request-URI                                   |

Requests within the dialog (section 12.2.1.1):

  | route set                 | Request-URI                  | Route headers                        |
  |---------------------------|------------------------------|--------------------------------------|
  | empty                     | remote target                | none                                 |
  | first URI has C{lr}       | remote target                | the route set, in order              |
  | first URI lacks C{lr}     | first route (parameters not  | the rest of the route set, then the  |
  | (strict router, RFC 2543) | allowed in a Request-URI cut)| remote target                        |

An ACK (of a 2xx) gets the CSeq number of the INVITE it acknowledges
(section 13.2.2.4); every other request takes the next local sequence number.
A CANCEL is never built here: it copies the request it cancels (section 9.1).

Decisions where the RFC leaves room:

  - The first local sequence number of a UAS dialog is random below 2**31
    (section 8.1.1.5), from an injectable C{random.Random}.
  - A dialog made from a 101-199 response is I{early} (section 12.1);
    L{Dialog.confirm} turns it into a confirmed one when the 2xx comes: at
    the UAC the 2xx's Record-Route and Contact replace the route set and
    remote target (section 13.2.2.4), at the UAS our 2xx's Contact becomes
    the local contact.
  - A request inside the dialog with a lower CSeq than the last one is
    refused by L{Dialog.receive_request} (the UAS answers 500, section
    12.2.2); a target-refresh request (re-INVITE, UPDATE) with a Contact
    updates the remote target.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from sipstack.errors import LocalProtocolError
from sipstack.message.address import NameAddress, parse_name_address
from sipstack.message.headers import Headers
from sipstack.message.message import Request, Response
from sipstack.message.uri import SIPURI, URI, parse_uri

__all__ = ["DialogId", "Dialog", "build_request", "new_call_id"]

#: Methods whose Contact refreshes the remote target (RFC 3261 section
#: 12.2; RFC 3311; RFC 6665).
TARGET_REFRESH = frozenset({"INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY", "REFER"})

#: URI parameters a Request-URI may not carry (RFC 3261 section 19.1.1, table 1).
_NOT_IN_REQUEST_URI = ("method",)


def new_call_id() -> str:
    """A fresh Call-ID: 128 random bits (RFC 3261 section 8.1.1.4)."""
    return secrets.token_hex(16)


def _address(value: NameAddress | str) -> NameAddress:
    return value if isinstance(value, NameAddress) else parse_name_address(value)


def build_request(
    method: str,
    uri: URI | str,
    *,
    from_: NameAddress | str,
    to: NameAddress | str,
    call_id: str | None = None,
    cseq: int = 1,
    contact: NameAddress | str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
    content_type: str | None = None,
) -> Request:
    """
    A request outside any dialog, built as RFC 3261 section 8.1.1 says: To,
    From (with a fresh tag when it has none), Call-ID (fresh unless given),
    CSeq, Max-Forwards 70, the Contact if given, the extra C{headers}, and a
    Content-Length.  There is no Via: the stack adds one with a new branch.

    @raise sipstack.errors.InvalidValue: a URI or address does not parse.
    """
    request_uri = uri if not isinstance(uri, str) else parse_uri(uri)
    sender = _address(from_)
    if sender.tag is None:
        sender = sender.with_param("tag", secrets.token_hex(8))
    fields = [
        ("Max-Forwards", "70"),
        ("From", str(sender)),
        ("To", str(_address(to))),
        ("Call-ID", call_id if call_id is not None else new_call_id()),
        ("CSeq", f"{cseq} {method}"),
    ]
    if contact is not None:
        fields.append(("Contact", str(_address(contact))))
    fields.extend(headers)
    request = Request(method=method, uri=request_uri, headers=Headers(fields))
    return request.with_body(body, content_type)


@dataclass(frozen=True, slots=True)
class DialogId:
    """
    What identifies a dialog at one end (RFC 3261 section 12).

    @ivar call_id: the Call-ID.
    @ivar local_tag: our tag (From of our requests, To of theirs).
    @ivar remote_tag: the peer's tag.
    """

    call_id: str
    local_tag: str
    remote_tag: str

    @classmethod
    def of_incoming(cls, request: Request) -> DialogId | None:
        """
        The ID of the dialog a received request belongs to: its To tag is
        ours (RFC 3261 section 12.2.2); L{None} without a To tag.
        """
        local = request.to.tag
        if local is None:
            return None
        # A peer without a From tag (RFC 2543) has the null tag (section 12.1.1).
        return cls(request.call_id, local, request.from_.tag or "")


class Dialog:
    """
    One dialog's state (RFC 3261 section 12), as seen from one end.

    Create it with L{from_uac} or L{from_uas}; the only state that changes
    afterwards is the sequence numbers and the remote target.

    @ivar id: the dialog ID.
    @ivar local_uri: our address (From of our requests), without tag.
    @ivar remote_uri: the peer's address (To of our requests), without tag.
    @ivar remote_target: where requests within the dialog go: the peer's
        Contact URI.
    @ivar route_set: the route set, in the order our requests visit it.
    @ivar local_cseq: the CSeq number of the last request we sent in the
        dialog, or L{None} before the first (UAS).
    @ivar remote_cseq: the CSeq number of the last request the peer sent in
        it, or L{None} before the first (UAC).
    @ivar secure: whether the dialog is secure (sips: over TLS), so that its
        requests must use TLS on every hop.
    @ivar local_contact: our Contact, added to target-refresh requests.
    @ivar invite_cseq: the CSeq number of the last INVITE (the ACK of its
        2xx repeats it, section 13.2.2.4), or L{None}.
    @ivar early: whether the dialog is early (made from a 101-199 response,
        section 12.1) rather than confirmed.
    @ivar uac: whether we are its UAC (we sent the request that made it).
    """

    def __init__(
        self,
        *,
        id: DialogId,
        local_uri: NameAddress,
        remote_uri: NameAddress,
        remote_target: URI,
        route_set: tuple[NameAddress, ...],
        local_cseq: int | None,
        remote_cseq: int | None,
        secure: bool,
        local_contact: NameAddress | None = None,
        invite_cseq: int | None = None,
        rng: random.Random | None = None,
        early: bool = False,
        uac: bool = True,
    ) -> None:
        self.id = id
        self.local_uri = local_uri
        self.remote_uri = remote_uri
        self.remote_target = remote_target
        self.route_set = route_set
        self.local_cseq = local_cseq
        self.remote_cseq = remote_cseq
        self.secure = secure
        self.local_contact = local_contact
        self.invite_cseq = invite_cseq
        self.early = early
        self.uac = uac
        self._rng = rng

    def __repr__(self) -> str:
        return f"<Dialog {self.id.call_id} local={self.id.local_tag} remote={self.id.remote_tag}>"

    @classmethod
    def from_uac(cls, request: Request, response: Response, *, over_tls: bool = False) -> Dialog:
        """
        The dialog a 2xx to our request creates at the UAC (RFC 3261 section
        12.1.2).

        @param request: the request as sent (INVITE, SUBSCRIBE...).
        @param response: the 2xx (or 1xx with a To tag) that created it.
        @param over_tls: whether the request went over TLS.
        A response without a To tag (an RFC 2543 peer) has the null tag
        (section 12.1.2: "the tag is considered to have a value of null").

        @raise LocalProtocolError: our request has no From tag.
        @raise sipstack.errors.RemoteProtocolError: a header it reads is
            malformed.
        """
        local_tag, remote_tag = request.from_.tag, response.to.tag or ""
        if local_tag is None:
            raise LocalProtocolError("a dialog needs our From tag (RFC 3261 section 8.1.1.3)")
        routes = tuple(reversed(response.record_routes))
        return cls(
            id=DialogId(request.call_id, local_tag, remote_tag),
            local_uri=request.from_.without_param("tag"),
            remote_uri=request.to.without_param("tag"),
            remote_target=_contact_uri(response, fallback=request.uri),
            route_set=routes,
            local_cseq=request.cseq.number,
            remote_cseq=None,
            secure=over_tls and _is_sips(request.uri),
            local_contact=_first_contact(request),
            invite_cseq=request.cseq.number if request.method == "INVITE" else None,
            early=response.status < 200,
        )

    @classmethod
    def from_uas(
        cls, request: Request, response: Response, *, over_tls: bool = False, rng: random.Random | None = None
    ) -> Dialog:
        """
        The dialog our 2xx to a request creates at the UAS (RFC 3261 section
        12.1.1).

        @param request: the request as received.
        @param response: our 2xx (or 1xx) carrying our To tag.
        @param over_tls: whether the request arrived over TLS.
        @param rng: picks the first local sequence number; L{None} for the
            system's randomness.
        A request without a From tag (an RFC 2543 peer) has the null tag
        (section 12.1.1), and one without a Contact is reached at its From
        URI, as RFC 2543 did.

        @raise LocalProtocolError: our response has no To tag.
        @raise sipstack.errors.RemoteProtocolError: a header it reads is
            malformed.
        """
        local_tag, remote_tag = response.to.tag, request.from_.tag or ""
        if local_tag is None:
            raise LocalProtocolError("a dialog needs our To tag (RFC 3261 section 8.2.6.2)")
        return cls(
            id=DialogId(request.call_id, local_tag, remote_tag),
            local_uri=request.to.without_param("tag"),
            remote_uri=request.from_.without_param("tag"),
            remote_target=_contact_uri(request, fallback=request.from_.uri),
            route_set=tuple(request.record_routes),
            local_cseq=None,
            remote_cseq=request.cseq.number,
            secure=over_tls and _is_sips(request.uri),
            local_contact=_first_contact(response),
            rng=rng,
            early=response.status < 200,
            uac=False,
        )

    def confirm(self, response: Response) -> None:
        """
        The 2xx that confirms this early dialog (RFC 3261 section 12.1).

        At the UAC, C{response} is the peer's 2xx: the route set is
        recomputed from its Record-Route and the remote target taken from its
        Contact (section 13.2.2.4).  At the UAS it is our own 2xx, whose
        Contact becomes the local contact.  A confirmed dialog is left as it
        is.
        """
        if not self.early:
            return
        self.early = False
        if self.uac:
            self.route_set = tuple(reversed(response.record_routes))
            self.remote_target = _contact_uri(response, fallback=self.remote_target)
        else:
            self.local_contact = _first_contact(response) or self.local_contact

    # Requests within the dialog

    def _next_cseq(self) -> int:
        if self.local_cseq is None:
            rng = self._rng
            start = rng.randrange(1, 2**31) if rng is not None else secrets.randbelow(2**31 - 1) + 1
            self.local_cseq = start
        else:
            self.local_cseq += 1
        return self.local_cseq

    def create_request(
        self,
        method: str,
        *,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        content_type: str | None = None,
    ) -> Request:
        """
        A request within the dialog (RFC 3261 section 12.2.1.1): BYE,
        re-INVITE, INFO, the ACK of a 2xx...

        There is no Via: the stack adds one with a new branch (an ACK of a
        2xx is a transaction of its own, section 17.1.1.3).

        @raise LocalProtocolError: an ACK before any INVITE, or a CANCEL
            (built from the request it cancels, section 9.1).
        """
        if method == "CANCEL":
            raise LocalProtocolError("a CANCEL copies the request it cancels (RFC 3261 section 9.1)")
        if method == "ACK":
            if self.invite_cseq is None:
                raise LocalProtocolError("no INVITE to acknowledge in this dialog")
            number = self.invite_cseq
        else:
            number = self._next_cseq()
            if method == "INVITE":
                self.invite_cseq = number
        uri, routes = self._request_uri_and_routes()
        fields = [
            *(("Route", str(route)) for route in routes),
            ("Max-Forwards", "70"),
            ("From", str(self.local_uri.with_param("tag", self.id.local_tag))),
            ("To", str(self.remote_uri.with_param("tag", self.id.remote_tag))),
            ("Call-ID", self.id.call_id),
            ("CSeq", f"{number} {method}"),
        ]
        if method in TARGET_REFRESH and self.local_contact is not None:
            fields.append(("Contact", str(self.local_contact)))
        fields.extend(headers)
        request = Request(method=method, uri=uri, headers=Headers(fields))
        return request.with_body(body, content_type)

    def _request_uri_and_routes(self) -> tuple[URI, list[NameAddress]]:
        routes = self.route_set
        if not routes:
            return self.remote_target, []
        first = routes[0].uri
        if isinstance(first, SIPURI) and first.lr:
            return self.remote_target, list(routes)
        # A strict router (RFC 2543): it takes the Request-URI as the next
        # hop, so the remote target travels as the last Route.
        uri = first
        if isinstance(uri, SIPURI):
            for name in _NOT_IN_REQUEST_URI:
                uri = uri.without_param(name)
            uri = uri.replace(headers=())
        return uri, [*routes[1:], NameAddress(self.remote_target)]

    # Requests and responses from the peer

    def receive_request(self, request: Request) -> bool:
        """
        Account for a request the peer sent within the dialog (RFC 3261
        section 12.2.2): check and record its CSeq, and refresh the remote
        target from a target-refresh request's Contact.

        @return: C{False} when its CSeq is lower than the last one, and the
            UAS must answer 500 (Server Internal Error); an ACK or CANCEL is
            always accepted and changes nothing.
        """
        if request.method in ("ACK", "CANCEL"):
            return True
        number = request.cseq.number
        if self.remote_cseq is not None and number < self.remote_cseq:
            return False
        self.remote_cseq = number
        if request.method in TARGET_REFRESH:
            self.remote_target = _contact_uri(request, fallback=self.remote_target)
        return True

    def receive_response(self, response: Response, method: str) -> None:
        """
        Refresh the remote target from the Contact of a 2xx to a
        target-refresh request we sent within the dialog (RFC 3261 section
        12.2.1.2).
        """
        if method in TARGET_REFRESH and 200 <= response.status < 300:
            self.remote_target = _contact_uri(response, fallback=self.remote_target)


def _is_sips(uri: URI) -> bool:
    return isinstance(uri, SIPURI) and uri.secure


def _first_contact(message: Request | Response) -> NameAddress | None:
    contacts = message.contacts
    if isinstance(contacts, list) and contacts:
        return contacts[0]
    return None


def _contact_uri(message: Request | Response, fallback: URI) -> URI:
    contact = _first_contact(message)
    return contact.uri if contact is not None else fallback
