"""docker-compose.yml, the Kubernetes manifests and the Dockerfile, checked against the code.

No Docker engine or cluster runs here, so these tests hold the files to what the code really does: every
command is a real entry point, every NHM_* variable is one the service's (or the dashboard's) settings read,
ports and probes line up, upstream targets name real services, images hold the code their commands run.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from nhm_dashboard.app import create_app
from nhm_dashboard.server import build_server
from nhm_dashboard.settings import DashboardSettings
from nhm_dashboard.settings import load as load_dashboard_settings
from nhm_platform.probe import check_http
from nhm_platform.settings import ServerSettings, env_names

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("registry", "scoring", "allocation", "remediation")
DASHBOARD = "dashboard"
PROBE = ["python", "-m", "nhm_platform.probe"]
# Containers listen on every interface (the dashboard's default is 127.0.0.1, unreachable from outside).
ALL_INTERFACES = "0.0.0.0"  # noqa: S104


@dataclasses.dataclass(frozen=True)
class EntryPoint:
    """What a container command runs: a service (or the dashboard), its settings class, serve or migrate."""

    name: str
    settings_class: type[Any]
    sub: str


def entry_point(command: list[str]) -> EntryPoint:
    """The entry point a container command runs; fails if it is not a real one."""
    assert command[:2] == ["python", "-m"], command
    module = command[2]
    assert re.fullmatch(r"nhm_[a-z]+", module), command
    importlib.import_module(f"{module}.__main__")  # the entry point exists
    if module == f"nhm_{DASHBOARD}":
        assert command[3:] in ([], ["serve"]), command
        return EntryPoint(DASHBOARD, DashboardSettings, "serve")
    spec = importlib.import_module(f"{module}.app").SPEC
    assert command[3:] in (["serve"], ["migrate"]), command
    return EntryPoint(spec.name, spec.settings_class, command[3])


def assert_reads(entry: EntryPoint, variables: list[str]) -> None:
    known = env_names(entry.settings_class, entry.name)
    unknown = [v for v in variables if v.startswith("NHM_") and v not in known]
    assert unknown == [], f"{entry.name} does not read {unknown}"


def effective_port(entry: EntryPoint, env: dict[str, str]) -> int:
    for name in (f"NHM_{entry.name.upper()}_PORT", "NHM_PORT"):
        if name in env:
            return int(env[name])
    return int(entry.settings_class.port)


def split_target(value: str) -> tuple[str, int]:
    host, _, port = value.removeprefix("dns:///").rpartition(":")
    return host, int(port)


@pytest.fixture(scope="module")
def dashboard_url() -> Iterator[str]:
    """A real dashboard on port 0 (its /healthz needs no service)."""
    settings = load_dashboard_settings(host="127.0.0.1", port=0, log_format="json")
    server = build_server(create_app(settings), settings)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def assert_health_path_is_served(dashboard_url: str, path: str) -> None:
    """The path a probe reads is the dashboard's health page: 200 there, and the probe tells it apart."""
    assert check_http(f"{dashboard_url}{path}")
    assert not check_http(f"{dashboard_url}/no-such-page")


# --- Dockerfile ---

@pytest.fixture(scope="module")
def stages() -> dict[str, str]:
    """Each Dockerfile stage's text, with the stages it is built FROM or copies from folded in (in file order);
    the last stage under the key "" too (the default target)."""
    folded: dict[str, str] = {}
    text = (ROOT / "Dockerfile").read_text()
    for block in re.split(r"^(?=FROM )", text, flags=re.M):
        match = re.match(r"FROM (\S+)(?: AS (\S+))?", block)
        if not match:
            continue
        base, name = match.group(1), match.group(2) or f"#{len(folded)}"
        body = folded.get(base, "") + block
        for source in re.findall(r"^COPY --from=(\S+)", block, re.M):
            body += folded[source]
        folded[name] = body
        folded[""] = body
    return folded


