"""Shared fixtures. Kafka: one real broker per test session; PostgreSQL likewise.

``kafka_bootstrap`` is ``$KAFKA_BOOTSTRAP_SERVERS`` when set, otherwise a
``LocalKafka`` broker started once for the session. ``faulty_kafka`` is always a
local broker of its own, which tests may freeze, kill and restart. Every test that needs the
broker carries ``@pytest.mark.kafka``. With ``REQUIRE_KAFKA=1`` (CI) the session
fails if any such test was skipped or none ran, so a missing broker cannot pass
silently.

``postgres_server`` is a ``LocalPostgres`` started once for the session (or the
server of ``$HISTORY_TEST_DATABASE_URL``, whose user may create databases);
``fresh_postgres_url`` makes a new database on it per test. Without PostgreSQL
those tests skip, unless ``REQUIRE_POSTGRES=1`` (CI) makes that a failure.

A test that drives a browser or a database server is marked ``browser`` or
``postgres`` here, from the fixtures it uses. The *fast tests* are the rest:
``pytest -m "not kafka and not browser and not postgres"`` (``make test-fast``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import asyncpg
import pytest
import pytest_asyncio
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from hypothesis import Phase
from hypothesis import settings as hypothesis_settings
from sqlalchemy.engine import make_url
from testkit import MUTATION_PROFILE, under_mutation

from consumer.kafka.client_logs import ClientLogSummary
from consumer.local.kafka import KafkaUnavailable, LocalKafka
from consumer.local.postgres import LocalPostgres, PostgresUnavailable

TopicFactory = Callable[..., Awaitable[str]]

# `--hypothesis-profile=mutation`: the same examples every run and no saved failures,
# so a mutant's verdict depends on the mutant alone, and no shrinking: the first
# failing example kills the mutant (make mutation). Property tests run a tenth of their
# examples under it (testkit.examples), those that set none 20 instead of 100.
hypothesis_settings.register_profile(
    MUTATION_PROFILE,
    max_examples=20,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)

_KAFKA_MARK = "kafka"
_kafka_items: set[str] = set()
_skipped_kafka_items: list[str] = []


def _unique_name(prefix: str = "test") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def unique_name() -> Callable[[str], str]:
    """``unique_name(prefix) -> "prefix-<12 hex>"``: a topic or group name no other test uses."""
    return _unique_name


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield external
        return
    kafka = LocalKafka()
    try:
        kafka.start()
    except KafkaUnavailable as exc:
        pytest.skip(f"no Kafka broker for this test: {exc}")
    try:
        yield kafka.bootstrap_servers
    finally:
        kafka.stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def faulty_kafka_broker() -> AsyncIterator[LocalKafka]:
    """A broker of its own, started on first use, for tests that freeze or kill it.

    Like a production cluster, it creates no topic on a client's request.
    """
    kafka = LocalKafka(properties={"auto.create.topics.enable": "false"})
    try:
        await kafka.__aenter__()
    except KafkaUnavailable as exc:
        pytest.skip(f"no Kafka broker for this test: {exc}")
    try:
        yield kafka
    finally:
        await kafka.__aexit__(None, None, None)


@pytest_asyncio.fixture(loop_scope="session")
async def faulty_kafka(faulty_kafka_broker: LocalKafka) -> AsyncIterator[LocalKafka]:
    """``faulty_kafka_broker``, thawed or restarted after each test, whatever it did to it."""
    yield faulty_kafka_broker
    if faulty_kafka_broker.running:
        faulty_kafka_broker.thaw()
    else:
        await faulty_kafka_broker.restart()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def kafka_admin(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    """One admin client for the session; tests must not close it."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


@pytest_asyncio.fixture(loop_scope="session")
async def topic_factory(kafka_admin: AIOKafkaAdminClient) -> AsyncIterator[TopicFactory]:
    """``await topic_factory(prefix="test", partitions=3, configs=None) -> name``.

    Creates a fresh topic, waits until every partition has a leader, and deletes
    the test's topics afterwards.
    """
    created: list[str] = []

    async def create(
        prefix: str = "test", partitions: int = 3, configs: dict[str, str] | None = None
    ) -> str:
        name = _unique_name(prefix)
        topic = NewTopic(name, partitions, 1, topic_configs=configs or {})
        response = await kafka_admin.create_topics([topic])
        # aiokafka returns per-topic errors in the response instead of raising.
        errors = [e for e in response.topic_errors if e[1] != 0]
        assert not errors, f"creating topic {name} failed: {errors}"
        created.append(name)
        await _wait_for_leaders(kafka_admin, name, partitions)
        return name

    yield create
    if created:
        await kafka_admin.delete_topics(created)


