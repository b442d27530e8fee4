"""Configuration from environment variables, read once at start and passed down.

Each section is a ``BaseSettings`` with its own prefix, so the variable names are
the flat ones operations expect (``KAFKA_TOPICS``, ``IMSHOP_API_KEY``...).
``load_settings()`` builds them all and turns pydantic's errors into one
``SettingsError`` that names each variable. The README's configuration table is
checked against ``settings_table()`` by a test, so the two cannot drift.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from consumer.errors import SettingsError

CommaList = Annotated[list[str], NoDecode]

# Kafka's own rule for topic names (kafka.common.internals.Topic).
_TOPIC_NAME = re.compile(r"[a-zA-Z0-9._-]{1,249}")


def _split_commas(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
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
    topics: CommaList = Field(
        ["orders", "bonus"], description="Comma-separated topics to consume.", min_length=1
    )
    group_id: str = Field("order-push-consumer", description="Consumer group id.")
    group_instance_id: str | None = Field(
        None, description="Static membership id (one per replica); unset means dynamic."
    )
    dlq_topic: str = Field("push-dead-letter", description="Dead-letter topic for bad events.")
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


class AppMetricaSettings(_Section):
    model_config = SettingsConfigDict(env_prefix="APPMETRICA_")

    url: str = Field(
        "https://push.api.appmetrica.yandex.net", description="AppMetrica Push API address."
    )
    token: SecretStr = Field(
        SecretStr(""), description="OAuth token, sent as `Authorization: OAuth` (secret)."
    )
    app_id: int | None = Field(None, description="AppMetrica application id.")
    group_name: str = Field("order-push", description="Push group, found or created at start.")
    tag: str = Field("order-push", description="Tag on every send, for reports.")
    rate_limit_requests: int = Field(20, ge=1, description="Send requests allowed per window.")
    rate_limit_window_s: float = Field(1.0, gt=0, description="Sliding window length, seconds.")
    max_devices_per_request: int = Field(
        250_000, ge=1, le=250_000, description="Devices per send-batch request."
    )
    max_messages_per_request: int = Field(
        100, ge=1, description="Different messages (batch elements) per send-batch request."
    )
    timeout_s: float = Field(10.0, gt=0, description="Timeout for one request, seconds.")
    status_poll_initial_s: float = Field(2.0, gt=0, description="First transfer-status poll.")
    status_poll_max_s: float = Field(60.0, gt=0, description="Longest wait between polls.")
    status_timeout_s: float = Field(
        900.0, gt=0, description="Give up tracking a transfer after this long."
    )


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
    retry_max_attempts: int = Field(5, ge=1, description="Attempts per request, then dead-letter.")
    retry_initial_backoff_s: float = Field(2.0, gt=0, description="First retry delay.")
    retry_max_backoff_s: float = Field(120.0, gt=0, description="Longest retry delay.")
    max_concurrent_requests: int = Field(
        4, ge=1, description="Provider requests in flight at once (the budget still bounds starts)."
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

    Raises ``SettingsError`` listing each bad variable as ``NAME: problem``.
    """
    built: dict[str, _Section] = {}
    problems: list[str] = []
    for name, section in SECTIONS.items():
        try:
            built[name] = section(**dict(overrides.get(name, {})))
        except ValidationError as exc:
            for error in exc.errors():
                field = str(error["loc"][0]) if error["loc"] else ""
                problems.append(f"{_env_name(section, field)}: {error['msg']}")
    if problems:
        raise SettingsError("invalid configuration:\n  " + "\n  ".join(problems))
    return Settings(**built)


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
