"""Settings: read once from `NACRITAN_*` variables, typed, validated before anything starts.

Each field is one variable (`NACRITAN_` + its name in capitals). Its type and `Meta`
constraints are the validation (msgspec `convert`); its `Meta` description and example
are what an error message and the README's settings table say.
"""
from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import logging
import os
import re
import typing
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import msgspec
from msgspec import Meta

from storage.url import DatabaseUrl, DatabaseUrlError

log = logging.getLogger(__name__)

PREFIX = "NACRITAN_"
# Variables of that prefix read by the test suite and the deployment checks, not the hub.
# (BACKUP_: the backup CronJob's, in the ConfigMap the hub pods load too.)
NOT_HUB_SETTINGS = re.compile(r"^NACRITAN_(TEST_|DEPLOY_|K8S_|BENCH_|BACKUP_)")

Seconds = Annotated[float, Meta(ge=0)]
PositiveSeconds = Annotated[float, Meta(gt=0)]
# Immutable, so one value serves as every Settings' default.
DEFAULT_DB = DatabaseUrl.parse("sqlite:///nacritan.db")
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class SettingsError(ValueError):
    """A variable holds a value the hub cannot use; the message names it and gives an example."""


def _about(description: str, example: str) -> Meta:
    return Meta(description=description, examples=[example])


