# -*- test-case-name: tests.services.test_proxy_core -*-
"""
Who the proxy is: the hosts, ports and domains that name it, the interfaces
peers reach it on, and the branch parameters it writes into its Vias, from
which it recognises its own Vias and detects loops (RFC 3261 sections 16.3
step 4, 16.6 step 8 and 16.11).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field

from sipstack.config import TLSFirstSettings
from sipstack.errors import InvalidValue
from sipstack.hop import Peer, TransportKind
from sipstack.message import SIPURI, URI, Request, Via, parse_uri
from sipstack.routing.record_route import record_route_uri
from sipstack.routing.via import BRANCH_COOKIE, default_port

__all__ = [
    "canonical_host",
    "Interface",
    "ProxyIdentity",
    "loop_key",
    "proxy_branch",
    "stateless_branch",
    "is_proxy_branch",
    "is_looped",
]


def canonical_host(host: str) -> str:
    """
    A host as the proxy compares hosts: lower case, no trailing dot, an
    IPv6 address in brackets and compressed (C{SIPURI.address_of_record}'s
    form, which the registrar keys domains by too).

    @raise ValueError: not a host name or IP address.
    """
    text = host.strip().rstrip(".")
    if ":" in text and not text.startswith("["):
        text = f"[{text}]"
    try:
        uri = parse_uri(f"sip:{text}")
    except InvalidValue as error:
        raise ValueError(f"bad host {host!r}: {error}") from None
    if not isinstance(uri, SIPURI) or uri.port is not None:
        raise ValueError(f"bad host {host!r}")
    return uri.address_of_record().host


def _host_key(host: str) -> str:
    """L{canonical_host} for hosts from messages, which the parser already checked."""
    try:
        return canonical_host(host)
    except ValueError:
        return host.lower()


@dataclass(frozen=True, slots=True)
class Interface:
    """
    One side of the proxy: how the peers on that side reach it.  A request
    arrives on one interface and leaves on another (or the same); the
    Record-Route URIs the proxy writes name them (RFC 5658).

    @ivar transport: the transport of the side.
    @ivar host: the host as it goes into a URI: a name, an IPv4 address or
        an IPv6 address in brackets.
    @ivar port: the port of C{transport}'s listener.
    @ivar tls_port: our TLS port at C{host}, if we listen for TLS there: the
        port of a C{sips:} Record-Route, and of the
        C{x-sipstack-tls-port} hint (docs/tls-first.md).
    @ivar tls_name: the host name our TLS certificate names, which resolves
        to C{host}: the host of the URIs this side record-routes that lead
        to our TLS listener (C{sips:}, C{transport=tls}).  A strict client
        checks the certificate against the host of such a URI (RFC 5922
        section 7.3), and a certificate rarely names an IP address; L{None}:
        C{host}.
    """

    transport: TransportKind
    host: str
    port: int
    tls_port: int | None = None
    tls_name: str | None = None

    @classmethod
    def of(
        cls, transport: TransportKind, address: Peer, tls_port: int | None = None, tls_name: str | None = None
    ) -> Interface:
        """The interface of a listener or a flow's local address (brackets added to IPv6)."""
        host = f"[{address.host}]" if ":" in address.host else address.host
        return cls(transport, host, address.port, tls_port, tls_name)

    def record_route_uri(self, *, secure: bool, tls_hint: bool = False, flow_token: str | None = None) -> SIPURI:
        """
        The URI this side record-routes (RFC 3261 section 16.6 step 4): always
        with C{lr}; C{sips:} on the TLS port when the dialog is secure;
        otherwise C{sip:} with the side's transport (C{transport=tcp} or
        C{transport=tls}; none for UDP, the default) since the peer of this
        side reached us over it, and, with C{tls_hint}, the
        C{x-sipstack-tls-port} hint when the side is not TLS but we listen
        for TLS (L{sipstack.routing.record_route.record_route_uri};
        docs/tls-first.md, "The Record-Route answer").  A port that is the
        default of the transport is left out.  A URI that leads to our TLS
        listener names C{tls_name} when there is one, so that the peer can
        authenticate us for it (RFC 5922); the others name C{host}.  With a
        C{flow_token} (RFC 5626 section 5.3) the token is the user part and
        C{ob} is added.
        """
        uri = self._record_route_uri(secure, tls_hint)
        if flow_token is None:
            return uri
        return uri.replace(user=flow_token).with_param("ob")

    def _record_route_uri(self, secure: bool, tls_hint: bool) -> SIPURI:
        tls = self.transport is TransportKind.TLS
        if secure:
            port = self.tls_port if self.tls_port is not None else self.port
            host = self.tls_name if self.tls_name is not None and (tls or self.tls_port is not None) else self.host
            return SIPURI("sips", host, None, None, None if port == 5061 else port, (("lr", None),))
        host = self.tls_name if self.tls_name is not None and tls else self.host
        hint = _HINT if tls_hint else None
        return record_route_uri(host, self.port, transport=self.transport, tls_port=self.tls_port, settings=hint)


