"""The deployment files agree with the code: variables, commands, ports, topics, signals.

No Docker engine is needed: the compose and Kubernetes files are read as YAML, the
Dockerfile as instructions, and the image's entrypoint is run with this Python.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy.engine import make_url

from consumer import app as app_command
from consumer.cli import build_parser
from consumer.history import command as history_command
from consumer.local.kafka_process import free_ports
from consumer.settings import SECTIONS, load_settings, settings_table, settings_values

REPO = Path(__file__).resolve().parents[1]
DOCKER = REPO / "docker"
K8S = DOCKER / "k8s"
OUR_IMAGE = "order-push-consumer"
SETTINGS = {name for name, _default, _description in settings_table()}


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    # As Docker does: comment lines go first (even inside a continuation), then "\" joins.
    source = (DOCKER / "Dockerfile").read_text(encoding="utf-8").splitlines()
    text = "\n".join(line for line in source if not line.lstrip().startswith("#"))
    lines = [line.strip() for line in text.replace("\\\n", " ").splitlines()]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines if line]


def runtime_stage() -> list[tuple[str, str]]:
    steps = dockerfile()
    last_from = max(i for i, (op, _) in enumerate(steps) if op == "FROM")
    return steps[last_from:]


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for op, args in runtime_stage():
        if op == "ENV":
            env.update(pair.split("=", 1) for pair in shlex.split(args))
    return env


def exec_form(instruction: str) -> list[str]:
    (args,) = [a for op, a in runtime_stage() if op == instruction]
    if instruction == "HEALTHCHECK":
        args = args[args.index("CMD") + len("CMD") :].strip()
    parsed = json.loads(args)
    assert isinstance(parsed, list), f"{instruction} must use the exec (JSON) form"
    return parsed


def compose() -> dict[str, Any]:
    return load(DOCKER / "compose.yaml")  # type: ignore[no-any-return]


def our_services() -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in compose()["services"].items()
        if service.get("image", "").startswith(OUR_IMAGE)
    }


def parses(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert hasattr(args, "func"), f"{argv} is not a complete command"


def command_of(argv: list[str]) -> Callable[..., int]:
    """The function the CLI runs for ``argv``."""
    func: Callable[..., int] = build_parser().parse_args(argv).func
    return func


# What `history serve` reads: its own section, and the process's ports, grace and logs.
HISTORY_API_SETTINGS = {name for name in SETTINGS if name.startswith("HISTORY_")} | {
    "HEALTH_PORT",
    "SHUTDOWN_GRACE_S",
    "LOG_LEVEL",
    "LOG_FORMAT",
}


# ---- compose


def test_compose_sets_only_known_variables_and_valid_commands() -> None:
    services = our_services()
    assert set(services) == {"imshop", "consumer", "history", "producer"}
    for name, service in services.items():
        unknown = set(service.get("environment", {})) - SETTINGS
        assert not unknown, f"compose service {name} sets unknown variables {unknown}"
        parses(service.get("command", exec_form("CMD")))


def test_compose_publishes_ports_on_this_machine_only() -> None:
    """The demo's token is in the repository and the simulator's /_sim endpoints
    answer anyone: none of it may be reachable from the machine's network."""
    published = {
        name: port
        for name, service in compose()["services"].items()
        for port in service.get("ports", [])
    }
    assert published, "compose publishes the simulator, the service and the history API"
    wide = {name: port for name, port in published.items() if not port.startswith("127.0.0.1:")}
    assert not wide, f"published on every interface: {wide}"


def test_compose_settings_load_and_point_at_the_other_services(
    settings_from: Callable[[dict[str, str]], Any],
) -> None:
    services = compose()["services"]
    settings = settings_from({k: str(v) for k, v in services["consumer"]["environment"].items()})
    sim = build_parser().parse_args(services["imshop"]["command"])
    assert settings.imshop.url == f"http://imshop:{sim.port}/push"
    assert settings.imshop.api_key.get_secret_value() == sim.api_key
    assert f"127.0.0.1:{sim.port}:{sim.port}" in services["imshop"]["ports"]
    topics_script = services["topics"]["command"][0]
    created = set(re.search(r"for topic in ([^;]+);", topics_script)[1].split())  # type: ignore[index]
    assert {*settings.kafka.topics, settings.kafka.dlq_topic} <= created
    producer = build_parser().parse_args(services["producer"]["command"])
    assert producer.bootstrap_servers == settings.kafka.bootstrap_servers
    assert settings.service.shutdown_grace_s < _seconds(services["consumer"]["stop_grace_period"])
    assert (
        f"127.0.0.1:{settings.service.health_port}:{settings.service.health_port}"
        in (services["consumer"]["ports"])
    )


