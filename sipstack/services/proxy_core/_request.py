# -*- test-case-name: tests.services.test_proxy_core -*-
"""
The request side of the proxy, in the order of RFC 3261 section 16: check
the request (16.3), process its route information (16.4), determine its
targets (16.5), and build the copy forwarded to each one (16.6), statefully
or, for an ACK of a 2xx and a CANCEL that matches nothing, statelessly
(16.11).  Pure functions of messages and configuration values.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from sipstack.errors import InvalidValue, RemoteProtocolError
from sipstack.hop import FlowKey, TransportKind
from sipstack.message import SIPURI, URI, AbsoluteURI, NameAddress, Request, Response, Via, build_response, parse_uri
from sipstack.message.auth import Challenge
from sipstack.routing.locate import next_hop_uri
from sipstack.routing.via import host_literal
from sipstack.services.digest import AuthReason, AuthResult
from sipstack.services.proxy_core._flow_token import encode_flow_token
from sipstack.services.proxy_core._identity import (
    Interface,
    ProxyIdentity,
    canonical_host,
    is_looped,
    proxy_branch,
    stateless_branch,
)

__all__ = [
    "PROXY_SCHEMES",
    "DIALOG_METHODS",
    "DEFAULT_MAX_FORWARDS",
    "Drop",
    "DROP",
    "ProxyAuthenticator",
    "check_request",
    "wants_credentials",
    "preprocess",
    "Target",
    "ForwardTo",
    "LookUp",
    "ForUs",
    "route_request",
    "aor_of_request",
    "BindingLike",
    "targets_from_bindings",
    "group_by_q",
    "should_record_route",
    "Forward",
    "forward_request",
    "forward_statelessly",
    "answer_options",
]

#: The Request-URI schemes the proxy can route (others get 416, section 16.3 step 2).
PROXY_SCHEMES: frozenset[str] = frozenset({"sip", "sips"})

#: Methods whose out-of-dialog requests may create a dialog, and so are
#: record-routed (RFC 3261 section 12; RFC 6665 for SUBSCRIBE and NOTIFY;
#: RFC 3515 for REFER).
DIALOG_METHODS: frozenset[str] = frozenset({"INVITE", "SUBSCRIBE", "NOTIFY", "REFER"})

#: Max-Forwards of a forwarded request that came without one (section 16.6 step 3).
DEFAULT_MAX_FORWARDS = 70

_ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, MESSAGE, INFO, UPDATE, PRACK, SUBSCRIBE, NOTIFY, REFER"


class Drop(enum.Enum):
    """The verdict on a request that fails a check but may not be answered (an ACK, section 17)."""

    DROP = "drop"


DROP = Drop.DROP


class ProxyAuthenticator(Protocol):
    """
    What the proxy needs of an authenticator (L{sipstack.services.digest.Authenticator}
    fits): check a request's credentials, and make challenges.
    """

    def check(self, request: Request, header_name: str = ...) -> AuthResult:
        """Check the credentials of C{request} in C{header_name}."""

    def challenge(self, stale: bool = ...) -> list[Challenge]:
        """The challenges of a 407, one header field each."""


# Section 16.3: request validation.


def answer_options(request: Request, *, allow: str = _ALLOW, supported: Iterable[str] = ()) -> Response:
    """The proxy's own 200 to an OPTIONS it answers as a UAS (section 11.2)."""
    headers = [("Allow", allow), ("Accept", "application/sdp")]
    options = ", ".join(supported)
    if options:
        headers.append(("Supported", options))
    return build_response(request, 200, headers=headers)


def wants_credentials(request: Request, identity: ProxyIdentity) -> bool:
    """
    Whether the proxy asks C{request} for credentials: a request that starts
    something (no To tag) from one of our users (the From URI is in one of
    our domains).  ACK and CANCEL are never challenged (RFC 3261 section
    22.1: they cannot be resubmitted); a request from another domain is for
    one of our users and has no credentials of ours to give; a request
    within a dialog was authorized when the dialog started.
    """
    if request.method in ("ACK", "CANCEL") or request.to.tag is not None:
        return False
    return identity.serves(request.from_.uri)


