# -*- test-case-name: tests.test_main -*-
"""
The C{sipstack} command (also C{python -m sipstack}).

C{sipstack inspect FILE...} parses SIP messages saved from a capture or written
by hand and prints what the stack understood, or the fault and the exact
response the stack would send back: the quickest way to find out why a peer's
message is refused.

C{sipstack probe sip:example.com} shows how a TLS-first client reaches a SIP
domain: the DNS answers, the RFC 3263 plan, each connection attempt with its
timing and outcome, the certificate presented and whether it matched, the
resulting security state and the answer to an OPTIONS.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from twisted.internet.defer import Deferred
from twisted.internet.task import react

from sipstack.config import Limits, TLSFirstSettings, TLSPolicy
from sipstack.errors import InvalidValue, RemoteProtocolError
from sipstack.message import Request, build_error_response, parse_datagram, serialize
from sipstack.message.message import Message
from sipstack.message.uri import SIPURI, parse_uri
from sipstack.stack.probe import probe, report_as_dict
from sipstack.transport.dns import DNSResolver

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


def _millis(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds * 1000:.1f} ms"


def _print_probe(result: dict[str, Any], out: TextIO) -> None:
    """The probe report as a readable table."""
    out.write(f"probe {result['uri']}  policy={result['policy']}  domain={result['domain']}\n")
    out.write("\nDNS\n")
    if not result["lookups"]:
        out.write("  (no lookups: numeric host)\n")
    for lookup in result["lookups"]:
        answers = lookup["answers"] or ([f"error: {lookup['error']}"] if lookup["error"] else ["(none)"])
        head = f"  {lookup['type']:<5} {lookup['name']:<40}"
        for index, answer in enumerate(answers):
            out.write(f"{head if index == 0 else ' ' * len(head)} {answer}\n")
    out.write("\nPlan\n")
    if result["planning_error"]:
        out.write(f"  planning failed: {result['planning_error']}\n")
    for number, target in enumerate(result["plan"], 1):
        addresses = ", ".join(target["addresses"]) or "(no address)"
        out.write(
            f"  {number:>2}. {target['transport']:<4} {target['host']}:{target['port']:<6} "
            f"[{target['source']}]  {addresses}\n"
        )
    out.write("\nAttempts\n")
    if not result["attempts"]:
        out.write("  (none)\n")
    for attempt in result["attempts"]:
        where = attempt["address"] or attempt["host"]
        where = f"[{where}]" if ":" in where else where
        line = f"  {attempt['transport']:<4} {where + ':' + str(attempt['port']):<28} {attempt['outcome']:<24} "
        line += f"{_millis(attempt['elapsed']):>9}"
        if attempt["error"]:
            line += f"  {attempt['error']}"
        out.write(line + "\n")
        certificate = attempt["certificate"]
        if certificate is not None:
            out.write(f"       certificate: {certificate['subject']}\n")
            out.write(f"         names: {', '.join(certificate['alt_names']) or '(no SubjectAltName)'}\n")
            verified = "yes" if certificate["chain_verified"] else "no"
            if result["domain"] is None:
                matched = "no SIP domain to match (the URI names an address)"
            else:
                matched = f"matches {result['domain']}: {'yes' if certificate['matched'] else 'no'}"
            out.write(f"         chain verified: {verified}; {matched}\n")
    out.write("\nResult\n")
    if result["security"]:
        identity = f" ({result['authenticated_identity']})" if result["authenticated_identity"] else ""
        out.write(f"  {result['transport']} connection, security {result['security']}{identity}\n")
        if result["security"] == "tls-authenticated":
            out.write("  encrypted and authenticated: a client may show a lock\n")
        elif result["security"] == "tls-unauthenticated":
            out.write("  encrypted but NOT authenticated: no lock\n")
        else:
            out.write("  cleartext: no encryption\n")
    else:
        out.write(f"  no stream connection: {result['connect_error'] or result['planning_error']}\n")
    if result["fallback_reason"]:
        out.write(f"  fell back from TLS: {result['fallback_reason']}\n")
    if result["udp_fallback"]:
        out.write(f"  the stack would fall back to UDP at {result['udp_fallback']}\n")
    options = result["options"]
    if options is not None:
        if options["status"] is None:
            out.write(f"  OPTIONS: {options['reason']}\n")
        else:
            server = f"  server: {options['server']}" if options["server"] else ""
            out.write(f"  OPTIONS: {options['status']} {options['reason']} in {_millis(options['elapsed'])}{server}\n")
    for note in result["notes"]:
        out.write(f"  note: {note}\n")


def _nameserver(text: str) -> tuple[str, int]:
    """C{127.0.0.1}, C{127.0.0.1:5353}, C{::1} or C{[::1]:5353}."""
    if text.startswith("["):
        host, _, port = text[1:].partition("]")
        return host, int(port.lstrip(":") or 53)
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, int(port)
    return text, 53


def _probe(arguments: argparse.Namespace, out: TextIO) -> int:
    text = arguments.uri if arguments.uri.split(":", 1)[0].lower() in ("sip", "sips") else f"sip:{arguments.uri}"
    try:
        uri = parse_uri(text)
    except InvalidValue as error:
        out.write(f"not a SIP URI: {arguments.uri}: {error}\n")
        return 2
    if not isinstance(uri, SIPURI):
        out.write(f"not a sip: or sips: URI: {arguments.uri}\n")
        return 2
    trust_root = None
    if arguments.ca_file:
        with open(arguments.ca_file, "rb") as file:
            trust_root = file.read()
    settings = TLSFirstSettings(
        probe_5061=not arguments.no_probe_5061, override_explicit_transport=arguments.override_explicit_transport
    )
    limits = Limits(connect_timeout=arguments.timeout, handshake_timeout=arguments.timeout)

    async def run(reactor: Any) -> None:
        nameservers = [_nameserver(each) for each in arguments.nameserver] or None
        resolver = DNSResolver(reactor, nameservers, timeout=arguments.timeout)
        report = await probe(
            reactor,
            uri,
            resolver,
            policy=TLSPolicy(arguments.policy),
            settings=settings,
            limits=limits,
            trust_root=trust_root,
            send_options=not arguments.no_options,
            options_timeout=arguments.timeout,
        )
        result = report_as_dict(report)
        if arguments.json:
            json.dump(result, out, indent=2)
            out.write("\n")
        else:
            _print_probe(result, out)
        if not report.succeeded:
            raise SystemExit(1)

    react(lambda reactor: Deferred.fromCoroutine(run(reactor)), [])  # exits the process


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
    probe = commands.add_parser(
        "probe",
        help="show how a TLS-first client reaches a SIP domain: DNS, plan, attempts, certificate, security",
        description="Plan and connect to a SIP URI exactly as sipstack would (RFC 3263, TLS first), then send one "
        "OPTIONS over the connection. Exits 0 when a connection came up and the server answered.",
    )
    probe.add_argument("uri", help="a SIP URI or domain: sip:example.com, sips:example.com, example.com:5060")
    probe.add_argument(
        "--policy",
        choices=["opportunistic", "strict", "rfc3263", "off"],
        default="opportunistic",
        help="TLS policy (default: opportunistic; a sips: URI is always strict)",
    )
    probe.add_argument(
        "--nameserver",
        action="append",
        default=[],
        metavar="HOST[:PORT]",
        help="DNS server to ask (repeatable; default: the system's)",
    )
    probe.add_argument("--ca-file", help="PEM CA certificates to authenticate servers (default: the system's)")
    probe.add_argument("--timeout", type=float, default=5.0, help="seconds per connection, handshake and answer")
    probe.add_argument("--no-probe-5061", action="store_true", help="without SRV records, do not try TLS on 5061")
    probe.add_argument(
        "--override-explicit-transport",
        action="store_true",
        help="try TLS on port 5061 first even when the URI names a transport or port",
    )
    probe.add_argument("--no-options", action="store_true", help="do not send an OPTIONS once connected")
    probe.add_argument("--json", action="store_true", help="print JSON instead of a table")
    arguments = parser.parse_args(argv)
    if arguments.command == "probe":
        return _probe(arguments, out)
    return _inspect(arguments, out)


if __name__ == "__main__":
    sys.exit(main())
