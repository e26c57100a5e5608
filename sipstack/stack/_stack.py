# -*- test-case-name: tests.test_stack -*-
"""
L{SIPStack}: the transport layer, the transaction manager and the reactor
wired together, with the user agent core around them (see
L{sipstack.stack}).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from twisted.internet.defer import Deferred, fail
from twisted.internet.task import deferLater
from twisted.logger import Logger

from sipstack.config import StackConfig
from sipstack.dialog import Dialog, DialogId
from sipstack.errors import LocalProtocolError, RemoteProtocolError
from sipstack.hop import CLEARTEXT, Destination, FlowKey, HopSecurity, Peer, TransportKind
from sipstack.message import NameAddress, Request, Response, build_response
from sipstack.message.envelope import Received, Sent
from sipstack.message.message import Message
from sipstack.message.uri import SIPURI
from sipstack.message.via import Via
from sipstack.routing import Target, TargetSource
from sipstack.routing.resolver import Resolver
from sipstack.routing.via import new_branch, response_target
from sipstack.stack._client import ClientRequest, OutgoingRequest, RequestResult, request_id
from sipstack.stack._locate import Hop, HostsFileResolver, Locator
from sipstack.stack._server import IncomingRequest, RequestHandler, StrayHandler
from sipstack.stack._transport import ResponseTransport, StackTransport
from sipstack.transaction import InviteServerTransaction, ServerTransaction, TransactionState
from sipstack.transaction.events import (
    AckReceived,
    CancelReceived,
    MergedRequest,
    RequestReceived,
    StrayResponse,
)
from sipstack.transaction.manager import TransactionManager
from sipstack.transport.dns import DNSResolver
from sipstack.transport.layer import Finalize, TransportLayer
from sipstack.transport.tls_memory import TLSMemory

__all__ = ["SIPStack"]


class SIPStack:
    """
    A SIP stack for one Twisted application: listeners, transactions, and
    the user agent core around them.

    @ivar reactor: the reactor (also the clock of every timer).
    @ivar config: the limits, timers and TLS policy.
    """

    _log = Logger()

    def __init__(
        self,
        reactor: Any,
        *,
        config: StackConfig | None = None,
        trust_root: bytes | None = None,
        resolver: Resolver | None = None,
        nameservers: Sequence[tuple[str, int]] | None = None,
        check_dialogs: bool = True,
        proxy: bool = False,
    ) -> None:
        """
        @param reactor: provides C{IReactorTCP}, C{IReactorUDP},
            C{IReactorSSL} and C{IReactorTime}.
        @param config: the configuration; the defaults if L{None}.
        @param trust_root: PEM CA certificates TLS peers are checked against;
            L{None} for the platform's trust store.
        @param resolver: the DNS lookups of RFC 3263 planning (a
            L{DNSResolver} with nameservers of your choice, or any
            L{Resolver}); by default the hosts file in front of a
            L{DNSResolver} on C{nameservers}.
        @param nameservers: C{(address, port)} of the nameservers the
            default resolver asks; those of the system configuration
            (C{/etc/resolv.conf}) if L{None}.  Unused with C{resolver}.
        @param check_dialogs: whether a request with a To tag is checked
            against the dialog table (RFC 3261 section 12.2.2): 481 when it
            matches no dialog, 500 when its CSeq is out of order.  With
            C{False} (a proxy, or an application keeping dialogs of its own)
            such requests reach the handler as they are; known dialogs are
            still kept up to date.
        @param proxy: proxy mode, for a stateful proxy (RFC 3261 section
            16) on this stack (docs/embedding.md, "Proxy mode"): responses
            given to L{IncomingRequest.respond} go out as they are (no
            dialog, no 2xx retransmission, no wait for the ACK, several 2xx
            allowed to an INVITE); 100 Trying goes out at once for an
            INVITE the handler answers later; no 482 for merged requests
            (spirals come back with a new branch); a CANCEL gets its 200
            but no 487 (C{incoming.cancelled} fires, and the proxy cancels
            its branches), and one that matches nothing reaches the
            handler; the dialog table is not consulted (implies
            C{check_dialogs=False}).
        """
        self.reactor = reactor
        self.config = config if config is not None else StackConfig()
        self._layer = TransportLayer(
            reactor,
            self._received,
            limits=self.config.limits,
            trust_root=trust_root,
            tls_first=self.config.tls_first,
        )
        if resolver is None:
            resolver = HostsFileResolver(DNSResolver(reactor, nameservers))
        self._locator = Locator(reactor, self._layer, resolver, self.config)
        self._manager = TransactionManager(clock=reactor, timers=self.config.timers, server_user=self)
        self._handler: RequestHandler | None = None
        self._stray: StrayHandler | None = None
        self._listeners: dict[TransportKind, Peer] = {}
        self._incoming: dict[ServerTransaction, IncomingRequest] = {}
        self._invites: dict[tuple[str, int, str | None], ClientRequest] = {}
        self._awaiting_ack: dict[tuple[str, int, str], IncomingRequest] = {}
        self._dialogs: dict[DialogId, Dialog] = {}
        self._pending_invites: dict[DialogId, IncomingRequest] = {}
        self._check_dialogs = check_dialogs and not proxy
        self.proxy = proxy
        self._bound: list[tuple[TransportKind, Peer]] = []
        self._receiving: Received | None = None
        self._closing = False
        self._closed = False

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
            self._bound.append((kind, peer))
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

    @property
    def listeners(self) -> tuple[tuple[TransportKind, Peer], ...]:
        """
        Every listener bound, in the order bound: its transport and address
        (a wildcard address, C{0.0.0.0} or C{::}, for one on every
        interface).  A proxy names itself with them (Record-Route, its own
        Vias) and finds its TLS port on an interface.
        """
        return tuple(self._bound)

    @property
    def resolver(self) -> Resolver:
        """The resolver RFC 3263 planning asks."""
        return self._locator.resolver

    @property
    def tls_memory(self) -> TLSMemory:
        """
        What TLS-first connects remember ("no TLS here", "TLS worked
        here"): list it with C{entries()}, drop entries with C{forget()} or
        C{reset()}.
        """
        return self._layer.tls_memory

    @property
    def flows(self) -> Mapping[FlowKey, HopSecurity]:
        """Every open stream flow and its security state (L{TransportLayer.flows})."""
        return self._layer.flows

    # Dialogs

    @property
    def dialogs(self) -> Mapping[DialogId, Dialog]:
        """
        The dialogs the stack knows (a read-only view): early and confirmed
        ones created by INVITEs sent with L{request} or answered through
        L{on_request}, and those given to L{add_dialog}.
        """
        return MappingProxyType(self._dialogs)

    def add_dialog(self, dialog: Dialog) -> None:
        """
        Make C{dialog} known, so that requests within it are accepted (a
        dialog the application made itself, from a SUBSCRIBE or REFER; RFC
        3261 section 12.2.2).  It replaces a known dialog with the same ID.
        """
        self._dialogs[dialog.id] = dialog

    def end_dialog(self, dialog: Dialog) -> None:
        """Forget C{dialog}: requests within it get 481 from now on (nothing is sent)."""
        if self._dialogs.get(dialog.id) is dialog:
            del self._dialogs[dialog.id]

    def _dialog_of_outgoing(self, request: Request) -> Dialog | None:
        """The known dialog a request we send belongs to (our From tag, their To tag)."""
        local, remote = request.from_.tag, request.to.tag
        if local is None or remote is None:
            return None
        return self._dialogs.get(DialogId(request.call_id, local, remote))

    def _hang_up(self, dialog: Dialog, why: str) -> None:
        """
        Send a BYE within C{dialog} on the stack's own initiative (a forked
        2xx, a 2xx never acknowledged); it never raises, even while the stack
        closes: a failure is logged.
        """
        if self._closed:
            self._log.info("Not ending the dialog of {why}: the stack is closed", why=why)
            return
        try:
            bye = dialog.create_request("BYE")
            self._start_request(bye, None, True).addErrback(
                lambda failure: self._log.failure("The BYE ending {why} failed", failure, why=why)
            )
        except Exception:
            self._log.failure("Could not send the BYE ending {why}", why=why)

    # Client side

    def request(
        self,
        request: Request,
        *,
        on_provisional: Callable[[Response], object] | None = None,
        auto_ack: bool = True,
        flow: FlowKey | None = None,
        finalize: Finalize | None = None,
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
        @param flow: a flow to send on while it is open (the flow a
            binding was registered over, RFC 5626), instead of the RFC 3263
            plan; if it is closed, or fails before any response, the
            request is planned as usual.
        @param finalize: called with the request, the transport, our
            sent-by on it and the hop's security once the transport is
            chosen, for each transmission to a new hop (failovers
            included); the request it returns is sent, with the top Via of
            the one it was given (a proxy adds its Record-Route, RFC 5658).
        @raise LocalProtocolError: the stack is closing, the request is an
            ACK (use L{send_ack}), or its Via has no RFC 3261 branch.
        """
        if self._closing:
            raise LocalProtocolError("the stack is closing")
        if request.method == "ACK":
            raise LocalProtocolError("an ACK has no transaction: use send_ack")
        return self._start_request(request, on_provisional, auto_ack, flow, finalize)

    def _start_request(
        self,
        request: Request,
        on_provisional: Callable[[Response], object] | None,
        auto_ack: bool,
        flow: FlowKey | None = None,
        finalize: Finalize | None = None,
    ) -> Deferred[RequestResult]:
        """L{request}, also while the stack closes (the stack's own BYEs)."""
        prepared = self._prepare(request)
        client = ClientRequest(self, prepared, on_provisional, auto_ack, flow=flow, finalize=finalize)
        if prepared.method == "INVITE":
            # Known to cancel() from now on, even while the destination is planned.
            self._invites[request_id(prepared)] = client
        client.begin()
        return client.result

    def forward(
        self,
        request: Request,
        *,
        on_response: Callable[[Response], object] | None = None,
        flow: FlowKey | None = None,
        finalize: Finalize | None = None,
        late_2xx_as_stray: bool = False,
    ) -> OutgoingRequest:
        """
        Send C{request} for a proxy (one branch, RFC 3261 section 16.6)
        through a client transaction of its own, and return its handle.

        Unlike L{request}, nothing of a user agent is done: no dialog is
        made, no ACK of a 2xx sent, no forked 2xx hung up, and the branch
        is cancelled through its handle (L{OutgoingRequest.cancel}), not by
        L{cancel} (parallel branches share Call-ID, CSeq and From tag).
        Planning, TLS first and failover are those of L{request}, and so
        are C{flow} and C{finalize}.

        @param on_response: called with each 1xx response, and for an
            INVITE with each 2xx that comes after the final response (a
            retransmission, or another fork's: RFC 6026 has the proxy
            forward every one).  The final response is the handle's
            C{result}.
        @param late_2xx_as_stray: end the INVITE's client transaction with
            its first 2xx rather than keep it in Accepted for 64*T1 (Timer
            M, RFC 6026): later 2xx responses (retransmissions, other
            forks) then reach the stray handler (L{on_stray}) instead of
            C{on_response}, which suits a proxy that forwards strays
            statelessly (RFC 3261 section 16.7) and saves it the state of
            every answered call for half a minute.
        @raise LocalProtocolError: the stack is closing, the request is an
            ACK (use L{send_stateless}), or its Via has no RFC 3261 branch.
        """
        if self._closing:
            raise LocalProtocolError("the stack is closing")
        if request.method == "ACK":
            raise LocalProtocolError("an ACK has no transaction: use send_stateless")
        client = ClientRequest(
            self,
            self._prepare(request),
            on_response,
            False,
            flow=flow,
            finalize=finalize,
            proxy=True,
            late_2xx_as_stray=late_2xx_as_stray,
        )
        client.begin()
        return OutgoingRequest(client)

    def _flow_hop(self, flow: FlowKey) -> Hop | None:
        """A hop on C{flow} if it is open (a stream in the table; for UDP, a socket of its family), else L{None}."""
        remote = flow.remote
        if flow.transport is TransportKind.UDP:
            if not self._layer.can_send_udp(remote.host):
                return None
            security, hop_flow = CLEARTEXT, None
        else:
            stream = self._layer.stream(flow)
            if stream is None:
                return None
            security, hop_flow = stream.security, flow
        target = Target(flow.transport, remote.host, remote.port, (remote.host,), TargetSource.NUMERIC)
        return Hop(target, Destination(flow.transport, remote), hop_flow, security)

    def send_stateless(self, request: Request, *, flow: FlowKey | None = None) -> Deferred[Sent]:
        """
        Send C{request} without a transaction (a proxy forwarding an ACK of
        a 2xx, RFC 3261 section 16.11): on C{flow} while it is open, else
        to the next hop of its top Route or Request-URI, planned by RFC
        3263 (TLS first).  A request without a Via gets one, and
        Max-Forwards and Content-Length when missing.

        @return: fires with what was sent, or fails (L{TransportFailed
            <sipstack.errors.TransportFailed>}, L{RoutingError
            <sipstack.errors.RoutingError>}) when it could not be.
        """
        prepared = self._prepare(request)
        if flow is not None:
            hop = self._flow_hop(flow)
            if hop is not None:
                return self._layer.send_request(prepared, hop.destination, flow=hop.flow)
        return self._send_outside(prepared)

    def send_response(self, response: Response, *, flow: FlowKey | None = None) -> Deferred[Sent]:
        """
        Send C{response} without a server transaction (a proxy forwarding
        a stray response, RFC 3261 section 16.11, or a 2xx retransmission
        after its INVITE's transaction ended, RFC 6026): on C{flow} while
        it is open, else where its top Via says (section 18.2.2, RFC 3581:
        the C{received} address, with C{rport} over UDP), reusing an open
        connection to that address over a stream transport, else opening
        one.

        @return: fires with what was sent, or fails when it could not be.
        """
        try:
            if flow is None:
                flow = self._response_flow(response)
        except Exception:
            return fail()
        return self._layer.send_response(response, flow)

    def _response_flow(self, response: Response) -> FlowKey:
        """The flow a response goes back on by its top Via: an open one to that address, or a new one's key."""
        via = response.top_via
        target = response_target(via)
        kind = target.transport
        peer = Peer(target.host, target.port)
        if kind.reliable:
            received = via.received
            rport = via.rport
            if received is not None and rport is not None:
                # The connection the request came on, from the address and port seen.
                seen = Peer(received.strip("[]"), rport)
                for flow in self._layer.flows:
                    if flow.transport is kind and flow.remote == seen:
                        return flow
        # Not open: the transport layer sends by the top Via (UDP) or connects.
        return FlowKey(kind, peer, Peer("", 0))

    def cancel(self, request: Request) -> Deferred[RequestResult | None]:
        """
        Cancel an INVITE sent with L{request} (RFC 3261 section 9.1).

        The Deferred fires with the CANCEL's own L{RequestResult} (usually
        200; the INVITE's result then usually is a 487), or with L{None}
        when no CANCEL was sent:

          - the INVITE already had its final response (a CANCEL would be a
            no-op, section 9.1), or got it while the CANCEL waited for the
            first provisional response, which it must (section 9.1): the
            INVITE's own result tells how it ended;
          - the INVITE was not sent yet (its destination was still being
            planned): it never will be, and its result is a local 487 with
            C{synthesized="cancelled"}.

        Calling it again while a CANCEL is pending fires with the same
        result; no second CANCEL is sent.

        @raise LocalProtocolError: C{request} is not an INVITE, or no INVITE
            sent by this stack with its Call-ID, CSeq and From tag is known:
            never sent, or its transaction ended and its final response came
            more than 64*T1 ago.
        """
        if request.method != "INVITE":
            raise LocalProtocolError(f"only an INVITE can be cancelled, not a {request.method}")
        client = self._invites.get(request_id(request))
        if client is None:
            raise LocalProtocolError("no INVITE of ours to cancel")
        return client.cancel()

    def send_ack(self, dialog: Dialog, *, body: bytes = b"", content_type: str | None = None) -> Deferred[Sent]:
        """
        Send the ACK of a 2xx within C{dialog} (when C{request(...,
        auto_ack=False)} was used).  While the INVITE's transaction lives,
        the stack sends this ACK again for each retransmission of the 2xx
        (RFC 3261 section 13.2.2.4).
        """
        ack = self._prepare(dialog.create_request("ACK", body=body, content_type=content_type))
        sending = self._send_outside(ack)
        client = self._invites.get((dialog.id.call_id, dialog.invite_cseq or 0, dialog.id.local_tag))
        if client is not None:
            transport = client.acks[dialog.id.remote_tag] = StackTransport(self._layer, self._send_ack_again)

            def keep(sent: Sent) -> Sent:
                transport.sent = sent
                return sent

            sending.addCallback(keep)
        return sending

    def _send_outside(self, message: Message) -> Deferred[Sent]:
        """Send a request that has no transaction (an ACK of a 2xx)."""
        assert isinstance(message, Request)

        def send(hop: Hop) -> Deferred[Sent]:
            return self._layer.send_request(message, hop.destination, flow=hop.flow)

        return self._locator.hop(message).addCallback(send)

    def _send_ack_again(self, message: Message, previous: Sent | None) -> Deferred[Sent]:
        """Send an ACK of a 2xx through a L{StackTransport}, which then resends it for each retransmitted 2xx."""
        return self._send_outside(message)

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
        transport = ResponseTransport(self._layer, received.flow)
        outcome = self._manager.receive_request(request, reliable=received.flow.transport.reliable, transport=transport)
        if isinstance(outcome, RequestReceived):
            transport.bind(outcome.transaction)
            incoming = IncomingRequest(self, received, outcome.transaction, transport)
            self._incoming[outcome.transaction] = incoming
            if not self.proxy:
                refusal = self._within_dialog(incoming)
                if refusal is not None:
                    incoming.respond(incoming.response(refusal))
                    return
            incoming._serve(self._handler, closing=self._closing)
        elif isinstance(outcome, CancelReceived):
            transport.bind(outcome.transaction)
            target = self._incoming.get(outcome.target) if outcome.target is not None else None
            if target is None and outcome.target_to_tag is not None:
                # A non-INVITE answered already, whose retransmissions the
                # manager absorbs: the CANCEL has no effect but its 200.
                outcome.transaction.respond(build_response(request, 200, to_tag=outcome.target_to_tag or None))
                return
            if target is None:
                if self.proxy:
                    # Section 16.10: the proxy forwards it (statelessly).
                    self._serve_new(received, outcome.transaction, transport)
                else:
                    outcome.transaction.respond(build_response(request, 481))
                return
            # Whatever the method: a non-INVITE just goes on (section 9.2).
            outcome.transaction.respond(build_response(request, 200, to_tag=target.to_tag))
            if isinstance(target.transaction, InviteServerTransaction):
                target._cancel()
        elif isinstance(outcome, MergedRequest):
            transport.bind(outcome.transaction)
            if self.proxy:
                # A spiral, or a fork coming back: a proxy forwards it again.
                self._serve_new(received, outcome.transaction, transport)
            else:
                outcome.transaction.respond(outcome.response)
        elif isinstance(outcome, AckReceived):
            key = (request.call_id, request.cseq.number, request.to.tag or "")
            waiting = self._awaiting_ack.get(key)
            if waiting is not None:
                waiting._acknowledged(request)
            else:
                self._pass_stray(received)

    def _serve_new(self, received: Received, transaction: ServerTransaction, transport: ResponseTransport) -> None:
        incoming = IncomingRequest(self, received, transaction, transport)
        self._incoming[transaction] = incoming
        incoming._serve(self._handler, closing=self._closing)

    def _within_dialog(self, incoming: IncomingRequest) -> int | None:
        """
        Match a request with a To tag to its dialog (RFC 3261 section
        12.2.2): the status to refuse it with (481 for no dialog, 500 for a
        CSeq out of order), or L{None} to serve it.  A BYE ends its dialog
        (section 15.1.2), and an INVITE still pending in it gets 487; a
        target refresh updates the remote target.
        """
        dialog_id = DialogId.of_incoming(incoming.request)
        if dialog_id is None:
            return None
        dialog = self._dialogs.get(dialog_id)
        if dialog is None:
            return 481 if self._check_dialogs else None
        if not dialog.receive_request(incoming.request):
            return 500 if self._check_dialogs else None
        incoming.dialog = dialog
        method = incoming.request.method
        if method == "INVITE":
            self._pending_invites[dialog_id] = incoming
        elif method == "BYE":
            self.end_dialog(dialog)
            pending = self._pending_invites.pop(dialog_id, None)
            if pending is not None:
                # "It is RECOMMENDED that a 487 ... be generated to those pending requests."
                pending._cancel()
        return None

    def _pass_stray(self, received: Received) -> None:
        if self._stray is not None:
            self._stray(received)
        else:
            self._log.debug("Dropped a stray message from {peer}", peer=received.source)

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
            incoming._not_pending()
            incoming._release()

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
        self._closed = True
        for client in list(self._invites.values()):
            client._stop()
        await self._layer.close()
