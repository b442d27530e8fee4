"""The dead-letter topic is checked at start, against real brokers.

``faulty_kafka`` creates no topic on demand, as production brokers do not: a
missing ``KAFKA_DLQ_TOPIC`` stops ``run`` in one line, exit 2. A broker of this
module's own runs an authorizer (everything allowed where a resource has no ACL,
like a cluster whose operator restricts some topics): a topic this client may
see but not write, and one it may not see, stop the start too. The session
broker creates topics on demand: the check has it create the topic, and says so.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAuthorizationFailedError
from aiokafka.protocol.admin import CreateAclsRequest
from structlog.testing import capture_logs

from consumer.errors import SettingsError
from consumer.kafka.access import TopicAccess, describe_topic
from consumer.kafka.deadletter import build_producer, check_dead_letter_topic
from consumer.local.kafka import KafkaUnavailable, LocalKafka
from consumer.settings import KafkaSettings

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]

REPO = Path(__file__).resolve().parents[2]

# Kafka's protocol codes for an ACL (org.apache.kafka.common.acl / resource).
TOPIC, LITERAL, ALLOW = 2, 3, 3
READ, DESCRIBE = 3, 8
ANYONE_AT_ALL = "User:ANONYMOUS"  # who a PLAINTEXT client is


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def acl_kafka() -> AsyncIterator[LocalKafka]:
    kafka = LocalKafka(
        properties={
            "auto.create.topics.enable": "false",
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found": "true",
        }
    )
    try:
        await kafka.__aenter__()
    except KafkaUnavailable as exc:
        pytest.skip(f"no Kafka broker for this test: {exc}")
    try:
        yield kafka
    finally:
        await kafka.__aexit__(None, None, None)


async def restricted_topic(kafka: LocalKafka, name: str, principal: str, operation: int) -> None:
    """A topic whose only ACL allows ``principal`` one ``operation`` (so nobody else any)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, 1, 1)])
        # aiokafka's admin client has no create_acls; its protocol has the request.
        client = admin._client
        request = CreateAclsRequest(TOPIC, name, LITERAL, principal, "*", operation, ALLOW)
        answer = await client.send(client.get_random_node(), request)
        assert [r["error_code"] for r in answer.to_object()["creation_responses"]] == [0]
    finally:
        await admin.close()


async def until_in_force(producer: Any, topic: str, applied: Callable[[TopicAccess], bool]) -> None:
    """ACLs reach the authorizer through the metadata log: wait (bounded) until they do."""
    deadline = time.monotonic() + 30
    while not applied(await describe_topic(producer.client, topic)):
        assert time.monotonic() < deadline, f"the ACL on {topic} never took effect"
        await asyncio.sleep(0.1)


@pytest_asyncio.fixture(loop_scope="session")
async def acl_producer(acl_kafka: LocalKafka) -> AsyncIterator[AIOKafkaProducer]:
    producer = build_producer(KafkaSettings(bootstrap_servers=acl_kafka.bootstrap_servers))
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()


def dlq_settings(bootstrap: str, topic: str) -> KafkaSettings:
    return KafkaSettings(bootstrap_servers=bootstrap, dlq_topic=topic)


async def test_a_topic_this_client_may_read_but_not_write_stops_the_start(
    acl_kafka: LocalKafka, acl_producer: AIOKafkaProducer, unique_name: Callable[[str], str]
) -> None:
    topic = unique_name("dlq-read-only")
    await restricted_topic(acl_kafka, topic, ANYONE_AT_ALL, READ)
    await until_in_force(acl_producer, topic, lambda access: access.may_write is False)
    with pytest.raises(TopicAuthorizationFailedError):  # what every dead letter would meet
        await asyncio.wait_for(acl_producer.send_and_wait(topic, b"x"), 30)

    with pytest.raises(SettingsError) as refused:
        await check_dead_letter_topic(
            acl_producer.client, dlq_settings(acl_kafka.bootstrap_servers, topic)
        )

    assert str(refused.value) == (
        f"KAFKA_DLQ_TOPIC={topic!r}: this client may see this topic but not write to it; "
        f"grant it Write: kafka-acls.sh --bootstrap-server {acl_kafka.bootstrap_servers} --add "
        f"--allow-principal User:NAME --operation Describe --operation Write --topic {topic}"
    )


