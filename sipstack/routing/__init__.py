"""
Where messages go: the pure rules of RFC 3261 section 18 and RFC 3581 (and,
later, RFC 3263 target planning).  No I/O here.
"""

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
