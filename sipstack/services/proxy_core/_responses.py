# -*- test-case-name: tests.services.test_proxy_core -*-
"""
The response side of a stateful proxy (RFC 3261 sections 16.7, 16.8 and
16.10) as a state machine, L{ResponseContext}, that the glue feeds with what
happens to the branches of one forwarded request and that answers with
actions: start these branches, forward this response upstream, cancel these
branches.  Also the stateless rule for responses no context knows (16.11).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from sipstack.message import Request, Response, build_response
from sipstack.services.proxy_core._identity import ProxyIdentity, is_proxy_branch
from sipstack.services.proxy_core._request import Target

__all__ = [
    "BranchState",
    "Branch",
    "StartBranches",
    "ForwardResponse",
    "CancelBranches",
    "Action",
    "ResponseContext",
    "choose_best",
    "upstream_response",
    "CancelAnswer",
    "answer_cancel",
    "forward_stray_response",
]


class BranchState(enum.Enum):
    """Where a branch (one client transaction) stands."""

    #: In a later q-group, not started yet.
    WAITING = "waiting"
    #: Sent; no response yet.
    CALLING = "calling"
    #: A provisional response came.
    PROCEEDING = "proceeding"
    #: A 2xx came (to an INVITE, more 2xx may follow from a forking proxy downstream).
    ACCEPTED = "accepted"
    #: A final non-2xx response came (or was synthesized: 408, 503).
    COMPLETED = "completed"
    #: Never started: the context stopped making branches (a final response
    #: was sent, a 6xx came, or the request was cancelled).
    SKIPPED = "skipped"


_PENDING = (BranchState.CALLING, BranchState.PROCEEDING)


@dataclass(frozen=True, slots=True)
class Branch:
    """
    One target of the context: C{index} identifies it in the context.

    @ivar group: its q-group, 0 for the highest q.
    """

    index: int
    target: Target
    group: int


@dataclass(frozen=True, slots=True)
class StartBranches:
    """
    Forward the request to each of these targets now (with
    L{forward_request<sipstack.services.proxy_core.forward_request>}).
    """

    branches: tuple[Branch, ...]


@dataclass(frozen=True, slots=True)
class ForwardResponse:
    """Send this response upstream on the server transaction (our Via already removed)."""

    response: Response

    @property
    def final(self) -> bool:
        """Whether it is a final response."""
        return self.response.status >= 200


@dataclass(frozen=True, slots=True)
class CancelBranches:
    """Cancel these branches' INVITE client transactions (section 9.1; C{SIPStack.cancel} waits for a provisional)."""

    branches: tuple[Branch, ...]


Action = StartBranches | ForwardResponse | CancelBranches


def upstream_response(response: Response, request: Request) -> Response:
    """
    A response to one of our copies, made ready to go upstream (section
    16.7 step 3): our topmost Via removed.  If no Via is left (a downstream
    element dropped the others), the received request's Vias are put back,
    which is what they must have been.
    """
    headers = response.headers.without_first_value("Via")
    if "Via" not in headers:
        vias = request.headers.get_all("Via")
        for value in reversed(vias):
            headers = headers.with_added("Via", value, first=True)
    return response.replace(headers=headers)


def _preference(status: int) -> int:
    """Within a class, lower is preferred (section 16.7 step 6)."""
    if status in (401, 407):
        return 0
    if status in (415, 420, 484):
        # "Responses that provide information affecting resubmission."
        return 1
    if status == 487:
        # Usually our own CANCEL's doing: only when nothing says more.
        return 3
    if status in (408, 503):
        # A branch that timed out or was unreachable tells least; a 503 is
        # never forwarded as it is (it would mean this proxy is unavailable).
        return 4
    return 2


