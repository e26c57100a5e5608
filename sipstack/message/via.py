# -*- test-case-name: tests.message.test_via -*-
"""
The Via header: the path a request took, and the way back for its responses.

Every element on the path adds a Via on top (RFC 3261 section 16.6 step 8);
responses follow them back, each hop removing its own (section 16.7 step 3).
The top Via's C{branch} names the transaction (section 17.2.3) and its
C{received}/C{rport} parameters say where the response must really go
(section 18.2.2, RFC 3581).

A server reads the Via of every message it receives, so L{parse_via} reads
the canonical form (C{SIP/2.0/UDP host:port;name=value;flag}) with one
compiled regular expression that also splits the first parameters, and builds
the value without the frozen C{__init__}; anything else goes through a
pattern for C{sent-protocol LWS sent-by} plus the shared parameter parser.

@see: RFC 3261 sections 8.1.1.7, 18.2.2 and 20.42; RFC 3581 (rport);
    RFC 5923 (alias); RFC 5118 section 4.5 (IPv6 in Via).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from sipstack.errors import InvalidValue
from sipstack.message._grammar import HOST, LWS, SWS, TOKEN
from sipstack.message.values import (
    _UNSET,
    Params,
    _Unset,
    excerpt,
    get_param,
    has_param,
    parse_params,
    parse_uint,
    remove_param,
    render_params,
    replace_param,
    split_header_values,
    split_simple_params,
)

__all__ = ["Via", "parse_via"]

# via-parm       =  sent-protocol LWS sent-by *( SEMI via-params )
# sent-protocol  =  protocol-name SLASH protocol-version SLASH transport
# protocol-name  =  "SIP" / token;  protocol-version  =  token
# transport      =  "UDP" / "TCP" / "TLS" / "SCTP" / other-transport (token)
# sent-by        =  host [ COLON port ]
# SLASH = SWS "/" SWS;  COLON = SWS ":" SWS
# The parameters that follow go to parse_params().
_VIA_PARM_RE: Final = re.compile(
    rf"{SWS}({TOKEN}){SWS}/{SWS}({TOKEN}){SWS}/{SWS}({TOKEN}){LWS}({HOST})(?:{SWS}:{SWS}([0-9]{{1,5}}))?"
)

# The canonical form, in one pass: no whitespace but the one space, parameters
# without whitespace, quotes or IPv6 values.  What parse_via() accepts through
# this pattern, _VIA_PARM_RE and parse_params() accept too, and split the same
# way:
#   - the host is an IPv6 reference, or the characters of a hostname starting
#     with an alphanumeric one; parse_via() checks the labels with _HOST_RE
#     only if the host has a "-" or "..", the only ways such text can fail to
#     be a HOSTNAME (a label that starts or ends with "-", or an empty one),
#     and hands a host that fails to the general path;
#   - the first three parameters are captured apart (a flag leaves its value
#     group None, as split_simple_params() makes it), the others together;
#   - possessive quantifiers ("++", "*+", "?+") never give back what they
#     consumed, which is safe because each piece ends at a character it
#     cannot contain, and spares the match from backtracking.
_FAST_TOKEN: Final = r"[A-Za-z0-9\-.!%*_+`'~]++"
_FAST_PARAM: Final = rf";({_FAST_TOKEN})(?:=({_FAST_TOKEN}))?+"
_FAST_VIA_PARM_RE: Final = re.compile(
    rf"SIP/2\.0/({_FAST_TOKEN}) (\[[0-9A-Fa-f:.]++\]|[A-Za-z0-9_][A-Za-z0-9_.\-]*+)(?::([0-9]{{1,5}}+))?+"
    rf"(?:{_FAST_PARAM}(?:{_FAST_PARAM}(?:{_FAST_PARAM}((?:;{_FAST_TOKEN}(?:={_FAST_TOKEN})?+)++)?+)?+)?+)?+"
)
_HOST_RE: Final = re.compile(HOST)

_SIP_2_0: Final = "SIP/2.0"


@dataclass(frozen=True, slots=True)
class Via:
    """
    One Via value (a C{via-parm}).

    The constructor trusts its arguments; text from the network goes through
    L{parse_via}, and L{with_param} checks what it adds.

    @ivar transport: the transport, upper-cased (C{"UDP"}, C{"TLS"}, C{"WSS"},
        or any other token, RFC 4475 section 3.1.1.10).
    @ivar host: the host of C{sent-by} as written; an IPv6 address keeps its
        brackets.
    @ivar port: the port of C{sent-by}, or L{None} when absent (the default
        port of the transport applies, RFC 3261 section 18.2.2).
    @ivar params: the parameters, names and values as written (see
        L{sipstack.message.values.parse_params}).
    @ivar protocol: C{protocol-name "/" protocol-version}, the name
        upper-cased: C{"SIP/2.0"} in practice.
    """

    transport: str
    host: str
    port: int | None = None
    params: Params = ()
    protocol: str = _SIP_2_0

    def __str__(self) -> str:
        host = self.host if self.port is None else f"{self.host}:{self.port}"
        params = render_params(self.params) if self.params else ""
        return f"{self.protocol}/{self.transport} {host}{params}"

    # Parameters

    def param(self, name: str) -> str | None:
        """
        The value of a parameter as written, or L{None} when it is absent or a
        flag; names compare case-insensitively.
        """
        return get_param(self.params, name)

    def has_param(self, name: str) -> bool:
        """Whether the parameter is present (with or without a value)."""
        return has_param(self.params, name)

    def with_param(self, name: str, value: str | None = None) -> Via:
        """
        A copy with the parameter set: it replaces one of the same name
        (case-insensitively) in place, or is appended.  L{None} makes a flag.

        @raise ValueError: the name is not a token, or the value is not a
            token, host or quoted string.
        """
        return Via(self.transport, self.host, self.port, replace_param(self.params, name, value), self.protocol)

    def without_param(self, name: str) -> Via:
        """A copy without any parameter of this name."""
        return Via(self.transport, self.host, self.port, remove_param(self.params, name), self.protocol)

    def replace(
        self,
        *,
        transport: str | None = None,
        host: str | None = None,
        port: int | _Unset | None = _UNSET,
        params: Params | None = None,
        protocol: str | None = None,
    ) -> Via:
        """
        A copy with the given fields changed (C{port=None} removes the port).
        """
        return Via(
            self.transport if transport is None else transport,
            self.host if host is None else host,
            self.port if isinstance(port, _Unset) else port,
            self.params if params is None else params,
            self.protocol if protocol is None else protocol,
        )

    # Well-known parameters

    @property
    def sent_by(self) -> tuple[str, int | None]:
        """C{(host, port)} of C{sent-by}, as written."""
        return (self.host, self.port)

    @property
    def branch(self) -> str | None:
        """
        The transaction identifier; RFC 3261 ones start with the magic cookie
        C{z9hG4bK} (section 8.1.1.7).
        """
        # get_param(self.params, "branch") in line: a proxy reads it for every message.
        for key, value in self.params:
            if key == "branch" or key.lower() == "branch":
                return value
        return None

    @property
    def received(self) -> str | None:
        """
        The source address the next hop saw (RFC 3261 section 18.2.1), as an
        IP literal without brackets.

        RFC 3261 writes an IPv6 address here bare, but bracketed ones are
        common (RFC 5118 section 4.5), so brackets are removed.
        """
        value = get_param(self.params, "received")
        if value is not None and value.startswith("[") and value.endswith("]"):
            return value[1:-1]
        return value

    @property
    def maddr(self) -> str | None:
        """The multicast (or other) address to respond to (section 18.2.2)."""
        return get_param(self.params, "maddr")

    @property
    def ttl(self) -> int | None:
        """
        The multicast time-to-live, 0 to 255, or L{None} when absent.

        @raise InvalidValue: the value is not a number up to 255.
        """
        if not has_param(self.params, "ttl"):
            return None
        value = get_param(self.params, "ttl")
        if value is None:
            raise InvalidValue("Via ttl has no value")
        return parse_uint(value, maximum=255, what="Via ttl")

    @property
    def has_rport(self) -> bool:
        """
        Whether C{rport} is present: as a flag, the client asks for symmetric
        response routing (RFC 3581 section 3).
        """
        return has_param(self.params, "rport")

    @property
    def rport(self) -> int | None:
        """
        The source port the next hop saw (RFC 3581 section 4), or L{None} when
        C{rport} is absent or a flag.

        @raise InvalidValue: the value is not a port number.
        """
        value = get_param(self.params, "rport")
        if value is None:
            return None
        return parse_uint(value, maximum=65535, what="Via rport")

    @property
    def alias(self) -> bool:
        """
        Whether the sender offers its connection for reuse (RFC 5923
        section 5).
        """
        return has_param(self.params, "alias")


class _ViaSlots:
    """
    The slot layout of L{Via} without its frozen C{__setattr__}, for the
    parser to fill in.

    Storing five fields through C{object.__setattr__} costs about 0.45 us,
    more than the rest of the fast path of L{parse_via} together.  So the
    parser fills in an instance of this class with plain attribute stores,
    then sets its C{__class__} to L{Via}, which CPython allows between classes
    with the same slots (a test checks that they stay the same): about
    0.15 us in all.  The result is a true L{Via}, of that exact type, as
    immutable as any, with the same equality and hash.  (The same device as
    L{sipstack.message.uri._SIPURISlots}.)
    """

    __slots__ = ("host", "params", "port", "protocol", "transport")
    transport: str
    host: str
    port: int | None
    params: Params
    protocol: str


def _port(port_text: str | None) -> int | None:
    if port_text is None:
        return None
    port = int(port_text)
    if port > 65535:
        raise InvalidValue(f"Via port {port} is larger than 65535")
    return port


def _make(transport: str, host: str, port: int | None, params: Params, protocol: str) -> Via:
    # Parsed values are valid by construction; skip the frozen __init__.
    via: _ViaSlots = _ViaSlots()
    via.transport = transport
    via.host = host
    via.port = port
    via.params = params
    via.protocol = protocol
    via.__class__ = Via  # type: ignore[assignment]  # see _ViaSlots
    return via  # type: ignore[return-value]  # now a Via, as mypy cannot know


def _parse_general(text: str) -> Via:
    """Parse one via-parm that the canonical pattern did not match, or whose host it could not vouch for."""
    match = _VIA_PARM_RE.match(text)
    if match is None:
        raise InvalidValue(f"bad Via {excerpt(text)}")
    name, version, transport, host, port_text = match.groups()
    end = match.end()
    params = parse_params(text[end:]) if end < len(text) else ()
    protocol = _SIP_2_0 if name == "SIP" and version == "2.0" else f"{name.upper()}/{version}"
    return _make(transport.upper(), host, _port(port_text), params, protocol)


def parse_via(text: str) -> list[Via]:
    """
    Parse the value of one Via header field, which may hold several Via
    values separated by commas.

    Whitespace is allowed around C{/} and C{:} and around parameters, as in
    RFC 4475 section 3.1.1.1 (C{"SIP  /   2.0  /UDP  192.0.2.2"}).

    @see: RFC 3261 sections 7.3.1 and 20.42.
    @raise InvalidValue: an element is not a Via, or there is none.
    """
    fast = _FAST_VIA_PARM_RE.fullmatch(text)
    if fast is not None:
        # A single canonical Via, the usual case, built in line.
        transport, host, port_text, name1, value1, name2, value2, name3, value3, more = fast.groups()
        if ("-" in host or ".." in host) and _HOST_RE.fullmatch(host) is None:
            return [_parse_general(text)]
        via: _ViaSlots = _ViaSlots()
        via.transport = transport.upper()
        via.host = host
        if port_text is None:
            via.port = None
        elif (port := int(port_text)) <= 65535:
            via.port = port
        else:
            raise InvalidValue(f"Via port {port} is larger than 65535")
        if name1 is None:
            via.params = ()
        elif name2 is None:
            via.params = ((name1, value1),)
        elif name3 is None:
            via.params = ((name1, value1), (name2, value2))
        elif more is None:
            via.params = ((name1, value1), (name2, value2), (name3, value3))
        else:
            via.params = ((name1, value1), (name2, value2), (name3, value3), *split_simple_params(more))
        via.protocol = _SIP_2_0
        via.__class__ = Via  # type: ignore[assignment]  # see _ViaSlots
        return [via]  # type: ignore[list-item]  # now a Via, as mypy cannot know
    if "," not in text:
        return [_parse_general(text)]
    elements = split_header_values(text)
    if not elements:
        raise InvalidValue(f"no Via in {excerpt(text)}")
    # An element without a comma takes the fast path above; one with a comma
    # (in a quoted parameter value) cannot match it.
    return [parse_via(element)[0] if "," not in element else _parse_general(element) for element in elements]