async def _wait_for_leaders(admin: AIOKafkaAdminClient, topic: str, partitions: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        (described,) = await admin.describe_topics([topic])
        led = [p for p in described["partitions"] if p["leader"] >= 0]
        if described["error_code"] == 0 and len(led) == partitions:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"topic {topic} had no leader for all {partitions} partitions in 30 s")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[LocalPostgres | str]:
    """The session's PostgreSQL: a ``LocalPostgres`` (tests may stop and start it), or the
    admin URL of ``$HISTORY_TEST_DATABASE_URL``'s server."""
    external = os.environ.get("HISTORY_TEST_DATABASE_URL")
    if external:
        yield external
        return
    server = LocalPostgres(durable=False)
    try:
        server.start()
    except PostgresUnavailable as exc:
        if os.environ.get("REQUIRE_POSTGRES") == "1":
            pytest.fail(f"REQUIRE_POSTGRES=1 but there is no PostgreSQL: {exc}")
        pytest.skip(f"no PostgreSQL for this test: {exc}")
    try:
        yield server
    finally:
        server.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def fresh_postgres_url(postgres_server: LocalPostgres | str) -> AsyncIterator[str]:
    """``postgresql://`` URL of a new, empty database, dropped after the test."""
    admin_url = postgres_server if isinstance(postgres_server, str) else postgres_server.url
    name = f"test_{uuid.uuid4().hex[:12]}"
    await _admin_sql(admin_url, f'CREATE DATABASE "{name}"')
    try:
        yield str(make_url(admin_url).set(database=name).render_as_string(hide_password=False))
    finally:
        await _admin_sql(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _admin_sql(url: str, statement: str) -> None:
    parsed = make_url(url)
    connection = await asyncpg.connect(
        host=parsed.host,
        port=parsed.port,
        user=parsed.username,
        password=parsed.password,
        database=parsed.database,
        timeout=10,
    )
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port another socket listens on: binding it fails as "in use"."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port bound but not listening: connecting to it is refused at once."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield held.getsockname()[1]


# Fixtures that start something outside the process, and the mark their users get.
_MARK_BY_FIXTURE = {"browser": "browser", "postgres_server": "postgres"}


# Under the mutation profile a mutant that makes a test wait forever (a loop that never
# stops) ends its process in half a minute, whatever the test's own limit: a waiting
# test uses no CPU, so mutmut's CPU-time limit never ends it, and a timeout raised in the
# test would hang again in its fixture's teardown (the thread method exits instead).
_MUTATION_TIMEOUT_S = 30


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for fixture in set(getattr(item, "fixturenames", ())) & _MARK_BY_FIXTURE.keys():
            item.add_marker(_MARK_BY_FIXTURE[fixture])
        if under_mutation():
            timeout = pytest.mark.timeout(_MUTATION_TIMEOUT_S, method="thread")
            item.add_marker(timeout, append=False)


def pytest_runtest_setup(item: pytest.Item) -> None:
    fixtures = getattr(item, "fixturenames", ())
    if (
        "kafka_bootstrap" in fixtures or "faulty_kafka_broker" in fixtures
    ) and item.get_closest_marker(_KAFKA_MARK) is None:
        pytest.fail(f"{item.nodeid} uses the Kafka broker: mark it @pytest.mark.kafka")


def pytest_collection_finish(session: pytest.Session) -> None:
    # After deselection (-k, -m): only the tests that will run count.
    _kafka_items.update(i.nodeid for i in session.items if i.get_closest_marker(_KAFKA_MARK))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and report.nodeid in _kafka_items:
        _skipped_kafka_items.append(report.nodeid)


def _require_kafka_problem() -> str | None:
    if os.environ.get("REQUIRE_KAFKA") != "1":
        return None
    if not _kafka_items:
        return "REQUIRE_KAFKA=1 but no test marked kafka was collected"
    if _skipped_kafka_items:
        return (
            f"REQUIRE_KAFKA=1 but {len(_skipped_kafka_items)} test(s) marked kafka were "
            f"skipped (first: {_skipped_kafka_items[0]}); see the skip reasons above"
        )
    return None


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _require_kafka_problem() and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    problem = _require_kafka_problem()
    if problem:
        terminalreporter.section("REQUIRE_KAFKA", red=True)
        terminalreporter.line(problem, red=True)


@pytest.fixture(autouse=True)
def _no_client_log_filter_left_behind() -> Iterator[None]:
    """A service that ends leaves aiokafka's loggers as it found them: a filter left
    installed (a service task abandoned by a test) would silence later tests' logs."""
    yield
    left = [
        name
        for name, logger in logging.root.manager.loggerDict.items()
        if isinstance(logger, logging.Logger)
        and any(isinstance(f, ClientLogSummary) for f in logger.filters)
    ]
    for name in left:
        logger = logging.getLogger(name)
        for f in [f for f in logger.filters if isinstance(f, ClientLogSummary)]:
            logger.removeFilter(f)
    assert not left, f"aiokafka log filters left installed on {left}"
