# -*- test-case-name: tests.test_clock -*-
"""
The clock the sans-IO core is driven by.

These Protocols are the subset of Twisted's C{IReactorTime} the core needs, so
a reactor, a C{twisted.internet.task.Clock} or any other object with the same
two methods can be injected, and the core never imports Twisted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["Clock", "DelayedCall"]


class DelayedCall(Protocol):
    """A scheduled call that can be cancelled (C{IDelayedCall}'s subset)."""

    def cancel(self) -> None:
        """Cancel the call; it must still be pending."""

    def active(self) -> bool:
        """Whether the call has neither run nor been cancelled."""


class Clock(Protocol):
    """A source of time and timers (C{IReactorTime}'s subset)."""

    def seconds(self) -> float:
        """The current time in seconds."""

    def callLater(self, delay: float, callable: Callable[..., Any], *args: Any, **kw: Any) -> DelayedCall:
        """Call C{callable} after C{delay} seconds."""