@dataclasses.dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything the hub can be told; `from_env` is the only reader of os.environ."""

    db: Annotated[DatabaseUrl, _about(
        "`sqlite:///relative.db`, `sqlite:////abs/path.db` or `mysql://user:pass@host:3306/dbname`",
        "mysql://user:pass@mariadb:3306/nacritan")] = DEFAULT_DB
    host: Annotated[str, Meta(min_length=1), _about("listen address", "0.0.0.0")] = "127.0.0.1"
    port: Annotated[int, Meta(ge=1, le=65535), _about("listen port", "8080")] = 8080
    cors_origins: Annotated[tuple[str, ...], _about(
        "comma-separated origins allowed by CORS and for websockets, each `scheme://host[:port]` "
        "(`*`: any; safe since auth is by token, never cookies)",
        "https://nacridan.com,https://it.example.org")] = ("*",)
    log_level: Annotated[LogLevel, _about("Python logging level", "DEBUG")] = "INFO"
    # Not in the repr: the URL may hold a password.
    redis: Annotated[str | None, _about(
        "`redis://host:6379/0` to fan out events across replicas (unset: one process)",
        "redis://redis:6379/0")] = dataclasses.field(default=None, repr=False)
    db_timeout: Annotated[float, Meta(gt=0, le=3600), _about(
        "seconds one MariaDB transaction or read may take before it counts as an outage (503)",
        "15")] = 15.0
    max_body_bytes: Annotated[int, Meta(ge=1024), _about("largest upload (413 above)", "1048576")] = 1024 * 1024
    max_tiles: Annotated[int, Meta(ge=1), _about("most tiles per view", "400")] = 400
    max_entities: Annotated[int, Meta(ge=1), _about("most entities per view", "4000")] = 4000
    max_radius: Annotated[int, Meta(ge=0), _about("largest `n` / `r` of the read routes", "20")] = 20
    journal_days: Annotated[Seconds, _about(
        "days the verbatim upload journal is kept", "7")] = 7.0
    events_hours: Annotated[Seconds, _about(
        "hours of live-feed events kept per guild for replay", "24")] = 24.0
    events_max: Annotated[int, Meta(ge=1), _about(
        "most live-feed events kept per guild for replay", "50000")] = 50_000
    ws_heartbeat: Annotated[PositiveSeconds, _about("seconds between websocket pings", "25")] = 25.0
    ws_auth_timeout: Annotated[PositiveSeconds, _about(
        "seconds a new websocket has to authenticate", "10")] = 10.0
    ws_queue_messages: Annotated[int, Meta(ge=1), _about(
        "per-socket send queue, in messages, before a slow client is closed (4008)", "1000")] = 1000
    ws_queue_bytes: Annotated[int, Meta(ge=1024), _about(
        "per-socket send queue, in bytes, before a slow client is closed (4008)", "4194304")] = 4 * 1024 * 1024
    ws_max_msg_bytes: Annotated[int, Meta(ge=1024), _about(
        "largest websocket message a client may send", "65536")] = 64 * 1024
    # How long a client closed for falling behind may take to read up to its close
    # frame (and see 4008) before its connection is dropped.
    ws_close_grace: Annotated[Seconds, _about(
        "seconds a client closed as slow (4008) gets to read its close frame before its "
        "connection is dropped", "30")] = 30.0
    poll_interval: Annotated[PositiveSeconds, _about(
        "seconds between the live feed's database polls (the fallback when Redis is absent or down)",
        "1")] = 1.0
    # Kept below the pod's terminationGracePeriodSeconds (see k8s/base/hub.yaml).
    shutdown_timeout: Annotated[Seconds, _about(
        "on SIGTERM, seconds for requests in flight (bodies included) to finish; the hub exits as "
        "soon as none is left (keep below the pod's grace period)", "10")] = 10.0
    token_cache_seconds: Annotated[Seconds, _about(
        "how long a token lookup is cached (a revocation takes effect within it)", "5")] = 5.0
    trusted_proxies: Annotated[tuple[str, ...], _about(
        "comma-separated addresses or CIDRs of proxies whose `X-Forwarded-For` is believed",
        "10.0.0.0/8,127.0.0.1")] = ("127.0.0.1", "::1")
    # Snapshot pages (read and encoded) in progress at once in this process, whatever the
    # number of subscribers waiting for one: bounds their share of the pool and the loop.
    snapshot_builds: Annotated[int, Meta(ge=1), _about(
        "snapshot pages read and encoded at once per process, whatever the number of "
        "subscribers waiting", "2")] = 2
    body_timeout: Annotated[PositiveSeconds, _about(
        "seconds an upload's body may take to arrive in full (408 after)", "30")] = 30.0
    auth_failures_per_minute: Annotated[int, Meta(ge=0), _about(
        "failed authentications per client address and minute before 429 (0: off)", "20")] = 20
    # Alerts (docs/alerts.md).
    public_url: Annotated[str, _about(
        "where players open the hub's map: alert links point at `<url>/#x=..&y=..` (empty: no link)",
        "https://it.example.org")] = ""
    alerts_interval: Annotated[PositiveSeconds, _about(
        "seconds between the alert task's rounds (rules reloaded, turn reminders, outbox polled)",
        "10")] = 10.0
    alerts_retry_seconds: Annotated[PositiveSeconds, _about(
        "first delay before retrying an alert after a 5xx or network error; doubles up to 1 h",
        "5")] = 5.0

    def __post_init__(self) -> None:
        # Direct construction (tests, benchmarks) may pass the URL as text.
        object.__setattr__(self, "db", DatabaseUrl.parse(self.db))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from NACRITAN_* variables; SettingsError names the first bad one."""
        env = os.environ if env is None else env
        hints = _hints()
        raw: dict[str, Any] = {}
        for name in hints:
            text = env.get(variable(name), "").strip()
            if text:
                raw[name] = _split(text) if _is_list(hints[name]) else text
        if "log_level" in raw:
            raw["log_level"] = raw["log_level"].upper()
        db = raw.pop("db", None)
        try:
            settings = msgspec.convert(raw, cls, strict=False)
        except msgspec.ValidationError as exc:
            name, reason = _split_path(str(exc))
            raise SettingsError(_message(name, env, reason)) from None
        for name, check in _CHECKS.items():
            try:
                check(getattr(settings, name))
            except ValueError as exc:
                raise SettingsError(_message(name, env, str(exc))) from None
        if db is None:
            return settings
        try:
            return dataclasses.replace(settings, db=DatabaseUrl.parse(db))
        except DatabaseUrlError as exc:
            raise SettingsError(_message("db", env, str(exc))) from None