def check_request(
    request: Request,
    identity: ProxyIdentity,
    *,
    schemes: frozenset[str] = PROXY_SCHEMES,
    supported: frozenset[str] = frozenset(),
    loop_detection: bool = True,
    authenticator: ProxyAuthenticator | None = None,
    challenged: Callable[[Request, ProxyIdentity], bool] | None = None,
) -> Response | Drop | None:
    """
    The checks of section 16.3, in its order, on a request as received:
    L{None} to go on, or the response to send instead of forwarding it
    (L{DROP} for an ACK, which is never answered).

      1. Syntax: the parser has checked it; a malformed Via, Route or
         Proxy-Require read here gets 400.
      2. Request-URI scheme not in C{schemes}: 416.
      3. Max-Forwards 0: 483; an OPTIONS gets our own 200 instead (the
         element "MAY act as a UAS", which makes OPTIONS a traceroute).
      4. With C{loop_detection}, a loop (L{is_looped}): 482.
      5. C{Proxy-Require} options not in C{supported}: 420 with
         C{Unsupported} listing them.
      6. With an C{authenticator}, and when L{wants_credentials}: bad or
         missing C{Proxy-Authorization} gets 407 with C{Proxy-Authenticate}
         (C{stale=true} when only the nonce was old), malformed credentials
         400.

    @param challenged: which requests are asked for credentials; by
        default L{wants_credentials} (a proxy serving every domain has no
        "our users" to tell apart, and passes its own rule).
    """
    try:
        return _check(
            request,
            identity,
            schemes=schemes,
            supported=supported,
            loop_detection=loop_detection,
            authenticator=authenticator,
            challenged=wants_credentials if challenged is None else challenged,
        )
    except RemoteProtocolError as error:
        return DROP if request.method == "ACK" else build_response(request, 400, error.reason)


def _check(
    request: Request,
    identity: ProxyIdentity,
    *,
    schemes: frozenset[str],
    supported: frozenset[str],
    loop_detection: bool,
    authenticator: ProxyAuthenticator | None,
    challenged: Callable[[Request, ProxyIdentity], bool],
) -> Response | Drop | None:
    def answer(status: int, reason: str | None = None, headers: Sequence[tuple[str, str]] = ()) -> Response | Drop:
        if request.method == "ACK":
            return DROP
        return build_response(request, status, reason, headers=headers)

    if request.uri.scheme not in schemes:
        return answer(416)
    if request.max_forwards == 0:
        if request.method == "OPTIONS":
            return answer_options(request, supported=sorted(supported))
        return answer(483)
    if loop_detection and is_looped(request, identity):
        return answer(482)
    try:
        required = request.headers.values("Proxy-Require")
    except InvalidValue:
        raise RemoteProtocolError("Bad Proxy-Require header") from None
    known = {option.lower() for option in supported}
    unsupported = [option for option in required if option.lower() not in known]
    if unsupported:
        return answer(420, headers=[("Unsupported", ", ".join(unsupported))])
    if authenticator is not None and challenged(request, identity):
        result = authenticator.check(request, "Proxy-Authorization")
        if not result.ok:
            if result.reason in (AuthReason.MALFORMED, AuthReason.URI_MISMATCH):
                return answer(400, f"Bad Proxy-Authorization: {result.reason.value}")
            challenges = authenticator.challenge(stale=result.stale)
            return answer(407, headers=[("Proxy-Authenticate", str(c)) for c in challenges])
    return None


# Section 16.4: route information preprocessing.


def _with_route_values(request: Request, values: Sequence[str]) -> Request:
    """C{request} with its Route values replaced by C{values} (raw text, in order)."""
    headers = request.headers
    headers = headers.with_replaced("Route", ", ".join(values)) if values else headers.without("Route")
    return request.replace(headers=headers)


def _route_values(request: Request) -> list[str]:
    try:
        return request.headers.values("Route")
    except InvalidValue:
        raise RemoteProtocolError("Bad Route header") from None


def _default_port(uri: SIPURI) -> int:
    return 5061 if uri.secure or uri.transport == "tls" else 5060


