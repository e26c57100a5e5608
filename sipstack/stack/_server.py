# -*- test-case-name: tests.test_stack -*-
"""
The server side of L{SIPStack<sipstack.stack.SIPStack>}: each new request
becomes an L{IncomingRequest}, answered through its server transaction by
the application's handler (RFC 3261 section 8.2), with 100 Trying for a
slow INVITE (section 8.2.6.1), 487 when a CANCEL ends it (section 9.2), and
a 2xx to an INVITE retransmitted until its ACK (section 13.3.1.4), after
which, if no ACK came, the dialog is ended with a BYE.

The dialogs of the INVITEs answered here go into the stack's table: an early
one with the first 101-199 response, confirmed by the 2xx, ended by a
300-699 final response (section 12.1.1).

In proxy mode (C{SIPStack(proxy=True)}) the responses are a proxy's, most
of them forwarded from downstream: they go out as given, with no dialog,
no 2xx retransmission and no wait for the ACK (the INVITE server
transaction just moves to Accepted, RFC 6026 section 7.1), and every 2xx to
an INVITE goes out, also after the first one (forks, and retransmissions a
proxy forwards statelessly, RFC 6026 section 8.3; once the transaction has
ended they go back on the request's flow, or by the top Via).  A CANCEL
fires C{cancelled} without a 487: the final response comes from
downstream.  100 Trying goes out at once for an INVITE the handler answers
later (the proxy is about to forward it, which takes longer than 200 ms).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from sipstack.dialog import Dialog
from sipstack.errors import LocalProtocolError
from sipstack.hop import HopSecurity, TransportKind
from sipstack.message import Request, Response, build_response, new_tag
from sipstack.message.envelope import Received
from sipstack.stack._transport import ResponseTransport
from sipstack.transaction import InviteServerTransaction, ServerTransaction, TransactionState

if TYPE_CHECKING:
    from sipstack.stack._stack import SIPStack

__all__ = ["TRYING_DELAY", "IncomingRequest", "RequestHandler", "StrayHandler"]

#: How long an INVITE handler may take before the stack sends 100 Trying
#: (RFC 3261 section 17.2.1: "if the TU will not generate a provisional
#: response within 200 ms").
TRYING_DELAY = 0.2


class IncomingRequest:
    """
    A request the stack received, and the way to answer it (through its
    server transaction, RFC 3261 section 17.2).

    @ivar request: the request (its top Via stamped with C{received}/C{rport}).
    @ivar received: the envelope it came in: flow and hop security.
    @ivar transaction: its server transaction.
    @ivar to_tag: the To tag every response to it carries, so that a 180
        and the 200 that follows it belong to one dialog (section 12.1.1).
    @ivar cancelled: fires (with L{None}) when a CANCEL ended the request
        with 487 (section 9.2), or a BYE ended the dialog of an INVITE still
        pending (section 15.1.2); never fires otherwise.  In proxy mode it
        fires when a CANCEL matched an INVITE without a final response, and
        no 487 is sent: the proxy cancels its branches (section 16.10).
    @ivar acked: for an INVITE answered with a 2xx, fires with its ACK, or
        with L{None} if none came within 64*T1 (section 13.3.1.4), in which
        case the stack also ends the dialog with a BYE.
    @ivar dialog: the dialog the request belongs to: for a request with a To
        tag, the known dialog it matched (L{None} when the stack does not
        know it, see C{check_dialogs}); for an initial INVITE, the early
        dialog its first 101-199 response created, then the confirmed one of
        its 2xx.
    """

    _log = Logger()

    def __init__(
        self, stack: SIPStack, received: Received, transaction: ServerTransaction, transport: ResponseTransport
    ):
        assert isinstance(received.message, Request)
        self.stack = stack
        self.request: Request = received.message
        self.received = received
        self.transaction = transaction
        self.to_tag = self.request.to.tag or new_tag()
        self._cancelled: Deferred[None] | None = None
        self._acked: Deferred[Request | None] | None = None
        self.dialog: Dialog | None = None
        self.final: Response | None = None
        self._transport = transport
        self._calls: dict[str, IDelayedCall] = {}
        self._interval = stack.config.timers.t1

    @property
    def cancelled(self) -> Deferred[None]:
        """See the class description (made on first use: most requests never need it)."""
        if self._cancelled is None:
            self._cancelled = Deferred()
        return self._cancelled

    @property
    def acked(self) -> Deferred[Request | None]:
        """See the class description (made on first use)."""
        if self._acked is None:
            self._acked = Deferred()
        return self._acked

    @property
    def _was_cancelled(self) -> bool:
        return self._cancelled is not None and self._cancelled.called

    def _release(self) -> None:
        """
        The server transaction ended: C{cancelled} can no longer fire (a
        CANCEL or a BYE only ends a request in Proceeding), so let go of the
        Deferred given out.  Whoever holds it keeps a Deferred that never
        fires, as documented; but its callbacks (a proxy's context, which
        holds this request) no longer make a reference cycle with it, which
        only the garbage collector could free.
        """
        if self._cancelled is not None and not self._cancelled.called:
            self._cancelled = None

    @property
    def security(self) -> HopSecurity:
        """How the hop the request came over was protected."""
        return self.received.security

    def response(
        self,
        status: int,
        reason: str | None = None,
        *,
        headers: tuple[tuple[str, str], ...] = (),
        body: bytes = b"",
        content_type: str | None = None,
    ) -> Response:
        """
        A response to the request (RFC 3261 section 8.2.6) with this
        request's To tag; for an INVITE's 101-299 responses, our Contact
        when C{headers} has none, and the request's Record-Route (section
        12.1.1).
        """
        extra = list(headers)
        if self.request.method == "INVITE" and 100 < status < 300:
            if not any(name.lower() in ("contact", "m") for name, _ in extra):
                contact = self.stack.contact(self.received.flow.transport, default=None)
                if contact is not None:
                    extra.append(("Contact", str(contact)))
            # Section 12.1.1: a response that makes a dialog carries the
            # request's Record-Route, so that the caller learns the route set.
            extra.extend(("Record-Route", value) for value in self.request.headers.get_all("Record-Route"))
        response = build_response(self.request, status, reason, to_tag=self.to_tag, headers=extra)
        return response.with_body(body, content_type) if body or content_type else response

    def respond(self, response: Response | int) -> None:
        """
        Send a response through the server transaction: provisional ones
        any number of times, then one final one.

        A final response after the request was cancelled is dropped (the
        487 went out already).  In proxy mode, see the module docstring.

        @raise LocalProtocolError: a second final response, or one the
            transaction's state does not allow.
        """
        if isinstance(response, int):
            response = self.response(response)
        invite = self.request.method == "INVITE"
        if self.final is not None:
            if self.stack.proxy and invite and self.final.status < 300 and 200 <= response.status < 300:
                self._another_2xx(response)
                return
            if self._was_cancelled:
                return
            raise LocalProtocolError(f"{self.request.method} was answered already with {self.final.status}")
        self.transaction.respond(response)
        if self.stack.proxy:
            if response.status >= 200:
                self.final = response
                self._cancel_call("trying")
            return
        if response.status < 200:
            if invite and response.status > 100:
                self._early_dialog(response)
            return
        self.final = response
        self._cancel_call("trying")
        self._not_pending()
        if invite and response.status < 300:
            self._accepted(response)
        elif invite and self.dialog is not None and self.dialog.early:
            # The INVITE that created it failed (section 12.1.1).
            self.stack.end_dialog(self.dialog)

    def _another_2xx(self, response: Response) -> None:
        """Proxy mode: a further 2xx to the INVITE, through the transaction while it is Accepted, else on the flow."""
        if self.transaction.state is TransactionState.ACCEPTED:
            self.transaction.respond(response)
            return
        self.stack.send_response(response, flow=self.received.flow).addErrback(
            lambda failure: self._log.info("Could not forward a 2xx: {error}", error=failure.getErrorMessage())
        )

    def _early_dialog(self, response: Response) -> None:
        """The first 101-199 response to an initial INVITE creates an early dialog (RFC 3261 section 12.1.1)."""
        if self.dialog is not None or self.request.to.tag is not None:
            return
        self.dialog = Dialog.from_uas(self.request, response, over_tls=self._over_tls)
        self.stack.add_dialog(self.dialog)
        self.stack._pending_invites[self.dialog.id] = self

    def _not_pending(self) -> None:
        """The INVITE has its final response: a BYE in its dialog no longer ends it."""
        dialog = self.dialog
        if dialog is not None and self.stack._pending_invites.get(dialog.id) is self:
            del self.stack._pending_invites[dialog.id]

    @property
    def _over_tls(self) -> bool:
        return self.received.flow.transport is TransportKind.TLS

    def _serve(self, handler: RequestHandler | None, *, closing: bool) -> None:
        """
        Answer the request: 503 while the stack closes, 501 without a
        handler, else what the handler returns; 100 Trying goes out for an
        INVITE whose handler answers later (RFC 3261 section 8.2.6.1).
        """
        if closing:
            self.respond(self.response(503))
            return
        if handler is None:
            self.respond(self.response(501))
            return
        try:
            result = handler(self)
        except Exception:
            self._failed(Failure())  # type: ignore[no-untyped-call]  # Failure() is unannotated in Twisted 26.10
            return
        if isinstance(result, Deferred):
            if self.request.method == "INVITE" and self.final is None:
                if self.stack.proxy:
                    if not result.called:
                        self._send_trying()
                else:
                    self._calls["trying"] = self.stack.reactor.callLater(TRYING_DELAY, self._send_trying)
            result.addCallbacks(self._finish, self._failed)
        else:
            self._finish(result)

    def _accepted(self, response: Response) -> None:
        """Keep the 2xx alive until its ACK (RFC 3261 section 13.3.1.4)."""
        if self.dialog is None:
            self.dialog = Dialog.from_uas(self.request, response, over_tls=self._over_tls)
            self.stack.add_dialog(self.dialog)
        else:
            # An early dialog confirmed, or a re-INVITE within a known one.
            self.dialog.confirm(response)
        self.stack._awaiting_ack[(self.request.call_id, self.request.cseq.number, self.to_tag)] = self
        # Over every transport, reliable or not: a proxy further on may
        # forward it over UDP ("independent of whatever transport protocols
        # are used to send the response", section 13.3.1.4).
        reactor = self.stack.reactor
        self._calls["2xx"] = reactor.callLater(self._interval, self._retransmit)
        self._calls["ack"] = reactor.callLater(64 * self.stack.config.timers.t1, self._ack_timeout)

    def _retransmit(self) -> None:
        self._interval = min(self._interval * 2, self.stack.config.timers.t2)
        self._calls["2xx"] = self.stack.reactor.callLater(self._interval, self._retransmit)
        if self.received.flow.transport.reliable:
            # A stream has no datagram to repeat: pass the 2xx to it again.
            assert self.final is not None
            self._transport.send(self.final)
        else:
            self._transport.resend()

    def _ack_timeout(self) -> None:
        del self._calls["ack"]
        self._log.info("No ACK for the 2xx to {call_id}", call_id=self.request.call_id)
        self._acknowledged(None)
        # "the session SHOULD be terminated ... with a BYE" (section 13.3.1.4).
        dialog = self.dialog
        if dialog is not None and self.stack.dialogs.get(dialog.id) is dialog:
            self.stack._hang_up(dialog, "a 2xx never acknowledged")

    def _acknowledged(self, ack: Request | None) -> None:
        self.stack._awaiting_ack.pop((self.request.call_id, self.request.cseq.number, self.to_tag), None)
        self._cancel_call("2xx")
        self._cancel_call("ack")
        if not self.acked.called:
            self.acked.callback(ack)

    def _cancel_call(self, name: str) -> None:
        call = self._calls.pop(name, None)
        if call is not None and call.active():
            call.cancel()

    def _send_trying(self) -> None:
        self._calls.pop("trying", None)
        if isinstance(self.transaction, InviteServerTransaction):
            self.transaction.send_trying()

    def _cancel(self) -> None:
        """
        A CANCEL matched, or a BYE ended the dialog: 487 unless a final
        response went out (RFC 3261 sections 9.2 and 15.1.2).
        """
        if self.final is None and self.transaction.state is TransactionState.PROCEEDING:
            if self.stack.proxy:
                if not self.cancelled.called:
                    self.cancelled.callback(None)
                return
            self.respond(self.response(487))
            self.cancelled.callback(None)

    def _finish(self, result: Response | None) -> None:
        """What the handler returned: answer with it, unless already answered."""
        if self.transaction.terminated or (self.final is not None and result is None):
            return
        if result is None:
            self._log.error("The handler answered {method} with nothing", method=self.request.method)
            result = self.response(500)
        elif self.final is not None and self._was_cancelled:
            return
        self.respond(result)

    def _failed(self, failure: Failure) -> None:
        self._log.failure("The request handler failed on {method}", failure, method=self.request.method)
        if not self.transaction.terminated and self.final is None:
            self.respond(self.response(500))

    def _stop(self) -> None:
        for name in list(self._calls):
            self._cancel_call(name)


#: What answers requests: given the L{IncomingRequest}, returns the final
#: response, a Deferred of it, or L{None} once it answered through
#: L{IncomingRequest.respond}.
RequestHandler = Callable[[IncomingRequest], "Response | Deferred[Response | None] | None"]
#: What sees messages no transaction took: stray responses and ACKs of 2xx
#: responses that belong to no INVITE we answered (a proxy forwards them).
StrayHandler = Callable[[Received], None]
