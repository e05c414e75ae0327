"""docker-compose.yml, the Kubernetes manifests and the Dockerfile, checked against the code.

No Docker engine or cluster runs here, so these tests hold the files to what the code really does: every
command is a real entry point, every NHM_* variable is one the service's settings read, ports and probes
line up, upstream targets name real services.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from nhm_platform.service import ServiceSpec
from nhm_platform.settings import env_names

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("registry", "scoring", "allocation", "remediation")


def spec_for_command(command: list[str]) -> tuple[ServiceSpec[Any], str]:
    """The service a container command runs, and its sub-command; fails if it is not a real entry point."""
    assert command[:2] == ["python", "-m"], command
    module = command[2]
    assert re.fullmatch(r"nhm_[a-z]+", module), command
    importlib.import_module(f"{module}.__main__")  # the entry point exists
    spec = importlib.import_module(f"{module}.app").SPEC
    assert command[3:] in (["serve"], ["migrate"]), command
    return spec, command[3]


def assert_reads(spec: ServiceSpec[Any], variables: list[str]) -> None:
    known = env_names(spec.settings_class, spec.name)
    unknown = [v for v in variables if v.startswith("NHM_") and v not in known]
    assert unknown == [], f"{spec.name} does not read {unknown}"


def effective_port(spec: ServiceSpec[Any], env: dict[str, str]) -> int:
    for name in (f"NHM_{spec.name.upper()}_PORT", "NHM_PORT"):
        if name in env:
            return int(env[name])
    return int(spec.settings_class.port)


# --- docker-compose.yml ---

@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_runs_every_service_with_a_migration_step(compose):
    services = compose["services"]
    for name in SERVICES:
        spec, sub = spec_for_command(services[name]["command"])
        assert (spec.name, sub) == (name, "serve")
        spec, sub = spec_for_command(services[f"{name}-migrate"]["command"])
        assert (spec.name, sub) == (name, "migrate")
        assert services[name]["depends_on"][f"{name}-migrate"]["condition"] == "service_completed_successfully"
        assert services[name]["environment"]["NHM_MIGRATE_ON_START"] == "false"
    assert services["allocation"]["deploy"]["replicas"] >= 2


def test_compose_variables_are_read_and_ports_line_up(compose):
    services = compose["services"]
    ports = {}
    for key, service in services.items():
        if "command" not in service:
            continue
        spec, sub = spec_for_command(service["command"])
        env = {k: str(v) for k, v in service["environment"].items()}
        assert_reads(spec, list(env))
        if sub == "serve":
            port = effective_port(spec, env)
            ports[key] = port
            for mapping in service.get("ports", []):
                assert mapping == f"{port}:{port}"
            assert service["healthcheck"]["test"] == ["CMD", "python", "-m", "nhm_platform.probe"]
    for key, service in services.items():
        for variable, value in (service.get("environment") or {}).items():
            if variable.endswith("_TARGET"):
                host, _, port = str(value).removeprefix("dns:///").rpartition(":")
                assert host in services and ports[host] == int(port), (key, variable, value)


def test_compose_dependencies_exist(compose):
    services = compose["services"]
    for service in services.values():
        for dependency in service.get("depends_on", {}):
            assert dependency in services


# --- Kubernetes ---

@pytest.fixture(scope="module")
def manifests() -> list[dict[str, Any]]:
    folder = ROOT / "deploy" / "k8s"
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    docs = []
    for resource in kustomization["resources"]:
        docs.extend(d for d in yaml.safe_load_all((folder / resource).read_text()) if d)
    return docs


def kind(manifests, wanted):
    return {d["metadata"]["name"]: d for d in manifests if d["kind"] == wanted}


def test_every_service_is_a_deployment_with_grpc_probes(manifests):
    deployments = kind(manifests, "Deployment")
    config = kind(manifests, "ConfigMap")["nhm-config"]["data"]
    assert set(deployments) == set(SERVICES)
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        (container,) = pod["containers"]
        spec, sub = spec_for_command(container["command"])
        assert (spec.name, sub) == (name, "serve")
        (init,) = pod["initContainers"]
        assert spec_for_command(init["command"]) == (spec, "migrate")
        env = {e["name"]: str(e.get("value", "")) for e in container["env"]}
        assert_reads(spec, [*env, *config])
        port = effective_port(spec, {**config, **env})
        assert {"name": "grpc", "containerPort": port} in container["ports"]
        assert container["readinessProbe"]["grpc"]["port"] == port
        assert container["livenessProbe"]["grpc"]["port"] == port
        assert container["resources"]["requests"]
        for variable, value in env.items():
            if variable.endswith("_TARGET"):
                host, _, target_port = value.removeprefix("dns:///").rpartition(":")
                assert host in deployments
                upstream = deployments[host]["spec"]["template"]["spec"]["containers"][0]
                assert {"name": "grpc", "containerPort": int(target_port)} in upstream["ports"]


def test_services_select_their_deployments_and_allocation_is_headless_with_a_budget(manifests):
    deployments, services = kind(manifests, "Deployment"), kind(manifests, "Service")
    for name, service in services.items():
        labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items()
    assert services["allocation"]["spec"]["clusterIP"] == "None"
    assert deployments["allocation"]["spec"]["replicas"] >= 2
    budget = kind(manifests, "PodDisruptionBudget")["allocation"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= \
        deployments["allocation"]["spec"]["template"]["metadata"]["labels"].items()


def test_secrets_example_has_every_key_the_deployments_use(manifests):
    example = yaml.safe_load((ROOT / "deploy" / "k8s" / "secrets.example.yaml").read_text())
    used = {e["valueFrom"]["secretKeyRef"]["key"]
            for d in kind(manifests, "Deployment").values()
            for c in d["spec"]["template"]["spec"]["containers"] + d["spec"]["template"]["spec"]["initContainers"]
            for e in c["env"] if "valueFrom" in e}
    assert used <= set(example["stringData"])


# --- Dockerfile ---

def test_dockerfile_installs_every_package_and_runs_as_non_root():
    text = (ROOT / "Dockerfile").read_text()
    for package in ["sdk", "services/platform", *[f"services/{s}" for s in SERVICES]]:
        assert f"./{package}" in text
        assert (ROOT / package / "pyproject.toml").exists()
    assert re.search(r"^USER 10001$", text, re.M)
    assert 'CMD ["python", "-m", "nhm_platform.probe"]' in text
    importlib.import_module("nhm_platform.probe")
