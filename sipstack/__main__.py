# -*- test-case-name: tests.test_main -*-
"""
The C{sipstack} command (also C{python -m sipstack}).

C{sipstack inspect FILE...} parses SIP messages saved from a capture or written
by hand and prints what the stack understood, or the fault and the exact
response the stack would send back: the quickest way to find out why a peer's
message is refused.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from sipstack.errors import RemoteProtocolError
from sipstack.message import Request, build_error_response, parse_datagram, serialize
from sipstack.message.message import Message

__all__ = ["main"]


def _describe(message: Message) -> dict[str, Any]:
    """The fields a proxy reads, as plain data."""
    summary: dict[str, Any]
    if isinstance(message, Request):
        summary = {"kind": "request", "method": message.method, "request_uri": str(message.uri)}
    else:
        summary = {"kind": "response", "status": message.status, "reason": message.reason}
    top_via = message.top_via
    contacts = message.contacts
    summary.update(
        {
            "top_via": {
                "transport": top_via.transport,
                "sent_by": top_via.host + (f":{top_via.port}" if top_via.port is not None else ""),
                "branch": top_via.branch,
            },
            "via_count": len(message.vias),
            "from": {"uri": str(message.from_.uri), "tag": message.from_.tag},
            "to": {"uri": str(message.to.uri), "tag": message.to.tag},
            "call_id": message.call_id,
            "cseq": {"number": message.cseq.number, "method": message.cseq.method},
            "max_forwards": message.max_forwards,
            "contacts": [str(contact.uri) for contact in contacts] if isinstance(contacts, list) else "*",
            "headers": len(message.headers),
            "body_bytes": len(message.body),
            "notes": list(message.notes),
        }
    )
    return summary


def _inspect_one(name: str, data: bytes) -> dict[str, Any]:
    try:
        message = parse_datagram(data)
    except RemoteProtocolError as error:
        response = build_error_response(error)
        return {
            "file": name,
            "valid": False,
            "status": error.status,
            "reason": error.reason,
            "action": error.action.value,
            "response": serialize(response).decode("utf-8", "replace") if response is not None else None,
        }
    if message is None:
        return {"file": name, "valid": True, "keepalive": True}
    return {"file": name, "valid": True, **_describe(message)}


def _print_text(result: dict[str, Any], out: TextIO) -> None:
    out.write(f"== {result['file']}\n")
    for key, value in result.items():
        if key in ("file", "response"):
            continue
        out.write(f"  {key:<12} {value}\n")
    if result.get("response"):
        out.write("  response that would be sent:\n")
        for line in result["response"].splitlines():
            out.write(f"    | {line}\n")


def _inspect(arguments: argparse.Namespace, out: TextIO) -> int:
    results = []
    for name in arguments.files:
        if name == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(name, "rb") as file:
                data = file.read()
        results.append(_inspect_one(name, data))
    if arguments.json:
        json.dump(results, out, indent=2)
        out.write("\n")
    else:
        for result in results:
            _print_text(result, out)
    if arguments.check and not all(result["valid"] for result in results):
        return 1
    return 0


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    """Run the command line; returns the exit status."""
    parser = argparse.ArgumentParser(prog="sipstack", description="Tools of the sipstack SIP stack.")
    commands = parser.add_subparsers(dest="command", required=True)
    inspect = commands.add_parser(
        "inspect", help="parse SIP messages from files and show what was understood, or the fault"
    )
    inspect.add_argument("files", nargs="+", help="files holding one message each ('-' for standard input)")
    inspect.add_argument("--json", action="store_true", help="print JSON instead of text")
    inspect.add_argument("--check", action="store_true", help="exit with status 1 if any message is invalid")
    arguments = parser.parse_args(argv)
    return _inspect(arguments, out)


if __name__ == "__main__":
    sys.exit(main())
