"""
How fast sipstack parses and re-serializes SIP messages, next to C{twisted.protocols.sip}.

A proxy's per-message cost is dominated by reading a datagram, pulling out the
few fields it routes on, and writing the message out again, so that is what is
timed: for every message of a fixed, realistic corpus, each side parses the
bytes, reads the top Via branch and host, the From tag and URI, the To URI,
the CSeq number and method, the Call-ID and the first Contact URI, and
serializes the whole message back to bytes.  sipstack validates eagerly and
caches its typed values, so reading them after the parse is cheap by design;
they are still read, so that nothing the proxy needs is left unparsed.

Twisted is the baseline because sipstack replaces its SIP module: the same
corpus goes through L{twisted.protocols.sip.MessagesParser}, and the same
fields are forced with C{parseViaHeader}, C{parseAddress} and a split of the
CSeq, with C{toString()} (encoded, as C{Base.sendMessage} does) for the
serialization.  Twisted parses less than sipstack does (only the headers named
above, no Request-URI, no validation), so the ratio flatters Twisted if
anything.

sipstack keeps the bytes of a message parsed in canonical form and writes an
unchanged message as those bytes (any change makes a new message, written
from its values), as real stacks do; the corpus is canonical, so this is the
serialization timed here.  A proxy that changes what it forwards (a Via
added, Max-Forwards decremented) pays the full serializer, about 2 us more
per message on the machine the numbers in the issue come from.

Before anything is timed, both sides must produce the expected field values
for every message and re-serialize it byte for byte, so a parser that skips
work or fails quietly cannot look fast.  Repetitions of the two sides are
interleaved, alternating which goes first, so that they share the machine's
noise; the median of the repetitions is the result and the minimum the best
case.  The garbage collector is off while a repetition runs, as C{timeit}
does, unless C{--gc} is given.

Run::

    .venv/bin/python benchmarks/parse.py            # 7 x 2000 passes over the corpus
    .venv/bin/python benchmarks/parse.py --quick    # 3 x 200, a smoke test
    .venv/bin/python benchmarks/parse.py --json
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TextIO

if __name__ == "__main__" and not __package__:
    # Run as a script, sys.path starts with benchmarks/: put the checkout first
    # so the numbers are those of this working tree, not of an installed copy.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import twisted
from twisted.protocols import sip

import sipstack
from benchmarks.corpus import CORPUS, CorpusEntry, Fields
from sipstack.message import SIPURI, parse_datagram, serialize

__all__ = ["SipstackSide", "TwistedSide", "check", "main", "run"]

#: What one side produces for one message: the fields and the re-serialized bytes.
Forced = tuple[Fields, bytes]


# ---------------------------------------------------------------------------
# The two sides
# ---------------------------------------------------------------------------


class Side(Protocol):
    """One parser under test: bytes in, the proxy's fields and the re-serialized bytes out."""

    name: str

    def force(self, data: bytes) -> Forced:
        """Parse C{data}, read every field of L{Fields}, and serialize the message."""


class SipstackSide:
    """sipstack: C{parse_datagram}, the typed accessors, C{serialize}."""

    name = "sipstack"

    def force(self, data: bytes) -> Forced:
        """
        @raise ValueError: the datagram is a keep-alive, the Contact is C{*},
            or a URI is not a SIP URI (none of which the corpus holds).
        """
        message = parse_datagram(data)
        if message is None:
            raise ValueError("parse_datagram found only whitespace")
        via = message.top_via
        from_ = message.from_
        from_uri = from_.uri
        to_uri = message.to.uri
        cseq = message.cseq
        contacts = message.contacts
        if not isinstance(contacts, list):
            raise ValueError("Contact is '*'")
        contact_uri = contacts[0].uri
        if not (isinstance(from_uri, SIPURI) and isinstance(to_uri, SIPURI) and isinstance(contact_uri, SIPURI)):
            raise ValueError("not a SIP URI")
        fields: Fields = (
            via.branch,
            via.host,
            from_.tag,
            from_uri.user,
            from_uri.host,
            to_uri.user,
            to_uri.host,
            cseq.number,
            cseq.method,
            message.call_id,
            contact_uri.user,
            contact_uri.host,
        )
        return fields, serialize(message)


