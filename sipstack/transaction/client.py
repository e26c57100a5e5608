# -*- test-case-name: tests.transaction.test_invite_client -*-
"""
Client transactions: the INVITE client of RFC 3261 section 17.1.1 as RFC 6026
section 7.2 corrects it, and the non-INVITE client of section 17.1.2.

Rules
=====

Legend: "TU" passes the response to C{response_received}; "ACK" sends the
ACK of section 17.1.1.3 (later retransmissions C{resend()} it); "-" absorbs
the input; "timeout" and "fail" call the TU's C{timed_out} or
C{transport_failed}, then enter Terminated; a letter in brackets is the
timer started on entry.

INVITE client:

  | state      | 1xx            | 2xx              | 300-699                | timers                      | tr. error |
  |------------|----------------|------------------|------------------------|-----------------------------|-----------|
  | Calling    | TU, Proceeding | TU, Accepted (M) | TU, ACK, Completed (D) | A: resend, A=2A; B: timeout | fail      |
  | Proceeding | TU             | TU, Accepted (M) | TU, ACK, Completed (D) |                             | -         |
  | Completed  | -              | -                | resend ACK             | D: Terminated               | fail      |
  | Accepted   | -              | TU               | -                      | M: Terminated               | -         |
  | Terminated | -              | -                | -                      |                             | -         |

Non-INVITE client:

  | state      | 1xx            | 200-699           | timers                               | tr. error |
  |------------|----------------|-------------------|--------------------------------------|-----------|
  | Trying     | TU, Proceeding | TU, Completed (K) | E: resend, E=min(2E, T2); F: timeout | fail      |
  | Proceeding | TU             | TU, Completed (K) | E: resend, E=T2; F: timeout          | fail      |
  | Completed  | -              | -                 | K: Terminated                        | -         |
  | Terminated | -              | -                 |                                      | -         |

Timers A and E run over unreliable transports only; D and K are zero over
reliable ones, so Completed is left at once.  A machine made with
C{hand_off=True} terminates right after passing the response that enters
non-INVITE C{Completed} or INVITE C{Accepted} to its TU, which takes over
Timer K or M (the transaction manager keeps a compact record: see
L{sipstack.transaction.manager}).  Calling L{start} twice, or
passing a response or transport error before L{start}, raises
L{LocalProtocolError}.

Decisions where the RFC leaves room:

  - A transport error ends a transaction where the figures say so (INVITE
    Calling and Completed, non-INVITE Trying and Proceeding) and is absorbed
    elsewhere: the machine sends nothing in those states, and in INVITE
    Proceeding the final response may still arrive on a new connection
    (RFC 3261 section 18.2.2), so a broken flow must not end the
    transaction.
  - The TU hears about a 300-699 response before the ACK is sent, so an ACK
    whose sending fails at once cannot hide the response from it.
"""

from __future__ import annotations

from sipstack.errors import LocalProtocolError
from sipstack.message.headers import Headers
from sipstack.message.message import Request, Response
from sipstack.transaction._base import _Machine
from sipstack.transaction._timers import backoff, linger, timer_d, transaction_timeout
from sipstack.transaction.events import ClientTransactionUser
from sipstack.transaction.states import TransactionState

__all__ = ["ClientTransaction", "InviteClientTransaction", "NonInviteClientTransaction", "build_non_2xx_ack"]

_CALLING = TransactionState.CALLING
_TRYING = TransactionState.TRYING
_PROCEEDING = TransactionState.PROCEEDING
_COMPLETED = TransactionState.COMPLETED
_ACCEPTED = TransactionState.ACCEPTED


def build_non_2xx_ack(invite: Request, response: Response) -> Request:
    """
    The ACK an INVITE client transaction sends for a 300-699 response (RFC
    3261 section 17.1.1.3).

    It has the Request-URI, Call-ID and From of the INVITE, the To of the
    response (with the tag the server added), the INVITE's CSeq number with
    the method ACK, exactly one Via (the INVITE's top one, branch included)
    and the INVITE's Route headers; Max-Forwards is copied (70 when absent)
    and there is no body.  The transport adapter sends it on the INVITE's
    flow and stamps its Via as it stamped the INVITE's, so the two stay equal.

    @raise sipstack.errors.RemoteProtocolError: a header it copies is missing
        or malformed.
    """
    invite_headers = invite.headers
    fields = [("Via", str(invite.top_via))]
    fields.extend(("Route", value) for value in invite_headers.get_all("Route"))
    fields.append(("Max-Forwards", invite_headers.get("Max-Forwards") or "70"))
    fields.append(("From", invite_headers.get("From") or str(invite.from_)))
    fields.append(("To", response.headers.get("To") or str(response.to)))
    fields.append(("Call-ID", invite.call_id))
    fields.append(("CSeq", f"{invite.cseq.number} ACK"))
    fields.append(("Content-Length", "0"))
    return Request(method="ACK", uri=invite.uri, headers=Headers(fields))


