"""The Kubernetes manifests (k8s/) validate offline and agree with each other and the docs."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.deploy.conftest import ROOT
from tests.deploy.manifests import build_kustomization, kustomize_command, load_resources

K8S = ROOT / "k8s"
MONITORING = K8S / "monitoring"
OPERATIONS = ROOT / "docs" / "operations.md"
SERVICEMONITOR_SCHEMA = Path(__file__).with_name("servicemonitor.schema.json")

#: The Kubernetes version the manifests are checked against (kubernetes-validate's schemas).
KUBERNETES_VERSION = "1.32"
#: Custom resources, which kubernetes-validate has no schema for: each is checked otherwise.
CUSTOM_KINDS = frozenset({"ServiceMonitor"})


def _all() -> list[tuple[Path, dict[str, Any]]]:
    files = sorted(K8S.glob("*.yaml")) + sorted(MONITORING.glob("*.yaml"))
    return [
        (path, resource)
        for path in files
        if path.name != "kustomization.yaml"
        for resource in load_resources(path)
    ]


def _one(kind: str, name: str) -> dict[str, Any]:
    found = [r for _, r in _all() if r["kind"] == kind and r["metadata"]["name"] == name]
    assert len(found) == 1, (kind, name, len(found))
    return found[0]


def _pod_spec() -> dict[str, Any]:
    return dict(_one("Deployment", "whispr")["spec"]["template"]["spec"])


def _container_ports() -> dict[str, int]:
    (container,) = _pod_spec()["containers"]
    return {port["name"]: port["containerPort"] for port in container["ports"]}


def _pod_labels() -> dict[str, str]:
    return dict(_one("Deployment", "whispr")["spec"]["template"]["metadata"]["labels"])


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


@pytest.mark.parametrize(
    ("path", "resource"),
    [(p, r) for p, r in _all() if r["kind"] not in CUSTOM_KINDS],
    ids=lambda value: value.name if isinstance(value, Path) else value["kind"],
)
def test_each_resource_validates_against_the_kubernetes_schemas(
    path: Path, resource: dict[str, Any]
) -> None:
    try:
        kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        where = ".".join(str(part) for part in exc.path)
        pytest.fail(f"{path.name} {resource['kind']}: {where}: {exc.message}")


def test_kubernetes_validate_refuses_a_misspelt_field() -> None:
    """Strict mode is on: a field the schema does not know fails (the check can fail)."""
    service = json.loads(json.dumps(_one("Service", "whispr")))
    service["spec"]["selectr"] = service["spec"].pop("selector")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(service, KUBERNETES_VERSION, strict=True)


def test_the_servicemonitor_validates_and_scrapes_the_whispr_service() -> None:
    schema = json.loads(SERVICEMONITOR_SCHEMA.read_text())
    monitor = _one("ServiceMonitor", "whispr")
    jsonschema.validate(monitor, schema)
    broken = json.loads(json.dumps(monitor))
    broken["spec"]["endpoints"][0]["intervall"] = "15s"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)
    services = [
        r
        for _, r in _all()
        if r["kind"] == "Service"
        and _selects(monitor["spec"]["selector"]["matchLabels"], r["metadata"]["labels"])
    ]
    # One Service, named whispr: the job label the alert rules expect (job="whispr").
    assert [s["metadata"]["name"] for s in services] == ["whispr"]
    assert "jobLabel" not in monitor["spec"]
    ports = {port["name"] for port in services[0]["spec"]["ports"]}
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["port"] in ports
        assert endpoint["path"] == "/metrics"


def test_the_kustomization_lists_every_manifest_and_overrides_the_image() -> None:
    for directory in (K8S, MONITORING):
        kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
        listed = set(kustomization["resources"])
        present = {p.name for p in directory.glob("*.yaml")} - {"kustomization.yaml"}
        assert listed == present, (directory.name, listed ^ present)
        for name in listed:
            assert load_resources(directory / name), name
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    (container,) = _pod_spec()["containers"]
    image_name = container["image"].split(":")[0]
    assert [image["name"] for image in kustomization["images"]] == [image_name]


def test_the_kustomization_builds_offline(tmp_path: Path) -> None:
    command = kustomize_command()
    if command is None:
        pytest.skip("neither kustomize nor kubectl is installed: the listing test covers it")
    built = build_kustomization(command, K8S)
    assert {r["kind"] for r in built} >= {"Deployment", "Service", "Ingress", "NetworkPolicy"}
    for resource in built:
        assert resource["kind"] == "Namespace" or resource["metadata"]["namespace"] == "whispr"
        kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)
    assert [r["kind"] for r in build_kustomization(command, MONITORING)] == ["ServiceMonitor"]
    # The image override takes effect: a copy with another image builds with it.
    copy = tmp_path / "k8s"
    copy.mkdir()
    for path in K8S.glob("*.yaml"):
        (copy / path.name).write_text(path.read_text())
    kustomization = yaml.safe_load((copy / "kustomization.yaml").read_text())
    kustomization["images"] = [
        {"name": "whispr", "newName": "registry.example.com/whispr", "newTag": "9.9.9"}
    ]
    (copy / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    (deployment,) = [r for r in build_kustomization(command, copy) if r["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "registry.example.com/whispr:9.9.9"


def _secret_keys_in(command: str) -> set[str]:
    return set(re.findall(r"--from-literal=([a-z0-9-]+)=", command))


def _documented_secret_commands() -> list[str]:
    """Each ``kubectl create secret generic whispr-secrets`` command of the docs and manifests."""
    texts = [OPERATIONS.read_text(), (K8S / "deployment.yaml").read_text()]
    commands = []
    for text in texts:
        # The command and its continuation lines (ending in a backslash), comment marks off.
        lines = [re.sub(r"^\s*#\s?", "", line) for line in text.splitlines()]
        for n, line in enumerate(lines):
            if "create secret generic whispr-secrets" in line:
                end = n
                while lines[end].rstrip().endswith("\\"):
                    end += 1
                commands.append("\n".join(lines[n : end + 1]))
    return commands


def test_the_documented_secret_command_matches_the_deployment() -> None:
    (container,) = _pod_spec()["containers"]
    required, optional = set(), set()
    for variable in container["env"]:
        ref = variable.get("valueFrom", {}).get("secretKeyRef")
        if ref and ref["name"] == "whispr-secrets":
            (optional if ref.get("optional") else required).add(ref["key"])
    assert "grpc-tokens" in required
    commands = _documented_secret_commands()
    assert len(commands) == 2, commands
    for command in commands:
        keys = _secret_keys_in(command)
        assert keys >= required, (command, required - keys)
        assert keys <= required | optional, (command, keys - required - optional)


def test_no_service_account_token_is_mounted() -> None:
    spec = _pod_spec()
    assert spec["automountServiceAccountToken"] is False
    account = _one("ServiceAccount", spec["serviceAccountName"])
    assert account["automountServiceAccountToken"] is False


def test_the_headless_service_lists_the_nodes_grpc_port() -> None:
    service = _one("Service", "whispr-grpc")
    assert service["spec"]["clusterIP"] == "None"
    assert _selects(service["spec"]["selector"], _pod_labels())
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] in _container_ports()
    assert _container_ports()[port["targetPort"]] == port["port"] == 50051


def test_the_ingress_keeps_websockets_open_longer_than_the_heartbeat_timeout() -> None:
    ingress = _one("Ingress", "whispr")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    annotations = ingress["metadata"]["annotations"]
    config = _one("ConfigMap", "whispr-config")["data"]
    heartbeat_timeout_s = int(config["WHISPR_HEARTBEAT_TIMEOUT_S"])
    for name in ("proxy-read-timeout", "proxy-send-timeout"):
        assert int(annotations[f"nginx.ingress.kubernetes.io/{name}"]) > heartbeat_timeout_s
    assert annotations["nginx.ingress.kubernetes.io/proxy-http-version"] == "1.1"
    (rule,) = ingress["spec"]["rules"]
    socket, api, longpoll, web = rule["http"]["paths"]
    assert "/socket/websocket".startswith(socket["path"])
    assert "/api/v1/conversations".startswith(api["path"])
    # The longest prefix wins: long-poll and the web page go to the HTTP port.
    assert longpoll["path"] == "/socket/longpoll"
    assert "/app/index.html".startswith(web["path"])
    for path, port in ((socket, "http"), (api, "api"), (longpoll, "api"), (web, "api")):
        backend = path["backend"]["service"]
        service = _one("Service", backend["name"])
        assert backend["port"]["name"] == port
        assert port in {port["name"] for port in service["spec"]["ports"]}


def test_the_network_policy_covers_the_nodes_and_their_ports() -> None:
    policy = _one("NetworkPolicy", "whispr")
    assert _selects(policy["spec"]["podSelector"]["matchLabels"], _pod_labels())
    opened = {port["port"] for rule in policy["spec"]["ingress"] for port in rule["ports"]}
    assert opened == set(_container_ports())