_HINT = TLSFirstSettings(record_route_tls_hint=True)


@dataclass(frozen=True, slots=True)
class ProxyIdentity:
    """
    What names the proxy.

    @ivar domains: the domains it is responsible for (RFC 3261 section
        16.5): a Request-URI in one of them is looked up in the location
        service.  Canonical (L{canonical_host}) after construction.
    @ivar hosts: its own names and addresses: a Route, a Request-URI or a
        Via sent-by with one of them (and one of C{ports}) names the proxy.
        The domains name it too in Route and Request-URI (a UA whose
        outbound proxy is C{sip:example.com;lr}), not in Via.
    @ivar ports: the ports it listens on; a URI without a port names the
        proxy when its default port (5060, or 5061 for C{sips:} and
        C{transport=tls}) is one of them.
    """

    domains: frozenset[str] = frozenset()
    hosts: frozenset[str] = frozenset()
    ports: frozenset[int] = field(default=frozenset({5060, 5061}))

    def __post_init__(self) -> None:
        object.__setattr__(self, "domains", frozenset(canonical_host(host) for host in self.domains))
        object.__setattr__(self, "hosts", frozenset(canonical_host(host) for host in self.hosts))
        object.__setattr__(self, "ports", frozenset(self.ports))

    def serves(self, uri: URI) -> bool:
        """Whether C{uri} is a C{sip:}/C{sips:} URI in one of our domains."""
        return isinstance(uri, SIPURI) and _host_key(uri.host) in self.domains

    def names_us(self, uri: URI) -> bool:
        """
        Whether C{uri} (a Route or Request-URI) names this proxy: its host
        is one of our hosts or domains and its port, explicit or default, is
        one of ours.  C{maddr} is not looked at (section 16.4 treats it apart).
        """
        if not isinstance(uri, SIPURI):
            return False
        host = _host_key(uri.host)
        if host not in self.hosts and host not in self.domains:
            return False
        port = uri.port
        if port is None:
            transport = uri.transport
            port = 5061 if uri.secure or (transport is not None and transport.lower() == "tls") else 5060
        return port in self.ports

    def is_our_via(self, via: Via) -> bool:
        """Whether a Via's sent-by is one of our hosts and ports (the default port of its transport if none)."""
        if _host_key(via.host) not in self.hosts:
            return False
        port = via.port
        if port is None:
            try:
                port = default_port(TransportKind(via.transport))
            except ValueError:
                port = 5060
        return port in self.ports


# Branches.
#
# A stateful branch is the magic cookie, 64 random bits that make it unique
# (RFC 3261 section 8.1.1.7), a dot, and the loop key: a hash of what
# affects how the proxy processes the request (section 16.6 step 8).  A
# stateless branch is the cookie, "s", and a hash of the received request's
# transaction identity (section 16.11), so that a retransmission, and a
# CANCEL or ACK of the same transaction, get the same branch.

