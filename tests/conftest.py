"""Suite-wide settings."""

from hypothesis import settings

# A shared 2-core CI machine makes per-example timings noisy; no property here is about speed.
settings.register_profile("nlfs", deadline=None)
settings.load_profile("nlfs")
