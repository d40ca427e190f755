"""docker-compose.yaml: a local cluster of two nodes behind nginx, on PostgreSQL and Redis.

No Docker engine runs in the suite: the file is parsed and checked against itself (services,
ports, environment, the files it mounts), nginx's configuration for the WebSocket upgrade,
Prometheus' with promtool, and the Compose Specification's JSON schema.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.conftest import ROOT
from whispr.config import DEV_JWT_SECRET, load_settings

COMPOSE = ROOT / "docker-compose.yaml"
NODES = ("node-1", "node-2")
#: Variables the operator must set: compose stops when one is missing (``${VAR:?...}``).
SECRETS = ("WHISPR_JWT_SECRET", "WHISPR_POSTGRES_PASSWORD", "WHISPR_GRPC_TOKENS")


def _compose() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text()))


def _services() -> dict[str, Any]:
    return dict(_compose()["services"])


def _mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> file of the repository, for each bind mount."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("./"):
            mounts[target] = ROOT / source
    return mounts


def test_the_cluster_has_its_services() -> None:
    services = _services()
    assert set(services) >= {"postgres", "redis", "proxy", *NODES}
    assert {name for name, s in services.items() if "profiles" not in s} == {
        "postgres",
        "redis",
        "proxy",
        *NODES,
    }


def test_nodes_listen_on_all_interfaces_with_explicit_secrets() -> None:
    services = _services()
    names = set()
    for node in NODES:
        env = services[node]["environment"]
        assert env["WHISPR_HOST"] == "0.0.0.0"
        assert env["WHISPR_DATABASE_URL"].startswith("postgresql://whispr:")
        assert "@postgres:5432/" in env["WHISPR_DATABASE_URL"]
        assert env["WHISPR_REDIS_URL"] == "redis://redis:6379/0"
        for variable in ("WHISPR_JWT_SECRET", "WHISPR_GRPC_TOKENS"):
            assert re.fullmatch(rf"\$\{{{variable}:\?[^}}]+\}}", env[variable]), env[variable]
        assert "WHISPR_ALLOW_DEV_SECRET" not in env
        for dependency in ("postgres", "redis"):
            assert services[node]["depends_on"][dependency]["condition"] == "service_healthy"
        names.add(env["WHISPR_NODE_NAME"])
    assert len(names) == len(NODES)
    assert DEV_JWT_SECRET not in COMPOSE.read_text()
    for variable in SECRETS:
        assert f"${{{variable}:?" in COMPOSE.read_text(), variable


def test_the_proxy_balances_both_nodes_and_passes_the_websocket_upgrade() -> None:
    proxy = _services()["proxy"]
    assert proxy["ports"] == ["127.0.0.1:8080:8080"]
    config = _mounts(proxy)["/etc/nginx/nginx.conf"].read_text()
    upstream = re.search(r"upstream whispr \{(.*?)\}", config, re.S)
    assert upstream
    servers = set(re.findall(r"server ([\w-]+):(\d+)", upstream[1]))
    port = _services()["node-1"]["environment"]["WHISPR_PORT"]
    assert servers == {(node, port) for node in NODES}
    assert "listen 8080;" in config
    assert "proxy_http_version 1.1;" in config
    assert "proxy_set_header Upgrade $http_upgrade;" in config
    assert "proxy_set_header Connection $connection_upgrade;" in config
    heartbeat_timeout_s = load_settings(env={}).heartbeat_timeout_s
    for timeout in re.findall(r"proxy_(?:read|send)_timeout (\d+)s;", config):
        assert int(timeout) > heartbeat_timeout_s
    assert len(re.findall(r"proxy_(?:read|send)_timeout", config)) == 2


def test_every_mounted_file_exists() -> None:
    for name, service in _services().items():
        for target, source in _mounts(service).items():
            assert source.exists(), (name, target, source)


def test_prometheus_scrapes_both_nodes_as_the_alerts_expect(promtool: str, tmp_path: Path) -> None:
    prometheus = _services()["prometheus"]
    directory = _mounts(prometheus)["/etc/prometheus"]
    config_file = directory / "prometheus.yml"
    result = subprocess.run(
        [promtool, "check", "config", str(config_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load(config_file.read_text())
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "whispr"
    (targets,) = job["static_configs"]
    assert set(targets["targets"]) == {f"{node}:4000" for node in NODES}


def test_grafana_loads_the_dashboard() -> None:
    grafana = _services()["grafana"]
    mounts = _mounts(grafana)
    provisioning = mounts["/etc/grafana/provisioning"]
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "whispr.yaml").read_text())[
        "providers"
    ]
    dashboards = [t for t in mounts if t.startswith(provider["options"]["path"] + "/")]
    assert [mounts[t].name for t in dashboards] == ["whispr-dashboard.json"]


def test_the_file_follows_the_compose_specification() -> None:
    """Validated against the Compose Specification's JSON schema (as vendored by
    check-jsonschema), so a misspelt key or a wrong type fails here, not on an operator's
    machine; a broken copy of the file is shown to fail the same check."""
    checker = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec"]
    ok = subprocess.run([*checker, str(COMPOSE)], capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stdout + ok.stderr


def test_the_schema_check_refuses_a_misspelt_key(tmp_path: Path) -> None:
    broken = _compose()
    broken["services"]["node-1"]["enviroment"] = broken["services"]["node-1"].pop("environment")
    path = tmp_path / "docker-compose.yaml"
    path.write_text(yaml.safe_dump(broken))
    checker = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec"]
    refused = subprocess.run([*checker, str(path)], capture_output=True, text=True, check=False)
    assert refused.returncode != 0
    assert "enviroment" in refused.stdout + refused.stderr