def test_dockerfile_has_a_services_image_and_a_dashboard_image_both_non_root(stages, dashboard_url):
    services, dashboard = stages["services"], stages[DASHBOARD]
    assert stages[""] == services  # `docker build .` gives the services image
    for package in ["sdk", "services/platform", *[f"services/{s}" for s in SERVICES]]:
        assert f"./{package}" in services
        assert (ROOT / package / "pyproject.toml").exists()
    assert "./services/dashboard" not in services
    for package in ["sdk", "services/platform", "services/dashboard"]:
        assert f"./{package}" in dashboard
    assert not any(f"./services/{s}" in dashboard for s in SERVICES)
    for stage in (services, dashboard):
        assert re.search(r"^USER 10001$", stage, re.M)
    assert f"CMD {json_list(PROBE)}" in services
    importlib.import_module("nhm_platform.probe")
    healthcheck = re.search(r"^HEALTHCHECK .* CMD (\[.*\])$", dashboard, re.M)
    assert healthcheck is not None
    probe = yaml.safe_load(healthcheck.group(1))
    assert probe[:3] == PROBE
    url = probe[3]
    assert url == f"http://127.0.0.1:{DashboardSettings.port}/healthz"
    assert_health_path_is_served(dashboard_url, url.removeprefix(f"http://127.0.0.1:{DashboardSettings.port}"))
    assert entry_point(yaml.safe_load(re.search(r"^CMD (\[.*\])$", dashboard, re.M).group(1))).name == DASHBOARD


def json_list(items: list[str]) -> str:
    return "[" + ", ".join(f'"{item}"' for item in items) + "]"


# --- docker-compose.yml ---

@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_runs_every_service_with_a_migration_step(compose):
    services = compose["services"]
    for name in SERVICES:
        entry = entry_point(services[name]["command"])
        assert (entry.name, entry.sub) == (name, "serve")
        entry = entry_point(services[f"{name}-migrate"]["command"])
        assert (entry.name, entry.sub) == (name, "migrate")
        assert services[name]["depends_on"][f"{name}-migrate"]["condition"] == "service_completed_successfully"
        assert services[name]["environment"]["NHM_MIGRATE_ON_START"] == "false"
    assert services["allocation"]["deploy"]["replicas"] >= 2


def test_compose_migrates_as_the_owner_and_serves_as_the_application_role(compose):
    """The services connect as the role row-level security holds (created by the init script, no superuser, no
    BYPASSRLS); only the migration steps connect as the owner."""
    services = compose["services"]
    role = ServerSettings.database_app_role
    for name in SERVICES:
        migrate, serve = services[f"{name}-migrate"]["environment"], services[name]["environment"]
        assert "NHM_DATABASE_URL" not in migrate
        assert migrate["NHM_MIGRATION_DATABASE_URL"].startswith("postgresql+psycopg://postgres:")
        assert serve["NHM_DATABASE_URL"].startswith(f"postgresql+psycopg://{role}:")
        assert "NHM_MIGRATION_DATABASE_URL" not in serve
    mount = next(v for v in services["postgres"]["volumes"] if "docker-entrypoint-initdb.d" in v)
    init = (ROOT / mount.split(":")[0]).read_text()
    assert re.search(rf"CREATE ROLE {role} LOGIN NOSUPERUSER NOBYPASSRLS", init), init
    assert "NHM_APP_DB_PASSWORD" in services["postgres"]["environment"]


def test_compose_variables_are_read_and_ports_line_up(compose):
    services = compose["services"]
    ports = {}
    for key, service in services.items():
        if "command" not in service:
            continue
        entry = entry_point(service["command"])
        env = {k: str(v) for k, v in service["environment"].items()}
        assert_reads(entry, list(env))
        if entry.sub == "serve":
            port = effective_port(entry, env)
            ports[key] = port
            for mapping in service.get("ports", []):
                assert mapping == f"{port}:{port}"
            if entry.name != DASHBOARD:
                assert service["healthcheck"]["test"] == ["CMD", *PROBE]
    for key, service in services.items():
        for variable, value in (service.get("environment") or {}).items():
            if variable.endswith("_TARGET"):
                host, port = split_target(str(value))
                assert host in services and ports[host] == port, (key, variable, value)


