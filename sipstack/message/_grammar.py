# -*- test-case-name: tests.message.test_grammar -*-
"""
Pieces of the RFC 3261 section 25 ABNF as regular-expression sources.

Each constant is a regex *source* (a C{str}), so modules can compose them into
larger compiled patterns; the ABNF they implement is quoted above each one, as
h11's C{_abnf.py} does.  Only the shared pieces live here: the URI, Via and
address modules build their own patterns from them.
"""

from __future__ import annotations

__all__ = [
    "LWS",
    "SWS",
    "TOKEN",
    "WORD",
    "QUOTED_STRING",
    "HOSTNAME",
    "IPV4_ADDRESS",
    "IPV6_REFERENCE",
    "HOST",
    "PORT",
    "METHOD",
]

# LWS  =  [*WSP CRLF] 1*WSP ; linear whitespace
# Header folding is undone by the parser before values reach these patterns,
# so inside a value LWS is just spaces and tabs.
LWS = r"[ \t]+"
# SWS  =  [LWS] ; sep whitespace
SWS = r"[ \t]*"

# token  =  1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~" )
TOKEN = r"[A-Za-z0-9\-.!%*_+`'~]+"

# word  =  1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~" /
#          "(" / ")" / "<" / ">" / ":" / "\" / DQUOTE / "/" / "[" / "]" / "?" / "{" / "}" )
WORD = r"[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}]+"

# quoted-string  =  SWS DQUOTE *(qdtext / quoted-pair ) DQUOTE
# qdtext         =  LWS / %x21 / %x23-5B / %x5D-7E / UTF8-NONASCII
# quoted-pair    =  "\" (%x00-09 / %x0B-0C / %x0E-7F)
# (Any non-ASCII character is accepted as UTF8-NONASCII: header text is
# decoded as UTF-8 with surrogateescape before it gets here.)
QUOTED_STRING = r'"(?:[^"\\\r\n]|\\[^\r\n])*"'

# hostname     =  *( domainlabel "." ) toplabel [ "." ]
# domainlabel  =  alphanum / alphanum *( alphanum / "-" ) alphanum
# toplabel     =  ALPHA / ALPHA *( alphanum / "-" ) alphanum
# Liberal on purpose: underscores and digit-only top labels occur in the wild
# and cost nothing to accept.
HOSTNAME = r"[A-Za-z0-9_](?:[A-Za-z0-9_\-]*[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_\-]*[A-Za-z0-9_])?)*\.?"

# IPv4address  =  1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT
IPV4_ADDRESS = r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}"

# IPv6reference  =  "[" IPv6address "]"
# The bracketed text is checked further with the ipaddress module by callers
# that need a canonical form; the pattern only admits the characters.
IPV6_REFERENCE = r"\[[0-9A-Fa-f:.]+\]"

# host  =  hostname / IPv4address / IPv6reference
HOST = rf"(?:{IPV6_REFERENCE}|{HOSTNAME})"

# port  =  1*DIGIT
PORT = r"[0-9]{1,5}"

# Method  =  INVITEm / ACKm / OPTIONSm / BYEm / CANCELm / REGISTERm / extension-method
# extension-method  =  token
METHOD = TOKEN