_LOOP_KEY_HEX = 20
_STATEFUL = re.compile(rf"{BRANCH_COOKIE}[0-9a-f]{{16}}\.([0-9a-f]{{{_LOOP_KEY_HEX}}})")
_STATELESS = re.compile(rf"{BRANCH_COOKIE}s[0-9a-f]{{24}}")


def _digest(parts: list[str], size: int) -> str:
    text = "\x00".join(parts).encode("utf-8", "surrogateescape")
    return hashlib.sha256(text).hexdigest()[:size]


def _via_key(via: Via) -> str:
    return f"{via.transport}|{_host_key(via.host)}|{via.port}|{via.branch}"


def loop_key(request: Request, previous: Via) -> str:
    """
    The loop-detection part of the branch of a request forwarded from
    C{request} (as received, before section 16.4 changed anything), whose
    previous hop wrote C{previous} as the topmost Via (section 16.6 step 8).

    It covers the To and From tags, the Call-ID, the CSeq number (not the
    method: a CANCEL gets its INVITE's branch), the Request-URI, the
    previous hop's Via (transport, sent-by and branch, the parts that
    identify it even if a later hop reformats the header), and the Route,
    Proxy-Require and Proxy-Authorization fields.
    """
    headers = request.headers
    parts = [
        request.to.tag or "",
        request.from_.tag or "",
        request.call_id,
        str(request.cseq.number),
        str(request.uri),
        _via_key(previous),
        ",".join(headers.get_all("Route")),
        ",".join(headers.get_all("Proxy-Require")),
        ",".join(headers.get_all("Proxy-Authorization")),
    ]
    return _digest(parts, _LOOP_KEY_HEX)


def proxy_branch(request: Request) -> str:
    """
    A new branch for one forwarded copy of C{request} (as received): unique
    by its random part, and carrying the L{loop_key} so that the request is
    known again if it loops back (L{is_looped}).
    """
    return f"{BRANCH_COOKIE}{secrets.token_hex(8)}.{loop_key(request, request.top_via)}"


def stateless_branch(request: Request) -> str:
    """
    The branch of a request forwarded statelessly (section 16.11, the
    recommended procedure): a hash of the received top Via's branch when it
    has the magic cookie, else of the top Via, the tags, the Call-ID, the
    CSeq number and the Request-URI.  The same request always gets the same
    branch, and so do a CANCEL and the INVITE it cancels.
    """
    via = request.top_via
    branch = via.branch
    if branch is not None and branch.startswith(BRANCH_COOKIE):
        parts = ["cookie", branch]
    else:
        parts = [
            "rfc2543",
            str(via),
            request.to.tag or "",
            request.from_.tag or "",
            request.call_id,
            str(request.cseq.number),
            str(request.uri),
        ]
    return f"{BRANCH_COOKIE}s{_digest(parts, 24)}"


def is_proxy_branch(branch: str | None) -> bool:
    """Whether a branch has the form of one this proxy writes (stateful or stateless)."""
    return branch is not None and (_STATEFUL.fullmatch(branch) is not None or _STATELESS.fullmatch(branch) is not None)


def is_looped(request: Request, identity: ProxyIdentity) -> bool:
    """
    Whether C{request} is one this proxy forwarded before and that came
    back unchanged: a loop, not a spiral (section 16.3 step 4).

    A Via of ours (by sent-by) with a stateful branch is looked for; its
    loop key is computed again from this request, with the Via just below
    ours as the previous hop (it is the topmost Via the proxy saw when it
    forwarded the request).  If the keys match, nothing that affects
    processing changed: a loop.  If the Request-URI, the Route or the
    credentials changed, the request spirals and processing goes on.

    @raise sipstack.errors.RemoteProtocolError: a Via is malformed (400).
    """
    vias = request.vias
    for index, via in enumerate(vias[:-1]):
        branch = via.branch
        if branch is None or not identity.is_our_via(via):
            continue
        match = _STATEFUL.fullmatch(branch)
        if match is not None and hmac.compare_digest(match.group(1), loop_key(request, vias[index + 1])):
            return True
    return False
