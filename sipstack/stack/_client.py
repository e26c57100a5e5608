# -*- test-case-name: tests.test_stack -*-
"""
The client side of L{SIPStack<sipstack.stack.SIPStack>}: the TU of each
client transaction started by C{request()} (RFC 3261 section 8.1), which
turns timeouts and transport failures into 408 and 503 (section 8.1.3.1),
ACKs every 2xx to an INVITE outside the transaction and hangs up forked
ones (section 13.2.2.4, RFC 6026 section 8.4), and sends CANCEL once a
provisional response came (section 9.1).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from sipstack.dialog import Dialog
from sipstack.hop import Destination, FlowKey, HopSecurity, TransportKind
from sipstack.message import Request, Response, build_response
from sipstack.message.envelope import Sent
from sipstack.message.message import Message
from sipstack.stack._transport import StackTransport
from sipstack.transaction import ClientTransaction
from sipstack.transaction.manager import build_cancel

if TYPE_CHECKING:
    from sipstack.stack._stack import SIPStack

__all__ = ["RequestResult", "Synthesized", "ClientRequest", "request_id"]

#: Why a response was made up locally rather than received.
Synthesized = Literal["timeout", "transport"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestResult:
    """
    How a request sent with L{SIPStack.request} ended.

    @ivar request: the request as first sent (its top Via names our transport
        and sent-by).
    @ivar response: the final response: received, or synthesized (see
        C{synthesized}).
    @ivar provisional: the 1xx responses received before it, in order.
    @ivar synthesized: L{None} for a response received from the network;
        C{"timeout"} for the 408 made when Timer B or F fired; C{"transport"}
        for the 503 made when the transport failed (RFC 3261 section
        8.1.3.1).
    @ivar security: the security state of the hop the response came over (or
        the request went over, for a synthesized one); L{None} if nothing was
        ever sent.
    @ivar flow: the flow of that hop, or L{None}.
    @ivar dialog: for a 2xx to an INVITE, the dialog it created (RFC 3261
        section 12.1.2), already acknowledged; otherwise L{None}.
    """

    request: Request
    response: Response
    provisional: tuple[Response, ...] = ()
    synthesized: Synthesized | None = None
    security: HopSecurity | None = None
    flow: FlowKey | None = None
    dialog: Dialog | None = None

    @property
    def status(self) -> int:
        """The final status code."""
        return self.response.status


class ClientRequest:
    """
    The TU of one client transaction started by L{SIPStack.request}.
    """

    _log = Logger()

    def __init__(
        self,
        stack: SIPStack,
        request: Request,
        on_provisional: Callable[[Response], object] | None,
        auto_ack: bool,
    ) -> None:
        self.stack = stack
        self.request = request
        self.on_provisional = on_provisional
        self.auto_ack = auto_ack
        self.result: Deferred[RequestResult] = Deferred()
        self.provisional: list[Response] = []
        self.destination: Destination | None = None
        self.transport: StackTransport | None = None
        self.dialog: Dialog | None = None
        self.acks: dict[str, StackTransport] = {}
        self.cancel_waiters: list[Callable[[], None]] = []

    # Starting

    def start(self, destination: Destination, flow: FlowKey | None = None) -> None:
        self.destination = destination
        layer = self.stack._layer
        request = self.request

        def send(message: Message, previous: Sent | None) -> Deferred[Sent]:
            # No reference to self here: see StackTransport.
            assert isinstance(message, Request)
            sent_flow = flow if message is request else (previous.flow if previous is not None else None)
            return layer.send_request(message, destination, flow=sent_flow)

        self.transport = StackTransport(self.stack._layer, send)
        manager = self.stack._manager
        transaction = manager.start_client(
            self.request, reliable=destination.transport.reliable, transport=self.transport, user=self
        )
        if not transaction.terminated:
            self.transport.bind(transaction)
            if self.request.method == "INVITE":
                self.stack._invites[request_id(self.request)] = self

    def plan_failed(self, failure: Failure) -> None:
        self._log.info("No destination for {uri}: {error}", uri=self.request.uri, error=failure.getErrorMessage())
        self._finish(build_response(self.request, 503), "transport")

    @property
    def sent(self) -> Sent | None:
        return self.transport.sent if self.transport is not None else None

    @property
    def flow(self) -> FlowKey | None:
        sent = self.sent
        return sent.flow if sent is not None else None

    # ClientTransactionUser

    def response_received(self, transaction: ClientTransaction, response: Response) -> None:
        if response.status < 200:
            self.provisional.append(response)
            self._release_cancels()
            if self.on_provisional is not None:
                try:
                    self.on_provisional(response)
                except Exception:
                    self._log.failure("The on_provisional callback failed")
            return
        if self.result.called:
            self._extra_2xx(response)
            return
        if self.request.method == "INVITE" and response.status < 300:
            self.dialog = Dialog.from_uac(self.request, response, over_tls=self._over_tls())
            if self.auto_ack:
                self._send_ack(self.dialog, response)
        self._finish(response, None)

    def timed_out(self, transaction: ClientTransaction) -> None:
        self._finish(build_response(self.request, 408), "timeout")

    def transport_failed(self, transaction: ClientTransaction) -> None:
        self._finish(build_response(self.request, 503), "transport")

    def terminated(self, transaction: ClientTransaction) -> None:
        self.stack._invites.pop(request_id(self.request), None)
        self._release_cancels()
        # Only when the stack aborts a transaction at shutdown.
        self._finish(build_response(self.request, 503), "transport")

    # Helpers

    def _over_tls(self) -> bool:
        return self.destination is not None and self.destination.transport is TransportKind.TLS

    def _finish(self, response: Response, synthesized: Synthesized | None) -> None:
        if self.result.called:
            return
        self._release_cancels()
        received = self.stack._receiving if synthesized is None else None
        sent = self.sent
        security = received.security if received is not None else (sent.security if sent is not None else None)
        flow = received.flow if received is not None else self.flow
        self.result.callback(
            RequestResult(
                request=sent.message if sent is not None and isinstance(sent.message, Request) else self.request,
                response=response,
                provisional=tuple(self.provisional),
                synthesized=synthesized,
                security=security,
                flow=flow,
                dialog=self.dialog if synthesized is None else None,
            )
        )

    def _send_ack(self, dialog: Dialog, response: Response) -> None:
        """ACK a 2xx: a new transaction of its own (RFC 3261 section 13.2.2.4)."""
        tag = response.to.tag or ""
        ack = self.stack._prepare(dialog.create_request("ACK"))
        transport = self.acks[tag] = StackTransport(self.stack._layer, self.stack._send_ack_again)
        transport.send(ack)

    def _extra_2xx(self, response: Response) -> None:
        """A 2xx in Accepted: a retransmission (ACK again) or a fork (ACK, then BYE; RFC 6026 section 8.4)."""
        if not 200 <= response.status < 300 or self.request.method != "INVITE":
            return
        tag = response.to.tag or ""
        known = self.acks.get(tag)
        if known is not None:
            known.resend()
            return
        if self.dialog is None or not self.auto_ack:
            return
        fork = Dialog.from_uac(self.request, response, over_tls=self._over_tls())
        self._send_ack(fork, response)
        self.stack.request(fork.create_request("BYE")).addErrback(lambda failure: None)

    def cancel(self) -> Deferred[RequestResult]:
        """Send a CANCEL once a provisional response came (RFC 3261 section 9.1)."""
        result: Deferred[RequestResult] = Deferred()

        def send() -> None:
            sent = self.sent
            request = sent.message if sent is not None and isinstance(sent.message, Request) else self.request
            cancel = ClientRequest(self.stack, build_cancel(request), None, False)
            cancel.result.chainDeferred(result)
            assert self.destination is not None
            cancel.start(self.destination, self.flow)

        if self.provisional or self.result.called:
            send()
        else:
            self.cancel_waiters.append(send)
        return result

    def _release_cancels(self) -> None:
        waiters, self.cancel_waiters = self.cancel_waiters, []
        for send in waiters:
            send()


def request_id(request: Request) -> tuple[str, int, str | None]:
    return (request.call_id, request.cseq.number, request.from_.tag)
