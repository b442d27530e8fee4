"""Settings: defaults, parsing, errors that name the variable, secrets that never print."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from consumer.errors import SettingsError
from consumer.settings import (
    ProviderName,
    SaslMechanism,
    SecurityProtocol,
    load_settings,
    settings_table,
)

README = Path(__file__).resolve().parent.parent / "README.md"
DESIGN_VARIABLES = {
    "KAFKA_BOOTSTRAP_SERVERS",
    "KAFKA_TOPICS",
    "KAFKA_GROUP_ID",
    "KAFKA_DLQ_TOPIC",
    "KAFKA_SECURITY_PROTOCOL",
    "KAFKA_SASL_MECHANISM",
    "KAFKA_SASL_USERNAME",
    "KAFKA_SASL_PASSWORD",
    "KAFKA_SSL_CAFILE",
    "PUSH_PROVIDER",
    "IMSHOP_URL",
    "IMSHOP_API_KEY",
    "IMSHOP_RATE_LIMIT_REQUESTS",
    "IMSHOP_RATE_LIMIT_WINDOW_S",
    "IMSHOP_MAX_IDS_PER_REQUEST",
    "MAPPINGS_DIR",
    "PENDING_MAX_EVENTS",
}


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, _, _ in settings_table():
        monkeypatch.delenv(name, raising=False)


def test_defaults_follow_the_design() -> None:
    settings = load_settings()

    assert settings.kafka.topics == ["orders", "bonus"]
    assert settings.imshop.rate_limit_requests == 10
    assert settings.imshop.rate_limit_window_s == 60
    assert settings.imshop.max_ids_per_request == 1000
    assert settings.service.push_provider is ProviderName.IMSHOP
    assert settings.service.health_port == 8080


def test_environment_is_read_with_flat_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_TOPICS", "orders, bonus ,returns")
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("IMSHOP_RATE_LIMIT_WINDOW_S", "2.5")
    monkeypatch.setenv("PUSH_PROVIDER", "dry-run")
    monkeypatch.setenv("MAPPINGS_ALLOWED_DEEPLINK_SCHEMES", "myshop,https")

    settings = load_settings()

    assert settings.kafka.topics == ["orders", "bonus", "returns"]
    assert settings.kafka.security_protocol is SecurityProtocol.SASL_SSL
    assert settings.kafka.sasl_mechanism is SaslMechanism.SCRAM_SHA_512
    assert settings.imshop.rate_limit_window_s == 2.5
    assert settings.service.push_provider is ProviderName.DRY_RUN
    assert settings.mappings.allowed_deeplink_schemes == ["myshop", "https"]


def test_every_bad_variable_is_named_in_one_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMSHOP_RATE_LIMIT_REQUESTS", "ten")
    monkeypatch.setenv("PENDING_MAX_EVENTS", "0")
    monkeypatch.setenv("PUSH_PROVIDER", "pigeon")

    with pytest.raises(SettingsError) as caught:
        load_settings()

    header, *lines = str(caught.value).splitlines()
    assert header == "invalid settings:"
    assert [line.strip() for line in lines] == [
        "IMSHOP_RATE_LIMIT_REQUESTS='ten': Input should be a valid integer, "
        "unable to parse string as an integer",
        "PENDING_MAX_EVENTS='0': Input should be greater than or equal to 1",
        "PUSH_PROVIDER='pigeon': Input should be 'imshop', 'appmetrica' or 'dry-run'",
    ]


def test_one_bad_variable_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_LEVEL", "loud")

    with pytest.raises(SettingsError) as caught:
        load_settings()

    assert str(caught.value) == (
        "invalid setting LOG_LEVEL='loud': Input should be 'debug', 'info', 'warning' or 'error'"
    )


def test_an_unknown_history_database_is_named_without_its_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HISTORY_DATABASE_URL", "mysql://shop:s3cret@db/shop")

    with pytest.raises(SettingsError, match=r"HISTORY_DATABASE_URL: .*sqlite:///PATH") as caught:
        load_settings()

    assert "s3cret" not in str(caught.value)


def test_empty_topic_list_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_TOPICS", " , ")

    with pytest.raises(SettingsError) as caught:
        load_settings()

    assert str(caught.value) == (
        "invalid setting KAFKA_TOPICS=' , ': no topic given; "
        "expected a comma-separated list, e.g. orders,bonus"
    )


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("host:abc", "port 'abc' is not a number"),
        ("nowhere", "no port (Kafka's usual one is 9092: nowhere:9092)"),
        ("host:0", "port 0 is not between 1 and 65535"),
        ("host:65536", "port 65536 is not between 1 and 65535"),
        (":9092", "no host before the colon"),
        ("host:", "no port"),
        ("", "no broker given"),
        ("a:1,,b:2", "an empty entry between commas"),
        ("a:1,b", "'b': no port (Kafka's usual one is 9092: b:9092)"),
        ("bad host:9092", "'bad host' is not a host name or IP address"),
        ("PLAINTEXT://kafka:9092", "a URL, not an address (drop the scheme)"),
        ("::1:9092", "an IPv6 address needs brackets: [address]:port"),
        ("[::1]", "no port"),
        ("[zz]:9092", "'zz' in brackets is not an IPv6 address"),
    ],
)
def test_bootstrap_servers_are_host_port_pairs(
    monkeypatch: pytest.MonkeyPatch, value: str, problem: str
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", value)

    with pytest.raises(SettingsError) as caught:
        load_settings()

    assert str(caught.value) == (
        f"invalid setting KAFKA_BOOTSTRAP_SERVERS={value!r}: {problem}; "
        "expected host:port[,host:port...], e.g. localhost:9092"
    )


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        ("localhost:9092", "localhost:9092"),
        (" kafka-0.kafka:9093 , kafka-1.kafka:9093 ", "kafka-0.kafka:9093,kafka-1.kafka:9093"),
        ("10.0.0.7:9092,[::1]:9092", "10.0.0.7:9092,[::1]:9092"),
        ("kafka_broker:19092", "kafka_broker:19092"),
    ],
)
def test_good_bootstrap_servers_are_kept_without_blanks(
    monkeypatch: pytest.MonkeyPatch, value: str, kept: str
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", value)

    assert load_settings().kafka.bootstrap_servers == kept


@pytest.mark.parametrize("variable", ["IMSHOP_URL", "APPMETRICA_URL"])
@pytest.mark.parametrize("value", ["127.0.0.1:8090/push", "ftp://host/push", "http:///push"])
def test_provider_urls_must_be_http_with_a_host(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)

    with pytest.raises(SettingsError) as caught:
        load_settings()

    assert str(caught.value) == (
        f"invalid setting {variable}={value!r}: expected an http:// or https:// URL "
        "with a host, e.g. https://host/push"
    )


@pytest.mark.parametrize(
    ("variable", "value", "bad"),
    [
        ("KAFKA_DLQ_TOPIC", "chaos dlq!", "'chaos dlq!'"),
        ("KAFKA_TOPICS", "orders,bonus/points", "'bonus/points'"),
        ("KAFKA_TOPICS", "..", "'..'"),
        ("KAFKA_DLQ_TOPIC", "x" * 250, "x'"),  # the value is shown shortened
    ],
)
def test_a_topic_name_kafka_would_refuse_is_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, bad: str
) -> None:
    monkeypatch.setenv(variable, value)

    with pytest.raises(SettingsError) as caught:
        load_settings()

    assert f"invalid setting {variable}=" in str(caught.value)
    assert f"{bad} is not a Kafka topic name" in str(caught.value)


def test_secrets_never_print(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMSHOP_API_KEY", "imshop-secret-123")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "kafka-secret-456")
    monkeypatch.setenv("APPMETRICA_TOKEN", "oauth-secret-789")
    monkeypatch.setenv("HISTORY_AUTH_TOKEN", "history-secret-012")
    monkeypatch.setenv("HISTORY_DATABASE_URL", "postgresql://u:db-secret-345@db/shop")

    settings = load_settings()
    shown = " ".join([repr(settings), str(settings), settings.model_dump_json()])

    secrets = ("imshop-secret-123", "kafka-secret-456", "oauth-secret-789")
    for secret in (*secrets, "history-secret-012", "db-secret-345"):
        assert secret not in shown
    assert settings.imshop.api_key.get_secret_value() == "imshop-secret-123"


def test_every_design_variable_exists() -> None:
    names = {name for name, _, _ in settings_table()}

    assert names >= DESIGN_VARIABLES


def test_readme_table_matches_the_code() -> None:
    text = README.read_text(encoding="utf-8")
    documented = dict(re.findall(r"^\| `([A-Z0-9_]+)` \| `([^`]*)` \|", text, re.MULTILINE))

    expected = {name: default for name, default, _ in settings_table()}
    assert documented == expected, "regenerate with: python -m consumer settings --markdown"
