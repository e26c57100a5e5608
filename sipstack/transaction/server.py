# -*- test-case-name: tests.transaction.test_invite_server -*-
"""
Server transactions: the INVITE server of RFC 3261 section 17.2.1 as RFC 6026
section 7.1 corrects it, and the non-INVITE server of section 17.2.2.

Rules
=====

Legend: "send" passes the TU's response to C{send()}; "resend" calls
C{resend()} (the latest response again); "-" absorbs the input; "error"
raises L{LocalProtocolError}; "timeout" and "fail" call the TU's
C{timed_out} or C{transport_failed}, then enter Terminated; "tell" calls
C{transport_failed} and stays; a letter in brackets is the timer started on
entry.

INVITE server, inputs from the TU:

  | state      | respond 1xx | respond 2xx                | respond 300-699        | send_trying()                |
  |------------|-------------|----------------------------|------------------------|------------------------------|
  | Proceeding | send        | send, Accepted (L)         | send, Completed (G, H) | send 100 if nothing sent yet |
  | Completed  | error       | error                      | error                  | -                            |
  | Accepted   | error       | send (TU's retransmission) | error                  | -                            |
  | Confirmed  | error       | error                      | error                  | -                            |
  | Terminated | error       | error                      | error                  | -                            |

INVITE server, inputs from the network and the clock:

  | state      | INVITE again | ACK             | timers                               | tr. error |
  |------------|--------------|-----------------|--------------------------------------|-----------|
  | Proceeding | resend (*)   | -               |                                      | tell      |
  | Completed  | resend       | Confirmed (I)   | G: resend, G=min(2G, T2); H: timeout | tell      |
  | Accepted   | -            | TU ack_received | L: Terminated                        | tell      |
  | Confirmed  | -            | -               | I: Terminated                        | -         |
  | Terminated | -            | -               |                                      | -         |

  (*) only once a provisional response was sent; L{InviteServerTransaction.
  send_trying} sends a 100 (Trying) when the stack decides the TU is slow.

Non-INVITE server:

  | state      | respond 1xx      | respond 200-699     | request again | timers        | tr. error |
  |------------|------------------|---------------------|---------------|---------------|-----------|
  | Trying     | send, Proceeding | send, Completed (J) | -             |               | -         |
  | Proceeding | send             | send, Completed (J) | resend        |               | fail      |
  | Completed  | error            | error               | resend        | J: Terminated | fail      |
  | Terminated | error            | error               | -             |               | -         |

"error" means the TU misused the transaction.  Timer G runs over unreliable
transports only; I and J are zero over reliable ones, so the machine moves
on at once.  A machine made with C{hand_off=True} terminates on entering
non-INVITE C{Completed} (over an unreliable transport) or INVITE
C{Accepted}, its TU taking over Timer J or L (see
L{NonInviteServerTransaction} and the transaction manager).  Requests of
another method than the transaction's (or ACK, for INVITE) raise
L{LocalProtocolError} too: matching them here is a bug of the transaction
manager.

Decisions where the RFC leaves room:

  - Transport errors follow figure 5 of RFC 6026, which replaced figure 7 of
    RFC 3261: in Proceeding, Completed and Accepted the TU is told and the
    transaction stays ("An element encountering an unrecoverable transport
    error when trying to send a response to an INVITE request MUST NOT
    immediately destroy the associated INVITE server transaction state",
    RFC 6026 section 7.1), so retransmitted requests are still recognised.
    Timer H still tells the TU (RFC 3261 section 17.2.1 "MUST indicate to
    the TU that a transaction failure has occurred").
  - A transport error in the non-INVITE Trying state is absorbed: nothing
    was sent yet, and figure 8 has no such arc.
  - The TU's 2xx retransmissions in Accepted go out with C{send()}, as new
    transmissions: the TU may change them (RFC 3261 section 13.3.1.4 only
    asks that they be "the same" response, which the TU decides).
"""

from __future__ import annotations

from sipstack.errors import LocalProtocolError
from sipstack.message.message import Request, Response, build_response
from sipstack.transaction._base import _Machine
from sipstack.transaction._timers import backoff, linger, transaction_timeout
from sipstack.transaction.events import ServerTransactionUser
from sipstack.transaction.states import TransactionState

__all__ = ["ServerTransaction", "InviteServerTransaction", "NonInviteServerTransaction"]

_TRYING = TransactionState.TRYING
_PROCEEDING = TransactionState.PROCEEDING
_COMPLETED = TransactionState.COMPLETED
_CONFIRMED = TransactionState.CONFIRMED
_ACCEPTED = TransactionState.ACCEPTED