async def test_a_topic_this_client_may_not_see_stops_the_start(
    acl_kafka: LocalKafka, acl_producer: AIOKafkaProducer, unique_name: Callable[[str], str]
) -> None:
    topic = unique_name("dlq-hidden")
    await restricted_topic(acl_kafka, topic, "User:someone-else", DESCRIBE)
    await until_in_force(acl_producer, topic, lambda access: access.denied)

    with pytest.raises(SettingsError, match="does not let this client see this topic") as refused:
        await check_dead_letter_topic(
            acl_producer.client, dlq_settings(acl_kafka.bootstrap_servers, topic)
        )

    assert str(refused.value).startswith(f"KAFKA_DLQ_TOPIC={topic!r}: ")
    assert "\n" not in str(refused.value)


async def test_a_writable_topic_passes_the_check_quietly(
    acl_kafka: LocalKafka, acl_producer: AIOKafkaProducer, unique_name: Callable[[str], str]
) -> None:
    open_topic = unique_name("dlq-open")  # no ACL on it: writable by all
    admin = AIOKafkaAdminClient(bootstrap_servers=acl_kafka.bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(open_topic, 1, 1)])
    finally:
        await admin.close()
    await until_in_force(acl_producer, open_topic, lambda access: access.partitions == 1)

    with capture_logs() as logs:
        await check_dead_letter_topic(
            acl_producer.client, dlq_settings(acl_kafka.bootstrap_servers, open_topic)
        )

    assert logs == []
    await asyncio.wait_for(acl_producer.send_and_wait(open_topic, b"x"), 30)


async def test_run_stops_at_start_in_one_line_when_the_topic_is_missing(
    faulty_kafka: LocalKafka, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    """A broker that creates no topic on demand: exit 2, one line saying how to fix it."""
    dlq = unique_name("dlq-missing")
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": faulty_kafka.bootstrap_servers,
        "KAFKA_TOPICS": unique_name("orders"),
        "KAFKA_GROUP_ID": unique_name("group"),
        "KAFKA_DLQ_TOPIC": dlq,
        "PUSH_PROVIDER": "dry-run",
        "MAPPINGS_DIR": str(REPO / "mappings"),
        "HEALTH_PORT": "0",
        "HISTORY_DATABASE_URL": f"sqlite:///{tmp_path}/history.sqlite3",
        "HISTORY_PORT": "0",
        "LOG_FORMAT": "json",
    }
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "consumer", "run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 2, done.stderr
    said = [line for line in done.stderr.splitlines() if not line.startswith("{")]
    brokers = faulty_kafka.bootstrap_servers
    assert said == [
        f"error: KAFKA_DLQ_TOPIC={dlq!r}: no such topic at {brokers}, and the brokers create "
        f"none on demand; create it with the partitions and retention you want, e.g. "
        f"kafka-topics.sh --bootstrap-server {brokers} --create --topic {dlq} --partitions 3 "
        f"--config retention.ms=2592000000 (30 days), or name an existing topic"
    ]
    admin = AIOKafkaAdminClient(bootstrap_servers=brokers)
    await admin.start()
    try:
        assert dlq not in await admin.list_topics(), "the check must not leave the topic behind"
    finally:
        await admin.close()


async def test_a_broker_that_creates_topics_creates_it_at_start_and_says_so(
    kafka_bootstrap: str, kafka_admin: AIOKafkaAdminClient, unique_name: Callable[[str], str]
) -> None:
    dlq = unique_name("dlq-made")
    producer = build_producer(KafkaSettings(bootstrap_servers=kafka_bootstrap))
    await producer.start()
    try:
        with capture_logs() as logs:
            await check_dead_letter_topic(producer.client, dlq_settings(kafka_bootstrap, dlq))
    finally:
        await producer.stop()

    try:
        assert dlq in await kafka_admin.list_topics()
    finally:
        await kafka_admin.delete_topics([dlq])
    (said,) = logs
    assert (said["event"], said["log_level"], said["topic"]) == (
        "kafka_dlq_topic_created",
        "warning",
        dlq,
    )
    assert "default partitions and retention" in said["detail"]


async def test_an_internal_topic_is_refused(kafka_bootstrap: str) -> None:
    producer = build_producer(KafkaSettings(bootstrap_servers=kafka_bootstrap))
    await producer.start()
    try:
        with pytest.raises(SettingsError, match="an internal Kafka topic"):
            await check_dead_letter_topic(
                producer.client, dlq_settings(kafka_bootstrap, "__consumer_offsets")
            )
    finally:
        await producer.stop()
