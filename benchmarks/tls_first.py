"""
What TLS first costs: the time from "connect" to a usable stream on
loopback, through L{TLSFirstEndpoint}, in the situations a client meets.

Scenarios, each against real listeners on a loopback address of their own:

  - C{tcp-only}: the plan has only a TCP target (the baseline: what a
    cleartext client pays).
  - C{tls-up}: TLS first and TLS is there (TCP connect + TLS 1.3 handshake,
    certificate checked by RFC 5922).
  - C{tls-closed}: TLS first, the TLS port refuses (RST), then TCP.
  - C{tls-closed-cached}: as C{tls-closed}, with the negative cache already
    knowing "no TLS here": the TLS attempt is skipped.
  - C{tls-silent}: TLS first, the TLS port silently drops the connection
    attempt (a listening socket whose accept queue is full: Linux drops the
    SYN, as a firewall would), so only the connect timeout ends it; then TCP.
  - C{tls-no-handshake}: the TLS port accepts TCP but never answers the
    handshake, so only the handshake timeout ends it; then TCP.

The two timeout scenarios cost what the timeouts are set to, by design:
C{--connect-timeout} and C{--handshake-timeout} (the stack's defaults are 10
s and 5 s; shorter here so a run stays short).  They are run fewer times.

Run::

    .venv/bin/python benchmarks/tls_first.py             # 200 connects per fast scenario, 3 per slow one
    .venv/bin/python benchmarks/tls_first.py --quick     # 20 / 1
    .venv/bin/python benchmarks/tls_first.py --json
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __name__ == "__main__" and not __package__:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.internet.task import react
from twisted.python.failure import Failure
from zope.interface import implementer

from sipstack.config import Limits, TLSFirstSettings, TLSPolicy
from sipstack.hop import Destination, TransportKind
from sipstack.routing.plan import Plan, Target, TargetSource
from sipstack.stack import SIPStack
from sipstack.testing.certs import CertificateAuthority
from sipstack.transport.endpoint import TLSFirstEndpoint
from sipstack.transport.tls_memory import TLSMemory


@implementer(IHandshakeListener)
class _Ready(Protocol):
    """A protocol that is ready at connect (TCP) or at the end of the handshake (TLS)."""

    def __init__(self, tls: bool) -> None:
        self.tls = tls
        self.ready: Deferred[None] = Deferred()

    def connectionMade(self) -> None:
        if not self.tls:
            self.ready.callback(None)

    def handshakeCompleted(self) -> None:
        if not self.ready.called:
            self.ready.callback(None)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if not self.ready.called:
            self.ready.errback(reason)


class _Factory(Factory):
    def __init__(self, destination: Destination | None = None) -> None:
        self.destination = destination

    def for_attempt(self, destination: Destination) -> _Factory:
        return _Factory(destination)

    def buildProtocol(self, addr: object) -> _Ready:
        return _Ready(self.destination is not None and self.destination.transport is TransportKind.TLS)


def _silent_port(host: str) -> tuple[int, list[socket.socket]]:
    """
    A TCP port on C{host} that silently drops new connection attempts: a
    listener with a one-slot accept queue that is already full.
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind((host, 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    held = [listener]
    for _ in range(2):  # fill the queue (Linux admits backlog + 1)
        filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        filler.setblocking(False)
        filler.connect_ex((host, port))
        held.append(filler)
    time.sleep(0.05)
    return port, held


def _closed_port(host: str) -> int:
    """A TCP port on C{host} with no listener (connections are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _mute_port(reactor: Any, host: str) -> int:
    """A TCP port that accepts connections and never says a word (no TLS handshake)."""
    port = reactor.listenTCP(0, Factory.forProtocol(Protocol), interface=host)
    return int(port.getHost().port)


def _plan(host: str, tls_port: int | None, tcp_port: int, policy: TLSPolicy = TLSPolicy.OPPORTUNISTIC) -> Plan:
    targets = []
    if tls_port is not None:
        targets.append(Target(TransportKind.TLS, "sip.example.test", tls_port, (host,), TargetSource.SRV))
    targets.append(Target(TransportKind.TCP, "sip.example.test", tcp_port, (host,), TargetSource.SRV))
    return Plan("sip:example.test", "example.test", policy, tuple(targets))


async def _time_connects(
    reactor: Any, plan: Plan, count: int, *, limits: Limits, trust: bytes, memory: Callable[[], TLSMemory]
) -> dict[str, Any]:
    times: list[float] = []
    outcomes: set[str] = set()
    for _ in range(count):
        endpoint = TLSFirstEndpoint(reactor, plan, memory=memory(), limits=limits, trust_root=trust)
        started = time.perf_counter()
        result = await endpoint.connect_with_report(_Factory())
        times.append(time.perf_counter() - started)
        report = result.report
        security = report.security.state.value if report.security is not None else "none"
        outcomes.add(f"{report.transport.value if report.transport else '?'}/{security}")
        transport = getattr(result.protocol, "transport", None)
        if transport is not None:
            transport.abortConnection()
    return {
        "count": len(times),
        "median_ms": statistics.median(times) * 1000,
        "min_ms": min(times) * 1000,
        "max_ms": max(times) * 1000,
        "result": sorted(outcomes),
    }


async def _main(reactor: Any, arguments: argparse.Namespace) -> None:
    host = f"127.{random.randint(1, 254)}.{random.randint(0, 255)}.{random.randint(2, 254)}"
    ca = CertificateAuthority.generate()
    issued = ca.issue("example.test", sip_uris=["sip:example.test"])
    directory = Path(tempfile.mkdtemp(prefix="tls-first-bench-"))
    (directory / "cert.pem").write_bytes(issued.fullchain_pem)
    (directory / "key.pem").write_bytes(issued.key_pem)
    stack = SIPStack(reactor)
    files = f"certKey={directory / 'cert.pem'}:privateKey={directory / 'key.pem'}"
    tls = await stack.listen(f"tls:0:interface={host}:{files}")
    tcp = await stack.listen(f"tcp:0:interface={host}")
    silent, held = _silent_port(host)
    mute = _mute_port(reactor, host)
    closed = _closed_port(host)
    limits = Limits(connect_timeout=arguments.connect_timeout, handshake_timeout=arguments.handshake_timeout)
    settings = TLSFirstSettings()
    fresh: Callable[[], TLSMemory] = lambda: TLSMemory(reactor, settings)  # noqa: E731
    warm = TLSMemory(reactor, settings)
    warm.remember_no_tls("sip.example.test", closed, "refused (benchmark set-up)")
    fast, slow = arguments.count, arguments.slow_count
    scenarios: list[tuple[str, Plan, int, Callable[[], TLSMemory]]] = [
        ("tcp-only", _plan(host, None, tcp.port), fast, fresh),
        ("tls-up", _plan(host, tls.port, tcp.port), fast, fresh),
        ("tls-closed", _plan(host, closed, tcp.port), fast, fresh),
        ("tls-closed-cached", _plan(host, closed, tcp.port), fast, lambda: warm),
        ("tls-silent", _plan(host, silent, tcp.port), slow, fresh),
        ("tls-no-handshake", _plan(host, mute, tcp.port), slow, fresh),
    ]
    results: dict[str, Any] = {}
    deadline = time.monotonic() + arguments.limit
    for name, plan, count, memory in scenarios:
        if time.monotonic() > deadline:
            results[name] = {"skipped": "time limit"}
            continue
        results[name] = await _time_connects(reactor, plan, count, limits=limits, trust=ca.cert_pem, memory=memory)
    baseline = results["tcp-only"]["median_ms"]
    for result in results.values():
        if "median_ms" in result:
            result["vs_tcp"] = result["median_ms"] / baseline
    for sock in held:
        sock.close()
    await stack.close(0)
    if arguments.json:
        json.dump({"host": host, "limits": vars(arguments), "results": results}, sys.stdout, indent=2)
        print()
        return
    print(
        f"time to a usable stream on loopback ({host}); connect timeout {arguments.connect_timeout} s, "
        f"handshake timeout {arguments.handshake_timeout} s"
    )
    print(f"{'scenario':<20} {'n':>4} {'median':>10} {'min':>10} {'max':>10} {'x tcp':>8}  result")
    for name, result in results.items():
        if "median_ms" not in result:
            print(f"{name:<20} skipped ({result['skipped']})")
            continue
        print(
            f"{name:<20} {result['count']:>4} {result['median_ms']:>8.2f}ms {result['min_ms']:>8.2f}ms "
            f"{result['max_ms']:>8.2f}ms {result['vs_tcp']:>8.1f}  {', '.join(result['result'])}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=200, help="connects per fast scenario")
    parser.add_argument("--slow-count", type=int, default=3, help="connects per timeout scenario")
    parser.add_argument("--connect-timeout", type=float, default=1.0)
    parser.add_argument("--handshake-timeout", type=float, default=1.0)
    parser.add_argument("--limit", type=float, default=60.0, help="seconds after which remaining scenarios are skipped")
    parser.add_argument("--quick", action="store_true", help="20 fast and 1 slow connect per scenario")
    parser.add_argument("--json", action="store_true")
    arguments = parser.parse_args()
    if arguments.quick:
        arguments.count, arguments.slow_count = 20, 1
    react(lambda reactor: Deferred.fromCoroutine(_main(reactor, arguments)))


if __name__ == "__main__":
    main()
