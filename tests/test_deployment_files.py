"""The deployment files agree with the code: variables, commands, ports, topics, signals.

No Docker engine is needed: the compose and Kubernetes files are read as YAML, the
Dockerfile as instructions, and the image's entrypoint is run with this Python.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shlex
import signal
import sys
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from sqlalchemy.engine import make_url

from consumer.cli import build_parser
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


# ---- compose


def test_compose_sets_only_known_variables_and_valid_commands() -> None:
    services = our_services()
    assert set(services) == {"imshop", "consumer", "producer"}
    for name, service in services.items():
        unknown = set(service.get("environment", {})) - SETTINGS
        assert not unknown, f"compose service {name} sets unknown variables {unknown}"
        parses(service.get("command", exec_form("CMD")))


def test_compose_settings_load_and_point_at_the_other_services(
    settings_from: Callable[[dict[str, str]], Any],
) -> None:
    services = compose()["services"]
    settings = settings_from({k: str(v) for k, v in services["consumer"]["environment"].items()})
    sim = build_parser().parse_args(services["imshop"]["command"])
    assert settings.imshop.url == f"http://imshop:{sim.port}/push"
    assert settings.imshop.api_key.get_secret_value() == sim.api_key
    assert f"{sim.port}:{sim.port}" in services["imshop"]["ports"]
    topics_script = services["topics"]["command"][0]
    created = set(re.search(r"for topic in ([^;]+);", topics_script)[1].split())  # type: ignore[index]
    assert {*settings.kafka.topics, settings.kafka.dlq_topic} <= created
    producer = build_parser().parse_args(services["producer"]["command"])
    assert producer.bootstrap_servers == settings.kafka.bootstrap_servers
    assert settings.service.shutdown_grace_s < _seconds(services["consumer"]["stop_grace_period"])
    assert (
        f"{settings.service.health_port}:{settings.service.health_port}"
        in (services["consumer"]["ports"])
    )


def test_compose_history_uses_its_postgres_and_is_published(
    settings_from: Callable[[dict[str, str]], Any],
) -> None:
    services = compose()["services"]
    consumer, postgres = services["consumer"], services["postgres"]
    settings = settings_from({k: str(v) for k, v in consumer["environment"].items()})
    url = make_url(settings.history.database_url.get_secret_value())
    env = postgres["environment"]
    assert (url.host, url.port or 5432) == ("postgres", 5432)
    assert (url.username, url.password, url.database) == (
        env["POSTGRES_USER"],
        env["POSTGRES_PASSWORD"],
        env["POSTGRES_DB"],
    )
    assert consumer["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert settings.history.auth_token.get_secret_value(), "served, so it needs a token"
    port = settings.history.port
    assert f"{port}:{port}" in consumer["ports"]
    assert "history-data" in compose()["volumes"]


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


def k8s_deployment() -> dict[str, Any]:
    return load(K8S / "deployment.yaml")  # type: ignore[no-any-return]


def k8s_secrets() -> dict[str, set[str]]:
    """Each placeholder Secret in secret.yaml: its name and keys."""
    documents = yaml.safe_load_all((K8S / "secret.yaml").read_text(encoding="utf-8"))
    return {doc["metadata"]["name"]: set(doc["stringData"]) for doc in documents}


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


def test_k8s_config_uses_known_variables_that_load(
    settings_from: Callable[[dict[str, str]], Any],
) -> None:
    config = load(K8S / "configmap.yaml")["data"]
    container = k8s_deployment()["spec"]["template"]["spec"]["containers"][0]
    secret_env = {item["name"] for item in container["env"]}
    assert not (set(config) | secret_env) - SETTINGS
    documents = yaml.safe_load_all((K8S / "secret.yaml").read_text(encoding="utf-8"))
    placeholders = {doc["metadata"]["name"]: doc["stringData"] for doc in documents}
    from_secret = {
        item["name"]: placeholders[ref["name"]][ref["key"]]
        for item in container["env"]
        if (ref := item["valueFrom"]["secretKeyRef"])
    }
    settings = settings_from({**config, **from_secret})
    assert settings.mappings.dir == Path("/app/mappings")
    assert settings.history.database_url.get_secret_value().startswith("postgresql://")
    assert settings.history.auth_token.get_secret_value()
    parses(container["args"])


def test_k8s_deployment_probes_grace_and_one_replica() -> None:
    deployment = k8s_deployment()
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    config = load(K8S / "configmap.yaml")["data"]
    assert spec["replicas"] == 1, "the provider budget is per process: one replica per account"
    assert spec["strategy"]["type"] == "Recreate", "a rolling update would run two at once"
    assert pod["terminationGracePeriodSeconds"] > float(config["SHUTDOWN_GRACE_S"])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["http"] == int(config["HEALTH_PORT"])
    assert ports["history"] == int(config["HISTORY_PORT"])
    service = load(K8S / "service.yaml")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["history"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["mappings"] == config["MAPPINGS_DIR"]
    assert not any("subPath" in m for m in container["volumeMounts"]), "subPath stops reloads"
    assert {"requests", "limits"} <= set(container["resources"])
    assert pod["securityContext"]["runAsUser"] == int(_image_user())


def test_kustomization_lists_existing_files_but_not_the_placeholder_secret() -> None:
    resources = load(K8S / "kustomization.yaml")["resources"]
    assert all((K8S / name).is_file() for name in resources)
    assert "secret.yaml" not in resources
    secrets = k8s_secrets()
    for ref in k8s_deployment()["spec"]["template"]["spec"]["containers"][0]["env"]:
        key = ref["valueFrom"]["secretKeyRef"]
        assert key["key"] in secrets[key["name"]], key


def test_every_file_a_setting_names_is_mounted_from_a_required_source(
    settings_from: Callable[[dict[str, str]], Any],
) -> None:
    """A file setting pointing into an optional volume crash-loops the pod when it is absent."""
    config = load(K8S / "configmap.yaml")["data"]
    settings = settings_from({**config, "IMSHOP_API_KEY": "x", "KAFKA_SASL_PASSWORD": "y"})
    pod = k8s_deployment()["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    secrets = k8s_secrets()
    files = file_settings(settings)
    assert {"KAFKA_SSL_CAFILE", "MAPPINGS_DIR"} <= set(files)
    for name, path in files.items():
        (mounted,) = [
            m for m in mounts if path == PurePosixPath(m) or PurePosixPath(m) in path.parents
        ]
        volume = volumes[mounts[mounted]]
        source = volume.get("secret") or volume.get("configMap")
        assert source is not None, (
            f"{name}: volume {volume['name']} is neither Secret nor ConfigMap"
        )
        assert not source.get("optional"), f"{name}={path} is set, so {volume['name']} is required"
        if "secret" in volume and path != PurePosixPath(mounted):
            key = str(path.relative_to(mounted))
            assert key in secrets[source["secretName"]], f"{name}: the Secret has no {key}"


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