class ClientTransaction(_Machine[ClientTransactionUser]):
    """
    What both client transactions share: their TU, L{start}, and the
    handling of timeouts and transport errors.

    Not instantiated itself; the TU callbacks receive one of its subclasses.
    """

    #: The states in which a transport error ends the transaction.
    _FAIL_ON_TRANSPORT_ERROR: frozenset[TransactionState] = frozenset()
    _ROLE = "client transaction cannot send"
    #: Whether L{start} was called (set on the instance by it).
    _started = False

    def start(self) -> None:
        """
        Send the request and start the timers of the initial state.

        @raise LocalProtocolError: the transaction was already started.
        """
        if self._started:
            raise LocalProtocolError("the client transaction was already started")
        self._started = True
        # Timers first: the transport may report a failure from within send(),
        # which terminates the transaction and must find them to cancel.
        self._start_initial_timers()
        self._send(self._request)

    def receive_response(self, response: Response) -> None:
        """
        A response that matched this transaction (RFC 3261 section 17.1.3).

        @raise LocalProtocolError: the transaction was not started.
        """
        if not self._started:
            raise LocalProtocolError("a response arrived for a client transaction that was never started")
        if not self.terminated:
            self._on_response(response)

    def transport_error(self) -> None:
        """
        The transport could not deliver what this transaction sent: tell the
        TU and terminate, unless the state absorbs it (see the module table).

        @raise LocalProtocolError: the transaction was not started.
        """
        if not self._started:
            raise LocalProtocolError("a transport error for a client transaction that was never started")
        if self._state in self._FAIL_ON_TRANSPORT_ERROR:
            self._terminate(lambda: self._user.transport_failed(self))

    def _time_out(self) -> None:
        self._terminate(lambda: self._user.timed_out(self))

    def _notify_terminated(self) -> None:
        self._user.terminated(self)

    def _start_initial_timers(self) -> None:
        raise NotImplementedError

    def _on_response(self, response: Response) -> None:
        raise NotImplementedError


class InviteClientTransaction(ClientTransaction):
    """
    The INVITE client transaction (RFC 3261 section 17.1.1.2, figure 5, as
    replaced by figure 3 of RFC 6026 section 7.2).

    States: C{Calling} (initial), C{Proceeding}, C{Completed}, C{Accepted},
    C{Terminated}.  A 2xx moves to C{Accepted}, where every further 2xx (a
    retransmission, or another branch of a fork) goes to the TU until Timer M;
    the transaction never ACKs a 2xx, the TU does.  A 300-699 response is
    ACKed here, and the ACK resent for each retransmission of it until Timer D.
    ::

                                        |INVITE from TU
                      Timer A fires     |INVITE sent      Timer B fires
                      Reset A,          V                 or Transport Err.
                      INVITE sent +-----------+           inform TU
                        +---------|           |--------------------------+
                        |         |  Calling  |                          |
                        +-------->|           |-----------+              |
       300-699                    +-----------+ 2xx       |              |
       ACK sent                      |  |       2xx to TU |              |
       resp. to TU                   |  |1xx              |              |
       +-----------------------------+  |1xx to TU        |              |
       |                                |                 |              |
       |                1xx             V                 |              |
       |                1xx to TU +-----------+           |              |
       |                +---------|           |           |              |
       |                |         |Proceeding |           |              |
       |                +-------->|           |           |              |
       |                          +-----------+ 2xx       |              |
       |         300-699             |    |     2xx to TU |              |
       |         ACK sent,  +--------+    +---------------+              |
       |         resp. to TU|                             |              |
       |                    |                             |              |
       |                    V                             V              |
       |              +-----------+                   +----------+       |
       +------------->|           |Transport Err.     |          |       |
                      | Completed |Inform TU          | Accepted |       |
                   +--|           |-------+           |          |-+     |
           300-699 |  +-----------+       |           +----------+ |     |
           ACK sent|    ^  |              |               |  ^     |     |
                   |    |  |              |               |  |     |     |
                   +----+  |              |               |  +-----+     |
                           |Timer D fires |  Timer M fires|    2xx       |
                           |-             |             - |    2xx to TU |
                           +--------+     |   +-----------+              |
                                    V     V   V                          |
                                   +------------+                        |
                                   |            |                        |
                                   | Terminated |<-----------------------+
                                   |            |
                                   +------------+

    @see: RFC 3261 sections 17.1.1 and 17.1.1.3; RFC 6026 sections 7.2 and 8.4.
    """

    _FAIL_ON_TRANSPORT_ERROR = frozenset({_CALLING, _COMPLETED})
    _INITIAL = _CALLING
    _FOR_INVITE = True

    def _start_initial_timers(self) -> None:
        self._timer_a = self._values.t1
        if not self._reliable:
            self._start_timer("A", self._timer_a, self._on_timer_a)
        self._start_timer("B", transaction_timeout(self._values), self._time_out)

    def _on_timer_a(self) -> None:
        self._timer_a = backoff(self._timer_a, None)
        self._start_timer("A", self._timer_a, self._on_timer_a)
        self._resend()

    def _on_response(self, response: Response) -> None:
        state = self._state
        status = response.status
        if state is _CALLING or state is _PROCEEDING:
            if status >= 200:
                self._cancel_timers("A", "B")
                if status < 300:
                    self._enter(_ACCEPTED)
                    if not self._hand_off:
                        self._start_timer("M", transaction_timeout(self._values), self._terminate)
                    self._user.response_received(self, response)
                    if self._hand_off:
                        self._hand_over()
                else:
                    self._complete(response)
                return
            if state is _CALLING:
                self._cancel_timers("A", "B")
                self._enter(_PROCEEDING)
            self._user.response_received(self, response)
        elif state is _ACCEPTED:
            if 200 <= status < 300:
                self._user.response_received(self, response)
        elif state is _COMPLETED and status >= 300:
            self._resend()

    def _complete(self, response: Response) -> None:
        """Enter Completed on a 300-699 response: tell the TU, ACK it, start Timer D."""
        ack = build_non_2xx_ack(self._request, response)
        self._enter(_COMPLETED)
        delay = timer_d(self._values, self._reliable)
        if delay:
            self._start_timer("D", delay, self._terminate)
        self._user.response_received(self, response)
        self._send(ack)
        if not delay:
            self._terminate()


