import os

from hypothesis import HealthCheck, settings

# One profile for the whole suite: no per-example deadline (CI machines are slow
# and noisy), and a fixed example budget so the suite's time is predictable.
settings.register_profile("vmlab", deadline=None, max_examples=100,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", deadline=None, max_examples=500,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "vmlab"))
