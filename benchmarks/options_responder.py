"""
A minimal stateless SIP responder on sipstack's transport layer: every OPTIONS gets a 200.

It exists to measure the transport layer alone (socket, framing, parsing,
Via stamping, response building, serialization and the write back) under
SIPp load, with no transaction layer in between, so the number is the
ceiling every stateful service built on the layer stays under.  It answers
the way RFC 3261 section 8.2.7 asks of a stateless UAS: it keeps no state,
and it derives the To tag from the request, so a retransmitted OPTIONS gets
the very same 200.  Requests other than OPTIONS get 405 with C{Allow:
OPTIONS} (section 8.2.1); ACKs and responses are dropped.

It listens on UDP and TCP on 127.0.0.1 only, since it is a load target, and
stops cleanly (listeners and connections closed) on SIGTERM or SIGINT.  On
stop it logs how many requests it answered, so a driver can check the count
against SIPp's.

Run::

    .venv/bin/python benchmarks/options_responder.py --port 5090
    .venv/bin/python benchmarks/options_responder.py --port 5090 --cprofile /tmp/responder.prof

@see: RFC 3261 section 11.2 (OPTIONS), section 8.2.7 (stateless UAS).
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

if __name__ == "__main__" and not __package__:
    # Run as a script, sys.path starts with benchmarks/: put the checkout first
    # so the numbers are those of this working tree, not of an installed copy.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from twisted.internet.defer import Deferred
from twisted.internet.task import react
from twisted.logger import (
    FilteringLogObserver,
    Logger,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogBeginner,
    textFileLogObserver,
)
from twisted.python.failure import Failure

from sipstack.config import Limits
from sipstack.errors import SIPError
from sipstack.hop import Peer
from sipstack.message import Request, Response, build_response
from sipstack.message.envelope import Received
from sipstack.transport.layer import TransportLayer

__all__ = ["OptionsResponder", "main"]

DEFAULT_PORT = 5090
LOOPBACK = "127.0.0.1"
_ALLOW = (("Allow", "OPTIONS"),)


def stateless_tag(request: Request) -> str:
    """
    A To tag that depends only on the request, so retransmissions get the same one.

    RFC 3261 section 8.2.7 requires this of a stateless UAS: it cannot
    remember the tag it chose, so it must be able to choose it again.  The
    inputs are what tells one request from another (Call-ID, From tag, CSeq
    and the top Via branch, the transaction key of section 17.2.3).
    """
    from_tag = request.from_.tag or ""
    branch = request.top_via.param("branch") or ""
    key = f"{request.call_id}\0{from_tag}\0{request.headers.get('CSeq')}\0{branch}"
    return hashlib.blake2b(key.encode("utf-8", "surrogateescape"), digest_size=8).hexdigest()


class OptionsResponder:
    """
    The message handler given to L{TransportLayer}: answers statelessly.

    @ivar answered: how many requests were answered (OPTIONS or otherwise).
    @ivar send_failures: how many responses the layer failed to send.
    """

    _log = Logger()

    def __init__(self) -> None:
        self.layer: TransportLayer | None = None
        self.answered = 0
        self.send_failures = 0

    def received(self, received: Received) -> None:
        """
        Answer one request; the layer calls this for every message it received.

        It runs in the layer's receive path, so it must not raise (the
        layer would log each failure) and must not block.
        """
        request = received.message
        if not isinstance(request, Request) or request.method == "ACK":
            return
        assert self.layer is not None
        try:
            if request.method == "OPTIONS":
                response = build_response(request, 200, to_tag=stateless_tag(request), headers=_ALLOW)
            else:
                response = build_response(request, 405, to_tag=stateless_tag(request), headers=_ALLOW)
        except SIPError as error:
            # A request whose headers parse but whose typed values do not
            # (a broken Via or From): a stateless UAS just drops it.
            self._log.warn(
                "Dropped an unanswerable request from {source}: {error}", source=received.source, error=error
            )
            return
        self.answered += 1
        self.layer.send_response(response, received.flow).addErrback(self._send_failed, response)

    def _send_failed(self, failure: Failure, response: Response) -> None:
        self.send_failures += 1
        self._log.failure(
            "Could not send {status} for Call-ID {call_id}", failure, status=response.status, call_id=response.call_id
        )


async def run(reactor: Any, port: int, limits: Limits, profile: tuple[cProfile.Profile, str] | None = None) -> None:
    """
    Listen on UDP and TCP, then answer until the reactor shuts down.

    The shutdown trigger closes the layer before the reactor stops, so a
    SIGTERM leaves no half-written response and no dangling socket.  With
    C{profile}, the running profiler and the file its stats go to, the stats
    are written after shutdown, as L{react} exits the process right after.
    """
    log = Logger(namespace="benchmarks.options_responder")
    responder = OptionsResponder()
    layer = TransportLayer(reactor, responder.received, limits=limits)
    responder.layer = layer
    bound: list[Peer] = []
    for kind in ("udp", "tcp"):
        bound.append(await layer.listen(f"{kind}:{port}:interface={LOOPBACK}"))
    log.info("OPTIONS responder ready on {addresses}", addresses=", ".join(f"{p.host}:{p.port}" for p in bound))
    # The driver waits for this line on stdout (log output goes to stderr).
    print(f"READY udp={bound[0].host}:{bound[0].port} tcp={bound[1].host}:{bound[1].port}", flush=True)

    stopped: Deferred[None] = Deferred()

    async def shut_down() -> None:
        await layer.close()
        log.info(
            "Stopping: answered {answered} requests, {failures} send failures",
            answered=responder.answered,
            failures=responder.send_failures,
        )
        stopped.callback(None)

    reactor.addSystemEventTrigger("before", "shutdown", lambda: Deferred.fromCoroutine(shut_down()))
    if profile is not None:
        profiler, path = profile

        def dump() -> None:
            profiler.disable()
            profiler.dump_stats(path)

        reactor.addSystemEventTrigger("after", "shutdown", dump)
    await stopped


def _options(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="UDP and TCP port on 127.0.0.1 (default 5090)")
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warn", "error"], help="log level (stderr)"
    )
    parser.add_argument("--cprofile", metavar="FILE", help="run under cProfile and write the stats to FILE on stop")
    options = parser.parse_args(argv)
    if not 0 < options.port < 65536:
        parser.error("--port must be in 1..65535")
    return options


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Parse the options, set up logging, and run the reactor until SIGTERM/SIGINT."""
    options = _options(sys.argv[1:] if argv is None else argv)
    predicate = LogLevelFilterPredicate(defaultLogLevel=LogLevel.levelWithName(options.log_level))
    # Logs go to stderr and stdout stays ours: the driver reads READY there.
    observer = FilteringLogObserver(textFileLogObserver(sys.stderr), [predicate])
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)

    profile = None
    if options.cprofile:
        profile = (cProfile.Profile(), options.cprofile)
        profile[0].enable()
    react(run, (options.port, Limits(), profile))


if __name__ == "__main__":
    main()
