# -*- test-case-name: tests.services.test_proxy_core -*-
"""
Flow tokens (RFC 5626 section 5.3): the user part of the Record-Route URI
the proxy writes on the side of a UA it reached over the UA's registration
flow.  A later request whose Route carries the token is sent over that
flow, the only way in to a UA behind NAT, instead of to its Contact.

A token is the base64url form (no padding) of a truncated HMAC-SHA256 of
the flow's text form, followed by that text: C{TRANSPORT remote local
connection}.  Only the proxy that knows the secret can make one, so a
request cannot name a flow of its own choosing; a token that does not
verify is treated as no token.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from sipstack.hop import FlowKey, Peer, TransportKind
from sipstack.message import SIPURI, Request
from sipstack.services.proxy_core._identity import ProxyIdentity

__all__ = ["encode_flow_token", "decode_flow_token", "flow_of_route"]

_MAC_SIZE = 12


def _peer_text(peer: Peer) -> str:
    return str(peer)


def _peer_from(text: str) -> Peer:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(text)
    return Peer(host.removeprefix("[").removesuffix("]"), int(port))


def _mac(payload: bytes, secret: bytes) -> bytes:
    return hmac.new(secret, payload, hashlib.sha256).digest()[:_MAC_SIZE]


def encode_flow_token(flow: FlowKey, secret: bytes) -> str:
    """
    The token naming C{flow}, signed with C{secret}: only unreserved
    characters, so it is a valid URI user part as it stands.
    """
    text = f"{flow.transport.value} {_peer_text(flow.remote)} {_peer_text(flow.local)} {flow.connection}"
    payload = text.encode("ascii")
    return base64.urlsafe_b64encode(_mac(payload, secret) + payload).decode("ascii").rstrip("=")


def decode_flow_token(token: str, secret: bytes) -> FlowKey | None:
    """The flow a token of L{encode_flow_token} names, or L{None} if it is not one made with C{secret}."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        return None
    mac, payload = raw[:_MAC_SIZE], raw[_MAC_SIZE:]
    if len(mac) != _MAC_SIZE or not hmac.compare_digest(mac, _mac(payload, secret)):
        return None
    try:
        transport, remote, local, connection = payload.decode("ascii").split(" ")
        if not connection.isdigit():
            return None
        return FlowKey(TransportKind(transport), _peer_from(remote), _peer_from(local), int(connection))
    except ValueError:
        return None


def flow_of_route(request: Request, identity: ProxyIdentity, secret: bytes) -> FlowKey | None:
    """
    The flow named by a valid token in the Route values naming us at the
    top of C{request} (as received: those L{preprocess
    <sipstack.services.proxy_core.preprocess>} removes), or L{None}.
    """
    for address in request.routes:
        uri = address.uri
        if not identity.names_us(uri):
            break
        if isinstance(uri, SIPURI) and uri.user is not None:
            flow = decode_flow_token(uri.user, secret)
            if flow is not None:
                return flow
    return None