def preprocess(request: Request, identity: ProxyIdentity, inbound: Interface) -> Request:
    """
    Section 16.4, on a request that passed L{check_request}.

      - A Request-URI that is a URI we record-routed (it names us and has
        no user part) while a Route remains: the previous hop is a strict
        router (section 12.2.1.1, RFC 2543), which put our Record-Route
        value there and the remote target last in the Route.  The
        Request-URI becomes that last Route value, which is removed.
      - A C{maddr} naming us, on a request received on the port and
        transport the Request-URI says (or implies): the C{maddr}, port and
        C{transport} are removed.
      - Route values naming us at the top are removed: one, or two when we
        double-record-routed (RFC 5658).

    @param inbound: the interface the request arrived on.
    @raise RemoteProtocolError: a Route is malformed (answer 400).
    """
    routes = request.routes
    uri = request.uri
    if routes and isinstance(uri, SIPURI) and uri.user is None and identity.names_us(uri):
        values = _route_values(request)
        request = _with_route_values(request, values[:-1]).replace(uri=routes[-1].uri)
        routes = routes[:-1]
        uri = request.uri
    if isinstance(uri, SIPURI) and uri.maddr is not None:
        maddr_host = canonical_host(uri.maddr)
        if maddr_host in identity.hosts or maddr_host in identity.domains:
            port = uri.port if uri.port is not None else _default_port(uri)
            transport = uri.transport or ("tls" if uri.secure else "udp")
            if port == inbound.port and transport == inbound.transport.value.lower():
                stripped = uri.without_param("maddr").without_param("transport").replace(port=None)
                request = request.replace(uri=stripped)
    popped = 0
    while popped < len(routes) and identity.names_us(routes[popped].uri):
        popped += 1
    if popped:
        request = _with_route_values(request, _route_values(request)[popped:])
    return request


# Section 16.5: determining request targets.


@dataclass(frozen=True, slots=True)
class Target:
    """
    One target of the target set.

    @ivar uri: the Request-URI of the copy forwarded to it.
    @ivar q: its q-value (from the binding's contact), L{None} for none.
    @ivar path: Route values to put first (the binding's Path, RFC 3327).
    @ivar flow: the flow its binding was registered over: the copy goes on
        that flow while it is open (RFC 5626), else where the route says.
    @ivar flow_only: the UA can only be reached over C{flow} (it registered
        with RFC 5626 outbound, or NAT is evident: its Contact is not the
        address the REGISTER came from), so the Record-Route towards it
        carries a flow token (RFC 5626 section 5.3) and in-dialog requests
        take the flow too.
    """

    uri: URI
    q: float | None = None
    path: tuple[SIPURI, ...] = ()
    flow: FlowKey | None = None
    flow_only: bool = False


@dataclass(frozen=True, slots=True)
class ForwardTo:
    """The Request-URI itself is the only target (section 16.5)."""

    target: Target


@dataclass(frozen=True, slots=True)
class LookUp:
    """
    The Request-URI is in one of our domains: look its address-of-record up
    in the location service, then call L{targets_from_bindings}.

    @ivar aor: the address-of-record, as the registrar keys it (the
        C{sip:} form, canonical).
    """

    aor: str


@dataclass(frozen=True, slots=True)
class ForUs:
    """
    The request is addressed to the proxy itself (a Request-URI naming us
    or one of our domains, without a user): the proxy answers it as a UAS
    (OPTIONS with L{answer_options}; REGISTER goes to the registrar).
    """


def aor_of_request(uri: SIPURI) -> str:
    """
    The address-of-record of a Request-URI in one of our domains: the
    C{sip:} form of C{address_of_record()}, the registrar's key
    (C{sipstack.services.registrar.aor_of}; RFC 5630 section 3.1.1: a
    C{sips:} URI names the same resource).
    """
    aor = uri.address_of_record()
    return str(aor.replace(scheme="sip") if aor.scheme == "sips" else aor)


def route_request(request: Request, identity: ProxyIdentity) -> ForwardTo | LookUp | ForUs | Response:
    """
    Section 16.5 on a preprocessed request:

      - a Request-URI that is not C{sip:}/C{sips:} has nowhere to go: 404;
      - with C{maddr}, or with a Route left after L{preprocess} (loose
        routing: the request follows a route set, within a dialog or one a
        UA preloaded), the Request-URI is the only target;
      - a Request-URI naming us or our domain without a user is for us;
      - in one of our domains: look it up;
      - any other domain: the Request-URI is the only target (located with
        RFC 3263 by the glue).
    """
    uri = request.uri
    if isinstance(uri, AbsoluteURI):
        return build_response(request, 404, f"No route for {uri.scheme}: URIs")
    if uri.maddr is not None or request.routes:
        return ForwardTo(Target(uri))
    if uri.user is None and identity.names_us(uri):
        return ForUs()
    if identity.serves(uri):
        if uri.user is None:
            return ForUs()
        return LookUp(aor_of_request(uri))
    return ForwardTo(Target(uri))