class TwistedSide:
    """
    C{twisted.protocols.sip}: one C{MessagesParser} reused for every datagram,
    fed and flushed as C{Base.datagramReceived} does, then the header parsers.
    """

    name = "twisted.protocols.sip"

    def __init__(self) -> None:
        self._received: list[sip.Message] = []
        self._parser = sip.MessagesParser(self._received.append)

    def force(self, data: bytes) -> Forced:
        """
        @raise IndexError: the parser delivered no message (it logs the fault
            and drops the datagram rather than raising).
        """
        parser = self._parser
        parser.dataReceived(data)
        parser.dataDone()
        message = self._received.pop()
        headers = message.headers
        via = sip.parseViaHeader(headers["via"][0])
        _, from_url, from_params = sip.parseAddress(headers["from"][0])
        _, to_url, _ = sip.parseAddress(headers["to"][0])
        number, method = headers["cseq"][0].split()
        _, contact_url, _ = sip.parseAddress(headers["contact"][0])
        fields: Fields = (
            via.branch,
            via.host,
            from_params.get("tag"),
            from_url.username,
            from_url.host,
            to_url.username,
            to_url.host,
            int(number),
            method,
            headers["call-id"][0],
            contact_url.username,
            contact_url.host,
        )
        return fields, message.toString().encode("utf-8")

    @property
    def pending(self) -> int:
        """Messages the parser delivered that L{force} did not take (must stay 0)."""
        return len(self._received)


# ---------------------------------------------------------------------------
# Checking and timing
# ---------------------------------------------------------------------------


class CorpusMismatch(AssertionError):
    """A side read a wrong value or did not reproduce a message: its timings would mean nothing."""


def check(side: Side, corpus: Sequence[CorpusEntry] = CORPUS) -> None:
    """
    Run C{side} once over C{corpus} and compare with the expected values.

    @raise CorpusMismatch: a field differs, or the re-serialized message is
        not the original bytes.
    """
    for entry in corpus:
        try:
            fields, wire = side.force(entry.data)
        except Exception as error:
            raise CorpusMismatch(f"{side.name} failed on {entry.name}: {error!r}") from error
        if fields != entry.expected:
            raise CorpusMismatch(f"{side.name} read {fields!r} from {entry.name}, expected {entry.expected!r}")
        if wire != entry.data:
            raise CorpusMismatch(f"{side.name} serialized {entry.name} as {wire!r}, expected {entry.data!r}")
    if isinstance(side, TwistedSide) and side.pending:
        raise CorpusMismatch(f"{side.name} delivered {side.pending} messages too many")


def _time(force: Callable[[bytes], Forced], datagrams: tuple[bytes, ...], iterations: int, keep_gc: bool) -> float:
    """Seconds for C{iterations} passes of C{force} over C{datagrams}."""
    gc.collect()
    gc_was_enabled = gc.isenabled()
    if not keep_gc:
        gc.disable()
    try:
        start = time.perf_counter()
        for _ in range(iterations):
            for data in datagrams:
                force(data)
        return time.perf_counter() - start
    finally:
        if gc_was_enabled:
            gc.enable()


@dataclass(frozen=True, slots=True)
class SideResult:
    """
    The timings of one side.

    @ivar name: the side's name.
    @ivar times: seconds per repetition, in the order they ran.
    @ivar messages: messages parsed per repetition.
    """

    name: str
    times: tuple[float, ...]
    messages: int

    @property
    def median_rate(self) -> float:
        """Messages per second at the median repetition: the headline number."""
        return self.messages / statistics.median(self.times)

    @property
    def best_rate(self) -> float:
        """Messages per second in the fastest repetition: the least disturbed one."""
        return self.messages / min(self.times)

    def as_json(self) -> dict[str, Any]:
        """Plain data for C{--json}."""
        return {
            "median_rate": self.median_rate,
            "best_rate": self.best_rate,
            "median_seconds": statistics.median(self.times),
            "min_seconds": min(self.times),
            "median_us_per_message": statistics.median(self.times) / self.messages * 1e6,
            "times": list(self.times),
        }


