"""
Tests for what the four transaction machines share at construction: the
initial state of each RFC figure, the methods each refuses, and nothing sent
or scheduled before the machine is started or given input.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sipstack.errors import LocalProtocolError
from sipstack.transaction import (
    InviteClientTransaction,
    InviteServerTransaction,
    NonInviteClientTransaction,
    NonInviteServerTransaction,
    TransactionState,
)

from . import TIMERS, RecordingTransport, RecordingUser, make_request

_Machine = InviteClientTransaction | NonInviteClientTransaction | InviteServerTransaction | NonInviteServerTransaction

_MACHINES: dict[type[_Machine], tuple[TransactionState, set[str]]] = {
    InviteClientTransaction: (TransactionState.CALLING, {"INVITE"}),
    NonInviteClientTransaction: (TransactionState.TRYING, {"OPTIONS", "BYE", "CANCEL", "REGISTER"}),
    InviteServerTransaction: (TransactionState.PROCEEDING, {"INVITE"}),
    NonInviteServerTransaction: (TransactionState.TRYING, {"OPTIONS", "BYE", "CANCEL", "REGISTER"}),
}

_METHODS = ("INVITE", "ACK", "OPTIONS", "BYE", "CANCEL", "REGISTER")


def _build(cls: type[_Machine], method: str) -> tuple[_Machine, RecordingTransport, RecordingUser]:
    clock = Clock()
    transport, user = RecordingTransport(clock), RecordingUser(clock)
    transaction = cls(make_request(method), clock=clock, timers=TIMERS, reliable=False, transport=transport, user=user)
    return transaction, transport, user


class ConstructionTests(SynchronousTestCase):
    """Every machine takes the same arguments and checks the request's method."""

    def test_initial_state_and_refusals(self) -> None:
        """Each machine starts in its figure's initial state and refuses the methods it cannot serve."""
        for cls, (initial, accepted) in _MACHINES.items():
            for method in _METHODS:
                if method not in accepted:
                    with self.assertRaises(LocalProtocolError, msg=f"{cls.__name__} {method}") as caught:
                        _build(cls, method)
                    self.assertIn(method, str(caught.exception))
                    continue
                transaction, transport, user = _build(cls, method)
                self.assertIsInstance(transaction, cls)
                self.assertEqual((transaction.state, transaction.history), (initial, (initial,)))
                self.assertEqual(transaction.pending_timers, frozenset())
                self.assertEqual(transaction.request.method, method)
                self.assertFalse(transaction.terminated)
                self.assertEqual((transport.sent, user.calls), ([], []))
