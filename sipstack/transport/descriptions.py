# -*- test-case-name: tests.transport.test_descriptions -*-
"""
Listener descriptions in the style of Twisted's endpoint strings.

C{udp:5060:interface=::1}, C{tcp:5060:interface=127.0.0.1} and
C{tls:5061:privateKey=key.pem:certKey=cert.pem:interface=127.0.0.1} name the
three SIP listeners.  Twisted's own C{serverFromString} has no UDP endpoint
and no TLS minimum version, and needs IPv6 colons escaped; this parser accepts
an IPv6 interface as written (C{interface=::1} or C{interface=[::1]}) as well
as escaped (C{interface=\\:\\:1}).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from sipstack.hop import TransportKind

__all__ = ["ListenerDescription", "parse_listener"]

_KEYS = {
    TransportKind.UDP: {"interface"},
    TransportKind.TCP: {"interface", "backlog"},
    TransportKind.TLS: {"interface", "backlog", "privateKey", "certKey", "requestClientCertificate", "caCerts"},
}


@dataclass(frozen=True, slots=True)
class ListenerDescription:
    """
    One listener.

    @ivar transport: UDP, TCP or TLS.
    @ivar port: the port (0 for any free port).
    @ivar interface: the address to bind; C{"0.0.0.0"} or C{"::"} for all.
    @ivar backlog: the listen backlog of a stream listener.
    @ivar private_key: path of the TLS key (PEM); defaults to C{cert_key}.
    @ivar cert_key: path of the TLS certificate chain (PEM).
    @ivar request_client_certificate: whether a TLS server asks for a client
        certificate (mutual TLS between servers, RFC 5922 section 7.4).
    @ivar ca_certs: path of the CA certificates client certificates are
        checked against.
    """

    transport: TransportKind
    port: int
    interface: str = "127.0.0.1"
    backlog: int = 128
    private_key: str | None = None
    cert_key: str | None = None
    request_client_certificate: bool = False
    ca_certs: str | None = None


def _split(text: str) -> list[str]:
    """Split on unescaped colons, keeping escaped ones as colons."""
    parts = [""]
    escaped = False
    for char in text:
        if escaped:
            parts[-1] += char
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ":":
            parts.append("")
        else:
            parts[-1] += char
    return parts


def _is_number(text: str) -> bool:
    """Whether C{text} is a decimal number in ASCII digits (C{str.isdigit} allows others)."""
    return text.isascii() and text.isdigit()


def _interface(text: str) -> str:
    """
    The IP address to bind, without the brackets an IPv6 address may be
    written in.

    @raise ValueError: C{text} is not an IP address.
    """
    bracketed = text.startswith("[") and text.endswith("]")
    address = text[1:-1] if bracketed else text
    try:
        version = ipaddress.ip_address(address).version
    except ValueError:
        raise ValueError(f"interface {text!r} is not an IP address") from None
    if bracketed and version != 6:
        raise ValueError(f"interface {text!r}: brackets go only around an IPv6 address")
    return address


def parse_listener(text: str) -> ListenerDescription:
    """
    Parse a listener description.

    @raise ValueError: the description names an unknown transport or key, or
        a bad port, interface or flag; the message says which.
    """
    kind_text, _, rest = text.partition(":")
    try:
        transport = TransportKind(kind_text.upper())
    except ValueError:
        raise ValueError(f"unknown listener kind {kind_text!r} (use udp, tcp or tls)") from None
    if transport not in _KEYS:
        raise ValueError(f"{kind_text} listeners are not supported")
    parts = _split(rest)
    port_text, options = parts[0], parts[1:]
    if not _is_number(port_text) or int(port_text) > 65535:
        raise ValueError(f"bad port {port_text!r} in {text!r}")
    values: dict[str, str] = {}
    last_key: str | None = None
    for part in options:
        key, equals, value = part.partition("=")
        if equals and key in _KEYS[transport]:
            values[key] = value
            last_key = key
        elif last_key == "interface" and not equals:
            # An unescaped IPv6 address was split at its colons: glue it back.
            values["interface"] += ":" + part
        else:
            raise ValueError(f"unknown option {part!r} for a {kind_text} listener")
    for key in ("certKey", "privateKey", "caCerts"):
        if key in values and not values[key]:
            raise ValueError(f"{key} needs a path")
    interface = _interface(values.get("interface", "127.0.0.1"))
    backlog = values.get("backlog", "128")
    if not _is_number(backlog):
        raise ValueError(f"bad backlog {backlog!r}")
    request_client_certificate = values.get("requestClientCertificate", "no").lower()
    if request_client_certificate not in ("yes", "no", "true", "false"):
        raise ValueError("requestClientCertificate takes yes or no")
    if transport is TransportKind.TLS and "certKey" not in values:
        raise ValueError("a tls listener needs certKey=PATH (and privateKey=PATH unless the key is in it)")
    return ListenerDescription(
        transport=transport,
        port=int(port_text),
        interface=interface,
        backlog=int(backlog),
        private_key=values.get("privateKey") or values.get("certKey"),
        cert_key=values.get("certKey"),
        request_client_certificate=request_client_certificate in ("yes", "true"),
        ca_certs=values.get("caCerts"),
    )
