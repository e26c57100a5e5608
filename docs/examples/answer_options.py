"""
A SIP server that answers OPTIONS and MESSAGE, built on sipstack's public API.

    python docs/examples/answer_options.py udp:5060:interface=127.0.0.1

It prints one line per listener ("listening on udp 127.0.0.1:5060"), then
one per MESSAGE received, and runs until interrupted.
"""

from __future__ import annotations

import sys
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import react

from sipstack.message import Response
from sipstack.stack import IncomingRequest, SIPStack


def answer(incoming: IncomingRequest) -> Response:
    """Answer OPTIONS with our capabilities, MESSAGE with 200, anything else with 405."""
    request = incoming.request
    if request.method == "OPTIONS":
        return incoming.response(200, headers=(("Allow", "OPTIONS, MESSAGE"), ("Accept", "text/plain")))
    if request.method == "MESSAGE":
        text = request.body.decode("utf-8", "replace")
        print(f"MESSAGE from {request.from_.uri}: {text}", flush=True)
        return incoming.response(200)
    return incoming.response(405, headers=(("Allow", "OPTIONS, MESSAGE"),))


async def main(reactor: Any, *descriptions: str) -> None:
    stack = SIPStack(reactor)
    stack.on_request(answer)
    for description in descriptions or ("udp:5060:interface=127.0.0.1",):
        peer = await stack.listen(description)
        print(f"listening on {description.split(':', 1)[0]} {peer}", flush=True)
    # Shut down gracefully when the reactor stops (Ctrl-C, SIGTERM).
    reactor.addSystemEventTrigger("before", "shutdown", stack.close, 2.0)
    await Deferred()  # run until interrupted


if __name__ == "__main__":
    react(lambda reactor: Deferred.fromCoroutine(main(reactor, *sys.argv[1:])))
