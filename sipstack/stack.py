# -*- test-case-name: tests.test_stack -*-
"""
L{SIPStack}: the API for Twisted applications.

It wires the L{TransportLayer} (sockets), the sans-IO L{TransactionManager}
(RFC 3261 section 17) and the reactor as the clock, and plays the parts of
RFC 3261 a user agent core plays around them:

  - C{request(request)} sends a request through a client transaction and
    fires with a L{RequestResult}: the final response (a 408 when Timer B or
    F fired, a 503 when the transport failed, RFC 3261 section 8.1.3.1,
    told apart by C{synthesized}), the provisional ones, the hop's security
    state, and for a 2xx to an INVITE the L{Dialog} it created, whose ACK the
    stack sends and resends (section 13.2.2.4).
  - C{on_request(handler)} installs the UAS core: each new request becomes an
    L{IncomingRequest} answered through its server transaction, by the
    handler's return value (a L{Response}, or a Deferred of one); 100 Trying
    goes out for an INVITE whose handler is slow (section 8.2.6.1), a 2xx to
    an INVITE is retransmitted until its ACK (section 13.3.1.4), and CANCEL
    is answered here (200, and 487 to the INVITE; section 9.2).
  - C{close()} refuses new requests with 503 and lets open transactions reach
    their final response before the sockets close.

Where a request goes is decided by L{_plan_destination}, a stand-in for the
RFC 3263 planner: the Request-URI (or a loose first Route), IP literal or a
name resolved by the reactor, TLS for C{sips:} or C{transport=tls}.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure

from sipstack.config import StackConfig
from sipstack.dialog import Dialog
from sipstack.errors import LocalProtocolError, RemoteProtocolError, RoutingError, TransportFailed
from sipstack.hop import Destination, FlowKey, HopSecurity, Peer, TransportKind
from sipstack.message import NameAddress, Request, Response, build_response, new_tag
from sipstack.message.envelope import Received, Sent
from sipstack.message.message import Message
from sipstack.message.uri import SIPURI
from sipstack.message.via import Via
from sipstack.routing.via import default_port, host_literal, new_branch
from sipstack.transaction import ClientTransaction, InviteServerTransaction, ServerTransaction, TransactionState
from sipstack.transaction.events import (
    AckReceived,
    CancelReceived,
    MergedRequest,
    RequestReceived,
    StrayResponse,
)
from sipstack.transaction.manager import TransactionManager, build_cancel
from sipstack.transport.layer import TransportLayer

__all__ = ["SIPStack", "RequestResult", "IncomingRequest", "RequestHandler", "StrayHandler"]

#: How long an INVITE handler may take before the stack sends 100 Trying
#: (RFC 3261 section 17.2.1: "if the TU will not generate a provisional
#: response within 200 ms").
TRYING_DELAY = 0.2

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


def _plan_destination(reactor: Any, request: Request) -> Deferred[Destination]:
    """
    Where to send C{request}: a stand-in for RFC 3263 target selection.

    The target is the first Route if it is a loose router, else the
    Request-URI (RFC 3261 sections 8.1.2 and 16.12); its C{maddr} or host,
    its port (5060, 5061 for TLS), and its transport: TLS for C{sips:} or
    C{transport=tls}, TCP for C{transport=tcp}, else UDP.  A host name is
    resolved with C{reactor.resolve}.  A C{sips:} target with a name needs
    authenticated TLS for that name (RFC 5922).

    @raise RoutingError: (in the Deferred) the target is not a SIP URI.
    """
    target = request.uri
    routes = request.routes
    if routes and isinstance(routes[0].uri, SIPURI) and routes[0].uri.lr:
        target = routes[0].uri
    if not isinstance(target, SIPURI):
        return fail(RoutingError(f"cannot route to {target}"))
    param = target.transport
    if target.secure or param == "tls":
        transport = TransportKind.TLS
    elif param == "tcp":
        transport = TransportKind.TCP
    else:
        transport = TransportKind.UDP
    host = target.maddr or target.host
    port = target.port if target.port is not None else default_port(transport)
    literal = host_literal(host)
    name = None if literal is not None else host
    authenticated = target.secure and name is not None

    def destination(address: str) -> Destination:
        server_name = name if transport is TransportKind.TLS else None
        return Destination(transport, Peer(address, port), server_name, authenticated)

    if literal is not None:
        return succeed(destination(literal))
    return Deferred.fromCoroutine(_resolve(reactor, host)).addCallback(destination)


async def _resolve(reactor: Any, host: str) -> str:
    address: str = await reactor.resolve(host)
    return address


class _Transport:
    """
    A transaction's L{TransactionTransport}: the sends of one transaction,
    the last L{Sent} kept for UDP retransmissions, failures reported back.
    """

    _log = Logger()

    def __init__(self, stack: SIPStack, send: Callable[[Message], Deferred[Sent]]) -> None:
        self._stack = stack
        self._send_message = send
        self.transaction: ServerTransaction | ClientTransaction | None = None
        self.sent: Sent | None = None
        self._failed = False

    def bind(self, transaction: ServerTransaction | ClientTransaction) -> None:
        """Name the transaction to report failures to (a failure before this is reported now)."""
        self.transaction = transaction
        if self._failed:
            transaction.transport_error()

    def send(self, message: Message) -> None:
        self._send_message(message).addCallbacks(self._on_sent, self._on_failure)

    def resend(self) -> None:
        if self.sent is not None:
            try:
                self._stack._layer.resend(self.sent)
            except TransportFailed:
                self._on_failure(Failure())  # type: ignore[no-untyped-call]  # Failure() is unannotated in Twisted 26.10

    def _on_sent(self, sent: Sent) -> None:
        self.sent = sent

    def _on_failure(self, failure: Failure) -> None:
        self._log.info("Could not send: {error}", error=failure.getErrorMessage())
        if self.transaction is None:
            self._failed = True
        else:
            self.transaction.transport_error()


class _ClientRequest:
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
        self.transport: _Transport | None = None
        self.dialog: Dialog | None = None
        self.acks: dict[str, _Transport] = {}
        self.cancel_waiters: list[Callable[[], None]] = []

    # Starting

    def start(self, destination: Destination, flow: FlowKey | None = None) -> None:
        self.destination = destination
        layer = self.stack._layer

        def send(message: Message) -> Deferred[Sent]:
            assert isinstance(message, Request)
            sent_flow = flow if message is self.request else self.flow
            return layer.send_request(message, destination, flow=sent_flow)

        self.transport = _Transport(self.stack, send)
        manager = self.stack._manager
        transaction = manager.start_client(
            self.request, reliable=destination.transport.reliable, transport=self.transport, user=self
        )
        if not transaction.terminated:
            self.transport.bind(transaction)
            if self.request.method == "INVITE":
                self.stack._invites[_request_id(self.request)] = self

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
        self.stack._invites.pop(_request_id(self.request), None)
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
        transport = self.acks[tag] = _Transport(self.stack, self.stack._send_outside)
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
            cancel = _ClientRequest(self.stack, build_cancel(request), None, False)
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


def _request_id(request: Request) -> tuple[str, int, str | None]:
    return (request.call_id, request.cseq.number, request.from_.tag)


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
        with 487 (section 9.2); never fires otherwise.
    @ivar acked: for an INVITE answered with a 2xx, fires with its ACK, or
        with L{None} if none came within 64*T1 (section 13.3.1.4).
    @ivar dialog: for an INVITE answered with a 2xx, the dialog it created.
    """

    _log = Logger()

    def __init__(self, stack: SIPStack, received: Received, transaction: ServerTransaction, transport: _Transport):
        assert isinstance(received.message, Request)
        self.stack = stack
        self.request: Request = received.message
        self.received = received
        self.transaction = transaction
        self.to_tag = self.request.to.tag or new_tag()
        self.cancelled: Deferred[None] = Deferred()
        self.acked: Deferred[Request | None] = Deferred()
        self.dialog: Dialog | None = None
        self.final: Response | None = None
        self._transport = transport
        self._calls: dict[str, IDelayedCall] = {}
        self._interval = stack.config.timers.t1

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
        when C{headers} has none (section 12.1.1).
        """
        extra = list(headers)
        if (
            self.request.method == "INVITE"
            and 100 < status < 300
            and not any(name.lower() in ("contact", "m") for name, _ in extra)
        ):
            contact = self.stack.contact(self.received.flow.transport, default=None)
            if contact is not None:
                extra.append(("Contact", str(contact)))
        response = build_response(self.request, status, reason, to_tag=self.to_tag, headers=extra)
        return response.with_body(body, content_type) if body or content_type else response

    def respond(self, response: Response | int) -> None:
        """
        Send a response through the server transaction: provisional ones
        any number of times, then one final one.

        A final response after the request was cancelled is dropped (the
        487 went out already).

        @raise LocalProtocolError: a second final response, or one the
            transaction's state does not allow.
        """
        if isinstance(response, int):
            response = self.response(response)
        if self.final is not None and self.cancelled.called:
            return
        self.transaction.respond(response)
        if response.status < 200:
            return
        self.final = response
        self._cancel_call("trying")
        if self.request.method == "INVITE" and response.status < 300:
            self._accepted(response)

    def _accepted(self, response: Response) -> None:
        """Keep the 2xx alive until its ACK (RFC 3261 section 13.3.1.4)."""
        over_tls = self.received.flow.transport is TransportKind.TLS
        self.dialog = Dialog.from_uas(self.request, response, over_tls=over_tls)
        self.stack._awaiting_ack[(self.request.call_id, self.request.cseq.number, self.to_tag)] = self
        timers = self.stack.config.timers
        reactor = self.stack.reactor
        if not self.received.flow.transport.reliable:
            self._calls["2xx"] = reactor.callLater(self._interval, self._retransmit)
        self._calls["ack"] = reactor.callLater(64 * timers.t1, self._ack_timeout)

    def _retransmit(self) -> None:
        self._interval = min(self._interval * 2, self.stack.config.timers.t2)
        self._calls["2xx"] = self.stack.reactor.callLater(self._interval, self._retransmit)
        self._transport.resend()

    def _ack_timeout(self) -> None:
        del self._calls["ack"]
        self._log.info("No ACK for the 2xx to {call_id}", call_id=self.request.call_id)
        self._acknowledged(None)

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
        """A CANCEL matched: 487 unless a final response went out (RFC 3261 section 9.2)."""
        if self.final is None and self.transaction.state is TransactionState.PROCEEDING:
            self.respond(self.response(487))
            self.cancelled.callback(None)

    def _finish(self, result: Response | None) -> None:
        """What the handler returned: answer with it, unless already answered."""
        if self.transaction.terminated or (self.final is not None and result is None):
            return
        if result is None:
            self._log.error("The handler answered {method} with nothing", method=self.request.method)
            result = self.response(500)
        elif self.final is not None and self.cancelled.called:
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


class SIPStack:
    """
    A SIP stack for one Twisted application: listeners, transactions, and
    the user agent core around them.

    @ivar reactor: the reactor (also the clock of every timer).
    @ivar config: the limits, timers and TLS policy.
    """

    _log = Logger()

    def __init__(self, reactor: Any, *, config: StackConfig | None = None, trust_root: bytes | None = None) -> None:
        """
        @param reactor: provides C{IReactorTCP}, C{IReactorUDP},
            C{IReactorSSL}, C{IReactorTime} and C{IReactorPluggableNameResolver}.
        @param config: the configuration; the defaults if L{None}.
        @param trust_root: PEM CA certificates TLS peers are checked against;
            L{None} for the platform's trust store.
        """
        self.reactor = reactor
        self.config = config if config is not None else StackConfig()
        self._layer = TransportLayer(reactor, self._received, limits=self.config.limits, trust_root=trust_root)
        self._manager = TransactionManager(clock=reactor, timers=self.config.timers, server_user=self)
        self._handler: RequestHandler | None = None
        self._stray: StrayHandler | None = None
        self._listeners: dict[TransportKind, Peer] = {}
        self._incoming: dict[ServerTransaction, IncomingRequest] = {}
        self._invites: dict[tuple[str, int, str | None], _ClientRequest] = {}
        self._awaiting_ack: dict[tuple[str, int, str], IncomingRequest] = {}
        self._receiving: Received | None = None
        self._closing = False

    # Set-up

    def listen(self, description: str) -> Deferred[Peer]:
        """
        Listen on C{udp:5060}, C{tcp:5060:interface=::1},
        C{tls:5061:certKey=cert.pem:privateKey=key.pem}... (see
        L{sipstack.transport.descriptions}).

        @return: a Deferred firing with the address bound.
        @raise ValueError: a malformed description.
        """
        listening = self._layer.listen(description)

        def bound(peer: Peer) -> Peer:
            kind = TransportKind(description.split(":", 1)[0].upper())
            self._listeners.setdefault(kind, peer)
            return peer

        return listening.addCallback(bound)

    def on_request(self, handler: RequestHandler) -> None:
        """Answer every new request with C{handler} (replacing the previous one)."""
        self._handler = handler

    def on_stray(self, handler: StrayHandler | None) -> None:
        """See stray responses and unmatched ACKs with C{handler} (by default they are dropped)."""
        self._stray = handler

    def contact(self, transport: TransportKind = TransportKind.UDP, *, default: Any = LocalProtocolError) -> Any:
        """
        Our Contact for C{transport}: the address of its first listener (RFC
        3261 section 8.1.1.8), e.g. C{<sip:127.0.0.1:5060;transport=tcp>}.

        @param default: returned when there is no such listener; by default
            L{LocalProtocolError} is raised instead.
        """
        peer = self._listeners.get(transport)
        if peer is None:
            if default is LocalProtocolError:
                raise LocalProtocolError(f"no {transport.value} listener")
            return default
        host = f"[{peer.host}]" if ":" in peer.host else peer.host
        uri = SIPURI("sip", host, port=peer.port)
        if transport is not TransportKind.UDP:
            uri = uri.with_param("transport", transport.value.lower())
        return NameAddress(uri)

    # Client side

    def request(
        self,
        request: Request,
        *,
        on_provisional: Callable[[Response], object] | None = None,
        auto_ack: bool = True,
    ) -> Deferred[RequestResult]:
        """
        Send C{request} through a client transaction (RFC 3261 section 17.1)
        and fire with its L{RequestResult}; the Deferred never fails for a
        network reason (a timeout is a 408, a transport failure a 503).

        A request without a Via gets one with a new branch (section
        8.1.1.7), and Max-Forwards and Content-Length when missing.  The ACK
        of a 2xx to an INVITE is sent (and resent for each retransmitted
        2xx) unless C{auto_ack} is false; then the application builds it
        with C{result.dialog.create_request("ACK")} and sends it with
        L{send_ack}.

        @param on_provisional: called with each 1xx response as it arrives.
        @raise LocalProtocolError: the stack is closing, the request is an
            ACK (use L{send_ack}), or its Via has no RFC 3261 branch.
        """
        if self._closing:
            raise LocalProtocolError("the stack is closing")
        if request.method == "ACK":
            raise LocalProtocolError("an ACK has no transaction: use send_ack")
        prepared = self._prepare(request)
        client = _ClientRequest(self, prepared, on_provisional, auto_ack)
        _plan_destination(self.reactor, prepared).addCallbacks(client.start, client.plan_failed).addErrback(
            lambda failure: client.result.errback(failure) if not client.result.called else None
        )
        return client.result

    def cancel(self, request: Request) -> Deferred[RequestResult]:
        """
        Cancel an INVITE sent with L{request} (RFC 3261 section 9.1): the
        CANCEL goes once a provisional response arrived (or at once, if the
        final one did already); fires with the CANCEL's own result.  The
        INVITE's result then usually is a 487.

        @raise LocalProtocolError: no INVITE transaction of ours matches.
        """
        client = self._invites.get(_request_id(request))
        if client is None:
            raise LocalProtocolError("no INVITE transaction to cancel")
        return client.cancel()

    def send_ack(self, dialog: Dialog, *, body: bytes = b"", content_type: str | None = None) -> Deferred[Sent]:
        """Send the ACK of a 2xx within C{dialog} (when C{request(..., auto_ack=False)} was used)."""
        return self._send_outside(self._prepare(dialog.create_request("ACK", body=body, content_type=content_type)))

    def _send_outside(self, message: Message) -> Deferred[Sent]:
        """Send a request that has no transaction (an ACK of a 2xx)."""
        assert isinstance(message, Request)
        return _plan_destination(self.reactor, message).addCallback(
            lambda destination: self._layer.send_request(message, destination)
        )

    def _prepare(self, request: Request) -> Request:
        headers = request.headers
        if "via" not in headers:
            request = request.with_top_via(Via("UDP", "invalid.invalid", params=(("branch", new_branch()),)))
        if "max-forwards" not in headers:
            request = request.replace(headers=request.headers.with_added("Max-Forwards", "70"))
        if "content-length" not in headers:
            request = request.with_body(request.body)
        return request

    # Receiving

    def _received(self, received: Received) -> None:
        message = received.message
        try:
            if isinstance(message, Response):
                self._receiving = received
                try:
                    if isinstance(self._manager.receive_response(message), StrayResponse):
                        self._pass_stray(received)
                finally:
                    self._receiving = None
                return
            self._receive_request(message, received)
        except RemoteProtocolError as error:
            self._log.warn("Dropped a message from {peer}: {reason}", peer=received.source, reason=error.reason)

    def _receive_request(self, request: Request, received: Received) -> None:
        transport = _Transport(self, lambda message: self._layer.send_response(_response(message), received.flow))
        outcome = self._manager.receive_request(request, reliable=received.flow.transport.reliable, transport=transport)
        if isinstance(outcome, RequestReceived):
            transport.bind(outcome.transaction)
            incoming = IncomingRequest(self, received, outcome.transaction, transport)
            self._incoming[outcome.transaction] = incoming
            self._serve(incoming)
        elif isinstance(outcome, CancelReceived):
            transport.bind(outcome.transaction)
            target = self._incoming.get(outcome.target) if outcome.target is not None else None
            if target is None:
                outcome.transaction.respond(build_response(request, 481))
                return
            outcome.transaction.respond(build_response(request, 200, to_tag=target.to_tag))
            target._cancel()
        elif isinstance(outcome, MergedRequest):
            transport.bind(outcome.transaction)
            outcome.transaction.respond(outcome.response)
        elif isinstance(outcome, AckReceived):
            key = (request.call_id, request.cseq.number, request.to.tag or "")
            waiting = self._awaiting_ack.get(key)
            if waiting is not None:
                waiting._acknowledged(request)
            else:
                self._pass_stray(received)

    def _pass_stray(self, received: Received) -> None:
        if self._stray is not None:
            self._stray(received)
        else:
            self._log.debug("Dropped a stray message from {peer}", peer=received.source)

    def _serve(self, incoming: IncomingRequest) -> None:
        if self._closing:
            incoming.respond(incoming.response(503))
            return
        handler = self._handler
        if handler is None:
            incoming.respond(incoming.response(501))
            return
        try:
            result = handler(incoming)
        except Exception:
            incoming._failed(Failure())  # type: ignore[no-untyped-call]  # Failure() is unannotated in Twisted 26.10
            return
        if isinstance(result, Deferred):
            if incoming.request.method == "INVITE" and incoming.final is None:
                incoming._calls["trying"] = self.reactor.callLater(TRYING_DELAY, incoming._send_trying)
            result.addCallbacks(incoming._finish, incoming._failed)
        else:
            incoming._finish(result)

    # ServerTransactionUser

    def ack_received(self, transaction: InviteServerTransaction, ack: Request) -> None:
        """Not called: the manager reports ACKs as events."""

    def timed_out(self, transaction: ServerTransaction) -> None:
        """Timer H: the ACK of a 300-699 response never came."""
        self._log.info("No ACK for the {method} final response", method=transaction.request.method)

    def transport_failed(self, transaction: ServerTransaction) -> None:
        """A response could not be sent."""
        self._log.info("Could not send a response to {method}", method=transaction.request.method)

    def terminated(self, transaction: ServerTransaction) -> None:
        """Forget the request of a terminated server transaction."""
        incoming = self._incoming.pop(transaction, None)
        if incoming is not None:
            incoming._cancel_call("trying")

    # Shutdown

    @property
    def busy(self) -> bool:
        """Whether a transaction still waits for its final response, or a 2xx for its ACK."""
        waiting = (TransactionState.CALLING, TransactionState.TRYING, TransactionState.PROCEEDING)
        manager = self._manager
        return (
            any(t.state in waiting for t in manager.client_transactions)
            or any(t.state in waiting for t in manager.server_transactions)
            or bool(self._awaiting_ack)
        )

    def close(self, grace: float = 32.0) -> Deferred[None]:
        """
        Shut down gracefully: refuse new requests (503) and new
        L{request}s, wait up to C{grace} seconds until no transaction waits
        for a final response (nor a 2xx for its ACK), then end every
        transaction and close every socket.
        """
        return Deferred.fromCoroutine(self._close(grace))

    async def _close(self, grace: float) -> None:
        self._closing = True
        deadline = self.reactor.seconds() + grace
        while self.busy and self.reactor.seconds() < deadline:
            await deferLater(self.reactor, min(0.02, max(0.0, deadline - self.reactor.seconds())))
        for incoming in list(self._incoming.values()):
            incoming._stop()
        for incoming in list(self._awaiting_ack.values()):
            incoming._acknowledged(None)
        self._manager.abort_all()
        await self._layer.close()


def _response(message: Message) -> Response:
    assert isinstance(message, Response)
    return message
