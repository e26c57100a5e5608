# -*- test-case-name: tests.services.test_proxy_core -*-
"""
The decisions of a stateful proxy (RFC 3261 section 16), pure: messages and
configuration values in, messages and actions out.  No Twisted and no I/O,
so that every rule is tested with message text; the Twisted glue that sends
the branches through the stack is thin.

  - L{check_request} (16.3), L{preprocess} (16.4), L{route_request} and
    L{targets_from_bindings} (16.5), L{group_by_q}, L{forward_request}
    (16.6) in C{_request};
  - L{ResponseContext} (16.7, 16.8, 16.10), L{choose_best},
    L{answer_cancel} and L{forward_stray_response} (16.11) in
    C{_responses};
  - L{ProxyIdentity}, L{Interface}, and the branches with their loop keys
    (16.3 step 4, 16.6 step 8, 16.11) in C{_identity};
  - the flow tokens of RFC 5626 section 5.3 (L{encode_flow_token},
    L{decode_flow_token}, L{flow_of_route}) in C{_flow_token}.

@see: docs/proxy.md.
"""

from sipstack.services.proxy_core._flow_token import decode_flow_token, encode_flow_token, flow_of_route
from sipstack.services.proxy_core._identity import (
    Interface,
    ProxyIdentity,
    canonical_host,
    is_looped,
    is_proxy_branch,
    loop_key,
    proxy_branch,
    stateless_branch,
)
from sipstack.services.proxy_core._request import (
    DEFAULT_MAX_FORWARDS,
    DIALOG_METHODS,
    DROP,
    PROXY_SCHEMES,
    BindingLike,
    Drop,
    ForUs,
    Forward,
    ForwardTo,
    LookUp,
    ProxyAuthenticator,
    Target,
    answer_options,
    aor_of_request,
    check_request,
    forward_request,
    forward_statelessly,
    group_by_q,
    preprocess,
    route_request,
    should_record_route,
    targets_from_bindings,
    wants_credentials,
)
from sipstack.services.proxy_core._responses import (
    Action,
    Branch,
    BranchState,
    CancelAnswer,
    CancelBranches,
    ForwardResponse,
    ResponseContext,
    StartBranches,
    answer_cancel,
    choose_best,
    forward_stray_response,
    upstream_response,
)

__all__ = [
    "decode_flow_token",
    "encode_flow_token",
    "flow_of_route",
    "Interface",
    "ProxyIdentity",
    "canonical_host",
    "is_looped",
    "is_proxy_branch",
    "loop_key",
    "proxy_branch",
    "stateless_branch",
    "DEFAULT_MAX_FORWARDS",
    "DIALOG_METHODS",
    "DROP",
    "PROXY_SCHEMES",
    "BindingLike",
    "Drop",
    "Forward",
    "ForUs",
    "ForwardTo",
    "LookUp",
    "ProxyAuthenticator",
    "Target",
    "answer_options",
    "aor_of_request",
    "check_request",
    "forward_request",
    "forward_statelessly",
    "group_by_q",
    "preprocess",
    "route_request",
    "should_record_route",
    "targets_from_bindings",
    "wants_credentials",
    "Action",
    "Branch",
    "BranchState",
    "CancelAnswer",
    "CancelBranches",
    "ForwardResponse",
    "ResponseContext",
    "StartBranches",
    "answer_cancel",
    "choose_best",
    "forward_stray_response",
    "upstream_response",
]
