# -*- test-case-name: tests.services.test_proxy -*-
"""
The stateful proxy (RFC 3261 section 16) on a L{SIPStack} in proxy mode: the
glue that runs the pure decisions of L{sipstack.services.proxy_core} with
the stack's transactions, the registrar's bindings and the reactor's
timers.

  - L{Proxy} is a request handler (the C{proxy} of a
    L{ServerCore<sipstack.services.server.ServerCore>}) and a stray
    handler (C{stack.on_stray(proxy.stray)}): L{Proxy.install} sets both.
  - Each request forwarded statefully gets a L{ResponseContext}, driven by
    one L{_Forwarding}: its branches are L{SIPStack.forward} calls (on the
    binding's flow while it is open, else by RFC 3263, TLS first), each with
    a finalize hook that adds the double Record-Route when the request
    leaves on another interface (RFC 5658), and for an INVITE a Timer C
    (reset by each provisional response other than 100, section 16.8).
  - ACKs of 2xx responses and responses no transaction took are forwarded
    statelessly (section 16.11); a CANCEL the stack matched to a request
    fires that request's C{cancelled}, and the context cancels its branches
    (section 16.10); a CANCEL that matched nothing is forwarded with the
    stateless branch to where the Request-URI or Route leads, through a
    client transaction of its own so that its server transaction gets the
    answer.

@see: docs/proxy.md.
"""

from __future__ import annotations

import secrets
import socket
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from sipstack.errors import LocalProtocolError, RemoteProtocolError
from sipstack.hop import FlowKey, HopSecurity, Peer, TransportKind
from sipstack.message import SIPURI, Request, Response, parse_uri
from sipstack.message.envelope import Received
from sipstack.services.digest import Authenticator
from sipstack.services.proxy_core import (
    DROP,
    Action,
    Branch,
    CancelBranches,
    ForUs,
    ForwardResponse,
    ForwardTo,
    Interface,
    LookUp,
    ProxyIdentity,
    ResponseContext,
    StartBranches,
    Target,
    answer_options,
    aor_of_request,
    canonical_host,
    check_request,
    flow_of_route,
    forward_request,
    forward_statelessly,
    forward_stray_response,
    group_by_q,
    preprocess,
    route_request,
    targets_from_bindings,
    upstream_response,
)
from sipstack.services.registrar import Registrar
from sipstack.stack import IncomingRequest, OutgoingRequest, RequestResult, SIPStack

__all__ = ["ProxySettings", "Proxy"]

_ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, MESSAGE, INFO, UPDATE, PRACK, SUBSCRIBE, NOTIFY, REFER, REGISTER"


@dataclass(frozen=True, slots=True, kw_only=True)
class ProxySettings:
    """
    How the proxy forwards.

    @ivar record_route: record-route requests that may create a dialog, so
        that in-dialog requests traverse the proxy (forced anyway where
        section 16.6 step 4 requires it).
    @ivar timer_c: seconds an INVITE branch may go without a provisional
        response before it is cancelled (section 16.8: more than 3 minutes).
    @ivar supported: the option tags C{Proxy-Require} may name.
    @ivar loop_detection: answer 482 to a request that loops (section 16.3).
    @ivar outbound_proxy: where requests with no Path and no flow go first.
    @ivar tls_hint: add C{x-sipstack-tls-port} to non-TLS Record-Route URIs
        (L{None}: the stack's C{TLSFirstSettings.record_route_tls_hint}).
    @ivar tls_name: a host name our TLS certificate names (a SIP domain
        identity of it, RFC 5922 section 7.1) and that resolves to our TLS
        listener: the host of the Record-Route URIs that lead to that
        listener (C{sips:}, C{transport=tls}), so that a strict client can
        authenticate the in-dialog hop, and one of our hosts when such a
        Route comes back.  L{None}: those URIs name the listener's address,
        which only a certificate for that IP address authenticates.
    @ivar flow_token_secret: the key that signs the flow tokens of our
        Record-Route URIs (RFC 5626 section 5.3).  L{None}: a random one
        per proxy; tokens then do not outlive it, but neither do the flows
        they name.
    """

    record_route: bool = True
    timer_c: float = 181.0
    supported: frozenset[str] = frozenset()
    loop_detection: bool = True
    outbound_proxy: SIPURI | None = None
    tls_hint: bool | None = None
    tls_name: str | None = None
    flow_token_secret: bytes | None = None


