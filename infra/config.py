"""Defaults that reach below the app; the settings themselves are read in app/settings.py."""

CACHED_COMPLAINTS = 20_000  # the default of RECOVERY_CACHED_COMPLAINTS
