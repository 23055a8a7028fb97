"""Errors any layer may raise about the user's own input."""


class ConfigError(ValueError):
    """A setting, flag or argument the user gave is invalid; the message names it."""
