# -*- test-case-name: tests.transaction.test_properties -*-
"""
The timers of RFC 3261 section 17 (table 4 of appendix A) and RFC 6026, and
the bookkeeping of the named timers a transaction has running.

  | timer | value (unreliable / reliable)  | machine, state                   | purpose                       |
  |-------|--------------------------------|----------------------------------|-------------------------------|
  | A     | T1, doubling / not run         | INVITE client, Calling           | INVITE retransmission         |
  | B     | 64*T1                          | INVITE client, Calling           | INVITE transaction timeout    |
  | D     | max(32 s, 64*T1) / 0           | INVITE client, Completed         | absorb response retransmits   |
  | E     | min(2^n*T1, T2), T2 / not run  | non-INVITE client, Trying/Proc.  | request retransmission        |
  | F     | 64*T1                          | non-INVITE client, Trying/Proc.  | non-INVITE timeout            |
  | G     | min(2^n*T1, T2) / not run      | INVITE server, Completed         | response retransmission       |
  | H     | 64*T1                          | INVITE server, Completed         | wait for ACK                  |
  | I     | T4 / 0                         | INVITE server, Confirmed         | absorb ACK retransmits        |
  | J     | 64*T1 / 0                      | non-INVITE server, Completed     | absorb request retransmits    |
  | K     | T4 / 0                         | non-INVITE client, Completed     | absorb response retransmits   |
  | L     | 64*T1                          | INVITE server, Accepted          | absorb INVITE retransmits     |
  | M     | 64*T1                          | INVITE client, Accepted          | accept 2xx retransmits/forks  |

A timer whose value is zero is not scheduled: the machine moves on at once,
so a transaction over a reliable transport leaves no timer behind.

Timer D is "at least 32 seconds" (section 17.1.1.2); it is never shorter than
64*T1, the server's Timer H, so the ACK is still resent for every final
response retransmission a server with a larger T1 may send.
"""

from __future__ import annotations

from collections.abc import Callable

from sipstack.clock import Clock, DelayedCall
from sipstack.config import TimerValues

__all__ = ["TIMER_D_MINIMUM", "TimerSet", "backoff", "transaction_timeout", "timer_d", "linger"]

#: The shortest Timer D over an unreliable transport (RFC 3261 section 17.1.1.2).
TIMER_D_MINIMUM = 32.0


def backoff(interval: float, cap: float | None) -> float:
    """
    The retransmission interval that follows C{interval}: double it, but no
    more than C{cap} (T2 for Timers E and G; Timer A has no cap).
    """
    doubled = interval * 2
    return doubled if cap is None else min(doubled, cap)


def transaction_timeout(values: TimerValues) -> float:
    """64*T1: Timers B, F, H, L and M, and Timer J over unreliable transports."""
    return 64 * values.t1


def timer_d(values: TimerValues, reliable: bool) -> float:
    """Timer D: zero over a reliable transport, else the longer of 32 s and 64*T1."""
    return 0.0 if reliable else max(TIMER_D_MINIMUM, transaction_timeout(values))


def linger(values: TimerValues, reliable: bool) -> float:
    """Timers I and K: zero over a reliable transport, else T4."""
    return 0.0 if reliable else values.t4


class TimerSet:
    """
    The named timers one transaction has running on its clock.

    Starting a timer replaces a running one of the same name; a timer that
    fires is forgotten before its callback runs, so the callback may start
    it again.
    """

    __slots__ = ("_calls", "_clock")

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._calls: dict[str, DelayedCall] = {}

    def start(self, name: str, delay: float, callback: Callable[[], None]) -> None:
        """Run C{callback} in C{delay} seconds, unless L{cancel}led first."""
        self.cancel(name)
        self._calls[name] = self._clock.callLater(delay, self._fire, name, callback)

    def _fire(self, name: str, callback: Callable[[], None]) -> None:
        del self._calls[name]
        callback()

    def cancel(self, name: str) -> None:
        """Stop the timer C{name} if it is running."""
        call = self._calls.pop(name, None)
        if call is not None and call.active():
            call.cancel()

    def cancel_all(self) -> None:
        """Stop every timer."""
        for name in list(self._calls):
            self.cancel(name)

    @property
    def running(self) -> frozenset[str]:
        """The names of the timers that have neither fired nor been cancelled."""
        return frozenset(self._calls)