class NonInviteClientTransaction(ClientTransaction):
    """
    The non-INVITE client transaction (RFC 3261 section 17.1.2.2, figure 6).

    States: C{Trying} (initial), C{Proceeding}, C{Completed}, C{Terminated}.
    Over an unreliable transport the request is resent on Timer E, whose
    interval doubles from T1 up to T2 while C{Trying} and is T2 in
    C{Proceeding}; Timer F ends the transaction with a timeout.
    ::

                                       |Request from TU
                                       |send request
                   Timer E             V
                   send request  +-----------+
                       +---------|           |-------------------+
                       |         |  Trying   |  Timer F          |
                       +-------->|           |  or Transport Err.|
                                 +-----------+  inform TU        |
                    200-699         |  |                         |
                    resp. to TU     |  |1xx                      |
                    +---------------+  |resp. to TU              |
                    |                  |                         |
                    |   Timer E        V       Timer F           |
                    |   send req +-----------+ or Transport Err. |
                    |  +---------|           | inform TU         |
                    |  |         |Proceeding |------------------>|
                    |  +-------->|           |-----+             |
                    |            +-----------+     |1xx          |
                    |              |      ^        |resp to TU   |
                    | 200-699      |      +--------+             |
                    | resp. to TU  |                             |
                    |              |                             |
                    |              V                             |
                    |            +-----------+                   |
                    |            |           |                   |
                    |            | Completed |                   |
                    |            |           |                   |
                    |            +-----------+                   |
                    |              ^   |                         |
                    |              |   | Timer K                 |
                    +--------------+   | -                       |
                                       |                         |
                                       V                         |
                 NOTE:           +-----------+                   |
                                 |           |                   |
             transitions         | Terminated|<------------------+
             labeled with        |           |
             the event           +-----------+
             over the action
             to take

    @see: RFC 3261 section 17.1.2.
    """

    _FAIL_ON_TRANSPORT_ERROR = frozenset({_TRYING, _PROCEEDING})
    _INITIAL = _TRYING
    _FOR_INVITE = False

    def _start_initial_timers(self) -> None:
        self._timer_e = self._values.t1
        if not self._reliable:
            self._start_timer("E", self._timer_e, self._on_timer_e)
        self._start_timer("F", transaction_timeout(self._values), self._time_out)

    def _on_timer_e(self) -> None:
        if self._state is _TRYING:
            self._timer_e = backoff(self._timer_e, self._values.t2)
        else:
            self._timer_e = self._values.t2
        self._start_timer("E", self._timer_e, self._on_timer_e)
        self._resend()

    def _on_response(self, response: Response) -> None:
        state = self._state
        if state is not _TRYING and state is not _PROCEEDING:
            return
        if response.status < 200:
            if state is _TRYING:
                self._enter(_PROCEEDING)
            self._user.response_received(self, response)
            return
        self._cancel_timers("E", "F")
        self._enter(_COMPLETED)
        delay = linger(self._values, self._reliable)
        if delay and not self._hand_off:
            self._start_timer("K", delay, self._terminate)
        self._user.response_received(self, response)
        if not delay:
            self._terminate()
        elif self._hand_off:
            self._hand_over()
