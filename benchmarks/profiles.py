"""
Reading profiles of the OPTIONS responder: own and inclusive time per function.

L{benchmarks.transport_bench} profiles the responder under SIPp load, with
py-spy (collapsed stacks, C{--format raw}) or cProfile (a pstats file); this
module turns either into the same L{Profile}, so the report reads the same
whichever profiler ran.  It is kept apart so that the driver stays about
running things and this stays about counting.

The reactor's wait for I/O is not work: it is counted apart (L{Profile.idle})
and left out of every share, so "15%" means 15% of the time the responder
was busy, which is what an optimisation can win back.
"""

from __future__ import annotations

import pstats
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["IDLE_FRAMES", "Profile", "from_collapsed", "from_pstats", "own_time_table"]

# The reactor's wait for I/O.  py-spy's own idle detection misses some of it
# (it sees the frame that called epoll, not the sleep), so it is told apart
# by name; cProfile names the C call itself.
IDLE_FRAMES = (
    "EPollReactor.doPoll ",
    "PollReactor.doPoll ",
    "SelectReactor.doSelect ",
    "<method 'poll' of 'select.epoll' objects>",
    "<method 'poll' of 'select.poll' objects>",
    "<built-in method select.select>",
)


@dataclass
class Profile:
    """
    Where the responder's time went during one load run.

    @ivar own: (function, own time) pairs, most first.
    @ivar inclusive: each function's time including its callees.
    @ivar busy: total own time, idle left out.
    @ivar idle: time waiting in the reactor's poll.
    @ivar unit: what the times count (C{samples} for py-spy, C{us} for cProfile).
    """

    own: list[tuple[str, int]]
    inclusive: Mapping[str, int]
    busy: int
    idle: int
    unit: str


def from_collapsed(lines: Sequence[str]) -> Profile:
    """
    A profile from collapsed stacks (C{root;...;leaf COUNT}, py-spy's C{raw} format).

    Own time is the leaf's; inclusive time counts a function once per stack
    it appears in, so recursion is not counted twice.
    """
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    busy = idle = 0
    for line in lines:
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        if stack.rsplit(";", 1)[-1].startswith(IDLE_FRAMES):
            idle += samples
            continue
        own[stack.rsplit(";", 1)[-1]] += samples
        for frame in set(stack.split(";")):
            inclusive[frame] += samples
        busy += samples
    return Profile(own.most_common(), inclusive, busy, idle, "samples")


def from_pstats(path: Path) -> Profile:
    """
    A profile from a cProfile stats file, in microseconds.

    cProfile's cumulative time of the reactor loop includes the idle wait,
    so the wait is taken out of every inclusive time that contains it.
    """
    table: dict[Any, Any] = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]  # undocumented but stable
    own: list[tuple[str, int]] = []
    inclusive: dict[str, int] = {}
    idle = 0
    for (file, line, name), (_, _, own_time, cumulative, _) in table.items():
        label = f"{name} ({Path(file).name}:{line})"
        if label.startswith(IDLE_FRAMES):
            idle += int(own_time * 1_000_000)
            continue
        own.append((label, int(own_time * 1_000_000)))
        inclusive[label] = int(cumulative * 1_000_000)
    own.sort(key=lambda item: item[1], reverse=True)
    inclusive = {label: us - idle if us >= idle else us for label, us in inclusive.items()}
    return Profile(own, inclusive, sum(us for _, us in own), idle, "us")


def own_time_table(profile: Profile, top: int) -> str:
    """The C{top} functions by own time, with their inclusive time, as a Markdown table."""
    rows = [
        f"| # | function (file:line) | own {profile.unit} | own % of busy | inclusive % of busy |",
        "|---|---|---|---|---|",
    ]
    total = max(profile.busy, 1)
    for index, (frame, value) in enumerate(profile.own[:top], 1):
        inclusive = profile.inclusive.get(frame, value)
        rows.append(
            f"| {index} | `{frame}` | {value} | {100.0 * value / total:.1f}% | {100.0 * inclusive / total:.1f}% |"
        )
    return "\n".join(rows)
