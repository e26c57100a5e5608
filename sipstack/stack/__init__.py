# -*- test-case-name: tests.test_stack -*-
"""
L{SIPStack}: the API for Twisted applications.

It wires the L{TransportLayer} (sockets), the sans-IO L{TransactionManager}
(RFC 3261 section 17) and the reactor as the clock, and plays the parts of
RFC 3261 a user agent core plays around them:

  - C{request(request)} sends a request through a client transaction and
    fires with a L{RequestResult}: the final response (a 408 when Timer B or
    F fired, a 503 when the transport failed, RFC 3261 section 8.1.3.1,
    told apart by C{synthesized}), the provisional ones, the hop's security
    state, and for a 2xx to an INVITE the L{Dialog} it created, whose ACK the
    stack sends and resends (section 13.2.2.4).  C{cancel(invite)} sends a
    CANCEL once a provisional response came, never after the final one
    (section 9.1).
  - C{on_request(handler)} installs the UAS core: each new request becomes an
    L{IncomingRequest} answered through its server transaction, by the
    handler's return value (a L{Response}, or a Deferred of one); 100 Trying
    goes out for an INVITE whose handler is slow (section 8.2.6.1), a 2xx to
    an INVITE is retransmitted until its ACK (section 13.3.1.4), and its
    dialog ended with a BYE if none comes; CANCEL is answered here (200 for
    any live transaction, and 487 to an INVITE; 481 when none matches;
    section 9.2).
  - The dialog table (C{dialogs}): early and confirmed dialogs of the INVITEs
    sent and answered, ended by BYE and by the INVITE's failure.  A request
    with a To tag that matches none gets 481, one with a CSeq out of order
    500 (section 12.2.2), unless the stack was made with
    C{check_dialogs=False}.
  - C{close()} refuses new requests with 503 and lets open transactions reach
    their final response before the sockets close.

Where a request goes is decided by RFC 3263 planning (C{_locate}): the
next hop's URI (a loose first Route, else the Request-URI) is planned with
the stack's resolver and TLS policy, its stream targets are walked TLS
first by the transport layer (reusing a flow that is as secure), UDP
follows only where the policy allows, and a transport failure, timeout or
503 moves the request to the next target (RFC 3263 section 4.3).  The
result says which of this happened: its C{plan}, C{attempts},
C{fallback_reason}, C{failovers} and C{security}.

The modules behind it: C{_stack} (L{SIPStack}: wiring, dispatch of what the
transaction manager reports, shutdown), C{_client} (the TU of each request
sent, failover), C{_locate} (planning and the walk of a plan, the hosts
file in front of DNS), C{_server} (L{IncomingRequest}) and C{_transport}
(each transaction's sends).
"""

from sipstack.stack._client import Failover, OutgoingRequest, RequestResult
from sipstack.stack._locate import UDP_FALLBACK_EVENT, HostsFileResolver
from sipstack.stack._server import IncomingRequest, RequestHandler, StrayHandler
from sipstack.stack._stack import SIPStack

__all__ = [
    "SIPStack",
    "RequestResult",
    "OutgoingRequest",
    "Failover",
    "IncomingRequest",
    "RequestHandler",
    "StrayHandler",
    "UDP_FALLBACK_EVENT",
    "HostsFileResolver",
]