class BindingLike(Protocol):
    """What the proxy reads of a binding (L{sipstack.services.location.Binding} fits)."""

    @property
    def contact(self) -> str:
        """The contact URI."""

    @property
    def q(self) -> float | None:
        """The q-value."""

    @property
    def path(self) -> tuple[str, ...]:
        """The Path URIs, in order."""

    @property
    def flow(self) -> FlowKey | None:
        """The flow the REGISTER came on."""

    @property
    def reg_id(self) -> int | None:
        """The C{reg-id} of an RFC 5626 (outbound) registration, or L{None}."""


def _reach_over(contact: URI, binding: BindingLike) -> FlowKey | None:
    """
    The flow a request for C{binding} should go over, or L{None} for its
    Contact (routed by RFC 3263).

    A stream flow is used while it is open: that connection is the way in
    to a UA behind NAT or a firewall, and the stack falls back to the
    Contact when it has closed.  A UDP "flow" is only a source address, so it
    is used instead of the Contact (RFC 3261 section 16.5 says the Contact)
    only when there is a reason: the UA registered with RFC 5626 outbound
    (C{reg-id}), or NAT is evident because the Contact's host is not the
    address the REGISTER came from (a private or made-up address behind
    NAT).  A UA that registers from one port and listens on another of the
    same address (third-party registration, SIPp's load scenarios) is then
    reached at its Contact, as the RFC says.
    """
    flow = binding.flow
    if flow is None or flow.transport is not TransportKind.UDP or binding.reg_id is not None:
        return flow
    if isinstance(contact, SIPURI) and host_literal(contact.maddr or contact.host) == flow.remote.host:
        return None
    return flow


def _behind_nat(contact: URI, binding: BindingLike) -> bool:
    """Whether a UA is reachable only over its flow: an outbound registration, or a Contact at another address."""
    flow = binding.flow
    if flow is None:
        return False
    if binding.reg_id is not None:
        return True
    return not (isinstance(contact, SIPURI) and host_literal(contact.maddr or contact.host) == flow.remote.host)


def targets_from_bindings(
    request: Request, bindings: Iterable[BindingLike], *, user_known: bool
) -> tuple[Target, ...] | Response:
    """
    The target set of a request for one of our users (section 16.5): a
    target per current binding, its Path as Route values and its flow; or
    the error when there is none:

      - 404 when there is no binding and C{user_known} is false: the
        address-of-record does not exist here (section 16.5: "a resource at
        this proxy that does not exist");
      - 480 when the user exists (C{user_known}, from the users file or any
        directory) but has no usable binding now (section 16.5: "SHOULD be
        the 480"), and also when bindings exist (so the AOR does) but none
        can be used.

    For a C{sips:} Request-URI only C{sips:} contacts are used, and a
    C{sip:} contact only when it was registered over a TLS flow (RFC 5630
    section 3.1.3: the request must reach the UA over TLS).
    """
    secure = isinstance(request.uri, SIPURI) and request.uri.secure
    targets: list[Target] = []
    seen = False
    for binding in bindings:
        seen = True
        try:
            contact = parse_uri(binding.contact)
            path = tuple(_sip_uri(text) for text in binding.path)
        except InvalidValue:
            continue
        if secure and not (
            isinstance(contact, SIPURI)
            and (contact.secure or (binding.flow is not None and binding.flow.transport is TransportKind.TLS))
        ):
            continue
        flow = _reach_over(contact, binding)
        targets.append(Target(contact, binding.q, path, flow, flow is not None and _behind_nat(contact, binding)))
    if targets:
        return tuple(targets)
    return build_response(request, 480 if seen or user_known else 404)


def _sip_uri(text: str) -> SIPURI:
    uri = parse_uri(text.strip().removeprefix("<").removesuffix(">"))
    if not isinstance(uri, SIPURI):
        raise InvalidValue(f"a Path must be a SIP URI, not {text!r}")
    return uri


def group_by_q(targets: Iterable[Target]) -> tuple[tuple[Target, ...], ...]:
    """
    The targets in groups of equal q-value, highest first (a target without
    one counts as 1.0), each group in the given order: tried in parallel
    within a group, one group after the other (section 16.6, 16.7 step 6).
    """
    groups: dict[float, list[Target]] = {}
    for target in targets:
        groups.setdefault(1.0 if target.q is None else target.q, []).append(target)
    return tuple(tuple(groups[q]) for q in sorted(groups, reverse=True))