def variable(name: str) -> str:
    """The environment variable of a settings field."""
    return PREFIX + name.upper()


def documented() -> dict[str, tuple[str, str, str]]:
    """Each variable with its default (as text), description and example."""
    rows = {}
    defaults = Settings()
    for name, hint in _hints().items():
        meta = _meta(hint)
        value = getattr(defaults, name)
        if isinstance(value, tuple):
            shown = ",".join(value)
        elif isinstance(value, float):
            shown = f"{value:g}"
        else:
            shown = "unset" if value is None else str(value)
        rows[variable(name)] = (shown, meta.description or "", (meta.examples or [""])[0])
    return rows


def unknown_variables(env: Mapping[str, str] | None = None) -> list[str]:
    """A warning for each NACRITAN_* variable the hub does not know, naming the closest known one."""
    env = os.environ if env is None else env
    known = [variable(name) for name in _hints()]
    warnings = []
    for name in sorted(env):
        if name.startswith(PREFIX) and name not in known and not NOT_HUB_SETTINGS.match(name):
            # Compared without the prefix every name shares, which would make all look alike.
            close = difflib.get_close_matches(name.removeprefix(PREFIX).lower(), list(_hints()), n=1)
            hint = f"; did you mean {variable(close[0])}?" if close else ""
            warnings.append(f"unknown setting {name} ignored{hint}")
    return warnings


def _check_origins(origins: tuple[str, ...]) -> None:
    for origin in origins:
        if origin == "*":
            continue
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
            raise ValueError(f"origin {origin!r} is not `*` nor scheme://host[:port], so no "
                             "browser could ever match it")


def _check_networks(networks: tuple[str, ...]) -> None:
    for network in networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise ValueError(f"{network!r} is not an IP address or CIDR") from None


def _check_public_url(url: str) -> None:
    parts = urlsplit(url)
    if url and (parts.scheme not in ("http", "https") or not parts.hostname):
        raise ValueError("not an http(s)://host URL")


def _check_redis(url: str | None) -> None:
    if url is None:
        return
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix") or not (parts.hostname or parts.path):
        raise ValueError("not a redis://host:port/db URL")


_CHECKS: dict[str, Callable[[Any], None]] = {
    "cors_origins": _check_origins, "trusted_proxies": _check_networks, "redis": _check_redis,
    "public_url": _check_public_url}


def _hints() -> dict[str, Any]:
    return {name: hint for name, hint in typing.get_type_hints(Settings, include_extras=True).items()
            if name in {f.name for f in dataclasses.fields(Settings)}}


def _meta(hint: Any) -> Meta:
    described = [m for m in getattr(hint, "__metadata__", ()) if isinstance(m, Meta) and m.description]
    return described[-1]


def _is_list(hint: Any) -> bool:
    return typing.get_origin(typing.get_args(hint)[0]) is tuple


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _split_path(message: str) -> tuple[str, str]:
    match = re.search(r" - at `\$\.(\w+)", message)
    if not match:
        return "", message
    return match.group(1), message[: match.start()]


# Up to the last `@`: a password may hold a raw `@` (or `/`) of its own.
_PASSWORD = re.compile(r"(://[^:/@]*:).*@")


def _message(name: str, env: Mapping[str, str], reason: str) -> str:
    if not name:
        return reason
    var = variable(name)
    example = _meta(_hints()[name]).examples or [""]
    reason = reason.replace("Expected `int`", "expected an integer").replace(
        "Expected `float`", "expected a number").replace(", got `str`", "")
    # A URL's password is a secret even when the URL is wrong.
    shown = _PASSWORD.sub(r"\1***@", env.get(var, ""))
    return f"{var}={shown!r}: {reason}; for example {var}={example[0]}"
