"""The image recipe and the kustomize manifests, checked with the real linters and validators."""
from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from hub.settings import Settings

from .conftest import ROOT, tool

K8S_VERSION = "1.37.0"
OVERLAYS = {"prod": 2, "dev": 1}  # overlay -> hub replicas
# Pod Security "restricted": the volume types it allows.
RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                      "persistentVolumeClaim", "projected", "secret"}

Doc = dict[str, Any]


def render(overlay: str, tmp_path: Path) -> list[Doc]:
    """`kubectl kustomize` of an overlay, on a copy whose secrets.env is the template."""
    tree = tmp_path / "k8s"
    shutil.copytree(ROOT / "k8s", tree)
    directory = tree / "overlays" / overlay
    if overlay != "base":
        shutil.copy(tree / "base" / "secrets.env.example", directory / "secrets.env")
    else:
        directory = tree / "base"
    result = subprocess.run([tool("kubectl"), "kustomize", str(directory)],
                            capture_output=True, text=True, check=False, timeout=120)
    assert result.returncode == 0, result.stderr
    (tmp_path / f"{overlay}.yaml").write_text(result.stdout)
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def one(docs: list[Doc], kind: str, name: str) -> Doc:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def generated(docs: list[Doc], kind: str, prefix: str) -> Doc:
    found = [d for d in docs if d["kind"] == kind and re.fullmatch(prefix + r"-[a-z0-9]{10}", d["metadata"]["name"])]
    assert len(found) == 1, f"{kind}/{prefix}-<hash>: {len(found)} found"
    return found[0]


def pod_specs(docs: list[Doc]) -> dict[str, Doc]:
    specs = {}
    for doc in docs:
        if doc["kind"] in ("Deployment", "StatefulSet"):
            specs[doc["metadata"]["name"]] = doc["spec"]["template"]["spec"]
        elif doc["kind"] == "CronJob":
            specs[doc["metadata"]["name"]] = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return specs


