"""
Send one SIP MESSAGE and print the response, built on sipstack's public API.

    python docs/examples/send_message.py sip:bob@127.0.0.1:5060 "Hello, Bob"

Prints the final status ("200 OK"), or a 408 / 503 the stack made up when
the server did not answer or could not be reached, and exits with 0 for a
2xx, 1 otherwise.
"""

from __future__ import annotations

import sys
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import react

from sipstack.dialog import build_request
from sipstack.stack import SIPStack


async def main(reactor: Any, uri: str, text: str) -> None:
    stack = SIPStack(reactor)
    transport = "tcp" if "transport=tcp" in uri else "udp"
    await stack.listen(f"{transport}:0:interface=127.0.0.1")
    request = build_request(
        "MESSAGE",
        uri,
        from_="<sip:alice@example.com>",
        to=f"<{uri}>",
        body=text.encode("utf-8"),
        content_type="text/plain",
    )
    result = await stack.request(request)
    note = f" (synthesized: {result.synthesized})" if result.synthesized else ""
    print(f"{result.response.status} {result.response.reason}{note}", flush=True)
    await stack.close(0.0)
    if not 200 <= result.status < 300:
        raise SystemExit(1)


if __name__ == "__main__":
    react(lambda reactor: Deferred.fromCoroutine(main(reactor, sys.argv[1], sys.argv[2])))
