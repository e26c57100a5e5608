# -*- test-case-name: tests.test_stack -*-
"""
The client side of L{SIPStack<sipstack.stack.SIPStack>}: the TU of each
client transaction started by C{request()} (RFC 3261 section 8.1), which
turns timeouts and transport failures into 408 and 503 (section 8.1.3.1),
ACKs every 2xx to an INVITE outside the transaction and hangs up forked
ones (section 13.2.2.4, RFC 6026 section 8.4), keeps the stack's dialog
table (early dialogs from 1xx, confirmed ones from 2xx, ended by BYE, by the
INVITE's failure, or by a 481 or 408 within them, section 12.2.1.2), and
sends CANCEL once a provisional response came, never after the final one
(section 9.1).

CANCEL, decisions:

  - C{cancel()} before any provisional response waits for one; if the
    final response comes first, no CANCEL is sent and the Deferred fires
    with L{None}.  After the final response it fires with L{None} at once.
  - C{cancel()} while the destination is still being planned or connected
    to (nothing was sent yet), or while a failover looks for the next hop:
    the INVITE is not sent (again), its result is a local 487 marked
    C{synthesized="cancelled"}, and C{cancel()} fires with L{None}.
  - An INVITE stays known to C{cancel()} until both its transaction ended
    and 64*T1 passed since its final response, so that a C{cancel()} racing
    with the final response finds it and fires with L{None} rather than
    raising.

Failover (RFC 3263 section 4.3), decisions:

  - A transport failure, a timeout (the 408 made when Timer B or F fired)
    or a 503 received make the request go to the next hop of its
    L{PlanWalk}: the same request with a new branch, in a new client
    transaction, until the plan is exhausted.  The response that caused
    the last failover is then the result.
  - Never after a provisional response (of any method): a server took the
    request on, and sending it elsewhere could act on it twice; nor once
    C{cancel()} was called, nor after the stack closed.
  - Never from TLS to a weaker transport under the opportunistic or strict
    policy (see L{sipstack.stack._locate}).
  - A CANCEL and the ACK of a non-2xx go to the hop of the INVITE they
    belong to, never elsewhere.

Sending on a flow (C{flow=}): while the flow is open (a stream in the
transport layer's table; for UDP, while the stack has a UDP socket) the
request goes on it, with no planning and no failover; a transport failure
there, before any response, makes the request planned by RFC 3263 as if no
flow had been given (the connection closed under us).

Proxy mode (L{SIPStack.forward}, L{OutgoingRequest}): the TU of a proxy's
branch.  No dialog is made or updated, no ACK of a 2xx is sent and no
forked 2xx is hung up: every 1xx and every 2xx after the first final
response (retransmissions and forks, RFC 6026) go to C{on_response}, and
the branch is not known to L{SIPStack.cancel} (parallel branches share
Call-ID, CSeq and From tag): it is cancelled through its handle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from sipstack.dialog import Dialog, DialogId
from sipstack.errors import LocalProtocolError
from sipstack.hop import Destination, FlowKey, HopSecurity, Peer, TransportKind
from sipstack.message import Request, Response, build_response
from sipstack.message.envelope import Sent
from sipstack.message.message import Message
from sipstack.routing import NoTargets, Plan, Target, new_branch
from sipstack.stack._locate import Hop, PlanWalk
from sipstack.stack._transport import StackTransport
from sipstack.transaction import ClientTransaction
from sipstack.transaction.manager import build_cancel
from sipstack.transport.layer import Finalize
from sipstack.transport.report import Attempt

if TYPE_CHECKING:
    from sipstack.stack._stack import SIPStack

__all__ = ["RequestResult", "Synthesized", "Failover", "ClientRequest", "OutgoingRequest", "request_id"]

#: Why a response was made up locally rather than received.
Synthesized = Literal["timeout", "transport", "cancelled"]


@dataclass(frozen=True, slots=True)
class Failover:
    """
    A hop given up on for the next one (RFC 3263 section 4.3).

    @ivar target: the plan's target it went to.
    @ivar destination: the address, port and transport.
    @ivar status: the final status there: 503 received or synthesized
        (transport failure), or 408 synthesized (timeout).
    @ivar synthesized: as L{RequestResult.synthesized}.
    @ivar security: the security state of that hop.
    """

    target: Target
    destination: Destination
    status: int
    synthesized: Synthesized | None
    security: HopSecurity | None


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestResult:
    """
    How a request sent with L{SIPStack.request} ended.

    @ivar request: the request as last sent, to the hop that gave the
        response (its top Via names our transport and sent-by).
    @ivar response: the final response: received, or synthesized (see
        C{synthesized}).
    @ivar provisional: the 1xx responses received before it, in order.
    @ivar synthesized: L{None} for a response received from the network;
        C{"timeout"} for the 408 made when Timer B or F fired; C{"transport"}
        for the 503 made when the transport failed (RFC 3261 section
        8.1.3.1); C{"cancelled"} for the 487 of an INVITE cancelled before
        it was sent.
    @ivar security: the security state of the hop the response came over (or
        the request went over, for a synthesized one); L{None} if nothing was
        ever sent.
    @ivar flow: the flow of that hop, or L{None}.
    @ivar dialog: for a 2xx to an INVITE, the dialog it created or
        confirmed (RFC 3261 section 12.1.2), or for a re-INVITE the dialog it
        was sent in, already acknowledged; otherwise L{None}.
    @ivar plan: the RFC 3263 plan of the request's next hop (when planning
        found no target, what it found, with its lookups); L{None} when no
        plan was made (see C{error}).
    @ivar attempts: every stream connection attempt made, across failovers,
        in order (an open flow that was reused makes none; UDP makes none).
    @ivar fallback_reason: why TLS was not used although it was wanted
        (each TLS failure, or "remembered" when the TLS memory said there is
        none), or why UDP was used (every stream target failed); L{None}
        when nothing was given up.
    @ivar failovers: the hops given up on before the one that answered.
    @ivar error: for a synthesized 503 that no hop was ever reached for
        (no plan, no connection, a downgrade refused), why.
    """

    request: Request
    response: Response
    provisional: tuple[Response, ...] = ()
    synthesized: Synthesized | None = None
    security: HopSecurity | None = None
    flow: FlowKey | None = None
    dialog: Dialog | None = None
    plan: Plan | None = None
    attempts: tuple[Attempt, ...] = ()
    fallback_reason: str | None = None
    failovers: tuple[Failover, ...] = ()
    error: str | None = None

    @property
    def status(self) -> int:
        """The final status code."""
        return self.response.status


class ClientRequest:
    """
    The TU of one client transaction started by L{SIPStack.request}.

    @ivar dialog: for an INVITE, the dialog its 2xx confirmed; for a request
        within a known dialog, that dialog.
    @ivar in_dialog: the known dialog the request was sent within, if any.
    """

    _log = Logger()

    def __init__(
        self,
        stack: SIPStack,
        request: Request,
        on_provisional: Callable[[Response], object] | None,
        auto_ack: bool,
        *,
        flow: FlowKey | None = None,
        finalize: Finalize | None = None,
        proxy: bool = False,
        late_2xx_as_stray: bool = False,
    ) -> None:
        """
        @param on_provisional: called with each 1xx; in proxy mode also
            with each 2xx after the final response (unless
            C{late_2xx_as_stray}).
        @param flow: the flow to send on while it is open.
        @param finalize: see L{TransportLayer.send_request}; the top Via of
            what it returns is the one it was given (the branch is the
            transaction's, also after a failover changed it).
        @param proxy: proxy mode (see the module docstring).
        @param late_2xx_as_stray: proxy mode: the INVITE transaction ends
            with its first 2xx instead of waiting for more in Accepted (Timer
            M); later 2xx responses reach the stack's stray handler.
        """
        self.stack = stack
        self._late_2xx_as_stray = proxy and late_2xx_as_stray
        self.request = request
        self.on_provisional = on_provisional
        self.auto_ack = auto_ack and not proxy
        self.proxy = proxy
        self._flow = flow
        self._finalize = _keeping_top_via(finalize) if finalize is not None else None
        self.result: Deferred[RequestResult] = Deferred()
        self.provisional: list[Response] = []
        self.destination: Destination | None = None
        self.hop: Hop | None = None
        self.walk: PlanWalk | None = None
        self.transport: StackTransport | None = None
        self.in_dialog = None if proxy else stack._dialog_of_outgoing(request)
        self.dialog: Dialog | None = self.in_dialog
        self.acks: dict[str, StackTransport] = {}
        self.failovers: tuple[Failover, ...] = ()
        self._early: list[Dialog] = []
        self._cancel_waiters: list[Deferred[RequestResult | None]] = []
        self._cancel_requested = False
        self._cancel_sent = False
        self._transaction_live = False
        self._forget_call: IDelayedCall | None = None
        # The transport of the hop given up on, while the next one is found.
        self._previous: StackTransport | None = None
        # The response that made the request fail over, with the security
        # and flow of its hop: the result if no further hop can be used.
        self._failed_over: tuple[Response, Synthesized | None, HopSecurity | None, FlowKey | None] | None = None
        self._error: str | None = None
        self._failed_plan: Plan | None = None

    # Starting

    def begin(self) -> None:
        """
        Plan the request's next hop, reach it, and start the transaction:
        without a Deferred when the plan is known and the hop is UDP; on
        the given flow while it is open.
        """
        if self._flow is not None:
            hop = self.stack._flow_hop(self._flow)
            if hop is not None:
                self.start(hop)
                return
            self._flow = None
        locator = self.stack._locator
        try:
            plan = locator.known_plan(self.request)
        except Exception:
            self._no_route(Failure())  # type: ignore[no-untyped-call]  # Failure() is unannotated in Twisted 26.10
            return
        if plan is None:
            locator.plan(self.request).addCallbacks(self._planned, self._no_route).addErrback(self.start_failed)
        else:
            self._planned(plan)

    def _planned(self, plan: Plan) -> None:
        if self.result.called:
            # Cancelled while the destination was planned: never sent.
            return
        self.walk = self.stack._locator.walk(plan)
        self._next_hop()

    def _next_hop(self) -> None:
        assert self.walk is not None
        try:
            hop = self.walk.next_hop()
        except Exception:
            self._no_route(Failure())  # type: ignore[no-untyped-call]  # Failure() is unannotated in Twisted 26.10
            return
        if isinstance(hop, Deferred):
            hop.addCallbacks(self._hop_found, self._no_route).addErrback(self.start_failed)
            return
        try:
            self._hop_found(hop)
        except Exception:
            self.start_failed(Failure())  # type: ignore[no-untyped-call]  # Failure() is unannotated in Twisted 26.10

    def _hop_found(self, hop: Hop) -> None:
        request = self.request
        if self._failed_over is not None:
            # RFC 3263 section 4.3: the same request with a new branch.
            self._failed_over = None
            request = request.with_top_via(request.top_via.with_param("branch", new_branch()))
        self.start(hop, request)

    def _no_route(self, failure: Failure) -> None:
        """No (further) hop: the response that caused the failover stands, or a 503 is made."""
        if self.result.called:
            return
        failed_over, self._failed_over = self._failed_over, None
        if failed_over is not None:
            response, synthesized, security, flow = failed_over
            self._log.info(
                "No further target for {uri} after {status}: {error}",
                uri=self.request.uri,
                status=response.status,
                error=failure.getErrorMessage(),
            )
            self._finish(response, synthesized, hop_state=(security, flow))
            return
        self._error = failure.getErrorMessage()
        if isinstance(failure.value, NoTargets):
            # What planning found, for the report.
            self._failed_plan = failure.value.plan
        self._log.info("No destination for {uri}: {error}", uri=self.request.uri, error=self._error)
        self._finish(build_response(self.request, 503), "transport")

    def start(self, hop: Hop, request: Request | None = None) -> None:
        """Send C{request} (by default the request itself) to C{hop} in a new client transaction."""
        if self.result.called:
            # Cancelled while the destination was planned: never sent.
            return
        if self.stack._closed:
            self._finish(build_response(self.request, 503), "transport")
            return
        self.hop = hop
        self.destination = destination = hop.destination
        flow = hop.flow
        layer = self.stack._layer
        first = request if request is not None else self.request
        finalize = self._finalize

        def send(message: Message, previous: Sent | None) -> Deferred[Sent]:
            # No reference to self here: see StackTransport.
            assert isinstance(message, Request)
            if message is first:
                return layer.send_request(message, destination, flow=flow, finalize=finalize)
            return layer.send_request(message, destination, flow=previous.flow if previous is not None else None)

        self.transport = StackTransport(layer, send)
        self._previous = None
        # The manager's absorber takes over Timer K, and Timer M when later
        # 2xx responses may go to the stray handler (a proxy forwards them
        # statelessly); a UAC keeps its INVITE transaction in Accepted, as
        # it ACKs every 2xx.
        transaction = self.stack._manager.start_client(
            first,
            reliable=destination.transport.reliable,
            transport=self.transport,
            user=self,
            hand_off=self._late_2xx_as_stray or not self._is_invite,
        )
        if not transaction.terminated:
            self._transaction_live = True
            self.transport.bind(transaction)

    def start_failed(self, failure: Failure) -> None:
        """Starting raised (the request was refused, e.g. a branch already in use): fail the result with it."""
        self._forget()
        if not self.result.called:
            self.result.errback(failure)

    def _current(self, transaction: ClientTransaction) -> bool:
        """Whether C{transaction} is the one of the hop in use (not one failed over from)."""
        return self.transport is not None and self.transport.transaction is transaction

    def _failover(self, response: Response, synthesized: Synthesized | None) -> bool:
        """
        Go on to the next hop after C{response} (a 503, or a synthesized 408
        or 503), if the rules of the module docstring allow it.
        """
        walk, hop = self.walk, self.hop
        if (
            walk is None
            or hop is None
            or self.provisional
            or self._cancel_requested
            or self.stack._closed
            or walk.exhausted
        ):
            return False
        received = self.stack._receiving if synthesized is None else None
        sent = self.sent
        security = received.security if received is not None else (sent.security if sent is not None else None)
        flow = received.flow if received is not None else self.flow
        self.failovers += (Failover(hop.target, hop.destination, response.status, synthesized, security),)
        self._failed_over = (response, synthesized, security, flow)
        self._log.info(
            "{status} from {destination} for {uri}: trying the next target (RFC 3263 section 4.3)",
            status=response.status,
            destination=hop.destination.peer,
            uri=self.request.uri,
        )
        # The transaction given up on is no longer ours: its end must
        # neither finish the request nor make cancel() forget it.
        self._previous, self.transport = self.transport, None
        self._transaction_live = False
        self._next_hop()
        return True

    @property
    def sent(self) -> Sent | None:
        transport = self.transport if self.transport is not None else self._previous
        return transport.sent if transport is not None else None

    @property
    def flow(self) -> FlowKey | None:
        sent = self.sent
        return sent.flow if sent is not None else None

    @property
    def _is_invite(self) -> bool:
        return self.request.method == "INVITE"

    # ClientTransactionUser

    def response_received(self, transaction: ClientTransaction, response: Response) -> None:
        if not self._current(transaction):
            return
        if response.status < 200:
            self.provisional.append(response)
            if not self.proxy:
                self._early_dialog(response)
            if self._cancel_requested and not self._cancel_sent:
                self._send_cancel()
            self._tell(response)
            return
        if self.result.called:
            if not self.proxy:
                self._extra_2xx(response)
            elif self._is_invite and response.status < 300:
                # A retransmission or a fork: the proxy forwards each (RFC 6026).
                self._tell(response)
            return
        if response.status == 503 and self._failover(response, None):
            return
        if self._is_invite and response.status < 300 and not self.proxy:
            self.dialog = self._confirmed_dialog(response)
            if self.auto_ack:
                self._send_ack(self.dialog, response)
        self._finish(response, None)

    def _tell(self, response: Response) -> None:
        if self.on_provisional is not None:
            try:
                self.on_provisional(response)
            except Exception:
                self._log.failure("The response callback failed on a {status}", status=response.status)

    def timed_out(self, transaction: ClientTransaction) -> None:
        if not self._current(transaction):
            return
        response = build_response(self.request, 408)
        if not self._failover(response, "timeout"):
            self._finish(response, "timeout")

    def transport_failed(self, transaction: ClientTransaction) -> None:
        if not self._current(transaction):
            return
        response = build_response(self.request, 503)
        if self._off_flow(response) or self._failover(response, "transport"):
            return
        self._finish(response, "transport")

    def _off_flow(self, response: Response) -> bool:
        """The flow given to send on failed before any response: plan the request instead."""
        if self._flow is None or self.walk is not None or self.provisional or self._cancel_requested:
            return False
        if self.stack._closed:
            return False
        self._flow = None
        self._failed_over = (response, "transport", None, None)
        self._previous, self.transport = self.transport, None
        self._transaction_live = False
        self.begin()
        return True

    def terminated(self, transaction: ClientTransaction) -> None:
        if not self._current(transaction):
            return
        self._transaction_live = False
        # Nothing reaches it any more; a TU's callback here (a proxy's
        # bound method) would otherwise close a reference cycle through it,
        # left for the garbage collector to find.
        self.on_provisional = None
        # Early dialogs no 2xx confirmed end with the INVITE transaction
        # (RFC 3261 section 13.2.2.4; Timer M covers late forks).
        for early in self._early:
            if early.early:
                self.stack.end_dialog(early)
        # Only when the stack aborts a transaction at shutdown.
        self._finish(build_response(self.request, 503), "transport")
        if self._forget_call is None or not self._forget_call.active():
            self._forget()

    # Dialogs

    def _dialog_id(self, response: Response) -> DialogId | None:
        local = self.request.from_.tag
        return None if local is None else DialogId(self.request.call_id, local, response.to.tag or "")

    def _early_dialog(self, response: Response) -> None:
        """A 101-199 with a To tag to an initial INVITE makes an early dialog (RFC 3261 section 12.1)."""
        if not self._is_invite or self.in_dialog is not None or response.status == 100 or response.to.tag is None:
            return
        dialog_id = self._dialog_id(response)
        if dialog_id is None or dialog_id in self.stack._dialogs:
            return
        early = Dialog.from_uac(self.request, response, over_tls=self._over_tls())
        self._early.append(early)
        self.stack.add_dialog(early)

    def _confirmed_dialog(self, response: Response) -> Dialog:
        """The dialog a 2xx to our INVITE confirms: the one it was sent in, an early one, or a new one."""
        if self.in_dialog is not None:
            self.in_dialog.receive_response(response, self.request.method)
            return self.in_dialog
        dialog_id = self._dialog_id(response)
        known = self.stack._dialogs.get(dialog_id) if dialog_id is not None else None
        if known is not None and known.early and known in self._early:
            known.confirm(response)
            return known
        dialog = Dialog.from_uac(self.request, response, over_tls=self._over_tls())
        self.stack.add_dialog(dialog)
        return dialog

    def _settle_dialogs(self, response: Response) -> None:
        """What the final response does to the dialog table (RFC 3261 sections 12.2.1.2 and 15)."""
        status = response.status
        if self.in_dialog is not None and self.request.method not in ("ACK", "CANCEL"):
            if self.request.method == "BYE" or status in (408, 481):
                self.stack.end_dialog(self.in_dialog)
            elif 200 <= status < 300:
                self.in_dialog.receive_response(response, self.request.method)
        elif self._is_invite and status >= 300:
            for early in self._early:
                self.stack.end_dialog(early)

    # Helpers

    def _over_tls(self) -> bool:
        return self.destination is not None and self.destination.transport is TransportKind.TLS

    def _finish(
        self,
        response: Response,
        synthesized: Synthesized | None,
        *,
        hop_state: tuple[HopSecurity | None, FlowKey | None] | None = None,
    ) -> None:
        """
        Fire the result with C{response}.

        @param hop_state: the security and flow of the hop C{response} came
            from, when it is not the message being received now.
        """
        if self.result.called:
            return
        sent = self.sent
        if hop_state is not None:
            security, flow = hop_state
        else:
            received = self.stack._receiving if synthesized is None else None
            security = received.security if received is not None else (sent.security if sent is not None else None)
            flow = received.flow if received is not None else self.flow
        walk = self.walk
        # No failover (nor CANCEL) after the final response: the walk and
        # the hop are done with, and need not live as long as the
        # transaction lingers (Timers K and M).
        self.walk = self.hop = None
        if not self.proxy:
            self._settle_dialogs(response)
        if self._is_invite and not self.stack._closed and not self.proxy:
            self._forget_call = self.stack.reactor.callLater(64 * self.stack.config.timers.t1, self._linger_ended)
        self.result.callback(
            RequestResult(
                request=sent.message if sent is not None and isinstance(sent.message, Request) else self.request,
                response=response,
                provisional=tuple(self.provisional),
                synthesized=synthesized,
                security=security,
                flow=flow,
                dialog=self.dialog if synthesized is None and self._is_invite and response.status < 300 else None,
                plan=walk.plan if walk is not None else self._failed_plan,
                attempts=walk.attempts if walk is not None else (),
                fallback_reason=walk.fallback_reason if walk is not None else None,
                failovers=self.failovers,
                error=self._error,
            )
        )
        if not self._cancel_sent:
            # The final response came first: no CANCEL (RFC 3261 section 9.1).
            self._fire_cancel(None)

    def _linger_ended(self) -> None:
        self._forget_call = None
        if not self._transaction_live:
            self._forget()

    def _forget(self) -> None:
        """Stop being known to C{cancel()} and C{send_ack()}."""
        key = request_id(self.request)
        if self.stack._invites.get(key) is self:
            del self.stack._invites[key]

    def _stop(self) -> None:
        """The stack shuts down: cancel the timer that would forget us."""
        if self._forget_call is not None and self._forget_call.active():
            self._forget_call.cancel()
        self._forget_call = None
        self._forget()

    def _send_ack(self, dialog: Dialog, response: Response) -> None:
        """ACK a 2xx: a new transaction of its own (RFC 3261 section 13.2.2.4)."""
        tag = response.to.tag or ""
        ack = self.stack._prepare(dialog.create_request("ACK"))
        transport = self.acks[tag] = StackTransport(self.stack._layer, self.stack._send_ack_again)
        transport.send(ack)

    def _extra_2xx(self, response: Response) -> None:
        """A 2xx in Accepted: a retransmission (ACK again) or a fork (ACK, then BYE; RFC 6026 section 8.4)."""
        if not 200 <= response.status < 300 or not self._is_invite:
            return
        tag = response.to.tag or ""
        known = self.acks.get(tag)
        if known is not None:
            known.resend()
            return
        if self.dialog is None or not self.auto_ack:
            return
        try:
            fork = Dialog.from_uac(self.request, response, over_tls=self._over_tls())
            self.stack.add_dialog(fork)
            self._send_ack(fork, response)
        except Exception:
            self._log.failure("Could not acknowledge a forked 2xx to {call_id}", call_id=self.request.call_id)
            return
        self.stack._hang_up(fork, "a forked 2xx")

    # CANCEL (RFC 3261 section 9.1)

    def cancel(self) -> Deferred[RequestResult | None]:
        """
        Cancel the INVITE: see the module docstring for what the Deferred
        fires with.
        """
        if self.result.called:
            return succeed(None)
        if self.transport is None:
            self._finish(build_response(self.request, 487), "cancelled")
            return succeed(None)
        waiter: Deferred[RequestResult | None] = Deferred()
        self._cancel_waiters.append(waiter)
        if not self._cancel_requested:
            self._cancel_requested = True
            if self.provisional:
                self._send_cancel()
        return waiter

    def _send_cancel(self) -> None:
        self._cancel_sent = True
        sent = self.sent
        request = sent.message if sent is not None and isinstance(sent.message, Request) else self.request
        cancel = ClientRequest(self.stack, build_cancel(request), None, False, proxy=self.proxy)
        cancel.result.addCallback(self._fire_cancel)
        # Where the INVITE went, on the flow it used (RFC 3261 section 9.1).
        assert self.hop is not None
        cancel.start(replace(self.hop, flow=self.flow))

    def _fire_cancel(self, result: RequestResult | None) -> None:
        waiters, self._cancel_waiters = self._cancel_waiters, []
        for waiter in waiters:
            waiter.callback(result)


class OutgoingRequest:
    """
    A request sent with L{SIPStack.forward<sipstack.stack.SIPStack.forward>}
    (a proxy's branch): its result, and the way to cancel this one branch.

    @ivar result: fires with the L{RequestResult} (never fails for a
        network reason; a timeout is a synthesized 408, a transport
        failure a synthesized 503).
    """

    __slots__ = ("_client", "result")

    def __init__(self, client: ClientRequest) -> None:
        self._client = client
        self.result: Deferred[RequestResult] = client.result

    @property
    def request(self) -> Request:
        """The request as last sent (our Via, and what C{finalize} added), or as given before it was sent."""
        sent = self._client.sent
        return sent.message if sent is not None and isinstance(sent.message, Request) else self._client.request

    @property
    def flow(self) -> FlowKey | None:
        """The flow it went on, once sent."""
        return self._client.flow

    def cancel(self) -> Deferred[RequestResult | None]:
        """
        Cancel this INVITE branch (RFC 3261 section 9.1), as
        L{SIPStack.cancel<sipstack.stack.SIPStack.cancel>} does: the CANCEL
        waits for a provisional response, is never sent after the final
        one, and a branch not sent yet ends with a local 487.

        @raise LocalProtocolError: the request is not an INVITE.
        """
        if self._client.request.method != "INVITE":
            raise LocalProtocolError(f"only an INVITE can be cancelled, not a {self._client.request.method}")
        return self._client.cancel()


def _keeping_top_via(finalize: Finalize) -> Finalize:
    """C{finalize}, with the top Via of the request it is given kept in what it returns."""

    def finalized(request: Request, transport: TransportKind, sent_by: Peer, security: HopSecurity) -> Request:
        result = finalize(request, transport, sent_by, security)
        return result if result is request else result.with_top_via(request.top_via)

    return finalized


def request_id(request: Request) -> tuple[str, int, str | None]:
    return (request.call_id, request.cseq.number, request.from_.tag)