@pytest.mark.parametrize("overlay", [*OVERLAYS, "base"])
def test_kustomize_renders_and_validates_strictly(overlay: str, tmp_path: Path) -> None:
    docs = render(overlay, tmp_path)
    assert len(docs) >= 15
    result = subprocess.run(
        [tool("kubernetes-validate"), "--strict", "--kubernetes-version", K8S_VERSION, str(tmp_path / f"{overlay}.yaml")],
        capture_output=True, text=True, check=False, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed for resource") == len(docs)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_meets_the_restricted_pod_security_profile(overlay: str, tmp_path: Path) -> None:
    docs = render(overlay, tmp_path)
    namespace = next(d for d in docs if d["kind"] == "Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    specs = pod_specs(docs)
    assert set(specs) == {"hub", "nginx", "mariadb", "redis", "backup"}
    for name, spec in specs.items():
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True, name
        assert pod["runAsUser"] > 0, name
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert not spec.get("hostNetwork") and not spec.get("hostPID") and not spec.get("hostIPC"), name
        assert spec["automountServiceAccountToken"] is False, name
        for volume in spec.get("volumes", []):
            assert set(volume) - {"name"} <= RESTRICTED_VOLUMES, (name, volume)
        for container in spec.get("initContainers", []) + spec["containers"]:
            context = container["securityContext"]
            where = f"{name}/{container['name']}"
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["capabilities"] == {"drop": ["ALL"]}, where
            assert context["readOnlyRootFilesystem"] is True, where
            assert not context.get("privileged"), where
            assert context.get("runAsUser", pod["runAsUser"]) > 0, where
            assert "resources" in container and container["resources"]["limits"]["memory"], where
            assert not any(port.get("hostPort") for port in container.get("ports", [])), where


@pytest.mark.parametrize(("overlay", "replicas"), OVERLAYS.items())
def test_hub_deployment_rolls_safely_and_stops_gracefully(overlay: str, replicas: int, tmp_path: Path) -> None:
    docs = render(overlay, tmp_path)
    hub = one(docs, "Deployment", "hub")
    assert hub["spec"]["replicas"] == replicas
    assert hub["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    spec = hub["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert container["args"] == ["serve"]
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}} in spec["volumes"]

    # terminationGracePeriodSeconds >= preStop + 2 x shutdown_timeout + a margin.
    config = generated(docs, "ConfigMap", "nacritan-config")["data"]
    shutdown = float(config.get("NACRITAN_SHUTDOWN_TIMEOUT", "10"))
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pre_stop >= 1
    assert spec["terminationGracePeriodSeconds"] >= pre_stop + 2 * shutdown + 1
    # Settings and secrets come from the generated ConfigMap and Secret (hashed names).
    assert container["envFrom"] == [{"configMapRef": {"name": generated(docs, "ConfigMap", "nacritan-config")["metadata"]["name"]}}]
    (db,) = [e for e in container["env"] if e["name"] == "NACRITAN_DB"]
    assert db["valueFrom"]["secretKeyRef"]["name"] == generated(docs, "Secret", "nacritan-secrets")["metadata"]["name"]
    assert config["NACRITAN_HOST"] == "0.0.0.0" and config["NACRITAN_PORT"] == "8080"

    service = one(docs, "Service", "hub")
    assert service["spec"]["ports"][0]["port"] == 8080
    pdb = one(docs, "PodDisruptionBudget", "hub")
    assert pdb["spec"]["selector"] == hub["spec"]["selector"]
    assert pdb["spec"]["maxUnavailable"] == 1


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_backup_cronjob_is_hourly_single_and_bounded(overlay: str, tmp_path: Path) -> None:
    docs = render(overlay, tmp_path)
    cron = one(docs, "CronJob", "backup")["spec"]
    minute, *rest = cron["schedule"].split()
    assert 0 <= int(minute) < 60 and rest == ["*", "*", "*", "*"]
    assert cron["timeZone"] == "Etc/UTC"
    assert cron["concurrencyPolicy"] == "Forbid"
    assert 0 < cron["startingDeadlineSeconds"] < 3600
    assert cron["successfulJobsHistoryLimit"] >= 1 and cron["failedJobsHistoryLimit"] >= 1
    job = cron["jobTemplate"]["spec"]
    assert 0 <= job["backoffLimit"] <= 6
    pod = job["template"]["spec"]
    hub = one(docs, "Deployment", "hub")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == hub["containers"][0]["image"]
    assert container["args"][:3] == ["backup", "--dir", "/backups"]
    assert pod["securityContext"] == hub["securityContext"]
    assert container["securityContext"] == hub["containers"][0]["securityContext"]
    claims = {v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v}
    assert claims == {"backups"}
    one(docs, "PersistentVolumeClaim", "backups")
    # $(VAR) in args expands only from variables the container defines.
    names = {e["name"] for e in container["env"]}
    for reference in re.findall(r"\$\((\w+)\)", " ".join(container["args"])):
        assert reference in names


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_edge_database_and_cache(overlay: str, tmp_path: Path) -> None:
    docs = render(overlay, tmp_path)
    edge = one(docs, "Service", "nginx")["spec"]
    assert edge["type"] == "LoadBalancer"
    assert {(p["port"], p["targetPort"]) for p in edge["ports"]} == {(80, "http"), (443, "https")}
    nginx = one(docs, "Deployment", "nginx")["spec"]["template"]["spec"]
    assert {c["name"] for c in nginx["containers"]} == {"nginx", "certbot"}
    claims = {v["persistentVolumeClaim"]["claimName"] for v in nginx["volumes"] if "persistentVolumeClaim" in v}
    assert claims == {"nginx-certs", "acme-webroot"}
    config = generated(docs, "ConfigMap", "nginx-config")
    assert config["data"]["nginx.conf"] == (ROOT / "k8s" / "nginx" / "nginx.conf").read_text()
    assert {"configMap": {"name": config["metadata"]["name"]}, "name": "config"} in nginx["volumes"]
    mariadb = one(docs, "StatefulSet", "mariadb")["spec"]
    assert mariadb["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    one(docs, "Deployment", "redis")
    assert generated(docs, "ConfigMap", "nacritan-config")["data"]["NACRITAN_REDIS"] == "redis://redis:6379/0"


def test_no_secret_value_is_committed(tmp_path: Path) -> None:
    docs = render("base", tmp_path)
    secret = generated(docs, "Secret", "nacritan-secrets")
    assert set(secret["data"]) == {"NACRITAN_DB", "MARIADB_PASSWORD", "MARIADB_ROOT_PASSWORD"}
    for value in secret["data"].values():
        assert "CHANGE_ME" in base64.b64decode(value).decode()
    ignored = subprocess.run(["git", "check-ignore", "-q", "k8s/overlays/prod/secrets.env"],
                             cwd=ROOT, check=False)
    assert ignored.returncode == 0, "filled secrets.env files must be git-ignored"


def test_dockerfile_lints_clean_and_follows_the_recipe() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    result = subprocess.run([tool("hadolint"), "--format", "json", str(ROOT / "Dockerfile")],
                            capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 0 and json.loads(result.stdout) == [], result.stdout + result.stderr

    images = re.findall(r"^ARG PYTHON_IMAGE=python:(\d+)\.(\d+)-slim", dockerfile, re.M)
    assert images and tuple(map(int, images[0])) >= (3, 12)
    assert len(re.findall(r"^FROM \$\{PYTHON_IMAGE\} AS \w+$", dockerfile, re.M)) == 2
    assert 'ENTRYPOINT ["python", "-m", "hub"]' in dockerfile
    assert 'CMD ["serve"]' in dockerfile
    assert re.search(r"^USER 10001(:10001)?$", dockerfile, re.M)
    assert "PYTHONDONTWRITEBYTECODE=1" in dockerfile and "PYTHONUNBUFFERED=1" in dockerfile
    assert "mariadb-client" in dockerfile
    recipe = (ROOT / "docker" / "build-venv.sh").read_text()
    assert "--require-hashes" in recipe and "--no-deps" in recipe
    # Every top-level package of the source tree (but tests and benchmarks) is copied into the image.
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests", "bench"}
    copied = set(re.findall(r"^COPY (\w+)/ \./\1/$", dockerfile, re.M))
    assert packages == copied


def nginx_locations(conf: str) -> dict[str, str]:
    """The body of each `location` block of nginx.conf, by its match expression."""
    return {match.group(1).strip(): match.group(2)
            for match in re.finditer(r"\n\s*location ([^{]+)\{(.*?)\n\s*\}", conf, re.S)}


def test_nginx_config_agrees_with_the_hub_and_its_limits(tmp_path: Path) -> None:
    conf = (ROOT / "k8s" / "nginx" / "nginx.conf").read_text()
    live = "\n".join(line.split("#", 1)[0] for line in conf.splitlines())  # comments dropped
    defaults = Settings()
    (size,) = re.findall(r"client_max_body_size (\d+)m;", live)
    assert int(size) * 1024 * 1024 == defaults.max_body_bytes
    locations = nginx_locations(live)
    assert {"= /ws", "= /view", "^~ /pc/", "= /gdc", "/"} <= set(locations)
    websocket = locations["= /ws"]
    assert "proxy_buffering off;" in websocket and "proxy_http_version 1.1;" in websocket
    assert "proxy_set_header Upgrade $http_upgrade;" in websocket
    assert "proxy_set_header Connection $connection_upgrade;" in websocket
    for directive in ("proxy_read_timeout", "proxy_send_timeout"):
        (seconds,) = re.findall(directive + r" (\d+)s;", websocket)
        assert int(seconds) >= 3 * defaults.ws_heartbeat
    for where, body in locations.items():
        if "proxy_pass" in body:
            for header in ("Host", "X-Real-IP", "X-Forwarded-For", "X-Forwarded-Proto"):
                assert f"proxy_set_header {header} " in body, (where, header)
        assert ("limit_req zone=uploads" in body) == (where in ("= /view", "^~ /pc/", "= /gdc")), where
    assert "limit_req_status 429;" in live
    assert "server_tokens off;" in live
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in live and "ssl_prefer_server_ciphers off;" in live
    assert re.search(r'add_header Strict-Transport-Security "max-age=\d+" always;', live)
    (log_format,) = re.findall(r"log_format nacritan escape=json(.*?);", live, re.S)
    for variable in ("$http_authorization", "$request ", "$request\"", "$request_uri", "$args",
                     "$query_string", "$arg_", "$http_cookie"):
        assert variable not in log_format
    (shutdown,) = re.findall(r"worker_shutdown_timeout (\d+)s;", live)
    nginx = one(render("prod", tmp_path), "Deployment", "nginx")["spec"]["template"]["spec"]
    assert nginx["terminationGracePeriodSeconds"] > int(shutdown)
