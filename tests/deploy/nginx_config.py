"""Render k8s/nginx/nginx.conf for a test: the substitution that k8s/nginx/nginx.conf documents.

Plain string replacement of a fixed list of tokens; each must occur in the production
config, so an edit that renames one fails the tests instead of silently testing less.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from .conftest import ROOT

NGINX_DIR = ROOT / "k8s" / "nginx"


def render_test_config(workdir: Path, upstream_port: int, http_port: int, https_port: int) -> Path:
    """Write nginx.conf (and the files it includes) under `workdir`; return the conf path."""
    text = (NGINX_DIR / "nginx.conf").read_text()
    # "/tmp/" first: the paths substituted afterwards live under a temporary directory too.
    replacements = [
        ("/tmp/", f"{workdir}/tmp/"),
        ("server hub:8080;", f"server 127.0.0.1:{upstream_port};"),
        ("listen 8080 ", f"listen 127.0.0.1:{http_port} "),
        ("listen 8443 ", f"listen 127.0.0.1:{https_port} "),
        ("/certs/current/", f"{workdir}/certs/"),
        ("/var/www/acme", f"{workdir}/acme"),
        ("/etc/nginx/nacritan/", f"{workdir}/conf/"),
        ("/dev/stdout", f"{workdir}/access.log"),
    ]
    for token, value in replacements:
        assert token in text, f"nginx.conf no longer contains {token!r}; update the test substitution"
        text = text.replace(token, value)
    for directory in ("tmp", "certs", "acme", "conf"):
        (workdir / directory).mkdir(parents=True, exist_ok=True)
    shutil.copy(NGINX_DIR / "ffdhe2048.pem", workdir / "conf" / "ffdhe2048.pem")
    conf = workdir / "conf" / "nginx.conf"
    conf.write_text(text)
    return conf
