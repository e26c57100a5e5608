"""
Where messages go: the pure rules of RFC 3261 section 18 and RFC 3581,
RFC 3263 server location planned against an injected resolver, and the
Record-Route URI of a proxy (with the TLS hint).  No I/O here.
"""

from sipstack.routing.locate import (
    SUPPORTED,
    NoTargets,
    NoTargetsLookupFailed,
    Randomness,
    locate_response,
    locate_server,
    next_hop_uri,
    order_srv,
)
from sipstack.routing.plan import Lookup, Plan, Target, TargetSource
from sipstack.routing.record_route import TLS_PORT_HINT, record_route_uri, tls_port_hint
from sipstack.routing.resolver import AddressFamily, AddressRecord, NAPTRRecord, Resolver, SRVRecord
from sipstack.routing.via import (
    BRANCH_COOKIE,
    UDP_SIZE_LIMIT,
    ResponseTarget,
    default_port,
    host_literal,
    new_branch,
    outgoing_via,
    response_target,
    stamp_received,
    transport_for_size,
)

__all__ = [
    "SUPPORTED",
    "NoTargets",
    "NoTargetsLookupFailed",
    "Randomness",
    "locate_response",
    "locate_server",
    "next_hop_uri",
    "order_srv",
    "Lookup",
    "Plan",
    "Target",
    "TargetSource",
    "TLS_PORT_HINT",
    "record_route_uri",
    "tls_port_hint",
    "AddressFamily",
    "AddressRecord",
    "NAPTRRecord",
    "Resolver",
    "SRVRecord",
    "BRANCH_COOKIE",
    "UDP_SIZE_LIMIT",
    "ResponseTarget",
    "default_port",
    "host_literal",
    "new_branch",
    "outgoing_via",
    "response_target",
    "stamp_received",
    "transport_for_size",
]