def choose_best(
    responses: Sequence[Response], request: Request, *, to_tag: str | None = None, cancelled: bool = False
) -> Response:
    """
    The best final response of a context (section 16.7 steps 6 and 7), from
    its final non-2xx responses in the order they came (already made
    L{upstream_response}s):

      - none: a 408;
      - any 6xx: the first 6xx;
      - else from the lowest class, preferring within it 401 and 407, then
        415, 420 and 484 (they let the client resubmit), then any other,
        then 487, then 408 and 503; the earliest among equals;
      - a 401 or 407 chosen gets every C{WWW-Authenticate} and
        C{Proxy-Authenticate} field of the other 401 and 407 responses,
        unchanged (step 7);
      - a 503 chosen becomes a 500 (step 6: forwarding a 503 would tell the
        client this proxy is unavailable).

    When the request was C{cancelled} upstream and no 6xx came, a 487 is
    chosen if there is one: the client cancelled and expects it (section
    9.2), and no other answer can help it any more.

    Generated responses (408, 500) answer C{request} with C{to_tag}.
    """
    if not responses:
        return build_response(request, 408, to_tag=to_tag)
    if cancelled and not any(response.status >= 600 for response in responses):
        for response in responses:
            if response.status == 487:
                return response
    ranked = sorted(
        range(len(responses)),
        key=lambda i: (responses[i].status < 600, responses[i].status // 100, _preference(responses[i].status), i),
    )
    chosen_index = ranked[0]
    best = responses[chosen_index]
    if best.status == 503:
        return build_response(request, 500, to_tag=to_tag)
    if best.status in (401, 407):
        headers = best.headers
        for index, other in enumerate(responses):
            if index == chosen_index or other.status not in (401, 407):
                continue
            for name, value in other.headers:
                if name.lower() in ("www-authenticate", "proxy-authenticate"):
                    headers = headers.with_added(name, value)
        best = best.replace(headers=headers)
    return best


class ResponseContext:
    """
    The response context of one request forwarded statefully (section
    16.7): its branches by q-group, their states, the final responses
    kept, and what was sent upstream.

    The glue calls L{start} once, then reports each branch's responses
    (L{on_response}, with the response as the client transaction got it,
    our Via still on top, also a 408 or 503 the stack synthesized) or
    failures (L{on_timeout}, L{on_transport_error}), Timer C
    (L{on_timer_c}) and an upstream CANCEL (L{cancel}).  Every call returns
    the actions to carry out, in order.

    The rules:

      - a group is started whole (parallel forking); the next one when
        every branch of the current one ended with a final non-2xx
        response, unless a final response was sent, a 6xx came or the
        request was cancelled (sequential across q-values);
      - provisional responses other than 100 are forwarded until a final
        response is sent (step 5);
      - every 2xx to an INVITE is forwarded at once, also after another
        2xx; to another method only the first final response is (a
        non-INVITE server transaction has one final response);
      - the first final response forwarded, and a 6xx, cancel the pending
        INVITE branches (steps 5 and 10); a 6xx is not forwarded at once:
        once every branch has ended it wins the choice (step 6);
      - when every started branch has ended and no final response was
        sent, the best one is sent (L{choose_best}); after that nothing
        else is.

    @ivar request: the request as received (for generated responses).
    @ivar to_tag: the To tag of generated responses.
    @ivar branches: every branch, in target order.
    """

    def __init__(self, request: Request, groups: Sequence[Sequence[Target]], *, to_tag: str | None = None) -> None:
        if not any(groups):
            raise ValueError("a response context needs at least one target")
        self.request = request
        self.to_tag = to_tag
        self._invite = request.method == "INVITE"
        branches: list[Branch] = []
        for number, group in enumerate(group for group in groups if group):
            for target in group:
                branches.append(Branch(len(branches), target, number))
        self.branches: tuple[Branch, ...] = tuple(branches)
        self._states = [BranchState.WAITING] * len(branches)
        self._finals: list[Response] = []
        self._final_sent: Response | None = None
        self._six = False
        self._cancelled = False
        self._started = False

    # Reading

    def state(self, branch: Branch | int) -> BranchState:
        """The state of a branch."""
        return self._states[self._index(branch)]

    @property
    def final_sent(self) -> Response | None:
        """The first final response sent upstream, if any."""
        return self._final_sent

    @property
    def finished(self) -> bool:
        """Whether the context is done: every branch ended or skipped, and a final response sent."""
        done = (BranchState.ACCEPTED, BranchState.COMPLETED, BranchState.SKIPPED)
        return self._final_sent is not None and all(state in done for state in self._states)

    @property
    def pending(self) -> tuple[Branch, ...]:
        """The branches started and still waiting for a final response."""
        return tuple(b for b, state in zip(self.branches, self._states, strict=True) if state in _PENDING)

    def _index(self, branch: Branch | int) -> int:
        index = branch if isinstance(branch, int) else branch.index
        if not 0 <= index < len(self.branches):
            raise ValueError(f"no branch {index} in this context")
        return index

    # Events

    def start(self) -> list[Action]:
        """Start the first q-group."""
        if self._started:
            return []
        self._started = True
        return self._start_group(0)

    def on_response(self, branch: Branch | int, response: Response) -> list[Action]:
        """A response arrived on a branch's client transaction (our Via on top)."""
        return self._receive(self._index(branch), upstream_response(response, self.request))

    def on_timeout(self, branch: Branch | int) -> list[Action]:
        """The branch timed out (Timer B or F): as if it got a 408 (section 16.7 step 2, 16.8)."""
        return self._receive(self._index(branch), build_response(self.request, 408, to_tag=self.to_tag))

    def on_transport_error(self, branch: Branch | int) -> list[Action]:
        """The branch could not be sent: as if it got a 503 (section 16.9)."""
        return self._receive(self._index(branch), build_response(self.request, 503, to_tag=self.to_tag))

    def on_timer_c(self, branch: Branch | int) -> list[Action]:
        """
        Timer C fired on an INVITE branch (section 16.8): cancel it if it had
        a provisional response, else treat it as a 408.
        """
        index = self._index(branch)
        state = self._states[index]
        if state is BranchState.PROCEEDING:
            return [CancelBranches((self.branches[index],))]
        if state is BranchState.CALLING:
            return self.on_timeout(index)
        return []

    def cancel(self) -> list[Action]:
        """
        An upstream CANCEL matched this context (section 16.10): cancel every
        pending branch and start no more.  Their 487s then make the final
        response.
        """
        if self._cancelled or self._final_sent is not None:
            return []
        self._cancelled = True
        actions = self._stop_branching()
        actions += self._advance()
        return actions

    # The machine

    def _start_group(self, group: int) -> list[Action]:
        started = []
        for branch in self.branches:
            if branch.group == group and self._states[branch.index] is BranchState.WAITING:
                self._states[branch.index] = BranchState.CALLING
                started.append(branch)
        return [StartBranches(tuple(started))] if started else []

    def _stop_branching(self) -> list[Action]:
        """Skip the branches not started, and cancel the pending INVITE branches."""
        for index, state in enumerate(self._states):
            if state is BranchState.WAITING:
                self._states[index] = BranchState.SKIPPED
        pending = self.pending
        return [CancelBranches(pending)] if pending and self._invite else []

    def _receive(self, index: int, response: Response) -> list[Action]:
        state = self._states[index]
        if state not in (*_PENDING, BranchState.ACCEPTED):
            # Not started, or already ended with a final non-2xx.
            return []
        status = response.status
        if status < 200:
            if state is BranchState.ACCEPTED:
                return []
            self._states[index] = BranchState.PROCEEDING
            if status == 100 or self._final_sent is not None:
                return []
            return [ForwardResponse(response)]
        if status < 300:
            self._states[index] = BranchState.ACCEPTED
            if self._final_sent is not None:
                return [ForwardResponse(response)] if self._invite else []
            self._final_sent = response
            return [ForwardResponse(response), *self._stop_branching()]
        if state is BranchState.ACCEPTED:
            return []
        self._states[index] = BranchState.COMPLETED
        self._finals.append(response)
        actions: list[Action] = []
        if status >= 600 and not self._six:
            self._six = True
            actions += self._stop_branching()
        return actions + self._advance()

    def _advance(self) -> list[Action]:
        """Once no branch is pending: start the next group, or send the best response."""
        if self.pending or self._final_sent is not None:
            return []
        if not (self._six or self._cancelled):
            states = zip(self.branches, self._states, strict=True)
            waiting = [branch.group for branch, state in states if state is BranchState.WAITING]
            if waiting:
                return self._start_group(min(waiting))
        for index, state in enumerate(self._states):
            if state is BranchState.WAITING:
                self._states[index] = BranchState.SKIPPED
        best = choose_best(self._finals, self.request, to_tag=self.to_tag, cancelled=self._cancelled)
        self._final_sent = best
        return [ForwardResponse(best)]


# Section 16.10: CANCEL.


@dataclass(frozen=True, slots=True)
class CancelAnswer:
    """
    What to do with a CANCEL that matched a response context.

    @ivar response: the 200 to the CANCEL, sent at once.
    @ivar actions: the context's actions (cancel the pending branches).
    """

    response: Response
    actions: tuple[Action, ...]


def answer_cancel(cancel: Request, context: ResponseContext | None) -> CancelAnswer | None:
    """
    Section 16.10: a CANCEL whose request has a response context gets a 200
    at once and cancels the context's pending branches (the request itself
    then gets the best response, normally the 487s of the branches); one
    without a context is forwarded statelessly (L{None}: use
    L{forward_statelessly<sipstack.services.proxy_core.forward_statelessly>}),
    since the request may have been forwarded statelessly before.
    """
    if context is None:
        return None
    return CancelAnswer(build_response(cancel, 200, to_tag=context.to_tag), tuple(context.cancel()))


# Section 16.11 and 16.7 step 1: responses without a context.


def forward_stray_response(response: Response, identity: ProxyIdentity) -> Response | None:
    """
    A response no client transaction matched (a 2xx retransmission to an
    INVITE whose transaction is over, or a response to a request forwarded
    statelessly): forwarded statelessly when its top Via is ours (our
    sent-by and a branch of the form we write), with that Via removed;
    L{None} to drop it (not ours, or no Via left: it was for us).
    """
    via = response.top_via
    if not identity.is_our_via(via) or not is_proxy_branch(via.branch):
        return None
    headers = response.headers.without_first_value("Via")
    if "Via" not in headers:
        return None
    return response.replace(headers=headers)