def _is_wildcard(host: str) -> bool:
    return host in ("0.0.0.0", "::", "")


def _challenge_everyone(request: Request, identity: ProxyIdentity) -> bool:
    """Who is asked for credentials when every domain is served: whoever starts something."""
    return request.method not in ("ACK", "CANCEL") and request.to.tag is None


class Proxy:
    """
    A stateful proxy over a registrar's location store.

    With the registrar's domains configured, requests for those domains are
    looked up (404 for an unknown user, 480 for a known one with no
    binding) and the rest are forwarded by RFC 3263; a user at the proxy's
    own address stands for a user of the domain when there is exactly one.
    With none (a registrar for every domain), every Request-URI with a user
    is looked up first and forwarded by RFC 3263 when nobody registered it,
    unless it names the proxy itself.  A REGISTER the registrar does not
    serve gets 403 (no relaying of registrations).  See docs/proxy.md.

    @ivar stack: the stack, in proxy mode (C{SIPStack(proxy=True)}).
    @ivar registrar: where bindings are looked up.
    @ivar authenticator: with one, requests that start something get 407
        until they carry good C{Proxy-Authorization}.
    @ivar settings: how to forward.
    """

    _log = Logger()

    def __init__(
        self,
        stack: SIPStack,
        registrar: Registrar,
        *,
        authenticator: Authenticator | None = None,
        settings: ProxySettings | None = None,
        hosts: Iterable[str] = (),
    ) -> None:
        """
        @param hosts: further names and addresses of this proxy (beyond its
            listeners' addresses and the registrar's local hosts).
        @raise ValueError: C{settings.tls_name} is not a host name.
        """
        if not stack.proxy:
            raise ValueError("the proxy needs a stack in proxy mode: SIPStack(reactor, proxy=True)")
        self.stack = stack
        self.registrar = registrar
        self.authenticator = authenticator
        self.settings = settings if settings is not None else ProxySettings()
        secret = self.settings.flow_token_secret
        self._flow_secret = secrets.token_bytes(32) if secret is None else secret
        tls_hint = self.settings.tls_hint
        self._tls_hint = stack.config.tls_first.record_route_tls_hint if tls_hint is None else tls_hint
        policy = registrar.policy
        self._domains = policy.domains
        self._hosts = {*policy.local_hosts, *hosts}
        name = self.settings.tls_name
        self._tls_name = None if name is None else canonical_host(name)
        if self._tls_name is not None:
            self._hosts.add(self._tls_name)
        self._identity: ProxyIdentity | None = None
        self._identity_key: tuple[int, int] = (-1, -1)
        self._challenged = None if self._domains else _challenge_everyone
        # Our address towards a peer, for listeners on a wildcard address.
        self._towards: dict[str, str] = {}

    def install(self, core: Any = None) -> None:
        """Become the stack's stray handler, and C{core.proxy} when a L{ServerCore} is given."""
        self.stack.on_stray(self.stray)
        if core is not None:
            core.proxy = self

    # Who we are

    @property
    def identity(self) -> ProxyIdentity:
        """The hosts, ports and domains that name the proxy (made again when listeners or hosts are added)."""
        listeners = self.stack.listeners
        key = (len(listeners), len(self._hosts))
        if self._identity is None or key != self._identity_key:
            hosts = set(self._hosts)
            hosts.update(peer.host for _, peer in listeners if not _is_wildcard(peer.host))
            ports = {peer.port for _, peer in listeners} or {5060, 5061}
            self._identity = ProxyIdentity(domains=self._domains, hosts=frozenset(hosts), ports=frozenset(ports))
            self._identity_key = (len(listeners), len(self._hosts))
        return self._identity

    def _tls_port(self, host: str) -> int | None:
        """Our TLS port at C{host}: a TLS listener on it, or on the wildcard of its family."""
        bare = host.strip("[]")
        ipv6 = ":" in bare
        fallback = None
        for kind, peer in self.stack.listeners:
            if kind is not TransportKind.TLS:
                continue
            if peer.host == bare:
                return peer.port
            if _is_wildcard(peer.host) and (":" in peer.host) == ipv6:
                fallback = peer.port
        return fallback

    def _local_towards(self, remote: str) -> str:
        """Our address on the route to C{remote}: the host a wildcard listener is reached at."""
        address = self._towards.get(remote)
        if address is None:
            family = socket.AF_INET6 if ":" in remote else socket.AF_INET
            try:
                with socket.socket(family, socket.SOCK_DGRAM) as probe:
                    probe.connect((remote, 9))
                    address = str(probe.getsockname()[0])
            except OSError:
                address = "::1" if family == socket.AF_INET6 else "127.0.0.1"
            self._towards[remote] = address
        return address

    def _note_host(self, host: str) -> None:
        if host not in self._hosts:
            self._hosts.add(host)

    def _inbound(self, received: Received) -> Interface:
        """
        The interface a message arrived on: the flow's local address, with
        the listener's port for a connection we opened, and our address
        towards the peer for a wildcard listener.
        """
        flow = received.flow
        kind = flow.transport
        host, port = flow.local.host, flow.local.port
        if _is_wildcard(host):
            host = self._local_towards(flow.remote.host)
            self._note_host(host)
        if kind.stream:
            listening = [peer for each, peer in self.stack.listeners if each is kind]
            if not any(peer.port == port for peer in listening):
                for peer in listening:
                    if peer.host == host or (_is_wildcard(peer.host) and (":" in peer.host) == (":" in host)):
                        port = peer.port
                        break
        return Interface.of(kind, Peer(host, port), self._tls_port(host), self._tls_name)

    def _outbound(self, transport: TransportKind, sent_by: Peer) -> Interface:
        """The interface a branch leaves on, from what the transport layer chose."""
        self._note_host(sent_by.host)
        return Interface.of(transport, sent_by, self._tls_port(sent_by.host), self._tls_name)

    def _token_flow(self, request: Request, received: Received) -> FlowKey | None:
        """
        The flow a request must go over because our Route in it carries a
        flow token (RFC 5626 section 5.3), or L{None}: no valid token, or
        the request came over that flow (from the UA, routed normally).
        """
        flow = flow_of_route(request, self.identity, self._flow_secret)
        return None if flow is None or flow == received.flow else flow

    def _flow_open(self, flow: FlowKey) -> bool:
        """Whether C{flow} can still be sent on: a UDP flow always can, a stream while it is connected."""
        return not flow.transport.stream or flow in self.stack.flows

    def _user_known(self, aor: str) -> bool:
        """Whether the users file knows the user of C{aor} (480 rather than 404 when it has no binding)."""
        authenticator = self.authenticator
        if authenticator is None:
            return False
        uri = parse_uri(aor)
        user = uri.user_unescaped if isinstance(uri, SIPURI) else None
        return user is not None and authenticator.users.get(user, authenticator.realm) is not None

    # Requests

    def __call__(self, incoming: IncomingRequest) -> Response | Deferred[Response | None] | None:
        """Handle a request the registrar does not serve (the stack's request handler, through the core)."""
        try:
            return self._handle(incoming)
        except RemoteProtocolError as error:
            return incoming.response(400, error.reason)

    def _handle(self, incoming: IncomingRequest) -> Response | Deferred[Response | None] | None:
        request = incoming.request
        identity = self.identity
        verdict = check_request(
            request,
            identity,
            supported=self.settings.supported,
            loop_detection=self.settings.loop_detection,
            authenticator=self.authenticator,
            challenged=self._challenged,
        )
        if verdict is DROP:
            return incoming.response(400)
        if verdict is not None:
            return verdict
        if request.method == "REGISTER":
            # Not for the registrar: relaying registrations for domains we
            # do not serve would make us an open relay for them.
            return incoming.response(403, "Domain Not Served Here")
        inbound = self._inbound(incoming.received)
        routed_request = preprocess(request, identity, inbound)
        routed = route_request(routed_request, identity)
        flow = self._token_flow(request, incoming.received)
        if flow is not None and not isinstance(routed, Response):
            if not self._flow_open(flow):
                return incoming.response(430, "Flow Failed")
            routed = ForwardTo(Target(routed_request.uri, flow=flow, flow_only=True))
            if request.method != "CANCEL":
                return _Forwarding(self, incoming, routed_request, inbound, (routed.target,)).start()
        if request.method == "CANCEL":
            return self._cancel_without_context(incoming, routed_request, inbound, routed)
        if isinstance(routed, Response):
            return routed
        if isinstance(routed, ForUs):
            return self._for_us(incoming)
        if isinstance(routed, LookUp):
            return self._look_up(incoming, routed_request, inbound, routed.aor, None)
        uri = routed_request.uri
        if (
            not routed_request.routes
            and routed_request.to.tag is None
            and isinstance(uri, SIPURI)
            and uri.maddr is None
            and uri.user is not None
            and (not identity.domains or identity.names_us(uri))
        ):
            # A user at our address, or any user when every domain is ours.
            if not identity.names_us(uri):
                return self._look_up(incoming, routed_request, inbound, aor_of_request(uri), routed.target)
            if len(identity.domains) == 1:
                # Our address stands for our one domain (phones and SIPp
                # often call sip:user@<proxy address>).
                (domain,) = identity.domains
                uri = uri.replace(host=domain, port=None)
            elif uri.port is not None:
                # sip:user@<our address>:<our port>: phones register sip:user@<our address>.
                bare = aor_of_request(uri.replace(port=None))
                return self._look_up(incoming, routed_request, inbound, aor_of_request(uri), None, or_aor=bare)
            return self._look_up(incoming, routed_request, inbound, aor_of_request(uri), None)
        return _Forwarding(self, incoming, routed_request, inbound, (routed.target,)).start()

    def _for_us(self, incoming: IncomingRequest) -> Response:
        request = incoming.request
        if request.method == "OPTIONS":
            return answer_options(request, allow=_ALLOW, supported=sorted(self.settings.supported))
        return incoming.response(405, headers=(("Allow", "OPTIONS, REGISTER"),))

    def _look_up(
        self,
        incoming: IncomingRequest,
        request: Request,
        inbound: Interface,
        aor: str,
        fallback: Target | None,
        *,
        or_aor: str | None = None,
    ) -> Deferred[Response | None]:
        def found(bindings: tuple[Any, ...]) -> Response | Deferred[Response | None]:
            if not bindings and or_aor is not None:
                return self._look_up(incoming, request, inbound, or_aor, fallback)
            if not bindings and fallback is not None:
                return _Forwarding(self, incoming, request, inbound, (fallback,)).start()
            targets = targets_from_bindings(request, bindings, user_known=self._user_known(aor))
            if isinstance(targets, Response):
                return incoming.response(targets.status)
            return _Forwarding(self, incoming, request, inbound, targets).start()

        def failed(failure: Failure) -> Response:
            self._log.failure("Looking up {aor} failed", failure, aor=aor)
            return incoming.response(500, "Location Service Unavailable", headers=(("Retry-After", "5"),))

        looking: Deferred[Any] = self.registrar.lookup(aor)
        return looking.addCallbacks(found, failed)

    def _cancel_without_context(
        self,
        incoming: IncomingRequest,
        request: Request,
        inbound: Interface,
        routed: ForwardTo | LookUp | ForUs | Response,
    ) -> Response | Deferred[Response | None]:
        """
        Section 16.10: a CANCEL that matched no request is forwarded
        statelessly, with the branch its INVITE got if that was forwarded
        statelessly.  Only a Route or another domain says where to; our own
        users' INVITEs are always forwarded statefully, so nothing
        downstream can match such a CANCEL: 481.
        """
        if not isinstance(routed, ForwardTo):
            return incoming.response(481)
        forward = forward_statelessly(request, received=incoming.request, inbound=inbound, target=routed.target)
        sending = self.stack.forward(forward.request, flow=forward.flow)
        received = incoming.request

        def answered(result: RequestResult) -> Response:
            if result.synthesized is not None:
                return incoming.response(result.status)
            return upstream_response(result.response, received)

        return sending.result.addCallback(answered)

    # Messages without a transaction

    def stray(self, received: Received) -> None:
        """
        A message no transaction took (the stack's stray handler): a
        response whose top Via is ours goes upstream without it, an ACK
        (of a 2xx) is forwarded statelessly (section 16.11).
        """
        message = received.message
        try:
            if isinstance(message, Response):
                response = forward_stray_response(message, self.identity)
                if response is not None:
                    self.stack.send_response(response).addErrback(self._not_sent, "a stray response")
            elif isinstance(message, Request) and message.method == "ACK":
                self._forward_ack(message, received)
        except Exception:
            self._log.failure("Could not forward a stray {kind}", kind=type(message).__name__)

    def _forward_ack(self, ack: Request, received: Received) -> None:
        identity = self.identity
        if check_request(ack, identity, loop_detection=self.settings.loop_detection) is not None:
            return
        inbound = self._inbound(received)
        routed_request = preprocess(ack, identity, inbound)
        routed = route_request(routed_request, identity)
        flow = self._token_flow(ack, received)
        if flow is not None and not isinstance(routed, Response):
            if not self._flow_open(flow):
                self._log.info("Dropped an ACK for {uri}: its flow is gone", uri=str(ack.uri))
                return
            routed = ForwardTo(Target(routed_request.uri, flow=flow, flow_only=True))
        if not isinstance(routed, ForwardTo):
            self._log.debug("Dropped an ACK for {uri}: nowhere to forward it", uri=str(ack.uri))
            return
        forward = forward_statelessly(routed_request, received=ack, inbound=inbound, target=routed.target)
        self.stack.send_stateless(forward.request, flow=forward.flow).addErrback(self._not_sent, "an ACK")

    def _not_sent(self, failure: Failure, what: str) -> None:
        self._log.info("Could not forward {what}: {error}", what=what, error=failure.getErrorMessage())