def test_compose_runs_the_dashboard_once_the_services_are_healthy(compose, dashboard_url):
    services = compose["services"]
    dashboard = services[DASHBOARD]
    entry = entry_point(dashboard["command"])
    assert entry.name == DASHBOARD
    env = {k: str(v) for k, v in dashboard["environment"].items()}
    port = effective_port(entry, env)
    assert env["NHM_DASHBOARD_HOST"] == ALL_INTERFACES
    assert env["NHM_DASHBOARD_SESSION_SECRET"].startswith("${NHM_DASHBOARD_SESSION_SECRET:?")
    # It talks to every service; allocation's replicas through dns:/// round robin.
    targets = {v: env[f"NHM_DASHBOARD_{v.upper()}_TARGET"] for v in SERVICES}
    assert {name: split_target(value)[0] for name, value in targets.items()} == {s: s for s in SERVICES}
    assert targets["allocation"].startswith("dns:///")
    assert dashboard["depends_on"] == {s: {"condition": "service_healthy"} for s in SERVICES}
    probe = dashboard["healthcheck"]["test"]
    assert probe[:4] == ["CMD", *PROBE]
    prefix = f"http://127.0.0.1:{port}"
    assert probe[4].startswith(f"{prefix}/")
    assert_health_path_is_served(dashboard_url, probe[4].removeprefix(prefix))


def test_compose_images_hold_the_code_their_commands_run(compose, stages):
    images: dict[str, str] = {}
    for key, service in compose["services"].items():
        if "command" not in service:
            continue
        entry = entry_point(service["command"])
        stage = stages[service["build"]["target"]]
        assert f"./services/{entry.name}" in stage, (key, service["build"])
        assert images.setdefault(service["build"]["target"], service["image"]) == service["image"]


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


def pod_of(deployment: dict[str, Any]) -> dict[str, Any]:
    pod: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return pod


def container_env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: str(e.get("value", "")) for e in container["env"]}


def assert_targets_name_grpc_ports(env: dict[str, str], deployments: dict[str, Any]) -> None:
    for variable, value in env.items():
        if variable.endswith("_TARGET"):
            host, target_port = split_target(value)
            assert host in deployments, (variable, value)
            upstream = pod_of(deployments[host])["containers"][0]
            assert {"name": "grpc", "containerPort": target_port} in upstream["ports"], (variable, value)


def test_every_service_is_a_deployment_with_grpc_probes(manifests):
    deployments = kind(manifests, "Deployment")
    config = kind(manifests, "ConfigMap")["nhm-config"]["data"]
    assert set(deployments) == {*SERVICES, DASHBOARD}
    for name in SERVICES:
        pod = pod_of(deployments[name])
        assert pod["securityContext"]["runAsNonRoot"] is True
        (container,) = pod["containers"]
        entry = entry_point(container["command"])
        assert (entry.name, entry.sub) == (name, "serve")
        (init,) = pod["initContainers"]
        assert entry_point(init["command"]) == dataclasses.replace(entry, sub="migrate")
        env = container_env(container)
        assert_reads(entry, [*env, *config])
        port = effective_port(entry, {**config, **env})
        assert {"name": "grpc", "containerPort": port} in container["ports"]
        assert container["readinessProbe"]["grpc"]["port"] == port
        assert container["livenessProbe"]["grpc"]["port"] == port
        assert container["resources"]["requests"]
        assert_targets_name_grpc_ports(env, deployments)


