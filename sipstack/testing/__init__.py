"""
Public test helpers for sipstack and the applications built on it, shipped as
C{treq.testing} and C{hyperlink.hypothesis} are: certificate builders
(L{sipstack.testing.certs}), Hypothesis strategies
(L{sipstack.testing.strategies}) and an authoritative DNS server on loopback
(L{sipstack.testing.dns}).
"""
