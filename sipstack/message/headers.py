# -*- test-case-name: tests.message.test_headers -*-
"""
The header section of a SIP message: an ordered, case-insensitive multi-map.

Header fields keep the name and the value exactly as they arrived (after
unfolding), so a proxy forwards headers it does not understand byte for byte
and L{serialize<sipstack.message.serializer.serialize>} reproduces canonical
input exactly.  Typed values are parsed on demand by the message classes, not
here.

Names are compared case-insensitively, and a compact form (RFC 3261 section
7.3.3 and the IANA registry) is the same header as its long form: C{v} is
C{Via}, C{m} is C{Contact}.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from sipstack.message.values import split_header_values

__all__ = ["COMPACT_FORMS", "Headers", "canonical_key", "long_name", "compact_name"]

#: Compact form -> long form, from RFC 3261 section 20 and the IANA "Header
#: Fields" registry.
COMPACT_FORMS: dict[str, str] = {
    "a": "Accept-Contact",
    "b": "Referred-By",
    "c": "Content-Type",
    "d": "Request-Disposition",
    "e": "Content-Encoding",
    "f": "From",
    "i": "Call-ID",
    "j": "Reject-Contact",
    "k": "Supported",
    "l": "Content-Length",
    "m": "Contact",
    "n": "Identity-Info",
    "o": "Event",
    "r": "Refer-To",
    "s": "Subject",
    "t": "To",
    "u": "Allow-Events",
    "v": "Via",
    "x": "Session-Expires",
    "y": "Identity",
}

_KEY_OF_COMPACT = {short: long.lower() for short, long in COMPACT_FORMS.items()}
_COMPACT_OF_KEY = {long.lower(): short for short, long in COMPACT_FORMS.items()}

#: Long names spelled as the RFCs spell them, for headers the stack writes.
_SPELLING = {
    name.lower(): name
    for name in (
        *COMPACT_FORMS.values(),
        "CSeq",
        "Max-Forwards",
        "Record-Route",
        "Route",
        "WWW-Authenticate",
        "Proxy-Authenticate",
        "Authorization",
        "Proxy-Authorization",
        "Expires",
        "Min-Expires",
        "Allow",
        "Require",
        "Proxy-Require",
        "Unsupported",
        "Timestamp",
        "User-Agent",
        "Server",
        "Path",
        "Retry-After",
        "Warning",
        "RSeq",
        "RAck",
    )
}


def _compute_key(name: str) -> str:
    key = name.lower()
    if len(key) == 1:
        return _KEY_OF_COMPACT.get(key, key)
    return key


# The keys of the spellings seen in practice, computed once: looking a name up
# here is cheaper than lower-casing it for every header of every message.  The
# table is fixed, so a peer cannot grow it.
_KNOWN_KEYS: dict[str, str] = {
    spelling: _compute_key(spelling)
    for name in (
        *_SPELLING.values(),
        *COMPACT_FORMS,
        # Other headers common in practice, spelled as their RFCs do.
        "Accept",
        "Accept-Encoding",
        "Accept-Language",
        "Alert-Info",
        "Call-Info",
        "Content-Disposition",
        "Content-Language",
        "Date",
        "Diversion",
        "Error-Info",
        "History-Info",
        "In-Reply-To",
        "MIME-Version",
        "Min-SE",
        "Organization",
        "P-Asserted-Identity",
        "P-Preferred-Identity",
        "Priority",
        "Privacy",
        "Proxy-Authentication-Info",
        "Authentication-Info",
        "Reason",
        "Replaces",
        "Reply-To",
        "Service-Route",
        "Subscription-State",
    )
    for spelling in (name, name.lower(), name.upper())
}


def canonical_key(name: str) -> str:
    """
    The key a header name is looked up by: lower case, long form.
    """
    key = _KNOWN_KEYS.get(name)
    return key if key is not None else _compute_key(name)


def long_name(name: str) -> str:
    """
    The conventional long spelling of a header name (C{"v"} -> C{"Via"}).
    """
    key = canonical_key(name)
    return _SPELLING.get(key) or "-".join(part.capitalize() for part in key.split("-"))


def compact_name(name: str) -> str:
    """
    The compact form of a header name if it has one, else its long spelling.
    """
    key = canonical_key(name)
    return _COMPACT_OF_KEY.get(key) or long_name(name)


class Headers:
    """
    An immutable, ordered list of C{(name, value)} header fields.

    Every "change" returns a new L{Headers}.  Look-ups by name are
    case-insensitive and treat compact and long forms alike; the index they
    use is built once, on the first look-up (the parser builds it while it
    splits the header section, and fills in C{_fields}, C{_first} and
    C{_repeated} itself).

    A header that may appear as a comma-separated list (Via, Contact, Route...)
    can be written as one field or several; L{values} returns the list
    elements across all fields, while L{get_all} returns the fields as written.
    """

    # The index is two maps: the position of the first field of each key, and
    # the positions of every field of the keys that appear more than once.
    # Most keys appear once, and recording a first position costs one
    # dict.setdefault per field, half of what a list per key costs.
    __slots__ = ("_fields", "_first", "_repeated")

    def __init__(self, fields: Iterable[tuple[str, str]] = ()) -> None:
        self._fields: tuple[tuple[str, str], ...] = tuple(fields)
        self._first: dict[str, int] | None = None
        self._repeated: dict[str, list[int]] = {}

    def _index(self) -> dict[str, int]:
        """The position of the first field of each key (the index is built on first use)."""
        first = self._first
        if first is None:
            first = {}
            repeated = self._repeated
            for position, (name, _) in enumerate(self._fields):
                key = canonical_key(name)
                earlier = first.setdefault(key, position)
                if earlier != position:
                    positions = repeated.get(key)
                    if positions is None:
                        repeated[key] = [earlier, position]
                    else:
                        positions.append(position)
            self._first = first
        return first

    def _positions(self, key: str) -> list[int]:
        """The positions of the fields of C{key} (a canonical key), in order."""
        position = self._index().get(key)
        if position is None:
            return []
        return self._repeated.get(key) or [position]

    # Reading

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and canonical_key(name) in self._index()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return self._fields == other._fields

    def __hash__(self) -> int:
        return hash(self._fields)

    def __repr__(self) -> str:
        return f"Headers({list(self._fields)!r})"

    @property
    def fields(self) -> tuple[tuple[str, str], ...]:
        """All fields, in order, as written."""
        return self._fields

    def get(self, name: str) -> str | None:
        """
        The value of the first field with this name, or L{None}.
        """
        position = self._index().get(canonical_key(name))
        if position is None:
            return None
        return self._fields[position][1]

    def get_all(self, name: str) -> list[str]:
        """
        The values of every field with this name, as written, in order.
        """
        key = canonical_key(name)
        position = self._index().get(key)
        if position is None:
            return []
        positions = self._repeated.get(key)
        if positions is None:
            return [self._fields[position][1]]
        fields = self._fields
        return [fields[position][1] for position in positions]

    def count(self, name: str) -> int:
        """How many fields carry this name."""
        return len(self._positions(canonical_key(name)))

    def values(self, name: str) -> list[str]:
        """
        The comma-separated elements of every field with this name, in order.

        Only meaningful for headers whose grammar is a list (RFC 3261 section
        7.3.1); C{WWW-Authenticate} and friends contain commas that are not
        list separators and must be read with L{get_all}.

        @raise sipstack.errors.InvalidValue: a field cannot be split (for
            example an unterminated quoted string).
        """
        result: list[str] = []
        for value in self.get_all(name):
            if "," in value:
                result.extend(split_header_values(value))
            elif value:
                result.append(value)
        return result

    # Changing (each returns a new Headers)

    def with_added(self, name: str, value: str, *, first: bool = False) -> Headers:
        """
        Add a field.

        @param first: put it before the first field of the same name (or at
            the very top when there is none), as a proxy adds its Via
            (RFC 3261 section 16.6 step 8) or Record-Route; otherwise append it
            after the last field of the same name, or at the end.
        """
        positions = self._positions(canonical_key(name))
        fields = list(self._fields)
        if first:
            fields.insert(positions[0] if positions else 0, (name, value))
        elif positions:
            fields.insert(positions[-1] + 1, (name, value))
        else:
            fields.append((name, value))
        return Headers(fields)

    def with_replaced(self, name: str, value: str) -> Headers:
        """
        Replace every field of this name by one field, where the first was (or
        at the end).
        """
        key = canonical_key(name)
        keep_at = self._index().get(key)
        if keep_at is None:
            return Headers((*self._fields, (name, value)))
        fields = [
            (name, value) if position == keep_at else field
            for position, field in enumerate(self._fields)
            if position == keep_at or canonical_key(field[0]) != key
        ]
        return Headers(fields)

    def without(self, name: str) -> Headers:
        """Remove every field with this name."""
        key = canonical_key(name)
        if key not in self._index():
            return self
        return Headers(field for field in self._fields if canonical_key(field[0]) != key)

    def without_first_value(self, name: str) -> Headers:
        """
        Remove the first list element of this header, as a proxy pops the top
        Via of a response (RFC 3261 section 16.7 step 3) or the first Route
        (section 16.4): the element goes, the rest of its field stays.
        """
        position = self._index().get(canonical_key(name))
        if position is None:
            return self
        field_name, value = self._fields[position]
        rest = split_header_values(value)[1:] if "," in value else []
        fields = list(self._fields)
        if rest:
            fields[position] = (field_name, ", ".join(rest))
        else:
            del fields[position]
        return Headers(fields)