# Section 16.6: request forwarding.


def should_record_route(request: Request) -> bool:
    """Whether to record-route C{request}: one that may create a dialog (no To tag, a L{DIALOG_METHODS} method)."""
    return request.method in DIALOG_METHODS and request.to.tag is None


def _request_uri(uri: URI) -> URI:
    """A target URI made fit for a Request-URI: no C{method} parameter, no headers (section 19.1.1)."""
    if isinstance(uri, SIPURI) and (uri.headers or uri.has_param("method")):
        return uri.without_param("method").replace(headers=())
    return uri


def _secure(request: Request) -> bool:
    """Whether the Request-URI or the topmost Route is a C{sips:} URI (section 16.6 step 4)."""
    routes = request.routes
    target = routes[0].uri if routes else request.uri
    return isinstance(target, SIPURI) and target.secure


@dataclass(frozen=True, slots=True)
class Forward:
    """
    A copy of a request ready to forward to one target (section 16.6).

    @ivar request: the copy as it is sent when it leaves on the interface it
        came in on (or when it is not record-routed): new Request-URI,
        Max-Forwards, Route, our Via on top with L{branch}, Content-Length,
        and our Record-Route if any.  The transport layer writes the
        transport and sent-by of our Via as it sends.
    @ivar target: the target.
    @ivar branch: the branch of our Via: the client transaction's.
    @ivar flow: the flow to send on while it is open (the target's).
    @ivar flow_token: the token naming L{flow} in the Record-Route URI of
        the outbound side (RFC 5626 section 5.3), or L{None}.
    """

    request: Request
    target: Target
    branch: str
    flow: FlowKey | None
    _unrouted: Request
    _inbound: Interface | None
    _secure_in: bool
    _secure_out: bool
    _tls_hint: bool
    flow_token: str | None = None

    @property
    def next_hop(self) -> SIPURI:
        """
        The URI whose server the copy goes to (RFC 3263 on it): the top
        Route, or the Request-URI (L{next_hop_uri}).

        @raise sipstack.errors.RoutingError: that URI is not a SIP URI.
        """
        return next_hop_uri(self.request)

    def request_for(self, outbound: Interface | None) -> Request:
        """
        The copy as sent on C{outbound} (L{None}: not known, taken as the
        inbound one).  When it is record-routed and the outbound interface
        or the security of the two sides differs, the proxy
        double-record-routes (RFC 5658): first the URI for the outbound
        side (used by the downstream element for requests towards us), then
        the one for the inbound side (used upstream); else one URI.
        """
        inbound = self._inbound
        if inbound is None:
            return self._unrouted
        if outbound is None or outbound == inbound:
            return self.request
        uris = [
            outbound.record_route_uri(secure=self._secure_out, tls_hint=self._tls_hint, flow_token=self.flow_token),
            inbound.record_route_uri(secure=self._secure_in, tls_hint=self._tls_hint),
        ]
        return _add_record_route(self._unrouted, uris)


def _add_record_route(request: Request, uris: Sequence[SIPURI]) -> Request:
    value = ", ".join(str(NameAddress(uri)) for uri in uris)
    return request.replace(headers=request.headers.with_added("Record-Route", value, first=True))