def test_deployments_migrate_as_the_owner_and_serve_as_the_application_role(manifests):
    deployments = kind(manifests, "Deployment")
    example = yaml.safe_load((ROOT / "deploy" / "k8s" / "secrets.example.yaml").read_text())["stringData"]
    for name in SERVICES:
        spec = deployments[name]["spec"]["template"]["spec"]
        (init,), (container,) = spec["initContainers"], spec["containers"]
        keys = {e["name"]: e["valueFrom"]["secretKeyRef"]["key"] for c in (init, container) for e in c["env"]
                if "valueFrom" in e and e["name"].endswith("DATABASE_URL")}
        assert {e["name"] for e in init["env"]} >= {"NHM_MIGRATION_DATABASE_URL"}
        assert "NHM_DATABASE_URL" not in {e["name"] for e in init["env"]}
        assert keys == {"NHM_MIGRATION_DATABASE_URL": f"{name}-migration-database-url",
                        "NHM_DATABASE_URL": f"{name}-database-url"}
        assert example[f"{name}-database-url"].startswith(f"postgresql+psycopg://{ServerSettings.database_app_role}:")
        assert not example[f"{name}-migration-database-url"].startswith(
            f"postgresql+psycopg://{ServerSettings.database_app_role}:")


def test_the_dashboard_is_a_deployment_with_http_probes_and_its_secret(manifests, dashboard_url):
    deployments = kind(manifests, "Deployment")
    deployment = deployments[DASHBOARD]
    assert deployment["spec"]["replicas"] == 1  # sessions live in its memory
    pod = pod_of(deployment)
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    entry = entry_point(container["command"])
    assert entry.name == DASHBOARD
    assert "envFrom" not in container  # the shared ConfigMap holds server settings the dashboard does not read
    env = container_env(container)
    assert_reads(entry, list(env))
    assert env["NHM_DASHBOARD_HOST"] == ALL_INTERFACES
    port = effective_port(entry, env)
    assert {"name": "http", "containerPort": port} in container["ports"]
    for probe in (container["readinessProbe"], container["livenessProbe"]):
        assert probe["httpGet"]["port"] == port
        assert_health_path_is_served(dashboard_url, probe["httpGet"]["path"])
    assert container["resources"]["requests"]
    secret = next(e for e in container["env"] if e["name"] == "NHM_DASHBOARD_SESSION_SECRET")
    assert secret["valueFrom"]["secretKeyRef"]["name"] == "nhm-secrets"
    targets = {s: env[f"NHM_DASHBOARD_{s.upper()}_TARGET"] for s in SERVICES}
    assert {name: split_target(value)[0] for name, value in targets.items()} == {s: s for s in SERVICES}
    assert targets["allocation"].startswith("dns:///")
    assert_targets_name_grpc_ports(env, deployments)


def test_services_select_their_deployments_and_allocation_is_headless_with_a_budget(manifests):
    deployments, services = kind(manifests, "Deployment"), kind(manifests, "Service")
    assert set(services) == set(deployments)
    for name, service in services.items():
        labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items()
        container_ports = {p["name"] for p in pod_of(deployments[name])["containers"][0]["ports"]}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in container_ports, (name, port)
    assert services["allocation"]["spec"]["clusterIP"] == "None"
    assert deployments["allocation"]["spec"]["replicas"] >= 2
    budget = kind(manifests, "PodDisruptionBudget")["allocation"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= \
        deployments["allocation"]["spec"]["template"]["metadata"]["labels"].items()


def test_secrets_example_has_every_key_the_deployments_use(manifests):
    example = yaml.safe_load((ROOT / "deploy" / "k8s" / "secrets.example.yaml").read_text())
    used = {e["valueFrom"]["secretKeyRef"]["key"]
            for d in kind(manifests, "Deployment").values()
            for c in pod_of(d)["containers"] + pod_of(d).get("initContainers", [])
            for e in c["env"] if "valueFrom" in e}
    assert "dashboard-session-secret" in used
    assert used <= set(example["stringData"])


def test_cluster_images_are_the_compose_images_for_the_same_code(manifests, compose):
    compose_images = {entry_point(s["command"]).name: s["image"]
                      for s in compose["services"].values() if "command" in s}
    for deployment in kind(manifests, "Deployment").values():
        pod = pod_of(deployment)
        for container in pod["containers"] + pod.get("initContainers", []):
            assert container["image"] == compose_images[entry_point(container["command"]).name], container["name"]
