"""
Public test helpers for sipstack and the applications built on it, shipped as
C{treq.testing} and C{hyperlink.hypothesis} are: certificate builders
(L{sipstack.testing.certs}) and Hypothesis strategies
(L{sipstack.testing.strategies}).
"""