class _Forwarding:
    """
    One request forwarded statefully: its response context, its branches
    (one L{OutgoingRequest} each) and their Timer C.  It lives as long as a
    branch's transaction can still report something (the stack holds it
    through the callbacks), so 2xx responses that come after the final
    response are still forwarded.
    """

    _log = Logger()

    def __init__(
        self, proxy: Proxy, incoming: IncomingRequest, request: Request, inbound: Interface, targets: Iterable[Target]
    ) -> None:
        self.proxy = proxy
        self.incoming = incoming
        self.request = request
        self.inbound = inbound
        self.invite = request.method == "INVITE"
        self.context = ResponseContext(incoming.request, group_by_q(targets), to_tag=incoming.to_tag)
        self.branches: dict[int, OutgoingRequest] = {}
        self.timers: dict[int, IDelayedCall] = {}
        self.done: Deferred[Response | None] = Deferred()
        self._queue: deque[Action] = deque()
        self._running = False

    def start(self) -> Deferred[Response | None]:
        """Start the first q-group; fires with L{None} once the final response went upstream."""
        if self.invite:
            if self.incoming.cancelled.called:
                # Cancelled while the targets were looked up.
                return succeed(self.incoming.response(487))
            self.incoming.cancelled.addCallback(lambda _: self._run(self.context.cancel()))
        self._run(self.context.start())
        return self.done

    def _run(self, actions: Iterable[Action]) -> None:
        """Carry out actions in order; those that carrying one out causes wait their turn."""
        self._queue.extend(actions)
        if self._running:
            return
        self._running = True
        try:
            while self._queue:
                action = self._queue.popleft()
                try:
                    self._act(action)
                except Exception:
                    self._log.failure("The proxy failed to carry out {action}", action=type(action).__name__)
        finally:
            self._running = False

    def _act(self, action: Action) -> None:
        if isinstance(action, StartBranches):
            for branch in action.branches:
                self._start_branch(branch)
        elif isinstance(action, ForwardResponse):
            self._respond(action.response)
        elif isinstance(action, CancelBranches):
            for branch in action.branches:
                outgoing = self.branches.get(branch.index)
                if outgoing is not None:
                    outgoing.cancel().addErrback(self._log_failure, "CANCEL")

    def _respond(self, response: Response) -> None:
        try:
            self.incoming.respond(response)
        except LocalProtocolError as error:
            self._log.info("Could not forward a {status}: {error}", status=response.status, error=str(error))
        if response.status >= 200 and not self.done.called:
            self.done.callback(None)

    def _start_branch(self, branch: Branch) -> None:
        proxy = self.proxy
        settings = proxy.settings
        forward = forward_request(
            self.request,
            branch.target,
            received=self.incoming.request,
            inbound=self.inbound,
            record_route=settings.record_route,
            outbound_proxy=settings.outbound_proxy,
            tls_hint=proxy._tls_hint,
            flow_secret=proxy._flow_secret,
        )
        outbound = proxy._outbound

        def finalize(request: Request, transport: TransportKind, sent_by: Peer, security: HopSecurity) -> Request:
            return forward.request_for(outbound(transport, sent_by))

        try:
            outgoing = proxy.stack.forward(
                forward.request,
                on_response=partial(self._on_response, branch),
                flow=forward.flow,
                finalize=finalize,
                # Later 2xx responses go to stray(), which forwards them as
                # the response context would (RFC 6026 section 8.3).
                late_2xx_as_stray=True,
            )
        except Exception:
            self._log.failure("Could not forward to {uri}", uri=str(branch.target.uri))
            self._run(self.context.on_transport_error(branch))
            return
        self.branches[branch.index] = outgoing
        if self.invite:
            self.timers[branch.index] = proxy.stack.reactor.callLater(settings.timer_c, self._timer_c, branch)
        outgoing.result.addCallbacks(self._on_result, self._on_failure, callbackArgs=(branch,), errbackArgs=(branch,))

    def _on_response(self, branch: Branch, response: Response) -> None:
        if 100 < response.status < 200:
            timer = self.timers.get(branch.index)
            if timer is not None and timer.active():
                timer.reset(self.proxy.settings.timer_c)
        self._run(self.context.on_response(branch, response))

    def _on_result(self, result: RequestResult, branch: Branch) -> None:
        self._stop_timer(branch)
        if result.synthesized == "timeout":
            actions = self.context.on_timeout(branch)
        elif result.synthesized == "transport":
            actions = self.context.on_transport_error(branch)
        else:
            actions = self.context.on_response(branch, result.response)
        self._run(actions)

    def _on_failure(self, failure: Failure, branch: Branch) -> None:
        self._stop_timer(branch)
        self._log.failure("A branch to {uri} failed", failure, uri=str(branch.target.uri))
        self._run(self.context.on_transport_error(branch))

    def _timer_c(self, branch: Branch) -> None:
        self.timers.pop(branch.index, None)
        self._run(self.context.on_timer_c(branch))

    def _stop_timer(self, branch: Branch) -> None:
        timer = self.timers.pop(branch.index, None)
        if timer is not None and timer.active():
            timer.cancel()

    def _log_failure(self, failure: Failure, what: str) -> None:
        self._log.info("The {what} of a branch failed: {error}", what=what, error=failure.getErrorMessage())