def run(sides: Sequence[Side], repeats: int, iterations: int, keep_gc: bool = False) -> list[SideResult]:
    """
    Check every side, warm it up, then time C{repeats} interleaved repetitions.

    @raise CorpusMismatch: a side failed the check; nothing is timed.
    """
    for side in sides:
        check(side)
    datagrams = tuple(entry.data for entry in CORPUS)
    for side in sides:
        _time(side.force, datagrams, max(1, iterations // 10), keep_gc)
    times: list[list[float]] = [[] for _ in sides]
    order = list(range(len(sides)))
    for repetition in range(repeats):
        for index in order if repetition % 2 == 0 else reversed(order):
            times[index].append(_time(sides[index].force, datagrams, iterations, keep_gc))
    messages = iterations * len(datagrams)
    return [SideResult(side.name, tuple(side_times), messages) for side, side_times in zip(sides, times, strict=True)]


# ---------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------


def _parameters(repeats: int, iterations: int, keep_gc: bool) -> dict[str, Any]:
    return {
        "corpus": [entry.name for entry in CORPUS],
        "corpus_bytes": sum(len(entry.data) for entry in CORPUS),
        "repeats": repeats,
        "iterations": iterations,
        "messages_per_repetition": iterations * len(CORPUS),
        "gc": "enabled" if keep_gc else "disabled while timing",
        "order": "interleaved, alternating which side runs first",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "sipstack": f"{sipstack.__version__} ({Path(sipstack.__file__).parent})",
        "twisted": twisted.__version__,
    }


def _write_text(parameters: dict[str, Any], results: list[SideResult], out: TextIO) -> None:
    out.write("Parse + read proxy fields + serialize, per message\n")
    out.write(f"corpus:     {', '.join(parameters['corpus'])} ({parameters['corpus_bytes']} bytes)\n")
    out.write(
        f"repetition: {parameters['repeats']} x {parameters['iterations']} passes "
        f"= {parameters['messages_per_repetition']} messages each, {parameters['order']}\n"
    )
    out.write(f"gc:         {parameters['gc']}\n")
    out.write(
        f"versions:   {parameters['python']}, sipstack {parameters['sipstack']}, "
        f"Twisted {parameters['twisted']} ({parameters['platform']})\n\n"
    )
    out.write(f"{'':24}{'median msg/s':>14}{'best msg/s':>14}{'median us/msg':>15}\n")
    for result in results:
        per_message = 1e6 / result.median_rate
        out.write(f"{result.name:24}{result.median_rate:>14,.0f}{result.best_rate:>14,.0f}{per_message:>15.2f}\n")
    if len(results) == 2:
        ratio = results[0].median_rate / results[1].median_rate
        out.write(f"\nratio of medians ({results[0].name} / {results[1].name}): {ratio:.2f}x\n")


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    """Run the benchmark and report it; the exit status is 0, or 1 when a side fails the check."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="3 x 200 passes: a smoke test, not a measurement")
    parser.add_argument("--repeats", type=int, help="repetitions per side (default 7, --quick 3)")
    parser.add_argument("--iterations", type=int, help="passes over the corpus per repetition (default 2000)")
    parser.add_argument("--only", choices=("sipstack", "twisted"), help="time one side (for profiling)")
    parser.add_argument("--gc", action="store_true", help="leave the garbage collector on while timing")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    options = parser.parse_args(argv)
    repeats = options.repeats or (3 if options.quick else 7)
    iterations = options.iterations or (200 if options.quick else 2000)
    if repeats < 1 or iterations < 1:
        parser.error("--repeats and --iterations must be at least 1")
    sides: list[Side] = []
    if options.only in (None, "sipstack"):
        sides.append(SipstackSide())
    if options.only in (None, "twisted"):
        sides.append(TwistedSide())
    try:
        results = run(sides, repeats, iterations, options.gc)
    except CorpusMismatch as error:
        sys.stderr.write(f"not timed: {error}\n")
        return 1
    parameters = _parameters(repeats, iterations, options.gc)
    if options.json:
        report: dict[str, Any] = {
            "parameters": parameters,
            "results": {result.name: result.as_json() for result in results},
        }
        if len(results) == 2:
            report["ratio_of_medians"] = results[0].median_rate / results[1].median_rate
            report["ratio"] = f"{results[0].name} / {results[1].name}"
        json.dump(report, out, indent=2)
        out.write("\n")
    else:
        _write_text(parameters, results, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