def test_compose_history_is_served_apart_from_the_consumer_from_its_postgres(
    settings_from: Callable[[dict[str, str]], Any],
) -> None:
    services = compose()["services"]
    consumer, history, postgres = services["consumer"], services["history"], services["postgres"]
    writes = settings_from({k: str(v) for k, v in consumer["environment"].items()}).history
    serves = settings_from({k: str(v) for k, v in history["environment"].items()})
    url = make_url(serves.history.database_url.get_secret_value())
    env = postgres["environment"]
    assert (url.host, url.port or 5432) == ("postgres", 5432)
    assert (url.username, url.password, url.database) == (
        env["POSTGRES_USER"],
        env["POSTGRES_PASSWORD"],
        env["POSTGRES_DB"],
    )
    assert writes.database_url == serves.history.database_url, "one history, two processes"
    assert "history-data" in compose()["volumes"]
    for service in (consumer, history):
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
    # The consumer writes and serves nothing; the history service serves, with a token.
    assert writes.api_in_run is False
    assert "HISTORY_AUTH_TOKEN" not in consumer["environment"]
    assert not [p for p in consumer["ports"] if str(writes.port) in p.split(":")]
    assert command_of(history["command"]) is history_command._serve
    assert serves.history.auth_token.get_secret_value()
    assert f"127.0.0.1:{serves.history.port}:{serves.history.port}" in history["ports"]
    assert not set(history["environment"]) - HISTORY_API_SETTINGS, "no Kafka, provider, mappings"
    assert serves.service.shutdown_grace_s < _seconds(history["stop_grace_period"])


