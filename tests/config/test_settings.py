"""Settings: every variable's default, a good value, each bad value and its one-line message."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hub.settings import Settings, SettingsError, documented, unknown_variables, variable

ROOT = Path(__file__).resolve().parents[2]

# field: (a good value as text, what it becomes), then bad values with a piece of the message.
GOOD = {
    "db": ("mysql://u:p@db.example:3307/guild", "mysql://u@db.example:3307/guild"),
    "host": ("0.0.0.0", "0.0.0.0"),
    "port": ("9090", 9090),
    "cors_origins": ("https://a.example, http://b.example:8080",
                     ("https://a.example", "http://b.example:8080")),
    "log_level": ("debug", "DEBUG"),
    "redis": ("redis://cache:6379/1", "redis://cache:6379/1"),
    "db_timeout": ("2.5", 2.5),
    "max_body_bytes": ("2048", 2048),
    "max_tiles": ("50", 50),
    "max_entities": ("60", 60),
    "max_radius": ("0", 0),
    "journal_days": ("0.5", 0.5),
    "events_hours": ("1", 1.0),
    "events_max": ("10", 10),
    "ws_heartbeat": ("5", 5.0),
    "ws_auth_timeout": ("3", 3.0),
    "ws_queue_messages": ("10", 10),
    "ws_queue_bytes": ("4096", 4096),
    "ws_max_msg_bytes": ("2048", 2048),
    "ws_close_grace": ("0", 0.0),
    "poll_interval": ("0.2", 0.2),
    "shutdown_timeout": ("3", 3.0),
    "token_cache_seconds": ("0", 0.0),
    "trusted_proxies": ("10.0.0.0/8,::1", ("10.0.0.0/8", "::1")),
    "snapshot_builds": ("4", 4),
    "body_timeout": ("2.5", 2.5),
    "auth_failures_per_minute": ("0", 0),
    "public_url": ("https://it.example.org/hub", "https://it.example.org/hub"),
    "alerts_interval": ("0.5", 0.5),
    "alerts_retry_seconds": ("1", 1.0),
}

BAD = [
    ("db", "postgres://u:pw@x/y", "unsupported scheme 'postgres'"),
    ("db", "nacritan.db", "no scheme"),
    ("db", "mysql://h:3306", "names no database"),
    ("db", "mysql://h:99999/db", "malformed host:port"),
    ("db", "sqlite://x.db", "three slashes"),
    ("db", "sqlite:///", "names no file"),
    ("host", " ", None),  # blank is unset, so the default: not an error (checked below)
    ("port", "80800", "expected an integer <= 65535"),
    ("port", "0", "expected an integer >= 1"),
    ("port", "８０", "expected an integer"),
    ("cors_origins", "example.org", "no browser could ever match it"),
    ("cors_origins", "https://a.example/path", "not `*` nor scheme://host[:port]"),
    ("log_level", "VERBOSE", "Invalid enum value 'VERBOSE'"),
    ("redis", "localhost:6379", "not a redis://host:port/db URL"),
    ("db_timeout", "nan", "expected a number > 0.0"),
    ("db_timeout", "0", "expected a number > 0.0"),
    ("db_timeout", "soon", "expected a number"),
    ("max_body_bytes", "10", "expected an integer >= 1024"),
    ("max_tiles", "0", "expected an integer >= 1"),
    ("max_entities", "1.5", "expected an integer"),
    ("max_radius", "-1", "expected an integer >= 0"),
    ("journal_days", "-1", "expected a number >= 0.0"),
    ("events_hours", "x", "expected a number"),
    ("events_max", "0", "expected an integer >= 1"),
    ("ws_heartbeat", "0", "expected a number > 0.0"),
    ("ws_auth_timeout", "-3", "expected a number > 0.0"),
    ("ws_queue_messages", "0", "expected an integer >= 1"),
    ("ws_queue_bytes", "100", "expected an integer >= 1024"),
    ("ws_max_msg_bytes", "1k", "expected an integer"),
    ("ws_close_grace", "-1", "expected a number >= 0.0"),
    ("poll_interval", "0", "expected a number > 0.0"),
    ("shutdown_timeout", "-1", "expected a number >= 0.0"),
    ("token_cache_seconds", "forever", "expected a number"),
    ("trusted_proxies", "10.0.0.0/33", "'10.0.0.0/33' is not an IP address or CIDR"),
    ("trusted_proxies", "proxy.local", "is not an IP address or CIDR"),
    ("snapshot_builds", "0", "expected an integer >= 1"),
    ("body_timeout", "0", "expected a number > 0.0"),
    ("auth_failures_per_minute", "-1", "expected an integer >= 0"),
    ("public_url", "it.example.org", "not an http(s)://host URL"),
    ("alerts_interval", "0", "expected a number > 0.0"),
    ("alerts_retry_seconds", "-5", "expected a number > 0.0"),
]


def test_every_setting_has_a_good_value_in_this_table() -> None:
    assert set(GOOD) == {name.removeprefix("NACRITAN_").lower() for name in documented()}


@pytest.mark.parametrize("name", sorted(GOOD))
def test_default_and_good_value(name: str) -> None:
    assert getattr(Settings.from_env({}), name) == getattr(Settings(), name)
    text, expected = GOOD[name]
    value = getattr(Settings.from_env({variable(name): text}), name)
    assert (str(value) if name == "db" else value) == expected


@pytest.mark.parametrize(("name", "text", "reason"), [case for case in BAD if case[2]])
def test_bad_value_is_one_line_naming_the_variable(name: str, text: str, reason: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({variable(name): text})
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{variable(name)}=")
    assert reason in message
    example = documented()[variable(name)][2]
    assert f"for example {variable(name)}={example}" in message
    Settings.from_env({variable(name): example})  # the example itself is good


def test_blank_means_default() -> None:
    assert Settings.from_env({"NACRITAN_HOST": " ", "NACRITAN_PORT": ""}) == Settings()


@pytest.mark.parametrize("url", ["postgres://u:hunter2@x/y", "mysql://u:hun/ter2@x/y",
                                 "mysql://u:hun#ter2@x/y", "mysql://u:hun?ter2@x:3306/y",
                                 "mysql://u:hun@ter2@x:99999/y"])
def test_a_password_in_a_bad_url_is_not_repeated(url: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"NACRITAN_DB": url})
    for piece in ("hun", "ter2"):
        assert piece not in str(caught.value), caught.value


def test_passwords_stay_out_of_the_settings_repr() -> None:
    settings = Settings.from_env({"NACRITAN_DB": "mysql://u:hunter2@x/y",
                                  "NACRITAN_REDIS": "redis://:hunter3@cache:6379/0"})
    assert "hunter2" not in repr(settings) and "hunter3" not in repr(settings)
    assert settings.db.password == "hunter2" and settings.redis is not None


def test_unknown_variable_names_the_closest_known_one() -> None:
    env = {"NACRITAN_DB_TIMOUT": "3", "NACRITAN_WHATEVER": "1", "NACRITAN_TEST_MYSQL": "x",
           "NACRITAN_PORT": "1", "NACRITAN_BACKUP_RCLONE_REMOTE": "s3:b"}
    assert unknown_variables(env) == [
        "unknown setting NACRITAN_DB_TIMOUT ignored; did you mean NACRITAN_DB_TIMEOUT?",
        "unknown setting NACRITAN_WHATEVER ignored",
    ]


def _hub(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NACRITAN_")}
    clean["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-m", "hub", *args], cwd=cwd, env={**clean, **env},
                          capture_output=True, text=True, timeout=60, check=False)


# Each wrong setting a start can meet: one line on stderr, status 2, nothing created.
START_ERRORS = [
    ({"NACRITAN_DB": "postgres://x/y"}, "NACRITAN_DB='postgres://x/y': unsupported scheme"),
    ({"NACRITAN_DB": "nacritan.db"}, "NACRITAN_DB='nacritan.db': no scheme"),
    ({"NACRITAN_DB": "mysql://h:3306"}, "NACRITAN_DB='mysql://h:3306': names no database"),
    ({"NACRITAN_DB": "sqlite://x.db"}, "three slashes"),
    ({"NACRITAN_DB": "sqlite:////sys/nacritan.db"},
     "cannot use the SQLite file '/sys/nacritan.db'"),
    ({"NACRITAN_DB": "sqlite:///missing/dir/hub.db"},
     "cannot use the SQLite file 'missing/dir/hub.db'"),
    ({"NACRITAN_DB": "mysql://nobody:wrong@127.0.0.1:3306/nacritan_nobody"},
     "MariaDB refused mysql://nobody@127.0.0.1:3306/nacritan_nobody: Access denied"),
    ({"NACRITAN_LOG_LEVEL": "VERBOSE"}, "NACRITAN_LOG_LEVEL='VERBOSE'"),
    ({"NACRITAN_TRUSTED_PROXIES": "10.1.2.0/40"}, "NACRITAN_TRUSTED_PROXIES='10.1.2.0/40'"),
    ({"NACRITAN_PORT": "80800"}, "NACRITAN_PORT='80800'"),
    ({"NACRITAN_HOST": "no-such-host.invalid"}, "NACRITAN_HOST='no-such-host.invalid': cannot be resolved"),
    ({"NACRITAN_CORS_ORIGINS": "example.org"}, "NACRITAN_CORS_ORIGINS='example.org'"),
]


@pytest.mark.parametrize(("env", "message"), START_ERRORS, ids=[m for _, m in START_ERRORS])
def test_serve_with_a_wrong_setting_is_one_line_and_status_2(
        tmp_path: Path, env: dict[str, str], message: str) -> None:
    result = _hub(["serve"], tmp_path, **env)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("configuration error: ")
    assert message in lines[0]
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []  # no file named None, no half-made database


def test_serve_on_a_port_in_use_names_the_address(tmp_path: Path) -> None:
    import socket
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _hub(["serve"], tmp_path, NACRITAN_PORT=str(port),
                      NACRITAN_DB=f"sqlite:///{tmp_path / 'hub.db'}")
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == (f"configuration error: cannot listen on 127.0.0.1:{port} "
                                     "(NACRITAN_HOST / NACRITAN_PORT): Address already in use")
    assert not (tmp_path / "hub.db").exists()  # refused before the database was touched


def test_unknown_variable_is_a_warning_and_the_command_goes_on(tmp_path: Path) -> None:
    result = _hub(["migrate"], tmp_path, NACRITAN_DB_TIMOUT="3",
                  NACRITAN_DB=f"sqlite:///{tmp_path / 'hub.db'}")
    assert result.returncode == 0, result.stderr
    assert re.search(r"WARNING hub: unknown setting NACRITAN_DB_TIMOUT ignored; "
                     r"did you mean NACRITAN_DB_TIMEOUT\?", result.stderr)
    assert (tmp_path / "hub.db").exists()


def test_readme_settings_table_lists_exactly_the_known_settings() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `(NACRITAN_[A-Z_]+)` \| `([^`]*)` \|", readme, re.MULTILINE))
    expected = {name: default for name, (default, _, _) in documented().items()}
    assert rows == expected
