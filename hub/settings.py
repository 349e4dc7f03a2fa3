"""Settings read once from the environment (documented in the README)."""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field


class SettingsError(ValueError):
    """An environment variable holds a value the hub cannot use."""


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be >= {minimum}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None


def _list(env: Mapping[str, str], name: str, default: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in env.get(name, default).split(",") if part.strip())


@dataclass(frozen=True)
class Settings:
    """Everything the hub can be told; `from_env` is the only reader of os.environ."""

    db: str = "sqlite:///nacritan.db"
    host: str = "127.0.0.1"
    port: int = 8080
    cors_origins: tuple[str, ...] = ("*",)
    log_level: str = "INFO"
    redis: str | None = None
    # Seconds one database transaction or read may take before it counts as an outage.
    db_timeout: float = 15.0
    # Request limits.
    max_body_bytes: int = 1024 * 1024
    max_tiles: int = 400
    max_entities: int = 4000
    max_radius: int = 20
    # Retention.
    journal_days: float = 7.0
    events_hours: float = 24.0
    events_max: int = 50_000
    # Live feed.
    ws_heartbeat: float = 25.0
    ws_auth_timeout: float = 10.0
    ws_queue_messages: int = 1000
    ws_queue_bytes: int = 4 * 1024 * 1024
    ws_max_msg_bytes: int = 64 * 1024
    # How long a client closed for falling behind may take to read up to its close
    # frame (and see 4008) before its connection is dropped.
    ws_close_grace: float = 30.0
    poll_interval: float = 1.0
    # Snapshot pages (read and encoded) in progress at once in this process, whatever the
    # number of subscribers waiting for one: bounds their share of the pool and the loop.
    snapshot_builds: int = 2
    # Kept below the pod's terminationGracePeriodSeconds (see k8s/base/hub.yaml).
    shutdown_timeout: float = 10.0
    token_cache_seconds: float = 5.0
    trusted_proxies: tuple[str, ...] = field(default=("127.0.0.1", "::1"))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from NACRITAN_* variables, refusing malformed values."""
        env = os.environ if env is None else env
        defaults = cls()
        return cls(
            db=env.get("NACRITAN_DB") or defaults.db,
            host=env.get("NACRITAN_HOST") or defaults.host,
            port=_int(env, "NACRITAN_PORT", defaults.port, 1),
            cors_origins=_list(env, "NACRITAN_CORS_ORIGINS", "*"),
            log_level=(env.get("NACRITAN_LOG_LEVEL") or defaults.log_level).upper(),
            redis=env.get("NACRITAN_REDIS") or None,
            db_timeout=_float(env, "NACRITAN_DB_TIMEOUT", defaults.db_timeout),
            max_body_bytes=_int(env, "NACRITAN_MAX_BODY_BYTES", defaults.max_body_bytes, 1024),
            max_tiles=_int(env, "NACRITAN_MAX_TILES", defaults.max_tiles, 1),
            max_entities=_int(env, "NACRITAN_MAX_ENTITIES", defaults.max_entities, 1),
            max_radius=_int(env, "NACRITAN_MAX_RADIUS", defaults.max_radius, 0),
            journal_days=_float(env, "NACRITAN_JOURNAL_DAYS", defaults.journal_days),
            events_hours=_float(env, "NACRITAN_EVENTS_HOURS", defaults.events_hours),
            events_max=_int(env, "NACRITAN_EVENTS_MAX", defaults.events_max, 1),
            ws_heartbeat=_float(env, "NACRITAN_WS_HEARTBEAT", defaults.ws_heartbeat),
            ws_auth_timeout=_float(env, "NACRITAN_WS_AUTH_TIMEOUT", defaults.ws_auth_timeout),
            ws_queue_messages=_int(env, "NACRITAN_WS_QUEUE_MESSAGES", defaults.ws_queue_messages, 1),
            ws_queue_bytes=_int(env, "NACRITAN_WS_QUEUE_BYTES", defaults.ws_queue_bytes, 1024),
            ws_max_msg_bytes=_int(env, "NACRITAN_WS_MAX_MSG_BYTES", defaults.ws_max_msg_bytes, 1024),
            ws_close_grace=_float(env, "NACRITAN_WS_CLOSE_GRACE", defaults.ws_close_grace),
            poll_interval=_float(env, "NACRITAN_POLL_INTERVAL", defaults.poll_interval),
            snapshot_builds=_int(env, "NACRITAN_SNAPSHOT_BUILDS", defaults.snapshot_builds, 1),
            shutdown_timeout=_float(env, "NACRITAN_SHUTDOWN_TIMEOUT", defaults.shutdown_timeout),
            token_cache_seconds=_float(env, "NACRITAN_TOKEN_CACHE_SECONDS", defaults.token_cache_seconds),
            trusted_proxies=_list(env, "NACRITAN_TRUSTED_PROXIES", "127.0.0.1,::1"),
        )