def test_compose_kafka_has_what_the_official_image_needs_in_kraft_mode() -> None:
    kafka = compose()["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = kafka["environment"]
    assert "controller" in env["KAFKA_PROCESS_ROLES"]
    # The image refuses to start in KRaft mode without a CLUSTER_ID (a base64 UUID).
    cluster_id = env["CLUSTER_ID"]
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16
    assert "INTERNAL://kafka:19092" in env["KAFKA_ADVERTISED_LISTENERS"]


# ---- Kubernetes

CONSUMER = "order-push-consumer"
HISTORY_API = "order-push-history"


def k8s_objects() -> dict[tuple[str, str], dict[str, Any]]:
    """Every object ``kubectl apply -k docker/k8s`` makes, by (kind, name)."""
    objects = {}
    for resource in load(K8S / "kustomization.yaml")["resources"]:
        for doc in yaml.safe_load_all((K8S / resource).read_text(encoding="utf-8")):
            objects[(doc["kind"], doc["metadata"]["name"])] = doc
    return objects


def k8s_deployment(name: str = CONSUMER) -> dict[str, Any]:
    return k8s_objects()[("Deployment", name)]


def pod_spec(deployment: dict[str, Any]) -> dict[str, Any]:
    return deployment["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def container_of(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = pod_spec(deployment)["containers"]
    return container  # type: ignore[no-any-return]


def k8s_secrets() -> dict[str, dict[str, str]]:
    """Each placeholder Secret in secret.yaml: its name and its keys' placeholder values."""
    documents = yaml.safe_load_all((K8S / "secret.yaml").read_text(encoding="utf-8"))
    return {doc["metadata"]["name"]: doc["stringData"] for doc in documents}


def config_maps_of(deployment: dict[str, Any]) -> list[dict[str, str]]:
    objects = k8s_objects()
    return [
        objects[("ConfigMap", source["configMapRef"]["name"])]["data"]
        for source in container_of(deployment).get("envFrom", [])
    ]


def pod_env(deployment: dict[str, Any]) -> dict[str, str]:
    """The container's environment: its ConfigMaps, then its own env (Secrets' placeholders)."""
    env: dict[str, str] = {}
    for data in config_maps_of(deployment):
        env.update(data)
    secrets = k8s_secrets()
    for item in container_of(deployment).get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = secrets[ref["name"]][ref["key"]]
    return env


def named_ports(deployment: dict[str, Any]) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in container_of(deployment)["ports"]}


def file_settings(settings: Any) -> dict[str, PurePosixPath]:
    """Every setting whose value is a file or directory in the container, by variable."""
    names = (name for name, _text in settings_values(settings))
    values = (
        getattr(getattr(settings, section), field)
        for section, model in SECTIONS.items()
        for field in model.model_fields
    )
    return {
        name: PurePosixPath(value)
        for name, value in zip(names, values, strict=True)
        if isinstance(value, Path)
    }


@pytest.mark.parametrize("name", [CONSUMER, HISTORY_API])
def test_k8s_config_uses_known_variables_that_load(
    settings_from: Callable[[dict[str, str]], Any], name: str
) -> None:
    deployment = k8s_deployment(name)
    env = pod_env(deployment)
    assert not set(env) - SETTINGS
    maps = config_maps_of(deployment)
    overlap = set().union(*(set(a) & set(b) for a in maps for b in maps if a is not b))
    assert not overlap, f"set twice, the last ConfigMap silently wins: {overlap}"
    settings = settings_from(env)
    assert settings.history.database_url.get_secret_value().startswith("postgresql://")
    parses(container_of(deployment)["args"])


def test_k8s_consumer_writes_the_history_and_serves_none_of_it(
    settings_from: Callable[[dict[str, str]], Any],
) -> None:
    deployment = k8s_deployment(CONSUMER)
    settings = settings_from(pod_env(deployment))
    assert settings.history.api_in_run is False
    assert "HISTORY_AUTH_TOKEN" not in pod_env(deployment), "a secret it does not need"
    assert set(named_ports(deployment)) == {"http"}
    assert settings.mappings.dir == Path("/app/mappings")
    assert command_of(container_of(deployment)["args"]) is app_command._run


def test_k8s_consumer_deployment_probes_grace_and_one_replica() -> None:
    deployment = k8s_deployment(CONSUMER)
    spec = deployment["spec"]
    pod = pod_spec(deployment)
    container = container_of(deployment)
    env = pod_env(deployment)
    assert spec["replicas"] == 1, "the provider budget is per process: one replica per account"
    assert spec["strategy"]["type"] == "Recreate", "a rolling update would run two at once"
    assert pod["terminationGracePeriodSeconds"] > float(env["SHUTDOWN_GRACE_S"])
    assert named_ports(deployment)["http"] == int(env["HEALTH_PORT"])
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["mappings"] == env["MAPPINGS_DIR"]
    assert not any("subPath" in m for m in container["volumeMounts"]), "subPath stops reloads"
    assert {"requests", "limits"} <= set(container["resources"])
    assert pod["securityContext"]["runAsUser"] == int(_image_user())


def test_k8s_history_api_is_a_deployment_of_its_own_that_the_service_selects(
    settings_from: Callable[[dict[str, str]], Any],
) -> None:
    objects = k8s_objects()
    api, consumer = k8s_deployment(HISTORY_API), k8s_deployment(CONSUMER)
    service = objects[("Service", HISTORY_API)]
    selector = service["spec"]["selector"]

    def selects(deployment: dict[str, Any]) -> bool:
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        return selector.items() <= labels.items()

    assert selects(api), "the Service must reach the history API's pods"
    assert not selects(consumer), "the consumer's readiness follows Kafka"
    for deployment in (api, consumer):
        matched = deployment["spec"]["selector"]["matchLabels"]
        assert matched.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    (port,) = service["spec"]["ports"]
    settings = settings_from(pod_env(api))
    assert named_ports(api)[port["targetPort"]] == settings.history.port
    assert command_of(container_of(api)["args"]) is history_command._serve
    assert settings.history.auth_token.get_secret_value(), "history serve refuses to start without"
    spec = api["spec"]
    assert spec["replicas"] >= 2
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    budget = objects[("PodDisruptionBudget", HISTORY_API)]
    assert budget["spec"]["selector"] == spec["selector"]
    assert budget["spec"]["minAvailable"] < spec["replicas"]


def test_k8s_history_api_has_no_kafka_provider_or_mapping_settings() -> None:
    api = k8s_deployment(HISTORY_API)
    assert not set(pod_env(api)) - HISTORY_API_SETTINGS
    assert not container_of(api).get("volumeMounts"), "no mappings, no Kafka CA"
    assert not pod_spec(api).get("volumes")


def test_k8s_history_api_probes_and_grace(settings_from: Callable[[dict[str, str]], Any]) -> None:
    api = k8s_deployment(HISTORY_API)
    container = container_of(api)
    settings = settings_from(pod_env(api))
    assert named_ports(api)["http"] == settings.service.health_port
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    pause = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pause[0] == "sleep"
    assert pod_spec(api)["terminationGracePeriodSeconds"] > (
        float(pause[1]) + settings.service.shutdown_grace_s
    )
    assert {"requests", "limits"} <= set(container["resources"])
    assert pod_spec(api)["securityContext"]["runAsUser"] == int(_image_user())


@pytest.mark.timeout(90)
def test_k8s_history_api_probes_answer_on_the_ports_they_name(tmp_path: Path) -> None:
    """The pod's command and environment run with this Python; each probe gets 200."""
    api = k8s_deployment(HISTORY_API)
    container = container_of(api)
    env = pod_env(api)
    ports = named_ports(api)
    local = dict(zip(ports, free_ports(len(ports)), strict=True))
    # The container's ports, as the settings that open them, moved to free local ports.
    moved = {
        name: str(local[port])
        for port, number in ports.items()
        for name in ("HEALTH_PORT", "HISTORY_PORT")
        if env[name] == str(number)
    }
    assert set(moved) == {"HEALTH_PORT", "HISTORY_PORT"}, (ports, env)
    process_env = {
        **os.environ,
        **image_env(),
        **env,
        **moved,
        "PATH": os.environ["PATH"],
        "HISTORY_DATABASE_URL": f"sqlite:///{tmp_path}/history.sqlite3",
    }
    command = [sys.executable, *exec_form("ENTRYPOINT")[1:], *container["args"]]
    log = tmp_path / "history.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=process_env, stdout=out, stderr=out)
    try:
        for probe in ("livenessProbe", "readinessProbe"):
            get = container[probe]["httpGet"]
            url = f"http://127.0.0.1:{local[get['port']]}{get['path']}"
            assert _answers_200(url, process, log), f"{probe} {get} never answered 200"
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0, _tail(log)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def _answers_200(url: str, process: subprocess.Popen[bytes], log: Path) -> bool:
    deadline = time.monotonic() + 45
    while time.monotonic() < deadline:
        assert process.poll() is None, f"it exited:\n{_tail(log)}"
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(url, timeout=2).status_code == 200:
                return True
        time.sleep(0.1)
    return False


def test_kustomization_lists_existing_files_but_not_the_placeholder_secret() -> None:
    resources = load(K8S / "kustomization.yaml")["resources"]
    assert all((K8S / name).is_file() for name in resources)
    assert "secret.yaml" not in resources
    secrets = k8s_secrets()
    for name in (CONSUMER, HISTORY_API):
        for item in container_of(k8s_deployment(name))["env"]:
            if "valueFrom" in item:
                key = item["valueFrom"]["secretKeyRef"]
                assert key["key"] in secrets[key["name"]], key


@pytest.mark.parametrize("name", [CONSUMER, HISTORY_API])
def test_every_file_a_setting_names_is_mounted_from_a_required_source(
    settings_from: Callable[[dict[str, str]], Any], name: str
) -> None:
    """A file setting pointing into an optional volume crash-loops the pod when it is absent."""
    deployment = k8s_deployment(name)
    settings = settings_from(pod_env(deployment))
    pod = pod_spec(deployment)
    container = container_of(deployment)
    mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    secrets = k8s_secrets()
    files = {
        variable: path
        for variable, path in file_settings(settings).items()
        if variable in pod_env(deployment)  # the defaults of settings it does not use
    }
    if name == CONSUMER:
        assert {"KAFKA_SSL_CAFILE", "MAPPINGS_DIR"} <= set(files)
    for variable, path in files.items():
        (mounted,) = [
            m for m in mounts if path == PurePosixPath(m) or PurePosixPath(m) in path.parents
        ]
        volume = volumes[mounts[mounted]]
        source = volume.get("secret") or volume.get("configMap")
        assert source is not None, (
            f"{variable}: volume {volume['name']} is neither Secret nor ConfigMap"
        )
        assert not source.get("optional"), (
            f"{variable}={path} is set, so {volume['name']} is required"
        )
        if "secret" in volume and path != PurePosixPath(mounted):
            key = str(path.relative_to(mounted))
            assert key in secrets[source["secretName"]], f"{variable}: the Secret has no {key}"


# ---- Dockerfile


def test_dockerfile_is_multi_stage_non_root_exec_form_with_a_healthcheck() -> None:
    steps = dockerfile()
    assert sum(op == "FROM" for op, _ in steps) == 2
    runtime = runtime_stage()
    assert "slim" in runtime[0][1]
    assert _image_user() not in ("", "0", "root")
    assert exec_form("ENTRYPOINT") == ["python", "-m", "consumer"]
    assert "/healthz" in " ".join(exec_form("HEALTHCHECK"))
    copied = [args.split()[-2] for op, args in steps if op == "COPY" and "--from" not in args]
    assert all((REPO / source).exists() for source in copied), copied
    assert not set(image_env()) - SETTINGS - {"PATH", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"}


def test_ci_runs_the_image_install_steps() -> None:
    (install,) = [args for op, args in dockerfile() if op == "RUN" and "pip install ." in args]
    check = re.search(r'python -c "([^"]+)"', install)[1]  # type: ignore[index]
    ci = (REPO / ".ci" / "run").read_text()
    assert check in ci, "CI should run the Dockerfile's build-time check"


@pytest.mark.kafka
@pytest.mark.timeout(90)
async def test_image_entrypoint_serves_healthz_and_stops_on_sigterm(
    kafka_bootstrap: str, topic_factory: Any, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    """ENTRYPOINT + CMD with the image's variables, run by this Python (no Docker here)."""
    (port,) = free_ports(1)
    topic = await topic_factory(prefix="image", partitions=1)
    env = {
        **os.environ,
        **image_env(),
        "PATH": os.environ["PATH"],
        "MAPPINGS_DIR": str(REPO / "mappings"),
        "HEALTH_PORT": str(port),
        "PUSH_PROVIDER": "dry-run",
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "KAFKA_TOPICS": topic,
        "KAFKA_GROUP_ID": unique_name("image"),
        "KAFKA_DLQ_TOPIC": unique_name("image-dlq"),
        "SHUTDOWN_GRACE_S": "2",
        "HISTORY_DATABASE_URL": f"sqlite:///{tmp_path}/history.sqlite3",
        "HISTORY_PORT": "0",
    }
    command = [sys.executable, *exec_form("ENTRYPOINT")[1:], *exec_form("CMD")]
    healthcheck = [sys.executable, *exec_form("HEALTHCHECK")[1:]]
    log = tmp_path / "service.log"
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(*command, env=env, stdout=out, stderr=out)
    try:
        await _until_healthy(healthcheck, env, process, log)
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0, _tail(log)
    finally:
        if process.returncode is None:
            process.kill()
            await asyncio.wait_for(process.wait(), 10)
    assert '"service_stopped"' in _tail(log)


async def _until_healthy(
    healthcheck: list[str], env: dict[str, str], process: asyncio.subprocess.Process, log: Path
) -> None:
    """Run the image's HEALTHCHECK command until it passes (bounded)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 45
    while True:
        assert process.returncode is None, f"the service exited:\n{_tail(log)}"
        check = await asyncio.create_subprocess_exec(
            *healthcheck, env=env, stderr=asyncio.subprocess.DEVNULL
        )
        if await asyncio.wait_for(check.wait(), 10) == 0:
            return
        assert loop.time() < deadline, f"/healthz never answered:\n{_tail(log)}"
        await asyncio.sleep(0.2)


def _tail(log: Path) -> str:
    return log.read_text(encoding="utf-8", errors="replace")[-3000:]


# ---- helpers


@pytest.fixture
def settings_from(monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, str]], Any]:
    """Settings as a container would read them: only the given variables set."""

    def load_with(env: dict[str, str]) -> Any:
        for name in SETTINGS:
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return load_settings()

    return load_with


def _image_user() -> str:
    (user,) = [args for op, args in runtime_stage() if op == "USER"]
    return user.split(":")[0]


def _seconds(duration: str) -> float:
    assert duration.endswith("s"), duration
    return float(duration[:-1])