def forward_request(
    request: Request,
    target: Target,
    *,
    received: Request,
    inbound: Interface,
    record_route: bool = True,
    outbound_proxy: SIPURI | None = None,
    tls_hint: bool = False,
    branch: str | None = None,
    flow_secret: bytes | None = None,
) -> Forward:
    """
    Section 16.6 steps 1-9 for one target.

      1. A copy of C{request} (the preprocessed request).
      2. The Request-URI becomes the target's URI, without the parameters
         and headers a Request-URI may not carry.
      3. Max-Forwards decremented, or set to 70 when absent.
      4. Record-Route, when C{record_route} and L{should_record_route} (or
         when section 16.6 step 4 makes it a must: a C{sips:} request that
         came without TLS, or a request that came over TLS and leaves
         without C{sips:}): our URI with C{lr} and the transport of the
         side (L{Interface.record_route_uri}); C{sips:} when the
         Request-URI or top Route is C{sips:}; with C{tls_hint} the
         C{x-sipstack-tls-port} hint; doubled by L{Forward.request_for} when
         the request leaves on another interface.  With a C{flow_secret},
         when the target is reachable only over its flow
         (L{Target.flow_only}), the URI of the side the request leaves
         on carries a flow token for it (RFC 5626 section 5.3,
         L{encode_flow_token}), so that requests towards the UA later
         take the flow too; the single URI of a request that leaves on
         the interface it came in on carries it too.
      6. The target's Path becomes the first Route values (RFC 3327); a
         target without Path or flow goes through C{outbound_proxy} when
         one is configured (pushed as a Route).  If the top Route is then a
         strict router (no C{lr}), the Request-URI goes last in the Route
         and the strict router's URI becomes the Request-URI.
      8. Our Via on top, with C{branch} (default: L{proxy_branch} of
         C{received}, which carries the loop key) and C{rport}.
      9. Content-Length set from the body.

    Steps 5 (extra headers), 7 (RFC 3263), 10 (sending) and 11 (Timer C)
    are the caller's.

    @param received: the request as received, before L{preprocess}: the
        loop key hashes it.
    @param inbound: the interface it arrived on.
    """
    copy = request.replace(uri=_request_uri(target.uri))
    headers = copy.headers
    hops = copy.max_forwards
    headers = headers.with_replaced("Max-Forwards", str(DEFAULT_MAX_FORWARDS if hops is None else max(hops - 1, 0)))
    pushed = list(target.path)
    if not pushed and target.flow is None and outbound_proxy is not None:
        pushed = [outbound_proxy if outbound_proxy.lr else outbound_proxy.with_param("lr")]
    if pushed:
        value = ", ".join(str(NameAddress(uri)) for uri in pushed)
        headers = headers.with_added("Route", value, first=True)
    copy = copy.replace(headers=headers)
    copy = _strict_route(copy)
    secure_out = _secure(copy)
    secure_in = isinstance(request.uri, SIPURI) and request.uri.secure
    inbound_tls = inbound.transport is TransportKind.TLS
    recording = should_record_route(copy) and (
        record_route or (secure_out and not inbound_tls) or (inbound_tls and not secure_out)
    )
    branch = proxy_branch(received) if branch is None else branch
    via = Via(inbound.transport.value, inbound.host, inbound.port, (("branch", branch), ("rport", None)))
    copy = copy.replace(headers=copy.headers.with_added("Via", str(via), first=True))
    copy = copy.with_body(copy.body)
    if not recording:
        return Forward(copy, target, branch, target.flow, copy, None, secure_in, secure_out, tls_hint)
    token = None
    if flow_secret is not None and target.flow is not None and target.flow_only:
        token = encode_flow_token(target.flow, flow_secret)
    if secure_in == secure_out:
        uris = [inbound.record_route_uri(secure=secure_out, tls_hint=tls_hint, flow_token=token)]
    else:
        uris = [
            inbound.record_route_uri(secure=secure_out, tls_hint=tls_hint, flow_token=token),
            inbound.record_route_uri(secure=secure_in, tls_hint=tls_hint),
        ]
    single = _add_record_route(copy, uris)
    return Forward(single, target, branch, target.flow, copy, inbound, secure_in, secure_out, tls_hint, token)


def _strict_route(request: Request) -> Request:
    """Section 16.6 step 6: a strict-routing next hop gets the Request-URI last in the Route, its URI in its place."""
    routes = request.routes
    if not routes or not isinstance(routes[0].uri, SIPURI) or routes[0].uri.lr:
        return request
    values = _route_values(request)
    values = [*values[1:], str(NameAddress(request.uri))]
    return _with_route_values(request, values).replace(uri=_request_uri(routes[0].uri))


def forward_statelessly(
    request: Request,
    *,
    received: Request,
    inbound: Interface,
    target: Target | None = None,
    outbound_proxy: SIPURI | None = None,
) -> Forward:
    """
    Section 16.11: forward without state (an ACK of a 2xx, a CANCEL that
    matches no transaction, section 16.10).  The copy is built as in
    L{forward_request} but with the branch of L{stateless_branch}, so that
    a retransmission gets the same branch, and without Record-Route.  The
    target is the Request-URI unless given (a stateless proxy picks one
    target, from the message and time-invariant data only).
    """
    return forward_request(
        request,
        Target(request.uri) if target is None else target,
        received=received,
        inbound=inbound,
        record_route=False,
        outbound_proxy=outbound_proxy,
        branch=stateless_branch(received),
    )
