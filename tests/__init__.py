"""
sipstack's tests, run with C{python -m twisted.trial tests}.

Hypothesis profiles: C{ci} (derandomized, so CI is reproducible), C{dev} (the
default for local runs) and C{soak} (many examples), chosen with the
C{HYPOTHESIS_PROFILE} environment variable.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", derandomize=True, deadline=None, max_examples=100, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", deadline=None, max_examples=100)
settings.register_profile("soak", deadline=None, max_examples=20_000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
