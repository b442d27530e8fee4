"""Configuration from environment variables, read once at start and passed down.

Each section is a ``BaseSettings`` with its own prefix, so the variable names are
the flat ones operations expect (``KAFKA_TOPICS``, ``IMSHOP_API_KEY``...).
``load_settings()`` builds them all and turns pydantic's errors into one
``SettingsError`` that names each variable. The README's configuration table is
checked against ``settings_table()`` by a test, so the two cannot drift.
"""

from __future__ import annotations

import argparse
import enum
import ipaddress
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from consumer.errors import SettingsError

CommaList = Annotated[list[str], NoDecode]

# Kafka's own rule for topic names (kafka.common.internals.Topic).
_TOPIC_NAME = re.compile(r"[a-zA-Z0-9._-]{1,249}")


def _split_commas(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


BOOTSTRAP_EXPECTED = "expected host:port[,host:port...], e.g. localhost:9092"
_HOST_NAME = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?\.?")
_BRACKETED_IPV6 = re.compile(r"\[([^\]]*)\](?::(.*))?")


def parse_bootstrap_servers(value: str) -> str:
    """The comma-separated ``host:port`` list, blanks around entries dropped.

    Raises ``ValueError`` saying which entry is wrong, why, and what is expected.
    The port is required: a broker address without one is more often a slip
    (a missing ``:9092``, a URL pasted in) than a broker on Kafka's default port.
    """
    entries = [entry.strip() for entry in value.split(",")]
    if entries == [""]:
        raise ValueError(f"no broker given; {BOOTSTRAP_EXPECTED}")
    for entry in entries:
        if problem := _address_problem(entry):
            where = f"{entry!r}: " if len(entries) > 1 and entry else ""
            raise ValueError(f"{where}{problem}; {BOOTSTRAP_EXPECTED}")
    return ",".join(entries)


def _address_problem(entry: str) -> str | None:
    if not entry:
        return "an empty entry between commas"
    if bracketed := _BRACKETED_IPV6.fullmatch(entry):
        host, port = bracketed.groups()
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return f"{host!r} in brackets is not an IPv6 address"
    elif "://" in entry:
        return "a URL, not an address (drop the scheme)"
    elif entry.count(":") > 1:
        return "an IPv6 address needs brackets: [address]:port"
    elif ":" not in entry:
        return f"no port (Kafka's usual one is 9092: {entry}:9092)"
    else:
        host, port = entry.split(":")
        if not host:
            return "no host before the colon"
        if not _HOST_NAME.fullmatch(host):
            return f"{host!r} is not a host name or IP address"
    return _port_problem(port)


def _port_problem(port: str | None) -> str | None:
    if not port:
        return "no port"
    if not port.isdigit():
        return f"port {port!r} is not a number"
    if not 1 <= int(port) <= 65535:
        return f"port {port} is not between 1 and 65535"
    return None


def _some_topics(topics: list[str]) -> list[str]:
    if not topics:
        raise ValueError("no topic given; expected a comma-separated list, e.g. orders,bonus")
    return topics


def _http_url(value: str) -> str:
    """An absolute http(s) URL, or ``ValueError`` saying what is missing."""
    scheme, _, rest = value.partition("://")
    if scheme.lower() not in ("http", "https") or not rest.split("/", 1)[0]:
        raise ValueError("expected an http:// or https:// URL with a host, e.g. https://host/push")
    return value


class ProviderName(enum.StrEnum):
    IMSHOP = "imshop"
    APPMETRICA = "appmetrica"
    DRY_RUN = "dry-run"


class SecurityProtocol(enum.StrEnum):
    PLAINTEXT = "PLAINTEXT"
    SSL = "SSL"
    SASL_PLAINTEXT = "SASL_PLAINTEXT"
    SASL_SSL = "SASL_SSL"


class SaslMechanism(enum.StrEnum):
    PLAIN = "PLAIN"
    SCRAM_SHA_256 = "SCRAM-SHA-256"
    SCRAM_SHA_512 = "SCRAM-SHA-512"


class LogLevel(enum.StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class HistoryAuth(enum.StrEnum):
    TOKEN = "token"
    NONE = "none"


class LogFormat(enum.StrEnum):
    AUTO = "auto"
    JSON = "json"
    CONSOLE = "console"


class _Section(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True, validate_default=True)


class KafkaSettings(_Section):
    model_config = SettingsConfigDict(env_prefix="KAFKA_")

    bootstrap_servers: str = Field(
        "localhost:9092", description="Comma-separated `host:port` list of brokers."
    )
    topics: CommaList = Field(["orders", "bonus"], description="Comma-separated topics to consume.")
    group_id: str = Field("order-push-consumer", description="Consumer group id.")
    group_instance_id: str | None = Field(
        None, description="Static membership id (one per replica); unset means dynamic."
    )
    dlq_topic: str = Field(
        "push-dead-letter",
        description="Dead-letter topic for bad events; must exist and be writable (checked at "
        "start).",
    )
    security_protocol: SecurityProtocol = Field(
        SecurityProtocol.PLAINTEXT, description="`PLAINTEXT`, `SSL`, `SASL_PLAINTEXT`, `SASL_SSL`."
    )
    sasl_mechanism: SaslMechanism | None = Field(
        None, description="`PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`."
    )
    sasl_username: str | None = Field(None, description="SASL user name.")
    sasl_password: SecretStr | None = Field(None, description="SASL password (secret).")
    ssl_cafile: Path | None = Field(None, description="CA bundle to verify the brokers.")
    ssl_certfile: Path | None = Field(None, description="Client certificate (mutual TLS).")
    ssl_keyfile: Path | None = Field(None, description="Client private key (mutual TLS).")
    session_timeout_ms: int = Field(
        45_000, ge=6_000, description="Group session timeout; longer than a pod restart."
    )
    commit_interval_s: float = Field(
        1.0, gt=0, description="How often finished offsets are committed."
    )
    commit_metadata_max_bytes: int = Field(
        4096, ge=64, description="Broker's `offset.metadata.max.bytes`."
    )
    metadata_max_age_ms: int = Field(
        10_000,
        ge=1_000,
        description="How often topic metadata is refreshed: a topic created later is read "
        "within this.",
    )
    failing_after_s: float = Field(
        10.0, gt=0, description="`/readyz` fails once Kafka fetches or commits fail this long."
    )

    _split_topics = field_validator("topics", mode="before")(_split_commas)
    _check_topics = field_validator("topics")(_some_topics)
    _check_servers = field_validator("bootstrap_servers")(parse_bootstrap_servers)

    @field_validator("topics")
    @classmethod
    def _topic_names(cls, topics: list[str]) -> list[str]:
        for topic in topics:
            _check_topic_name(topic)
        return topics

    @field_validator("dlq_topic")
    @classmethod
    def _dlq_topic_name(cls, topic: str) -> str:
        return _check_topic_name(topic)


def _check_topic_name(topic: str) -> str:
    if not _TOPIC_NAME.fullmatch(topic) or topic in (".", ".."):
        raise ValueError(
            f"{topic!r} is not a Kafka topic name: use 1 to 249 of the letters a-z, A-Z, "
            "digits, '.', '_' and '-'"
        )
    return topic


class EventSettings(_Section):
    model_config = SettingsConfigDict(env_prefix="EVENT_")

    max_bytes: int = Field(
        65_536, ge=256, description="Largest accepted record value; larger goes to dead-letter."
    )


class ImshopSettings(_Section):
    model_config = SettingsConfigDict(env_prefix="IMSHOP_")

    url: str = Field("http://127.0.0.1:8090/push", description="IMSHOP push API address.")
    api_key: SecretStr = Field(
        SecretStr(""), description="API key, sent as `Authorization: Bearer` (secret)."
    )
    rate_limit_requests: int = Field(10, ge=1, description="Requests allowed per window.")
    rate_limit_window_s: float = Field(60.0, gt=0, description="Sliding window length, seconds.")
    max_ids_per_request: int = Field(1000, ge=1, description="Recipients per request.")
    timeout_s: float = Field(10.0, gt=0, description="Timeout for one request, seconds.")
    assume_window_used_at_start: bool = Field(
        True, description="At start, count the last window as spent (a restart never bursts)."
    )
    rate_limit_margin_s: float = Field(
        1.0,
        ge=0,
        description="Seconds added to the window against network jitter (they count arrivals).",
    )

    _check_url = field_validator("url")(_http_url)


class AppMetricaSettings(_Section):
    model_config = SettingsConfigDict(env_prefix="APPMETRICA_")

    url: str = Field(
        "https://push.api.appmetrica.yandex.net", description="AppMetrica Push API address."
    )
    token: SecretStr = Field(
        SecretStr(""), description="OAuth token, sent as `Authorization: OAuth` (secret)."
    )
    app_id: int | None = Field(None, description="AppMetrica application id.")
    group_name: str = Field(
        "order-push",
        description="Push groups `<name>-transactional` and `<name>-marketing`, found or "
        "created at start.",
    )
    rate_limit_requests: int = Field(
        20, ge=1, description="API calls allowed per window: sends, status polls, lookups."
    )
    rate_limit_window_s: float = Field(1.0, gt=0, description="Sliding window length, seconds.")
    max_devices_per_request: int = Field(
        250_000, ge=1, le=250_000, description="Devices per send-batch request."
    )
    max_messages_per_request: int = Field(
        100,
        ge=2,
        description="Batch elements per send-batch request (one per text; two when its "
        "devices span more than 5 id types).",
    )
    timeout_s: float = Field(10.0, gt=0, description="Timeout for one request, seconds.")
    status_poll_initial_s: float = Field(
        2.0, gt=0, description="First transfer-status poll, after the send."
    )
    status_poll_max_s: float = Field(60.0, gt=0, description="Longest wait between polls.")
    status_timeout_s: float = Field(
        900.0,
        gt=0,
        description="Give up tracking a transfer after this long; its events are then `sent` "
        "as `unconfirmed`.",
    )
    report_url: str = Field(
        "https://api.appmetrica.yandex.net",
        description="AppMetrica Reporting API address (`appmetrica report`).",
    )
    report_requests_per_s: int = Field(
        30, ge=1, description="Reporting API requests per second (`appmetrica report`)."
    )

    _check_url = field_validator("url")(_http_url)


class DispatchSettings(_Section):
    model_config = SettingsConfigDict(env_prefix="")

    pending_max_events: int = Field(
        10_000, ge=1, description="Pending set bound; fetching pauses at this high-water mark."
    )
    pending_resume_ratio: float = Field(
        0.8, gt=0, lt=1, description="Fetching resumes below this share of the bound."
    )
    marketing_min_share: float = Field(
        0.2, ge=0, le=1, description="Share of requests reserved for marketing pushes."
    )
    retry_initial_backoff_s: float = Field(
        2.0, gt=0, description="First retry delay (retries go on until the push's TTL ends)."
    )
    retry_max_backoff_s: float = Field(120.0, gt=0, description="Longest retry delay.")
    max_concurrent_requests: int = Field(
        4, ge=1, description="Provider requests in flight at once (the budget still bounds starts)."
    )
    rebalance_settle_s: float = Field(
        10.0,
        ge=0,
        description="On a rebalance, how long requests in flight for the revoked partitions"
        " may take to finish and be committed before the partitions are given up.",
    )
    shared_variants: bool = Field(
        True,
        description="Send a rule's shared text when its personal push would go out later than"
        " the rule's `personal_within`; false sends every push with its personal text.",
    )
    dedupe_memory_events: int = Field(
        100_000, ge=1, description="Recent event ids remembered to drop duplicates."
    )
    collapse_memory_keys: int = Field(
        100_000, ge=1, description="Collapse keys whose last sent version is remembered."
    )


class MappingSettings(_Section):
    model_config = SettingsConfigDict(env_prefix="MAPPINGS_")

    dir: Path = Field(Path("mappings"), description="Directory of the mapping YAML files.")
    reload_interval_s: float = Field(2.0, gt=0, description="How often the directory is checked.")
    allowed_deeplink_schemes: CommaList = Field(
        ["imshop", "https"], description="Deeplink schemes a template may produce."
    )
    title_max_chars: int = Field(65, ge=1, description="Longest rendered title.")
    summary_max_chars: int = Field(240, ge=1, description="Longest rendered summary.")

    _split_schemes = field_validator("allowed_deeplink_schemes", mode="before")(_split_commas)


class HistorySettings(_Section):
    model_config = SettingsConfigDict(env_prefix="HISTORY_")

    enabled: bool = Field(
        True, description="Keep the notification history (`false`: nothing written or served)."
    )
    database_url: SecretStr = Field(
        SecretStr(""),
        description=(
            "`sqlite:///PATH` or `postgresql://USER:PASSWORD@HOST/DB` (secret); empty means "
            "`sqlite:///history.sqlite3` in the working directory."
        ),
    )
    port: int = Field(8081, ge=0, le=65535, description="Port of the history API for IMSHOP.")
    api_in_run: bool = Field(
        True,
        description="`run` serves the history API too; `false` when `history serve` serves "
        "it apart (Kubernetes: see Operations).",
    )
    auth: HistoryAuth = Field(
        HistoryAuth.TOKEN,
        description="`token` (Bearer `HISTORY_AUTH_TOKEN`), or `none` to serve it unauthenticated.",
    )
    auth_token: SecretStr = Field(
        SecretStr(""), description="The token IMSHOP sends as `Authorization: Bearer` (secret)."
    )
    max_items_per_user: int = Field(50, ge=1, description="Items kept and shown per customer.")
    retention_days: float = Field(
        90.0, gt=0, description="Items not updated this long are removed."
    )
    prune_interval_s: float = Field(60.0, gt=0, description="How often old items are pruned.")
    retry_max_backoff_s: float = Field(
        30.0, gt=0, description="Longest wait between retries of a failed history write."
    )
    migrate_at_start: bool = Field(
        True, description="Upgrade the schema at start (`false`: `history migrate` does it)."
    )

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: SecretStr) -> SecretStr:
        # The URL may hold a password: the message names the kinds, never the value.
        kind = value.get_secret_value().strip().partition("://")[0].partition("+")[0]
        if value.get_secret_value().strip() and kind not in ("sqlite", "postgresql", "postgres"):
            raise ValueError("give sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DATABASE")
        return value


class ServiceSettings(_Section):
    model_config = SettingsConfigDict(env_prefix="")

    push_provider: ProviderName = Field(
        ProviderName.IMSHOP, description="`imshop`, `appmetrica` or `dry-run`."
    )
    health_port: int = Field(8080, ge=0, le=65535, description="Port of health and metrics.")
    shutdown_grace_s: float = Field(
        20.0, ge=0, description="On SIGTERM, time allowed to send and commit."
    )
    stall_after_s: float = Field(
        120.0, gt=0, description="`/healthz` fails when the loop made no progress this long."
    )
    log_level: LogLevel = Field(LogLevel.INFO, description="`debug`, `info`, `warning` or `error`.")
    log_format: LogFormat = Field(
        LogFormat.AUTO, description="`json`, `console`, or `auto` (console on a TTY)."
    )


class Settings(BaseModel):
    """Every section, built once by ``load_settings`` and passed down."""

    model_config = {"frozen": True}

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    event: EventSettings = Field(default_factory=EventSettings)
    imshop: ImshopSettings = Field(default_factory=ImshopSettings)
    appmetrica: AppMetricaSettings = Field(default_factory=AppMetricaSettings)
    dispatch: DispatchSettings = Field(default_factory=DispatchSettings)
    mappings: MappingSettings = Field(default_factory=MappingSettings)
    history: HistorySettings = Field(default_factory=HistorySettings)
    service: ServiceSettings = Field(default_factory=ServiceSettings)


SECTIONS: dict[str, type[_Section]] = {
    name: field.annotation  # type: ignore[misc]
    for name, field in Settings.model_fields.items()
}


def _env_name(section: type[_Section], field: str) -> str:
    prefix = section.model_config.get("env_prefix", "") or ""
    return f"{prefix}{field}".upper()


def load_settings(**overrides: Mapping[str, Any]) -> Settings:
    """Read every section from the environment; ``overrides`` replace fields per section.

    Raises ``SettingsError`` with one line per bad variable: its name, the value
    (unless secret) and what was expected.
    """
    built: dict[str, _Section] = {}
    problems: list[str] = []
    for name, section in SECTIONS.items():
        try:
            built[name] = section(**dict(overrides.get(name, {})))
        except ValidationError as exc:
            problems += [_problem_line(section, error) for error in exc.errors()]
    if len(problems) == 1:
        raise SettingsError(f"invalid setting {problems[0]}")
    if problems:
        raise SettingsError("invalid settings:\n  " + "\n  ".join(problems))
    return Settings(**built)


def _problem_line(section: type[_Section], error: ErrorDetails) -> str:
    """``NAME='value': what is wrong`` (secret values are not shown)."""
    field = str(error["loc"][0]) if error["loc"] else ""
    message = error["msg"].removeprefix("Value error, ")
    value = error.get("input")
    info = section.model_fields.get(field)
    if info is None or "SecretStr" in str(info.annotation) or isinstance(value, dict):
        return f"{_env_name(section, field)}: {message}"
    shown = ",".join(map(str, value)) if isinstance(value, list) else str(value)
    return f"{_env_name(section, field)}={shown!r}: {message}"


def _default_text(value: object) -> str:
    if isinstance(value, SecretStr):
        return "(empty)" if not value.get_secret_value() else "(set, hidden)"
    if value is None:
        return "(unset)"
    if isinstance(value, list):
        return ",".join(map(str, value))
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, enum.Enum):
        return str(value.value)
    return str(value)


def settings_table() -> Iterator[tuple[str, str, str]]:
    """(variable, default, description) for every setting, in declaration order."""
    for section in SECTIONS.values():
        for field_name, field in section.model_fields.items():
            yield (
                _env_name(section, field_name),
                _default_text(field.default),
                field.description or "",
            )


def settings_values(settings: Settings) -> Iterator[tuple[str, str]]:
    """(variable, value as text) for the effective configuration; secrets stay hidden."""
    for name, section_type in SECTIONS.items():
        section = getattr(settings, name)
        for field_name in section_type.model_fields:
            yield _env_name(section_type, field_name), _default_text(getattr(section, field_name))


def bootstrap_servers_arg(text: str) -> str:
    """The argparse ``type`` of every --bootstrap-servers: the setting's check, as a usage error."""
    try:
        return parse_bootstrap_servers(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
