"""
Requests per second through the transaction layer: two L{SIPStack}s in one
process, talking over loopback UDP.

Two workloads, each bounded by a count and a time limit:

  - OPTIONS/200: a client stack sends OPTIONS to a server stack that
    answers 200 at once, keeping C{--window} requests in flight.
  - Calls: INVITE / 200 / ACK, then BYE / 200, with C{--window} calls in
    flight (each call is five messages and two client transactions, plus
    the stack-made ACK).

Both stacks and the reactor share one process and one core, so the figures
are the cost of both ends together: the client's and the server's message
parsing, transactions and timers.  CPU is the process's user + system time
(C{time.process_time}) over the wall time of the run.

Over UDP a non-INVITE server transaction lingers 64*T1 (Timer J) and an
INVITE client transaction ends at once with the 2xx (Timer M keeps it
64*T1): the default timers are used, so those tables grow as they would in
production.

Run::

    .venv/bin/python benchmarks/stack.py                 # 20000 OPTIONS, 5000 calls, 20 s cap each
    .venv/bin/python benchmarks/stack.py --quick         # 2000 / 500, a smoke test
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

if __name__ == "__main__" and not __package__:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from twisted.internet.defer import Deferred
from twisted.internet.task import react

from sipstack.dialog import build_request
from sipstack.hop import Peer
from sipstack.message import Response
from sipstack.stack import IncomingRequest, RequestResult, SIPStack


def _answer(incoming: IncomingRequest) -> Response:
    return incoming.response(200)


async def _run(name: str, count: int, window: int, limit: float, one: Any) -> dict[str, float | int | str]:
    """Run C{one()} C{count} times, C{window} at a time, for at most C{limit} seconds."""
    done = 0
    failed = 0
    started = 0
    finished: Deferred[None] = Deferred()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    deadline = wall0 + limit

    def launch() -> None:
        nonlocal started
        started += 1
        one().addCallbacks(complete, lambda failure: complete(None))

    def complete(ok: bool | None) -> None:
        nonlocal done, failed
        done += 1
        if not ok:
            failed += 1
        if started < count and time.perf_counter() < deadline:
            launch()
        elif done == started and not finished.called:
            finished.callback(None)

    for _ in range(min(window, count)):
        launch()
    await finished
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return {
        "workload": name,
        "completed": done,
        "failed": failed,
        "seconds": round(wall, 3),
        "per_second": round(done / wall, 1),
        "cpu_pct": round(100 * cpu / wall, 1),
        "cpu_ms_each": round(1000 * cpu / max(done, 1), 3),
    }


async def main(reactor: Any, options: argparse.Namespace) -> None:
    client, server = SIPStack(reactor), SIPStack(reactor)
    await client.listen("udp:0:interface=127.0.0.1")
    peer: Peer = await server.listen("udp:0:interface=127.0.0.1")
    server.on_request(_answer)
    uri = f"sip:bob@{peer}"
    contact = client.contact()

    def options_once() -> Deferred[bool]:
        request = build_request("OPTIONS", uri, from_="<sip:a@example.com>", to="<sip:b@example.com>")
        return client.request(request).addCallback(lambda result: result.status == 200)

    def call_once() -> Deferred[bool]:
        invite = build_request("INVITE", uri, from_="<sip:a@example.com>", to="<sip:b@example.com>", contact=contact)

        def hang_up(result: RequestResult) -> Deferred[bool] | bool:
            if result.status != 200 or result.dialog is None:
                return False
            bye = client.request(result.dialog.create_request("BYE"))
            return bye.addCallback(lambda answer: answer.status == 200)

        return client.request(invite).addCallback(hang_up)

    results = [
        await _run("OPTIONS/200", options.options, options.window, options.limit, options_once),
        await _run("INVITE-BYE calls", options.calls, options.window, options.limit, call_once),
    ]
    for result in results:
        print(
            f"{result['workload']:<17} {result['completed']:>6} done ({result['failed']} failed) in "
            f"{result['seconds']:>6} s: {result['per_second']:>8}/s, process CPU {result['cpu_pct']}% "
            f"({result['cpu_ms_each']} ms each)"
        )
    await client.close(0.0)
    await server.close(0.0)


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--options", type=int, default=20_000, help="OPTIONS requests to send")
    parser.add_argument("--calls", type=int, default=5_000, help="INVITE-BYE calls to place")
    parser.add_argument("--window", type=int, default=50, help="requests or calls in flight")
    parser.add_argument("--limit", type=float, default=20.0, help="seconds each workload may take at most")
    parser.add_argument("--quick", action="store_true", help="2000 OPTIONS and 500 calls")
    options = parser.parse_args(argv)
    if options.quick:
        options.options, options.calls = 2_000, 500
    return options


if __name__ == "__main__":
    arguments = _parse(sys.argv[1:])
    react(lambda reactor: Deferred.fromCoroutine(main(reactor, arguments)))
