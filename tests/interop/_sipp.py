"""
Running SIPp from a test without blocking the reactor: the binary, the skip
reason when it is missing, a free local port for it, and one bounded run
whose exit status, statistics and error log come back as a L{SippRun}.
"""

from __future__ import annotations

import csv
import os
import shutil
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

from sipstack.hop import Peer

__all__ = ["SIPP", "NO_SIPP", "SCENARIOS", "SippRun", "free_port", "run_sipp"]

#: The SIPp binary, or L{None} when it is not installed.
SIPP = shutil.which("sipp")

#: The skip reason of tests that need SIPp, or L{None} when it is there.
NO_SIPP = (
    None
    if SIPP is not None
    else "sipp is not installed (Debian/Ubuntu: apt-get install sip-tester); CI installs it, see .ci/run"
)

#: The scenario files of these tests.
SCENARIOS = Path(__file__).resolve().parent / "scenarios"

#: SIPp's own bound on a run (its -timeout), in seconds; a test's timeout is longer.
SIPP_TIMEOUT = 30


@dataclass(frozen=True, slots=True)
class SippRun:
    """
    The outcome of one SIPp run.

    @ivar code: SIPp's exit status: 0 when every call succeeded, 1 when one
        failed, other values for a fatal error.
    @ivar stats: the cumulative counters of the last line of its
        statistics file (C{-trace_stat}), by column name.
    @ivar output: what it printed, for failure messages.
    @ivar errors: its error log (C{-trace_err}), empty when there was none.
    """

    code: int
    stats: Mapping[str, str]
    output: str
    errors: str

    def counter(self, name: str) -> int:
        """A cumulative counter, e.g. C{"SuccessfulCall(C)"}."""
        return int(self.stats[name])

    def describe(self) -> str:
        """A summary for a failed assertion: status, counters and the end of the logs."""
        counters = {
            name: self.stats.get(name)
            for name in ("SuccessfulCall(C)", "FailedCall(C)", "Retransmissions(C)", "FailedTimeoutOnRecv(C)")
        }
        return (
            f"sipp exited {self.code}; {counters}\n"
            f"--- errors:\n{self.errors[-3000:]}\n--- output:\n{self.output[-2000:]}"
        )


def free_port() -> int:
    """
    A port free for both UDP and TCP on 127.0.0.1, for SIPp's C{-p}
    (without it SIPp takes 5060, which another server may hold).
    """
    for _ in range(20):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no port free for both UDP and TCP")


def _last_row(path: Path) -> dict[str, str]:
    try:
        with path.open(newline="") as file:
            rows = list(csv.reader(file, delimiter=";"))
    except FileNotFoundError:
        return {}
    if len(rows) < 2:
        return {}
    return dict(zip(rows[0], rows[-1], strict=False))


async def run_sipp(
    testcase: TestCase,
    target: Peer | None,
    scenario: str,
    transport: str,
    *,
    calls: int,
    rate: int,
    extra: Sequence[str] = (),
    port: int | None = None,
) -> SippRun:
    """
    Run SIPp as a client against C{target} until C{calls} calls ended (or
    its timeout), C{rate} new calls a second, in a directory of its own.

    @param target: where to send; L{None} for a scenario that starts by
        receiving (SIPp as a server, ending after C{calls} calls).
    @param scenario: a file name in L{SCENARIOS}.
    @param transport: C{"u1"} (UDP) or C{"t1"} (TCP, one connection).
    @param extra: further arguments (C{-key}, C{-s}, C{-au}...).
    @param port: SIPp's local port; a free one (L{free_port}) if L{None}.
    """
    assert SIPP is not None
    workdir = Path(testcase.mktemp()).resolve()
    workdir.mkdir(parents=True)
    stat, error_file = workdir / "stat.csv", workdir / "errors.log"
    argv = [
        *([] if target is None else [f"{target.host}:{target.port}"]),
        "-sf",
        str(SCENARIOS / scenario),
        "-t",
        transport,
        "-i",
        "127.0.0.1",
        "-p",
        str(free_port() if port is None else port),
        "-m",
        str(calls),
        "-r",
        str(rate),
        "-l",
        str(max(rate, 10)),
        "-nostdin",
        "-timeout",
        f"{SIPP_TIMEOUT}s",
        "-timeout_error",
        "-recv_timeout",
        "5000",
        "-trace_stat",
        "-stf",
        str(stat),
        "-trace_err",
        "-error_file",
        str(error_file),
        *extra,
    ]
    out, err, code = await getProcessOutputAndValue(SIPP, argv, env=dict(os.environ), path=str(workdir))
    errors = error_file.read_text(errors="replace") if error_file.exists() else ""
    return SippRun(code, _last_row(stat), (out + err).decode(errors="replace"), errors)
