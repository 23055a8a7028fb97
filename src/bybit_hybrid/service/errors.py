"""Errors the command line turns into one-line messages."""


class UsageError(Exception):
    """Bad input from the user (flag, setting, config file): printed as one line, exit code 2."""