class ServerTransaction(_Machine[ServerTransactionUser]):
    """
    What both server transactions share: their TU, the latest response, and
    the checks on L{respond} and L{receive_request}.

    Not instantiated itself; the TU callbacks receive one of its subclasses.
    """

    _ROLE = "server transaction cannot serve"
    #: The latest response sent (set on the instance by each send).
    _last_response: Response | None = None

    @property
    def last_response(self) -> Response | None:
        """
        The latest response sent, which a retransmitted request gets again;
        L{None} before the first one.
        """
        return self._last_response

    def respond(self, response: Response) -> None:
        """
        Send a response from the TU (see the module table for which are
        allowed in which state).

        @raise LocalProtocolError: the state does not allow this response.
        """
        if not self._on_respond(response):
            raise LocalProtocolError(
                f"a {response.status} response cannot be sent by a {type(self).__name__} in state {self._state.value}"
            )

    def receive_request(self, request: Request) -> None:
        """
        A request that matched this transaction (RFC 3261 section 17.2.3): a
        retransmission of the original request or, for INVITE, an ACK.

        @raise LocalProtocolError: the request cannot belong to this
            transaction (the transaction manager matched it wrongly).
        """
        if not self._matches(request.method):
            raise LocalProtocolError(f"a {request.method} does not belong to a {self._request.method} transaction")
        if not self.terminated:
            self._on_request(request)

    def transport_error(self) -> None:
        """A response could not be delivered (see the module table)."""
        raise NotImplementedError

    def _send_response(self, response: Response) -> None:
        self._last_response = response
        self._send(response)

    def _notify_terminated(self) -> None:
        self._user.terminated(self)

    def _matches(self, method: str) -> bool:
        """Whether a request of this method can belong to the transaction."""
        raise NotImplementedError

    def _on_respond(self, response: Response) -> bool:
        """Handle a response from the TU; C{False} when the state does not allow it."""
        raise NotImplementedError

    def _on_request(self, request: Request) -> None:
        raise NotImplementedError


class InviteServerTransaction(ServerTransaction):
    """
    The INVITE server transaction (RFC 3261 section 17.2.1, figure 7, as
    replaced by figure 5 of RFC 6026 section 7.1).

    States: C{Proceeding} (initial), C{Completed}, C{Confirmed}, C{Accepted},
    C{Terminated}.  A 2xx moves to C{Accepted}, where the TU retransmits it
    through L{respond} and the ACK goes to the TU, until Timer L.  A 300-699
    response is retransmitted here on Timer G until the ACK (then
    C{Confirmed} until Timer I) or Timer H.
    ::

                                       |INVITE
                                       |pass INV to TU
                    INVITE             V send 100 if TU won't in 200 ms
                    send response+------------+
                        +--------|            |--------+ 101-199 from TU
                        |        |            |        | send response
                        +------->|            |<-------+
                                 | Proceeding |
                                 |            |--------+ Transport Err.
                                 |            |        | Inform TU
                                 |            |<-------+
                                 +------------+
                    300-699 from TU |    |2xx from TU
                    send response   |    |send response
                     +--------------+    +------------+
                     |                                |
    INVITE           V          Timer G fires         |
    send response +-----------+ send response         |
         +--------|           |--------+              |
         |        |           |        |              |
         +------->| Completed |<-------+      INVITE  |  Transport Err.
                  |           |               -       |  Inform TU
         +--------|           |----+          +-----+ |  +---+
         |        +-----------+    | ACK      |     | v  |   v
         |          ^   |          | -        |  +------------+
         |          |   |          |          |  |            |---+ ACK
         +----------+   |          |          +->|  Accepted  |   | to TU
         Transport Err. |          |             |            |<--+
         Inform TU      |          V             +------------+
                        |      +-----------+        |  ^     |
                        |      |           |        |  |     |
                        |      | Confirmed |        |  +-----+
                        |      |           |        |  2xx from TU
          Timer H fires |      +-----------+        |  send response
          -             |          |                |
                        |          | Timer I fires  |
                        |          | -              | Timer L fires
                        |          V                | -
                        |        +------------+     |
                        |        |            |<----+
                        +------->| Terminated |
                                 |            |
                                 +------------+

    @see: RFC 3261 section 17.2.1; RFC 6026 sections 7.1 and 8.
    """

    _INITIAL = _PROCEEDING
    _FOR_INVITE = True

    def _matches(self, method: str) -> bool:
        return method in {"INVITE", "ACK"}

    def send_trying(self) -> bool:
        """
        Send a 100 (Trying) built from the INVITE (RFC 3261 sections 8.2.6.1
        and 17.2.1), if no response was sent yet and the transaction is
        still in C{Proceeding}.  The stack calls this when the TU has not
        answered within 200 ms, or at once if it knows the TU will be slow.

        @return: whether the 100 was sent.
        """
        if self._state is not _PROCEEDING or self._last_response is not None:
            return False
        self._send_response(build_response(self._request, 100))
        return True

    def transport_error(self) -> None:
        """Tell the TU, and stay (RFC 6026 figure 5), unless Confirmed or Terminated."""
        if self._state in (_PROCEEDING, _COMPLETED, _ACCEPTED):
            self._user.transport_failed(self)

    def _on_respond(self, response: Response) -> bool:
        status = response.status
        state = self._state
        if state is _ACCEPTED:
            if not 200 <= status < 300:
                return False
        elif state is not _PROCEEDING:
            return False
        elif status >= 300:
            self._enter(_COMPLETED)
            self._timer_g = self._values.t1
            if not self._reliable:
                self._start_timer("G", self._timer_g, self._on_timer_g)
            self._start_timer("H", transaction_timeout(self._values), self._on_timer_h)
        elif status >= 200:
            self._enter(_ACCEPTED)
            if self._hand_off:
                self._send_response(response)
                self._hand_over()
                return True
            self._start_timer("L", transaction_timeout(self._values), self._terminate)
        self._send_response(response)
        return True

    def _on_timer_g(self) -> None:
        self._timer_g = backoff(self._timer_g, self._values.t2)
        self._start_timer("G", self._timer_g, self._on_timer_g)
        self._resend()

    def _on_timer_h(self) -> None:
        self._terminate(lambda: self._user.timed_out(self))

    def _on_request(self, request: Request) -> None:
        state = self._state
        if request.method == "INVITE":
            if state is _COMPLETED or (state is _PROCEEDING and self._last_response is not None):
                self._resend()
        elif state is _COMPLETED:
            self._cancel_timers("G", "H")
            self._enter(_CONFIRMED)
            delay = linger(self._values, self._reliable)
            if delay:
                self._start_timer("I", delay, self._terminate)
            else:
                self._terminate()
        elif state is _ACCEPTED:
            self._user.ack_received(self, request)


