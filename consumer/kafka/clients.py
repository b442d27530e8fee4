"""Kafka clients: how they connect, how a command starts one, and the C-extension check.

``client_kwargs`` holds the connection and security options shared by the
service's consumer, its dead-letter producer and the operator's tools.

``connect`` starts a client in a command (``dlq replay``, ``demo``) and fails in
one line: an unreachable broker otherwise shows as an aiokafka error log per
refused connection, a traceback, and an "Unclosed AIOKafka..." warning from the
client left half started. ``assign_topic`` gives such a command's consumer a
whole topic without a group (``dlq replay``, ``mappings diff --from-topic``).

aiokafka parses and builds record batches in a Cython extension. When the
extension is missing (no wheel for the platform, or ``AIOKAFKA_NO_EXTENSIONS``
set) it silently falls back to pure Python, which costs several times the CPU per
record: ``aiokafka_c_extension_problem`` lets the service say so instead of just
being slow.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import aiokafka.util
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError, KafkaError
from aiokafka.helpers import create_ssl_context
from aiokafka.record import default_records, legacy_records, memory_records, util
from aiokafka.structs import TopicPartition

from consumer.errors import FatalError, SettingsError
from consumer.settings import KafkaSettings, SaslMechanism, SecurityProtocol

_C_PACKAGE = "aiokafka.record._crecords"


def client_kwargs(settings: KafkaSettings) -> dict[str, Any]:
    """Connection and security options shared by the consumer and the producer."""
    protocol = settings.security_protocol
    kwargs: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "security_protocol": protocol.value,
    }
    if protocol in (SecurityProtocol.SSL, SecurityProtocol.SASL_SSL):
        _require_files(settings)
        try:
            kwargs["ssl_context"] = create_ssl_context(
                cafile=settings.ssl_cafile,
                certfile=settings.ssl_certfile,
                keyfile=settings.ssl_keyfile,
            )
        except OSError as exc:  # includes ssl.SSLError
            raise SettingsError(
                f"KAFKA_SSL_CAFILE / KAFKA_SSL_CERTFILE / KAFKA_SSL_KEYFILE cannot be loaded: {exc}"
            ) from exc
    if protocol in (SecurityProtocol.SASL_PLAINTEXT, SecurityProtocol.SASL_SSL):
        if not settings.sasl_username or settings.sasl_password is None:
            raise SettingsError(
                f"KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD are required with "
                f"KAFKA_SECURITY_PROTOCOL={protocol.value}"
            )
        kwargs["sasl_mechanism"] = (settings.sasl_mechanism or SaslMechanism.PLAIN).value
        kwargs["sasl_plain_username"] = settings.sasl_username
        kwargs["sasl_plain_password"] = settings.sasl_password.get_secret_value()
    return kwargs


def _require_files(settings: KafkaSettings) -> None:
    """A set TLS file that is not there is named with its variable."""
    for variable, path in (
        ("KAFKA_SSL_CAFILE", settings.ssl_cafile),
        ("KAFKA_SSL_CERTFILE", settings.ssl_certfile),
        ("KAFKA_SSL_KEYFILE", settings.ssl_keyfile),
    ):
        if path is not None and not path.is_file():
            raise SettingsError(f"{variable}='{path}': no such file")


async def connect(
    start: Callable[[], Awaitable[None]], close: Callable[[], Awaitable[None]], bootstrap: str
) -> None:
    """Run a client's ``start``; on failure close it and raise a FatalError naming the broker."""
    try:
        with _bootstrap_errors_unlogged():
            await start()
    except (KafkaError, OSError) as exc:
        await close()
        why = _NO_BROKER if isinstance(exc, KafkaConnectionError) else str(exc)
        raise FatalError(f"cannot reach Kafka at {bootstrap}: {why}") from exc


# aiokafka says "Unable to bootstrap from [(host, port, <AddressFamily...>)]".
_NO_BROKER = "no broker answered there (is one running? is KAFKA_BOOTSTRAP_SERVERS right?)"


@contextlib.contextmanager
def _bootstrap_errors_unlogged() -> Iterator[None]:
    # aiokafka logs every refused bootstrap connection at error level; the
    # FatalError raised above already says it, once. Scoped to the start only,
    # so errors while running are still logged.
    logger = logging.getLogger("aiokafka")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


async def assign_topic(
    consumer: AIOKafkaConsumer, settings: KafkaSettings, topic: str, *, what: str = "topic"
) -> dict[TopicPartition, tuple[int, int]]:
    """Assign every partition of ``topic`` (no group); each one's (beginning, end) now.

    FatalError, naming the topic as ``what``, when it does not exist or cannot be read.
    """
    tps = [TopicPartition(topic, p) for p in await _partitions(settings, topic, what)]
    consumer.assign(tps)
    begins = await consumer.beginning_offsets(tps)
    ends = await consumer.end_offsets(tps)
    return {tp: (begins[tp], ends[tp]) for tp in tps}


async def _partitions(settings: KafkaSettings, topic: str, what: str) -> list[int]:
    # A consumer's metadata knows only the topics it tracks; the admin client asks,
    # after checking the full list: metadata naming a missing topic would create it
    # on brokers with auto.create.topics.enable (Kafka's default), so a mistyped
    # topic would leave a stray empty one behind instead of failing.
    admin = AIOKafkaAdminClient(**client_kwargs(settings))
    await connect(admin.start, admin.close, settings.bootstrap_servers)
    try:
        if topic not in await admin.list_topics():
            raise FatalError(f"the {what} {topic!r} does not exist at {settings.bootstrap_servers}")
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    if described["error_code"] != 0 or not described["partitions"]:
        raise FatalError(
            f"the {what} {topic!r} cannot be read (Kafka error code "
            f"{described['error_code']}; 3 means it does not exist)"
        )
    return sorted(p["partition"] for p in described["partitions"])


def aiokafka_c_extension_problem() -> str | None:
    """Why aiokafka runs without its C extension, or None when it uses it."""
    if aiokafka.util.NO_EXTENSIONS:
        value = os.environ.get("AIOKAFKA_NO_EXTENSIONS", "")
        return (
            f"AIOKAFKA_NO_EXTENSIONS={value!r} is set, so aiokafka uses its pure-Python "
            "record code; unset it"
        )
    implementations = {
        "DefaultRecordBatch": default_records.DefaultRecordBatch,
        "DefaultRecordBatchBuilder": default_records.DefaultRecordBatchBuilder,
        "LegacyRecordBatch": legacy_records.LegacyRecordBatch,
        "MemoryRecords": memory_records.MemoryRecords,
        "calc_crc32c": util.calc_crc32c,
    }
    pure = [name for name, impl in implementations.items() if _C_PACKAGE not in impl.__module__]
    if pure:
        return (
            f"aiokafka's C extension ({_C_PACKAGE}) did not load, so these run in pure "
            f"Python: {', '.join(pure)}; install an aiokafka wheel built for this platform"
        )
    return None


def assert_aiokafka_c_extension() -> None:
    """Raise FatalError when aiokafka would run without its C extension."""
    problem = aiokafka_c_extension_problem()
    if problem is not None:
        raise FatalError(problem)
