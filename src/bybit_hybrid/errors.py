"""Errors any layer may raise about the user's own input."""


class ConfigError(ValueError):
    """A setting, flag or argument the user gave is invalid; the message names it."""


class KeyRejectedError(ConfigError):
    """Bybit rejected the API key: `source` says where, `ret_code` is Bybit's retCode when the
    answer carried one (REST: 10003 bad key, 10004 bad signature, 10005 missing permission,
    10010 unbound IP; the private socket's auth reply carries only a message)."""

    def __init__(self, source: str, ret_code: int | None, ret_msg: str) -> None:
        self.source = source
        self.ret_code = ret_code
        self.ret_msg = ret_msg
        code = "" if ret_code is None else f" (retCode {ret_code})"
        super().__init__(f"Bybit rejected the API key on {source}{code}: {ret_msg}")