class NonInviteServerTransaction(ServerTransaction):
    """
    The non-INVITE server transaction (RFC 3261 section 17.2.2, figure 8).

    States: C{Trying} (initial), C{Proceeding}, C{Completed}, C{Terminated}.
    Retransmitted requests are absorbed until the TU answers, then get the
    latest response again; Timer J keeps the transaction in C{Completed}
    long enough to answer every retransmission.
    ::

                                      |Request received
                                      |pass to TU
                                      V
                                +-----------+
                                |           |
                                | Trying    |-------------+
                                |           |             |
                                +-----------+             |200-699 from TU
                                      |                   |send response
                                      |1xx from TU        |
                                      |send response      |
                                      |                   |
                   Request            V      1xx from TU  |
                   send response+-----------+send response|
                       +--------|           |--------+    |
                       |        | Proceeding|        |    |
                       +------->|           |<-------+    |
                +<--------------|           |             |
                |Trnsprt Err    +-----------+             |
                |Inform TU            |                   |
                |                     |                   |
                |                     |200-699 from TU    |
                |                     |send response      |
                |  Request            V                   |
                |  send response+-----------+             |
                |      +--------|           |             |
                |      |        | Completed |<------------+
                |      +------->|           |
                +<--------------|           |
                |Trnsprt Err    +-----------+
                |Inform TU            |
                |                     |Timer J fires
                |                     |-
                |                     |
                |                     V
                |               +-----------+
                |               |           |
                +-------------->| Terminated|
                                |           |
                                +-----------+

    A transaction made with C{hand_off=True} over an unreliable transport
    leaves C{Completed} for C{Terminated} as soon as its final response is
    sent, without starting Timer J, and says so in C{handed_off}: its TU
    (the transaction manager) answers the retransmitted requests itself
    with the same response until Timer J would have fired, from a compact
    table rather than a live machine (L{sipstack.transaction.manager}).
    The RFC behaviour seen on the wire is the same; only the object that
    produces it changes.

    @see: RFC 3261 section 17.2.2.
    """

    _INITIAL = _TRYING
    _FOR_INVITE = False

    def _matches(self, method: str) -> bool:
        return method == self._request.method

    def transport_error(self) -> None:
        """Tell the TU and terminate, once a response was sent; absorbed in Trying."""
        if self._state is _PROCEEDING or self._state is _COMPLETED:
            self._terminate(lambda: self._user.transport_failed(self))

    def _on_respond(self, response: Response) -> bool:
        state = self._state
        if state is not _TRYING and state is not _PROCEEDING:
            return False
        if response.status < 200:
            if state is _TRYING:
                self._enter(_PROCEEDING)
            self._send_response(response)
            return True
        self._enter(_COMPLETED)
        if self._reliable:
            self._send_response(response)
            self._terminate()
        elif self._hand_off:
            self._send_response(response)
            self._hand_over()
        else:
            self._start_timer("J", transaction_timeout(self._values), self._terminate)
            self._send_response(response)
        return True

    def _on_request(self, request: Request) -> None:
        if self._state is _PROCEEDING or self._state is _COMPLETED:
            self._resend()
