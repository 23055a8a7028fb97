"""Timing for one WebSocket session (`SessionConfig`), with the private socket's own heartbeat.

Defaults follow BYBIT_V5.md §2–3. The private socket carries only position pushes, so it is
quiet most of the time and a silent one (TCP up, nothing arriving) looks like a quiet one until
a pong is overdue: it pings every 3 s and wants the pong within 2 s (issue 19 F2), while the
public socket keeps Bybit's recommended 20 s. 20 s is the longest interval that keeps a socket
open (§3.3), not a minimum; other clients ping more often (bapi: 10 s, 1 s pong timeout).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from bybit_hybrid.protocol.backoff import BackoffPolicy

RECONNECT_MAX_S = 3.0  # the longest wait between two attempts of one socket (jitter: 1.5–3 s)
# After Bybit rejects the key on a socket, retrying fast cannot help (a skewed clock or a key
# change takes a while to fix) and many failed logins are what an exchange bans an IP for.
AUTH_RETRY_MAX_S = 60.0


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """Timing for one socket; every field is in seconds. Defaults follow BYBIT_V5.md §2–3."""

    ping_interval_s: float = 20.0
    pong_timeout_s: float = 10.0
    # Above ping_interval_s, or a quiet private socket (pongs only) would flap LIVE/STALE.
    stale_after_s: float = 25.0
    auth_expires_s: float = 10.0
    auth_timeout_s: float = 10.0
    connect_timeout_s: float = 10.0
    healthy_reset_s: float = 60.0
    # The `max_active_time` the shell puts in the private URL, if any: pings must beat it.
    max_active_time_s: float | None = None
    # Short on purpose: after an outage a socket is back within seconds of the exchange. The
    # per-IP connection limit is kept by the shared budget (protocol/connects.py), not here.
    backoff: BackoffPolicy = field(default_factory=lambda: BackoffPolicy(max_s=RECONNECT_MAX_S))
    # The wait after a rejected auth (the longer of this and `backoff`): 1–2 s, 2–4 s, ... up
    # to 30–60 s between logins while the key keeps being rejected; reset by an accepted one.
    auth_retry_backoff: BackoffPolicy = field(
        default_factory=lambda: BackoffPolicy(initial_s=2.0, max_s=AUTH_RETRY_MAX_S)
    )
    # The private socket's heartbeat (module docstring): it uses the shorter of these and the
    # public values above, and its staleness is capped at its ping + pong (5 s by default).
    # Set them to the public values for Bybit's plain 20 s ping on both sockets.
    private_ping_interval_s: float = 3.0
    private_pong_timeout_s: float = 2.0
    # Public sockets only: after this long with nothing received, a ping goes out at once
    # (outside the regular cadence) and its pong is due within the same time. A completely
    # quiet shard (Bybit pushes nothing) is then heard from every `idle_ping_s` + RTT, and a
    # black-holed one is dead within 2 x `idle_ping_s` of its last frame; a busy shard sends
    # no extra ping. None: the regular cadence only. The rollout shell sets it below its
    # failover's mark staleness (issue 19; docs/rollout.md "A quiet public shard").
    idle_ping_s: float | None = None

    def __post_init__(self) -> None:
        for name in (
            "ping_interval_s",
            "pong_timeout_s",
            "stale_after_s",
            "auth_expires_s",
            "private_ping_interval_s",
            "private_pong_timeout_s",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.idle_ping_s is not None and self.idle_ping_s <= 0:
            raise ValueError(f"idle_ping_s must be > 0 or None, got {self.idle_ping_s}")
        if self.pong_timeout_s >= self.ping_interval_s:
            raise ValueError("pong_timeout_s must be below ping_interval_s (one ping in flight)")
        if self.stale_after_s <= self.ping_interval_s:
            raise ValueError("stale_after_s must exceed ping_interval_s")
        if self.max_active_time_s is not None and self.ping_interval_s >= self.max_active_time_s:
            raise ValueError("ping_interval_s must stay below max_active_time_s")
        ping_s, pong_s = self._private_heartbeat()
        if pong_s >= ping_s:
            raise ValueError(
                f"private_pong_timeout_s must be below the private ping interval "
                f"({pong_s:g} s >= {ping_s:g} s): one ping in flight"
            )

    def _private_heartbeat(self) -> tuple[float, float]:
        ping_s = min(self.ping_interval_s, self.private_ping_interval_s)
        return ping_s, min(self.pong_timeout_s, self.private_pong_timeout_s)

    def for_private(self) -> SessionConfig:
        """This config with the private socket's heartbeat in the common fields."""
        ping_s, pong_s = self._private_heartbeat()
        return replace(
            self,
            ping_interval_s=ping_s,
            pong_timeout_s=pong_s,
            stale_after_s=min(self.stale_after_s, ping_s + pong_s),
        )
