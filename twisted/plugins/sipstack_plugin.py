"""
The C{twistd sip} plugin.

Kept to one lazy L{ServiceMaker}: Twisted imports every plugin module to
list the plugins (C{twistd --help}), so this one names C{sipstack.tap} and
imports it only when C{twistd sip} actually runs.  There is, and must
never be, an C{__init__.py} next to this file: C{twisted/plugins} is
Twisted's own package, which this directory only extends.
"""

from twisted.application.service import ServiceMaker

sipstack = ServiceMaker(  # type: ignore[no-untyped-call]  # unannotated in Twisted 26.10
    "sipstack SIP server",
    "sipstack.tap",
    "A SIP registrar (and proxy) on sipstack, TLS first.",
    "sip",
)
